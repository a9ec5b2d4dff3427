"""Who waits longest: the groups ranked by a wait the figure draws, the held groups apart.

``Results.who_waits`` has one row per destination x trusted x military group seen. Groups held
for ever (military end use under ``military.policy=hold``) are never reviewed, so they have no
wait to draw or rank: they are listed apart, with how many are held and how long they have
been, not as blank rows at the top of a ranking. The others are ranked by :data:`RANK_BY`,
which the figure draws on every row, so the order a reader sees matches the marks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The mean wait counting those still waiting at the end with their waits so far: a lower
# bound on the group's eventual mean, and defined for a group whose files all still wait
# (the mean of the reviewed waits leaves out the longest waits while the backlog grows).
RANK_BY = "mean_wait_days_with_waiting"
RANK_WORDS = "mean wait counting those still waiting (a lower bound)"
# Who waits longest: columns of the ranked table, the ranking figure first after the group.
WHO_WAITS_WORDS = {"group": "group",
                   "mean_wait_days_with_waiting": "mean wait counting those still waiting "
                                                  "(ranks the rows; days)",
                   "mean_wait_days": "mean wait of the reviewed (days)",
                   "p50_wait_days": "median wait", "p90_wait_days": "90th percentile wait",
                   "arrivals": "arrivals", "decisions": "decisions",
                   "waiting_end": "waiting at the end",
                   "share_decided_within_limit": "within the statutory limit"}


def rank_figure(table: pd.DataFrame) -> pd.Series:
    """The figure the rows are ranked by: :data:`RANK_BY`, or the mean of the reviewed waits
    for a table without it."""
    column = RANK_BY if RANK_BY in table else "mean_wait_days"
    return pd.to_numeric(table[column], errors="coerce")


def held_groups(table: pd.DataFrame) -> pd.Series:
    """True for the groups with applications held for ever at the end."""
    if "held_end" not in table:
        return pd.Series(False, index=table.index)
    return pd.to_numeric(table["held_end"], errors="coerce").fillna(0) > 0


def split(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ranked, held): the groups with a wait, longest first by :func:`rank_figure` (groups
    with neither a wait nor a held file last), and the groups with held files, most first. A
    group with both (a policy changed on the timeline) is in both."""
    if table.empty:
        return table.copy(), table.iloc[:0].copy()
    rank = rank_figure(table)
    held = held_groups(table)
    ranked = table[rank.notna() | ~held]
    order = np.argsort(-rank[ranked.index].fillna(-np.inf).to_numpy(), kind="stable")
    held_rows = table[held]
    held_rows = held_rows.iloc[np.argsort(-held_rows["held_end"].to_numpy(dtype=float),
                                          kind="stable")] if len(held_rows) else held_rows
    return ranked.iloc[order].reset_index(drop=True), held_rows.reset_index(drop=True)


def held_ages(daily: pd.DataFrame) -> dict | None:
    """How many applications are held at the end and how long they have been held (days
    since acceptance, from the daily ``held`` count; with replications, of the mean curve):
    ``count``, ``mean_age_days``, ``oldest_age_days`` and ``first_date`` (the first day one
    was held). None when none is held."""
    if "held" not in daily or not len(daily):
        return None
    held = pd.to_numeric(daily["held"], errors="coerce").fillna(0).to_numpy(dtype=float)
    count = held[-1]
    if count <= 0:
        return None
    added = np.diff(held, prepend=0.0)
    age = len(held) - 1 - np.arange(len(held))  # days from each day to the last
    first = int(np.flatnonzero(held > 0)[0])
    return {"count": float(count), "mean_age_days": float((added * age).sum() / count),
            "oldest_age_days": int(age[first]), "first_date": str(daily["date"].iloc[first])}


# -- in the report (sim.reports builds the page) -------------------------------------------
def who_waits_section(results, figure: Path) -> list[str]:
    """Who waits longest: the groups ranked by the wait the figure draws on every row, then
    the groups held for ever apart (how many, and how long they have been held)."""
    from sim.reports import esc, figure_file, share, table

    ranked, held = split(results.who_waits)
    if ranked.empty and held.empty:
        return ["<h2>Who waits longest</h2><p>No applications.</p>"]
    words = {k: v for k, v in WHO_WAITS_WORDS.items() if k in ranked}
    out = ["<h2>Who waits longest</h2>",
           f"<p class=\"note\">Groups ranked by the {esc(RANK_WORDS)}, the diamond of the "
           "figure; the box plot is of the waits of reviewed applications. Counts are means per "
           "replication; percentiles pool the replications. Groups held for ever are listed "
           "apart below: they are never reviewed, so they have no wait to rank.</p>",
           table(ranked[list(words)].rename(columns=words),
                 {"group": esc, "within the statutory limit": share}),
           figure_file(figure)]
    return out + held_section(held, held_ages(results.daily))


def held_section(held: pd.DataFrame, ages: dict[str, Any] | None) -> list[str]:
    """The groups held for ever (military end use under ``military.policy=hold``): how many
    applications, in which groups, held for how long."""
    from sim.reports import esc, number, table

    if held.empty:
        return []
    text = (f"{number(held['held_end'].sum())} applications are held for ever at the end, in "
            f"{len(held)} groups (military end use under military.policy=hold: never reviewed, "
            "never decided)")
    if ages:
        text += (f"; held a mean of {number(ages['mean_age_days'])} days since acceptance, the "
                 f"oldest since {ages['first_date']} ({number(ages['oldest_age_days'])} days)")
    rows = pd.DataFrame({"group": held["group"], "held at the end": held["held_end"],
                         "arrivals": held["arrivals"]})
    return ["<h3>Held for ever</h3>", f"<p>{esc(text)}.</p>", table(rows, {"group": esc})]
