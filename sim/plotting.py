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
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from sim.params import ClearanceBacklog, Config  # noqa: E402
from sim.plot_layout import (  # noqa: E402
    day_label,
    draw_events,
    format_number,
    legend_below,
    number_formatter,
)
from sim.recorder import WaitHistogram  # noqa: E402
from sim.who_waits import RANK_BY, rank_figure, split  # noqa: E402

# Okabe-Ito, pale yellow last
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
           "#F0E442")


def _axes(ax, size=(10, 5)):
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=size, layout="constrained")


def date_axis(ax) -> None:
    """Readable dates on the x axis, with a light grid."""
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("date")
    ax.grid(alpha=0.3)


def _count_axis(ax) -> None:
    """Applications on the y axis with thousands separators ('10,000', not '10000')."""
    ax.yaxis.set_major_formatter(number_formatter("count"))


def predictive_label(params: Config) -> str:
    """What the predictive band spans: replications, and ensemble members when one is on."""
    over = "replications × ensemble members" if params.calibration.ensemble else "replications"
    return f"95 % predictive interval ({over})"


# Band styles: the band of the mean darker, the predictive band lighter with dotted edges, so
# that each stays visible beside the line whether it is narrow (many replications) or wide.
MEAN_BAND = {"alpha": 0.25, "edge_alpha": 0.7, "lw": 0.5, "ls": "-"}
PREDICTIVE_BAND = {"alpha": 0.1, "edge_alpha": 0.8, "lw": 0.8, "ls": ":"}


def _band(ax, dates, low, high, color, style: dict, label: str | None = None, zorder=1.0):
    ax.fill_between(dates, low, high, facecolor=to_rgba(color, style["alpha"]),
                    edgecolor=to_rgba(color, style["edge_alpha"]), lw=style["lw"],
                    ls=style["ls"], label=label, zorder=zorder)


def _with_band(ax, dates, table: pd.DataFrame, column: str, color: str, label: str,
               band_label: bool = True, predictive: str | None = None) -> None:
    """A line with its band of the mean and, when ``predictive`` names it and the table has
    it, the wider predictive interval, lighter, behind."""
    ax.plot(dates, table[column], color=color, lw=1.6, label=label, zorder=3)
    if predictive and f"{column}_pred_low" in table:
        _band(ax, dates, table[f"{column}_pred_low"], table[f"{column}_pred_high"], color,
              PREDICTIVE_BAND, f"{label}: {predictive}" if band_label else None, zorder=1)
    if f"{column}_low" in table:
        _band(ax, dates, table[f"{column}_low"], table[f"{column}_high"], color, MEAN_BAND,
              f"{label}: 95 % band of the mean" if band_label else None, zorder=2)


def _band_entries(ax, mean: bool, predictive: str | None) -> None:
    """One legend entry per kind of band, in grey: each line has its own colour, and an entry
    per line and band would crowd the legend."""
    if mean:
        _band(ax, [], [], [], "grey", MEAN_BAND, "95 % band of the mean")
    if predictive:
        _band(ax, [], [], [], "grey", PREDICTIVE_BAND, predictive)


def _clearance(ax, params: Config, summary: dict[str, Any], last_date) -> None:
    """The clearance threshold as a horizontal line and the clearance date, if any, as a
    vertical one; both named in the legend (text on the plot would cross the curves)."""
    cl = summary.get("clearance") or {}
    if not cl:
        return
    backlog = str(cl.get("backlog", params.clearance.backlog))
    color = PALETTE[1] if backlog == ClearanceBacklog.waiting else PALETTE[0]
    n = summary.get("replications", 1)
    threshold = cl.get("threshold")
    if threshold is not None:
        rule = (f"below {format_number(params.clearance.level)}"
                if params.clearance.level is not None
                else f"below {params.clearance.fraction_of_peak * 100:g} % of its peak")
        ax.axhline(threshold, color=color, lw=1.1, ls="-.", zorder=2.5,
                   label=f"clearance threshold: {backlog} {rule} = {format_number(threshold)}"
                   + (" (replication mean)" if n > 1 else ""))
    if cl.get("clearance_date"):
        when = pd.Timestamp(cl["clearance_date"])
        ax.axvline(when, color=PALETTE[2], lw=1.4, zorder=2.5,
                   label=f"{backlog} backlog cleared on {day_label(when)}"
                   + (f" (mean over {n} replications)" if n > 1 else ""))
        if threshold is not None:
            ax.plot([when], [threshold], "D", color=PALETTE[2], ms=5, zorder=4)
    else:
        some = (f" (cleared in {cl.get('cleared_in_replications', 0)} of {n} replications)"
                if n > 1 else "")
        ax.plot([], [], ls="none",
                label=f"{backlog} backlog not cleared by {day_label(last_date)}{some}")


