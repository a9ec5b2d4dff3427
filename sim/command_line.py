"""The Hydra applications' side of the glue: the command line checked before Hydra writes
anything (Hydra's flags, a --config-dir's files, output folders and errors in one line:
:mod:`sim.hydra_flags`; a sweep's jobs: :mod:`sim.sweep_check`), the running app's folder and
command, the override grammar of sweeps, and the callback that collects a multirun.

Composition itself (ConfigStore, compose, typed parameters) is :mod:`sim.config`; these
modules and the entry points are the only ones that import Hydra.

The contract for bad input: ``error: <key>=<value>: <what is allowed>`` on one line of stderr,
exit code 2, nothing created or changed on disk. :func:`check_command_line` runs before
``hydra.main`` (which creates the run folder and writes its record), so a refusal leaves
nothing behind; a sweep's jobs are checked before any starts.
"""

from __future__ import annotations

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
from omegaconf import OmegaConf

from sim import config, hydra_flags, objective, sweep_check
from sim.config import CONFIG_DIR, ConfigError, check_overrides
from sim.hydra_flags import one_line
from sim.validation import check_here, validate

# -- the command line ---------------------------------------------------------------------------
# Hydra's flags (parsed and checked in sim.hydra_flags; these names for pin_output_folder)
_MODES = hydra_flags.MODES
_parser = hydra_flags.parser


def check_command_line(argv: Sequence[str], config_name: str = "config",
                       then: Callable[[Any], None] | None = None) -> None:
    """Refuse a bad command line of ``python -m sim`` (or of a study, ``config_name``) in one
    line: raises :class:`ConfigError`. Hydra's flags, a ``--config-dir``'s files and each
    override are checked first (:mod:`sim.hydra_flags`, :func:`sim.config.check_overrides`),
    then the configuration is composed as the run will compose it and validated, with the
    folders it writes; in a sweep, its jobs by the rule of :mod:`sim.sweep_check`, with the
    values of ``hydra.sweeper.params``. ``then(cfg)`` checks a study's own settings on the
    composed configuration (of each job composed, in a sweep)."""
    args = hydra_flags.parse(argv, config_name)
    dirs = [args.config_dir] if args.config_dir else []
    overrides = [o for o in args.overrides if o]
    hydra_own = [o for o in overrides if o.lstrip("+~").startswith("hydra")]
    task = [o for o in overrides if o not in hydra_own]
    _check_grammar(overrides)
    swept, intervals = sweep_check.plan(task, dirs)  # sizes bounded before any value is listed
    if args.shell_completion or args.help or args.hydra_help or args.version:
        return  # Hydra prints its help or a completion script, and composes nothing
    if config_name == "config":
        check_overrides(overrides, dirs)
    searched = [o for o in hydra_own if "searchpath" in o]
    if args.config_dir:
        searched.append(f"hydra.searchpath=[file://{Path(args.config_dir).resolve()}]")
    extra = [*[o for o in hydra_own if o not in searched], *searched]
    composed: dict[tuple[str, ...], tuple[Any, dict]] = {}

    def compose(point: list[str]) -> tuple[Any, dict]:
        if tuple(point) not in composed:
            composed[tuple(point)] = _compose([*point, *extra], args.config_name)
        return composed[tuple(point)]

    here: set[tuple[str, str]] = set()  # the executors checked on this machine already

    def check_job(cfg: Any, params: Any) -> None:
        if params is not None:
            validate(params)
            objective.check(params)
            if (str(params.executor.kind), str(params.executor.folder)) not in here:
                check_here(params)
                here.add((str(params.executor.kind), str(params.executor.folder)))
        elif then is not None:
            then(cfg)

    typed_keys = args.config_name == "config"

    def compose_job(point: list[str]) -> tuple[Any, Any]:
        cfg, _ = compose(point)
        return cfg, (_typed(cfg, point) if typed_keys else None)

    sweeping = bool(intervals) or any(len(k.texts) > 1 for k in swept)
    first = [k.texts[0] for k in swept] if args.multirun or sweeping else task
    cfg, hydra = compose(first)  # Hydra's settings: the mode, the sweeper, the folders
    if args.prints:  # --cfg or --info: Hydra composes, prints, runs nothing
        hydra_flags.check_package(args, OmegaConf.to_container(cfg, resolve=False), hydra)
        return
    hydra_flags.check_logging(hydra)
    if not (args.multirun or str(hydra.get("mode")).endswith("MULTIRUN")):  # hydra.mode too
        cfg, hydra = compose(task)  # the user's own overrides: Hydra's error for a sweep
        if typed_keys:
            check_job(cfg, _typed(cfg, task))
        hydra_flags.check_folders(hydra, OmegaConf.to_container(cfg, resolve=False), False)
        if then is not None:
            then(cfg)
        return
    params = [f"{k}={v}" for k, v in (hydra.get("sweeper", {}).get("params") or {}).items()]
    _check_grammar(params)  # a scenario file's hydra.sweeper.params
    swept, intervals = sweep_check.plan([*params, *task], dirs)
    basic = "BasicSweeper" in str(hydra.get("sweeper", {}).get("_target_", ""))
    if intervals and basic:
        key, _, value = intervals[0].partition("=")
        raise ConfigError(key, value, "an interval is drawn by a sampling sweeper "
                          "(hydra/sweeper=optuna); the basic sweeper takes a,b,c or "
                          "range(start,stop,step)")
    batch = hydra.get("sweeper", {}).get("max_batch_size")
    if basic and batch is not None and not (isinstance(batch, int) and batch >= 1):
        raise ConfigError("hydra.sweeper.max_batch_size", batch, "must be null or an integer "
                                                                 ">= 1 (jobs checked at a time)")
    hydra_flags.check_launcher(hydra)
    jobs = sweep_check.jobs(swept) if basic else [[k.texts[0] for k in swept]]
    sweep_check.check(swept, typed_keys, compose_job, check_job)
    hydra_flags.check_folders(hydra, OmegaConf.to_container(cfg, resolve=False), True, jobs)
    if then is not None and typed_keys:  # a study's: called on each job composed above
        then(cfg)


