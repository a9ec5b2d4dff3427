"""Calibration by history matching: which parameter sets reproduce the articles' figures?

The method, in order:

1. **Targets** (``seeds/targets.yaml``): each reported figure is an interval ``[low, high]`` on a
   named model output at a date. Readings of the same statement share a ``group``; one reading
   per group is used (the ``default: true`` one unless another is chosen).
2. **Uncertain inputs** (``configs/calibration/<scenario>.yaml``): dotted keys of the scenario
   with a range and the reason for it.
3. **Wave 1**: a space-filling design (Latin hypercube or Sobol, ``scipy.stats.qmc``) over the
   ranges; each point is simulated ``replications`` times with its own seed from a
   ``SeedSequence``, so results do not depend on how many processes run them.
4. **Implausibility** of a point for a target: the distance from the replications' mean to the
   target interval (0 inside), divided by the standard deviation of one realisation (the real
   world is one draw of the process) plus the error of the estimated mean and an optional model
   discrepancy. A point is *plausible* when no chosen target has implausibility above the cutoff
   (3, Pukelsheim's three-sigma rule).
5. **Later waves**: a new design in the box around the plausible points of the earlier waves.
6. **Ensemble**: every plausible point of every wave (if none, the least implausible, flagged).
   **Best point**: a few plausible points with every mean inside its interval, the nearest to
   the ensemble's centre first, are re-run with more replications and the scenario's own seed
   (the random numbers the baseline uses); the one whose replications most often fall inside
   every interval at once wins.

Every alternative reading is scored on the same simulations, so the report can say which
readings the model can reconcile with the others. The model is run through
:func:`sim.runner.simulate`, like the CLI; this module has no copy of the model or defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import math
import subprocess
import sys
import time
import typing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import qmc

from sim import config as sim_config
from sim import policies
from sim.params import DESTINATIONS, Config
from sim.runner import simulate

REPO_DIR = sim_config.CONFIG_DIR.parent

# -- targets ------------------------------------------------------------------------------------
# The model outputs a target may name. A name is a base measure, optionally restricted to one
# value of a class dimension of RunResult.by_class ("pending:destination=US").
BASE_OUTPUTS = {
    "pending": "applications submitted and not yet decided, end of day",
    "approved_cumulative": "approvals since start_date, up to and including the date",
    "approved_7d": "approvals in the 7 days ending on the date",
    "officials": "officials in the reviewing pool on the date",
}
FILTERABLE = {"pending", "approved_cumulative", "approved_7d"}
FILTER_VALUES = {"destination": DESTINATIONS}
TARGET_FIELDS = ("id", "group", "default", "date", "output", "low", "high")


class TargetsError(ValueError):
    """A targets or ranges file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Target:
    """One reading of one reported figure: ``low <= output(date) <= high``."""

    id: str
    group: str
    default: bool
    date: str
    output: str
    low: float
    high: float
    reading: str = ""
    evidence: str = ""
    outlet: str = ""


def parse_output(name: str) -> tuple[str, tuple[str, str] | None]:
    """``"pending:destination=US"`` -> ``("pending", ("destination", "US"))``; checks the name."""
    base, _, restriction = str(name).partition(":")
    if base not in BASE_OUTPUTS:
        raise TargetsError(f"unknown output {name!r}; known: {', '.join(known_outputs())}")
    if not restriction:
        return base, None
    dim, _, value = restriction.partition("=")
    if base not in FILTERABLE or dim not in FILTER_VALUES or value not in FILTER_VALUES[dim]:
        raise TargetsError(f"unknown output {name!r}; known: {', '.join(known_outputs())}")
    return base, (dim, value)


def known_outputs() -> list[str]:
    """Every output name a target may use."""
    names = list(BASE_OUTPUTS)
    for base in FILTERABLE:
        for dim, values in FILTER_VALUES.items():
            names += [f"{base}:{dim}={v}" for v in values]
    return names