def _peak(ax, dates, daily: pd.DataFrame, summary: dict[str, Any] | None) -> None:
    """The drawn curve's peak, marked and named; with replications the curve is their mean,
    whose peak is not the mean of their own peaks (each on its own day), named apart."""
    pending = pd.to_numeric(daily["pending"], errors="coerce").to_numpy(dtype=float)
    if not len(pending) or not np.isfinite(pending).any():
        return
    at = int(np.nanargmax(pending))
    n = (summary or {}).get("replications", 1)
    mean_curve = n > 1 or "pending_low" in daily
    words = "the mean curve peaks at" if mean_curve else "peak:"
    ax.plot([dates.iloc[at]], [pending[at]], ls="none", marker="v", ms=7, color=PALETTE[0],
            mec="black", mew=0.6, zorder=4,
            label=f"{words} {format_number(pending[at])} on {day_label(dates.iloc[at])}")
    if mean_curve and (summary or {}).get("peak_pending") is not None:
        ax.plot([], [], ls="none", label="mean of the replications' own peaks (each on its "
                f"own day, not drawn): {format_number(summary['peak_pending'])}")


def backlog_figure(params: Config, daily: pd.DataFrame, summary: dict[str, Any] | None = None,
                   ax=None):
    """The backlog-clearance curve: pending applications with their bands, the curve's peak,
    the clearance threshold and date, and the policy events (numbered, with their key in the
    legend)."""
    fig, ax = _axes(ax, size=(10, 6))
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
    _peak(ax, dates, daily, summary)
    if summary is not None:
        _clearance(ax, params, summary, dates.iloc[-1])
    _band_entries(ax, "pending_low" in daily,
                  predictive if "pending_pred_low" in daily else None)
    ax.set_ylim(bottom=0)
    key = draw_events(ax, params, dates)
    n = summary.get("replications", 1) if summary else 1
    ax.set_title(f"Licence applications pending: scenario '{params.name}'"
                 + (f" ({n} replications)" if n > 1 else ""))
    ax.set_ylabel("applications pending")
    _count_axis(ax)
    date_axis(ax)
    legend_below(ax, key)
    return fig


def groups_figure(params: Config, group_bands: pd.DataFrame, dimension: str, ax=None,
                  figure: str = "pending"):
    """Pending applications per destination (or trusted vs others, civilian vs military), with
    the band of the mean and, lighter, the predictive interval when the table has them."""
    fig, ax = _axes(ax, size=(10, 6))
    table = group_bands[(group_bands["dimension"] == dimension)
                        & (group_bands["figure"] == figure)]
    predictive = "pred_low" in table and table["pred_low"].notna().any()
    banded = table["low"].notna().any()  # not with one replication: nothing to draw
    # dates parsed once, not per group; values as text, in their alphabetical order
    table = table.assign(date=pd.to_datetime(table["date"]), value=table["value"].astype(str))
    for i, (value, g) in enumerate(table.groupby("value", sort=True)):
        dates = g["date"]
        color = PALETTE[i % len(PALETTE)]
        label = {"True": f"{dimension}", "False": f"not {dimension}"}.get(value, value)
        ax.plot(dates, g["mean"], color=color, lw=1.6, label=label, zorder=3)
        if predictive:
            _band(ax, dates, g["pred_low"], g["pred_high"], color, PREDICTIVE_BAND)
        if banded:
            _band(ax, dates, g["low"], g["high"], color, MEAN_BAND, zorder=2)
    _band_entries(ax, banded, predictive_label(params) if predictive else None)
    ax.set_ylim(bottom=0)
    key = draw_events(ax, params, table["date"].drop_duplicates())
    ax.set_title(f"Applications {figure} by {dimension}: scenario '{params.name}'")
    ax.set_ylabel(f"applications {figure}")
    _count_axis(ax)
    date_axis(ax)
    legend_below(ax, key)
    return fig


