"""Collecting a sweep folder: ``sweep_summary.csv``, comparison plots and a text report.

- ``sweep_summary.csv``: one row per job (:func:`sim.studies.sweeps.summary_table`);
- ``sweep_backlog.png``: the backlog-clearance curves of all jobs on one set of axes;
- ``sweep_heatmap_<figure>.png``: a chosen figure over two swept keys (or, with one
  swept key, ``sweep_<figure>.png``: the figure against that key with its interval).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim.studies.sweeps import (
    BACKLOG_STEM,
    DEFAULT_FIGURE,
    FIGURES,
    SUMMARY_FILE,
    Sweep,
    figure_of,
    format_value,
    load_sweep,
    report_lines,
)


def collect(folder: str | Path, figure: str = DEFAULT_FIGURE, keys: Sequence[str] | None = None,
            plots: bool = True, figures: Sequence[str] = FIGURES,
            out: Callable[[str], Any] | None = print) -> Sweep:
    """Read a sweep folder and write its summary table and comparison plots into it."""
    from sim.outputs import remove_stale_temporaries, write_csv

    sweep = load_sweep(folder, figures)
    remove_stale_temporaries(sweep.folder)
    table = sweep.table()
    write_csv(sweep.folder / SUMMARY_FILE, table)
    written = [SUMMARY_FILE]
    if plots and sweep.ok:
        if figure not in table:
            sweep.notes.append(f"{figure}: not a figure of the table; no heat map")
        try:
            written += _write_plots(sweep, figure, keys)
        except ValueError as err:  # keys that were not swept
            sweep.notes.append(f"no heat map: {err}")
    if out is not None:
        for line in report_lines(sweep):
            out(line)
        out(f"wrote {', '.join(str(sweep.folder / w) for w in written)}")
    return sweep


def figure_over_keys(sweep: Sweep, figure: str = DEFAULT_FIGURE,
                     keys: Sequence[str] | None = None, ax=None):
    """The heat map of ``figure`` over two swept keys; with a single swept key, the figure
    against it. None when nothing was swept."""
    two = heatmap_keys(sweep, keys)
    if len(two) == 2:
        return heatmap_figure(sweep, figure, two, ax=ax)
    if sweep.keys:
        return figure_by_key(sweep, figure, (two or sweep.keys)[0], ax=ax)
    return None


def _write_plots(sweep: Sweep, figure: str, keys: Sequence[str] | None) -> list[str]:
    from sim.outputs import save_figure as save

    written = []
    save(backlog_curves_figure(sweep), sweep.folder / BACKLOG_STEM)
    written.append(f"{BACKLOG_STEM}.png")
    if figure not in sweep.table():
        return written
    stem = f"sweep_heatmap_{figure}" if len(heatmap_keys(sweep, keys)) == 2 else f"sweep_{figure}"
    fig = figure_over_keys(sweep, figure, keys)
    if fig is not None:
        save(fig, sweep.folder / stem)
        written.append(f"{stem}.png")
    return written


# -- plots ----------------------------------------------------------------------------------------
def _colors(n: int) -> list:
    from matplotlib import colormaps

    from sim.plotting import PALETTE

    if n <= len(PALETTE):
        return list(PALETTE[:n])
    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def _axes(ax, size=(10, 5.5)):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=size, layout="constrained")


def _not_shown(sweep: Sweep) -> str:
    parts = [f"{len(sweep.with_status(s))} {s}" for s in ("failed", "missing")
             if sweep.with_status(s)]
    return f"not shown: {', '.join(parts)} job(s)" if parts else ""


def varying_keys(sweep: Sweep) -> list[str]:
    """The swept keys that take more than one value (the others are the same for all jobs)."""
    return [k for k in sweep.keys if len(sweep.levels[k]) > 1]


def job_legend(sweep: Sweep, job) -> str:
    """What distinguishes a job, in words: 'officials.count = 8, green_channel.mode = off'
    (only the keys that vary; a job outside the sweep's points shows all its keys)."""
    keys = varying_keys(sweep) or sweep.keys
    return ", ".join(f"{k} = {format_value(job.values.get(k))}" for k in keys) or "(no keys)"


def _same_for_all(sweep: Sweep) -> str:
    fixed = [k for k in sweep.keys if len(sweep.levels[k]) == 1]
    return ", ".join(f"{k} = {format_value(sweep.levels[k][0])}" for k in fixed)


_LINE_STYLES = ("-", "--", ":", "-.")


def backlog_curves_figure(sweep: Sweep, ax=None, column: str = "pending",
                          bands: bool | None = None):
    """Backlog-clearance curves (``daily.csv`` column ``column``) of all finished jobs, each
    named by the values that distinguish it.

    Bands (95 % of the replication mean) are drawn, unless ``bands`` says, for up to four jobs
    with at least three replications each (with two, Student's t makes them very wide). With
    two or more varying keys, the last one also sets the line style, so that curves of one
    colour family that lie on top of each other stay apart.
    """
    import pandas as pd

    from sim.plot_layout import number_formatter
    from sim.plotting import MEAN_BAND, date_axis

    fig, ax = _axes(ax)
    jobs = [j for j in sweep.ok if (j.folder / "daily.csv").is_file()]
    if bands is None:
        bands = len(jobs) <= 4 and all(j.summary.get("replications", 1) >= 3 for j in jobs)
    varying = varying_keys(sweep)
    styled = varying[-1] if len(varying) >= 2 and len(sweep.levels[varying[-1]]) <= 4 else None
    for job, color in zip(jobs, _colors(len(jobs)), strict=True):
        daily = pd.read_csv(job.folder / "daily.csv")
        dates = pd.to_datetime(daily["date"])
        level = job.values.get(styled)
        style = (_LINE_STYLES[sweep.levels[styled].index(level)]
                 if styled and level in sweep.levels[styled] else "-")
        ax.plot(dates, daily[column], color=color, lw=1.6, ls=style,
                label=job_legend(sweep, job), zorder=3)
        if bands and f"{column}_low" in daily:
            ax.fill_between(dates, daily[f"{column}_low"], daily[f"{column}_high"], color=color,
                            alpha=MEAN_BAND["alpha"], lw=MEAN_BAND["lw"], zorder=2)
    same = _same_for_all(sweep)
    ax.set_title(f"Licence applications pending: {len(jobs)} jobs of sweep "
                 f"'{sweep.folder.name}'" + (f"\n(for all: {same})" if same else "")
                 + (" (shaded: 95 % band of the mean)" if bands and jobs else ""),
                 fontsize=11)
    ax.set_ylabel("applications pending" if column == "pending" else column)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(number_formatter("count"))
    date_axis(ax)
    note = _not_shown(sweep)
    if note:
        ax.text(0.99, 0.98, note, ha="right", va="top", transform=ax.transAxes, fontsize=9,
                color="#D55E00")
    if jobs:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False,
                  ncol=min(4, 1 + len(jobs) // 8))
    return fig


def heatmap_keys(sweep: Sweep, keys: Sequence[str] | None = None) -> list[str]:
    """The two swept keys of the heat map: ``keys`` checked, or the first two that vary
    (fewer when fewer vary)."""
    if keys:
        unknown = [k for k in keys if k not in sweep.keys]
        if unknown:
            raise ValueError(f"not swept keys: {', '.join(unknown)}; "
                             f"swept: {', '.join(sweep.keys) or 'none'}")
        return list(keys)
    varying = [k for k in sweep.keys if len(sweep.levels[k]) > 1]
    return varying[:2]


UNITS = {"days": "days", "share": "share", "count": "applications"}


def _figure_label(figure: str, unit: bool = False) -> str:
    """'clearance: days peak to clearance'; with ``unit``, its unit in brackets."""
    from sim.plot_layout import kind_of

    label = figure.replace("clearance.", "clearance: ").replace("totals.", "total ")
    label = label.replace("_", " ")
    if not unit:
        return label
    kind = kind_of(figure)
    if kind == "days":  # 'mean wait (days)', not 'mean wait days (days)'
        label = label.replace(" days", "").replace("days ", "")
    return f"{label} ({UNITS[kind]})"


def _cell_text(value: float, low: float, high: float, kind: str) -> str:
    """A heat-map cell: the value and, when known, its 95 % interval below it."""
    from sim.plot_layout import format_number

    text = format_number(value, kind)
    if math.isfinite(low) and math.isfinite(high):
        text += f"\n({format_number(low, kind)} to {format_number(high, kind)})"
    return text


def heatmap_figure(sweep: Sweep, figure: str = DEFAULT_FIGURE,
                   keys: Sequence[str] | None = None, ax=None):
    """A figure of the table over two swept keys (mean over any other swept key).

    Cells without a finished job say why (failed, missing); undefined values show n/a.
    """
    import numpy as np

    from sim.plot_layout import kind_of, number_formatter

    table = sweep.table()
    if figure not in table:
        raise ValueError(f"{figure}: not a figure of this sweep's table")
    kind = kind_of(figure)
    k_y, k_x = heatmap_keys(sweep, keys)
    ys, xs = sweep.levels[k_y], sweep.levels[k_x]
    values = np.full((len(ys), len(xs)), np.nan)
    text = [["" for _ in xs] for _ in ys]
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            cell = [job for job in sweep.jobs if job.values.get(k_y) == y
                    and job.values.get(k_x) == x]
            ok = [job for job in cell if job.status == "ok"]
            defined = [job for job in ok if not math.isnan(figure_of(job.summary, figure))]
            if defined:
                values[i, j] = float(np.mean([figure_of(j.summary, figure) for j in defined]))
                # An interval only for a single job: a mean over jobs has none of its own.
                low, high = (_interval(defined[0], figure) if len(defined) == 1
                             else (math.nan, math.nan))
                text[i][j] = _cell_text(values[i, j], low, high, kind)
            elif ok:
                text[i][j] = "n/a"
            bad = [f"{job.status}" for job in cell if job.status != "ok"]
            if bad:
                text[i][j] = "\n".join([t for t in (text[i][j], ", ".join(sorted(set(bad))))
                                        if t])
    fig, ax = _axes(ax, size=(1.6 + 1.1 * len(xs) + 1.5, 1.4 + 0.7 * len(ys) + 0.8))
    ax.set_facecolor("#DDDDDD")
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap="viridis", aspect="auto", origin="lower")
    finite = values[np.isfinite(values)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(len(ys)):
        for j in range(len(xs)):
            dark = np.isfinite(values[i, j]) and values[i, j] < mid
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(xs)), [format_value(x) for x in xs])
    ax.set_yticks(range(len(ys)), [format_value(y) for y in ys])
    ax.set_xlabel(f"{k_x} (swept)")
    ax.set_ylabel(f"{k_y} (swept)")
    others = [k for k in sweep.keys if k not in (k_x, k_y) and len(sweep.levels[k]) > 1]
    ax.set_title(_figure_label(figure, unit=True)
                 + (f"\n(mean over {', '.join(others)})" if others else "")
                 + ("\nbelow each value: its 95 % interval" if any(
                     "\n(" in t for row in text for t in row) else ""), fontsize=10)
    if finite.size:
        bar = fig.colorbar(image, ax=ax, label=_figure_label(figure, unit=True))
        bar.ax.yaxis.set_major_formatter(number_formatter(kind))
    return fig


