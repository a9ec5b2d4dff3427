"""Figures people can read: event numbers that never overlap, the clearance threshold, the
who-waits and paired-difference figures, numbers without e-notation. Synthetic tables only:
no simulation runs here."""

import dataclasses
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import sim  # noqa: E402
from sim import plotting  # noqa: E402
from sim.params import EventConfig  # noqa: E402
from sim.plot_layout import EVENT_GID, format_number, kind_of  # noqa: E402

WIDTHS = (4, 6.4, 10, 16)  # inches: a narrow notebook cell to a wide screen


@pytest.fixture(scope="module")
def baseline():
    return sim.to_params(sim.load_config(["end_date=2025-09-30"]))


@pytest.fixture(scope="module")
def crowded(baseline):
    """Fifteen events on consecutive days and two on one day, amid the baseline's dates."""
    timeline = dict(baseline.timeline)
    timeline |= {f"e{k}": EventConfig(date=f"2025-06-{k + 1:02d}", label=f"event number {k}")
                for k in range(15)}
    timeline["same_day"] = EventConfig(date="2025-06-03", label="another on the same day")
    timeline["late"] = EventConfig(date="2025-09-29", label="the day before the end")
    return dataclasses.replace(baseline, timeline=timeline)


def daily_table(params, replications: bool = False) -> pd.DataFrame:
    dates = pd.date_range(params.start_date, params.end_date, freq="D")
    t = np.arange(len(dates))
    pending = 21000 * np.exp(-(((t - 80) / 45.0) ** 2))
    table = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "pending": pending,
                          "waiting": 0.8 * pending, "past_statutory_limit": 0.3 * pending,
                          "held": np.zeros(len(t))})
    if replications:
        for column in ("pending", "waiting", "past_statutory_limit"):
            table[f"{column}_low"], table[f"{column}_high"] = (0.95 * table[column],
                                                               1.05 * table[column])
            table[f"{column}_pred_low"] = 0.8 * table[column]
            table[f"{column}_pred_high"] = 1.2 * table[column]
    return table


SUMMARY = {"replications": 1, "clearance": {"backlog": "waiting", "threshold": 2100.0,
                                            "cleared": True, "clearance_date": "2025-08-20"}}


def draw(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def badges(fig):
    return [t for ax in fig.axes for t in ax.texts
            if t.get_gid() == EVENT_GID and t.get_visible()]


def overlapping(texts, renderer):
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text()]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2)
            if ba.x0 < bb.x1 and bb.x0 < ba.x1 and ba.y0 < bb.y1 and bb.y0 < ba.y1]


