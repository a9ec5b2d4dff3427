"""Every figure means what it says: the peak (the mean of the replications' peaks is not the
mean curve's peak), who waits longest (ranked by what is drawn, held groups apart), and where
each value comes from (one tag per setting, read as data, the calibrated ones exactly those
the calibration sets)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

import sim  # noqa: E402
from sim import plotting, reports  # noqa: E402
from sim.params import CONFIG_DIR, SEEDS_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TAG_WORD = re.compile(r"\b(CALIBRATED|DATA|ARTICLE|PROCESS|GUESS|CHOICE|SCENARIO)\b")


# -- the peak ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def replicated():
    """Three replications of a short M/M/c run: their peaks fall on different days, so the
    mean of their peaks is above the mean curve's peak."""
    res = sim.run(["scenario=mmc", "horizon_days=200", "warmup_days=0"], replications=3, jobs=1)
    assert res.summary["peak_pending"] > res.daily["pending"].max()  # the case at issue
    return res


def test_terminal_summary_names_both_peaks(replicated):
    res = replicated
    s = res.summary
    curve = res.daily["pending"].max()
    when = res.daily["date"].iloc[int(res.daily["pending"].to_numpy().argmax())]
    lines = reports.summary_lines(s, res.params.seed, res.daily)
    (line,) = [x for x in lines if "peak" in x and "clear" not in x]
    assert f"mean of the replications' peaks {reports.number(s['peak_pending'])} [" in line
    assert f"the mean curve peaks at {reports.number(curve)} on {when}" in line
    assert when == s["peak_pending_date"]  # summary.json's date is the mean curve's


def test_report_headline_has_the_mean_curve_peak_as_its_own_row(replicated):
    res = replicated
    table = reports.headline_table(res.summary, res.daily).set_index("key")
    assert "each replication's own peak" in table.loc["peak_pending", "figure"]
    assert table.loc["peak_pending", "mean"] == reports.number(res.summary["peak_pending"])
    curve = table.loc["daily.csv: largest pending"]
    assert "mean curve" in curve["figure"]
    assert curve["mean"] == (f"{reports.number(res.daily['pending'].max())} on "
                             f"{res.summary['peak_pending_date']}")


def test_one_replication_has_one_peak_with_its_date():
    res = sim.run(["scenario=mmc", "horizon_days=100", "warmup_days=0"], replications=1)
    table = reports.headline_table(res.summary, res.daily)
    assert not table["key"].str.contains("daily.csv").any()
    (words,) = table.loc[table["key"] == "peak_pending", "figure"]
    assert words == f"peak pending, on {res.summary['peak_pending_date']}"
    line = reports.peak_line(res.summary, res.daily)
    assert line == (f"peak pending {reports.number(res.summary['peak_pending'])} on "
                    f"{res.summary['peak_pending_date']}")


def test_backlog_figure_marks_the_mean_curve_peak_and_names_the_mean_of_peaks(replicated):
    res = replicated
    fig = plotting.backlog_figure(res.params, res.daily, res.summary)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    flat = [" ".join(t.split()) for t in texts]
    curve = plotting.format_number(res.daily["pending"].max())
    assert any(t.startswith(f"the mean curve peaks at {curve} on ") for t in flat), flat
    assert any("mean of the replications' own peaks" in t
               and t.endswith(plotting.format_number(res.summary["peak_pending"])) for t in flat)
    plt.close(fig)


def test_notebook_01_says_which_peak_is_which():
    nb = nbformat.read(ROOT / "notebooks" / "01_baseline_clearance.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for line in code.split("\n"):  # a line naming the mean curve never prints the mean of peaks
        if "mean curve" in line.lower():
            assert "summary['peak_pending']" not in line, line
    assert "mean_curve_peak" in code
    assert "replications' peaks" in code


# -- who waits longest ---------------------------------------------------------------------------
def who_table() -> pd.DataFrame:
    """As Results.who_waits orders it today: held groups first (blank waits), then the rest
    by the mean counting those still waiting, which need not follow the drawn mean."""
    nan = np.nan
    rows = [("US, untrusted, military", 69, 0, nan, nan, 0, 69),
            ("EU, untrusted, military", 142, 0, nan, nan, 0, 141),
            ("EU, untrusted, civilian", 23000, 15000, 89.0, 80.3, 5000, 0),
            ("IN, trusted, civilian", 576, 399, 139.0, 60.0, 130, 0),
            ("US, trusted, civilian", 5080, 4621, 13.5, 95.0, 0, 0),
            ("JP, trusted, civilian", 3, 0, nan, nan, 0, 0)]
    table = pd.DataFrame(rows, columns=["group", "arrivals", "decisions", "mean_wait_days",
                                        "mean_wait_days_with_waiting", "waiting_end",
                                        "held_end"])
    for q, shift in ((10, -30), (25, -10), (50, 0), (75, 10), (90, 30)):
        table[f"p{q}_wait_days"] = (table["mean_wait_days"] + shift).clip(lower=0)
    table["share_decided_within_limit"] = 0.5
    return table


def test_who_waits_figure_ranks_by_its_diamond_and_leaves_held_groups_out():
    fig = plotting.who_waits_figure(who_table())
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t.get_text().split("  (")[0] for t in ax.get_yticklabels()]
    assert labels == ["US, trusted, civilian", "EU, untrusted, civilian",
                      "IN, trusted, civilian", "JP, trusted, civilian"]
    # the diamonds (the ranking figure) fall from the top row down
    diamonds = [line for line in ax.lines if line.get_marker() == "D"]
    xs = [float(d.get_xdata()[0]) for d in sorted(diamonds, key=lambda d: d.get_ydata()[0])]
    assert xs == sorted(xs, reverse=True) == [95.0, 80.3, 60.0]
    assert "ranked by the mean counting those still waiting" in ax.get_title()
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "not drawn: 210 applications" in legend and "held for ever in 2 groups" in legend
    plt.close(fig)


