"""Figures: readable at a glance, dates on the x axis, units on the axes, colour-blind-safe
colours (Okabe-Ito), policy events as labelled vertical lines.

Each function draws from plain tables and returns the figure; writing files is
:mod:`sim.outputs`' job. Importing this module selects a non-interactive backend outside a
notebook: the one place that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
    matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sim.params import ClearanceBacklog, Config  # noqa: E402
from sim.policies import timeline_events  # noqa: E402
from sim.recorder import WaitHistogram  # noqa: E402

# Okabe-Ito, pale yellow last
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
           "#F0E442")


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=(10, 5), layout="constrained")


def date_axis(ax) -> None:
    """Readable dates on the x axis, with a light grid."""
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("date")
    ax.grid(alpha=0.3)


def _events(ax, params: Config, dates: pd.Series) -> None:
    """Policy events as vertical lines; events on the same day share one label."""
    first, last = dates.iloc[0], dates.iloc[-1]
    by_day: dict[pd.Timestamp, list[str]] = {}
    for date, label, _ in timeline_events(params):
        when = pd.Timestamp(date)
        if first <= when <= last:
            by_day.setdefault(when, []).append(label)
    for when, labels in sorted(by_day.items()):
        ax.axvline(when, color="grey", lw=0.8, ls="--", zorder=1)
        ax.text(when, 0.98, " " + "; ".join(labels), rotation=90, va="top", ha="right",
                fontsize=7, color="dimgrey", transform=ax.get_xaxis_transform())


def _legend(ax) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8,
              frameon=False)


def predictive_label(params: Config) -> str:
    """What the predictive band spans: replications, and ensemble members when one is on."""
    over = "replications × ensemble members" if params.calibration.ensemble else "replications"
    return f"95 % predictive interval ({over})"


def _with_band(ax, dates, table: pd.DataFrame, column: str, color: str, label: str,
               band_label: bool = True, predictive: str | None = None) -> None:
    """A line with its band of the mean and, when ``predictive`` names it and the table has
    it, the wider predictive interval, lighter, behind."""
    ax.plot(dates, table[column], color=color, lw=1.8, label=label)
    if predictive and f"{column}_pred_low" in table:
        ax.fill_between(dates, table[f"{column}_pred_low"], table[f"{column}_pred_high"],
                        color=color, alpha=0.1, lw=0,
                        label=f"{label}: {predictive}" if band_label else None)
    if f"{column}_low" in table:
        ax.fill_between(dates, table[f"{column}_low"], table[f"{column}_high"], color=color,
                        alpha=0.25, lw=0,
                        label=f"{label}: 95 % band of the mean" if band_label else None)


def _band_entries(ax, mean: bool, predictive: str | None) -> None:
    """One legend entry per kind of band, in grey: each line has its own colour, and an entry
    per line and band would crowd the legend."""
    if mean:
        ax.fill_between([], [], color="grey", alpha=0.4, lw=0, label="95 % band of the mean")
    if predictive:
        ax.fill_between([], [], color="grey", alpha=0.15, lw=0, label=predictive)


def backlog_figure(params: Config, daily: pd.DataFrame, summary: dict[str, Any] | None = None,
                   ax=None):
    """The backlog-clearance curve: pending applications with their band, events, clearance."""
    fig, ax = _axes(ax)
    dates = pd.to_datetime(daily["date"])
    predictive = predictive_label(params)
    _with_band(ax, dates, daily, "pending", PALETTE[0], "pending (end of day)",
               band_label=False, predictive=predictive)
    if daily["past_statutory_limit"].any():
        _with_band(ax, dates, daily, "past_statutory_limit", PALETTE[3],
                   "of which past the 45-working-day limit", band_label=False,
                   predictive=predictive)
    if params.clearance.backlog == ClearanceBacklog.waiting:
        _with_band(ax, dates, daily, "waiting", PALETTE[1],
                   "of which waiting for an official (the backlog whose clearance is measured)",
                   band_label=False, predictive=predictive)
    if "held" in daily and daily["held"].any():
        counted = (params.clearance.count_held
                   and params.clearance.backlog == ClearanceBacklog.pending)
        ax.plot(dates, daily["held"], color=PALETTE[4], lw=1.2, ls="--",
                label="of which held for ever (military, never reviewed)"
                + ("" if counted else "; not counted for clearance"))
    _band_entries(ax, "pending_low" in daily,
                  predictive if "pending_pred_low" in daily else None)
    _events(ax, params, dates)
    if summary is not None:
        cl = summary.get("clearance", {})
        if cl.get("clearance_date"):
            when = pd.Timestamp(cl["clearance_date"])
            ax.axvline(when, color=PALETTE[2], lw=1.5)
            ax.text(when, 0.5, " cleared", color=PALETTE[2], transform=ax.get_xaxis_transform())
        elif cl:
            ax.text(0.99, 0.02, "backlog not cleared within the horizon", ha="right",
                    transform=ax.transAxes, color=PALETTE[3], fontsize=9)
    n = summary.get("replications", 1) if summary else 1
    ax.set_title(f"Licence applications pending: scenario '{params.name}'"
                 + (f" ({n} replications)" if n > 1 else ""))
    ax.set_ylabel("applications pending")
    ax.set_ylim(bottom=0)
    date_axis(ax)
    _legend(ax)
    return fig


def groups_figure(params: Config, group_bands: pd.DataFrame, dimension: str, ax=None,
                  figure: str = "pending"):
    """Pending applications per destination (or trusted vs others, civilian vs military), with
    the band of the mean and, lighter, the predictive interval when the table has them."""
    fig, ax = _axes(ax)
    table = group_bands[(group_bands["dimension"] == dimension)
                        & (group_bands["figure"] == figure)]
    predictive = "pred_low" in table and table["pred_low"].notna().any()
    banded = table["low"].notna().any()
    for i, (value, g) in enumerate(table.groupby("value", sort=True)):
        dates = pd.to_datetime(g["date"])
        color = PALETTE[i % len(PALETTE)]
        label = {"True": f"{dimension}", "False": f"not {dimension}"}.get(value, value)
        ax.plot(dates, g["mean"], color=color, lw=1.6, label=label)
        if predictive:
            ax.fill_between(dates, g["pred_low"], g["pred_high"], color=color, alpha=0.1, lw=0)
        ax.fill_between(dates, g["low"], g["high"], color=color, alpha=0.2, lw=0)
    _band_entries(ax, banded, predictive_label(params) if predictive else None)
    _events(ax, params, pd.to_datetime(table["date"].drop_duplicates()))
    ax.set_title(f"Applications {figure} by {dimension}: scenario '{params.name}'")
    ax.set_ylabel(f"applications {figure}")
    ax.set_ylim(bottom=0)
    date_axis(ax)
    _legend(ax)
    return fig


def cumulative_figure(params: Config, daily: pd.DataFrame, ax=None):
    """Cumulative arrivals, approvals and denials."""
    fig, ax = _axes(ax)
    dates = pd.to_datetime(daily["date"])
    for i, column in enumerate(("arrivals", "approved", "denied")):
        ax.plot(dates, daily[column].cumsum(), color=PALETTE[i], lw=1.8,
                label=f"{column} (cumulative)")
    _events(ax, params, dates)
    ax.set_title(f"Cumulative applications and decisions: scenario '{params.name}'")
    ax.set_ylabel("applications")
    ax.set_ylim(bottom=0)
    date_axis(ax)
    _legend(ax)
    return fig


def waits_figure(params: Config, waits: WaitHistogram, ax=None):
    """Distribution of waits from submission to the first review (days)."""
    fig, ax = _axes(ax)
    if waits.n:
        keys = np.array(sorted(waits.bins))
        values = np.exp((keys + 0.5) / 400.0)
        counts = np.array([waits.bins[k] for k in keys], dtype=float)
        edges = np.linspace(0, max(values.max(), 1e-9), 60)
        hist, _ = np.histogram(values, bins=edges, weights=counts)
        hist[0] += waits.zeros
        ax.bar(edges[:-1], hist / waits.n, width=np.diff(edges), align="edge",
               color=PALETTE[0], alpha=0.8)
        for q, color in ((0.5, PALETTE[1]), (0.9, PALETTE[3])):
            x = waits.quantile(q)
            ax.axvline(x, color=color, lw=1.5, label=f"{int(q * 100)}th percentile: {x:.1f} days")
        ax.legend(fontsize=8)
    ax.set_title(f"Wait from submission to first review: scenario '{params.name}'")
    ax.set_xlabel("wait (calendar days)")
    ax.set_ylabel("share of applications")
    ax.grid(alpha=0.3)
    return fig


def compare_figure(results: Sequence, labels: Sequence[str] | None = None, ax=None,
                   column: str = "pending", colors: Sequence[str] | None = None):
    """Several scenarios' backlog curves (shaded: 95 % bands) on one set of axes."""
    fig, ax = _axes(ax)
    labels = labels or [r.params.name for r in results]
    colors = colors or [PALETTE[i % len(PALETTE)] for i in range(len(results))]
    for res, label, color in zip(results, labels, colors, strict=True):
        daily = res.daily
        dates = pd.to_datetime(daily["date"])
        _with_band(ax, dates, daily, column, color, label, band_label=False)
    ax.set_title("Licence applications pending: scenarios compared (shaded: 95 % bands)")
    ax.set_ylabel("applications pending" if column == "pending" else column)
    ax.set_ylim(bottom=0)
    date_axis(ax)
    _legend(ax)
    return fig
