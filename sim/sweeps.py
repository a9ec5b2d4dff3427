"""Scenario sweeps: collect a Hydra multirun folder into one table and comparison plots.

A sweep (``python -m sim -m key=a,b other=x,y``) writes one folder per point under its sweep
folder. :func:`collect` reads them all and writes, next to them:

- ``sweep_summary.csv``: one row per job of the sweep: each swept key as a column, each
  headline figure with its 95 % confidence interval (``<figure>_low``, ``<figure>_high``),
  the job's status (``ok``, ``failed``, ``missing``), a message and its folder;
- ``sweep_backlog.png``/``.svg``: the backlog-clearance curves of all jobs on one set of axes;
- ``sweep_heatmap_<figure>.png``/``.svg``: a chosen figure over two swept keys (or, with one
  swept key, ``sweep_<figure>.png``: the figure against that key with its interval).

The jobs a sweep should have are read back from its ``multirun.yaml`` (Hydra's own expansion of
the sweep), so jobs that never started are listed as missing, not dropped; folders are matched
to points by their overrides, never by job number. :class:`CollectCallback` runs the collection
at the end of a multirun (also when a job failed or the sweep was interrupted);
``python -m sim.collect DIR`` runs it on demand.

This module imports only the standard library and Hydra at load time (the callback is
instantiated by every ``python -m sim``); pandas and matplotlib are imported when used.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import pickle
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

SUMMARY_FILE = "sweep_summary.csv"
BACKLOG_STEM = "sweep_backlog"
STATUSES = ("ok", "failed", "missing")
# Headline figures of summary.json (dotted keys) put in the table, each with its 95 % CI.
FIGURES = (
    "peak_pending",
    "pending_end",
    "mean_wait_days",
    "p90_wait_days",
    "mean_wait_days_with_waiting",
    "waiting_end",
    "held_end",
    "mean_time_to_decision_days",
    "utilisation",
    "share_decided_late",
    "past_statutory_limit_end",
    "clearance.days_peak_to_clearance",
    "clearance.days_event_to_clearance",
    "clearance.cohort_days_to_clear_90pct",
    "totals.arrivals",
    "totals.approved",
)
# Figures without an interval (dates, counts of replications).
EXTRA_FIGURES = ("peak_pending_date", "clearance.clearance_date",
                 "clearance.cleared_in_replications")
# Overrides that do not change a job's results (and are left out of its folder name).
DEFAULT_EXCLUDE = ("resume", "jobs")
DEFAULT_FIGURE = "peak_pending"


@dataclass
class Job:
    """One point of a sweep and what its folder holds."""

    overrides: tuple[str, ...]  # the point's overrides, without keys that do not change results
    values: dict[str, Any]  # swept key -> value
    index: int | None  # position in the sweep's list of points (None: not in the list)
    folder: Path | None  # None: the job never started
    status: str  # ok | failed | missing
    message: str = ""
    summary: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_fmt_value(v)}" for k, v in self.values.items()) or "(no keys)"


@dataclass
class Sweep:
    """A sweep folder read back: its swept keys, their values, and every job."""

    folder: Path
    keys: list[str]
    levels: dict[str, list[Any]]  # values of each swept key, in the sweep's order
    jobs: list[Job]
    figures: tuple[str, ...] = FIGURES
    command: list[str] | None = None  # the sweep's command line (from multirun.yaml)
    notes: list[str] = field(default_factory=list)

    def with_status(self, status: str) -> list[Job]:
        return [j for j in self.jobs if j.status == status]

    @property
    def ok(self) -> list[Job]:
        return self.with_status("ok")

    @property
    def failed(self) -> list[Job]:
        return self.with_status("failed")

    @property
    def missing(self) -> list[Job]:
        return self.with_status("missing")

    @property
    def complete(self) -> bool:
        """Every job of the sweep finished (folders of other sweeps into the folder aside)."""
        return all(j.status == "ok" for j in self.jobs if j.index is not None)

    def table(self):
        """The summary table (pandas DataFrame), one row per job."""
        return summary_table(self)

    def resume_command(self) -> str | None:
        """The command that re-runs the unfinished jobs of this sweep into the same folder."""
        if self.command is None:
            return None
        args = [a for a in self.command if not a.startswith(("resume=", "hydra.sweep.dir="))]
        args += ["resume=true", f"hydra.sweep.dir={self.folder}"]
        return " ".join(["python -m sim -m", *map(shlex.quote, args)])


# -- reading a sweep folder -----------------------------------------------------------------------
def _key(override: str) -> str:
    """The key of ``key=value`` (without +, ++, ~ prefixes and @package)."""
    return override.split("=", 1)[0].lstrip("~+").split("@", 1)[0]


def _kept(overrides: Sequence[str], exclude: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(o for o in overrides if _key(o) not in exclude))


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class _Values:
    """Typed values of override strings (Hydra's own parser, cached per string)."""

    def __init__(self) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self._parser = OverridesParser.create()
        self._cache: dict[str, Any] = {}

    def __call__(self, override: str) -> Any:
        if override not in self._cache:
            try:
                value = self._parser.parse_override(override).value()
            except Exception:  # an odd string: keep it as text
                value = override.split("=", 1)[1] if "=" in override else override
            self._cache[override] = value
        return self._cache[override]


def planned_points(folder: Path) -> tuple[list[list[str]] | None, list[str], dict[str, Any]]:
    """The points a sweep should run, its swept keys, and facts from its ``multirun.yaml``.

    Points are Hydra's own expansion (BasicSweeper) of the sweep's overrides, in job order.
    Returns ``(None, [], info)`` when the folder has no multirun.yaml or another sweeper ran it.
    """
    from omegaconf import OmegaConf

    info: dict[str, Any] = {"exclude": list(DEFAULT_EXCLUDE), "command": None}
    path = Path(folder) / "multirun.yaml"
    if not path.is_file():
        return None, [], info
    cfg = OmegaConf.load(path)
    hydra = cfg.get("hydra", {})
    exclude = OmegaConf.select(cfg, "hydra.job.config.override_dirname.exclude_keys",
                               default=None)
    if exclude is not None:
        info["exclude"] = [str(k) for k in exclude]
    task = [str(o) for o in OmegaConf.select(cfg, "hydra.overrides.task", default=[]) or []]
    hydra_overrides = [str(o) for o in
                       OmegaConf.select(cfg, "hydra.overrides.hydra", default=[]) or []]
    info["command"] = task + [o for o in hydra_overrides
                              if not o.startswith(("hydra.mode=", "hydra.sweep.dir="))]
    sweeper = hydra.get("sweeper", {}) or {}
    if "BasicSweeper" not in str(sweeper.get("_target_", "BasicSweeper")):
        return None, [], info
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None) or {}
    points, keys = expand_points([f"{k}={v}" for k, v in params.items()] + task)
    return points, [k for k in keys if k not in info["exclude"]], info


