"""A sweep's jobs checked before any starts (``python -m sim -m ...``), without composing each.

The rule, the same whatever the order of the values (a key's values are a set here):

1. Every value alone: its key and type (:func:`sim.config.check_overrides`).
2. A number setting is represented by its smallest and its largest value, with null and any
   non-finite value apart; any other key by each of its distinct values. Every check of a
   number is a bound, an interval or grows with it (the run's size), so the jobs between the
   extremes are valid when the jobs at the extremes are.
3. When these make at most :data:`MAX_COMBINATIONS` jobs, every one of them is checked: a
   combination that is wrong (``horizon_days=100`` with ``warmup_days=150``) is refused
   whichever values come first. Otherwise the reference job (each key at its first value in
   sorted order) is checked, then each value alone with the other keys at the reference (at
   most :data:`MAX_CHECKS` jobs: a sweep of more distinct texts is refused, to be split).
4. A config group (``scenario=a,b``), a list or mapping value, an added or removed key is
   composed by Hydra for each of its values (at most :data:`MAX_COMPOSED` compositions, each
   a fraction of a second); a setting's value is set on the typed parameters of that
   composition and validated (:func:`sim.validation.validate`, a millisecond).

A basic sweep has at most :data:`MAX_JOBS` jobs and a key at most :data:`MAX_VALUES` values
(counted before they are listed). Values in ``hydra.sweeper.params`` (a scenario file's
sweep) are read as Hydra's basic sweeper reads them: before the command line's, a key given
twice keeps its first place and its last values. A refused job is named by its swept values
when several keys are swept: ``error: warmup_days=150: must be in [0, 100) days (sweep job:
horizon_days=100, warmup_days=150)``.
"""

from __future__ import annotations

import enum
import itertools
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, RangeSweep
from hydra.errors import HydraException

from sim import keys, policies
from sim.config import GroupOptions
from sim.params import CONFIG_DIR, Config
from sim.validation import ConfigError

MAX_VALUES = 100_000  # values of one swept key (a range is counted before it is listed)
MAX_JOBS = 10_000  # jobs of a basic sweep: Hydra composes each of them before the first starts
MAX_COMBINATIONS = 1_000  # represented jobs checked one by one (step 3)
MAX_CHECKS = 2_000  # jobs checked in all (step 3, each value alone): about 1.5 ms each
MAX_COMPOSED = 16  # Hydra compositions for config groups, lists, mappings, added keys


@dataclass
class Key:
    """One key of a sweep: its overrides (``key=value``, in the order given, duplicates kept:
    Hydra runs each) and their values, typed by Hydra's grammar."""

    name: str  # as the sweeper keys it: with a +, ~ or ++ prefix and an @package
    texts: list[str]
    values: list[Any]
    kind: Any = None  # the schema's scalar type when set on typed parameters; None: composed
    picks: list[int] = field(default_factory=list)  # indices of the values checked (step 2)


def plan(arguments: Sequence[str], dirs: Sequence[Path] = ()) -> tuple[list[Key], list[str]]:
    """The keys of a sweep, in job order (each job takes one value of every key), and the
    overrides swept by an interval (drawn by a sampling sweeper, never listed). Refuses a key
    with more than :data:`MAX_VALUES` values before listing them."""
    parser = OverridesParser.create(config_loader=GroupOptions(dirs))
    found: dict[str, Key] = {}
    intervals = []
    for text, o in zip(arguments, parser.parse_overrides(list(arguments)), strict=True):
        name = o.get_key_element()
        if o.is_sweep_override() and not o.is_discrete_sweep():
            intervals.append(text)
            found.pop(name, None)
            continue
        if o.is_sweep_override():
            _count_values(name, text, o._value)
            texts = [f"{name}={v}" for v in o.sweep_string_iterator()]
            values = list(o.sweep_iterator())
        else:
            texts, values = [f"{name}={o.get_value_element_as_str()}"], [o.value()]
        if not texts:
            raise ConfigError(name, text.partition("=")[2], "sweeps no value")
        if name in found:  # the first place, the last values
            found[name].texts, found[name].values = texts, values
        else:
            found[name] = Key(name, texts, values)
    return list(found.values()), intervals


def _count_values(name: str, text: str, value: Any) -> None:
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if not step or not all(math.isfinite(x) for x in (start, stop, step)):
            raise ConfigError(name, text.partition("=")[2], "a range needs a finite start, "
                                                            "stop and non-zero step")
        count = max(0, math.ceil((stop - start) / step))
    elif isinstance(value, Glob):
        return
    else:
        count = len(getattr(value, "list", value) or [])
    if count > MAX_VALUES:
        raise ConfigError(name, text.partition("=")[2], f"sweeps {count:,} values; at most "
                                                        f"{MAX_VALUES:,}")


def jobs(swept: Sequence[Key]) -> list[list[str]]:
    """Every job's overrides, in the order Hydra's basic sweeper runs them."""
    total = math.prod(len(k.texts) for k in swept)
    if total > MAX_JOBS:
        raise ConfigError("the sweep", ConfigError.NO_VALUE, f"{total:,} jobs; at most "
                          f"{MAX_JOBS:,} (Hydra composes each before the first starts): "
                          "split it, or sweep fewer values")
    return [list(p) for p in itertools.product(*(k.texts for k in swept))]


