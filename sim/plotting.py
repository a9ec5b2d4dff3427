"""Figures of a run: readable at a glance, dates on the x axis, colour-blind-safe colours."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sim.io import atomic_write  # noqa: E402
from sim.params import Config  # noqa: E402
from sim.policies import timeline_events  # noqa: E402

# Okabe-Ito palette
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")


def backlog_figure(params: Config, daily: pd.DataFrame):
    """Pending applications over time, with the policy events as labelled vertical lines."""
    dates = pd.to_datetime(daily["date"])
    fig, ax = plt.subplots(figsize=(10, 5), layout="constrained")
    ax.plot(dates, daily["pending"], color=PALETTE[0], lw=1.8, label="pending (end of day)")
    if "past_statutory_limit" in daily and daily["past_statutory_limit"].any():
        ax.plot(dates, daily["past_statutory_limit"], color=PALETTE[3], lw=1.2,
                label="of which past the statutory limit")
    first, last = dates.iloc[0], dates.iloc[-1]
    top = max(float(daily["pending"].max()), 1.0)
    for date, label, _changes in timeline_events(params):
        when = pd.Timestamp(date)
        if not first <= when <= last:
            continue
        ax.axvline(when, color="grey", lw=0.8, ls="--")
        ax.text(when, top, f" {label}", rotation=90, va="top", ha="left", fontsize=7,
                color="dimgrey")
    ax.set_title(f"Licence applications pending: scenario '{params.name}'")
    ax.set_xlabel("date")
    ax.set_ylabel("applications pending")
    ax.xaxis.set_major_locator(mdates.AutoDateLocator())
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return fig


def save_backlog(path: Path, params: Config, daily: pd.DataFrame) -> None:
    fig = backlog_figure(params, daily)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=Path(path).suffix[1:]))
    finally:
        plt.close(fig)
