"""Calibration: targets checked on loading, outputs computed right, implausibility, the committed
baseline meets what it claims, a known parameter set is recovered, and the app runs end to end.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim import calibration as cal
from sim.config import CONFIG_DIR, load_config, to_params
from sim.runner import simulate

REPO = CONFIG_DIR.parent
TARGETS = REPO / "seeds" / "targets.yaml"
ENSEMBLE = CONFIG_DIR / "calibrated" / "ensemble_baseline_2025.yaml"
HORIZON = ("2025-04-04", "2026-06-30")


def params(*overrides: str):
    return to_params(load_config(["scenario=baseline_2025", *overrides]))


# -- targets files ---------------------------------------------------------------------------------
def test_project_targets_load_with_one_default_per_group():
    targets = cal.load_targets(TARGETS, *HORIZON)
    assert len({t.id for t in targets}) == len(targets)
    chosen = cal.select_targets(targets)
    assert len(chosen) == len({t.group for t in targets})
    assert all(t.default for t in chosen)


def _bad_file(tmp_path: Path, change) -> Path:
    doc = yaml.safe_load(TARGETS.read_text())
    change(doc["targets"][0])
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


BAD = {
    "missing field": (lambda t: t.pop("low"), "missing field low"),
    "low above high": (lambda t: t.update(low=9, high=3), "low=9 > high=3"),
    "unknown output": (lambda t: t.update(output="backlog"), "unknown output 'backlog'"),
    "unknown filter": (lambda t: t.update(output="pending:destination=Mars"), "unknown output"),
    "date outside horizon": (lambda t: t.update(date="2027-01-05"), "outside the horizon"),
    "bad date": (lambda t: t.update(date="June"), "not YYYY-MM-DD"),
    "two defaults": (lambda t: t.update(group="pending_thousands"), "2 default readings"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_targets_refused_with_one_line(tmp_path, case):
    change, words = BAD[case]
    with pytest.raises(cal.TargetsError) as err:
        cal.load_targets(_bad_file(tmp_path, change), *HORIZON)
    message = str(err.value)
    assert words in message
    assert "\n" not in message


def test_unknown_reading_refused():
    targets = cal.load_targets(TARGETS, *HORIZON)
    with pytest.raises(cal.TargetsError, match="unknown target id 'nope'"):
        cal.select_targets(targets, readings=["nope"])
    swapped = cal.select_targets(targets, readings=["pending_thousands_literal"],
                                 drop_groups=["approved_7d_0607"])
    ids = {t.id for t in swapped}
    assert "pending_thousands_literal" in ids and "pending_thousands_loose" not in ids
    assert not any(t.group == "approved_7d_0607" for t in swapped)


RANGE_CASES = {
    "no such key": ({"review.speed": {"low": 1, "high": 2, "reason": "r"}}, "no such key"),
    "frame key": ({"seed": {"low": 1, "high": 2, "reason": "r"}}, "cannot be calibrated"),
    "low above high": ({"review.mean_hours": {"low": 2, "high": 1, "reason": "r"}},
                       "must be below"),
    "no reason": ({"review.mean_hours": {"low": 1, "high": 2}}, "needs a reason"),
    "log from zero": ({"review.mean_hours": {"low": 0, "high": 2, "reason": "r",
                                             "scale": "log"}}, "log with low > 0"),
    "rebalance weights": ({"classes.destination_shares.US": {
        "low": 0.1, "high": 0.2, "reason": "r", "rebalance": {"EU": 1}}}, "rebalance needs"),
}


@pytest.mark.parametrize("case", sorted(RANGE_CASES))
def test_bad_ranges_refused(tmp_path, case):
    entries, words = RANGE_CASES[case]
    path = tmp_path / "ranges.yaml"
    path.write_text(yaml.safe_dump({"parameters": entries}))
    with pytest.raises(cal.TargetsError, match=words):
        cal.load_ranges(path, params())


def test_cli_refuses_bad_targets_file(tmp_path):
    path = _bad_file(tmp_path, lambda t: t.update(low=9, high=3))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-m", "sim.calibrate", "calibrate=smoke",
                           f"calibrate.targets_file={path}", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "low=9 > high=3" in lines[0]


# -- outputs and scores ----------------------------------------------------------------------------
def test_outputs_from_run_tables():
    p = params("end_date=2025-05-10", "arrivals.rate_per_day=20", "arrivals.surges=[]")
    res = simulate(p, replication=0)
    daily, by_class = res.daily, res.by_class
    us = by_class[by_class["destination"] == "US"].groupby("date")[["pending", "approved"]].sum()
    us = us.reindex(daily["date"], fill_value=0)
    np.testing.assert_array_equal(cal.output_series(res, "pending"), daily["pending"])
    np.testing.assert_array_equal(cal.output_series(res, "pending:destination=US"), us["pending"])
    np.testing.assert_array_equal(cal.output_series(res, "approved_cumulative:destination=US"),
                                  us["approved"].cumsum())
    week = daily["approved"].rolling(7, min_periods=1).sum()
    np.testing.assert_array_equal(cal.output_series(res, "approved_7d"), week)
    np.testing.assert_array_equal(cal.output_series(res, "officials"), daily["officials"])
    assert daily["approved"].sum() > 0 and us["pending"].sum() > 0


def test_implausibility():
    low, high = np.array([10.0, 10.0, 10.0]), np.array([20.0, 20.0, 20.0])
    samples = np.array([[[15.0, 25.0, 22.0], [15.0, 25.0, 22.0], [15.0, 25.0, 26.0]]])
    imp = cal.implausibility(samples, low, high)[0]
    assert imp[0] == 0.0  # inside
    assert imp[1] == math.inf  # outside with no spread at all
    # mean 23.33 -> 3.33 above; sd^2 = 5.33 for one realisation, plus the mean's error (1/3)
    assert imp[2] == pytest.approx(3.3333 / math.sqrt(5.3333 * (1 + 1 / 3)), rel=1e-3)
    # model discrepancy: 10 % of the bound exceeded
    imp = cal.implausibility(samples, low, high, discrepancy=0.1)[0]
    assert imp[1] == pytest.approx(5 / 2)


def test_results_do_not_depend_on_processes():
    p = params("end_date=2025-05-01", "arrivals.rate_per_day=15", "arrivals.surges=[]")
    targets = [cal.Target("a", "g", True, "2025-04-30", "pending", 0, 1e9),
               cal.Target("b", "h", True, "2025-04-30", "approved_cumulative:destination=US",
                          0, 1e9)]
    points = [dataclasses.replace(p, seed=cal.point_seed(1, 1, i)) for i in range(4)]
    one = cal.run_points(points, 2, targets, processes=1)
    two = cal.run_points(points, 2, targets, processes=2)
    np.testing.assert_array_equal(one, two)
    assert len({tuple(x) for x in one[:, 0, :]}) > 1  # points have their own seeds


def test_parameter_values_and_points_round_trip():
    base = params()
    pars = cal.load_ranges(CONFIG_DIR / "calibration" / "baseline_2025.yaml", base)
    values = [par.value(0.37) for par in pars]
    moved = cal.set_values(base, pars, values)
    assert sum(moved.classes.destination_shares.values()) == pytest.approx(1.0, abs=1e-9)
    point = cal.point_of(moved, pars)
    assert "arrivals.surges" in point and "classes.destination_shares" in point
    back = cal.apply_point(base, yaml.safe_load(yaml.safe_dump(point)))
    for par in pars:
        assert cal.get_path(back, par.key) == cal.get_path(moved, par.key), par.key
    for par in pars:  # the unit position is the inverse of the value
        assert par.unit(par.value(0.37)) == pytest.approx(0.37, abs=0.04), par.key


# -- the committed result --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def committed() -> dict:
    return yaml.safe_load(ENSEMBLE.read_text())


def test_baseline_uses_the_committed_best_point(committed):
    base = params()
    for key, value in committed["best"].items():
        assert cal.point_of(base, [cal.Parameter(key, 0, 1, "")])[key] == value, key


def test_committed_baseline_meets_the_targets_it_claims(committed):
    """Re-run the baseline as the calibration scored it (same seed and replications)."""
    prov = committed["provenance"]
    claimed = [tid for tid, c in committed["targets"].items() if c["chosen"] and c["met"]]
    assert claimed, "the committed calibration claims no target"
    base = params(f"end_date={prov['calibration_end_date']}")
    assert base.seed == prov["final_seed"]
    targets = {t.id: t for t in cal.load_targets(TARGETS, *HORIZON)}
    missing = [tid for tid in claimed if tid not in targets]
    assert not missing, f"targets changed since calibration ({missing}): recalibrate"
    chosen = [targets[tid] for tid in claimed]
    samples = cal.run_points([base], prov["final_replications"], chosen, processes=2)
    imp = cal.Scores.of(samples, chosen, prov["discrepancy"]).imp[0]
    bad = {t.id: round(float(i), 2) for t, i in zip(chosen, imp, strict=True)
           if not i <= prov["cutoff"]}
    assert not bad, f"claimed but not met (implausibility > {prov['cutoff']}): {bad}"


def test_targets_not_met_are_listed_in_the_docs(committed):
    text = (REPO / "README.md").read_text()  # its Calibration section
    unmet = [tid for tid, c in committed["targets"].items() if c["chosen"] and not c["met"]]
    for tid in unmet:
        assert tid in text, f"{tid} is not met and not listed in the README"


def test_ensemble_members_apply(committed):
    members = committed["members"]
    assert len(members) >= 1
    base = params()
    for member in members:
        assert set(member) == set(committed["best"])
        cal.apply_point(base, member)  # typed and validated, or raises


# -- recovery --------------------------------------------------------------------------------------
def test_recovery_of_known_parameters():
    """Targets made by the model at known inputs: the calibration keeps those inputs."""
    # Pinned so that the test does not move when the baseline is recalibrated.
    base = params("end_date=2025-05-25", "arrivals.surges=[]", "officials.schedule=[]",
                  "officials.count=5", "incomplete.probability=0", "consultation.share=0",
                  "intake.mean_working_days=2", "classes.military_share=0",
                  "decision.deny_probability=0")
    others = {"EU": 0.25, "JP": 0.15, "KR": 0.1, "IN": 0.1, "other": 0.25}
    pars = [cal.Parameter("arrivals.rate_per_day", 10, 60, "test", scale="log"),
            cal.Parameter("review.mean_hours", 3, 20, "test", scale="log"),
            cal.Parameter("classes.destination_shares.US", 0.03, 0.5, "test", scale="log",
                          rebalance=others)]
    truth = [30.0, 8.0, 0.15]
    true_p = dataclasses.replace(cal.set_values(base, pars, truth), seed=999)
    probes = [cal.Target(f"t{k}", f"g{k}", True, date, out, 0, 0) for k, (date, out) in
              enumerate([("2025-05-20", "pending"), ("2025-05-20", "approved_cumulative"),
                         ("2025-05-20", "pending:destination=US"),
                         ("2025-05-06", "approved_cumulative:destination=US")])]
    sims = cal.run_points([true_p], 8, probes, processes=2)[0]
    mean, sd = sims.mean(axis=0), sims.std(axis=0, ddof=1)
    # Intervals as words would give them: the truth +-15 % and +-2 sd.
    targets = [dataclasses.replace(t, low=float(0.85 * m - 2 * s),
                                   high=float(1.15 * m + 2 * s))
               for t, m, s in zip(probes, mean, sd, strict=True)]
    settings = cal.Settings(waves=[cal.Wave(64, 3), cal.Wave(48, 3)], min_members=3,
                            final_candidates=3, final_replications=4, processes=2, plots=False)
    result = cal.calibrate(settings, base=base, targets=targets, parameters=pars)
    assert not result.relaxed
    values = np.array(result.values)[result.members]
    for k, par in enumerate(pars):
        assert values[:, k].min() <= truth[k] <= values[:, k].max(), par.key
    # The targets constrain the rate and the US share well below the prior range.
    table = cal.parameter_table(result).set_index("parameter")
    assert table.loc["arrivals.rate_per_day", "share_of_prior_range"] < 0.6
    assert table.loc["classes.destination_shares.US", "share_of_prior_range"] < 0.6
    # The true point itself is not ruled out.
    check = cal.run_points([dataclasses.replace(true_p, seed=5)], 4, targets, processes=2)
    assert cal.Scores.of(check, targets, 0.0).imp.max() <= settings.cutoff


# -- the app ---------------------------------------------------------------------------------------
def test_smoke_calibration_writes_everything(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "sim.calibrate", "calibrate=smoke",
                           f"hydra.run.dir={run}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in ("report.md", "targets.png", "points.csv", "baseline_2025.yaml",
                 "ensemble_baseline_2025.yaml"):
        assert (run / name).stat().st_size > 0, name
    assert "wave 1" in proc.stderr and "wave 2" in proc.stderr  # progress
    doc = yaml.safe_load((run / "ensemble_baseline_2025.yaml").read_text())
    assert {"date", "targets_sha256", "command"} <= set(doc["provenance"])
    assert doc["provenance"]["targets_sha256"] == cal.file_sha256(TARGETS)
    assert doc["members"] and set(doc["members"][0]) == set(doc["best"])
    best = (run / "baseline_2025.yaml").read_text()
    assert best.startswith("# @package _global_")
    report = (run / "report.md").read_text()
    assert "| target |" in report and "## Readings" in report
