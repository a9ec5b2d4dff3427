"""The observation operator (sim/exports.py), observed series as readings (sim/observations.py)
and the hindcast's scores (sim/studies/hindcast.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from scipy import stats

from sim import exports
from sim import observations as obs
from sim.config import load_config, to_params
from sim.params import SEEDS_DIR
from sim.runner import simulate
from sim.studies import hindcast, space
from sim.studies import history_matching as hm
from sim.studies.targets import Target, TargetsError
from sim.validation import ConfigError, validate

QUIET = ["output.plots=false", "calibration.ensemble=false"]
CUSTOMS = SEEDS_DIR / "customs_magnet_exports.csv"


def params(*overrides: str):
    return to_params(load_config([*QUIET, *overrides]))


# -- the operator, worked by hand ----------------------------------------------------------------
def test_shipments_move_approvals_by_the_lag_and_weigh_renewals():
    approved = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 2]])
    e = dataclasses.replace(params().exports, shipping_lag_days=2, renewal_weight=0.25)
    out = exports.shipments(approved, np.array([False, True]), e)
    assert out.tolist() == [[0, 0, 1, 2, 3], [0, 0, 1.0, 0, 0]]  # the last 2 ship after the run
    e = dataclasses.replace(e, shipping_lag_days=0)
    assert exports.shipments(approved, np.array([False, False]), e).tolist() == approved.tolist()


def test_monthly_index_worked_by_hand():
    """Every day a working day (calendar.kind=every_day): 2024 has 366, so W_ref = 30.5."""
    p = params("calendar.kind=every_day", "start_date=2025-03-10", "end_date=2025-04-30",
               "horizon_days=null", "arrivals.rate_per_day=10",
               "exports.controlled_share=0.8", "exports.demand_level=1.2")
    shipped = np.zeros(52)  # 2025-03-10 .. 2025-04-30
    shipped[5] = 100.0  # 2025-03-15
    shipped[30:40] = 31.0  # ten April days
    months = ["2025-02", "2025-03", "2025-04", "2025-05"]
    got = exports.monthly_index(p, months, shipped)
    w_ref = 366 / 12
    feb = 1.2 * (0.2 * 28 / w_ref + 0.8 * (10 * 28) / (10 * w_ref))  # before the controls
    mar = 1.2 * (0.2 * 31 / w_ref + 0.8 * (10 * 9 + 100) / (10 * w_ref))  # 9 days before them
    apr = 1.2 * (0.2 * 30 / w_ref + 0.8 * 310 / (10 * w_ref))
    assert got[:3] == pytest.approx([feb, mar, apr], rel=1e-12)
    assert np.isnan(got[3])  # May is not in the run
    us = exports.monthly_index(p, ["2025-04"], shipped * p.classes.destination_shares["US"],
                               "US")
    assert us[0] == pytest.approx(apr, rel=1e-12)  # the same flow, scaled to the US's share


def test_china_calendar_gives_the_lunar_new_year_dip():
    p = params("start_date=2025-04-04")
    jan, feb, mar = exports.monthly_index(p, ["2025-01", "2025-02", "2025-03"], np.zeros(400))
    w_ref = exports.reference_working_days(p)
    assert 20 < w_ref < 21.5  # 2024: about 251 working days
    assert mar > jan >= feb  # Spring Festival: late January and early February off


@pytest.mark.slow
def test_every_approval_ships_once_in_a_run():
    p = params("scenario=baseline_2025", "end_date=2025-09-30", "exports.shipping_lag_days=5",
               "exports.renewal_weight=0.5", "licence.renewal_share=0.6",
               "licence.term_days=60", "licence.renewal_lead_days=10")
    res = simulate(p, replication=0)
    bc = res.by_class
    dates = sorted(bc["date"].unique())
    shipped_in_run = bc[bc["date"] <= dates[-6]]
    expected = (shipped_in_run[~shipped_in_run["renewal"]]["approved"].sum()
                + 0.5 * shipped_in_run[shipped_in_run["renewal"]]["approved"].sum())
    assert bc[bc["renewal"]]["approved"].sum() > 0  # renewals happened
    assert res.daily["shipments"].sum() == pytest.approx(expected)
    assert bc["shipments"].sum() == pytest.approx(expected)
    total = res.summary["export_index"]["total"]
    assert set(total) == {f"2025-{m:02d}" for m in range(1, 10)}
    assert total["2025-01"] == pytest.approx(total["2025-01"])  # finite


@pytest.mark.slow
def test_exports_settings_leave_the_queue_alone():
    """An output only: the queue is the same whatever the mapping (and in scenario=mmc)."""
    for scenario in ("mmc", "baseline_2025"):
        frame = (f"scenario={scenario}", "horizon_days=120", "end_date=null", "warmup_days=0")
        a = simulate(params(*frame), 0)
        b = simulate(params(*frame,
                            "exports.shipping_lag_days=20", "exports.controlled_share=0.4",
                            "exports.renewal_weight=0", "exports.demand_level=2"), 0)
        assert a.daily["pending"].tolist() == b.daily["pending"].tolist()
        assert a.daily["approved"].tolist() == b.daily["approved"].tolist()


@pytest.mark.parametrize("override, key", [
    ("exports.controlled_share=1.5", "exports.controlled_share"),
    ("exports.controlled_share=-0.1", "exports.controlled_share"),
    ("exports.shipping_lag_days=-1", "exports.shipping_lag_days"),
    ("exports.shipping_lag_days=400", "exports.shipping_lag_days"),
    ("exports.renewal_weight=nan", "exports.renewal_weight"),
    ("exports.renewal_weight=2", "exports.renewal_weight"),
    ("exports.demand_level=0", "exports.demand_level"),
    ("exports.demand_level=inf", "exports.demand_level"),
])
def test_bad_exports_settings_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(params(override))


def test_exports_cannot_change_in_a_timeline_event():
    with pytest.raises(ConfigError, match="cannot change"):
        validate(params("+timeline.x={date: '2025-05-01', changes: "
                        "{exports.controlled_share: 0.5}}"))


# -- observed series ---------------------------------------------------------------------------
def test_committed_series_loads_as_readings():
    rows = obs.load(CUSTOMS)
    total = {o.month: o for o in rows if o.series == "total"}
    assert total["2025-05"].tonnes == pytest.approx(1238.47)
    assert total["2025-05"].index == pytest.approx(1238.47 / (58120 / 12))
    assert all(o.month <= "2025-12" for o in rows)  # nothing after 2025 (evidence rules)
    s = obs.ObservationSettings()
    targets = obs.targets(rows, s)
    ids = {t.id for t in targets}
    assert {"exports_total_2025-01", "exports_total_2025-12", "exports_US_2025-05"} <= ids
    jan = next(t for t in targets if t.id == "exports_total_2025-01")
    assert jan.discrepancy_sd == 0.25 and jan.default
    assert jan.observed == pytest.approx(total["2025-01"].index)
    # +-3 sd of the observation error: 2 % of the value for a reported figure
    assert np.sqrt(jan.observation_var) == pytest.approx(0.02 * jan.observed)
    cut = obs.targets(rows, dataclasses.replace(s, last_month="2025-08"))
    assert {t.id for t in cut if not t.default} == {t.id for t in cut if t.date > "2025-08-31"}


@pytest.mark.parametrize("text, words", [
    ("month,destination,tonnes,kind\n2025-01,total,1,reported\n", "missing column period"),
    ("period,destination,tonnes,kind\n2025-13,total,1,reported\n", "period='2025-13'"),
    ("period,destination,tonnes,kind\n2025-01,Mars,1,reported\n", "destination='Mars'"),
    ("period,destination,tonnes,kind\n2025-01,total,-4,reported\n", "tonnes='-4'"),
    ("period,destination,tonnes,kind\n2025-01,total,lots,reported\n", "tonnes='lots'"),
    ("period,destination,tonnes,kind\n2025-01,total,nan,reported\n", "tonnes='nan'"),
    ("period,destination,tonnes,kind\n2025-01,total,1,guessed\n", "kind='guessed'"),
    ("period,destination,tonnes,kind\n2025-01,total,1,reported\n2025-01,total,2,derived\n",
     "a second row"),
    ("period,destination,tonnes,kind\n2024,total,1,reported\n", "no monthly rows"),
    ("", "missing column"),
])
def test_malformed_observations_file_is_one_line(tmp_path, text, words):
    path = tmp_path / "series.csv"
    path.write_text(text)
    with pytest.raises(TargetsError) as err:
        obs.load(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_observations_without_their_reference_year_are_refused(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("period,destination,tonnes,kind\n2025-01,total,1,reported\n")
    with pytest.raises(TargetsError, match="no 2024 row for total"):
        obs.targets(obs.load(path), obs.ObservationSettings(series=["total"]))
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(TargetsError, match="cannot read"):
        obs.load(path)


@pytest.mark.parametrize("change, key", [
    (dict(series=["Mars"]), "calibrate.observations.series"),
    (dict(series=["IN"]), "calibrate.observations.discrepancy"),
    (dict(first_month="2025-13"), "calibrate.observations.first_month"),
    (dict(last_month="2024-12"), "calibrate.observations.last_month"),
    (dict(check_until="2025-11"), "calibrate.observations.check_until"),
    (dict(file="seeds/nope.csv"), "calibrate.observations.file"),
    (dict(error={"reported": 0.02}), "calibrate.observations.error"),
    (dict(discrepancy={"total": -1, "US": 0.2}), "calibrate.observations.discrepancy.total"),
])
def test_bad_observation_settings_are_refused_naming_the_key(change, key):
    from sim.studies.calibration import REPO_DIR

    s = dataclasses.replace(obs.ObservationSettings(), **change)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        obs.check(s, "calibrate.observations", REPO_DIR)


def test_a_file_that_is_not_observations_is_the_settings_fault(tmp_path):
    from sim.studies.calibration import REPO_DIR

    other = tmp_path / "thesis.csv"
    other.write_text("a,b\n1,2\n")
    s = dataclasses.replace(obs.ObservationSettings(), file=str(other))
    with pytest.raises(ConfigError) as refused:
        obs.check(s, "calibrate.observations", REPO_DIR)
    assert str(refused.value).startswith(f"calibrate.observations.file='{other}': missing column")


# -- history matching on a synthetic series ------------------------------------------------------
@pytest.mark.slow
def test_history_match_on_a_synthetic_series_keeps_the_true_point():
    """Monthly index readings made by the model at a known point: the match keeps that point
    (every emulator) and rules out a distant one."""
    base = params("scenario=baseline_2025", "end_date=2025-07-01")
    factors = [space.Factor("exports.controlled_share", 0.3, 1.0, "test"),
               space.Factor("review.mean_hours", 0.25, 4.0, "test", scale="log")]
    truth = [0.9, 0.6]
    true_u = np.array([f.unit(x) for f, x in zip(factors, truth, strict=True)])
    months = ["2025-04", "2025-05", "2025-06"]
    probes = [Target(m, m, True, exports.month_end(m).isoformat(), "export_index", 0.0, 1.0)
              for m in months]
    p_true = space.point_params(base, factors, true_u)
    p_true.seed = 777
    sims, _ = hm.run_points([p_true], 4, probes, jobs=1)
    centre = sims[0].mean(axis=0)
    targets = [Target(t.id, t.group, True, t.date, t.output, float(c - 0.06), float(c + 0.06),
                      discrepancy_sd=0.03) for t, c in zip(probes, centre, strict=True)]
    settings = hm.Settings(waves=2, points=8, replications=2, candidates=4000, seed=5, jobs=2,
                           rank=1)
    match = hm.history_match(base, factors, targets, list(range(len(targets))), settings)
    assert match.final_share < 0.5
    distant = np.array([[0.05, 0.95]])  # a small controlled share, slow reviews
    worst = []
    for w in (1, 2):  # a later wave's emulator speaks only inside the earlier waves' region
        em = hm.Emulator(match.units[match.wave_of == w],
                         hm.scaled_outputs(match.outputs[match.wave_of == w], targets), 1)
        assert hm.emulated_implausibility(em, true_u[None], targets,
                                          settings.discrepancy).max() <= settings.cutoff
        worst.append(hm.emulated_implausibility(em, distant, targets,
                                                settings.discrepancy).max())
    assert worst[0] > settings.cutoff  # wave 1's emulator (over the whole box) rules it out
    for u, kept in ((true_u, True), (distant[0], False)):  # and so do their own runs
        p = space.point_params(base, factors, u)
        p.seed = 12345
        out, _ = hm.run_points([p], 3, targets)
        scaled = hm.scaled_outputs(out, targets)
        imp = hm.run_implausibility(scaled, scaled.var(axis=1, ddof=1), targets,
                                    settings.discrepancy)
        assert (imp.max() <= settings.cutoff) == kept
    assert len(match.members) > 0


# -- hindcast scores -----------------------------------------------------------------------------
def test_interval_score_and_crps_against_closed_forms():
    assert hindcast.interval_score(1.0, 2.0, 1.5, 0.1) == 1.0
    assert hindcast.interval_score(1.0, 2.0, 2.5, 0.1) == pytest.approx(1.0 + 20 * 0.5)
    assert hindcast.interval_score(1.0, 2.0, 0.0, 0.5) == pytest.approx(1.0 + 4 * 1.0)
    rng = np.random.default_rng(1)
    x = rng.normal(0.3, 0.7, 200_000)
    for y in (-1.0, 0.3, 2.0):  # a large normal sample's CRPS is the closed form's
        assert hindcast.crps_samples(x, y) == pytest.approx(hindcast.crps_normal(0.3, 0.7, y),
                                                            abs=5e-3)
    # closed form at the mean: sd * (2 phi(0) - 1/sqrt(pi))
    assert hindcast.crps_normal(0, 1, 0) == pytest.approx(2 * stats.norm.pdf(0)
                                                          - 1 / np.sqrt(np.pi))


def test_naive_forecast_carries_the_origin_forward():
    def t(month, value):
        end = exports.month_end(month).isoformat()
        return Target(f"exports_total_{month}", "g", True, end, "export_index", value - 0.03,
                      value + 0.03)

    seen = [t("2025-04", 0.5), t("2025-05", 0.3), t("2025-06", 0.7)]
    ahead = [t("2025-07", 1.0), t("2025-09", 1.2)]
    rows = hindcast.naive_rows("2025-06", ahead, seen + ahead)
    step = np.sqrt(np.mean(np.square([-0.2, 0.4])))
    assert [r["mean"] for r in rows] == [pytest.approx(0.7)] * 2
    assert rows[1]["horizon_months"] == 3
    half = stats.norm.ppf(0.95) * step * np.sqrt(3)
    assert rows[1]["high_90"] - rows[1]["low_90"] == pytest.approx(2 * half)
    assert dt.date.fromisoformat(rows[0]["month"] + "-01")


def test_hindcast_settings_refused_in_one_line():
    from sim.studies.calibration import Settings as CalSettings

    cal = CalSettings()
    for change, key in ((dict(origins=[]), "hindcast.origins"),
                        (dict(origins=["2025-08", "2025-06"]), "hindcast.origins"),
                        (dict(origins=["2025-13"]), "hindcast.origins"),
                        (dict(until="2025-06"), "hindcast.until"),
                        (dict(replications=1), "hindcast.replications"),
                        (dict(origins=["2024-06"]), "hindcast.origins")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            hindcast.check(dataclasses.replace(hindcast.Settings(), **change), cal)


# -- the hindcast app ----------------------------------------------------------------------------
def _hindcast(tmp_path, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "sim.hindcast", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_hindcast_smoke_run_scores_model_and_naive(tmp_path):
    import pandas as pd

    out = tmp_path / "hc"
    # the smoke recipe with fewer points a wave: what is checked is the scoring, not the fit
    proc = _hindcast(tmp_path, "hindcast=smoke", "calibrate.match.points=6",
                     f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    rows = pd.read_csv(out / "hindcast.csv")
    assert set(rows["forecast"]) == {"model", "naive"}
    assert set(rows["month"]) == {"2025-06", "2025-07"}  # after the origin, to `until`
    assert (rows["low_90"] <= rows["low_50"]).all() and (rows["high_50"] <= rows["high_90"]).all()
    assert (rows["interval_score_90"] >= rows["high_90"] - rows["low_90"] - 1e-12).all()
    summary = pd.read_csv(out / "hindcast_summary.csv")
    assert summary["coverage_90"].between(0, 1).all()
    assert (out / "hindcast.png").stat().st_size > 10_000
    assert "origin 2025-05, model" in proc.stdout


HINDCAST_BAD = [
    ("hindcast.origins=[2025-13]", "hindcast.origins"),
    ("hindcast.replications=1", "hindcast.replications"),
    ("hindcast.until=2025-04", "hindcast.until"),
    ("+hindcast.nope=1", "hindcast.nope"),
    ("calibrate.observations.series=[Mars]", "calibrate.observations.series"),
]


@pytest.mark.parametrize("arg, words", HINDCAST_BAD)
def test_hindcast_bad_settings_one_line_nothing_written(tmp_path, monkeypatch, capsys, arg,
                                                        words):
    """The checks python -m sim.hindcast runs before Hydra starts, in this process."""
    from sim import hindcast as hindcast_app
    from sim.command_line import guard

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "hc"
    with pytest.raises(SystemExit) as exit_:
        guard([arg, f"hydra.run.dir={out}"], config_name="hindcast", then=hindcast_app.check)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_hindcast_refusal_through_the_real_door(tmp_path):
    out = tmp_path / "hc"
    proc = _hindcast(tmp_path, "hindcast.until=2025-04", f"hydra.run.dir={out}")
    assert proc.returncode == 2, proc.stderr
    assert "hindcast.until" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_observed_versus_predicted_band_adds_the_stated_errors():
    s = obs.ObservationSettings()
    # one replication: the band with errors is the normal interval around it
    got = obs.versus({"total": {"2025-05": np.array([0.3])}}, CUSTOMS, s)["total"]["2025-05"]
    index = 1238.47 / (58120 / 12)
    sd = np.hypot(0.02 * index, 0.1)
    assert got["observed"] == pytest.approx(index) and got["kind"] == "reported"
    assert got["with_error_low"] == pytest.approx(0.3 - stats.norm.ppf(0.975) * sd, rel=1e-6)
    assert got["with_error_high"] == pytest.approx(0.3 + stats.norm.ppf(0.975) * sd, rel=1e-6)
    assert got["inside"] == (got["with_error_low"] <= index <= got["with_error_high"])
    # many replications: the mixture's interval is that of replications plus noise
    rng = np.random.default_rng(3)
    v = rng.uniform(0.5, 1.5, 400)
    got = obs.versus({"US": {"2025-08": v}}, CUSTOMS, s)["US"]["2025-08"]
    noisy = np.repeat(v, 500) + rng.normal(0, np.hypot(0.02 * got["observed"], 0.2), 200_000)
    assert [got["with_error_low"], got["with_error_high"]] == pytest.approx(
        np.percentile(noisy, [2.5, 97.5]), abs=0.01)
    assert got["low"] == pytest.approx(np.percentile(v, 2.5))
    # months the file does not hold are left out
    assert obs.versus({"total": {"2026-03": np.array([1.0])}}, CUSTOMS, s) == {}


def test_second_largest_implausibility_rule():
    imp = np.array([[1.0, 2.0, 3.5], [1.0, 3.2, 3.5], [0.5, 0.5, 4.5], [0.1, np.nan, 0.2]])
    one = hm.Settings(rank=1, cutoff_largest=100.0)
    assert hm.plausible(imp, one).tolist() == [False, False, False, False]
    two = dataclasses.replace(one, rank=2, cutoff_largest=4.0)
    assert hm.plausible(imp, two).tolist() == [True, False, False, False]
    assert hm.plausible(imp[:, :1], two).tolist() == [True, True, True, True]  # rank > targets
    with pytest.raises(ConfigError, match="cutoff_largest"):
        hm.check(dataclasses.replace(two, cutoff_largest=2.0))