def check(swept: list[Key], typed_keys: bool,
          compose: Callable[[list[str]], tuple[Any, Config | None]],
          check_job: Callable[[Any, Config | None], None]) -> None:
    """Check the represented jobs of a sweep (the rule above). ``compose(overrides)`` gives a
    job's composed configuration and its typed, not yet validated parameters (None for a
    study: ``typed_keys`` false, every key composed); ``check_job(cfg, params)`` checks one
    job, ``params`` with the typed keys' values set."""
    for key in swept:
        key.kind = _settable(key) if typed_keys else None
        key.picks = _picks(key)
    combos = math.prod(len(k.picks) for k in swept)
    by_compose = [k for k in swept if k.kind is None]
    every = combos <= MAX_COMBINATIONS and \
        math.prod(len(k.picks) for k in by_compose) <= MAX_COMPOSED
    if every:
        chosen = itertools.product(*(k.picks for k in swept))
    else:
        reference = tuple(k.picks[0] for k in swept)
        chosen = [reference] + [reference[:i] + (pick,) + reference[i + 1:]
                                for i, k in enumerate(swept) for pick in k.picks[1:]]
        if len(chosen) > MAX_CHECKS:
            raise ConfigError("the sweep", ConfigError.NO_VALUE, f"{len(chosen):,} distinct "
                              f"values to check one by one; at most {MAX_CHECKS:,} can be "
                              "checked before it starts: split it")
        composed = 1 + sum(len(k.picks) - 1 for k in by_compose)
        if composed > MAX_COMPOSED:
            raise ConfigError("the sweep", ConfigError.NO_VALUE, f"{composed} values of config "
                              f"groups, lists, mappings or added keys; at most {MAX_COMPOSED} "
                              "can be checked before it starts (Hydra composes each): split it")
    bases: dict[tuple, Any] = {}
    varied = [k for k in swept if len(set(k.texts)) > 1]  # named with a combination's error
    for combo in chosen:
        texts = [k.texts[i] for k, i in zip(swept, combo, strict=True)]
        head = tuple((k.name, i) for k, i in zip(swept, combo, strict=True) if k.kind is None)
        try:
            if head not in bases:  # the other keys at their reference value: set below
                bases[head] = compose([k.texts[i if k.kind is None else k.picks[0]]
                                       for k, i in zip(swept, combo, strict=True)])
            cfg, params = bases[head]
            values = {k.name: _typed(k, i) for k, i in zip(swept, combo, strict=True)
                      if k.kind is not None}
            check_job(cfg, _with(params, values) if values else params)
        except ConfigError as err:
            if len(varied) < 2:  # the value itself is wrong: its key and value say it
                raise
            job = ", ".join(t for k, t in zip(swept, texts, strict=True) if k in varied)
            raise ConfigError(err.key, err.value, f"{err.allowed} (sweep job: {job})") from None


def _with(params: Config, values: dict[str, Any]) -> Config:
    """``params`` with the values set: new objects along each key's path, the rest shared (a
    deep copy of every job's parameters would cost more than its validation)."""
    try:
        return policies.apply_changes(params, values)
    except KeyError:  # a list's item (officials.schedule.0.count): a copy of the whole
        return keys.set_values(params, values)


def _settable(key: Key) -> Any:
    """The schema's scalar type of a key set directly on typed parameters, or None for a key
    Hydra must compose (a group, a list or a mapping, an addition, an interpolation)."""
    name = key.name
    if not name[:1].isalpha() or "@" in name or "/" in name or name.startswith("hydra"):
        return None
    if (CONFIG_DIR / name.split(".")[0]).is_dir():  # a config group (scenario, executor)
        return None
    try:
        kind = keys.field_type(name)
    except KeyError:
        return None
    args = typing.get_args(kind)
    if type(None) in args:
        kind = next(a for a in args if a is not type(None))
    scalar = kind in (int, float, bool, str) or (isinstance(kind, type)
                                                  and issubclass(kind, enum.Enum))
    plain = all(v is None or (isinstance(v, int | float | bool | str)
                              and "${" not in str(v)) for v in key.values)
    return kind if scalar and plain else None


def _picks(key: Key) -> list[int]:
    """The indices of the values checked (step 2), in sorted order: numbers by value."""
    first: dict[str, int] = {}
    for i, text in enumerate(key.texts):
        first.setdefault(text, i)
    picks = sorted(first.values(), key=lambda i: _order(key.values[i], key.texts[i]))
    if key.kind in (int, float):
        finite = [i for i in picks if _finite(key.values[i])]
        others = [i for i in picks if not _finite(key.values[i])]
        picks = sorted({*finite[:1], *finite[-1:], *others},
                       key=lambda i: _order(key.values[i], key.texts[i]))
    return picks


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _order(value: Any, text: str) -> tuple:
    return (0, value, text) if _finite(value) else (1, 0, text)


def _typed(key: Key, i: int) -> Any:
    """A value as OmegaConf gives it to the typed parameters (an int for an integer setting,
    an enum member for a mode)."""
    from omegaconf import BooleanNode, EnumNode, FloatNode, IntegerNode, StringNode
    from omegaconf.errors import ValidationError

    value = key.values[i]
    if value is None:
        return None
    nodes = {int: IntegerNode, float: FloatNode, bool: BooleanNode, str: StringNode}
    try:
        if key.kind in nodes:
            return nodes[key.kind](value=value)._value()
        return EnumNode(enum_type=key.kind, value=value)._value()
    except (ValidationError, HydraException):
        raise ConfigError(key.name, value, "has the wrong type for this setting") from None