def cumulative_figure(params: Config, daily: pd.DataFrame, ax=None):
    """Cumulative arrivals, approvals and denials."""
    fig, ax = _axes(ax, size=(10, 6))
    dates = pd.to_datetime(daily["date"])
    for i, column in enumerate(("arrivals", "approved", "denied")):
        ax.plot(dates, daily[column].cumsum(), color=PALETTE[i], lw=1.8,
                label=f"{column} (cumulative)")
    ax.set_ylim(bottom=0)
    key = draw_events(ax, params, dates)
    ax.set_title(f"Cumulative applications and decisions: scenario '{params.name}'")
    ax.set_ylabel("applications")
    _count_axis(ax)
    date_axis(ax)
    legend_below(ax, key)
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
    ax.set_xlim(left=0)
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
    ax.set_title("Licence applications pending: scenarios compared"
                 " (shaded: 95 % band of the mean)")
    ax.set_ylabel("applications pending" if column == "pending" else column)
    ax.set_ylim(bottom=0)
    _count_axis(ax)
    date_axis(ax)
    legend_below(ax)
    return fig


# -- who waits, and the difference between two scenarios ---------------------------------------
_QUANTILES = ("p10_wait_days", "p25_wait_days", "p50_wait_days", "p75_wait_days",
              "p90_wait_days")


