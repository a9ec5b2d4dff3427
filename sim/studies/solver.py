"""What would it take: the least (or greatest) value of a monotone lever at which a figure
meets a threshold in at least a stated share of replications.

Every value is run with the same replications 0..n-1 (common random numbers: replication r
draws from (seed, r) whatever the lever, and so the same ensemble member), so the share met
moves with the lever, not with the noise of fresh draws. The grid is ``low, low + step, ...,
high``; bisection finds the boundary, and the figure's mean is then checked to move one way
only over every value run (a paired difference whose 95 % interval lies wholly against the
overall direction breaks the check).

The study receives typed parameters (:class:`sim.params.Config`) and plain settings; the
command line is :mod:`sim.solve`.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sim import keys
from sim.objective import check_figure
from sim.params import Config
from sim.results import Results
from sim.runner import replicate
from sim.stats import mean_ci, within_range
from sim.studies.history_matching import Limit, check_settings
from sim.validation import ConfigError, validate

MAX_GRID = 10_000  # values in the bracket; beyond this a step is surely a typo


class Seek(enum.StrEnum):
    least = "least"  # the figure improves as the lever rises (officials, dedicated staff)
    greatest = "greatest"  # the figure worsens as the lever rises (effort, arrivals)


@dataclass
class Settings:
    """``solve.<name>=value`` on the command line."""

    lever: str | None = None  # dotted setting, or timeline.<event>.changes.<dotted setting>
    target: str | None = None  # dotted key of summary.json (a column of replications.csv)
    at_least: float | None = None  # met when the figure is at least this ...
    at_most: float | None = None  # ... or at most this (give exactly one)
    probability: float = 0.9  # share of replications (and ensemble members) that must meet it
    low: float | None = None  # the bracket: values low, low + step, ..., high
    high: float | None = None
    step: float | None = None  # default 1
    seek: Seek = Seek.least
    check_points: int = 3  # interior values also run, evenly spaced, for the monotone check

    LIMITS: ClassVar[dict[str, Limit]] = {"probability": Limit(0, 1, above=True),
                                          "step": Limit(0, above=True),
                                          "check_points": Limit(0, MAX_GRID)}


@dataclass
class Evaluation:
    """One lever value: the figure per replication and the share that met the threshold."""

    value: float
    figure: np.ndarray
    met: np.ndarray

    @property
    def share_met(self) -> float:
        return float(self.met.mean())

    def row(self, target: str) -> dict[str, Any]:
        """solve.json's and evaluations.csv's row; ``target`` names the figure, whose 95 %
        interval is cut to its range as every table's is (:func:`sim.stats.within_range`: no
        count below 0, no share above 1)."""
        mean, low, high = mean_ci(self.figure)
        return {"value": self.value, "share_met": self.share_met,
                "replications_met": int(self.met.sum()), "mean": mean,
                "ci95": [within_range(low, target), within_range(high, target)],
                "min": float(np.nanmin(self.figure))
                if np.isfinite(self.figure).any() else None,
                "max": float(np.nanmax(self.figure))
                if np.isfinite(self.figure).any() else None}


@dataclass
class Solution:
    settings: Settings
    params: Config
    status: str  # solved | met_at_bracket_end | not_met | not_monotone
    message: str
    answer: float | None
    evaluations: dict[float, Evaluation] = field(default_factory=dict)
    monotone: dict[str, Any] = field(default_factory=dict)
    results_at_answer: Results | None = None

    def achieved(self, value: float | None) -> float | None:
        ev = self.evaluations.get(value) if value is not None else None
        return None if ev is None else ev.share_met


# -- the lever -------------------------------------------------------------------------------
def _timeline_parts(lever: str) -> tuple[str, str] | None:
    """(event, dotted setting) of ``timeline.<event>.changes.<setting>``, else None."""
    parts = lever.split(".")
    if len(parts) >= 4 and parts[0] == "timeline" and parts[2] == "changes":
        return parts[1], ".".join(parts[3:])
    return None


def lever_kind(params: Config, lever: str) -> type:
    """int or float: the schema type of the lever (ConfigError for anything else)."""
    inner = _timeline_parts(lever)
    if inner is not None and inner[0] not in params.timeline:
        raise ConfigError("solve.lever", lever, f"no such timeline event; the scenario has: "
                                                f"{', '.join(params.timeline) or 'none'}")
    setting = inner[1] if inner else lever
    try:
        kind = keys.field_type(setting)
        if inner is None:
            keys.get(params, setting)
    except (KeyError, IndexError, ValueError, TypeError):
        raise ConfigError("solve.lever", lever, "no such setting; a lever is a dotted setting "
                          "such as officials.count, or timeline.<event>.changes.<setting>"
                          ) from None
    if type(None) in typing.get_args(kind):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind not in (int, float):
        choices = ", ".join(m.value for m in kind) if isinstance(kind, type) and \
            issubclass(kind, enum.Enum) else getattr(kind, "__name__", str(kind))
        raise ConfigError("solve.lever", lever, "must be a numeric setting (this one takes "
                          f"{choices}: compare its values with python -m sim -m {lever}=...)")
    return kind


def with_lever(params: Config, lever: str, value: float) -> Config:
    """A copy of ``params`` with the lever at ``value``, kept from the ensemble's members."""
    kind = lever_kind(params, lever)
    value = int(round(value)) if kind is int else float(value)
    inner = _timeline_parts(lever)
    if inner is None:
        p = keys.set_values(params, {lever: value})
        kept = lever
    else:
        p = copy.deepcopy(params)
        event, setting = inner
        p.timeline[event] = dataclasses.replace(
            p.timeline[event], changes={**p.timeline[event].changes, setting: value})
        kept = setting  # a member setting the same key must not undo the event's value
    if kept not in p.calibration.keep:
        p.calibration.keep = [*p.calibration.keep, kept]
    try:
        validate(p)
    except ConfigError as err:
        raise ConfigError("solve.lever", f"{lever}={value}", f"the bracket holds a value the "
                          f"model refuses ({err})") from None
    return p


