"""The Hydra glue, composition side: the schema in the ConfigStore, composition, typed
parameters, and the one-line checks of override strings.

:func:`load_config` composes a configuration as the command line does, :func:`to_params` turns
it into the typed :class:`sim.params.Config` and validates it (:mod:`sim.validation`),
:func:`check_overrides` refuses a bad override in one line before Hydra composes it. The
applications' side (the command line checked before Hydra writes anything, error translation,
the sweep callback) is :mod:`sim.command_line`. Studies receive typed parameters and never
compose Hydra themselves.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException
from omegaconf import (
    BooleanNode,
    DictConfig,
    FloatNode,
    IntegerNode,
    OmegaConf,
    ValidationError,
    open_dict,
)

from sim import keys
from sim.params import CONFIG_DIR, Config, EventConfig, ExecutorConfig
from sim.validation import ConfigError, check_here, validate

SCHEMA_NAME = "schema"

__all__ = ["CONFIG_DIR", "ConfigError", "check_overrides", "compose_with_hydra", "keep_overrides",
           "load_config", "register", "to_params", "typed"]



def register() -> None:
    """Put the schema in Hydra's ConfigStore (the primary config lists it first)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=Config)


def to_params(cfg: DictConfig) -> Config:
    """Typed, validated parameters from a composed Hydra config."""
    params = typed(cfg)
    validate(params)
    return params


def typed(cfg: DictConfig) -> Config:
    """Typed parameters from a composed Hydra config, not yet validated (a sweep's check sets
    each job's values on them first)."""
    params = OmegaConf.to_object(cfg)
    if not isinstance(params, Config):  # a DictConfig made by hand, not composed on the schema
        raise ConfigError("cfg", type(params).__name__, "must be composed on the schema: "
                          "sim.load_config([...]) or a sim.params.Config")
    params.timeline = _events(params.timeline)
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
    if isinstance(overrides, str) or not isinstance(overrides, Sequence):
        raise ConfigError("overrides", overrides, "must be a list of 'key=value' texts")
    for i, text in enumerate(overrides):
        if not isinstance(text, str):
            raise ConfigError(f"overrides[{i}]", text, "must be a 'key=value' text")
    if not isinstance(config_name, str) or not (CONFIG_DIR / f"{config_name}.yaml").is_file():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError("config_name", config_name, f"must be one of {', '.join(names)}")
    if config_name == "config":
        check_overrides(overrides)
    return compose_with_hydra(overrides, config_name)[0]


def compose_with_hydra(overrides: Sequence[str], config_name: str = "config"
                       ) -> tuple[DictConfig, dict[str, Any]]:
    """The configuration :func:`load_config` composes (overrides not checked here), and
    Hydra's own settings for it (``hydra.run.dir``, ``hydra.sweeper.params`` ...: a plain
    mapping, interpolations unresolved)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides),
                      return_hydra_config=True)
    hydra = OmegaConf.to_container(cfg.hydra, resolve=False)
    with open_dict(cfg):  # as compose() leaves it without return_hydra_config
        del cfg["hydra"]
    return (keep_overrides(cfg, overrides) if config_name == "config" else cfg), hydra


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
        validate(params)  # the study's executor settings, as a run's are
    check_here(params)
    return params


def executor_from(cfg: DictConfig) -> ExecutorConfig:
    """The typed executor settings of a study's composed configuration."""
    node = OmegaConf.merge(OmegaConf.structured(ExecutorConfig), cfg.get("executor") or {})
    return OmegaConf.to_object(node)


_ABSENT = object()  # a key the composed config does not have


def keep_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Add the settings the overrides name to ``calibration.keep``: a value the user sets wins
    over the calibrated ensemble's member (see sim.ensemble.kept_out), even one equal to the
    calibrated value (any other value, a scenario file's too, wins without being named:
    sim.ensemble.user_values)."""
    names = []
    for text in overrides:
        if text.startswith("~"):  # a deletion leaves nothing to keep
            continue
        key = text.split("=", 1)[0].lstrip("+")
        group = (CONFIG_DIR / key.split(".")[0]).is_dir()  # scenario=, executor=, executor.x=
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        # null is a value the user gives (officials.ramp.start_date=null: no ramp), and wins
        # as any other; only a timeline event set to null is dropped, with nothing to keep
        dropped = value is None and key.startswith("timeline.") and key.count(".") == 1
        if key and not key.startswith("hydra") and not group and "@" not in key \
                and value is not _ABSENT and not dropped:
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


class GroupOptions:
    """What a glob(...) sweep needs of Hydra's config loader: a group's options, here the
    YAML files of configs/ and of a --config-dir."""

    def __init__(self, dirs: Sequence[Path]):
        self.dirs = [CONFIG_DIR, *dirs]

    def get_group_options(self, group: str, results_filter: Any = None) -> list[str]:
        return sorted({p.stem for d in self.dirs for p in (Path(d) / group).glob("*.yaml")})


def check_overrides(overrides: Sequence[str], config_dirs: Sequence[str | Path] = ()) -> None:
    """Refuse, with one line, an override naming no setting or giving a value of a wrong type.

    Raises :class:`ConfigError`: for an unparsable override, a key the schema does not have
    (naming the keys its parent has), a config group option found in neither ``configs/`` nor
    ``config_dirs`` (naming those that are), or a value an integer, number or true/false
    setting cannot take. Group options are not checked when the overrides change Hydra's
    search path.
    """
    parser = OverridesParser.create()
    options = GroupOptions(config_dirs)  # the values of a glob(...) sweep
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
        override.config_loader = options
        if override.package is not None or key.startswith("hydra"):
            continue
        if override.is_delete() or override.is_add():
            _check_addition(text, key, override.is_delete(), dirs)
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


def _check_addition(text: str, key: str, delete: bool, dirs: Sequence[Path]) -> None:
    """``~key`` and ``+key=value``: only where the schema holds a mapping of free entries
    (``timeline.<event>``); a setting is changed with ``key=value`` (or ``++key=value``)."""
    if any((d / key).is_dir() for d in dirs):
        return  # a config group's default: Hydra's to add or remove
    try:
        kind = keys.field_type(key)
    except KeyError:
        kind = None
    parent = key.rpartition(".")[0]
    free = parent and _free_mapping(parent)
    if delete and not free:
        raise ConfigError(key, ConfigError.NO_VALUE if "=" not in text else text.split("=", 1)[1],
                          "a setting cannot be deleted; give it a value "
                          "(null where allowed, timeline.<event>=null drops an event)")
    if not delete and kind is not None and not free:
        raise ConfigError(key, text.split("=", 1)[1], f"{key} is a setting already: "
                                                      f"write {key}=value")
    if not delete and kind is None and not free:
        _check_setting(key, [text.split("=", 1)[1]])  # names the keys its parent has


def _free_mapping(key: str) -> bool:
    """Whether the schema's value at ``key`` is a mapping of free entries (``timeline``)."""
    try:
        kind = keys.field_type(key)
    except KeyError:
        return False
    return typing.get_origin(kind) is dict and typing.get_args(kind)[-1] is Any


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
        hints = keys.hints(kind)
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
            # OmegaConf reads any integer as a bool (output.plots=2 is true): not here
            if kind is bool and not isinstance(value, bool | str) and value not in (0, 1):
                raise ValidationError("an integer other than 0 or 1")
        except ValidationError:
            raise ConfigError(key, value, wanted + (" or null" if optional else "")) from None