def who_waits_figure(table: pd.DataFrame, ax=None) -> Figure:
    """Waits for a first review per group, one row each, longest waits at the top.

    ``table``: one row per group (``group``, ``decisions``, ``mean_wait_days``,
    ``p10/p25/p50/p75/p90_wait_days``, and when it has them ``mean_wait_days_with_waiting`` and
    ``held_end``), in any order: the rows are ranked here by the figure drawn as a diamond
    (:func:`sim.who_waits.rank_figure`). Whisker: 10th to 90th percentile; box: 25th to 75th;
    tick: median; dot: mean of the reviewed waits. A group without waits says so; groups held
    for ever are not drawn (they have no wait), the legend says how many.
    """
    ranked, held = split(table)
    n = len(ranked)
    fig, ax = _axes(ax, size=(9, 1.6 + 0.38 * max(n, 1)))
    rows = range(n)
    rank = rank_figure(ranked).to_numpy(dtype=float)
    diamond = RANK_BY in ranked
    for y, (_, row) in zip(rows, ranked.iterrows(), strict=True):
        p10, p25, p50, p75, p90 = (float(row[c]) for c in _QUANTILES)
        mean = float(row["mean_wait_days"])
        if np.isfinite(p10) and np.isfinite(p90):
            ax.plot([p10, p90], [y, y], color=PALETTE[0], lw=1.2, zorder=2)
            ax.plot([p10, p10, np.nan, p90, p90], [y - 0.15, y + 0.15, np.nan, y - 0.15, y + 0.15],
                    color=PALETTE[0], lw=1.2, zorder=2)
        if np.isfinite(p25) and np.isfinite(p75):
            ax.barh(y, p75 - p25, left=p25, height=0.55, color=to_rgba(PALETTE[5], 0.6),
                    edgecolor=PALETTE[0], lw=1.0, zorder=3)
        if np.isfinite(p50):
            ax.plot([p50, p50], [y - 0.3, y + 0.3], color="black", lw=2.0, zorder=4)
        if np.isfinite(mean):
            ax.plot([mean], [y], "o", color=PALETTE[3], ms=5, zorder=5)
        if diamond and np.isfinite(rank[y]):
            ax.plot([rank[y]], [y], "D", color=PALETTE[1], mec="black", mew=0.6, ms=6, zorder=6)
        if not any(np.isfinite(v) for v in (p10, p25, p50, p75, p90, mean, rank[y])):
            ax.text(0, y, " no waits recorded", va="center", fontsize=8, color="dimgrey",
                    transform=ax.get_yaxis_transform())
    labels = [f"{row['group']}  ({format_number(row['decisions'])} decided)"
              if pd.notna(row["decisions"]) else str(row["group"])
              for _, row in ranked.iterrows()]
    ax.set_yticks(list(rows), labels, fontsize=8)
    ax.set_ylim(max(n, 1) - 0.5, -0.5)  # first row (the longest waits) at the top
    ax.set_xlim(left=0)
    ax.set_xlabel("wait for a first review (days)")
    by = "the mean counting those still waiting (diamond)" if diamond else "the mean (dot)"
    ax.set_title(f"Who waits longest: wait for a first review by group\nranked by {by}",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    # The legend explains the glyphs once, in their own styles.
    glyphs = [Line2D([], [], color=PALETTE[0], lw=1.2, marker="|", ms=8),
              Patch(facecolor=to_rgba(PALETTE[5], 0.6), edgecolor=PALETTE[0]),
              Line2D([], [], color="black", ls="none", marker="|", ms=12, mew=2.0),
              Line2D([], [], color=PALETTE[3], ls="none", marker="o", ms=5)]
    names = ["10th to 90th percentile", "25th to 75th percentile", "median",
             "mean of the reviewed waits"]
    if diamond:
        glyphs.append(Line2D([], [], color=PALETTE[1], mec="black", mew=0.6, ls="none",
                             marker="D", ms=6))
        names.append("mean counting those still waiting\n(a lower bound; ranks the rows)")
    if not held.empty:
        glyphs.append(Line2D([], [], ls="none"))
        names.append(f"not drawn: {format_number(held['held_end'].sum())} applications\n"
                     f"held for ever in {len(held)} groups\n(never reviewed: no wait)")
    ax.legend(glyphs, names, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    return fig


def difference_figure(params, dates: pd.Series, diff: pd.DataFrame, label: str,
                      ax=None) -> Figure:
    """The paired difference of the pending backlog between two scenarios under common random
    numbers: the mean difference per day, its 95 % interval (none with one replication), a
    zero line and the policy events of ``params``.

    ``dates``: ISO dates as in ``Results.daily["date"]``; ``diff``: columns ``mean``, ``low``,
    ``high``; ``label``: what is subtracted from what, e.g. "more officials − baseline".
    """
    fig, ax = _axes(ax, size=(10, 5.5))
    when = pd.to_datetime(pd.Series(dates)).reset_index(drop=True)
    mean, low, high = (pd.to_numeric(diff[c], errors="coerce").to_numpy(dtype=float)
                       for c in ("mean", "low", "high"))
    ax.plot(when, mean, color=PALETTE[0], lw=1.6, label="mean difference", zorder=3)
    if np.isfinite(low).any() and np.isfinite(high).any():
        _band(ax, when, low, high, PALETTE[0], MEAN_BAND,
              "95 % interval of the paired mean difference", zorder=1)
    ax.axhline(0, color="black", lw=0.8, zorder=2)
    key = draw_events(ax, params, when) if len(when) else []
    ax.set_title(f"Paired difference in applications pending: {label}\n"
                 "(common random numbers: replication r of each scenario sees the same draws)",
                 fontsize=10)
    ax.set_ylabel(f"pending: {label} (applications)")
    _count_axis(ax)
    date_axis(ax)
    legend_below(ax, key)
    return fig


def solve_figure(evaluations: pd.DataFrame, solution: dict[str, Any], ax=None):
    """The solver's search: the share of replications meeting the target at each lever value
    run, the required share, and the answer."""
    fig, ax = _axes(ax)
    rows = evaluations.sort_values("value")
    ax.plot(rows["value"], rows["share_met"], "o-", color=PALETTE[0], lw=1.5,
            label="share of replications meeting the target")
    ax.axhline(solution["probability"], color=PALETTE[3], ls="--", lw=1,
               label=f"required: {solution['probability']:.0%}")
    if solution.get("answer") is not None:
        ax.axvline(solution["answer"], color=PALETTE[2], lw=1.2,
                   label=f"answer: {solution['lever']} = {solution['answer']:g}")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(solution["lever"])
    ax.set_ylabel("share of replications meeting the target")
    bound = (f">= {solution['at_least']}" if solution.get("at_least") is not None
             else f"<= {solution['at_most']}")
    ax.set_title(f"{solution['target']} {bound}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="best")
    return fig