def lever_override(params: Config, lever: str, value: float) -> str:
    """The ``python -m sim`` override that sets the lever to ``value``."""
    kind = lever_kind(params, lever)
    text = str(int(round(value))) if kind is int else repr(float(value))
    inner = _timeline_parts(lever)
    if inner is None:
        return f"{lever}={text}"
    event, setting = inner
    changes = {**params.timeline[event].changes, setting: text}
    body = ", ".join(f"{k}: {_yaml_value(v)}" for k, v in changes.items())
    return f"timeline.{event}.changes={{{body}}}"


def _yaml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# -- checks ----------------------------------------------------------------------------------
def grid(s: Settings, kind: type) -> np.ndarray:
    """The bracket's values, checked (ConfigError naming the setting)."""
    for name in ("low", "high"):
        value = getattr(s, name)
        if value is None or not math.isfinite(value):
            raise ConfigError(f"solve.{name}", value, "must be a finite number")
    step = 1.0 if s.step is None else s.step
    if not math.isfinite(step) or step <= 0:
        raise ConfigError("solve.step", s.step, "must be a number above 0")
    if s.high <= s.low:
        raise ConfigError("solve.high", s.high, f"must be above solve.low={s.low}")
    if kind is int and any(float(v) != int(v) for v in (s.low, s.high, step)):
        raise ConfigError("solve.step", s.step, "an integer lever needs whole low, high "
                                                "and step")
    n = (s.high - s.low) / step
    if abs(n - round(n)) > 1e-9 * max(1.0, n):
        raise ConfigError("solve.step", step, f"must divide high - low = {s.high - s.low}")
    if round(n) + 1 > MAX_GRID:
        raise ConfigError("solve.step", step, f"gives {round(n) + 1} values; at most {MAX_GRID}")
    return s.low + step * np.arange(round(n) + 1)


def check(params: Config, s: Settings) -> np.ndarray:
    """Refuse bad settings in one line before anything runs; returns the grid."""
    check_settings(s, "solve")  # types, NaN, infinity and bounds of every setting
    if not s.lever:
        raise ConfigError("solve.lever", s.lever, "required: the setting to solve for, "
                                                  "e.g. officials.count")
    if not s.target:
        raise ConfigError("solve.target", s.target, "required: a dotted key of summary.json, "
                                                    "e.g. share_decided_within_limit")
    if (s.at_least is None) == (s.at_most is None):
        raise ConfigError("solve.at_least", s.at_least,
                          "give exactly one of solve.at_least and solve.at_most")
    threshold = s.at_least if s.at_least is not None else s.at_most
    name = "solve.at_least" if s.at_least is not None else "solve.at_most"
    if not math.isfinite(threshold):
        raise ConfigError(name, threshold, "must be a finite number")
    if s.target.rsplit(".", 1)[-1].startswith("share_") and not 0 <= threshold <= 1:
        raise ConfigError(name, threshold, f"{s.target} is a share: must be between 0 and 1")
    check_figure("solve.target", s.target, params)
    values = grid(s, lever_kind(params, s.lever))
    for v in (values[0], values[-1]):
        with_lever(params, s.lever, v)  # both ends must be values the model accepts
    return values