def test_report_lists_held_groups_apart_with_their_count_and_age(tmp_path):
    days = pd.date_range("2025-04-04", periods=11).strftime("%Y-%m-%d")
    held = [0, 0, 10, 10, 10, 20, 20, 20, 20, 20, 20]  # 10 held on day 2, 10 more on day 5
    results = SimpleNamespace(who_waits=who_table(),
                              daily=pd.DataFrame({"date": days, "held": held}))
    html = "\n".join(reports.who_waits_section(results, tmp_path / "who_waits.png"))
    ranked = re.findall(r"<tr><td>([^<]+)</td>", html.split("<h3>")[0])
    assert ranked == ["US, trusted, civilian", "EU, untrusted, civilian",
                      "IN, trusted, civilian", "JP, trusted, civilian"]
    held_part = html.split("<h3>Held for ever</h3>")[1]
    assert "210 applications are held for ever at the end, in 2 groups" in held_part
    # ages from the daily count: 10 held 8 days, 10 held 5 days
    assert "held a mean of 6.5 days since acceptance, the oldest since 2025-04-06 (8 days)" \
        in held_part
    assert re.findall(r"<tr><td>([^<]+)</td>", held_part) == [
        "EU, untrusted, military", "US, untrusted, military"]


def test_who_waits_table_is_in_the_reports_order_held_only_groups_last():
    """who_waits.csv (Results.who_waits) ranks as the report and the figure do; groups only
    held (never reviewed: no wait) come last, not first with blank cells."""
    res = sim.run(["end_date=2025-06-30", "calibration.ensemble=false"], replications=1)
    table = res.who_waits
    ranked, held = reports_split(table)
    only_held = held[~held["group"].isin(ranked["group"])]
    assert len(only_held) > 0  # the baseline holds military end uses
    assert list(table["group"]) == [*ranked["group"], *only_held["group"]]


def reports_split(table):
    from sim.who_waits import split

    return split(table)


# -- where each value comes from -----------------------------------------------------------------
def committed_calibration() -> tuple[list[str], list[str]]:
    """The settings the committed calibration varies (its ranges file) and those every member
    of the committed ensemble sets."""
    recipe = yaml.safe_load((CONFIG_DIR / "calibrate" / "default.yaml").read_text())
    ranges = yaml.safe_load((CONFIG_DIR / recipe["ranges_file"]).read_text())["parameters"]
    params = sim.to_params(sim.load_config([f"scenario={recipe['scenario']}"]))
    members = yaml.safe_load((CONFIG_DIR / params.calibration.ensemble_file).read_text())
    member_keys = {k for m in members["members"] for k in m}
    assert all(set(m) == member_keys for m in members["members"])
    return sorted(ranges), sorted(member_keys)


def test_calibrated_settings_are_exactly_those_the_calibration_sets():
    ranges, members = committed_calibration()
    assert ranges == members
    table = reports.sources_table(sim.to_params(sim.load_config([])))
    assert sorted(table.loc[table["source"] == "CALIBRATED", "setting"]) == ranges
    from sim import sources

    assert sorted(sources.calibrated("baseline_2025")) == ranges


