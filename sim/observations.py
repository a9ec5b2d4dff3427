"""Observed monthly exports as calibration targets: a tidy CSV, checked, turned into readings.

The file (``seeds/customs_magnet_exports.csv``, or a user's own with the same columns) holds
one row per (period, destination): ``period`` is ``YYYY-MM`` or a calendar year ``YYYY``,
``destination`` ``total`` or one of the model's destinations, ``tonnes`` a number and ``kind``
``reported`` or ``derived``. Other columns (source, dates, notes) are carried, not read.

A month's observed index is its tonnes over the reference year's monthly mean (the row
``period=2024``, the same destination: :data:`sim.exports.REFERENCE_YEAR`), so that it
compares with the model's :func:`sim.exports.monthly_index`. Each month becomes one reading
(:class:`sim.studies.targets.Target`) on ``export_index`` (``:destination=US`` for a
destination) at the month's last day: its observation sd is a share of the value (``error``,
by kind: rounding of a published figure, or of the percentage it was derived from), and its
model discrepancy sd is stated per series and, where a month needs more, per month.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.exports import REFERENCE_YEAR, month_end
from sim.params import DESTINATIONS, SEEDS_DIR
from sim.studies.targets import Target, TargetsError

CUSTOMS_FILE = SEEDS_DIR / "customs_magnet_exports.csv"  # the committed series
COLUMNS = ("period", "destination", "tonnes", "kind")
KINDS = ("reported", "derived")
SERIES = ("total", *DESTINATIONS)
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_MAX_ROWS = 10_000  # a monthly series of a few destinations: far more is surely not one


@dataclass(frozen=True)
class Observation:
    month: str  # YYYY-MM
    series: str  # total, or a destination
    tonnes: float
    kind: str  # reported | derived
    index: float | None  # tonnes over the reference year's monthly mean (None: no reference)


@dataclass
class ObservationSettings:
    """Which observed series the calibration reads, and their error model
    (``calibrate.observations`` in configs/calibrate/*.yaml)."""

    file: str = "seeds/customs_magnet_exports.csv"  # relative to the repository
    series: list[str] = field(default_factory=lambda: ["total", "US"])
    first_month: str = "2025-01"
    # The last month read as a target; later months of the file (to ``check_until``) are
    # predicted and scored, not fitted: a hindcast's origin.
    last_month: str = "2025-12"
    check_until: str = "2025-12"
    # Observation sd, a share of the observed value, by kind.
    error: dict[str, float] = field(default_factory=lambda: {"reported": 0.02, "derived": 0.05})
    # Model discrepancy sd on the index, a month, by series; months listed in
    # ``discrepancy_months`` (YYYY-MM) take that value for every series instead.
    discrepancy: dict[str, float] = field(default_factory=lambda: {"total": 0.1, "US": 0.2})
    # January and February: shipments move between them with the Lunar New Year's date.
    discrepancy_months: dict[str, float] = field(
        default_factory=lambda: {"2025-01": 0.25, "2025-02": 0.25})


def load(path: str | Path) -> list[Observation]:
    """Every monthly row of an observations file with its index (None for a series without
    its reference-year row); TargetsError (one line) for a file that cannot be used: missing
    columns, a bad period, destination, kind or number, a duplicate row, no monthly row."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(_rows(csv.DictReader(f), path))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise TargetsError(f"{path}: cannot read observations: {str(err).splitlines()[0]}"
                           ) from None
    reference = {r["destination"]: r["tonnes"] / 12.0 for r in rows
                 if r["period"] == str(REFERENCE_YEAR)}
    out = []
    for r in rows:
        if _MONTH.fullmatch(r["period"]):
            ref = reference.get(r["destination"])
            out.append(Observation(r["period"], r["destination"], r["tonnes"], r["kind"],
                                   None if ref is None else r["tonnes"] / ref))
    if not out:
        raise TargetsError(f"{path}: no monthly rows (period YYYY-MM)")
    return out


def _rows(reader: csv.DictReader, path: Path):
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise TargetsError(f"{path}: missing column {', '.join(missing)}; required: "
                           f"{', '.join(COLUMNS)}")
    seen = set()
    for i, row in enumerate(reader, start=2):
        if i > _MAX_ROWS:
            raise TargetsError(f"{path}: more than {_MAX_ROWS:,} rows")
        where = f"{path.name} line {i}"
        period, dest, kind = (str(row.get(k) or "").strip() for k in ("period", "destination",
                                                                       "kind"))
        if not (_MONTH.fullmatch(period) or re.fullmatch(r"\d{4}(-H[12])?", period)):
            raise TargetsError(f"{where}: period={period!r}: must be YYYY-MM, YYYY or YYYY-H1")
        if dest not in SERIES and dest not in ("DE", "EU"):
            raise TargetsError(f"{where}: destination={dest!r}: must be one of "
                               f"{', '.join(SERIES)}, DE")
        if kind not in KINDS:
            raise TargetsError(f"{where}: kind={kind!r}: must be reported or derived")
        try:
            tonnes = float(str(row.get("tonnes") or "").replace(",", ""))
        except ValueError:
            tonnes = math.nan
        if not (math.isfinite(tonnes) and tonnes > 0):
            raise TargetsError(f"{where}: tonnes={row.get('tonnes')!r}: must be a number > 0")
        if (period, dest) in seen:
            raise TargetsError(f"{where}: a second row for {period} {dest}")
        seen.add((period, dest))
        yield {"period": period, "destination": dest, "tonnes": tonnes, "kind": kind}


def output_name(series: str) -> str:
    """The model output a series is compared with."""
    return "export_index" if series == "total" else f"export_index:destination={series}"


def targets(observations: Sequence[Observation], s: ObservationSettings) -> list[Target]:
    """One reading per month of each chosen series from ``first_month``: the observed index
    +- 3 observation sd (the interval whose ends are at the cutoff with no other uncertainty,
    as for the articles' readings), with its model discrepancy. Months to ``last_month`` are
    targets (``default``); later ones to ``check_until`` are checks only."""
    out = []
    for o in observations:
        if o.series not in s.series or not s.first_month <= o.month <= s.check_until:
            continue
        if o.index is None:
            raise TargetsError(f"observations: {o.month} {o.series}: no {REFERENCE_YEAR} row for "
                               f"{o.series} (the reference level its index is taken against)")
        sd = s.error[o.kind] * o.index
        out.append(Target(
            id=f"exports_{o.series}_{o.month}", group=f"exports_{o.series}_{o.month}",
            default=o.month <= s.last_month, date=month_end(o.month).isoformat(),
            output=output_name(o.series),
            low=o.index - 3 * sd, high=o.index + 3 * sd, scale="linear",
            reading=o.kind, evidence=f"{o.tonnes:,.0f} t",
            outlet="China customs (seeds/customs_magnet_exports.csv)",
            discrepancy_sd=s.discrepancy_months.get(o.month, s.discrepancy[o.series])))
    return out


def check(s: ObservationSettings, prefix: str, repo_dir: Path) -> None:
    """The settings together (types and numbers are the study's typed checks)."""
    from sim.validation import ConfigError

    path = repo_dir / s.file
    if not path.is_file():
        raise ConfigError(f"{prefix}.file", s.file, f"no such file under {repo_dir}")
    try:  # a file that is not a series of observations is the setting's fault: name it
        load(path)
    except TargetsError as err:
        reason = str(err).removeprefix(f"{path}: ")
        raise ConfigError(f"{prefix}.file", s.file, reason) from None
    for k in ("first_month", "last_month", "check_until"):
        if not _MONTH.fullmatch(getattr(s, k)):
            raise ConfigError(f"{prefix}.{k}", getattr(s, k), "must be a month YYYY-MM")
    if s.first_month > s.last_month:
        raise ConfigError(f"{prefix}.last_month", s.last_month,
                          f"must not be before {prefix}.first_month={s.first_month}")
    if s.check_until < s.last_month:
        raise ConfigError(f"{prefix}.check_until", s.check_until,
                          f"must not be before {prefix}.last_month={s.last_month}")
    for name in s.series:
        if name not in SERIES:
            raise ConfigError(f"{prefix}.series", name, f"must be among {', '.join(SERIES)}")
        if name not in s.discrepancy:
            raise ConfigError(f"{prefix}.discrepancy", s.discrepancy,
                              f"must give an sd for series {name}")
    if set(s.error) != set(KINDS):
        raise ConfigError(f"{prefix}.error", s.error, "must give an sd share for reported "
                                                      "and derived")
    for group in ("error", "discrepancy", "discrepancy_months"):
        for k, v in getattr(s, group).items():
            if not (isinstance(v, int | float) and 0 <= v <= 10):
                raise ConfigError(f"{prefix}.{group}.{k}", v, "must be a number in [0, 10]")
    for month in s.discrepancy_months:
        if not _MONTH.fullmatch(str(month)):
            raise ConfigError(f"{prefix}.discrepancy_months", month, "keys must be YYYY-MM")


def versus(predicted: dict[str, dict[str, np.ndarray]], path: str | Path,
           s: ObservationSettings) -> dict[str, dict[str, dict[str, Any]]]:
    """Observed against predicted, per series and month the run covers and the file holds:
    ``predicted[series][month]`` is the index in each replication. For each month: the
    observation (index, tonnes, kind), the replications' mean and 95 % predictive interval,
    and the same interval with the observation error and the model discrepancy the
    calibration states (``s``) added: the band an observation should fall in. ``inside``: the
    observation is in the latter."""
    rows = {(o.series, o.month): o for o in load(path) if o.index is not None}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for series, months in predicted.items():
        for month, values in months.items():
            o = rows.get((series, month))
            v = np.asarray(values, dtype=float)
            v = v[np.isfinite(v)]
            if o is None or not len(v):
                continue
            sd = math.hypot(s.error[o.kind] * o.index,
                            s.discrepancy_months.get(month, s.discrepancy.get(series, 0.0)))
            lo, hi = _mixture_interval(v, sd, 0.95)
            out.setdefault(series, {})[month] = dict(
                observed=o.index, tonnes=o.tonnes, kind=o.kind, mean=float(v.mean()),
                low=float(np.percentile(v, 2.5)), high=float(np.percentile(v, 97.5)),
                with_error_low=max(lo, 0.0), with_error_high=hi,  # an index is never below 0
                inside=bool(lo <= o.index <= hi))
    return out


def _mixture_interval(values: np.ndarray, sd: float, level: float) -> tuple[float, float]:
    """Central interval of the replications' values each plus a normal error of sd ``sd``
    (the mixture's quantiles, solved exactly: no sampling)."""
    from scipy import optimize, stats

    if sd <= 0:
        q = (1 - level) / 2 * 100
        return float(np.percentile(values, q)), float(np.percentile(values, 100 - q))

    def cdf(x: float) -> float:
        return float(stats.norm.cdf((x - values) / sd).mean())

    lo, hi = values.min() - 10 * sd, values.max() + 10 * sd
    return tuple(float(optimize.brentq(lambda x, q=q: cdf(x) - q, lo, hi))
                 for q in ((1 - level) / 2, (1 + level) / 2))