def legend_texts(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("timeline", ["baseline", "crowded"])
def test_event_labels_never_overlap(request, timeline, width):
    params = request.getfixturevalue(timeline)
    fig, ax = plt.subplots(figsize=(width, 8), layout="constrained")
    plotting.backlog_figure(params, daily_table(params), SUMMARY, ax=ax)
    renderer = draw(fig)
    numbers = badges(fig)
    assert numbers, "no event numbers drawn"
    assert overlapping(numbers, renderer) == []
    legend = fig.axes[0].get_legend()
    assert overlapping([*numbers, *legend.get_texts()], renderer) == []
    # every number sits inside the axes, clear of the title
    axes_box = ax.get_window_extent(renderer)
    for t in numbers:
        box = t.get_window_extent(renderer)
        assert axes_box.x0 - box.width <= box.x0 and box.y1 <= axes_box.y1
    plt.close(fig)


def test_numbers_are_laid_out_again_at_each_draw(crowded):
    """Resized (a notebook, savefig after display), the numbers are placed anew."""
    fig = plotting.backlog_figure(crowded, daily_table(crowded), SUMMARY)
    draw(fig)
    wide = [t.get_text() for t in badges(fig)]
    for width in (7, 16, 10):
        fig.set_size_inches(width, 6)
        renderer = draw(fig)
        assert badges(fig) and overlapping(badges(fig), renderer) == []
    renderer = draw(fig)  # drawn twice at one size: the same layout
    assert [t.get_text() for t in badges(fig)] == wide
    assert overlapping(badges(fig), renderer) == []
    plt.close(fig)


def test_every_event_has_its_number_in_the_key(crowded):
    fig = plotting.backlog_figure(crowded, daily_table(crowded), SUMMARY)
    draw(fig)
    texts = legend_texts(fig)
    assert any(t.startswith("3 Jun 2025: event number 2; another on the same day") for t in texts)
    assert any("the day before the end" in t for t in texts)
    assert any("London talks" in t for t in texts)
    # 15 close events at 10 inches: some numbers are merged into ranges, each number shown once
    shown = [t.get_text() for t in badges(fig)]
    covered = []
    for label in shown:
        first, _, last = label.partition("–")
        covered += list(range(int(first), int(last or first) + 1))
    assert sorted(covered) == list(range(1, len(covered) + 1))
    plt.close(fig)


def test_baseline_events_keep_their_own_numbers_at_the_usual_width(baseline):
    fig = plotting.backlog_figure(baseline, daily_table(baseline), SUMMARY)
    draw(fig)
    assert [t.get_text() for t in badges(fig)] == ["1", "2", "3", "4"]
    plt.close(fig)


def test_clearance_threshold_and_date_are_drawn(baseline):
    fig = plotting.backlog_figure(baseline, daily_table(baseline), SUMMARY)
    texts = legend_texts(fig)
    assert "clearance threshold: waiting below 10 % of its peak = 2,100" in texts
    assert "waiting backlog cleared on 20 Aug 2025" in texts
    ax = fig.axes[0]
    assert any(np.allclose(line.get_ydata(), 2100) for line in ax.get_lines())
    plt.close(fig)
    not_cleared = {"replications": 5, "clearance": {
        "backlog": "waiting", "threshold": 2100.0, "cleared": False, "clearance_date": None,
        "cleared_in_replications": 2}}
    fig = plotting.backlog_figure(baseline, daily_table(baseline, True), not_cleared)
    texts = " ".join(" ".join(legend_texts(fig)).split())  # labels may be wrapped
    assert "not cleared by 30 Sep 2025 (cleared in 2 of 5 replications)" in texts
    assert "(replication mean)" in texts
    plt.close(fig)


def test_bands_have_edges_and_distinct_shades(baseline):
    fig = plotting.backlog_figure(baseline, daily_table(baseline, True), SUMMARY)
    ax = fig.axes[0]
    bands = [c for c in ax.collections if len(c.get_paths())]
    assert len(bands) == 6  # three lines, each with both bands
    alphas = {round(float(c.get_facecolor()[0][3]), 2) for c in bands}
    assert len(alphas) == 2 and max(alphas) >= 0.2
    assert all(c.get_linewidth()[0] > 0 for c in bands)
    texts = legend_texts(fig)
    assert "95 % band of the mean" in texts
    assert any(t.startswith("95 % predictive interval") for t in texts)
    plt.close(fig)


def test_counts_on_the_axes_have_thousands_separators(baseline):
    fig = plotting.backlog_figure(baseline, daily_table(baseline), SUMMARY)
    draw(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert "10,000" in labels and not any("e+" in t for t in labels)
    plt.close(fig)


# -- who waits ----------------------------------------------------------------------------------
def who_waits_table() -> pd.DataFrame:
    rows = [("US, trusted, civilian", 1200, 95.0, 20, 50, 90, 130, 170),
            ("EU, not trusted, civilian", 15000, 60.5, 10, 30, 55, 80, 120),
            ("JP, trusted, military", 3, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan),
            ("other, not trusted, civilian", 800, 12.0, 1, 4, 9, 15, 30)]
    columns = ["group", "decisions", "mean_wait_days", "p10_wait_days", "p25_wait_days",
               "p50_wait_days", "p75_wait_days", "p90_wait_days"]
    return pd.DataFrame(rows, columns=columns)


def test_who_waits_figure():
    table = who_waits_table()
    fig = plotting.who_waits_figure(table)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    draw(fig)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ax.get_yticks()) == len(table)
    assert labels[0].startswith("US, trusted, civilian") and "1,200 decided" in labels[0]
    assert "15,000 decided" in labels[1]
    # the first row (the longest waits) is at the top
    tops = {t.get_text(): t.get_window_extent().y0 for t in ax.get_yticklabels()}
    assert tops[labels[0]] > tops[labels[-1]]
    assert ax.get_xlabel() == "wait for a first review (days)"
    assert any("no waits recorded" in t.get_text() for t in ax.texts)
    assert {"median", "mean of the reviewed waits"} <= {t.get_text()
                                                         for t in ax.get_legend().get_texts()}
    plt.close(fig)


def test_who_waits_figure_on_given_axes_and_empty_table():
    fig, ax = plt.subplots()
    assert plotting.who_waits_figure(who_waits_table().iloc[:1], ax=ax) is fig
    plt.close(fig)
    empty = plotting.who_waits_figure(who_waits_table().iloc[:0])
    assert isinstance(empty, Figure)
    draw(empty)
    plt.close(empty)


# -- paired difference ---------------------------------------------------------------------------
def difference_table(params, nan: bool = False):
    dates = pd.Series(pd.date_range(params.start_date, params.end_date, freq="D")
                      .strftime("%Y-%m-%d"))
    mean = -1500 * np.sin(np.linspace(0, np.pi, len(dates)))
    half = np.full(len(dates), np.nan) if nan else np.full(len(dates), 400.0)
    return dates, pd.DataFrame({"mean": mean, "low": mean - half, "high": mean + half})


@pytest.mark.parametrize("nan", [False, True])
def test_difference_figure(baseline, nan):
    dates, diff = difference_table(baseline, nan)
    fig = plotting.difference_figure(baseline, dates, diff, "more officials − baseline")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    renderer = draw(fig)
    assert ax.get_ylabel() == "pending: more officials − baseline (applications)"
    assert any(np.allclose(line.get_ydata(), 0) for line in ax.get_lines())  # the zero line
    texts = legend_texts(fig)
    assert "mean difference" in texts
    assert ("95 % interval of the paired mean difference" in texts) is not nan
    assert any("London talks" in t for t in texts)
    assert len(badges(fig)) == 4 and overlapping(badges(fig), renderer) == []
    plt.close(fig)


def test_difference_figure_with_a_nan_row_and_crowded_events(crowded):
    dates, diff = difference_table(crowded)
    diff.loc[10:20] = np.nan
    fig = plotting.difference_figure(crowded, dates, diff, "a − b")
    renderer = draw(fig)
    assert overlapping(badges(fig), renderer) == []
    plt.close(fig)


# -- numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "kind", "text"), [
    (21043.5, "count", "21,044"), (2.1e4, "count", "21,000"), (0.2934, "share", "0.293"),
    (0.05, "share", "0.05"), (39.29, "days", "39.3"), (123.4, "days", "123"),
    (4567.8, "days", "4,568"), (0.0, "days", "0"), (float("nan"), "count", "n/a"),
    (-1234.0, "count", "-1,234")])
