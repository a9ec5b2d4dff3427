"""The aggregate over replications: tables with confidence and predictive bands, the headline
figures with their intervals, and plots drawn from those tables.

``ci95`` is the 95 % confidence interval of the replication mean (Student t); ``predictive95``
the 2.5-97.5 percentiles over replications (with an ensemble on, they also carry the
calibrated inputs' uncertainty).

Replications are aggregated as they arrive: of each :class:`Results` keeps what its tables
need of it, a row of headline figures and its daily series (numbers only, a dozen kilobytes),
and it sums the rest (per-class tables, wait histograms) as it goes; a whole ``RunResult`` (a
hundred kilobytes and more) is kept only on request (``keep_runs``). The rows and series are
gathered in blocks of a few megabytes, and every full block goes to an unnamed temporary file
(:class:`Blocks`), from which the tables read one figure at a time: in memory a replication
leaves a few numbers (its clearance dates and ensemble member, coded), whatever their number.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from sim import ensemble, who_waits
from sim.clearance import clearance
from sim.metrics import WAIT_PERCENTILES, RunResult, clearance_summary
from sim.params import Config
from sim.recorder import CLASS_DIMS, N_SEGMENTS, WaitHistogram, segment_labels, segment_name
from sim.spill import Blocks, Codes
from sim.stats import band, mean_ci, percentile_band, predictive_interval, within_range

BAND_COLUMNS = ("pending", "approved", "denied", "withdrawn", "arrivals", "waiting",
                "past_statutory_limit", "cohort_pending", "shipments")
GROUP_DIMS = ("destination", "trusted", "military")
# group_bands' figures, per group and day
GROUP_FIGURES = ("pending", "approved", "arrivals", "shipments")
GROUP_NUMBERS = ("mean", "low", "high", "pred_low", "pred_high")  # group_bands' number columns
BANDS_NOTE = ("ci95: 95 % confidence interval of the replication mean (t); "
              "predictive95: 2.5-97.5 percentiles over replications")
# Every group a replication can have: (dimension, value), a row of its group series each.
_GROUPS = [(dim, value) for dim in GROUP_DIMS for value in dict(CLASS_DIMS)[dim]]
# Per-class tables are summed once their rows since the last sum reach this (a few MB).
_CLASS_BATCH_ROWS = 50_000
# What a replication's headline figure was: its row of figures holds NaN for None and missing.
_NUMBER, _NONE, _BOOL, _MISSING = range(4)
# Replications' rows and series are gathered in blocks of about this many bytes; every full
# block is written to a temporary file (Blocks), the last, partial one stays in memory.
_BLOCK_BYTES = 8 << 20


class Results:
    """Replications of one scenario: tables with confidence bands, headline figures, plots.

    ``runs``: any iterable of replications' results, consumed once, each aggregated as it
    arrives. With ``keep_runs`` the list ``runs`` holds every one (for a look at single
    replications: their daily tables, applications, ...); without, it stays empty, and memory
    grows by a few numbers a replication (the rest of what the tables need of one goes to a
    temporary file, a block of replications at a time: see Blocks).
    """

    def __init__(self, params: Config, runs: Iterable[RunResult], keep_runs: bool = True):
        self.params = params
        self.runs: list[RunResult] = []
        self.n = 0
        self._keep = keep_runs
        self._first: RunResult | None = None  # replication 0 whole: the tables' template
        self._daily_columns: list[str] = []  # daily's figures, their order in a daily series
        # The block being gathered, a replication's (daily: (figures x days) floats, groups:
        # (GROUP_FIGURES x _GROUPS x days) counts, its figures' values, what each was) each,
        # its bytes, and the blocks gathered (in a temporary file, but for the last)
        self._rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._row_bytes = 0
        self._blocks = Blocks()
        self._groups_seen: set[int] = set()  # indexes in _GROUPS of the groups any run had
        self._class_tables: list[pd.DataFrame] = []  # per-class tables, summed by batches
        self._class_rows = 0  # rows of those not summed yet
        self._class_empty: list[pd.DataFrame] = []  # one empty per-class table, if any came
        self.waits = WaitHistogram()  # waits for a first review after the warm-up, pooled
        self._segment_waits = {segment_name(s): WaitHistogram() for s in range(N_SEGMENTS)}
        self._columns: dict[str, int] = {}  # figure key -> column, in order of first appearance
        self._keys: tuple[str, ...] = ()  # the last replication's figure keys ...
        self._where = np.zeros(0, dtype=np.intp)  # ... and their columns
        # a replication's clearance date, whether it stayed cleared, its date back above the
        # threshold (see summary), and the ensemble member it ran with
        self._clearance = (Codes(), Codes(), Codes())
        self._members = Codes()
        for run in runs:
            self._add(run)
        if not self.n:
            raise ValueError("Results: no replications")
        self._end_block(spill=False)  # the last block (a small run's only one) stays here

    def _add(self, run: RunResult) -> None:
        """Take in one more replication (replication ``self.n``)."""
        if self._first is None:
            self._first = run
            self._daily_columns = [c for c in run.daily.columns
                                   if c not in ("date", "day", "working_day")]
        if self._keep:
            self.runs.append(run)
        self.n += 1
        daily = np.ascontiguousarray(run.daily[self._daily_columns].to_numpy(dtype=float).T)
        groups = self._group_series(run.by_class)
        if run.by_class.empty:  # its figure columns have no type: kept for the final concat
            self._class_empty[:] = [run.by_class]
        else:
            self._class_tables.append(run.by_class)
            self._class_rows += len(run.by_class)
            if self._class_rows >= _CLASS_BATCH_ROWS:
                self._class_tables, self._class_rows = [_class_sums(self._class_tables)], 0
        _merge_into(self.waits, run.waits)
        for name, hist in run.segment_waits.items():
            _merge_into(self._segment_waits[name], hist)
        values, kinds = self._figure_row(run.summary)
        self._rows.append((daily, groups, values, kinds))
        self._row_bytes += daily.nbytes + groups.nbytes + values.nbytes + kinds.nbytes
        cl = run.summary["clearance"]
        for codes, key in zip(self._clearance, ("clearance_date", "stayed_cleared",
                                                "back_above_threshold_date"), strict=True):
            codes.append(cl[key])
        self._members.append(run.summary.get("ensemble_member"))
        if self._row_bytes >= _BLOCK_BYTES:
            self._end_block(spill=True)

    def _end_block(self, spill: bool) -> None:
        """The replications gathered since the last block as one block (see Blocks): daily
        series (figures x replications x days), group series (figure and group x
        replications x days) and figures (figures x replications: values, what each was,
        NaN and _MISSING where a replication has not the figure)."""
        rows, self._rows, self._row_bytes = self._rows, [], 0
        if not rows:
            return
        values = np.full((len(self._columns), len(rows)), np.nan)
        kinds = np.full(values.shape, _MISSING, dtype=np.int8)
        for i, (_, _, v, k) in enumerate(rows):
            values[:len(v), i], kinds[:len(k), i] = v, k
        groups = np.stack([row[1] for row in rows], axis=2)
        self._blocks.add(len(rows), {
            "daily": np.stack([row[0] for row in rows], axis=1),
            "groups": groups.reshape(-1, *groups.shape[2:]),
            "values": values, "kinds": kinds}, spill)

    def _slabs(self, part: str, k: int) -> np.ndarray:
        """Slab ``k`` of a part (see _end_block) of every replication, in order: one daily or
        group series, replications x days, as the rows stacked give it."""
        return np.concatenate([self._blocks.slab(parts[part], k)
                               for _, parts in self._blocks.blocks])

    def _group_series(self, by_class: pd.DataFrame) -> np.ndarray:
        """Per group figure (GROUP_FIGURES), group (_GROUPS) and day, the sums over a
        replication's classes: each row's group and day located by number, then one bincount
        per figure (a groupby over (value, date strings) costs ten times more)."""
        dates = self._first.daily["date"]
        n_days, cells = len(dates), []
        day = pd.Index(dates).get_indexer(by_class["date"])
        for dim in GROUP_DIMS:
            values = dict(CLASS_DIMS)[dim]
            group = _GROUPS.index((dim, values[0])) + pd.Categorical(
                by_class[dim], categories=list(values)).codes.astype(np.int64)
            self._groups_seen.update(np.unique(group).tolist())
            cells.append(group * n_days + day)
        cell = np.concatenate(cells)
        sums = np.stack([np.bincount(cell, weights=np.tile(by_class[f].to_numpy(dtype=float),
                                                           len(GROUP_DIMS)),
                                     minlength=len(_GROUPS) * n_days).reshape(-1, n_days)
                         for f in GROUP_FIGURES])
        # Shipments are weighted (a renewal carries exports.renewal_weight of one): floats.
        return sums

    def _figure_row(self, summary: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The replication's headline figures as a row (NaN where None) and what each was."""
        leaves = list(_leaves(summary))
        keys = tuple(k for k, _ in leaves)
        if keys != self._keys:  # new figures, in a new order: columns for them
            self._keys = keys
            self._where = np.array([self._columns.setdefault(k, len(self._columns))
                                    for k in keys], dtype=np.intp)
        values = np.full(len(self._columns), np.nan)
        values[self._where] = [np.nan if v is None else float(v) for _, v in leaves]
        kinds = np.full(len(self._columns), _MISSING, dtype=np.int8)
        kinds[self._where] = [_NONE if v is None else _BOOL if isinstance(v, bool) else _NUMBER
                              for _, v in leaves]
        return values, kinds

    def _figure(self, column: int) -> tuple[np.ndarray, np.ndarray]:
        """One figure of every replication: its values (booleans as 0/1, NaN where undefined)
        and what each was (_NUMBER, ...)."""
        values, kinds = [], []
        for rows, parts in self._blocks.blocks:
            if column < Blocks.slabs(parts["values"]):
                values.append(self._blocks.slab(parts["values"], column))
                kinds.append(self._blocks.slab(parts["kinds"], column))
            else:  # a figure that came after this block: none of its replications has it
                values.append(np.full(rows, np.nan))
                kinds.append(np.full(rows, _MISSING, dtype=np.int8))
        return np.concatenate(values), np.concatenate(kinds)

    def _figure_blocks(self) -> Iterator[np.ndarray]:
        """Every replication's figures, a block of replications at a time: replications x
        figures (every figure any replication had, booleans as 0/1, NaN where undefined)."""
        width = len(self._columns)
        for rows, parts in self._blocks.blocks:
            values = self._blocks.whole(parts["values"])
            block = np.full((rows, width), np.nan)
            block[:, :len(values)] = values.T
            yield block

    def replication_blocks(self) -> Iterator[pd.DataFrame]:
        """The table :attr:`replications`, a block of rows at a time (a few thousand rows at
        most): what writes replications.csv without holding it whole."""
        start, columns = 0, list(self._columns)
        for values in self._figure_blocks():
            table = pd.DataFrame(values, columns=columns, copy=False)
            table.insert(0, "replication", np.arange(start, start + len(values)))
            start += len(values)
            yield table

    def per_run(self, key: str) -> np.ndarray:
        """One summary figure (a dotted key such as ``by_group.trusted.True.mean_wait_days``)
        per replication, NaN where a replication does not define it: for intervals and
        differences paired by replication (``sim.stats.mean_ci``)."""
        if key not in self._columns:
            return np.full(self.n, np.nan)
        return self._figure(self._columns[key])[0]  # booleans as 0/1

    def _series(self, column: str) -> np.ndarray:
        """A daily figure, replications x days (floats)."""
        return self._slabs("daily", self._daily_columns.index(column))

    @cached_property
    def daily(self) -> pd.DataFrame:
        """Per day: the replication mean of every figure and, for the main ones, the 95 %
        confidence band of the mean (``_low``, ``_high``) and the 95 % predictive interval
        over replications (``_pred_low``, ``_pred_high``)."""
        first = self._first.daily
        if self.n == 1:
            return first
        out = first[["date", "day", "working_day"]].copy()
        for c in self._daily_columns:
            series = self._series(c)
            mean, low, high = band(series)
            out[c] = mean
            if c in BAND_COLUMNS:  # cut to the figure's range, as every table is
                out[f"{c}_low"], out[f"{c}_high"] = within_range(low, c), within_range(high, c)
                out[f"{c}_pred_low"], out[f"{c}_pred_high"] = percentile_band(series)
        return out

    @cached_property
    def by_class(self) -> pd.DataFrame:
        """Per day and class, the replication mean (classes absent from a run count as 0)."""
        keys = ["date", *[d for d, _ in CLASS_DIMS]]
        if self.n == 1:  # each (date, class) once: sorting gives the groupby's rows, cheaper
            table = self._first.by_class.sort_values(keys, kind="stable", ignore_index=True)
            numeric = [c for c in table.columns if c not in keys]
            table[numeric] = table[numeric].astype(float)
            return table
        # The batches' sums (integer counts: exact in any order) and an empty table if a
        # replication had one: as in one concat of every replication's table, its untyped
        # columns make the figure columns objects, which the sum leaves out.
        table = pd.concat([*self._class_tables, *self._class_empty], ignore_index=True)
        return (table.groupby(keys, sort=True).sum(numeric_only=True) / self.n).reset_index()

    @cached_property
    def group_bands(self) -> pd.DataFrame:
        """Long table: date, dimension, value, figure, mean, low, high, pred_low, pred_high (per
        destination, trusted or not, civilian or military) for pending, approved and arrivals.

        low/high: 95 % confidence band of the mean; pred_low/pred_high: 95 % predictive
        interval over replications (all four NaN with one replication).
        """
        blocks = []  # ((dimension, value, figure), (mean, low, high, pred_low, pred_high))
        dates = self._first.daily["date"]
        for dim in GROUP_DIMS:
            seen = sorted((g for g in self._groups_seen if _GROUPS[g][0] == dim),
                          key=lambda g: str(_GROUPS[g][1]))
            for g in seen:
                for f, figure in enumerate(GROUP_FIGURES):
                    m = self._slabs("groups", f * len(_GROUPS) + g)  # counts, int32
                    mean, low, high = band(m)
                    blocks.append(((dim, str(_GROUPS[g][1]), figure),
                                   (mean, within_range(low, figure), within_range(high, figure),
                                    *percentile_band(m))))
        # One frame from one block of numbers (no copy) and categorical labels (a code per
        # row, each label once): a million-row run would otherwise copy its numbers again and a
        # million text references per label column; write_csv formats a category once.
        n_dates, labels = len(dates), [label for label, _ in blocks]
        numbers = np.empty((len(blocks) * n_dates, len(GROUP_NUMBERS)), order="F")
        for b, (_, columns) in enumerate(blocks):
            for k, column in enumerate(columns):
                numbers[b * n_dates:(b + 1) * n_dates, k] = column
        table = pd.DataFrame(numbers, columns=list(GROUP_NUMBERS), copy=False)
        table.insert(0, "date", pd.Categorical.from_codes(
            np.tile(np.arange(n_dates), len(blocks)), categories=pd.Index(dates)))
        for k, name in enumerate(("dimension", "value", "figure")):
            names = list(dict.fromkeys(label[k] for label in labels))
            # int8: the codes' own dtype for so few categories (no conversion pass)
            codes = np.array([names.index(label[k]) for label in labels], dtype=np.int8)
            table.insert(k + 1, name, pd.Categorical.from_codes(
                np.repeat(codes, n_dates), categories=pd.Index(names, dtype="str")))
        return table

    @cached_property
    def replications(self) -> pd.DataFrame:
        """One row per replication, one column per headline figure of summary.json (dotted
        keys, as ``sim.solve`` and ``per_run`` name them; booleans as 0/1, undefined as NaN):
        the table the intervals, the solver's probabilities and paired comparisons use."""
        values = np.concatenate(list(self._figure_blocks()))
        values.flags.writeable = False  # read-only, as it has always been
        table = pd.DataFrame(values, columns=list(self._columns), copy=False)
        table.insert(0, "replication", np.arange(self.n))
        return table

    @cached_property
    def pending_by_replication(self) -> pd.DataFrame:
        """Pending applications at each day's end, one column per replication (``r0``, ...):
        what paired comparisons of backlog curves (``python -m sim.compare``) need."""
        dates, counts = self.pending_counts()
        columns = {f"r{i}": row for i, row in enumerate(counts)}
        return pd.concat([dates, pd.DataFrame(columns, index=dates.index)], axis=1)

    def pending_counts(self) -> tuple[pd.DataFrame, np.ndarray]:
        """:attr:`pending_by_replication` in its parts, without the table (a column per
        replication): its date column, and the counts, replications x days, in the type of
        the table's columns (``sim.outputs.write_wide_csv`` writes them)."""
        first = self._first.daily
        dtype = first["pending"].dtype  # integer counts: exact through the floats kept
        return first[["date"]], self._series("pending").astype(dtype)

    @cached_property
    def who_waits(self) -> pd.DataFrame:
        """Who waits longest: one row per destination x trusted x military seen, ranked by
        the mean wait counting those still waiting at the end (a lower bound on their mean;
        :mod:`sim.who_waits`), groups only held for ever last;
        percentiles of the reviewed waits pooled over replications; counts are means per
        replication."""
        summary = self.summary
        rows = []
        for segment in range(N_SEGMENTS):
            name, labels = segment_name(segment), segment_labels(segment)
            fig = summary["by_segment"][name]
            if not fig["arrivals"]:
                continue
            pooled = self._segment_waits[name]
            rows.append({
                "group": name.replace("_", ", "), "segment": name, **labels,
                "arrivals": fig["arrivals"], "decisions": fig["decisions"],
                "mean_wait_days": fig["mean_wait_days"],
                **{f"p{q}_wait_days": pooled.quantile(q / 100) for q in WAIT_PERCENTILES},
                "waiting_end": fig["waiting_end"],
                "mean_wait_days_with_waiting": fig["mean_wait_days_with_waiting"],
                "pending_end": fig["pending_end"], "held_end": fig["held_end"],
                "share_decided_within_limit": fig["share_decided_within_limit"],
                "mean_time_to_decision_days": fig["mean_time_to_decision_days"],
            })
        table = pd.DataFrame(rows)
        if table.empty:
            return table
        # Ranked as the report and the figure rank them; groups only held (never reviewed, no
        # wait) last, most held first, not first with blank cells
        ranked, held = who_waits.split(table)
        only_held = held[~held["segment"].isin(ranked["segment"])]
        return pd.concat([ranked, only_held], ignore_index=True)

    @cached_property
    def summary(self) -> dict[str, Any]:
        """Headline figures: the replication mean, with a 95 % confidence interval of the mean
        (``ci95``) and a 95 % predictive interval over replications (``predictive95``) per
        figure, each [low, high, replications defining it]; ``bands`` says which is which.

        The peak date is that of the mean backlog curve. In `clearance`, day counts are means
        over replications, `clearance_date` is the mean date when every replication cleared
        (else null), `cleared_in_replications` counts those that did, and `mean_curve` gives
        the clearance of the mean backlog curve. With a calibrated ensemble, `ensemble` names
        its file, its number of members and the member each replication used.
        """
        first = self._first.summary
        out = copy.deepcopy(first)
        out.pop("ensemble_member", None)  # per replication: reported in ensemble.used
        if self.n == 1:
            out.update(replications=1, ci95={}, predictive95={})
            return self._with_notes(out)
        # replication 0's figures (not its booleans); a replication where one is a boolean,
        # None or missing leaves it undefined
        keys = [k for k, v in _leaves(first) if k != "ensemble_member" and not isinstance(v, bool)]
        ci, predictive = {}, {}
        for key in keys:
            figure, kinds = self._figure(self._columns[key])  # read one figure at a time
            number = kinds == _NUMBER
            values = np.where(number, figure, np.nan)
            mean, low, high = mean_ci(values)
            _set(out, key, None if np.isnan(mean) else mean)
            defined = int(number.sum())
            ci[key] = [_none_if_nan(within_range(low, key)), _none_if_nan(within_range(high, key)),
                       defined]  # cut to the figure's range (sim.stats), as every table is
            pred_low, pred_high = predictive_interval(values)
            predictive[key] = [_none_if_nan(pred_low), _none_if_nan(pred_high), defined]
        daily = self.daily
        pending = daily["pending"].to_numpy()
        peak = clearance(pending).peak_day
        out["peak_pending_date"] = daily["date"].iloc[peak]
        cohort_day = first["clearance"].get("cohort_date")
        cohort_idx = int(np.flatnonzero(daily["date"] == cohort_day)[0]) if cohort_day else None
        curve = clearance_summary(self.params, daily, cohort_idx)
        # Day counts in `clearance` are replication means (their CIs are in ci95); the
        # clearance of the mean curve is reported apart, since the two can differ.
        cl = out["clearance"]
        cleared, stayed, back = (list(codes) for codes in self._clearance)
        cl["cleared_in_replications"] = sum(d is not None for d in cleared)
        cl["cleared"] = all(d is not None for d in cleared)
        cl["clearance_date"] = (
            pd.to_datetime(pd.Series(cleared)).mean().date().isoformat() if cl["cleared"]
            else None)
        cl["stayed_cleared_in_replications"] = sum(bool(x) for x in stayed)
        cl["stayed_cleared"] = all(stayed) if cl["cleared"] else None
        # the earliest date a replication's backlog rose back to its threshold
        cl["back_above_threshold_date"] = min((d for d in back if d), default=None)
        cl["mean_curve"] = curve
        out.update(replications=self.n, ci95=ci, predictive95=predictive)
        return self._with_notes(out)

    def _with_notes(self, out: dict[str, Any]) -> dict[str, Any]:
        """The ``bands`` note and, with an ensemble, which member each replication used."""
        on = self.params.calibration.ensemble
        out["bands"] = BANDS_NOTE + (" and calibrated ensemble members" if on else "")
        if on:
            out["ensemble"] = {"file": self.params.calibration.ensemble_file,
                               "members": len(ensemble.ensemble_members(self.params)),
                               "used": list(self._members)}
        out["exports"] = self._against_the_record(out)
        return out

    def _against_the_record(self, out: dict[str, Any]) -> dict[str, Any]:
        """China's customs exports of magnets against this run's export index, per month the
        two share (sim.observations.versus; bands with the calibration's stated errors)."""
        from sim import observations

        index = out.get("export_index", {})
        predicted = {series: {month: self.per_run(f"export_index.{series}.{month}")
                              for month in index[series]}
                     for series in ("total", "US") if series in index}
        return observations.versus(predicted, observations.CUSTOMS_FILE,
                                   observations.ObservationSettings())

    # -- plots (see sim.plotting) ----------------------------------------------------------
    def plot_backlog(self, ax=None):
        from sim import plotting

        return plotting.backlog_figure(self.params, self.daily, self.summary, ax=ax)

    def plot_groups(self, dimension: str = "destination", ax=None):
        from sim import plotting

        return plotting.groups_figure(self.params, self.group_bands, dimension, ax=ax)

    def plot_cumulative_approvals(self, ax=None):
        from sim import plotting

        return plotting.cumulative_figure(self.params, self.daily, ax=ax)

    def plot_waits(self, ax=None):
        from sim import plotting

        return plotting.waits_figure(self.params, self.waits, ax=ax)

    def plot_who_waits(self, ax=None):
        """Who waits longest: wait distributions by destination x trusted x military."""
        from sim import plotting

        return plotting.who_waits_figure(self.who_waits, ax=ax)