def load_targets(path: str | Path, start_date: str, end_date: str) -> list[Target]:
    """All targets (every reading) of a targets file, checked; TargetsError names the problem.

    Refused: a missing field, ``low > high``, an unknown output name, a date outside
    ``start_date..end_date`` (the scenario's horizon), a duplicate id, and a group without
    exactly one ``default: true`` reading.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise TargetsError(f"{path}: cannot read targets: {str(err).splitlines()[0]}") from None
    entries = doc.get("targets") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TargetsError(f"{path}: expected a non-empty list under 'targets:'")
    start, end = policies.parse_date(start_date), policies.parse_date(end_date)
    targets, seen = [], set()
    for i, entry in enumerate(entries):
        where = f"{path.name}: target {entry.get('id', f'#{i + 1}')!s}" if isinstance(
            entry, dict) else f"{path.name}: target #{i + 1}"
        if not isinstance(entry, dict):
            raise TargetsError(f"{where}: expected a mapping")
        missing = [f for f in TARGET_FIELDS if entry.get(f) is None]
        if missing:
            raise TargetsError(f"{where}: missing field {', '.join(missing)}")
        if entry["id"] in seen:
            raise TargetsError(f"{where}: duplicate id")
        seen.add(entry["id"])
        try:
            low, high = float(entry["low"]), float(entry["high"])
        except (TypeError, ValueError):
            raise TargetsError(f"{where}: low and high must be numbers") from None
        if not low <= high:
            raise TargetsError(f"{where}: interval low={entry['low']} > high={entry['high']}")
        try:
            parse_output(entry["output"])
        except TargetsError as err:
            raise TargetsError(f"{where}: {err}") from None
        try:
            date = policies.parse_date(entry["date"])
        except ValueError:
            raise TargetsError(f"{where}: date {entry['date']!r} is not YYYY-MM-DD") from None
        if not start <= date <= end:
            raise TargetsError(f"{where}: date {date} outside the horizon {start}..{end}")
        if not isinstance(entry["default"], bool):
            raise TargetsError(f"{where}: default must be true or false")
        source = entry.get("source") or {}
        targets.append(Target(
            id=str(entry["id"]), group=str(entry["group"]), default=entry["default"],
            date=date.isoformat(), output=str(entry["output"]), low=low, high=high,
            reading=str(entry.get("reading", "")), evidence=str(entry.get("evidence", "")),
            outlet=str(source.get("outlet", "")) if isinstance(source, dict) else ""))
    for group in dict.fromkeys(t.group for t in targets):
        n = sum(t.default for t in targets if t.group == group)
        if n != 1:
            raise TargetsError(f"{path.name}: group {group} has {n} default readings, needs 1")
    return targets


def select_targets(targets: Sequence[Target], readings: Sequence[str] = (),
                   drop_groups: Sequence[str] = ()) -> list[Target]:
    """One reading per group: the default, or the one named in ``readings``; minus dropped groups.
    """
    by_id = {t.id: t for t in targets}
    groups = {t.group for t in targets}
    chosen: dict[str, Target] = {t.group: t for t in targets if t.default}
    for rid in readings:
        if rid not in by_id:
            raise TargetsError(f"readings: unknown target id {rid!r}")
        chosen[by_id[rid].group] = by_id[rid]
    for group in drop_groups:
        if group not in groups:
            raise TargetsError(f"drop_groups: unknown group {group!r}")
        chosen.pop(group)
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
    if base == "officials":
        return daily["officials"].to_numpy(dtype=float)
    if restriction is None:
        pending, approved = daily["pending"], daily["approved"]
    else:
        dim, value = restriction
        table = result.by_class
        rows = table[table[dim].astype(str) == value]
        sums = rows.groupby("date")[["pending", "approved"]].sum().reindex(
            daily["date"], fill_value=0)
        pending, approved = sums["pending"], sums["approved"]
    if base == "pending":
        return pending.to_numpy(dtype=float)
    approved = approved.to_numpy(dtype=float)
    cumulative = np.cumsum(approved)
    if base == "approved_cumulative":
        return cumulative
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
        if t.output not in cache:
            cache[t.output] = output_series(result, t.output)
        values[k] = cache[t.output][days[k]]
    return values


# -- uncertain inputs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parameter:
    """An uncertain input: a dotted key into the scenario's parameters and its range.

    ``key`` may go into lists and mappings (``arrivals.surges.0.size``,
    ``classes.destination_shares.US``). ``rebalance``: weights of the other entries of that
    mapping, which share what is left so that the mapping sums to 1 (fixed weights rather than
    the scenario's current shares, so that a calibrated scenario recalibrates identically).
    """

    key: str
    low: float
    high: float
    reason: str
    scale: str = "linear"  # linear | log
    integer: bool = False
    rebalance: dict[str, float] | None = None

    def value(self, u: float) -> float | int:
        """The value at position ``u`` in [0, 1) of the range (4 significant digits)."""
        if self.integer:  # equal mass per integer low..high
            return int(min(math.floor(self.low + u * (self.high - self.low + 1)), self.high))
        if self.scale == "log":
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            x = self.low + u * (self.high - self.low)
        return float(f"{x:.4g}")

    def unit(self, x: float) -> float:
        """Inverse of :meth:`value`: position of ``x`` in the range, in [0, 1]."""
        if self.integer:
            return (x - self.low + 0.5) / (self.high - self.low + 1)
        if self.scale == "log":
            return (math.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (x - self.low) / (self.high - self.low)


# Settings that fix a run's frame rather than describe the process.
NOT_CALIBRATED = ("name", "seed", "start_date", "end_date", "horizon_days", "warmup_days",
                  "calendar", "timeline", "output")


def load_ranges(path: str | Path, params: Config) -> list[Parameter]:
    """The uncertain inputs of a ranges file, checked against the scenario's parameters."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise TargetsError(f"{path}: cannot read ranges: {str(err).splitlines()[0]}") from None
    entries = doc.get("parameters") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise TargetsError(f"{path}: expected a mapping under 'parameters:'")
    out = []
    fields = {f.name for f in dataclasses.fields(Parameter)}
    for key, spec in entries.items():
        where = f"{path.name}: {key}"
        if not isinstance(spec, dict) or spec.get("low") is None or spec.get("high") is None:
            raise TargetsError(f"{where}: needs low and high")
        if not spec.get("reason"):
            raise TargetsError(f"{where}: needs a reason")
        unknown = set(spec) - fields
        if unknown:
            raise TargetsError(f"{where}: unknown field {', '.join(sorted(unknown))}")
        p = Parameter(key=key, **spec)
        if not p.low < p.high:
            raise TargetsError(f"{where}: low={p.low} must be below high={p.high}")
        try:
            get_path(params, key)
        except (KeyError, IndexError, ValueError, TypeError):
            raise TargetsError(f"{where}: no such key in the scenario") from None
        if key.split(".")[0] in NOT_CALIBRATED:
            raise TargetsError(f"{where}: fixes the run's frame, cannot be calibrated")
        if p.rebalance is not None:
            parent = get_path(params, key.rsplit(".", 1)[0])
            others = set(parent) - {key.rsplit(".", 1)[1]} if isinstance(parent, dict) else None
            if others != set(p.rebalance) or sum(p.rebalance.values()) <= 0:
                raise TargetsError(f"{where}: rebalance needs a positive weight for each of "
                                   f"{', '.join(sorted(others or []))}")
        if p.scale not in ("linear", "log") or (p.scale == "log" and p.low <= 0):
            raise TargetsError(f"{where}: scale must be linear, or log with low > 0")
        out.append(p)
    return out


def _step(obj: Any, part: str) -> Any:
    if dataclasses.is_dataclass(obj):
        if part not in {f.name for f in dataclasses.fields(obj)}:
            raise KeyError(part)
        return getattr(obj, part)
    if isinstance(obj, list):
        return obj[int(part)]
    return obj[part]


def get_path(params: Config, key: str) -> Any:
    """The value at a dotted key (through dataclass fields, list indices and mapping keys)."""
    obj: Any = params
    for part in key.split("."):
        obj = _step(obj, part)
    return obj


def field_key(params: Config, key: str) -> str:
    """The dotted key's longest prefix made of dataclass fields only (what apply_changes sets)."""
    obj: Any = params
    parts = []
    for part in key.split("."):
        if not dataclasses.is_dataclass(obj):
            break
        parts.append(part)
        obj = getattr(obj, part)
    return ".".join(parts)


def set_values(params: Config, parameters: Sequence[Parameter],
               values: Sequence[float]) -> Config:
    """A copy of ``params`` with each parameter set (shares rebalanced), then validated."""
    p = copy.deepcopy(params)
    for par, value in zip(parameters, values, strict=True):
        parts = par.key.split(".")
        parent = get_path(p, ".".join(parts[:-1])) if len(parts) > 1 else p
        last = parts[-1]
        if dataclasses.is_dataclass(parent):
            setattr(parent, last, value)
        elif isinstance(parent, list):
            parent[int(last)] = value
        else:
            parent[last] = value
            if par.rebalance:
                _rebalance(parent, last, par.rebalance)
    sim_config.validate(p)
    return p


def _rebalance(shares: dict[str, float], fixed: str, weights: dict[str, float]) -> None:
    """The other entries share ``1 - shares[fixed]`` by ``weights`` (6 decimals; the last one
    takes the rounding, so the sum is 1)."""
    others = [k for k in shares if k != fixed]
    total = sum(weights.values())
    left = 1.0 - shares[fixed]
    for k in others:
        shares[k] = round(left * weights[k] / total, 6)
    shares[others[-1]] = round(left - sum(shares[k] for k in others[:-1]), 6)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def point_of(params: Config, parameters: Sequence[Parameter]) -> dict[str, Any]:
    """The calibrated keys of ``params`` as {dotted field key: plain value} (an ensemble member).

    Keys stop at the first list or mapping (``arrivals.surges`` is written whole), so that each
    one is a key :func:`sim.policies.apply_changes` knows; values are plain YAML types.
    """
    keys = dict.fromkeys(field_key(params, p.key) for p in parameters)
    return {k: _plain(get_path(params, k)) for k in keys}


def apply_point(params: Config, point: dict[str, Any]) -> Config:
    """``params`` with an ensemble member or best point applied, typed and validated.

    Like :func:`sim.policies.apply_changes`, but lists of mappings (``arrivals.surges``) are
    turned back into their dataclasses first. Use this to run a scenario over the ensemble.
    """
    typed = {}
    for key, value in point.items():
        parts = key.split(".")
        parent = get_path(params, ".".join(parts[:-1])) if len(parts) > 1 else params
        hint = typing.get_type_hints(type(parent)).get(parts[-1])
        args = typing.get_args(hint)
        if isinstance(value, list) and args and dataclasses.is_dataclass(args[0]):
            value = [args[0](**v) if isinstance(v, dict) else v for v in value]
        typed[key] = value
    p = policies.apply_changes(params, typed)
    sim_config.validate(p)
    return p


# -- running points --------------------------------------------------------------------------------
def point_seed(seed: int, wave: int, index: int) -> int:
    """Seed of design point ``index`` of ``wave``: from a SeedSequence, never from a worker."""
    return int(np.random.SeedSequence(seed, spawn_key=(wave, index)).generate_state(1)[0])


def _run_point(task: tuple[Config, int, list[Target], np.ndarray]) -> tuple[np.ndarray, float]:
    """Replications 0..n-1 of one point: array (replications, targets), and CPU seconds."""
    params, n, targets, days = task
    cpu = time.process_time()
    values = np.array([output_values(simulate(params, replication=r), targets, days)
                       for r in range(n)])
    return values, time.process_time() - cpu


def run_points(points: Sequence[Config], replications: int, targets: Sequence[Target],
               processes: int = 1, label: str = "",
               log: Callable[[str], None] | None = None,
               usage: dict[str, float] | None = None) -> np.ndarray:
    """Simulate every point ``replications`` times: array (points, replications, targets).

    Each point carries its own seed, so the result is the same for any number of processes.
    ``usage["cpu_s"]`` (if given) is increased by the CPU time the simulations took.
    """
    days = target_days(targets, points[0].start_date) if points else np.array([], int)
    tasks = [(p, replications, list(targets), days) for p in points]
    out = []
    cpu_s = 0.0
    t0, step = time.monotonic(), max(1, len(tasks) // 10)

    def progress(i: int) -> None:
        if log and (i % step == 0 or i == len(tasks)):
            spent = time.monotonic() - t0
            left = spent / i * (len(tasks) - i)
            log(f"{label}{i}/{len(tasks)} points, {spent:.0f} s, about {left:.0f} s left")

    if processes <= 1:
        results = map(_run_point, tasks)
        for i, (values, cpu) in enumerate(results, 1):
            out.append(values)
            cpu_s += cpu
            progress(i)
    else:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            for i, (values, cpu) in enumerate(pool.map(_run_point, tasks), 1):
                out.append(values)
                cpu_s += cpu
                progress(i)
    if usage is not None:
        usage["cpu_s"] = usage.get("cpu_s", 0.0) + cpu_s
    return np.array(out).reshape(len(points), replications, len(targets))


# -- scoring ---------------------------------------------------------------------------------------
def implausibility(samples: np.ndarray, low: np.ndarray, high: np.ndarray,
                   discrepancy: float = 0.0) -> np.ndarray:
    """History-matching implausibility of each (point, target), from replications.

    ``samples``: (points, replications, targets). Distance from the replications' mean to the
    interval [low, high] (0 inside), in standard deviations of ``observation - mean``: one
    realisation's variance (the world is one draw), the mean's sampling variance, and a model
    discrepancy given as a fraction of the nearer interval bound. Outside the interval with no
    spread at all: infinite.
    """
    n = samples.shape[1]
    mean = samples.mean(axis=1)
    var = samples.var(axis=1, ddof=1) if n > 1 else np.zeros_like(mean)
    distance = np.maximum(np.maximum(low - mean, mean - high), 0.0)
    bound = np.where(mean < low, np.abs(low), np.abs(high))
    scale = np.sqrt(var * (1 + 1 / n) + (discrepancy * bound) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        imp = np.where(distance > 0, distance / scale, 0.0)
    return np.where(np.isnan(imp), np.inf, imp)


@dataclass
class Scores:
    """Summaries of the replications of many points, for every target (all readings)."""

    mean: np.ndarray  # (points, targets)
    low: np.ndarray  # 5 % quantile of the replications
    high: np.ndarray  # 95 % quantile
    imp: np.ndarray  # implausibility

    @classmethod
    def of(cls, samples: np.ndarray, targets: Sequence[Target],
           discrepancy: float) -> Scores:
        lo = np.array([t.low for t in targets])
        hi = np.array([t.high for t in targets])
        return cls(samples.mean(axis=1), np.quantile(samples, 0.05, axis=1),
                   np.quantile(samples, 0.95, axis=1),
                   implausibility(samples, lo, hi, discrepancy))


def all_inside(samples: np.ndarray, targets: Sequence[Target],
               columns: Sequence[int]) -> np.ndarray:
    """Per point, the share of replications with every chosen target inside its interval."""
    cols = list(columns)
    lo = np.array([targets[j].low for j in cols])
    hi = np.array([targets[j].high for j in cols])
    x = samples[:, :, cols]
    return ((x >= lo) & (x <= hi)).all(axis=2).mean(axis=1)


def max_implausibility(imp: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """Largest implausibility over the chosen targets, per point."""
    return imp[:, list(columns)].max(axis=1) if len(columns) else np.zeros(len(imp))


# -- the calibration -------------------------------------------------------------------------------
@dataclass
class Wave:
    points: int
    replications: int


@dataclass
class Settings:
    """What a calibration does; the Hydra app fills it from ``configs/calibrate/*.yaml``."""

    name: str = "default"
    scenario: str = "baseline_2025"
    scenario_overrides: list[str] = field(default_factory=list)
    targets_file: str = "seeds/targets.yaml"  # relative to the repository
    ranges_file: str = "calibration/baseline_2025.yaml"  # relative to configs/
    readings: list[str] = field(default_factory=list)  # target ids replacing their default
    drop_groups: list[str] = field(default_factory=list)
    design: str = "lhs"  # lhs | sobol
    seed: int = 2025
    cutoff: float = 3.0
    discrepancy: float = 0.0
    waves: list[Wave] = field(default_factory=lambda: [Wave(200, 3), Wave(150, 3)])
    refine_margin: float = 0.15  # later waves: box around plausible points, widened this much
    min_members: int = 10  # fewer plausible points: say so; none: keep this many least bad
    final_candidates: int = 6
    final_replications: int = 12
    end_margin_days: int = 1
    processes: int = 2
    plots: bool = True
    install: bool = False  # also write the result into configs/calibrated/


@dataclass
class Calibration:
    """Everything a calibration found; see :func:`calibrate`."""

    settings: Settings
    base: Config  # the scenario, horizon cut after the last target
    parameters: list[Parameter]
    targets: list[Target]  # every reading in the file
    chosen: list[int]  # columns of the readings calibrated to
    units: np.ndarray  # (points, parameters) positions in the unit cube
    values: list[list[float]]  # (points, parameters)
    wave_of: np.ndarray  # wave number of each point
    scores: Scores
    plausible: np.ndarray  # bool per point
    relaxed: bool  # True: no plausible point, the ensemble is the least implausible
    members: list[int]  # point indices in the ensemble, in ensemble order
    best_params: Config
    best_scores: Scores  # one row: the best point with final replications
    best_samples: np.ndarray  # (final_replications, targets)
    best_hits: float  # share of the best point's replications inside every chosen interval
    candidates: list[int]
    runtime_s: float
    provenance: dict[str, Any]
    log_lines: list[str] = field(default_factory=list)

    def best_point(self) -> dict[str, Any]:
        return point_of(self.best_params, self.parameters)

    def best_params_short(self) -> Config:
        """The best point over the calibration horizon (for plots)."""
        return dataclasses.replace(self.best_params, end_date=self.base.end_date,
                                   horizon_days=None, output=self.base.output)

    def member_points(self) -> list[dict[str, Any]]:
        return [point_of(set_values(self.base, self.parameters, self.values[i]),
                         self.parameters) for i in self.members]


def scenario_params(settings: Settings) -> Config:
    """The scenario as the CLI composes it (same configs, same defaults)."""
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"scenario={settings.scenario}", *settings.scenario_overrides]
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: compose with its search path
        from hydra import compose

        sim_config.register()
        cfg = compose(config_name="config", overrides=overrides)
    else:
        cfg = sim_config.load_config(overrides)
    return sim_config.to_params(cfg)


def _resolve(path: str, root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def design(n: int, d: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` space-filling points in the unit cube [0, 1)^d."""
    if kind == "sobol":
        return qmc.Sobol(d, scramble=True, seed=rng).random(n)
    if kind == "lhs":
        return qmc.LatinHypercube(d, seed=rng).random(n)
    raise ValueError(f"design={kind!r}: must be lhs or sobol")


def refine_box(units: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """The box around points in the unit cube, widened by ``margin`` of its width (and 0.02)."""
    lo, hi = units.min(axis=0), units.max(axis=0)
    pad = margin * (hi - lo) + 0.02
    return np.clip(lo - pad, 0, 1), np.clip(hi + pad, 0, 1)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_DIR,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out + (" (uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def calibrate(settings: Settings, base: Config | None = None,
              targets: list[Target] | None = None, parameters: list[Parameter] | None = None,
              log: Callable[[str], None] | None = None, command: str = "") -> Calibration:
    """Run the waves, choose the ensemble and the best point. Pure: writes no file.

    ``base``, ``targets`` and ``parameters`` default to the scenario and the files named in
    ``settings`` (tests pass their own).
    """
    t_start = time.monotonic()
    usage = {"cpu_s": 0.0}
    lines: list[str] = []

    def say(msg: str) -> None:
        lines.append(msg)
        if log:
            log(msg)

    scenario = base if base is not None else scenario_params(settings)
    horizon_end = scenario.end_date or (policies.parse_date(scenario.start_date) + dt.timedelta(
        days=scenario.horizon_days - 1)).isoformat()
    targets_path = _resolve(settings.targets_file, REPO_DIR)
    if targets is None:
        targets = load_targets(targets_path, scenario.start_date, horizon_end)
    chosen_targets = select_targets(targets, settings.readings, settings.drop_groups)
    chosen = [targets.index(t) for t in chosen_targets]
    if parameters is None:
        parameters = load_ranges(_resolve(settings.ranges_file, sim_config.CONFIG_DIR), scenario)

    # Calibration runs stop a few days after the last target date (prefix of a full run).
    last = max(policies.parse_date(t.date) for t in targets)
    end = min(last + dt.timedelta(days=settings.end_margin_days),
              policies.parse_date(horizon_end))
    base_p = dataclasses.replace(scenario, end_date=end.isoformat(), horizon_days=None)
    base_p = dataclasses.replace(base_p, output=dataclasses.replace(base_p.output, plots=False,
                                                                    applications=False))
    sim_config.validate(base_p)

    d = len(parameters)
    units = np.empty((0, d))
    wave_of = np.empty(0, dtype=int)
    samples_all = []
    values: list[list[float]] = []
    plausible = np.zeros(0, dtype=bool)
    scores = Scores(*(np.empty((0, len(targets))) for _ in range(4)))
    for w, wave in enumerate(settings.waves, 1):
        rng = np.random.default_rng([settings.seed, w])
        where = ""
        if w == 1:
            lo, hi = np.zeros(d), np.ones(d)
        else:
            # Too few plausible points to span a box: use the least implausible instead.
            few = plausible.sum() < 2
            focus = units[plausible] if not few else units[np.argsort(
                max_implausibility(scores.imp, chosen))[:max(settings.min_members, 2)]]
            lo, hi = refine_box(focus, settings.refine_margin)
            where = f" in the box around the {'least implausible' if few else 'plausible'} points"
        u = lo + design(wave.points, d, settings.design, rng) * (hi - lo)
        vals = [[par.value(x) for par, x in zip(parameters, row, strict=True)] for row in u]
        points = [dataclasses.replace(set_values(base_p, parameters, v),
                                      seed=point_seed(settings.seed, w, i))
                  for i, v in enumerate(vals)]
        say(f"wave {w}: {wave.points} points x {wave.replications} replications{where}")
        samples = run_points(points, wave.replications, targets, settings.processes,
                             label=f"  wave {w}: ", log=log, usage=usage)
        units = np.vstack([units, u])
        wave_of = np.concatenate([wave_of, np.full(len(u), w)])
        values += vals
        samples_all.append(samples)
        scores = _stack_scores([Scores.of(s, targets, settings.discrepancy)
                                for s in samples_all])
        plausible = max_implausibility(scores.imp, chosen) <= settings.cutoff
        new = plausible[wave_of == w]
        say(f"wave {w} done: {int(new.sum())} of {len(new)} points plausible "
            f"({int(plausible.sum())} in all)")

    # Ensemble: every plausible point; if there is none, the least implausible (and say so).
    # Least implausible first; among equals, the most replications inside every interval.
    design_hits = np.concatenate([all_inside(x, targets, chosen) for x in samples_all])
    order = np.lexsort((-design_hits, max_implausibility(scores.imp, chosen)))
    relaxed = not plausible.any()
    members = np.flatnonzero(plausible) if not relaxed else order[:settings.min_members]
    if relaxed:
        say(f"NO plausible point: the ensemble is the {len(members)} least implausible points;"
            " the chosen readings are not reconciled (see the report)")
    elif len(members) < settings.min_members:
        say(f"only {len(members)} plausible points: a small ensemble")
    # A random order, so that the first members (used by few replications) are representative.
    members = list(np.random.default_rng([settings.seed, 0]).permutation(members))

    # Best point candidates: plausible points whose means are inside every chosen interval
    # (implausibility 0) first, and among those the nearest to the ensemble's centre, so that
    # the inputs the targets do not constrain sit mid-range rather than at an arbitrary edge.
    # They are re-run with the scenario's own seed.
    if relaxed:
        candidates = [int(i) for i in order[:settings.final_candidates]]
    else:
        pool = np.flatnonzero(plausible)
        centre = np.median(units[pool], axis=0)
        distance = np.linalg.norm(units[pool] - centre, axis=1)
        outside = max_implausibility(scores.imp, chosen)[pool] > 0
        ranked = pool[np.lexsort((distance, outside))]
        candidates = [int(i) for i in ranked[:settings.final_candidates]]
    cand_params = [set_values(base_p, parameters, values[i]) for i in candidates]
    say(f"final: {len(candidates)} candidates x {settings.final_replications} replications, "
        f"seed {base_p.seed}")
    final = run_points(cand_params, settings.final_replications, targets, settings.processes,
                       label="  final: ", log=log, usage=usage)
    final_scores = Scores.of(final, targets, settings.discrepancy)
    fmax = max_implausibility(final_scores.imp, chosen)
    # The candidate whose replications most often reproduce every chosen figure at once
    # (many candidates have all means inside, i.e. implausibility 0); ties: smallest largest
    # implausibility, then the earlier (more central) candidate.
    hits = all_inside(final, targets, chosen)
    k = int(np.lexsort((fmax, -hits))[0])
    best_params = dataclasses.replace(cand_params[k], end_date=scenario.end_date,
                                      horizon_days=scenario.horizon_days,
                                      output=scenario.output)
    best_scores = Scores(final_scores.mean[k:k + 1], final_scores.low[k:k + 1],
                         final_scores.high[k:k + 1], final_scores.imp[k:k + 1])
    runtime = time.monotonic() - t_start
    say(f"best point: largest implausibility {fmax[k]:.2f}, {hits[k]:.0%} of its replications "
        f"inside every chosen interval; ensemble {len(members)} members; {runtime:.0f} s "
        f"({usage['cpu_s']:.0f} CPU s in simulations)")

    provenance = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command or "python -m sim.calibrate",
        "git_commit": git_commit(),
        "targets_file": str(settings.targets_file),
        "targets_sha256": file_sha256(targets_path) if targets_path.exists() else None,
        "ranges_file": str(settings.ranges_file),
        "scenario": settings.scenario,
        "scenario_overrides": list(settings.scenario_overrides),
        "readings": [t.id for t in chosen_targets],
        "cutoff": settings.cutoff,
        "discrepancy": settings.discrepancy,
        "seed": settings.seed,
        "final_seed": base_p.seed,
        "final_replications": settings.final_replications,
        "calibration_end_date": base_p.end_date,
        "runtime_s": round(runtime, 1),
        "simulation_cpu_s": round(usage["cpu_s"], 1),
        "best_share_inside": round(float(hits[k]), 3),
    }
    return Calibration(settings, base_p, list(parameters), list(targets), chosen, units, values,
                       wave_of, scores, plausible, relaxed, members, best_params, best_scores,
                       final[k], float(hits[k]), candidates, runtime, provenance, lines)


def _stack_scores(parts: Sequence[Scores]) -> Scores:
    return Scores(*(np.vstack([getattr(s, f.name) for s in parts])
                    for f in dataclasses.fields(Scores)))


# -- reporting ------------------------------------------------------------------------------------
def reading_table(cal: Calibration) -> pd.DataFrame:
    """Each reading swapped in for its group's chosen one: how many points reconcile it."""
    rows = []
    for j, t in enumerate(cal.targets):
        current = next((c for c in cal.chosen if cal.targets[c].group == t.group), None)
        cols = [c for c in cal.chosen if c != current] + [j]
        imax = max_implausibility(cal.scores.imp, cols)
        alone = cal.scores.imp[:, j] <= cal.settings.cutoff
        rows.append({"group": t.group, "target": t.id, "chosen": j in cal.chosen,
                     "points_meeting_it": int(alone.sum()),
                     "points_meeting_it_and_the_others": int((imax <= cal.settings.cutoff).sum()),
                     "least_largest_implausibility": float(imax.min())})
    return pd.DataFrame(rows)


def target_table(cal: Calibration) -> pd.DataFrame:
    """Each target: interval, best point's mean and 90 % band, implausibility, met or not."""
    ens = cal.scores.mean[cal.members] if cal.members else np.full((1, len(cal.targets)), np.nan)
    rows = []
    for j, t in enumerate(cal.targets):
        imp = float(cal.best_scores.imp[0, j])
        rows.append({
            "target": t.id, "group": t.group, "chosen": j in cal.chosen, "date": t.date,
            "output": t.output, "low": t.low, "high": t.high,
            "best_mean": float(cal.best_scores.mean[0, j]),
            "best_p05": float(cal.best_scores.low[0, j]),
            "best_p95": float(cal.best_scores.high[0, j]),
            "implausibility": imp,
            "met": bool(imp <= cal.settings.cutoff),
            "inside": bool(t.low <= cal.best_scores.mean[0, j] <= t.high),
            "ensemble_mean_min": float(np.nanmin(ens[:, j])),
            "ensemble_mean_max": float(np.nanmax(ens[:, j])),
            "members_mean_inside": float(np.mean((ens[:, j] >= t.low) & (ens[:, j] <= t.high))),
        })
    return pd.DataFrame(rows)


def parameter_table(cal: Calibration) -> pd.DataFrame:
    """Each uncertain input: prior range, best value, ensemble range."""
    vals = np.array(cal.values, dtype=float)
    ens = vals[cal.members] if cal.members else vals[:0]
    best = [get_path(cal.best_params, p.key) for p in cal.parameters]
    rows = []
    for i, p in enumerate(cal.parameters):
        lo, hi = (float(ens[:, i].min()), float(ens[:, i].max())) if len(ens) else (math.nan,) * 2
        share = (p.unit(hi) - p.unit(lo)) if len(ens) else math.nan
        rows.append({"parameter": p.key, "prior_low": p.low, "prior_high": p.high,
                     "scale": p.scale, "best": best[i], "ensemble_low": lo, "ensemble_high": hi,
                     "share_of_prior_range": round(float(np.clip(share, 0, 1)), 3)})
    return pd.DataFrame(rows)


def _fmt(x: float) -> str:
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(x)
    if not math.isfinite(x):
        return "inf"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _markdown(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def report_text(cal: Calibration) -> str:
    """The calibration report (Markdown): targets met, readings reconciled, parameters."""
    s, prov = cal.settings, cal.provenance
    targets = target_table(cal)
    chosen = targets[targets["chosen"]]
    missed = chosen[~chosen["met"]]
    waves = ", ".join(f"{w.points} x {w.replications}" for w in s.waves)
    lines = [
        f"# Calibration report: {s.scenario} ({s.name})", "",
        f"- date {prov['date']}, runtime {cal.runtime_s:.0f} s with {s.processes} processes "
        f"({prov['simulation_cpu_s']:.0f} CPU s in simulations)",
        f"- command: `{prov['command']}`",
        f"- targets {s.targets_file} (sha256 {prov['targets_sha256']}), ranges {s.ranges_file}",
        f"- design {s.design}, waves (points x replications): {waves}; "
        f"{len(cal.values)} points, {int(cal.plausible.sum())} plausible "
        f"(largest implausibility <= {s.cutoff}, model discrepancy {s.discrepancy})",
        f"- ensemble: {len(cal.members)} members"
        + (" (RELAXED: no plausible point, the least implausible kept)" if cal.relaxed else ""),
        f"- best point: {s.final_candidates} candidates (plausible points with every mean inside "
        f"its interval, the nearest to the ensemble's centre first) re-run with "
        f"{s.final_replications} replications, seed {prov['final_seed']}; chosen: the one "
        f"whose replications most often fall inside every chosen interval at once "
        f"({cal.best_hits:.0%} of them)", "",
        "## Targets at the best point", "",
        "Mean and 90 % band of the replications; `met`: implausibility <= cutoff; `inside`: the "
        "mean itself is inside the interval; `ensemble_mean_*`: range of the members' means; "
        "`members_mean_inside`: share of members whose mean is inside (the rest are plausible "
        "through the noise of one realisation). Unchosen readings are scored on the same runs.",
        "",
        _markdown(targets.drop(columns=["group"])), "",
    ]
    if len(missed):
        lines += ["**Chosen targets NOT met at the best point:** "
                  + ", ".join(missed["target"]) + ".", ""]
    else:
        lines += ["All chosen targets are met at the best point.", ""]
    lines += ["## Readings", "",
              "Each reading swapped in for its group's chosen reading, over all design points: "
              "how many points meet it alone, and together with the other chosen targets.", "",
              _markdown(reading_table(cal)), "",
              "## Parameters", "",
              "`share_of_prior_range`: width of the ensemble's range as a share of the prior "
              "range (near 1: the targets do not constrain this input).", "",
              _markdown(parameter_table(cal)), ""]
    return "\n".join(lines)


def _yaml_dump(data: Any) -> str:
    return yaml.safe_dump(_plain(data), sort_keys=False, default_flow_style=None, width=100)


def ensemble_document(cal: Calibration) -> dict[str, Any]:
    """The ensemble file: provenance, settings, claims per target, best point, members."""
    targets = target_table(cal)
    claims = {row.target: {"chosen": bool(row.chosen), "met": bool(row.met),
                           "implausibility": round(float(row.implausibility), 3)
                           if math.isfinite(row.implausibility) else None,
                           "mean": round(float(row.best_mean), 3)}
              for row in targets.itertuples()}
    return {"provenance": cal.provenance,
            "relaxed": cal.relaxed,
            "targets": claims,
            "best": cal.best_point(),
            "members": cal.member_points()}


def best_config_text(cal: Calibration) -> str:
    """The best point as a Hydra config (``# @package _global_``), provenance in comments."""
    nested: dict[str, Any] = {}
    for key, value in cal.best_point().items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    prov = cal.provenance
    met = [t.id for j, t in enumerate(cal.targets)
           if j in cal.chosen and cal.best_scores.imp[0, j] <= cal.settings.cutoff]
    missed = [cal.targets[j].id for j in cal.chosen if cal.targets[j].id not in met]
    head = [
        "# @package _global_",
        f"# Calibrated point for scenario {prov['scenario']}, written by sim.calibrate: do not "
        "edit by hand.",
        f"# date: {prov['date']}",
        f"# command: {prov['command']}",
        f"# git commit: {prov['git_commit']}",
        f"# targets: {prov['targets_file']} sha256 {prov['targets_sha256']}",
        f"# ranges: {prov['ranges_file']}",
        f"# meets (implausibility <= {prov['cutoff']}, {prov['final_replications']} replications,"
        f" seed {prov['final_seed']}): {', '.join(met) or 'none'}",
        f"# does not meet: {', '.join(missed) or 'none'}",
        "# ensemble and claims: ensemble_" + prov["scenario"] + ".yaml",
    ]
    return "\n".join(head) + "\n" + _yaml_dump(nested)


def trajectories(params: Sequence[Config], names: Sequence[str], replications: int,
                 processes: int = 1) -> list[np.ndarray]:
    """Daily series of each output for each point: (points) list of (replications, names, days)."""
    tasks = [(p, replications, list(names)) for p in params]
    if processes <= 1:
        return [_series_task(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=processes) as pool:
        return list(pool.map(_series_task, tasks))


def _series_task(task: tuple[Config, int, list[str]]) -> np.ndarray:
    params, n, names = task
    out = []
    for r in range(n):
        res = simulate(params, replication=r)
        out.append([output_series(res, name) for name in names])
    return np.array(out)


def save_plot(path: Path, cal: Calibration, n_members: int = 25) -> None:
    """Each output with targets: its intervals at their dates, the best point's mean and 90 %
    band, and the trajectories of up to ``n_members`` ensemble members (one replication each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from sim.io import atomic_write

    # Okabe-Ito colours, named here so that the meaning does not follow another palette's order.
    blue, sky, vermillion, grey = "#0072B2", "#56B4E9", "#D55E00", "#555555"

    names = list(dict.fromkeys(t.output for t in cal.targets))
    best = trajectories([cal.best_params_short()], names, cal.settings.final_replications,
                        cal.settings.processes)[0]
    members = [set_values(cal.base, cal.parameters, cal.values[i])
               for i in cal.members[:n_members]]
    ens = trajectories(members, names, 1, cal.settings.processes) if members else []
    dates = pd.date_range(cal.base.start_date, periods=best.shape[2], freq="D")
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.6 * len(names)), sharex=True,
                             layout="constrained", squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[:, 0], names, strict=True)):
        for e in ens:
            ax.plot(dates, e[0, k], color=sky, lw=0.6, alpha=0.5)
        ax.fill_between(dates, np.quantile(best[:, k], 0.05, axis=0),
                        np.quantile(best[:, k], 0.95, axis=0), color=blue, alpha=0.25,
                        lw=0)
        ax.plot(dates, best[:, k].mean(axis=0), color=blue, lw=1.6, label="best point")
        mine = [(j, t) for j, t in enumerate(cal.targets) if t.output == name]
        # The axis shows the simulations and the chosen intervals (open-ended ones cut);
        # other readings far off that scale are named in a note instead of squashing it.
        sim_top = max([float(best[:, k].max())] + [float(e[0, k].max()) for e in ens] + [1.0])
        top = 1.15 * max([sim_top] + [min(t.high, max(t.low, sim_top) * 1.5)
                                      for j, t in mine if j in cal.chosen])
        off = []
        for n, (j, t) in enumerate(mine):
            if t.low > top:
                off.append(f"{t.id}: {t.low:,.0f}..{t.high:,.0f}")
                continue
            chosen = j in cal.chosen
            when = pd.Timestamp(t.date) + pd.Timedelta(days=0 if chosen else 0.6 * (n + 1))
            high = min(t.high, top)
            ax.errorbar(when, (t.low + high) / 2, yerr=(high - t.low) / 2, fmt="none",
                        ecolor=vermillion if chosen else grey,
                        elinewidth=2.5 if chosen else 1, capsize=4, alpha=0.9 if chosen else 0.5)
        if off:
            ax.text(0.01, 0.95, "off scale: " + "; ".join(off), transform=ax.transAxes,
                    fontsize=7, va="top", color="dimgrey")
        ax.set_ylabel(name.replace(":", "\n"), fontsize=8)
        ax.set_ylim(0, top)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title("targets (red: calibrated to, grey: other readings), best point "
                         "(mean, 90 % band), ensemble members (thin)", fontsize=9)
    ax = axes[-1, 0]
    ax.xaxis.set_major_locator(mdates.AutoDateLocator())
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)


def write_results(cal: Calibration, out_dir: Path, install_dir: Path | None = None) -> None:
    """The run folder: ensemble, best point, report, scores table, plot; optionally installed
    into ``install_dir`` (configs/calibrated/) as ``<scenario>.yaml`` and
    ``ensemble_<scenario>.yaml``."""
    from sim.io import atomic_write, write_csv

    out_dir.mkdir(parents=True, exist_ok=True)
    scenario = cal.settings.scenario
    ensemble = _yaml_dump(ensemble_document(cal))
    best = best_config_text(cal)
    atomic_write(out_dir / f"ensemble_{scenario}.yaml", lambda t: t.write_text(ensemble))
    atomic_write(out_dir / f"{scenario}.yaml", lambda t: t.write_text(best))
    write_csv(out_dir / "points.csv", points_table(cal))
    if cal.settings.plots:
        save_plot(out_dir / "targets.png", cal)
    text = report_text(cal)
    atomic_write(out_dir / "report.md", lambda t: t.write_text(text))
    if install_dir is not None:
        install_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(install_dir / f"ensemble_{scenario}.yaml", lambda t: t.write_text(ensemble))
        atomic_write(install_dir / f"{scenario}.yaml", lambda t: t.write_text(best))


def points_table(cal: Calibration) -> pd.DataFrame:
    """One row per design point: wave, parameter values, mean and implausibility per target."""
    table = pd.DataFrame(cal.values, columns=[p.key for p in cal.parameters])
    table.insert(0, "wave", cal.wave_of)
    for j, t in enumerate(cal.targets):
        table[f"mean:{t.id}"] = cal.scores.mean[:, j]
        table[f"imp:{t.id}"] = cal.scores.imp[:, j]
    table["max_implausibility"] = max_implausibility(cal.scores.imp, cal.chosen)
    table["plausible"] = cal.plausible
    table["member"] = np.isin(np.arange(len(table)), cal.members)
    return table


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
