"""The input space of a study: uncertain inputs (factors) with their ranges, and designs on it.

A factor is a dotted key of the scenario (``arrivals.surges.0.size``, ``timeline.X.date``), its
range (the prior: every value inside is possible before looking at the targets), its scale and
the reason for the range. Positions in the range are units in [0, 1); designs are Latin
hypercubes (``scipy.stats.qmc``) on the unit cube.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import qmc

from sim import keys, policies
from sim.params import Config
from sim.studies.targets import TargetsError, read_section
from sim.validation import validate

SCALES = ("linear", "log", "date")
# Settings that fix a run's frame rather than describe the process.
NOT_VARIED = ("name", "seed", "start_date", "end_date", "horizon_days", "warmup_days",
              "calendar", "output", "replications", "jobs", "calibration")


@dataclass(frozen=True)
class Factor:
    """An uncertain input. ``scale``: linear, log, or date (low and high ISO dates, whole days).
    ``integer``: each integer low..high has equal weight. ``source``: where the range comes
    from (``seeds/priors.yaml`` ids, an article, or "guess"). ``significant``: digits a value
    keeps (None: as drawn)."""

    key: str
    low: Any
    high: Any
    reason: str
    scale: str = "linear"
    integer: bool = False
    source: str = "guess"
    significant: int | None = 4

    def value(self, u: float) -> Any:
        """The value at position ``u`` in [0, 1) of the range."""
        if self.scale == "date":
            lo, hi = policies.parse_date(self.low), policies.parse_date(self.high)
            days = min(math.floor(u * ((hi - lo).days + 1)), (hi - lo).days)
            return (lo + dt.timedelta(days=days)).isoformat()
        if self.integer:  # equal mass per integer low..high
            return int(min(math.floor(self.low + u * (self.high - self.low + 1)), self.high))
        if self.scale == "log":
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            x = self.low + u * (self.high - self.low)
        return float(x) if self.significant is None else float(f"{x:.{self.significant}g}")

    def unit(self, x: Any) -> float:
        """Inverse of :meth:`value`: the position of ``x`` in the range, in [0, 1]."""
        if self.scale == "date":
            lo, hi = policies.parse_date(self.low), policies.parse_date(self.high)
            return ((policies.parse_date(x) - lo).days + 0.5) / ((hi - lo).days + 1)
        if self.integer:
            return (x - self.low + 0.5) / (self.high - self.low + 1)
        if self.scale == "log":
            return (math.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (x - self.low) / (self.high - self.low)


def load_factors(path: str | Path, params: Config) -> list[Factor]:
    """The factors of a ranges file (``parameters:`` mapping), checked against the scenario."""
    path = Path(path)
    entries = read_section(path, "parameters", dict)
    fields = {f.name for f in dataclasses.fields(Factor)}
    out = []
    for key, spec in entries.items():
        where = f"{path.name}: {key}"
        if not isinstance(spec, dict) or spec.get("low") is None or spec.get("high") is None:
            raise TargetsError(f"{where}: needs low and high")
        if not spec.get("reason"):
            raise TargetsError(f"{where}: needs a reason")
        unknown = set(spec) - fields
        if unknown:
            raise TargetsError(f"{where}: unknown field {', '.join(sorted(unknown))}")
        f = Factor(key=key, **spec)
        if f.scale not in SCALES:
            raise TargetsError(f"{where}: scale={f.scale}: must be one of {', '.join(SCALES)}")
        try:
            low, high = ((policies.parse_date(f.low), policies.parse_date(f.high))
                         if f.scale == "date" else (float(f.low), float(f.high)))
        except (TypeError, ValueError):
            raise TargetsError(f"{where}: low and high must be numbers (dates for scale: date)"
                               ) from None
        if not low < high:
            raise TargetsError(f"{where}: low={f.low} must be below high={f.high}")
        if f.scale == "log" and low <= 0:
            raise TargetsError(f"{where}: scale log needs low > 0")
        try:
            keys.get(params, key)
        except (KeyError, IndexError, ValueError, TypeError):
            raise TargetsError(f"{where}: no such key in the scenario") from None
        if key.split(".")[0] in NOT_VARIED:
            raise TargetsError(f"{where}: fixes the run's frame, cannot be varied")
        out.append(f)
    return out


def lhs(n: int, d: int, seed: int) -> np.ndarray:
    """A Latin hypercube of n points in [0, 1)^d, from its own seed."""
    return qmc.LatinHypercube(d=d, seed=np.random.default_rng(seed)).random(n)


def values_at(factors: Sequence[Factor], u: Sequence[float]) -> dict[str, Any]:
    """{key: value} of one point of the unit cube."""
    return {f.key: f.value(float(x)) for f, x in zip(factors, u, strict=True)}


def point_params(params: Config, factors: Sequence[Factor], u: Sequence[float]) -> Config:
    """The scenario at one point of the unit cube, validated (ConfigError if not valid)."""
    p = keys.apply_point(params, values_at(factors, u))
    validate(p)
    return p
