"""The aggregate over replications: tables with confidence and predictive bands, the headline
figures with their intervals, and plots drawn from those tables.

``ci95`` is the 95 % confidence interval of the replication mean (Student t); ``predictive95``
the 2.5-97.5 percentiles over replications (with an ensemble on, they also carry the
calibrated inputs' uncertainty).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from sim import ensemble, keys
from sim.clearance import clearance
from sim.metrics import WAIT_PERCENTILES, RunResult, clearance_summary
from sim.params import Config
from sim.recorder import CLASS_DIMS, N_SEGMENTS, WaitHistogram, segment_labels, segment_name
from sim.stats import band, mean_ci, percentile_band, predictive_interval

BAND_COLUMNS = ("pending", "approved", "denied", "withdrawn", "arrivals", "waiting",
                "past_statutory_limit", "cohort_pending")
GROUP_DIMS = ("destination", "trusted", "military")
GROUP_NUMBERS = ("mean", "low", "high", "pred_low", "pred_high")  # group_bands' number columns
BANDS_NOTE = ("ci95: 95 % confidence interval of the replication mean (t); "
              "predictive95: 2.5-97.5 percentiles over replications")


@dataclass
class Results:
    """Replications of one scenario: tables with confidence bands, headline figures, plots."""

    params: Config
    runs: list[RunResult]

    @property
    def n(self) -> int:
        return len(self.runs)

    def per_run(self, key: str) -> np.ndarray:
        """One summary figure (a dotted key such as ``by_group.trusted.True.mean_wait_days``)
        per replication, NaN where a replication does not define it: for intervals and
        differences paired by replication (``sim.stats.mean_ci``)."""
        return np.array([_nan_if_none(keys.lookup(r.summary, key)) for r in self.runs],
                        dtype=float)

    @cached_property
    def daily(self) -> pd.DataFrame:
        """Per day: the replication mean of every figure and, for the main ones, the 95 %
        confidence band of the mean (``_low``, ``_high``) and the 95 % predictive interval
        over replications (``_pred_low``, ``_pred_high``)."""
        if self.n == 1:
            return self.runs[0].daily
        first = self.runs[0].daily
        numeric = [c for c in first.columns if c not in ("date", "day", "working_day")]
        stack = {c: np.vstack([r.daily[c].to_numpy(dtype=float) for r in self.runs])
                 for c in numeric}
        out = first[["date", "day", "working_day"]].copy()
        for c in numeric:
            mean, low, high = band(stack[c])
            out[c] = mean
            if c in BAND_COLUMNS:
                out[f"{c}_low"], out[f"{c}_high"] = low, high
                out[f"{c}_pred_low"], out[f"{c}_pred_high"] = percentile_band(stack[c])
        return out

    @cached_property
    def by_class(self) -> pd.DataFrame:
        """Per day and class, the replication mean (classes absent from a run count as 0)."""
        keys = ["date", *[d for d, _ in CLASS_DIMS]]
        if self.n == 1:  # each (date, class) once: sorting gives the groupby's rows, cheaper
            table = self.runs[0].by_class.sort_values(keys, kind="stable", ignore_index=True)
            numeric = [c for c in table.columns if c not in keys]
            table[numeric] = table[numeric].astype(float)
            return table
        table = pd.concat([r.by_class for r in self.runs], ignore_index=True)
        return (table.groupby(keys, sort=True).sum(numeric_only=True) / self.n).reset_index()

    @cached_property
    def group_bands(self) -> pd.DataFrame:
        """Long table: date, dimension, value, figure, mean, low, high, pred_low, pred_high (per
        destination, trusted or not, civilian or military) for pending, approved and arrivals.

        low/high: 95 % confidence band of the mean; pred_low/pred_high: 95 % predictive
        interval over replications (all four NaN with one replication).
        """
        blocks = []  # ((dimension, value, figure), (mean, low, high, pred_low, pred_high))
        dates = self.runs[0].daily["date"]
        figures = ("pending", "approved", "arrivals")
        # per run, each row's day (its position in `dates`), then per dimension sums by
        # (value, day) with one bincount: a groupby over (value, date strings) costs ten times more
        day_of_row = [pd.Index(dates).get_indexer(r.by_class["date"]) for r in self.runs]
        for dim in GROUP_DIMS:
            values = sorted({v for r in self.runs for v in r.by_class[dim].unique()}, key=str)
            sums = {figure: np.zeros((self.n, len(values), len(dates))) for figure in figures}
            for k, (r, day) in enumerate(zip(self.runs, day_of_row, strict=True)):
                cell = pd.Categorical(r.by_class[dim], categories=values).codes.astype(
                    np.int64) * len(dates) + day
                for figure in figures:
                    sums[figure][k] = np.bincount(
                        cell, weights=r.by_class[figure].to_numpy(dtype=float),
                        minlength=len(values) * len(dates)).reshape(len(values), len(dates))
            for i, value in enumerate(values):
                for figure in figures:
                    m = sums[figure][:, i, :]
                    blocks.append(((dim, str(value), figure), (*band(m), *percentile_band(m))))
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
    def waits(self) -> WaitHistogram:
        """Waits for a first review after the warm-up, pooled over replications."""
        return WaitHistogram.merged(r.waits for r in self.runs)

    @cached_property
    def replications(self) -> pd.DataFrame:
        """One row per replication, one column per headline figure of summary.json (dotted
        keys, as ``sim.solve`` and ``per_run`` name them; booleans as 0/1, undefined as NaN):
        the table the intervals, the solver's probabilities and paired comparisons use."""
        flat = [flatten_figures(r.summary, booleans=True) for r in self.runs]
        columns = list(dict.fromkeys(k for f in flat for k in f))
        table = pd.DataFrame([{k: _nan_if_none(f.get(k)) for k in columns} for f in flat],
                             columns=columns, dtype=float)
        table.insert(0, "replication", np.arange(self.n))
        return table

    @cached_property
    def pending_by_replication(self) -> pd.DataFrame:
        """Pending applications at each day's end, one column per replication (``r0``, ...):
        what paired comparisons of backlog curves (``python -m sim.compare``) need."""
        table = self.runs[0].daily[["date"]].copy()
        for i, r in enumerate(self.runs):
            table[f"r{i}"] = r.daily["pending"].to_numpy()
        return table

    @cached_property
    def who_waits(self) -> pd.DataFrame:
        """Who waits longest: one row per destination x trusted x military seen, ranked by
        the mean wait counting those still waiting at the end (a lower bound on their mean);
        percentiles of the reviewed waits pooled over replications; counts are means per
        replication."""
        summary = self.summary
        rows = []
        for segment in range(N_SEGMENTS):
            name, labels = segment_name(segment), segment_labels(segment)
            fig = summary["by_segment"][name]
            if not fig["arrivals"]:
                continue
            pooled = WaitHistogram.merged(r.segment_waits[name] for r in self.runs)
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
        # Held applications are never reviewed: they wait longest of all, so they rank first.
        rank = np.where(table["held_end"] > 0, np.inf,
                        table["mean_wait_days_with_waiting"].fillna(-1.0))
        return table.iloc[np.argsort(-rank, kind="stable")].reset_index(drop=True)

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
        out = copy.deepcopy(self.runs[0].summary)
        out.pop("ensemble_member", None)  # per replication: reported in ensemble.used
        if self.n == 1:
            out.update(replications=1, ci95={}, predictive95={})
            return self._with_notes(out)
        flat = [flatten_figures(r.summary) for r in self.runs]
        keys = [k for k in flat[0] if k != "ensemble_member"
                and all(isinstance(f.get(k), int | float | type(None)) for f in flat)]
        ci, predictive = {}, {}
        for key in keys:
            values = [np.nan if f.get(key) is None else f[key] for f in flat]
            mean, low, high = mean_ci(values)
            _set(out, key, None if np.isnan(mean) else mean)
            defined = sum(f.get(key) is not None for f in flat)
            ci[key] = [_none_if_nan(low), _none_if_nan(high), defined]
            pred_low, pred_high = predictive_interval(values)
            predictive[key] = [_none_if_nan(pred_low), _none_if_nan(pred_high), defined]
        daily = self.daily
        pending = daily["pending"].to_numpy()
        peak = clearance(pending).peak_day
        out["peak_pending_date"] = daily["date"].iloc[peak]
        cohort_day = self.runs[0].summary["clearance"].get("cohort_date")
        cohort_idx = int(np.flatnonzero(daily["date"] == cohort_day)[0]) if cohort_day else None
        curve = clearance_summary(self.params, daily, cohort_idx)
        # Day counts in `clearance` are replication means (their CIs are in ci95); the
        # clearance of the mean curve is reported apart, since the two can differ.
        cl = out["clearance"]
        cleared = [r.summary["clearance"]["clearance_date"] for r in self.runs]
        cl["cleared_in_replications"] = sum(d is not None for d in cleared)
        cl["cleared"] = all(d is not None for d in cleared)
        cl["clearance_date"] = (
            pd.to_datetime(pd.Series(cleared)).mean().date().isoformat() if cl["cleared"]
            else None)
        stayed = [r.summary["clearance"]["stayed_cleared"] for r in self.runs]
        cl["stayed_cleared_in_replications"] = sum(bool(x) for x in stayed)
        cl["stayed_cleared"] = all(stayed) if cl["cleared"] else None
        back = [r.summary["clearance"]["back_above_threshold_date"] for r in self.runs]
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
                               "used": [r.summary.get("ensemble_member") for r in self.runs]}
        return out

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


def _nan_if_none(value: Any) -> float:
    return np.nan if value is None else value


def _none_if_nan(x: float) -> float | None:
    return None if np.isnan(x) else x


def flatten_figures(d: dict[str, Any], prefix: str = "", booleans: bool = False) -> dict[str, Any]:
    """Numeric leaves as {dotted key: value}; booleans as 0/1 when asked, else left out.
    Dates (``*_date``) are text, not figures, even where an undefined one is None."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if str(k).endswith("_date"):
            continue
        if isinstance(v, dict):
            out.update(flatten_figures(v, key + ".", booleans))
        elif isinstance(v, bool):
            if booleans:
                out[key] = int(v)
        elif v is None or isinstance(v, int | float):
            out[key] = v
    return out


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for p in path:
        d = d[p]
    d[last] = value