def _none_if_nan(x: float) -> float | None:
    return None if np.isnan(x) else x


def flatten_figures(d: dict[str, Any], prefix: str = "", booleans: bool = False) -> dict[str, Any]:
    """Numeric leaves as {dotted key: value}; booleans as 0/1 when asked, else left out.
    Dates (``*_date``) are text, not figures, even where an undefined one is None."""
    return {k: int(v) if isinstance(v, bool) else v for k, v in _leaves(d, prefix)
            if booleans or not isinstance(v, bool)}


def _leaves(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of the numeric, boolean and None leaves, in order; not dates."""
    for k, v in d.items():
        key = f"{prefix}{k}"
        if str(k).endswith("_date"):
            continue
        if isinstance(v, dict):
            yield from _leaves(v, key + ".")
        elif v is None or isinstance(v, bool | int | float):
            yield key, v


def _class_sums(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-class tables summed per (date, class): one table standing for them all."""
    keys = ["date", *[d for d, _ in CLASS_DIMS]]
    table = pd.concat(tables, ignore_index=True)
    return table.groupby(keys, sort=True).sum(numeric_only=True).reset_index()


def _merge_into(total: WaitHistogram, hist: WaitHistogram) -> None:
    """Add ``hist``'s waits to ``total`` (as WaitHistogram.merged, in place)."""
    total.zeros += hist.zeros
    for k, v in hist.bins.items():
        total.bins[k] = total.bins.get(k, 0) + v


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for p in path:
        d = d[p]
    d[last] = value