def test_format_number(value, kind, text):
    assert format_number(value, kind) == text


def test_kind_of_figures():
    assert kind_of("peak_pending") == "count"
    assert kind_of("totals.approved") == "count"
    assert kind_of("mean_wait_days") == "days"
    assert kind_of("clearance.days_peak_to_clearance") == "days"
    assert kind_of("utilisation") == "share"
    assert kind_of("share_decided_late") == "share"


# -- sweep figures ------------------------------------------------------------------------------
@pytest.fixture
def sweep(tmp_path):
    """A synthetic sweep read back: officials.count x green_channel.mode, horizon_days fixed."""
    from sim.studies.sweeps import Job, Sweep

    levels = {"officials.count": [5, 8], "green_channel.mode": ["off", "priority"],
              "horizon_days": [200]}
    jobs = []
    for index, (count, mode) in enumerate(itertools.product(*list(levels.values())[:2])):
        values = {"officials.count": count, "green_channel.mode": mode, "horizon_days": 200}
        folder = tmp_path / f"job{index}"
        folder.mkdir()
        dates = pd.date_range("2025-04-04", periods=60, freq="D").strftime("%Y-%m-%d")
        pending = np.linspace(0, 21000 / count, 60)
        pd.DataFrame({"date": dates, "pending": pending}).to_csv(folder / "daily.csv")
        peak = 105000.0 / count + (500 if mode == "off" else 0)
        summary = {"replications": 3, "peak_pending": peak, "mean_wait_days": 39.29 + index,
                   "utilisation": 0.2934, "ci95": {"peak_pending": [peak - 800, peak + 800, 3],
                                                   "mean_wait_days": [30.0, 48.6, 3]}}
        overrides = tuple(f"{k}={v}" for k, v in values.items())
        jobs.append(Job(overrides, values, index, folder, "ok", summary=summary))
    return Sweep(tmp_path, list(levels), levels, jobs)


def test_sweep_legend_says_what_varies_in_words(sweep):
    from sim.studies.sweep_collect import backlog_curves_figure

    fig = backlog_curves_figure(sweep)
    texts = legend_texts(fig)
    assert texts == ["officials.count = 5, green_channel.mode = off",
                     "officials.count = 5, green_channel.mode = priority",
                     "officials.count = 8, green_channel.mode = off",
                     "officials.count = 8, green_channel.mode = priority"]
    assert "for all: horizon_days = 200" in fig.axes[0].get_title()
    # the last varying key sets the line style: 'off' solid, 'priority' dashed
    assert [line.get_linestyle() for line in fig.axes[0].get_lines()] == ["-", "--"] * 2
    plt.close(fig)


@pytest.mark.parametrize(("figure", "cell", "unit"), [
    ("peak_pending", "21,500\n(20,700 to 22,300)", "(applications)"),
    ("mean_wait_days", "39.3\n(30 to 48.6)", "(days)"),
    ("utilisation", "0.293", "(share)")])
def test_heatmap_names_its_keys_and_writes_numbers_for_readers(sweep, figure, cell, unit):
    from sim.studies.sweep_collect import heatmap_figure

    fig = heatmap_figure(sweep, figure)
    draw(fig)
    ax = fig.axes[0]
    assert ax.get_ylabel().startswith("officials.count")
    assert ax.get_xlabel().startswith("green_channel.mode")
    cells = [t.get_text() for t in ax.texts]
    assert cell in cells, cells
    colorbar = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert not any("e+" in t or "e-" in t for t in cells + colorbar)
    assert unit in ax.get_title() and unit in fig.axes[1].get_ylabel()
    plt.close(fig)


def test_figure_by_key_names_the_key_and_unit(sweep):
    from sim.studies.sweep_collect import figure_by_key

    fig = figure_by_key(sweep, "peak_pending", "officials.count")
    draw(fig)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("officials.count")
    assert ax.get_ylabel() == "peak pending (applications)"
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert any("," in t for t in labels) and not any("e+" in t for t in labels)
    plt.close(fig)
