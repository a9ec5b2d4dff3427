"""Figures of the export index: observed months over the model's predictive band.

The run report shows one (observed customs index against the run's prediction, the months the
calibration read shaded); the hindcast one per origin (what an origin's calibration predicted
for the months it did not see, against the naive forecast).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

MODEL, NAIVE, OBSERVED = "#1f77b4", "#7f7f7f", "black"
SERIES_TITLE = {"total": "all destinations", "US": "United States"}


def _x(months: Sequence[str]) -> np.ndarray:
    """Mid-month dates for ``YYYY-MM``."""
    return np.array([dt.date.fromisoformat(f"{m}-15") for m in months])


def observed_points(ax, observed: pd.DataFrame) -> None:
    """Observed months: filled dots where the figure is published, open ones where derived
    from a published change."""
    for kind, face in (("reported", OBSERVED), ("derived", "white")):
        rows = observed[observed["kind"] == kind]
        if len(rows):
            ax.plot(_x(rows["month"]), rows["observed"], "o", color=OBSERVED,
                    markerfacecolor=face, markersize=5, zorder=5,
                    label=f"customs, {kind}")


def _shade(ax, first: str, last: str) -> None:
    start = dt.date.fromisoformat(f"{first}-01")
    y, m = map(int, last.split("-"))
    end = dt.date(y + m // 12, m % 12 + 1, 1)
    ax.axvspan(start, end, color="#f3f0e6", zorder=0, label="months calibrated on")


def _finish(ax, title: str) -> None:
    ax.axhline(1.0, color="#bbbbbb", lw=0.8, zorder=0)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("export index (1 = 2024's monthly mean)")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b"))
    ax.set_ylim(bottom=0)


def index_figure(observed: pd.DataFrame, predicted: pd.DataFrame,
                 calibrated: tuple[str, str] | None, label: str) -> Figure:
    """One panel per series: ``predicted`` (month, series, mean, low, high) as a band and its
    mean, ``observed`` (month, series, observed, kind) as points; ``calibrated`` (first,
    last month) shaded."""
    series = [s for s in ("total", "US") if s in set(predicted["series"])]
    fig, axes = plt.subplots(1, max(len(series), 1), figsize=(5.2 * max(len(series), 1), 3.8),
                             squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], series, strict=False):
        p = predicted[predicted["series"] == name]
        if calibrated:
            _shade(ax, *calibrated)
        ax.fill_between(_x(p["month"]), p["low"], p["high"], color=MODEL, alpha=0.25,
                        lw=0, label=label)
        ax.plot(_x(p["month"]), p["mean"], color=MODEL, lw=1.5, label="model mean")
        observed_points(ax, observed[observed["series"] == name])
        _finish(ax, f"Magnet exports, {SERIES_TITLE.get(name, name)}")
    axes[0][0].legend(fontsize=8, loc="lower right")
    return fig


def hindcast_figure(rows: pd.DataFrame, origins: Sequence[str], observed: pd.DataFrame
                    ) -> Figure:
    """Rows: origins; columns: series. The origin's model 90 % band and the naive forecast's,
    the observed months as points, the months the origin's calibration read shaded."""
    series = [s for s in ("total", "US") if s in set(rows["series"])]
    fig, axes = plt.subplots(len(origins), max(len(series), 1),
                             figsize=(5.2 * max(len(series), 1), 2.9 * len(origins)),
                             squeeze=False, sharey="col", layout="constrained")
    for i, origin in enumerate(origins):
        for j, name in enumerate(series):
            ax = axes[i][j]
            _shade(ax, "2025-01", origin)
            for forecast, color, style in (("naive", NAIVE, ":"), ("model", MODEL, "-")):
                r = rows[(rows["origin"] == origin) & (rows["series"] == name)
                         & (rows["forecast"] == forecast)]
                if len(r):
                    ax.fill_between(_x(r["month"]), r["low_90"], r["high_90"], color=color,
                                    alpha=0.2, lw=0, label=f"{forecast}, 90 % interval")
                    ax.plot(_x(r["month"]), r["mean"], style, color=color, lw=1.3)
            observed_points(ax, observed[observed["series"] == name])
            ax.set_xlim(dt.date(2025, 1, 1), dt.date(2026, 1, 1))
            _finish(ax, f"origin {origin}: {SERIES_TITLE.get(name, name)}")
    axes[0][0].legend(fontsize=7, loc="lower right")
    return fig


def run_figure(exports: dict, calibrated: tuple[str, str] | None = ("2025-01", "2025-12"),
               label: str = "model, 95 % band with errors") -> Figure:
    """A run's ``summary["exports"]`` (sim.observations.versus): the observed index over the
    band an observation should fall in (the replications plus the stated observation error
    and discrepancy), the months the committed calibration read shaded."""
    observed, predicted = [], []
    for series, months in exports.items():
        for month, r in sorted(months.items()):
            observed.append(dict(month=month, series=series, observed=r["observed"],
                                 kind=r["kind"]))
            predicted.append(dict(month=month, series=series, mean=r["mean"],
                                  low=r["with_error_low"], high=r["with_error_high"]))
    return index_figure(pd.DataFrame(observed, columns=["month", "series", "observed", "kind"]),
                        pd.DataFrame(predicted, columns=["month", "series", "mean", "low",
                                                         "high"]), calibrated, label)
