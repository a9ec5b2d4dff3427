"""Targets: the articles' figures as readings on model outputs, and their observation model.

A reading (``seeds/targets.yaml``) is an interval ``[low, high]`` on a named output at a date, or
a one-sided bound. Implausibility follows Vernon et al. (2010) and Andrianakis et al. (2015):

    I(x) = d(E[f(x)], z) / sqrt(V_obs + V_md + V_s(x) + V_m(x))

on the target's scale (log10 for counts), where ``z`` is the observed value (the interval's
centre, or the bound), ``d`` the distance to it (one-sided for a bound), ``V_obs`` the
observation variance (a sixth of the interval's width, squared, so that with no other
uncertainty the interval's ends fall at the cutoff of 3; plus the binomial variance of a share
counted on a tally of ``sample_size`` files), ``V_md`` the model discrepancy, ``V_s`` the
variance of one realisation of the stochastic model (the world is one draw) and ``V_m`` the
uncertainty of the estimate of E[f(x)] (the emulator's, or ``V_s / n`` for n replications).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim import policies
from sim.files import read_yaml
from sim.params import DESTINATIONS

BASE_OUTPUTS = {
    "pending": "applications submitted and not yet decided, end of day",
    "approved_cumulative": "approvals since start_date, up to and including the date",
    "approved_7d": "approvals in the 7 days ending on the date",
    "approved_share": "approved / (approved + pending) since start_date",
    "pending_ratio_14d": "pending on the date / pending 14 days before",
    "export_index": "customs export index of the month ending on the date (sim/exports.py)",
}
FILTER_VALUES = {"destination": DESTINATIONS}
SCALES = ("linear", "log")
REQUIRED = ("id", "group", "default", "date", "output", "low", "high", "scale")


def number_text(x: float, digits: int = 4) -> str:
    """A reading's number for a printout: thousands grouped (2,000; 29,999), smaller numbers to
    ``digits`` significant digits (0.075, 1.234), never in exponent form."""
    x = float(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if x else "0"


def bounds_text(low: float | None, high: float | None) -> str:
    """A reading's interval in words: ``2,000 to 29,999``, or one-sided ``≤ 1`` / ``≥ 0.8``
    (a missing end is no bound, not a value to print)."""
    if low is None and high is None:
        return "no bound"
    if low is None:
        return f"≤ {number_text(high)}"
    if high is None:
        return f"≥ {number_text(low)}"
    return f"{number_text(low)} to {number_text(high)}"


class TargetsError(ValueError):
    """A targets, ranges or settings file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Target:
    """One reading of one reported figure."""

    id: str
    group: str
    default: bool
    date: str
    output: str
    low: float | None
    high: float | None
    scale: str = "linear"
    sd: float | None = None  # observation sd of a one-sided bound, on the target's scale
    sample_size: float | None = None  # tally a share was counted on (binomial error)
    reading: str = ""
    evidence: str = ""
    outlet: str = ""
    # Model discrepancy sd on the target's scale; None: the study's sd for the scale.
    discrepancy_sd: float | None = None

    def to_scale(self, x):
        """Values on the scale implausibility is measured on (log10 of at least 1 for counts)."""
        x = np.asarray(x, dtype=float)
        return np.log10(np.maximum(x, 1.0)) if self.scale == "log" else x

    @property
    def observed(self) -> float:
        """z: the interval's centre on the target's scale, or the bound."""
        bounds = [b for b in (self.low, self.high) if b is not None]
        return float(np.mean(self.to_scale(bounds)))

    @property
    def observation_var(self) -> float:
        if self.low is not None and self.high is not None:
            lo, hi = self.to_scale([self.low, self.high])
            var = ((hi - lo) / 6.0) ** 2
        else:
            var = float(self.sd) ** 2
        if self.sample_size:
            z = min(max(self.observed, 0.0), 1.0)
            var += z * (1 - z) / self.sample_size
        return var

    def distance(self, mean):
        """Signed-free distance of E[f] from z: two-sided for an interval, one-sided for a
        bound (0 on the allowed side)."""
        m, z = self.to_scale(mean), self.observed
        if self.low is not None and self.high is not None:
            return np.abs(m - z)
        if self.low is not None:
            return np.maximum(z - m, 0.0)
        return np.maximum(m - z, 0.0)

    def inside(self, values):
        """Whether values (on the output's own scale) fall inside the reading."""
        v = np.asarray(values, dtype=float)
        ok = np.ones(v.shape, dtype=bool)
        if self.low is not None:
            ok &= v >= self.low
        if self.high is not None:
            ok &= v <= self.high
        return ok


