"""What ran is what is recorded: every value the user gives runs (a scenario file's too, not
only the command line's), a run folder says per replication which ensemble member ran and with
which values, a replication reruns from its folder alone to the same numbers, and the progress
bar says which run it counts."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import sim
import sim.params
from sim import ensemble
from sim.results import flatten_figures
from sim.runner import simulate

SHORT = ("end_date=2025-05-31", "replications=3", "output.plots=false")
# A user's own scenario, in a folder of their own (--config-dir): the baseline with eight
# officials and no extra staff after the London talks, two settings every member sets.
USER_SCENARIO = """\
# @package _global_
defaults:
  - baseline_2025
  - _self_

name: eight_officials
officials:
  count: 8
  ramp:
    start_date: null
"""


def _sim(cwd: Path, run_dir: Path, *args: str) -> Path:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "sim", *args, f"hydra.run.dir={run_dir}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory) -> Path:
    """``python -m sim end_date=2025-05-31 replications=3``: the calibrated ensemble on."""
    tmp = tmp_path_factory.mktemp("baseline")
    return _sim(tmp, tmp / "run", *SHORT)


@pytest.fixture(scope="module")
def user_run(tmp_path_factory) -> Path:
    """The same run of the user's scenario file, from their --config-dir."""
    tmp = tmp_path_factory.mktemp("user")
    (tmp / "mine" / "scenario").mkdir(parents=True)
    (tmp / "mine" / "scenario" / "eight_officials.yaml").write_text(USER_SCENARIO)
    return _sim(tmp, tmp / "run", "--config-dir", str(tmp / "mine"),
                "scenario=eight_officials", *SHORT)


def _members(folder: Path) -> list[dict[str, str]]:
    with open(folder / "members.csv", newline="") as f:
        return list(csv.DictReader(f))


# -- 1. a user's scenario file wins over the members ------------------------------------------
@pytest.mark.slow
@pytest.mark.xdist_group("what_ran_runs")  # one worker builds the module fixture once
def test_a_user_scenario_files_values_run_in_every_replication(user_run, baseline_run):
    daily = pd.read_csv(user_run / "daily.csv")
    # the replications' mean is 8 on every day only if every replication had 8, every day
    assert (daily["officials"] == 8).all(), daily["officials"].describe()
    rows = _members(user_run)
    assert len(rows) == 3
    assert {r["officials.count"] for r in rows} == {"8"}
    assert {r["officials.ramp.start_date"] for r in rows} == {"null"}
    assert len({r["arrivals.rate_per_day"] for r in rows}) > 1  # the rest still drawn
    summary = json.loads((user_run / "summary.json").read_text())
    assert summary["ensemble_kept"] == ["officials.count", "officials.ramp.start_date"]
    # without the scenario file, the members' values run
    base = pd.read_csv(baseline_run / "daily.csv")
    assert base["officials"].iloc[0] != 8
    assert len({r["officials.count"] for r in _members(baseline_run)}) > 1


def test_a_value_given_in_python_wins_over_the_members():
    params = sim.to_params(sim.load_config([]))
    params.officials.count = 7  # set on the typed parameters, not named in calibration.keep
    members = ensemble.ensemble_members(params)
    ran = [ensemble.replication_params(params, r, members) for r in range(8)]
    assert {p.officials.count for p in ran} == {7}
    assert len({p.review.mean_hours for p in ran}) > 1


def test_a_scenario_restating_the_calibrated_value_leaves_it_to_the_members():
    # A project scenario restating a calibrated line unchanged (a list is restated whole)
    # leaves it to the members; a value named by the user wins even when equal to it.
    params = sim.to_params(sim.load_config(["scenario=more_officials"]))
    members = ensemble.ensemble_members(params)
    ran = [ensemble.replication_params(params, r, members) for r in range(8)]
    assert len({p.officials.count for p in ran}) > 1
    assert {p.officials.scale for p in ran} == {2.0}  # the scenario's own lever
    named = sim.to_params(sim.load_config(["scenario=more_officials", "officials.count=4"]))
    assert {ensemble.replication_params(named, r, members).officials.count
            for r in range(8)} == {4}


@pytest.mark.parametrize("scenario", sorted(
    p.stem for p in (Path(sim.params.CONFIG_DIR) / "scenario").glob("*.yaml")))
def test_the_projects_scenarios_leave_the_calibrated_settings_to_the_members(scenario):
    # A scenario restating a calibrated value (a list restated whole) must follow a new
    # calibration: a stale value would silently hold every replication at it.
    params = sim.to_params(sim.load_config([f"scenario={scenario}"]))
    if not params.calibration.ensemble:
        return
    held = {k for m in ensemble.ensemble_members(params)
            for k in ensemble.user_values(params, m)}
    assert held == set(), f"{scenario} holds {sorted(held)} at values of its own"


def test_solver_levers_and_sensitivity_factors_win():
    from sim.studies import sensitivity, solver

    params = sim.to_params(sim.load_config([]))
    members = ensemble.ensemble_members(params)
    lever = solver.with_lever(params, "officials.count", 6)
    assert {ensemble.replication_params(lever, r, members).officials.count
            for r in range(8)} == {6}
    factor = sensitivity.set_values(params, {"review.mean_hours": 4.0})
    assert {ensemble.replication_params(factor, r, members).review.mean_hours
            for r in range(8)} == {4.0}