# -- the search ------------------------------------------------------------------------------
def evaluate(params: Config, s: Settings, value: float, n: int, jobs: int,
             progress: bool | None = None) -> tuple[Evaluation, Results]:
    """Run replications 0..n-1 at one lever value; NaN (figure undefined) is not met."""
    results = replicate(with_lever(params, s.lever, value), n, jobs, progress=progress)
    x = results.replications[s.target].to_numpy(dtype=float)  # a figure: check() saw to it
    with np.errstate(invalid="ignore"):
        met = x >= s.at_least if s.at_least is not None else x <= s.at_most
    return Evaluation(float(value), x, met & np.isfinite(x)), results


def solve(params: Config, s: Settings, replications: int | None = None, jobs: int | None = None,
          log: Callable[[str], None] = print, progress: bool | None = None) -> Solution:
    """Bisection on the grid for the least (``seek=least``) or greatest value meeting the
    target in at least ``s.probability`` of the replications, then the monotone check."""
    values = check(params, s)
    n = params.replications if replications is None else replications
    jobs = params.jobs if jobs is None else jobs
    evals: dict[float, Evaluation] = {}
    kept: dict[float, Results] = {}

    def ok(k: int) -> bool:
        v = float(values[k])
        if v not in evals:
            log(f"solve: {s.lever}={v:g} ({len(evals) + 1} value(s) run so far)")
            evals[v], kept[v] = evaluate(params, s, v, n, jobs, progress)
            log(f"  {s.target}: mean {np.nanmean(evals[v].figure):.4g}; "
                f"met in {evals[v].share_met:.0%} of {n} replications")
        return evals[v].share_met >= s.probability

    least = s.seek == Seek.least
    good_end, bad_end = (len(values) - 1, 0) if least else (0, len(values) - 1)
    if not ok(good_end):
        _check_points(s, values, ok)
        return _finish(params, s, "not_met", None, evals, kept,
                       f"not met even at {s.lever}={values[good_end]:g}, the bracket's "
                       f"{'high' if least else 'low'} end: met in "
                       f"{evals[float(values[good_end])].share_met:.0%} of replications, "
                       f"{s.probability:.0%} needed; widen the bracket")
    if ok(bad_end):
        _check_points(s, values, ok)
        return _finish(params, s, "met_at_bracket_end", float(values[bad_end]), evals, kept,
                       f"met already at {s.lever}={values[bad_end]:g}, the bracket's "
                       f"{'low' if least else 'high'} end: the answer may lie beyond it")
    bad, good = bad_end, good_end
    while abs(good - bad) > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    _check_points(s, values, ok)
    return _finish(params, s, "solved", float(values[good]), evals, kept,
                   f"{s.seek} {s.lever} = {values[good]:g}: met in "
                   f"{evals[float(values[good])].share_met:.0%} of {n} replications; at "
                   f"{values[bad]:g}, {evals[float(values[bad])].share_met:.0%}")


def _check_points(s: Settings, values: np.ndarray, run: Callable[[int], bool]) -> None:
    """Run ``s.check_points`` interior values, evenly spaced, for the monotone check."""
    if s.check_points > 0 and len(values) > 2:
        for k in np.unique(np.linspace(0, len(values) - 1, s.check_points + 2).round()[1:-1]):
            run(int(k))


def monotone_check(evals: dict[float, Evaluation]) -> dict[str, Any]:
    """Whether the figure's mean moves one way over the values run: paired differences
    (same replications) between neighbouring values; a 95 % interval wholly against the
    direction from the lowest to the highest value breaks it."""
    values = sorted(evals)
    first, last = evals[values[0]].figure, evals[values[-1]].figure
    overall = float(np.nanmean(last - first)) if len(values) > 1 else 0.0
    direction = 0 if overall == 0 or math.isnan(overall) else (1 if overall > 0 else -1)
    breaks = []
    for a, b in zip(values, values[1:], strict=False):
        mean, low, high = mean_ci(evals[b].figure - evals[a].figure)
        against = (high < 0) if direction > 0 else (low > 0) if direction < 0 else False
        if against:
            breaks.append({"from": a, "to": b, "difference": mean, "ci95": [low, high]})
    return {"values": values, "direction": {1: "rises", -1: "falls", 0: "flat"}[direction],
            "monotone": not breaks, "breaks": breaks}


def _finish(params, s, status, answer, evals, kept, message) -> Solution:
    mono = monotone_check(evals)
    if not mono["monotone"]:
        b = mono["breaks"][0]
        message = (f"not monotone: {s.target} {mono['direction']} over the bracket but moves "
                   f"the other way from {s.lever}={b['from']:g} to {b['to']:g} (paired "
                   f"difference {b['difference']:.3g}, 95 % interval {b['ci95'][0]:.3g}.."
                   f"{b['ci95'][1]:.3g}); bisection would be unreliable ({message})")
        status = "not_monotone"
    return Solution(s, params, status, message, answer if status != "not_monotone" else None,
                    evals, mono, kept.get(answer) if answer is not None else None)
