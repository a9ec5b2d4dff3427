"""The Hydra applications' side of the glue: the command line checked before Hydra writes
anything, Hydra's and OmegaConf's errors in one line, the running app's folder and command,
the override grammar of sweeps, and the callback that collects a multirun.

Composition itself (ConfigStore, compose, typed parameters) is :mod:`sim.config`; these two
modules and the entry points are the only ones that import Hydra.

The contract for bad input: ``error: <key>=<value>: <what is allowed>`` on one line of stderr,
exit code 2, nothing created or changed on disk. :func:`check_command_line` runs before
``hydra.main`` (which creates the run folder and writes its record), so a refusal leaves
nothing behind; a sweep's every value is checked before any job starts.
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import os
import pickle
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback

from sim.config import CONFIG_DIR, ConfigError, check_overrides, load_config, to_params

# -- the command line ---------------------------------------------------------------------------
# The flags of a Hydra application that change what it does (Hydra's own parser is private).
_MODES = ("--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info", "-i",
          "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn",
          "--experimental-rerun")


def _parser() -> argparse.ArgumentParser:
    """Hydra's command-line flags, so that the overrides are what is left."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flags in (("--multirun", "-m"), ("--help", "-h"), ("--hydra-help",), ("--version",),
                  ("--resolve",), ("--run", "-r"), ("--shell-completion", "-sc")):
        p.add_argument(*flags, action="store_true")
    for flags in (("--config-dir", "-cd"), ("--cfg", "-c"), ("--package", "-p"),
                  ("--config-path", "-cp"), ("--config-name", "-cn"),
                  ("--experimental-rerun",)):
        p.add_argument(*flags)
    p.add_argument("--info", "-i", nargs="?", const="all")
    p.add_argument("overrides", nargs="*")
    return p


def check_command_line(argv: Sequence[str], config_name: str = "config",
                       then: Callable[[Any], None] | None = None) -> None:
    """Refuse a bad command line of ``python -m sim`` (or of a study, ``config_name``) in one
    line: raises :class:`ConfigError`. Each override is checked against the schema, then the
    configuration is composed as the run will compose it (with ``--config-dir``) and validated;
    in a sweep, every value of every swept key. ``then(cfg)`` checks a study's own settings
    on the composed configuration."""
    args, _ = _parser().parse_known_args(list(argv))
    dirs = [args.config_dir] if args.config_dir else []
    overrides = [o for o in args.overrides if o]
    if any(a.split("=", 1)[0] in _MODES for a in argv):  # Hydra prints something, runs nothing
        if config_name == "config":
            check_overrides(overrides, dirs)
        return
    hydra_own = [o for o in overrides if o.lstrip("+~").startswith("hydra")]
    _check_output_folder(hydra_own, args.multirun)
    if args.config_dir:
        path = Path(args.config_dir).resolve()
        if not path.is_dir():
            raise ConfigError("--config-dir", args.config_dir, "no such folder")
        hydra_own = [*hydra_own, f"hydra.searchpath=[file://{path}]"]
    searched = [o for o in hydra_own if "searchpath" in o]
    task = [o for o in overrides if o not in hydra_own]
    points = [task]
    if args.multirun:  # each value of each swept key, with the other keys' first values
        points = _sweep_points(task)
    for point in points:
        cfg = _compose(point, searched, dirs, config_name)
        if config_name == "config":
            to_params(cfg)
        if then is not None:
            then(cfg)


def guard(argv: Sequence[str], config_name: str = "config",
          then: Callable[[Any], None] | None = None) -> None:
    """:func:`check_command_line`; a refusal prints its one line and exits with code 2."""
    try:
        check_command_line(argv, config_name, then)
    except ValueError as err:  # ConfigError, a study's TargetsError or SettingsError: one line
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # anything else composing raised
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)