@pytest.mark.slow
def test_a_sweeps_points_win(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "sim", "-m", "officials.count=6,7",
                           "end_date=2025-04-20", "replications=2", "output.plots=false",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}",
                           "hydra.callbacks.collect.plots=false"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for count in (6, 7):
        (job,) = (tmp_path / "sweep").glob(f"*officials.count={count},*")
        assert {r["officials.count"] for r in _members(job)} == {str(count)}


# -- 2. the folder records what ran, and a replication reruns from it alone -------------------
@pytest.mark.slow
@pytest.mark.xdist_group("what_ran_runs")  # one worker builds the module fixture once
def test_the_folder_records_each_replications_member_and_the_versions(baseline_run):
    summary = json.loads((baseline_run / "summary.json").read_text())
    assert set(summary["versions"]) >= {"python", "numpy", "scipy", "simpy", "pandas",
                                        "hydra-core"}
    used = summary["ensemble"]["used"]
    rows = _members(baseline_run)
    assert [int(r["replication"]) for r in rows] == list(range(len(used)))
    assert [int(r["member"]) for r in rows] == used
    members = ensemble.ensemble_members(sim.to_params(sim.load_config([])))
    for row, m in zip(rows, used, strict=True):
        values = summary["ensemble_values"][str(m)]
        assert {k: _value(v) for k, v in row.items() if k not in ("replication", "member")} \
            == values == members[m]  # nothing kept: every member's value ran
    # replication 0 ran its member, not the representative point the config shows
    ran = summary["ensemble_values"][str(used[0])]
    assert ran["review.mean_hours"] != summary["config"]["review"]["mean_hours"]


def _value(cell: str):
    """A members.csv cell: JSON (numbers, null, true/false), or text as it is (dates)."""
    try:
        return json.loads(cell)
    except ValueError:
        return cell


def _row_text(result, header: list[str], replication: int) -> str:
    """A replication's line of replications.csv, as the run writes it (every digit; undefined
    figures empty)."""
    figures = flatten_figures(result.summary, booleans=True)
    cells = [str(replication)]
    for column in header[1:]:
        v = figures.get(column)
        cells.append("" if v is None or (isinstance(v, float) and math.isnan(v))
                     else f"{float(v):.17g}")
    return ",".join(cells)


@pytest.mark.slow
@pytest.mark.xdist_group("what_ran_runs")  # one worker builds the module fixture once
@pytest.mark.parametrize("replication", [1])
def test_a_replication_reruns_from_its_folder_alone(baseline_run, tmp_path, monkeypatch,
                                                    replication):
    folder = tmp_path / "copied"  # the folder alone, elsewhere
    shutil.copytree(baseline_run, folder)

    def no_ensemble(*args):
        raise AssertionError("the rerun read the ensemble file")

    monkeypatch.setattr(ensemble, "ensemble_members", no_ensemble)
    monkeypatch.setattr(ensemble, "calibrated_point", no_ensemble, raising=False)
    summary = json.loads((folder / "summary.json").read_text())
    row = _members(folder)[replication]
    assert row["member"] == str(summary["ensemble"]["used"][replication])
    # by hand: the recorded config, the ensemble off, the member's values from members.csv
    config = json.loads(json.dumps(summary["config"]))
    config["calibration"]["ensemble"] = False
    from omegaconf import OmegaConf

    from sim import keys
    from sim.params import Config

    params = sim.to_params(OmegaConf.merge(OmegaConf.structured(Config), config))
    values = {k: _value(v) for k, v in row.items() if k not in ("replication", "member")}
    params = keys.apply_point(params, values)
    assert params.seed == summary["seed"]
    by_hand = simulate(params, replication=replication)
    by_hand.summary["ensemble_member"] = int(row["member"])
    from sim.what_ran import rerun

    by_function = rerun(folder, replication)

    lines = (folder / "replications.csv").read_text().splitlines()
    header = lines[0].split(",")
    pending = pd.read_csv(folder / "pending_by_replication.csv")[f"r{replication}"]
    for result in (by_hand, by_function):
        assert _row_text(result, header, replication) == lines[1 + replication]
        assert result.daily["pending"].tolist() == pending.tolist()


# -- 3. the progress bar says which run it counts ---------------------------------------------
def test_the_progress_bar_names_the_scenario_and_what_differs(capsys):
    from sim.runner import run_label

    tiny = ["scenario=mmc", "horizon_days=20", "warmup_days=0"]
    for extra in (["officials.count=7"], ["officials.count=3", "seed=5"]):
        sim.run([*tiny, *extra], replications=2, jobs=1, progress=True)
    err = capsys.readouterr().err
    assert "mmc (horizon_days=20, warmup_days=0, officials.count=7): replications" in err
    assert "mmc (horizon_days=20, warmup_days=0, officials.count=3, seed=5): " \
           "replications" in err
    plain = sim.to_params(sim.load_config(["jobs=2"]))  # no change to what runs
    assert run_label(plain) == "baseline_2025"
    long = sim.to_params(sim.load_config(["officials.ramp.start_date=null",
                                          "end_date=2025-10-31", "incomplete.probability=0.25",
                                          "consultation.share=0.2"]))
    label = run_label(long)
    assert label.startswith("baseline_2025 (officials.ramp.start_date=null, ")
    assert label.endswith("more)") and len(label) < 100
