"""Study settings, typed and bounded as the model's are: one checker for every study's
settings (calibrate, sensitivity, solve, hindcast). The model's own checks (sim.validation)
see only sim.params.Config."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from typing import Any

from sim.validation import ConfigError, check_types


@dataclass(frozen=True)
class Limit:
    """The numbers a setting allows: ``low`` to ``high`` (None: no upper bound), finite;
    ``above``: ``low`` itself excluded. An upper bound on a size is where a value is surely a
    typo (a run that would not end), not a limit of the method."""

    low: float
    high: float | None = None
    above: bool = False

    def allows(self, x: float) -> bool:
        finite = isinstance(x, int) or math.isfinite(x)  # int: math.isfinite overflows at 1e309
        return finite and (x > self.low if self.above else x >= self.low) and (
            self.high is None or x <= self.high)

    def words(self, integer: bool) -> str:
        kind = "an integer" if integer else "a finite number"
        if self.high is None:
            return f"must be {kind} {'>' if self.above else '>='} {_number(self.low)}"
        return (f"must be {kind} in {'(' if self.above else '['}{_number(self.low)}, "
                f"{_number(self.high)}]")


def _number(x: float) -> str:
    """A bound as written: 4294967295, not 4.29497e+09."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# A study's name and scenario name its run folder (hydra.run.dir): nothing may escape outputs/.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def check_name(key: str, value: str) -> None:
    """A name that goes into a folder's name (ConfigError otherwise)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(key, value, "must be 1-100 letters, digits, '_', '-' or '.', not "
                                      "starting with '.'")


def check_settings(obj: Any, prefix: str) -> None:
    """A study's settings (a dataclass; nested ones too) as the model's are checked: every
    field of its annotated type (:func:`sim.validation.check_types`: a bool is true or false,
    not text; an integer is not a bool nor a float; a list holds its element type), every
    number finite, and each field its class names in ``LIMITS`` within its :class:`Limit`.
    ConfigError naming the dotted key, ``prefix`` first (``calibrate.match.jobs``)."""
    check_types(obj, prefix)
    _check_numbers(obj, prefix)


def settings_of(kind: type, raw: Any, prefix: str) -> Any:
    """``kind(**raw)`` for the dataclass ``kind``: a mapping's settings, an unknown or missing
    name refused in one line (their types are :func:`check_settings`'s)."""
    if not isinstance(raw, dict):
        raise ConfigError(prefix, raw, "must be a mapping {name: value}")
    fields = dataclasses.fields(kind)
    names = [f.name for f in fields]
    for name, value in raw.items():
        if name not in names:
            raise ConfigError(f"{prefix}.{name}", value,
                              f"no such setting; allowed: {', '.join(names)}")
    for f in fields:
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in raw:
            raise ConfigError(f"{prefix}.{f.name}", ConfigError.NO_VALUE, "required")
    return kind(**raw)


def _check_numbers(obj: Any, prefix: str) -> None:
    limits = getattr(type(obj), "LIMITS", {})
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key, value = f"{prefix}.{f.name}", getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_numbers(value, key)
            continue
        items = (value.items() if isinstance(value, dict) else enumerate(value)
                 if isinstance(value, list) else [])
        for k, item in items:  # NaN and infinity inside a mapping or a list
            if isinstance(item, float) and not math.isfinite(item):
                where = f"{key}.{k}" if isinstance(value, dict) else f"{key}[{k}]"
                raise ConfigError(where, item, "must be a finite number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(key, value, "must be a finite number")
        limit = limits.get(f.name)
        if limit is not None and value is not None and not limit.allows(value):
            raise ConfigError(key, value, limit.words(hints[f.name] is int))