def target_discrepancy(target: Target, by_scale: dict[str, float]) -> float:
    """The model discrepancy sd of a target: its own, or the study's for its scale."""
    return by_scale[target.scale] if target.discrepancy_sd is None else target.discrepancy_sd


def implausibility(target: Target, mean, var_s, var_m, discrepancy_sd: float):
    """I = d(E, z) / sqrt(V_obs + V_md + V_s + V_m), elementwise (see the module docstring)."""
    total = target.observation_var + discrepancy_sd**2 + np.asarray(var_s) + np.asarray(var_m)
    return target.distance(mean) / np.sqrt(total)


def parse_output(name: str) -> tuple[str, tuple[str, str] | None]:
    """``"pending:destination=US"`` -> ``("pending", ("destination", "US"))``; checks the name."""
    base, _, restriction = str(name).partition(":")
    if base not in BASE_OUTPUTS:
        raise TargetsError(f"output={name}: unknown; known: {', '.join(BASE_OUTPUTS)} "
                           f"(optionally :destination=<{'|'.join(DESTINATIONS)}>)")
    if not restriction:
        return base, None
    dim, _, value = restriction.partition("=")
    if dim not in FILTER_VALUES or value not in FILTER_VALUES[dim] or base == "pending_ratio_14d":
        raise TargetsError(f"output={name}: unknown restriction; allowed: "
                           f"destination=<{'|'.join(DESTINATIONS)}>")
    return base, (dim, value)


def read_section(path: str | Path, section: str, kind: type) -> Any:
    """The non-empty ``section:`` (a list or a mapping, ``kind``) of a study's YAML file;
    TargetsError with one line when the file cannot be read or the section is missing."""
    path = Path(path)
    try:
        doc = read_yaml(path)
    except (OSError, yaml.YAMLError) as err:
        raise TargetsError(f"{path}: cannot read {section}: {str(err).splitlines()[0]}"
                           ) from None
    entries = doc.get(section) if isinstance(doc, dict) else None
    if not isinstance(entries, kind) or not entries:
        raise TargetsError(f"{path}: expected a {'list' if kind is list else 'mapping'} under "
                           f"'{section}:'")
    return entries


def load_targets(path: str | Path, start_date: str, end_date: str) -> list[Target]:
    """Every reading of a targets file, checked; TargetsError names the problem in one line."""
    path = Path(path)
    entries = read_section(path, "targets", list)
    start, end = policies.parse_date(start_date), policies.parse_date(end_date)
    out, seen = [], set()
    for i, e in enumerate(entries):
        where = f"{path.name}: targets[{i}]"
        if not isinstance(e, dict):
            raise TargetsError(f"{where}: expected a mapping")
        missing = [f for f in REQUIRED if f not in e]
        if missing:
            raise TargetsError(f"{where} ({e.get('id', '?')}): missing {', '.join(missing)}")
        tid = str(e["id"])
        if tid in seen:
            raise TargetsError(f"{where}: duplicate id {tid}")
        seen.add(tid)
        parse_output(e["output"])
        low, high = e["low"], e["high"]
        if low is None and high is None:
            raise TargetsError(f"{where} ({tid}): low and high cannot both be null")
        if low is not None and high is not None and not low < high:
            raise TargetsError(f"{where} ({tid}): low={low} must be below high={high}")
        if e["scale"] not in SCALES:
            raise TargetsError(f"{where} ({tid}): scale={e['scale']}: must be linear or log")
        if (low is None or high is None) and not (isinstance(e.get("sd"), int | float)
                                                  and e["sd"] > 0):
            raise TargetsError(f"{where} ({tid}): a one-sided bound needs sd > 0")
        try:
            day = policies.parse_date(e["date"])
        except (TypeError, ValueError):
            raise TargetsError(f"{where} ({tid}): date={e['date']}: not a date") from None
        if not start <= day <= end:
            raise TargetsError(f"{where} ({tid}): date={e['date']}: outside the scenario's "
                               f"horizon {start_date}..{end_date}")
        out.append(Target(
            id=tid, group=str(e["group"]), default=bool(e["default"]), date=str(e["date"]),
            output=str(e["output"]), low=None if low is None else float(low),
            high=None if high is None else float(high), scale=e["scale"], sd=e.get("sd"),
            sample_size=e.get("sample_size"), reading=str(e.get("reading", "")),
            evidence=str(e.get("evidence", "")),
            outlet=str((e.get("source") or {}).get("outlet", ""))))
    groups: dict[str, int] = {}
    for t in out:
        groups[t.group] = groups.get(t.group, 0) + t.default
    bad = [g for g, n in groups.items() if n > 1]
    if bad:
        raise TargetsError(f"{path.name}: group {bad[0]} has {groups[bad[0]]} default readings;"
                           " at most one")
    return out


