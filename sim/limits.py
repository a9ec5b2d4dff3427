"""Sizes: the upper bound of every setting that sizes a run, a run's expected size before it
starts, and the bounds of a file the user points at (a scenario, an ensemble).

The bounds are what this machine can finish (2 cores, a few GB per process; measured on the
baseline: about 15,000 applications a second on one core, about 0.7 kB of memory per
application of a replication, about 0.5 kB per simulated day of each replication's tables).
Nothing here raises: :mod:`sim.validation` and :mod:`sim.hydra_flags` turn a value over its
bound, or a problem with a file, into the one-line :class:`~sim.validation.ConfigError`.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from sim import policies
from sim.params import Config

# -- settings that size a run ------------------------------------------------------------------
MAX_OFFICIALS = 100_000  # officials.count (and x officials.scale), schedule, ramp, dedicated
MAX_REPLICATIONS = 100_000  # replications: a row of figures and daily series kept of each
MAX_JOBS = 1_024  # jobs: workers (local processes are capped at the cores by sim.executor)
MAX_DAYS = 36_600  # horizon_days, end_date - start_date, every duration: a hundred years
MAX_REVIEW_CV = 10.0  # review.cv, as interagency.cv: a lognormal's sigma**2 = ln(1 + cv**2)
# The run's expected size (estimated_applications): per replication every application is held
# until its tables are made (~0.7 kB each: 5 M is ~3.5 GB); over all replications at ~15,000 a
# second on one core (500 M is about nine hours, a night); the tables of every replication
# (~0.5 kB a simulated day) are held until the run is written.
MAX_APPLICATIONS = 5_000_000
MAX_TOTAL_APPLICATIONS = 500_000_000
MAX_REPLICATION_DAYS = 10_000_000
MAX_TEXT = 2_000  # output.question, a timeline event's label: shown in the report and figures
# Executor settings (a cluster's job: a year of wall time, a node's cores and memory at most)
MAX_TIMEOUT_MIN = 525_600
MAX_CPUS_PER_TASK = 1_024
MAX_MEM_GB = 4_096.0

# -- files the user points at ------------------------------------------------------------------
MAX_CONFIG_FILE_BYTES = 1_000_000  # a scenario file of a --config-dir
MAX_CONFIG_FILES = 2_000  # YAML files in a --config-dir (hidden folders are skipped)
MAX_CONFIG_NODES = 20_000  # values in a scenario file, aliases expanded (OmegaConf builds each)
MAX_ENSEMBLE_BYTES = 10_000_000  # calibration.ensemble_file
MAX_ENSEMBLE_NODES = 1_000_000
MAX_YAML_DEPTH = 64  # nesting of [ and { : libyaml's time grows with its square


def run_days(p: Config) -> int:
    """Simulated calendar days (end_date inclusive, or horizon_days); dates already checked."""
    if p.end_date is not None:
        return (policies.parse_date(p.end_date) - policies.parse_date(p.start_date)).days + 1
    return int(p.horizon_days)


def estimated_applications(p: Config, regimes: list | None = None) -> dict[str, float]:
    """Expected applications one replication handles, by the setting that drives each part:
    base arrivals of every regime (over calendar days: an upper bound when filings fall on
    working days only), surges, the initial backlog, renewals and extra review rounds. An upper
    estimate, from validated parameters (and their regimes, when already built)."""
    n_days = run_days(p)
    regimes = policies.build_regimes(p) if regimes is None else regimes
    ends = [r.day for r in regimes[1:]] + [n_days]
    arrivals = 0.0
    for regime, end in zip(regimes, ends, strict=True):
        a, c = regime.params.arrivals, regime.params.controls
        rate = ((a.rate_per_day if c.april7 else 0.0)
                + (a.october5_rate_per_day if c.october5 else 0.0)) * a.scale
        arrivals += rate * max(0, min(end, n_days) - regime.day)
    surges = float(sum(s.size for s in p.arrivals.surges))
    backlog = float(p.initial_backlog.count)
    filed = arrivals + surges + backlog
    # a licence renewed with the largest share of any regime, every `gap` days: the k-th
    # renewal only for the filings of the first n_days - k * gap days (filings spread evenly)
    share = max(r.params.licence.renewal_share for r in regimes)
    gap = max(1, min(r.params.licence.term_days - r.params.licence.renewal_lead_days
                     for r in regimes))
    chain, k = 1.0, 1
    while k * gap < n_days and share**k > 1e-9:
        chain += share**k * (1 - k * gap / n_days)
        k += 1
    incomplete = max(r.params.incomplete.probability for r in regimes)
    rounds = 1 / (1 - incomplete)  # a review ending in a request for documents comes back
    return {"arrivals.rate_per_day": arrivals, "arrivals.surges": surges,
            "initial_backlog.count": backlog, "licence.renewal_share": filed * (chain - 1),
            "incomplete.probability": filed * chain * (rounds - 1)}


def size_problem(p: Config, replications: int,
                 regimes: list | None = None) -> tuple[str, float, str] | None:
    """(what, estimate, allowed) when a run of ``replications`` replications is larger than
    this machine finishes; None when it fits."""
    parts = estimated_applications(p, regimes)
    per = sum(parts.values())
    # the two largest parts: renewals and extra rounds multiply the filings, so the setting a
    # user raised may come second to one of them
    first, second = sorted(parts, key=parts.get, reverse=True)[:2]
    top = first if not parts[second] else f"{first} or {second}"
    change = f"lower {top}" + (" or the run's days (horizon_days, end_date)"
                               if "arrivals.rate_per_day" in top else "")
    if not per <= MAX_APPLICATIONS:
        return ("applications per replication", per,
                f"at most {MAX_APPLICATIONS:,} (memory); {change}")
    if not per * replications <= MAX_TOTAL_APPLICATIONS:
        return ("applications over all replications", per * replications,
                f"at most {MAX_TOTAL_APPLICATIONS:,} (about nine hours on one core); lower "
                f"replications or {top}")
    days = run_days(p) * replications
    if days > MAX_REPLICATION_DAYS:
        return ("simulated days over all replications", days,
                f"at most {MAX_REPLICATION_DAYS:,} (every replication's daily tables are held "
                "in memory); lower replications or horizon_days")
    return None


# -- folders and bounded files -----------------------------------------------------------------
_SYSTEM = ("/proc", "/sys", "/dev")  # the kernel's files: a folder there is never the user's


def in_system(text: str) -> bool:
    """Whether the path ``text`` (or where its links lead) is under /proc, /sys or /dev, the
    kernel's files (/dev/shm, a shared-memory folder, is the user's)."""
    path = Path(os.path.abspath(text))
    inside = [str(x) for x in (path, path.resolve()) if not str(x).startswith("/dev/shm/")]
    return any(x == s or x.startswith(s + "/") for x in inside for s in _SYSTEM)


def folder_problem(text: str, written: bool = True) -> str | None:
    """What stops a run from creating or writing the folder ``text``, or None: a shell
    substitution or a control character in it (a shell would read them when the user pastes
    the path), a name over 255 bytes, a place under /proc, /sys or /dev, or (``written``: the
    run writes it) no writable folder to create it in."""
    if not text or any(c in text for c in "$`") or not text.isprintable():
        return "must be a plain folder path (no $, backquote or control characters)"
    if any(len(part.encode()) > 255 for part in Path(text).parts) or len(text) > 4000:
        return "a folder name has at most 255 bytes, a path 4000"
    if in_system(text):
        return "must not be under /proc, /sys or /dev (except /dev/shm)"
    if not written:
        return None
    existing = Path(os.path.abspath(text)).resolve()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot be created: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot be written: {existing} is not writable"
    return None


def read_bounded(path: Path, max_bytes: int) -> tuple[bytes | None, str | None]:
    """(content, None) of a regular file of at most ``max_bytes``; (None, problem) otherwise.
    Never blocks (a FIFO, a device) and never reads more than the bound (/proc files say 0)."""
    try:
        info = os.stat(path)
    except OSError as err:
        return None, f"cannot be read ({err.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return None, "is not a regular file"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        return None, f"cannot be read ({err.strerror})"
    if len(data) > max_bytes:
        return None, f"is larger than {max_bytes:,} bytes"
    return data, None


def yaml_problem(text: str, max_nodes: int) -> str | None:
    """What makes ``text`` a YAML file no one should load (invalid, deep nesting, more than
    ``max_nodes`` values once its aliases are expanded: a billion laughs), or None; an invalid
    file's problem starts with its place, ``:<line>:<column>: ``. Reads the parser's events in
    one pass: nothing is built, nothing is expanded."""
    depth = deepest = 0
    if text.count("[") + text.count("{") > MAX_YAML_DEPTH:  # else it cannot nest deeper
        for ch in text:  # flow nesting first: libyaml's time grows with its square
            if ch in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif ch in "]}":
                depth -= 1
    if deepest > MAX_YAML_DEPTH:
        return f"nests [ or {{ {deepest} deep; at most {MAX_YAML_DEPTH}"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    sizes: dict[str, int] = {}  # an anchor's values, its aliases expanded
    open_: list[tuple[str | None, int]] = []  # (anchor, values before it) of open collections
    values = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_):
                    return f"&{event.anchor} holds itself (a recursive alias)"
                values += sizes.get(event.anchor, 1)
            elif isinstance(event, yaml.ScalarEvent):
                values += 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                open_.append((event.anchor, values))
                values += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, before = open_.pop()
                if anchor:
                    sizes[anchor] = values - before
            if values > max_nodes:
                return (f"holds more than {max_nodes:,} values once its aliases are expanded "
                        "(a YAML bomb?)")
    except yaml.YAMLError as err:
        return _yaml_error(err)
    return None


def load_yaml(path: Path, max_bytes: int, max_nodes: int) -> tuple[Any, str | None]:
    """(content, None) of a YAML file within the bounds, or (None, problem)."""
    data, problem = read_bounded(path, max_bytes)
    if problem is not None:
        return None, problem
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    problem = yaml_problem(text, max_nodes)
    if problem is not None:
        return None, problem
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)), None  # noqa: S506
    except yaml.YAMLError as err:  # a tag no safe loader constructs (!!python/object ...)
        return None, _yaml_error(err)


def _yaml_error(err: yaml.YAMLError) -> str:
    """``:<line>:<column>: <problem> (YAML)``: the place, then what is wrong."""
    mark = getattr(err, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or getattr(err, "reason", None) or "unreadable"
    return f"{where}: {problem} (YAML)"


def ensemble_problem(path: Path) -> str | None:
    """What makes ``path`` not a calibrated ensemble of this project (a YAML mapping whose
    ``members`` is a non-empty list of mappings of dotted settings to values), or None. Read
    once per version of the file: every replication validates its member's parameters."""
    stamp = Path(path).stat()
    return _ensemble_problem(Path(path).resolve(), stamp.st_mtime_ns, stamp.st_size)


@functools.lru_cache(maxsize=8)
def _ensemble_problem(path: Path, mtime_ns: int, size: int) -> str | None:
    content, problem = load_yaml(path, MAX_ENSEMBLE_BYTES, MAX_ENSEMBLE_NODES)
    if problem is not None and problem.startswith(":"):
        return f"is not valid YAML (at line:column {problem[1:]})"
    if problem is not None:
        return problem
    members = content.get("members") if isinstance(content, dict) else None
    if not isinstance(members, list) or not members:
        return "is not an ensemble of this project (a YAML mapping with members: [...])"
    for i, member in enumerate(members):
        if not isinstance(member, dict) or not member:
            return f"members[{i}] is not a mapping of settings to values"
        for key in member:
            if not _is_setting(str(key)):
                return f"members[{i}] sets {str(key)[:80]!r}, which is no setting"
    return None


def _is_setting(key: str) -> bool:
    """Whether the schema has the dotted ``key``, or a free mapping above it (a timeline
    event's date)."""
    from sim import keys

    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        try:
            kind = keys.field_type(".".join(parts[:n]))
        except KeyError:
            continue
        return n == len(parts) or kind is Any
    return False