def _interval(job, figure: str) -> tuple[float, float]:
    """The 95 % interval of a finished job's ``figure`` (NaN when it has none)."""
    low, high = ((job.summary.get("ci95") or {}).get(figure) or [None, None])[:2]
    return (math.nan if low is None else float(low)), (math.nan if high is None
                                                        else float(high))


def figure_by_key(sweep: Sweep, figure: str = DEFAULT_FIGURE, key: str | None = None, ax=None):
    """A figure of the table against one swept key, with its 95 % interval."""
    import numpy as np

    from sim.plot_layout import kind_of, number_formatter

    table = sweep.table()
    if figure not in table:
        raise ValueError(f"{figure}: not a figure of this sweep's table")
    key = key or (heatmap_keys(sweep, None) or sweep.keys or [None])[0]
    if key is None:
        raise ValueError("the sweep has no swept key")
    levels = sweep.levels[key]
    fig, ax = _axes(ax, size=(8, 4.5))
    ok = table[table["status"] == "ok"]
    means, lows, highs = [], [], []
    for level in levels:
        rows = ok[ok[key].map(lambda v, level=level: v == level)]
        means.append(rows[figure].mean() if len(rows) else np.nan)
        lows.append(rows[f"{figure}_low"].mean() if len(rows) else np.nan)
        highs.append(rows[f"{figure}_high"].mean() if len(rows) else np.nan)
    x = np.arange(len(levels))
    means, lows, highs = (np.asarray(v, dtype=float) for v in (means, lows, highs))
    err = np.vstack([means - lows, highs - means])
    ax.errorbar(x, means, yerr=np.where(np.isfinite(err), err, 0), marker="o", capsize=4,
                color="#0072B2", label="mean, 95 % interval")
    ax.set_xticks(x, [format_value(v) for v in levels])
    ax.set_xlabel(f"{key} (swept)")
    ax.set_ylabel(_figure_label(figure, unit=True))
    ax.yaxis.set_major_formatter(number_formatter(kind_of(figure)))
    ax.set_title(f"{_figure_label(figure, unit=True)} by {key}: mean and 95 % interval")
    ax.grid(alpha=0.3)
    note = _not_shown(sweep)
    if note:
        ax.text(0.99, 0.98, note, ha="right", va="top", transform=ax.transAxes, fontsize=9,
                color="#D55E00")
    return fig
