"""Layout helpers of the figures: policy events as numbered markers that never overlap, a
legend with their key, and numbers written for people (thousands separators, no "2.1e+04").

Used by :mod:`sim.plotting` and the sweep figures; import :mod:`sim.plotting` first, since it
selects the backend.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import pandas as pd
from matplotlib.artist import Artist
from matplotlib.legend_handler import HandlerBase
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, ScalarFormatter
from matplotlib.transforms import ScaledTranslation

from sim.params import Config
from sim.policies import timeline_events

EVENT_FONTSIZE = 7.5
EVENT_GID = "event-number"  # gid of the numbers on the axes (tests find them by it)
EVENT_ROWS = 2  # rows of numbers before close ones are merged into a range ("3–5")
GAP_POINTS = 2.0  # space kept free around each number
_BOX = {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "grey", "lw": 0.6, "alpha": 0.9}
HEADROOM = 0.14  # share of the y range added on top, for the rows of numbers


def events_in_range(params: Config, first, last) -> list[tuple[pd.Timestamp, list[str]]]:
    """Timeline events between two dates, one entry per day (its labels in timeline order)."""
    by_day: dict[pd.Timestamp, list[str]] = {}
    for date, label, _ in timeline_events(params):
        when = pd.Timestamp(date)
        if pd.Timestamp(first) <= when <= pd.Timestamp(last):
            by_day.setdefault(when, []).append(label)
    return sorted(by_day.items())


def day_label(when: pd.Timestamp) -> str:
    """'7 Jun 2025': a date as people write it (no platform-specific strftime flags)."""
    return f"{when.day} {when:%b %Y}"


class EventKey:
    """A legend handle standing for event ``number``: the legend draws the same badge."""

    def __init__(self, number: int) -> None:
        self.number = number


class _EventKeyHandler(HandlerBase):
    def create_artists(self, legend, orig_handle, xdescent, ydescent, width, height, fontsize,
                       trans):
        badge = Text(width / 2 - xdescent, height / 2 - ydescent, str(orig_handle.number),
                     ha="center", va="center", fontsize=EVENT_FONTSIZE, color="dimgrey",
                     bbox=_BOX)
        badge.set_transform(trans)
        return [badge]


class EventNumbers(Artist):
    """Places the event numbers of one axes at each draw, when the axes' size in pixels is
    known, so they never overlap at any figure width or resolution.

    Numbers are staggered into :data:`EVENT_ROWS` rows below the top of the axes; numbers that
    still do not fit are merged with their left neighbour into one range ("3–5"). It draws
    nothing itself: its zorder is just below the numbers', so the axes draw it first.
    """

    def __init__(self, texts: Sequence[Text], xs: Sequence[float]) -> None:
        super().__init__()
        self.texts, self.xs = list(texts), list(xs)
        self.set_in_layout(False)
        self.set_zorder(min(t.get_zorder() for t in self.texts) - 0.01)

    def draw(self, renderer) -> None:
        ax = self.axes
        box = ax.get_window_extent(renderer)
        px = ax.transData.transform([(x, 0) for x in self.xs])[:, 0]
        margin = renderer.points_to_pixels(GAP_POINTS + _BOX_PAD_POINTS)
        clusters = [[i] for i in range(len(self.texts))]
        for text in self.texts:  # an invisible text has no extent: measure them all shown
            text.set_visible(True)
        while True:
            rows, height = self._rows(clusters, px, margin, renderer)
            late = next((k for k, r in enumerate(rows) if r >= EVENT_ROWS), None)
            if late is None or late == 0:
                break
            clusters[late - 1:late + 1] = [clusters[late - 1] + clusters[late]]
        for text in self.texts:
            text.set_visible(False)  # shown again below if it heads a range
        row_height = height + 2 * margin
        for cluster, row in zip(clusters, rows, strict=True):
            text = self.texts[cluster[0]]
            text.set_visible(True)
            text.set_text(_cluster_label(cluster))
            text.set_x(self.xs[cluster[0]] if len(cluster) == 1
                       else (self.xs[cluster[0]] + self.xs[cluster[-1]]) / 2)
            text.set_y(1 - (margin + row * row_height) / max(box.height, 1.0))

    def _rows(self, clusters, px, margin, renderer):
        """Greedy rows: each number in the first row where it clears the one before it."""
        rows, right, height = [], [], 0.0
        for cluster in clusters:
            text = self.texts[cluster[0]]
            text.set_text(_cluster_label(cluster))
            extent = text.get_window_extent(renderer)
            width, height = extent.width + 2 * margin, max(height, extent.height)
            centre = (px[cluster[0]] + px[cluster[-1]]) / 2
            left = centre - width / 2
            row = next((r for r, edge in enumerate(right) if edge <= left), len(right))
            if row == len(right):
                right.append(0.0)
            right[row] = left + width
            rows.append(row)
        return rows, height


# The badge's pad (boxstyle pad is a share of the font size), in points.
_BOX_PAD_POINTS = 0.25 * EVENT_FONTSIZE


def _cluster_label(cluster: list[int]) -> str:
    return str(cluster[0] + 1) if len(cluster) == 1 else f"{cluster[0] + 1}–{cluster[-1] + 1}"


def draw_events(ax, params: Config, dates: pd.Series) -> list[tuple[EventKey, str]]:
    """Policy events as dashed vertical lines with a number at the top of the axes; returns
    the legend key (handle, '7 Jun 2025: label') of each number. Events on one day share it.

    Adds headroom above the data for the rows of numbers: call after drawing the data.
    """
    events = events_in_range(params, dates.min(), dates.max())
    if not events:
        return []
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + HEADROOM * (high - low))
    transform = ax.get_xaxis_transform()  # x in data, y as a share of the axes' height
    texts, xs, key = [], [], []
    for number, (when, labels) in enumerate(events, start=1):
        ax.axvline(when, color="grey", lw=0.8, ls="--", zorder=1)
        x = float(ax.convert_xunits(when))
        texts.append(ax.text(x, 1.0, str(number), ha="center", va="top",
                             fontsize=EVENT_FONTSIZE, color="dimgrey", bbox=_BOX, zorder=6,
                             transform=transform, clip_on=False, gid=EVENT_GID,
                             in_layout=False))
        xs.append(x)
        text = f"{day_label(when)}: {'; '.join(labels)}"
        key.append((EventKey(number), text))
    ax.add_artist(EventNumbers(texts, xs))
    return key


def legend_below(ax, key: Sequence[tuple[object, str]] = (), fontsize: float = 8):
    """The axes' legend below the plot: its entries first, then the events' key, each
    starting a new row. Two columns when the axes are wide enough, else one; long labels
    wrapped to the column."""
    handles, labels = ax.get_legend_handles_labels()
    # Inches the legend may span: the axes (before the layout shrinks them) and their labels.
    span = ax.get_position().width * ax.figure.get_figwidth() + 1.0
    ncol = 2 if span >= 8 else 1
    chars = max(30, int((span * 72 / ncol - 40) / (0.55 * fontsize)))
    blank = (Line2D([], [], ls="none"), "")
    rows_first = _padded(list(zip(handles, labels, strict=True)), ncol, blank)
    rows_first += _padded(list(key), ncol, blank)
    if not rows_first:
        return None
    # matplotlib fills columns first: reorder so that the entries read row by row.
    ordered = [rows_first[i] for c in range(ncol) for i in range(c, len(rows_first), ncol)]
    # Anchored a fixed distance below the axes (not a share of their height), clear of the
    # date labels whatever the figure's height.
    below = ax.transAxes + ScaledTranslation(0, -0.62, ax.figure.dpi_scale_trans)
    return ax.legend([h for h, _ in ordered],
                     [textwrap.fill(lab, chars, subsequent_indent="  ") for _, lab in ordered],
                     loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below,
                     ncol=ncol, fontsize=fontsize, frameon=False,
                     handler_map={EventKey: _EventKeyHandler()})


def _padded(entries: list, ncol: int, blank) -> list:
    return entries + [blank] * (-len(entries) % ncol)


# -- numbers ------------------------------------------------------------------------------------
def kind_of(figure: str) -> str:
    """'days', 'share' or 'count': how a headline figure (a dotted summary key) is written
    (:func:`sim.stats.figure_kind`)."""
    from sim.stats import figure_kind

    return figure_kind(figure)


def format_number(value: float, kind: str = "count", digits: int = 3) -> str:
    """A number for a reader: counts whole with thousands separators ('21,043'), days and
    shares to at most ``digits`` significant digits ('39.3', '0.293', '0.05'), never in
    e-notation."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if kind == "count" or abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text  # '0.05', not '0.0500'


def number_formatter(kind: str = "count"):
    """An axis formatter for a figure of ``kind``: counts as :func:`format_number` writes
    them ('10,000'; ticks between whole numbers keep their digits), days and shares as
    matplotlib does but never with an offset or in e-notation (ticks keep equal decimals)."""
    if kind != "count":
        plain = ScalarFormatter(useOffset=False)
        plain.set_scientific(False)
        return plain

    def tick(value: float, _pos) -> str:
        text = format_number(value, "share" if value != round(value) else "count")
        return text.replace("-", "\N{MINUS SIGN}")  # as matplotlib's own ticks write it

    return FuncFormatter(tick)
