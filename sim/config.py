"""The Hydra glue, in one place: the schema in the ConfigStore, composition, typed parameters.

Everything Hydra-specific lives here and in the thin entry points (``__main__``, ``calibrate``,
``sensitivity``): :func:`load_config` composes a configuration as the command line does,
:func:`to_params` turns it into the typed :class:`sim.params.Config` and validates it
(:mod:`sim.validation`), :func:`check_overrides` refuses a bad command line in one line before
Hydra composes it, and :class:`CollectCallback` collects a sweep when Hydra's multirun ends.
Studies receive the typed parameters and never compose Hydra themselves.
"""

from __future__ import annotations

import atexit
import dataclasses
import enum
import itertools
import pickle
import subprocess
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import BooleanNode, DictConfig, FloatNode, IntegerNode, OmegaConf, ValidationError

from sim.params import CONFIG_DIR, Config, EventConfig, ExecutorConfig
from sim.validation import ConfigError, validate

SCHEMA_NAME = "schema"

__all__ = ["CONFIG_DIR", "ConfigError", "check_overrides", "keep_overrides", "load_config",
           "register", "to_params"]



def register() -> None:
    """Put the schema in Hydra's ConfigStore (the primary config lists it first)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=Config)


def to_params(cfg: DictConfig) -> Config:
    """Typed, validated parameters from a composed Hydra config."""
    params = OmegaConf.to_object(cfg)
    params.timeline = _events(params.timeline)
    validate(params)
    return params


def _events(timeline: dict[str, Any]) -> dict[str, EventConfig]:
    """Timeline entries as EventConfig; null entries (dropped events) are left out."""
    fields = {f.name for f in dataclasses.fields(EventConfig)}
    events = {}
    for name, entry in timeline.items():
        if entry is None:
            continue
        if isinstance(entry, EventConfig):
            events[name] = entry
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"timeline.{name}", entry, "must be {date, label, changes}")
        for key in entry:
            if key not in fields:
                raise ConfigError(f"timeline.{name}.{key}", entry[key],
                                  f"unknown key; allowed: {', '.join(sorted(fields))}")
        if not isinstance(entry.get("changes", {}), dict):
            raise ConfigError(f"timeline.{name}.changes", entry["changes"],
                              "must be a mapping {dotted.key: value}")
        events[name] = EventConfig(**entry)
    return events


def load_config(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """Compose the same configuration the CLI would see, from Python (notebooks, tests).

    Overrides of the model's config are checked first (:func:`check_overrides`).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if config_name == "config":
        check_overrides(overrides)
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    return keep_overrides(cfg, overrides) if config_name == "config" else cfg


def compose_scenario(scenario: str, overrides: Sequence[str] = (),
                     executor: ExecutorConfig | None = None) -> Config:
    """A scenario's typed parameters, composed as ``python -m sim scenario=...`` composes them
    (from inside a running Hydra application too: the study entry points call it), with the
    executor a study was given."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"scenario={scenario}", *overrides]
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its search path
        check_overrides(overrides)
        cfg = keep_overrides(compose(config_name="config", overrides=overrides), overrides)
    else:
        cfg = load_config(overrides)
    params = to_params(cfg)
    if executor is not None:
        params.executor = executor
    return params


def app_run(program: str) -> tuple[Path, str]:
    """The running Hydra application's output folder, and its command line as the user typed
    it (``program`` and the overrides), for a study's report."""
    import shlex

    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    command = " ".join([program, *map(shlex.quote, hc.overrides.task)])
    return Path(hc.runtime.output_dir), command


def log_line(msg: str) -> None:
    """A study's progress line, on stderr."""
    print(msg, file=sys.stderr, flush=True)


def executor_from(cfg: DictConfig) -> ExecutorConfig:
    """The typed executor settings of a study's composed configuration."""
    node = OmegaConf.merge(OmegaConf.structured(ExecutorConfig), cfg.get("executor") or {})
    return OmegaConf.to_object(node)