def select_targets(targets: Sequence[Target], readings: Sequence[str] = (),
                   drop_groups: Sequence[str] = ()) -> list[Target]:
    """The readings used: each group's default (groups without one are checks only), replaced
    by any reading named in ``readings``, minus the groups in ``drop_groups``."""
    by_id = {t.id: t for t in targets}
    groups = {t.group for t in targets}
    chosen: dict[str, Target] = {t.group: t for t in targets if t.default}
    for rid in readings:
        if rid not in by_id:
            raise TargetsError(f"calibrate.readings={rid}: no such target id")
        chosen[by_id[rid].group] = by_id[rid]
    for group in drop_groups:
        if group not in groups:
            raise TargetsError(f"calibrate.drop_groups={group}: no such group")
        chosen.pop(group, None)
    return [t for t in targets if chosen.get(t.group) is t]


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- outputs of a run ------------------------------------------------------------------------------
def output_series(result, name: str) -> np.ndarray:
    """The daily series of one output name, from RunResult.daily and RunResult.by_class.

    This is the one place that maps target output names onto model results.
    """
    base, restriction = parse_output(name)
    daily = result.daily
    if restriction is None:
        pending, approved = daily["pending"], daily["approved"]
    else:
        dim, value = restriction
        table = result.by_class
        rows = table[table[dim].astype(str) == value]
        sums = rows.groupby("date")[["pending", "approved"]].sum().reindex(
            daily["date"], fill_value=0)
        pending, approved = sums["pending"], sums["approved"]
    pending = pending.to_numpy(dtype=float)
    if base == "pending":
        return pending
    if base == "pending_ratio_14d":
        before = np.concatenate([np.full(14, np.nan), pending])[:len(pending)]
        with np.errstate(invalid="ignore", divide="ignore"):
            return pending / np.maximum(before, 1.0)
    cumulative = np.cumsum(approved.to_numpy(dtype=float))
    if base == "approved_cumulative":
        return cumulative
    if base == "approved_share":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cumulative + pending > 0, cumulative / (cumulative + pending), 0.0)
    # approved_7d: the day itself and the six before it (fewer at the very start).
    before = np.concatenate([np.zeros(7), cumulative])[:len(cumulative)]
    return cumulative - before


def target_days(targets: Sequence[Target], start_date: str) -> np.ndarray:
    """Day index (from start_date) of each target's date."""
    start = policies.parse_date(start_date)
    return np.array([(policies.parse_date(t.date) - start).days for t in targets], dtype=int)


def output_values(result, targets: Sequence[Target], days: np.ndarray) -> np.ndarray:
    """The simulated value of each target's output at its date."""
    cache: dict[str, np.ndarray] = {}
    values = np.empty(len(targets))
    for k, t in enumerate(targets):
        base, restriction = parse_output(t.output)
        if base == "export_index":  # a month's figure, worked out by the run (sim/exports.py)
            series = result.summary["export_index"]["total" if restriction is None
                                                    else restriction[1]]
            values[k] = series.get(t.date[:7], np.nan)
            continue
        if t.output not in cache:
            cache[t.output] = output_series(result, t.output)
        values[k] = cache[t.output][days[k]]
    return values


def last_date(targets: Sequence[Target]) -> str:
    return max(t.date for t in targets)
