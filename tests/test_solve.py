"""The what-it-takes solver (python -m sim.solve), the sweeper objective and sim.compare.

The solver's promise is checked the way a reader would: rerun ``python -m sim`` with
solve.json's overrides and the lever at its answer, and count the rows of replications.csv
that meet the target; at one step below, fewer than the stated share must.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.config import load_config, to_params
from sim.objective import value as objective_value
from sim.studies import solver

ROOT = Path(__file__).resolve().parent.parent
MMC = ["scenario=mmc", "horizon_days=600", "warmup_days=60", "replications=4",
       "output.plots=false"]
SOLVE = ["solve.lever=officials.count", "solve.target=mean_wait_days", "solve.at_most=0.5",
         "solve.probability=0.75", "solve.low=4", "solve.high=9"]


def run(module: str, args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def share_met(folder: Path, target: str, at_most: float) -> float:
    rows = pd.read_csv(folder / "replications.csv")
    return float((rows[target] <= at_most).mean())


@pytest.mark.slow
def test_solver_answer_holds_when_rerun(tmp_path):
    out = tmp_path / "solve"
    done = run("sim.solve", [*SOLVE, *MMC, f"hydra.run.dir={out}"])
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "solve.json").read_text())
    for key in ("lever", "answer", "target", "at_most", "probability", "achieved_at_answer",
                "achieved_one_step_below", "step", "overrides", "replications"):
        assert key in doc
    assert doc["status"] == "solved" and doc["monotone"]["monotone"]
    answer, step = doc["answer"], doc["step"]
    assert isinstance(answer, int) and 4 < answer <= 9
    # M/M/c with load 4.5: below 5 servers the queue is unstable, so the answer is above 5
    assert answer >= 6
    # the rerun a reader would do: the stated share of replications.csv rows meets the target
    for value, meets in ((answer, True), (answer - step, False)):
        rerun = tmp_path / f"rerun_{value}"
        done = run("sim", [*doc["overrides"], f"officials.count={value}",
                           f"hydra.run.dir={rerun}"])
        assert done.returncode == 0, done.stderr
        share = share_met(rerun, doc["target"], doc["at_most"])
        assert (share >= doc["probability"]) is meets, (value, share)
    assert math.isclose(share_met(tmp_path / f"rerun_{answer}", doc["target"], doc["at_most"]),
                        doc["achieved_at_answer"])
    # the solver's own table at the answer is the rerun's, digit for digit
    mine = pd.read_csv(out / "replications_at_answer.csv")
    theirs = pd.read_csv(tmp_path / f"rerun_{answer}" / "replications.csv")
    assert np.array_equal(mine[doc["target"]].to_numpy(), theirs[doc["target"]].to_numpy())
    assert (out / "report.html").is_file() and (out / "evaluations.csv").is_file()
    assert shlex.split(doc["rerun"])[:3] == ["python", "-m", "sim"]


def _params(extra=()):
    return to_params(load_config([*MMC, *extra]))


def test_not_met_in_bracket_and_met_at_low_end():
    p = _params()
    s = solver.Settings(lever="officials.count", target="mean_wait_days", at_most=0.5,
                        probability=0.75, low=2, high=4, check_points=0)
    sol = solver.solve(p, s, replications=2, jobs=1, log=lambda m: None, progress=False)
    assert sol.status == "not_met" and sol.answer is None
    s = solver.Settings(lever="officials.count", target="mean_wait_days", at_most=0.5,
                        probability=0.75, low=8, high=10, check_points=0)
    sol = solver.solve(p, s, replications=2, jobs=1, log=lambda m: None, progress=False)
    assert sol.status == "met_at_bracket_end" and sol.answer == 8


def test_monotone_check_flags_a_figure_that_turns():
    rising = {v: solver.Evaluation(v, np.array([v, v + 0.1, v - 0.1]), np.ones(3, bool))
              for v in (1.0, 2.0, 3.0)}
    assert solver.monotone_check(rising)["monotone"]
    turned = dict(rising)
    turned[2.0] = solver.Evaluation(2.0, np.array([5.0, 5.1, 4.9]), np.ones(3, bool))
    check = solver.monotone_check(turned)
    assert not check["monotone"] and check["breaks"][0]["from"] == 2.0


def test_timeline_lever_and_its_override():
    p = to_params(load_config(["end_date=2025-07-31"]))
    lever = "timeline.london.changes.officials.count"
    q = solver.with_lever(p, lever, 9)
    assert q.timeline["london"].changes == {"officials.count": 9}
    assert "officials.count" in q.calibration.keep  # no ensemble member undoes it
    assert solver.lever_override(p, lever, 9) == "timeline.london.changes={officials.count: 9}"
    assert p.timeline["london"].changes == {}  # the original is untouched


@pytest.mark.parametrize("args, setting", [
    (["solve.lever=nope.count"], "solve.lever"),
    (["solve.lever=green_channel.mode"], "solve.lever"),
    (["solve.at_most=1.5", "solve.target=share_decided_within_limit"], "solve.at_most"),
    (["solve.low=9", "solve.high=4"], "solve.high"),
    (["solve.target=no_such_figure"], "solve.target"),
    (["solve.probability=0"], "solve.probability"),
    (["solve.step=0.5"], "solve.step"),
    (["solve.colour=red"], "solve.colour"),
    (["solve.low=abc"], "solve.low"),
    (["officials.count=nine"], "officials.count"),
])
def test_bad_solver_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, setting):
    """In process (python -m sim.solve runs the same main)."""
    from sim.solve import main

    base = dict(a.split("=", 1) for a in SOLVE)
    for a in args:
        key, value = a.split("=", 1)
        base[key] = value
    out = tmp_path / "solve"
    argv = [f"{k}={v}" for k, v in base.items()]
    assert main([*argv, *MMC, f"hydra.run.dir={out}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {setting}="), lines
    assert not out.exists()


def test_objective_with_penalty():
    p = _params(["objective=config.officials.count", "objective_constraint=mean_wait_days",
                 "objective_at_most=0.5", "objective_penalty=100"])
    doc = {"config": {"officials": {"count": 6}}, "mean_wait_days": 0.3}
    assert objective_value(p, doc) == 6
    doc["mean_wait_days"] = 0.8
    assert math.isclose(objective_value(p, doc), 6 + 100 * 0.3)
    doc["mean_wait_days"] = None
    assert objective_value(p, doc) == math.inf


@pytest.mark.parametrize("args, setting", [
    (["objective=nope"], "objective"),
    (["objective=mean_wait_days", "objective_constraint=mean_wait_days"],
     "objective_constraint"),
    (["objective_at_least=3"], "objective_at_least"),
])
def test_bad_objective_refused(tmp_path, capsys, args, setting):
    """The check python -m sim runs before Hydra (sim.__main__), in process."""
    from sim import objective
    from sim.command_line import guard

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        guard([*MMC, *args, f"hydra.run.dir={out}"],
              then=lambda cfg: objective.check(to_params(cfg)))
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {setting}="), lines
    assert not out.exists()


@pytest.mark.slow
def test_optuna_sweeper_returns_the_objective(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    out = tmp_path / "sweep"
    done = run("sim", ["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3",
                       "hydra.sweeper.direction=minimize", "hydra.sweeper.sampler.seed=1",
                       "objective=config.officials.count", "objective_constraint=mean_wait_days",
                       "objective_at_most=0.5", "officials.count=range(4,10)", *MMC,
                       f"hydra.sweep.dir={out}"])
    assert done.returncode == 0, done.stderr[-2000:]
    result = (out / "optimization_results.yaml").read_text()
    assert "best_params" in result and "officials.count" in result
    import yaml

    best = yaml.safe_load(result)
    # the best of the trials run: its objective is its count plus any penalty, recomputed
    # here from the trial folders' summary.json
    trials = []
    for folder in out.iterdir():
        if (folder / "summary.json").is_file():
            s = json.loads((folder / "summary.json").read_text())
            broken = max(0.0, s["mean_wait_days"] - 0.5)
            trials.append(s["config"]["officials"]["count"] + 1000 * broken)
    assert len(trials) >= 2 and math.isclose(best["best_value"], min(trials))


@pytest.mark.slow
def test_compare_paired_differences(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, extra in ((a, []), (b, ["officials.count=6"])):
        done = run("sim", [*MMC, *extra, f"hydra.run.dir={folder}"])
        assert done.returncode == 0, done.stderr
    out = tmp_path / "cmp"
    done = run("sim.compare", [str(a), str(b), "--labels", "five", "six", "--out", str(out)])
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out / "compare.csv")
    row = table[table["key"] == "mean_wait_days"].iloc[0]
    ra, rb = (pd.read_csv(f / "replications.csv")["mean_wait_days"] for f in (a, b))
    assert math.isclose(row["difference"], float((rb - ra).mean()), rel_tol=1e-5)
    assert row["difference"] < 0 and row["ci95_high"] < 0  # a sixth official cuts waits
    page = (out / "report.html").read_text()
    assert page.count('<img alt="figure" src="data:image/png;base64,') == 1  # the backlog band
    assert "Paired differences" in page and page.count("<table>") >= 2
    # different seeds cannot be paired: one line, exit 2, nothing written
    c = tmp_path / "c"
    assert run("sim", [*MMC, "seed=7", f"hydra.run.dir={c}"]).returncode == 0
    bad = run("sim.compare", [str(a), str(c), "--out", str(tmp_path / "cmp2")])
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "seed" in bad.stderr and not (tmp_path / "cmp2").exists()


@pytest.mark.slow
def test_solver_on_the_calibrated_baseline(tmp_path):
    """One real question on the calibrated baseline (ensemble on, so each replication draws
    its member): the fewest officials from the start so that at least 90 % of the civilian
    decisions taken by 2025-06-30 come within the 45-working-day limit, in at least 75 % of
    the replications. Checked by rerunning python -m sim at the answer and one step below."""
    out = tmp_path / "solve"
    target = "by_group.military.False.share_decided_within_limit"
    done = run("sim.solve", ["solve.lever=officials.count", f"solve.target={target}",
                             "solve.at_least=0.9", "solve.probability=0.75", "solve.low=4",
                             "solve.high=64", "solve.step=4", "solve.check_points=0",
                             "end_date=2025-06-30", "replications=4", "jobs=2",
                             f"hydra.run.dir={out}"])
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "solve.json").read_text())
    assert doc["status"] == "solved" and 4 < doc["answer"] <= 64
    for value, meets in ((doc["answer"], True), (doc["answer"] - doc["step"], False)):
        rerun = tmp_path / f"rerun_{value}"
        done = run("sim", [*doc["overrides"], f"officials.count={value}", "output.plots=false",
                           f"hydra.run.dir={rerun}"])
        assert done.returncode == 0, done.stderr
        rows = pd.read_csv(rerun / "replications.csv")
        assert bool((rows[target] >= 0.9).mean() >= 0.75) == meets, (value, rows[target].tolist())
        summary = json.loads((rerun / "summary.json").read_text())
        assert summary["config"]["calibration"]["ensemble"]  # the calibrated baseline