def keep_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Add the settings the overrides name to ``calibration.keep``: a value the user sets wins
    over the calibrated ensemble's member (see sim.ensemble.kept_out)."""
    names = []
    for text in overrides:
        if text.startswith("~"):  # a deletion leaves nothing to keep
            continue
        key = text.split("=", 1)[0].lstrip("+")
        group = (CONFIG_DIR / key.split(".")[0]).is_dir()  # scenario=, executor=, executor.x=
        if key and not key.startswith("hydra") and not group and "@" not in key \
                and OmegaConf.select(cfg, key, default=None) is not None:  # not dropped
            names.append(key)
    if names and "calibration" in cfg:
        cfg.calibration.keep = [*cfg.calibration.keep, *names]
    return cfg


# -- command-line overrides, checked before Hydra composes them --------------------------------
# Hydra refuses an unknown key or a value of the wrong type with several lines and a stack-trace
# hint; these checks give the same refusals as one line. Whatever they do not understand
# (Hydra's own settings, additions, deletions, interpolations, values inside dicts and lists)
# is left to Hydra.
_VALUE_NODES = {int: (IntegerNode, "must be an integer"), float: (FloatNode, "must be a number"),
                bool: (BooleanNode, "must be true or false")}


def check_overrides(overrides: Sequence[str], config_dirs: Sequence[str | Path] = ()) -> None:
    """Refuse, with one line, an override naming no setting or giving a value of a wrong type.

    Raises :class:`ConfigError`: for an unparsable override, a key the schema does not have
    (naming the keys its parent has), a config group option found in neither ``configs/`` nor
    ``config_dirs`` (naming those that are), or a value an integer, number or true/false
    setting cannot take. Group options are not checked when the overrides change Hydra's
    search path.
    """
    parser = OverridesParser.create()
    dirs = [CONFIG_DIR, *(Path(d) for d in config_dirs)]
    check_groups = not any(o.startswith(("hydra.searchpath", "+hydra.searchpath"))
                           for o in overrides)
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except HydraException as err:  # the grammar refused it
            raise ConfigError(text.partition("=")[0], text.partition("=")[2],
                              f"cannot be read ({str(err).splitlines()[0]})") from None
        key = override.key_or_group
        if (override.package is not None or key.startswith("hydra") or override.is_add()
                or override.is_force_add() or override.is_delete()):
            continue
        if not override.is_sweep_override():
            values = [override.value()]
        elif override.value_type == ValueType.INTERVAL_SWEEP:  # values drawn by a sweeper
            values = []
        else:
            values = list(override.sweep_iterator())
        if any((d / key).is_dir() for d in dirs):
            if check_groups:
                _check_group_option(key, values, dirs)
        else:
            _check_setting(key, values)


def _check_group_option(group: str, values: list[Any], dirs: Sequence[Path]) -> None:
    available = sorted({p.stem for d in dirs for p in (d / group).glob("*.yaml")})
    for value in values:
        if isinstance(value, str) and value not in available:
            raise ConfigError(group, value, f"no such {group}; available: {', '.join(available)}")


def _check_setting(key: str, values: list[Any]) -> None:
    kind: Any = Config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not dataclasses.is_dataclass(kind):
            return  # inside a dict or a list: checked after composition
        hints = typing.get_type_hints(kind)
        if part not in hints:
            parent = ".".join(parts[:depth]) or "the top level"
            raise ConfigError(key, values[0] if len(values) == 1 else values,
                              f"no such setting; {parent} has: {', '.join(hints)}")
        kind = hints[part]
    optional = type(None) in typing.get_args(kind)
    if optional:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        allowed = [m.value for m in kind]
        for value in values:
            if value not in allowed:
                raise ConfigError(key, value, f"must be one of {', '.join(allowed)}")
        return
    if kind not in _VALUE_NODES:
        return
    node, wanted = _VALUE_NODES[kind]
    for value in values:
        if isinstance(value, str) and "${" in value:
            continue  # an interpolation: resolved by OmegaConf
        if value is None:
            if not optional:
                raise ConfigError(key, value, wanted)
            continue
        try:
            node(value=value)
        except ValidationError:
            raise ConfigError(key, value, wanted + (" or null" if optional else "")) from None


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