def expand_points(arguments: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """The points (override lists, in job order) of a sweep's overrides, and its swept keys,
    as Hydra's basic sweeper expands them (``a=1,2 b=x,y`` gives four points)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides(list(arguments))
    keys = []
    for o in overrides:
        if o.is_sweep_override() and o.key_or_group not in keys:
            keys.append(o.key_or_group)
    batches = BasicSweeper.split_arguments(overrides, None)
    return [list(p) for batch in batches for p in batch], keys


def job_folders(folder: Path) -> list[Path]:
    """Folders of started jobs (they hold ``.hydra/overrides.yaml``), submitit logs left out."""
    folder = Path(folder)
    found = []
    for path in folder.rglob("overrides.yaml"):
        if path.parent.name != ".hydra":
            continue
        job = path.parent.parent
        if ".submitit" in job.relative_to(folder).parts:
            continue
        found.append(job)
    return sorted(found)


def job_status(folder: Path) -> tuple[str, str, dict[str, Any] | None]:
    """(status, message, summary) of a started job's folder."""
    summary_path, error_path = folder / "summary.json", folder / "error.txt"
    summary = None
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        summary = None
    error = error_path.read_text().strip() if error_path.is_file() else None
    if summary is not None and (error is None or error_path.stat().st_mtime
                                < summary_path.stat().st_mtime):
        return "ok", "", summary
    if error is not None:
        return "failed", error.splitlines()[0] if error else "failed (empty error.txt)", None
    return "missing", "started, no complete summary.json (interrupted, killed or running)", None


def load_sweep(folder: str | Path, figures: Sequence[str] = FIGURES) -> Sweep:
    """Read a sweep folder: every planned job (ok, failed or missing) and any other job folder.

    Raises FileNotFoundError when the folder is neither a sweep folder nor holds job folders.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    points, keys, info = planned_points(folder)
    exclude = info["exclude"]
    found = job_folders(folder)
    if points is None and not found:
        raise FileNotFoundError(f"{folder}: not a sweep folder (no multirun.yaml, no job folders)")
    from omegaconf import OmegaConf

    by_overrides: dict[tuple[str, ...], Path] = {}
    for job in found:
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        by_overrides.setdefault(_kept([str(o) for o in overrides], exclude), job)
    values_of = _Values()
    notes = []
    if points is None:
        notes.append("no multirun.yaml from Hydra's basic sweeper: listed the job folders found;"
                     " jobs that never started cannot be listed")
        points = [list(k) for k in by_overrides]
        keys = _varying_keys(points)
    jobs: list[Job] = []
    planned = set()
    for index, point in enumerate(points):
        kept = _kept(point, exclude)
        planned.add(kept)
        jobs.append(_job(kept, keys, values_of, index, by_overrides.get(kept)))
    for kept, job_dir in by_overrides.items():
        if kept not in planned:
            jobs.append(_job(kept, keys, values_of, None, job_dir))
            notes.append(f"{job_dir.relative_to(folder)}: not a point of this sweep "
                         "(from an earlier sweep into the same folder?)")
    levels: dict[str, list[Any]] = {k: [] for k in keys}
    for job in jobs:
        for k in keys:
            v = job.values.get(k)
            if v not in levels[k]:
                levels[k].append(v)
    return Sweep(folder, keys, levels, jobs, tuple(figures), info["command"], notes)


def _varying_keys(points: list[list[str]]) -> list[str]:
    """Keys whose value differs between points (when there is no multirun.yaml)."""
    seen: dict[str, set[str]] = {}  # insertion-ordered: keys in order of appearance
    for point in points:
        for o in point:
            seen.setdefault(_key(o), set()).add(o)
    return [k for k, values in seen.items() if len(values) > 1]


def _job(kept: tuple[str, ...], keys: list[str], values_of: _Values, index: int | None,
         folder: Path | None) -> Job:
    by_key = {_key(o): o for o in kept}
    values = {k: values_of(by_key[k]) if k in by_key else None for k in keys}
    if folder is None:
        return Job(kept, values, index, None, "missing", "not started")
    status, message, summary = job_status(folder)
    return Job(kept, values, index, folder, status, message, summary)


# -- the table ------------------------------------------------------------------------------------
def _get(d: dict[str, Any] | None, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _has(d: dict[str, Any] | None, dotted: str) -> bool:
    *path, last = dotted.split(".")
    for part in path:
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return isinstance(d, dict) and last in d


def _num(value: Any) -> float:
    """A table number: undefined (None) and text become NaN."""
    if value is None or isinstance(value, str):
        return math.nan
    return float(value)


def summary_table(sweep: Sweep):
    """One row per job: job, swept keys, status, replications, figures with CI, message, folder.

    A figure is a column when at least one finished job has it in its summary.json.
    """
    import pandas as pd

    ok = [j.summary for j in sweep.ok]
    figures = [f for f in sweep.figures if any(_has(s, f) for s in ok)]
    extras = [f for f in EXTRA_FIGURES if any(_has(s, f) for s in ok)]
    rows = []
    for job in sweep.jobs:
        s = job.summary
        row: dict[str, Any] = {"job": job.index}
        row.update({k: job.values.get(k) for k in sweep.keys})
        row["status"] = job.status
        row["replications"] = s.get("replications", 1) if s else None
        ci = (s or {}).get("ci95", {}) or {}
        for f in figures:
            low, high = (ci.get(f) or [None, None])[:2]
            row[f] = _num(_get(s, f))
            row[f"{f}_low"], row[f"{f}_high"] = _num(low), _num(high)
        for f in extras:
            row[f] = _get(s, f)
        row["message"] = job.message
        row["folder"] = job.folder.relative_to(sweep.folder).as_posix() if job.folder else ""
        rows.append(row)
    columns = ["job", *sweep.keys, "status", "replications",
               *[c for f in figures for c in (f, f"{f}_low", f"{f}_high")], *extras,
               "message", "folder"]
    table = pd.DataFrame(rows, columns=columns)
    table["job"] = table["job"].astype("Int64")
    table["replications"] = table["replications"].astype("Int64")
    return table


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


def backlog_curves_figure(sweep: Sweep, ax=None, column: str = "pending",
                          bands: bool | None = None):
    """Backlog-clearance curves (``daily.csv`` column ``column``) of all finished jobs.

    Bands (95 % of the replication mean) are drawn, unless ``bands`` says, for up to four jobs
    with at least three replications each (with two, Student's t makes them very wide).
    """
    import pandas as pd

    from sim.plotting import date_axis

    fig, ax = _axes(ax)
    jobs = [j for j in sweep.ok if (j.folder / "daily.csv").is_file()]
    if bands is None:
        bands = len(jobs) <= 4 and all(j.summary.get("replications", 1) >= 3 for j in jobs)
    for job, color in zip(jobs, _colors(len(jobs)), strict=True):
        daily = pd.read_csv(job.folder / "daily.csv")
        dates = pd.to_datetime(daily["date"])
        ax.plot(dates, daily[column], color=color, lw=1.6, label=job.label)
        if bands and f"{column}_low" in daily:
            ax.fill_between(dates, daily[f"{column}_low"], daily[f"{column}_high"], color=color,
                            alpha=0.2, lw=0)
    ax.set_title(f"Licence applications pending: {len(jobs)} jobs of sweep "
                 f"'{sweep.folder.name}'")
    ax.set_ylabel("applications pending" if column == "pending" else column)
    ax.set_ylim(bottom=0)
    date_axis(ax)
    note = _not_shown(sweep)
    if note:
        ax.text(0.99, 0.98, note, ha="right", va="top", transform=ax.transAxes, fontsize=9,
                color="#D55E00")
    if jobs:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7, frameon=False,
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


def _figure_label(figure: str) -> str:
    return figure.replace("clearance.", "clearance: ").replace("_", " ")


def heatmap_figure(sweep: Sweep, figure: str = DEFAULT_FIGURE,
                   keys: Sequence[str] | None = None, ax=None):
    """A figure of the table over two swept keys (mean over any other swept key).

    Cells without a finished job say why (failed, missing); undefined values show n/a.
    """
    import numpy as np

    table = sweep.table()
    if figure not in table:
        raise ValueError(f"{figure}: not a figure of this sweep's table")
    k_y, k_x = heatmap_keys(sweep, keys)
    ys, xs = sweep.levels[k_y], sweep.levels[k_x]
    values = np.full((len(ys), len(xs)), np.nan)
    text = [["" for _ in xs] for _ in ys]
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            cell = [job for job in sweep.jobs if job.values.get(k_y) == y
                    and job.values.get(k_x) == x]
            ok = [_num(_get(job.summary, figure)) for job in cell if job.status == "ok"]
            defined = [v for v in ok if not math.isnan(v)]
            if defined:
                values[i, j] = float(np.mean(defined))
                text[i][j] = f"{values[i, j]:.3g}"
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
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(xs)), [_fmt_value(x) for x in xs])
    ax.set_yticks(range(len(ys)), [_fmt_value(y) for y in ys])
    ax.set_xlabel(k_x)
    ax.set_ylabel(k_y)
    others = [k for k in sweep.keys if k not in (k_x, k_y) and len(sweep.levels[k]) > 1]
    ax.set_title(_figure_label(figure)
                 + (f"\n(mean over {', '.join(others)})" if others else ""), fontsize=10)
    if finite.size:
        fig.colorbar(image, ax=ax, label=_figure_label(figure))
    return fig


def figure_by_key(sweep: Sweep, figure: str = DEFAULT_FIGURE, key: str | None = None, ax=None):
    """A figure of the table against one swept key, with its 95 % interval."""
    import numpy as np

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
    ax.set_xticks(x, [_fmt_value(v) for v in levels])
    ax.set_xlabel(key)
    ax.set_ylabel(_figure_label(figure))
    ax.set_title(f"{_figure_label(figure)} by {key}")
    ax.grid(alpha=0.3)
    note = _not_shown(sweep)
    if note:
        ax.text(0.99, 0.98, note, ha="right", va="top", transform=ax.transAxes, fontsize=9,
                color="#D55E00")
    return fig


# -- collection -----------------------------------------------------------------------------------
def report_lines(sweep: Sweep) -> list[str]:
    """A short text report: counts, then every failed and missing job with its reason."""
    counts = ", ".join(f"{len(sweep.with_status(s))} {s}" for s in STATUSES)
    lines = [f"sweep {sweep.folder}: {len(sweep.jobs)} jobs ({counts})"]
    for job in sweep.jobs:
        if job.status != "ok":
            where = f" [{job.folder.relative_to(sweep.folder)}]" if job.folder else ""
            lines.append(f"  {job.status:7} job {job.index if job.index is not None else '-'}: "
                         f"{job.label}: {job.message}{where}")
    lines += [f"  note: {n}" for n in sweep.notes]
    if not sweep.complete and sweep.resume_command():
        lines.append(f"  re-run the unfinished jobs: {sweep.resume_command()}")
    return lines


def collect(folder: str | Path, figure: str = DEFAULT_FIGURE, keys: Sequence[str] | None = None,
            plots: bool = True, figures: Sequence[str] = FIGURES,
            out: Callable[[str], Any] | None = print) -> Sweep:
    """Read a sweep folder and write its summary table and comparison plots into it."""
    from sim.outputs import write_csv

    sweep = load_sweep(folder, figures)
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


class CollectCallback(Callback):
    """Hydra callback: collect the sweep folder when a multirun ends.

    Hydra calls ``on_multirun_end`` only when every job succeeded; when a job fails (Hydra then
    exits with an error) or the sweep is interrupted, the collection runs at interpreter exit
    instead, so the table still lists every job. Registered in ``configs/config.yaml``
    (``hydra.callbacks.collect``); options: ``figure`` (of the heat map), ``keys`` (its two
    swept keys; null: the first two), ``plots``, ``enabled``.
    """

    def __init__(self, figure: str = DEFAULT_FIGURE, keys: Sequence[str] | None = None,
                 plots: bool = True, enabled: bool = True) -> None:
        self.figure = figure
        self.keys = list(keys) if keys else None
        self.plots = plots
        self.enabled = enabled
        self._folder: str | None = None

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        if not self.enabled:
            return
        self._folder = str(config.hydra.sweep.dir)
        # Import the collection's libraries now: at interpreter exit, importing pandas fails
        # (concurrent.futures cannot register its exit hook any more), which would lose the
        # table of a sweep with a failed job.
        import pandas  # noqa: F401

        import sim.outputs
        import sim.plotting  # noqa: F401

        atexit.register(self._at_exit)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        if self._folder is None:
            return
        atexit.unregister(self._at_exit)
        self._collect()

    def on_job_end(self, config, job_return, **kwargs: Any) -> None:
        """Make a failed job's exception picklable before a launcher sends it back.

        joblib and submitit return each job's result by pickle; an exception that cannot be
        unpickled (one whose ``__init__`` takes other arguments than its message) breaks
        joblib's process pool and loses the sweep's other jobs. Such an exception is replaced
        by a RuntimeError with the same text (the job's error.txt keeps the original).
        """
        error = getattr(job_return, "_return_value", None)
        if not isinstance(error, BaseException):
            return
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:  # whatever stops the round trip
            job_return.return_value = RuntimeError(f"{type(error).__name__}: {error}")

    def _at_exit(self) -> None:
        if self._folder is not None and Path(self._folder).is_dir():
            print("collecting the sweep that stopped early:", file=sys.stderr)
            self._collect()

    def _collect(self) -> None:
        folder, self._folder = self._folder, None
        try:
            collect(folder, figure=self.figure, keys=self.keys, plots=self.plots)
        except Exception as err:  # the collection must never hide the sweep's own outcome
            print(f"sweep collection failed: {type(err).__name__}: {err}; "
                  f"run: python -m sim.collect {folder}", file=sys.stderr)

    def __getstate__(self) -> dict[str, Any]:  # pickled to joblib/submitit workers
        return {**self.__dict__, "_folder": None}


# -- running a sweep from Python (notebooks, tests, benchmarks) ---------------------------------
def sweep_command(overrides: Sequence[str], folder: str | Path) -> list[str]:
    """``python -m sim -m <overrides> hydra.sweep.dir=<folder>`` as an argument list."""
    return [sys.executable, "-m", "sim", "-m", *overrides, f"hydra.sweep.dir={folder}"]


def run_sweep(overrides: Sequence[str], folder: str | Path, cwd: str | Path | None = None,
              timeout: float | None = None, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    """Run a sweep in a subprocess, exactly as on the command line; output captured."""
    env = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    folder = Path(folder).resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run(sweep_command(overrides, folder), cwd=cwd or folder.parent, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