def guard(argv: Sequence[str], config_name: str = "config",
          then: Callable[[Any], None] | None = None) -> None:
    """:func:`check_command_line`; a refusal prints its one line and exits with code 2."""
    try:
        check_command_line(argv, config_name, then)
    except ValueError as err:  # ConfigError, a study's TargetsError or SettingsError: one line
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    except RecursionError:  # a configuration nested too deep for OmegaConf
        print("error: the configuration is nested too deep to compose", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # anything else composing raised
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)


def _check_grammar(overrides: list[str]) -> None:
    """Every override readable by Hydra's grammar, for every application."""
    parser = OverridesParser.create()
    for text in overrides:
        try:
            parser.parse_override(text)
        except (HydraException, ValueError) as err:  # ValueError: an int of 4,300+ digits
            key, _, value = text.partition("=")
            hint = ("quote a value holding '=', e.g. '[\"officials.count=8\"]'" if "=" in value
                    else "quote a text holding ( ) [ ] { } , ` $ or spaces, e.g. key='a b'")
            raise ConfigError(key.lstrip("+~"), value, "cannot be read ("
                              f"{str(err).splitlines()[0]}); {hint}") from None


def _typed(cfg: Any, overrides: list[str]) -> Any:
    """Typed parameters of a composed configuration, not validated; an interpolation that
    cannot be resolved as one line."""
    try:
        return config.typed(cfg)
    except ConfigError:
        raise
    except Exception as err:  # OmegaConf's own error
        raise one_line(err, overrides) from None


def _compose(overrides: list[str], config_name: str) -> tuple[Any, dict]:
    """The composed configuration and Hydra's settings; Hydra's, OmegaConf's or YAML's own
    error as one line."""
    try:
        return config.compose_with_hydra(overrides, config_name)
    except ConfigError:
        raise
    except Exception as err:  # Hydra's, OmegaConf's or YAML's own error: one line
        raise one_line(err, overrides) from None


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
    multirun = args.multirun or any(a.lstrip("+").replace(" ", "") == "hydra.mode=MULTIRUN"
                                    for a in argv)  # the guard reads both as a sweep
    if multirun:
        from sim.executor import sweep_workers_end_with_parent

        sweep_workers_end_with_parent()
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
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
    run_folder.claim(Path(folder), tool or ("sweep" if multirun else "run"), key)
    return argv


def start_app(config_name: str, tool: str | None, then: Callable[[Any], None]) -> None:
    """Before a Hydra application starts: its command line (``sys.argv``) checked
    (:func:`guard`, ``then`` on the composed configuration), then its output folder checked,
    pinned and held (:func:`pin_output_folder`; ``tool`` None: a run or a sweep, by the command
    line); a refusal is one line and exit code 2."""
    composed: list[Any] = []
    guard(sys.argv[1:], config_name, then=lambda cfg: (then(cfg), composed.append(cfg)))
    try:
        sys.argv[1:] = pin_output_folder(sys.argv[1:], composed[0] if composed else None,
                                         config_name, tool)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def _quoted_value(text: str) -> str:
    """``text`` as a value of Hydra's override grammar."""
    if re.fullmatch(r"[\w./:@%+-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
