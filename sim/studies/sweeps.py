"""Scenario sweeps read back: every job of a Hydra multirun folder, its status and figures.

A sweep (``python -m sim -m key=a,b other=x,y``) writes one folder per point under its sweep
folder. :func:`collect` reads them all and writes, next to them:

- ``sweep_summary.csv``: one row per job of the sweep: each swept key as a column, each
  headline figure with its 95 % confidence interval (``<figure>_low``, ``<figure>_high``),
  the job's status (``ok``, ``failed``, ``missing``), a message and its folder;
- ``sweep_backlog.png``: the backlog-clearance curves of all jobs on one set of axes;
- ``sweep_heatmap_<figure>.png``: a chosen figure over two swept keys (or, with one
  swept key, ``sweep_<figure>.png``: the figure against that key with its interval).

The jobs a sweep should have are read back from its ``multirun.yaml`` (Hydra's own expansion of
the sweep), so jobs that never started are listed as missing, not dropped; folders are matched
to points by their overrides, never by job number. :mod:`sim.studies.sweep_collect` writes
the table and plots; :class:`sim.command_line.CollectCallback` runs it at the end of a
multirun (also when a job failed or the sweep was interrupted); ``python -m sim.collect DIR``
on demand.

Override strings are read with Hydra's own grammar, through the glue (:mod:`sim.command_line`).
pandas is imported when a table is made.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.command_line import expand_sweep, override_value
from sim.files import read_yaml
from sim.keys import lookup
from sim.stats import within_range

SUMMARY_FILE = "sweep_summary.csv"
BACKLOG_STEM = "sweep_backlog"
STATUSES = ("ok", "failed", "missing")
# Headline figures of summary.json (dotted keys) put in the table, each with its 95 % CI.
FIGURES = (
    "peak_pending",
    "pending_end",
    "mean_wait_days",
    "p90_wait_days",
    "mean_wait_days_with_waiting",
    "waiting_end",
    "held_end",
    "mean_time_to_decision_days",
    "utilisation",
    "share_decided_late",
    "past_statutory_limit_end",
    "clearance.days_peak_to_clearance",
    "clearance.days_event_to_clearance",
    "clearance.cohort_days_to_clear_90pct",
    "totals.arrivals",
    "totals.approved",
)
# Figures without an interval (dates, counts of replications).
EXTRA_FIGURES = ("peak_pending_date", "clearance.clearance_date",
                 "clearance.cleared_in_replications")
# Overrides that do not change a job's results (and are left out of its folder name).
DEFAULT_EXCLUDE = ("resume", "jobs")
DEFAULT_FIGURE = "peak_pending"
# A failed job's message naming an executor or launcher setting refused where the jobs run
# (sim.executor.refusal): "error: ExecutorError: executor.partition=nosuch: ..."
_REFUSED = re.compile(r"^(?:error: )?(?:\w+: )?((?:executor|hydra\.launcher)\.\w+)=")


@dataclass
class Job:
    """One point of a sweep and what its folder holds."""

    overrides: tuple[str, ...]  # the point's overrides, without keys that do not change results
    values: dict[str, Any]  # swept key -> value
    index: int | None  # position in the sweep's list of points (None: not in the list)
    folder: Path | None  # None: the job never started
    status: str  # ok | failed | missing
    message: str = ""
    summary: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={format_value(v)}" for k, v in self.values.items()) or "(no keys)"


@dataclass
class Sweep:
    """A sweep folder read back: its swept keys, their values, and every job."""

    folder: Path
    keys: list[str]
    levels: dict[str, list[Any]]  # values of each swept key, in the sweep's order
    jobs: list[Job]
    figures: tuple[str, ...] = FIGURES
    command: list[str] | None = None  # the sweep's command line (from multirun.yaml)
    notes: list[str] = field(default_factory=list)

    def with_status(self, status: str) -> list[Job]:
        return [j for j in self.jobs if j.status == status]

    @property
    def ok(self) -> list[Job]:
        return self.with_status("ok")

    @property
    def failed(self) -> list[Job]:
        return self.with_status("failed")

    @property
    def missing(self) -> list[Job]:
        return self.with_status("missing")

    @property
    def complete(self) -> bool:
        """Every job of the sweep finished (folders of other sweeps into the folder aside)."""
        return all(j.status == "ok" for j in self.jobs if j.index is not None)

    def table(self):
        """The summary table (pandas DataFrame), one row per job."""
        return summary_table(self)

    def refused(self) -> list[str]:
        """The overrides of this sweep's command that its failed jobs name as refused where
        they run: an executor or launcher setting (``executor.partition=nosuch: the cluster
        refused ...``). Such a setting changes no result, so a resume may leave it out."""
        given = {_key(a): a for a in self.command or []}
        found = []
        for job in self.failed:
            match = _REFUSED.match(job.message)
            key = match.group(1) if match else None
            if key in given and key not in self.keys and given[key] not in found:
                found.append(given[key])
        return found

    def resume_command(self) -> str | None:
        """The command that re-runs the unfinished jobs of this sweep into the same folder,
        without the settings its failed jobs name as refused (:meth:`refused`): repeated, they
        would fail again."""
        if self.command is None:
            return None
        refused = self.refused()
        args = [a for a in self.command if not a.startswith(("resume=", "hydra.sweep.dir="))
                and a not in refused]
        args += ["resume=true", f"hydra.sweep.dir={self.folder}"]
        return " ".join(["python -m sim -m", *map(shlex.quote, args)])


# -- reading a sweep folder -----------------------------------------------------------------------
def _key(override: str) -> str:
    """The key of ``key=value`` (without +, ++, ~ prefixes and @package)."""
    return override.split("=", 1)[0].lstrip("~+").split("@", 1)[0]


def _kept(overrides: Sequence[str], exclude: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(o for o in overrides if _key(o) not in exclude))


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class _Values:
    """Typed values of override strings (Hydra's own grammar, cached per string)."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __call__(self, override: str) -> Any:
        if override not in self._cache:
            self._cache[override] = override_value(override)
        return self._cache[override]


def planned_points(folder: Path) -> tuple[list[list[str]] | None, list[str], dict[str, Any]]:
    """The points a sweep should run, its swept keys, and facts from its ``multirun.yaml``.

    Points are Hydra's own expansion (BasicSweeper) of the sweep's overrides, in job order.
    Returns ``(None, [], info)`` when the folder has no multirun.yaml or another sweeper ran it.
    """
    info: dict[str, Any] = {"exclude": list(DEFAULT_EXCLUDE), "command": None}
    path = Path(folder) / "multirun.yaml"
    if not path.is_file():
        return None, [], info
    cfg = _yaml_mapping(path, "multirun.yaml")
    hydra = cfg.get("hydra", {}) or {}
    if not isinstance(hydra, dict) or not isinstance(hydra.get("overrides", {}) or {}, dict) \
            or not isinstance(hydra.get("sweeper", {}) or {}, dict):
        raise ValueError(f"folder={str(folder)!r}: multirun.yaml is not Hydra's record of a "
                         "sweep (its hydra, hydra.overrides and hydra.sweeper are mappings)")
    exclude = lookup(hydra, "job.config.override_dirname.exclude_keys")
    if exclude is not None:
        info["exclude"] = [str(k) for k in exclude]
    task = [str(o) for o in lookup(hydra, "overrides.task") or []]
    hydra_overrides = [str(o) for o in lookup(hydra, "overrides.hydra") or []]
    info["command"] = task + [o for o in hydra_overrides
                              if not o.startswith(("hydra.mode=", "hydra.sweep.dir=",
                                                   "hydra.sweeper.max_batch_size="))]
    sweeper = hydra.get("sweeper", {}) or {}
    if "BasicSweeper" not in str(sweeper.get("_target_", "BasicSweeper")):
        return None, [], info
    params = sweeper.get("params") or {}
    try:
        points, keys = expand_points([f"{k}={v}" for k, v in dict(params).items()] + task)
    except Exception as err:  # noqa: BLE001 (Hydra's grammar refused a damaged record)
        first = str(err).strip().splitlines()
        raise ValueError(f"folder={str(folder)!r}: multirun.yaml's overrides cannot be read "
                         f"({first[0] if first else type(err).__name__})") from None
    return points, [k for k in keys if k not in info["exclude"]], info


def expand_points(arguments: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """The points (override lists, in job order) of a sweep's overrides, and its swept keys,
    as Hydra's basic sweeper expands them (``a=1,2 b=x,y`` gives four points)."""
    return expand_sweep(arguments)


def job_folders(folder: Path) -> list[Path]:
    """Folders of started jobs (Hydra's record ``.hydra/overrides.yaml``, or, for a job that
    never completed, the record of its attempt in ``.staging/.hydra/``), submitit logs left
    out."""
    folder = Path(folder)
    found = set()
    for path in folder.rglob("overrides.yaml"):
        if path.parent.name != ".hydra":
            continue
        job = path.parent.parent
        if job.name == ".staging":
            job = job.parent
        if ".submitit" in job.relative_to(folder).parts:
            continue
        found.add(job)
    return sorted(found)


def job_overrides(job: Path) -> list[str]:
    """A job's overrides, from Hydra's record of its result or of its last attempt."""
    for record in (job / ".hydra", job / ".staging" / ".hydra"):
        if (record / "overrides.yaml").is_file():
            overrides = _yaml_value(record / "overrides.yaml")
            return [str(o) for o in overrides] if isinstance(overrides, list) else []
    return []


def _yaml_value(path: Path) -> Any:
    """A YAML file's content; None when it cannot be read (damaged, not YAML)."""
    import yaml

    try:
        return read_yaml(path)
    except (OSError, UnicodeError, yaml.YAMLError):
        return None


def _yaml_mapping(path: Path, name: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping; ValueError (one line) otherwise."""
    import yaml

    try:
        data = read_yaml(path)
    except (OSError, UnicodeError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"folder={str(path.parent)!r}: {name} cannot be read "
                         f"({first[0] if first else type(err).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"folder={str(path.parent)!r}: {name} is not Hydra's record of a "
                         f"sweep (a mapping expected, found {type(data).__name__})")
    return data


def job_status(folder: Path) -> tuple[str, str, dict[str, Any] | None]:
    """(status, message, summary) of a started job's folder."""
    summary_path, error_path = folder / "summary.json", folder / "error.txt"
    summary = None
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        summary = None
    if summary is not None and not isinstance(summary, dict):  # damaged: not a run's summary
        return "failed", "summary.json is not a run's summary (damaged)", None
    error = error_path.read_text().strip() if error_path.is_file() else None
    if summary is not None and (error is None or error_path.stat().st_mtime
                                < summary_path.stat().st_mtime):
        return "ok", "", summary
    if error is not None:
        return "failed", error.splitlines()[0] if error else "failed (empty error.txt)", None
    return "missing", "started, no complete summary.json (interrupted, killed or running)", None


def load_sweep(folder: str | Path, figures: Sequence[str] = FIGURES) -> Sweep:
    """Read a sweep folder: every planned job (ok, failed or missing) and any other job folder.

    Raises FileNotFoundError when the folder is not a sweep folder: Hydra writes multirun.yaml
    into every sweep's folder, whichever sweeper ran it (a folder of single runs, such as
    outputs/runs, has none, and nothing is written into it).
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"folder={str(folder)!r}: no such folder")
    if not (folder / "multirun.yaml").is_file():
        raise FileNotFoundError(f"folder={str(folder)!r}: not a sweep folder (no multirun.yaml; "
                                "give the folder of a `python -m sim -m ...` sweep)")
    points, keys, info = planned_points(folder)
    exclude = info["exclude"]
    found = job_folders(folder)
    by_overrides: dict[tuple[str, ...], Path] = {}
    for job in found:
        by_overrides.setdefault(_kept(job_overrides(job), exclude), job)
    values_of = _Values()
    notes = []
    if points is None:
        notes.append("no multirun.yaml from Hydra's basic sweeper: listed the job folders found;"
                     " jobs that never started cannot be listed")
        points = [list(k) for k in by_overrides]
        keys = _varying_keys(points)
    jobs: list[Job] = []
    planned = set()
    for index, point in enumerate(points):
        kept = _kept(point, exclude)
        planned.add(kept)
        jobs.append(_job(kept, keys, values_of, index, by_overrides.get(kept)))
    for kept, job_dir in by_overrides.items():
        if kept not in planned:
            jobs.append(_job(kept, keys, values_of, None, job_dir))
            notes.append(f"{job_dir.relative_to(folder)}: not a point of this sweep "
                         "(from an earlier sweep into the same folder?)")
    levels: dict[str, list[Any]] = {k: [] for k in keys}
    for job in jobs:
        for k in keys:
            v = job.values.get(k)
            if v not in levels[k]:
                levels[k].append(v)
    return Sweep(folder, keys, levels, jobs, tuple(figures), info["command"], notes)


def _varying_keys(points: list[list[str]]) -> list[str]:
    """Keys whose value differs between points (when there is no multirun.yaml)."""
    seen: dict[str, set[str]] = {}  # insertion-ordered: keys in order of appearance
    for point in points:
        for o in point:
            seen.setdefault(_key(o), set()).add(o)
    return [k for k, values in seen.items() if len(values) > 1]


def _job(kept: tuple[str, ...], keys: list[str], values_of: _Values, index: int | None,
         folder: Path | None) -> Job:
    by_key = {_key(o): o for o in kept}
    values = {k: values_of(by_key[k]) if k in by_key else None for k in keys}
    if folder is None:
        return Job(kept, values, index, None, "missing", "not started")
    status, message, summary = job_status(folder)
    return Job(kept, values, index, folder, status, message, summary)


# -- the table ------------------------------------------------------------------------------------
def _has(d: dict[str, Any] | None, dotted: str) -> bool:
    *path, last = dotted.split(".")
    for part in path:
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return isinstance(d, dict) and last in d


def figure_of(summary: dict[str, Any] | None, figure: str) -> float:
    """A job's figure (dotted key of its summary.json) as a number; NaN when undefined."""
    return _num(lookup(summary, figure))


def _num(value: Any) -> float:
    """A table number: undefined (None) and text become NaN."""
    if value is None or isinstance(value, str):
        return math.nan
    return float(value)


def summary_table(sweep: Sweep):
    """One row per job: job, swept keys, status, replications, figures with CI, message, folder.

    A figure is a column when at least one finished job has it in its summary.json.
    """
    import pandas as pd

    ok = [j.summary for j in sweep.ok]
    figures = [f for f in sweep.figures if any(_has(s, f) for s in ok)]
    extras = [f for f in EXTRA_FIGURES if any(_has(s, f) for s in ok)]
    rows = []
    for job in sweep.jobs:
        s = job.summary
        row: dict[str, Any] = {"job": job.index}
        row.update({k: job.values.get(k) for k in sweep.keys})
        row["status"] = job.status
        row["replications"] = s.get("replications", 1) if s else None
        ci = (s or {}).get("ci95", {}) or {}
        for f in figures:
            low, high = (ci.get(f) or [None, None])[:2]
            row[f] = _num(lookup(s, f))
            # cut to the figure's range, as every table is (sim.stats.within_range)
            row[f"{f}_low"] = within_range(_num(low), f)
            row[f"{f}_high"] = within_range(_num(high), f)
        for f in extras:
            row[f] = lookup(s, f)
        row["message"] = job.message
        row["folder"] = job.folder.relative_to(sweep.folder).as_posix() if job.folder else ""
        rows.append(row)
    columns = ["job", *sweep.keys, "status", "replications",
               *[c for f in figures for c in (f, f"{f}_low", f"{f}_high")], *extras,
               "message", "folder"]
    table = pd.DataFrame(rows, columns=columns)
    table["job"] = table["job"].astype("Int64")
    table["replications"] = table["replications"].astype("Int64")
    return table


# -- a text report ------------------------------------------------------------------------------
def report_lines(sweep: Sweep) -> list[str]:
    """A short text report: counts, then every failed and missing job with its reason."""
    counts = ", ".join(f"{len(sweep.with_status(s))} {s}" for s in STATUSES)
    lines = [f"sweep {sweep.folder}: {len(sweep.jobs)} jobs ({counts})"]
    for job in sweep.jobs:
        if job.status != "ok":
            where = f" [{job.folder.relative_to(sweep.folder)}]" if job.folder else ""
            lines.append(f"  {job.status:7} job {job.index if job.index is not None else '-'}: "
                         f"{job.label}: {job.message}{where}")
    lines += [f"  note: {n}" for n in sweep.notes]
    if not sweep.complete and sweep.resume_command():
        refused = sweep.refused()
        without = (f" (without {', '.join(refused)}, refused where the jobs run: the default "
                   "or the site's configs/local/ settings apply; give another value to choose)"
                   if refused else "")
        lines.append(f"  re-run the unfinished jobs{without}: {sweep.resume_command()}")
    return lines


# -- running a sweep from Python (notebooks, tests, benchmarks) ---------------------------------
def sweep_command(overrides: Sequence[str], folder: str | Path) -> list[str]:
    """``python -m sim -m <overrides> hydra.sweep.dir=<folder>`` as an argument list."""
    return [sys.executable, "-m", "sim", "-m", *overrides, f"hydra.sweep.dir={folder}"]


def run_sweep(overrides: Sequence[str], folder: str | Path, cwd: str | Path | None = None,
              timeout: float | None = None, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    """Run a sweep in a subprocess, exactly as on the command line; output captured."""
    env = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    folder = Path(folder).resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run(sweep_command(overrides, folder), cwd=cwd or folder.parent, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
