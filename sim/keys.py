"""Dotted settings (``arrivals.surges.0.size``): read, set and apply them on typed parameters.

Calibration points, ensemble members, sensitivity factors and timeline changes name settings
this way: this is the one module that walks them. A key walks dataclass fields, list indices
and mapping keys. Dates are ISO strings; a point's values are plain YAML types. Nothing here
validates: callers pass the result to :func:`sim.validation.validate`.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import typing
from typing import Any

import numpy as np

from sim.params import Config


def step(obj: Any, part: str) -> Any:
    """One level down: a dataclass field, a list index or a mapping key (KeyError if none)."""
    if dataclasses.is_dataclass(obj):
        if part not in {f.name for f in dataclasses.fields(obj)}:
            raise KeyError(part)
        return getattr(obj, part)
    if isinstance(obj, list):
        return obj[int(part)]
    return obj[part]


def get(params: Config, key: str) -> Any:
    """The value at a dotted key."""
    obj: Any = params
    for part in key.split("."):
        obj = step(obj, part)
    return obj


@functools.cache
def hints(kind: type) -> dict[str, Any]:
    """A dataclass's type hints, evaluated once (``typing.get_type_hints`` evaluates them anew
    on each call: most of a validation's time, and a sweep validates each of its points)."""
    return typing.get_type_hints(kind)


def field_type(key: str, root: type = Config) -> Any:
    """The schema's type hint of a dotted key (through dataclass fields, list items and
    mapping values; ``Optional[X]`` as it is); KeyError for a key the schema does not have."""
    kind: Any = root
    for part in key.split("."):
        if type(None) in typing.get_args(kind):  # Optional[X]: go down into X
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if dataclasses.is_dataclass(kind):
            fields = hints(kind)
            if part not in fields:
                raise KeyError(part)
            kind = fields[part]
        elif typing.get_origin(kind) in (list, dict):
            kind = typing.get_args(kind)[-1]
        else:
            raise KeyError(part)
    return kind


def lookup(mapping: Any, key: str) -> Any:
    """The value at a dotted key of plain nested mappings (a summary.json, a multirun.yaml),
    or None where the path does not exist."""
    for part in key.split("."):
        if not isinstance(mapping, dict) or part not in mapping:
            return None
        mapping = mapping[part]
    return mapping


def set_values(params: Config, values: dict[str, Any]) -> Config:
    """A copy of ``params`` with each dotted key set (not validated)."""
    p = copy.deepcopy(params)
    for key, value in values.items():
        parts = key.split(".")
        parent = get(p, ".".join(parts[:-1])) if len(parts) > 1 else p
        last = parts[-1]
        if dataclasses.is_dataclass(parent):
            setattr(parent, last, value)
        elif isinstance(parent, list):
            parent[int(last)] = value
        else:
            parent[last] = value
    return p


def plain(value: Any) -> Any:
    """Dataclasses, lists, mappings and numpy scalars as plain YAML types."""
    if dataclasses.is_dataclass(value):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def apply_point(params: Config, point: dict[str, Any]) -> Config:
    """A copy of ``params`` with a point (an ensemble member, a calibrated point) applied.

    A whole list of mappings (``arrivals.surges: [{...}]``, as older files hold) is turned back
    into its dataclasses first.
    """
    typed = {}
    for key, value in point.items():
        parts = key.split(".")
        parent = get(params, ".".join(parts[:-1])) if len(parts) > 1 else params
        if dataclasses.is_dataclass(parent) and isinstance(value, list):
            args = typing.get_args(hints(type(parent)).get(parts[-1]))
            if args and dataclasses.is_dataclass(args[0]):
                value = [args[0](**v) if isinstance(v, dict) else v for v in value]
        typed[key] = value
    return set_values(params, typed)