def _sweep_points(task: list[str]) -> list[list[str]]:
    """One point per swept value (the others at their first value), not every combination:
    a value that is wrong is wrong alone."""
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(task)
    first = {}
    values: list[tuple[int, list[str]]] = []
    for i, o in enumerate(parsed):
        key = o.get_key_element()
        if o.is_sweep_override() and o.is_discrete_sweep():
            options = [f"{key}={v}" for v in o.sweep_string_iterator()]
            values.append((i, options))
            first[i] = options[0]
        elif o.is_sweep_override():
            first[i] = None  # an interval: drawn by a sweeper plugin, nothing to check here
        else:
            first[i] = task[i]
    base = [first[i] for i in range(len(task))]
    points = [[o for o in base if o is not None]]
    for i, options in values:
        for option in options[1:]:
            point = list(base)
            point[i] = option
            points.append([o for o in point if o is not None])
    return points


def _compose(overrides: list[str], searched: list[str], dirs: list[str], config_name: str):
    parser = OverridesParser.create()
    for text in overrides:  # the grammar first, for every application
        try:
            parser.parse_override(text)
        except HydraException as err:
            key, _, value = text.partition("=")
            raise ConfigError(key.lstrip("+~"), value, "cannot be read ("
                              f"{str(err).splitlines()[0]}); quote a value holding '=', "
                              "e.g. '[\"officials.count=8\"]'") from None
    try:
        if config_name == "config":
            check_overrides(overrides, dirs)
        return load_config([*searched, *overrides], config_name=config_name)
    except ConfigError:
        raise
    except Exception as err:  # Hydra's, OmegaConf's or YAML's own error: one line
        raise one_line(err, overrides) from None


def _check_output_folder(hydra_own: list[str], multirun: bool) -> None:
    """The folder a run or sweep will write must be creatable: one line, not a traceback."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [o.split("=", 1)[1] for o in hydra_own if o.lstrip("+").startswith(key + "=")]
    folder = Path(given[-1]) if given else Path("outputs")
    if "${" in str(folder):
        return  # resolved by Hydra
    existing = folder.resolve()
    while not existing.exists():  # the deepest folder that exists: the rest gets created
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(key, str(folder), f"cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, str(folder), f"cannot be written: {existing} is not writable")


# -- Hydra's, OmegaConf's and YAML's errors as one line -----------------------------------------
def one_line(err: Exception, overrides: Sequence[str] = ()) -> ConfigError:
    """The one-line form of an error raised while composing a configuration: the override (or
    file, line and column) it comes from, and what is allowed."""
    import yaml

    mark = getattr(err, "problem_mark", None)
    if isinstance(err, yaml.YAMLError) and mark is not None:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        return ConfigError(f"{mark.name}:{mark.line + 1}:{mark.column + 1}",
                           ConfigError.NO_VALUE, f"{problem} (YAML)")
    text = str(err)
    inner = err.__cause__ if getattr(err.__cause__, "full_key", None) is not None else err
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    where = re.match(r"In '([^']+)': \w+ raised while composing config:", lines[0]) \
        if lines else None
    detail = lines[1] if where and len(lines) > 1 else (lines[0] if lines else type(err).__name__)
    full_key = getattr(inner, "full_key", None) or next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), None)
    reference = next((line.split("=", 1)[1] for line in lines
                      if line.startswith("reference_type=")), "")
    reason = _reason(detail, full_key or "", reference)
    inside = f" (in {where.group(1)})" if where else ""
    if reason.startswith("no such") and where and where.group(1).startswith("scenario/") \
            and "." not in (full_key or "."):
        reason += "; does the file start with '# @package _global_'?"
    for override in overrides:  # the override it comes from, as the user typed it
        key, _, value = override.lstrip("+~").partition("=")
        if f"'{key}'" in text or f"override {override.lstrip('+~')}" in text \
                or (full_key and (full_key == key or full_key.startswith(key + "."))):
            return ConfigError(full_key if full_key and full_key.startswith(key) else key,
                               value, reason)
    value = re.match(r"Value '([^']*)'", detail)
    return ConfigError(full_key or "config", value.group(1) if value else ConfigError.NO_VALUE,
                       reason + inside)


_REASONS = (("could not be converted to Integer", "must be an integer"),
            ("could not be converted to Float", "must be a number"),
            ("is not a valid bool", "must be true or false"),
            ("could not be converted to Boolean", "must be true or false"),
            ("is not a ListConfig", "must be a list [...]"),
            ("is not a DictConfig", "must be a mapping {key: value}"),
            ("is not a subclass of", "must be a mapping {key: value}"))


def _reason(detail: str, full_key: str, reference: str) -> str:
    """What is allowed, in the project's words, for an OmegaConf message."""
    import dataclasses

    from sim import params

    for pattern, reason in _REASONS:
        if pattern in detail:
            return reason
    missing = re.search(r"Could not find '([^'/]+)/([^']+)'", detail)
    if missing:
        group = missing.group(1)
        available = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        return f"no such {group}; available: {', '.join(available)}"
    options = re.search(r"expected one of \[([^\]]*)\]", detail)
    if options:
        return f"must be one of {options.group(1)}"
    if re.match(r"Key '[^']+' (is )?not in", detail):
        if full_key.startswith("timeline."):
            return ("no such timeline event (add one with +timeline.<name>={date: ..., "
                    "label: ..., changes: {...}})")
        if "destination_shares" in full_key or "trusted_share" in full_key:
            return f"no such destination; allowed: {', '.join(params.DESTINATIONS)}"
        kind = getattr(params, reference.split("[")[0], None)
        if dataclasses.is_dataclass(kind):
            return f"no such key; allowed: {', '.join(f.name for f in dataclasses.fields(kind))}"
        return "no such setting"
    return detail