def test_every_setting_of_the_baseline_has_exactly_one_tag():
    table = reports.sources_table(sim.to_params(sim.load_config([])))
    assert table["setting"].is_unique
    assert "interagency" not in set(table["setting"])  # a mapping's line is not a setting
    tag = table.set_index("setting")["source"]
    assert tag["arrivals.surges.0.start_date"] == "ARTICLE"
    assert tag["arrivals.surges.0.size"] == tag["arrivals.surges.0.decay_days"] == "CALIBRATED"
    assert tag["consultation.mean_working_days"] == "GUESS"
    assert tag["interagency.mean_working_days"] == "CALIBRATED"
    assert tag["interagency.cv"] == "GUESS"
    from sim import sources

    assert set(table["source"]) <= set(sources.TAGS)
    valued = sources.set_here("baseline_2025")
    listed = sources.read_sources("baseline_2025")
    assert [k for k in valued if k not in listed] == []  # none untagged
    assert [k for k in listed if k not in sources.set_here("baseline_2025", with_null=True)] \
        == []  # no entry for a setting the file does not set
    assert set(valued) <= set(table["setting"])


SOURCED = sorted(p.stem for p in (CONFIG_DIR / "sources").glob("*.yaml"))


@pytest.mark.parametrize("scenario", SOURCED)
def test_a_sources_table_names_only_what_its_scenario_sets(scenario):
    from sim import sources

    listed = sources.read_sources(scenario)
    assert listed
    assert [k for k in listed if k not in sources.set_here(scenario, with_null=True)] == []


def test_scenarios_built_on_the_baseline_keep_its_calibrated_settings():
    from sim import sources

    built = [p.stem for p in (CONFIG_DIR / "scenario").glob("*.yaml")
             if "baseline_2025" in sources.bases(p.stem)]
    assert len(built) >= 5
    for name in built:
        assert sorted(sources.calibrated(name)) == sorted(sources.calibrated("baseline_2025")), \
            name
        assert set(sources.set_here(name)) <= set(sources.scenario_sources(name)), name


def test_scenario_comments_carry_no_tags():
    # the tags live in configs/sources/ only: a comment naming a tag is a second, drifting copy
    scenarios = CONFIG_DIR / "scenario"
    built = [p.stem for p in scenarios.glob("*.yaml")
             if "baseline_2025" in (yaml.safe_load(p.read_text()).get("defaults") or [])]
    for name in ["baseline_2025", *built]:
        lines = (scenarios / f"{name}.yaml").read_text().split("\n")
        first = next(i for i, line in enumerate(lines)
                     if line.strip() and not line.startswith("#"))  # the header may explain them
        tagged = [line for line in lines[first:] if TAG_WORD.search(line.partition("#")[2])]
        assert tagged == [], (name, tagged)


def test_cited_ids_exist_in_the_seeds():
    from sim import sources

    known = set()
    for path in SEEDS_DIR.glob("*.yaml"):
        known |= set(re.findall(r"^\s*- id: (\S+)", path.read_text(), re.M))
    for path in (CONFIG_DIR / "sources").glob("*.yaml"):
        for key, src in sources.read_sources(path.stem).items():
            assert set(src.cite) <= known, (path.name, key, set(src.cite) - known)


def test_a_setting_given_twice_or_an_unknown_tag_is_refused(tmp_path, monkeypatch):
    from sim import sources

    monkeypatch.setattr(sources, "SOURCES_DIR", tmp_path)
    (tmp_path / "x.yaml").write_text("scenario: x\nsources:\n  interagency.cv: {tag: GUESS}\n"
                                     "  interagency.cv: {tag: PROCESS}\n")
    with pytest.raises(ValueError, match="interagency.cv is given twice"):
        sources.read_sources("x")
    (tmp_path / "x.yaml").write_text("scenario: x\nsources:\n  interagency.cv: {tag: MAYBE}\n")
    with pytest.raises(ValueError, match="MAYBE"):
        sources.read_sources("x")


def test_value_column_says_what_ran(compose):
    on = compose("officials.count=6")
    table = reports.sources_table(on)
    assert "scenario value (representative point)" in table.columns
    assert "value that ran" not in table.columns
    row = table.set_index("setting").loc["officials.count"]
    assert row["source"] == "COMMAND LINE" and "CALIBRATED" in row["note"]
    html = "\n".join(reports.sources_section(on))
    assert "members.csv" in html and "representative point" in html
    off = reports.sources_table(compose("calibration.ensemble=false"))
    assert "value that ran" in off.columns
    assert "ensemble members' range" not in off.columns


def test_the_sources_ship_where_the_configs_are_found():
    from sim import sources

    assert sources.SOURCES_DIR == CONFIG_DIR / "sources"
    assert sources.sources_file("baseline_2025").is_file()


@pytest.mark.slow
def test_the_wheel_ships_the_sources(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (CONFIG_DIR / "sources").glob("*.yaml"):
        assert f"sim/configs/sources/{path.name}" in names