# -- a running application ---------------------------------------------------------------------
def app_run(program: str) -> tuple[Path, str]:
    """The running Hydra application's output folder, and its command line as the user typed
    it (``program`` and the overrides), for a study's report."""
    import shlex

    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    command = " ".join([program, *map(shlex.quote, hc.overrides.task)])
    return Path(hc.runtime.output_dir), command


def log_line(msg: str) -> None:
    """A study's progress line, on stderr, in one write: ``print`` writes the text and the
    line end apart, and unbuffered (PYTHONUNBUFFERED) the lines of sweep jobs ending together
    in several processes could interleave; one short write to a pipe is atomic."""
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()




# -- sweeps: Hydra's override grammar, and the callback that collects a multirun ----------------
def override_value(text: str) -> Any:
    """The typed value of one ``key=value`` override, as Hydra reads it (text if unreadable)."""
    try:
        return OverridesParser.create().parse_override(text).value()
    except Exception:  # an odd string: keep it as text
        return text.split("=", 1)[1] if "=" in text else text


def expand_sweep(arguments: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """The points (override lists, in job order) of a sweep's overrides and its swept keys, as
    Hydra's basic sweeper expands them: the product of the values, the last key fastest; a key
    given twice keeps its first place and its last values."""
    overrides = OverridesParser.create().parse_overrides(list(arguments))
    swept: list[str] = []
    values: dict[str, list[str]] = {}
    for o in overrides:
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise ValueError(f"{key}: an interval sweep needs a sweeper that samples it")
            values[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
            if o.key_or_group not in swept:
                swept.append(o.key_or_group)
        else:
            values[key] = [f"{key}={o.get_value_element_as_str()}"]
    return [list(p) for p in itertools.product(*values.values())], swept


class CollectCallback(Callback):
    """Hydra callback: collect the sweep folder when a multirun ends.

    Hydra calls ``on_multirun_end`` only when every job succeeded; when a job fails (Hydra then
    exits with an error) or the sweep is interrupted, the collection runs at interpreter exit
    instead, so the table still lists every job. Registered in ``configs/config.yaml``
    (``hydra.callbacks.collect``); options: ``figure`` (of the heat map), ``keys`` (its two
    swept keys; null: the first two), ``plots``, ``enabled``.
    """

    def __init__(self, figure: str = "peak_pending", keys: Sequence[str] | None = None,
                 plots: bool = True, enabled: bool = True) -> None:
        self.figure = figure
        self.keys = list(keys) if keys else None
        self.plots = plots
        self.enabled = enabled
        self._folder: str | None = None

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        if not self.enabled:
            return
        self._folder = str(config.hydra.sweep.dir)
        atexit.register(self._at_exit)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        if self._folder is None:
            return
        atexit.unregister(self._at_exit)
        self._collect()

    def on_job_end(self, config, job_return, **kwargs: Any) -> None:
        """Make a failed job's exception picklable before a launcher sends it back.

        joblib and submitit return each job's result by pickle; an exception that cannot be
        unpickled (one whose ``__init__`` takes other arguments than its message) breaks
        joblib's process pool and loses the sweep's other jobs. Such an exception is replaced
        by a RuntimeError with the same text (the job's error.txt keeps the original).
        """
        error = getattr(job_return, "_return_value", None)
        if not isinstance(error, BaseException):
            return
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:  # whatever stops the round trip
            job_return.return_value = RuntimeError(f"{type(error).__name__}: {error}")

    def _at_exit(self) -> None:
        if self._folder is not None and Path(self._folder).is_dir():
            print("collecting the sweep that stopped early:", file=sys.stderr)
            self._collect()

    def _collect(self) -> None:
        """``python -m sim.collect`` on the folder, in its own process: the glue imports no
        study, and a process started at interpreter exit still imports what it needs."""
        folder, self._folder = self._folder, None
        if not (Path(folder) / "multirun.yaml").is_file():  # a sweeper of its own (optuna)
            print(f"{folder}: the sweeper wrote no multirun.yaml (optuna: see "
                  "optimization_results.yaml); each job folder has its report.html",
                  file=sys.stderr)
            return
        args = [sys.executable, "-m", "sim.collect", folder, "--figure", self.figure]
        args += ["--keys", *self.keys] if self.keys else []
        args += [] if self.plots else ["--no-plots"]
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            done = subprocess.run(args, check=False)
        except OSError as err:  # the collection must never hide the sweep's own outcome
            done = None
            print(f"sweep collection failed: {err}", file=sys.stderr)
        if done is not None and done.returncode not in (0, 1):  # 1: some job failed or missing
            print(f"sweep collection failed; run: python -m sim.collect {folder}",
                  file=sys.stderr)

    def __getstate__(self) -> dict[str, Any]:  # pickled to joblib/submitit workers
        return {**self.__dict__, "_folder": None}


class ProgressCallback(Callback):
    """Hydra callback: one line on stderr as each job of a multirun ends, e.g.
    ``sweep: 2 of 6 jobs done (officials.count=5, green_channel.mode=off): ok``.

    The total is the number of jobs the sweep plans (Hydra's basic sweeper: every combination
    of the swept values; unknown under another sweeper). Jobs skipped by ``resume=true``
    count (``skipped``), failed ones too (``failed: <error>``). Under joblib each job ends in a
    worker process with its own copy of this callback, so the jobs done are counted in a small
    file in the temporary folder (never in the sweep folder); a job that cannot open it (a
    cluster node) prints ``?`` for the count, as does a sweep of unknown size for the total.
    Registered in ``configs/config.yaml`` (``hydra.callbacks.progress``); option: ``enabled``.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._total: int | None = None
        self._swept: list[str] = []
        self._counter: str | None = None  # the file counting the jobs done: one byte each
        self._skipping = False

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from omegaconf import OmegaConf

        sweeper = config.hydra.get("sweeper") or {}
        if "BasicSweeper" in str(sweeper.get("_target_", "BasicSweeper")):
            params = sweeper.get("params") or {}
            task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
            try:  # the planned jobs, as the basic sweeper expands them
                points, self._swept = expand_sweep([f"{k}={v}" for k, v in params.items()]
                                                   + list(task))
                self._total = len(points)
            except Exception:  # an interval or a form only another sweeper reads: no total
                self._total = None
        try:
            fd, self._counter = tempfile.mkstemp(prefix="sim-sweep-", suffix=".progress")
            os.close(fd)
        except OSError:
            self._counter = None
        atexit.register(self._remove_counter)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        atexit.unregister(self._remove_counter)
        self._remove_counter()

    def on_job_start(self, config, **kwargs: Any) -> None:
        """Note whether ``resume=true`` will skip this job (its folder is already complete)."""
        self._skipping = False
        if self._counter is not None and config.get("resume"):
            from sim.outputs import is_complete

            self._skipping = is_complete(Path(config.hydra.runtime.output_dir))

    def on_job_end(self, config, job_return, **kwargs: Any) -> None:
        if self._counter is None:  # a single run, or disabled
            return
        from hydra.core.utils import JobStatus

        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the property would raise it again
            text = str(error).strip().splitlines()
            status = f"failed: {text[0] if text else type(error).__name__}"
        else:
            status = "skipped (resume)" if self._skipping else "ok"
        overrides = list(job_return.overrides or [])
        shown = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in self._swept]
        point = ", ".join(shown or overrides) or "defaults"
        done, total = self._count(), self._total
        log_line(f"sweep: {'?' if done is None else done} of {'?' if total is None else total} "
                 f"jobs done ({point}): {status}")

    def _count(self) -> int | None:
        """One more job done: the count so far, under a lock (jobs end in several processes at
        once); None where the file is not there (a job on another machine)."""
        try:
            import fcntl
        except ImportError:  # Windows: no lock; two jobs ending together may share a number
            fcntl = None
        try:
            fd = os.open(self._counter, os.O_WRONLY | os.O_APPEND)  # never created here
        except OSError:
            return None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, b".")
            return os.fstat(fd).st_size
        except OSError:
            return None
        finally:
            os.close(fd)  # releases the lock

    def _remove_counter(self) -> None:
        if self._counter is not None:
            Path(self._counter).unlink(missing_ok=True)
            self._counter = None


# -- the output folder: checked, fixed and held before Hydra writes into it --------------------
def pin_output_folder(argv: Sequence[str], composed: Any = None, config_name: str = "config",
                      tool: str | None = None) -> list[str]:
    """Check the folder a run (``hydra.run.dir``) or sweep (``hydra.sweep.dir``) will write and
    hold its lock for this process (:func:`sim.run_folder.claim`: a folder holding files this
    project did not write, another tool's folder, or one another process is writing is refused
    in one line). Its interpolations (``${now:...}``, ``${name}``: ``composed`` is the guard's
    composed configuration) are resolved once here, and the resolved folder is given to Hydra,
    so that the folder checked is the folder written. Returns the command line to run. Raises
    :class:`ConfigError` (``FolderError``)."""
    from omegaconf import OmegaConf

    from sim import run_folder

    argv = list(argv)
    args, _ = _parser().parse_known_args(argv)
    if any(a.split("=", 1)[0] in _MODES for a in argv):  # Hydra prints something, writes nothing
        return argv
    key = "hydra.sweep.dir" if args.multirun else "hydra.run.dir"
    given = [i for i, a in enumerate(argv) if a.lstrip("+").startswith(key + "=")]
    if given:
        text = str(OverridesParser.create().parse_override(argv[given[-1]]).value())
    else:
        primary = OmegaConf.load(CONFIG_DIR / f"{config_name}.yaml")
        text = str(OmegaConf.select(primary, key, throw_on_resolution_failure=False) or "")
    if not text:
        return argv
    if "${" in text:
        values = OmegaConf.to_container(composed, resolve=False) if composed is not None else {}
        try:  # Hydra's resolvers are registered by the guard's compose
            folder = str(OmegaConf.create({**values, "_folder_": text})["_folder_"])
        except Exception:  # noqa: BLE001 (${hydra:...} and the like: the job claims it)
            return argv
        argv = [*[a for i, a in enumerate(argv) if i not in given],
                f"{key}={_quoted_value(folder)}"]
    else:
        folder = text
    run_folder.claim(Path(folder), tool or ("sweep" if args.multirun else "run"), key)
    return argv


def _quoted_value(text: str) -> str:
    """``text`` as a value of Hydra's override grammar."""
    if re.fullmatch(r"[\w./:@%+-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
