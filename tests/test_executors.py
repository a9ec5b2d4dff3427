"""Every study gives the same numbers on every executor: local processes, submitit's local jobs
(the cluster code path) and, by construction, a Slurm array (its parameters are checked here;
no cluster is reachable from the tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim.config import load_config, to_params
from sim.executor import parallel_map, submitit_executor
from sim.params import ExecutorConfig, ExecutorKind
from sim.runner import run_replications

REPO = Path(__file__).resolve().parent.parent


def test_parallel_map_keeps_task_order_on_submitit(tmp_path):
    ex = ExecutorConfig(kind=ExecutorKind.submitit_local, folder=str(tmp_path / "ex"))
    tasks = [-3, 1, -4, 1, -5, 9, -2]  # abs: a function the workers can import
    assert parallel_map(abs, tasks, jobs=3, executor=ex) == [abs(x) for x in tasks]
    assert list((tmp_path / "ex").iterdir()) == []  # a successful call leaves no job folder


def test_replications_identical_on_local_and_submitit(tmp_path):
    params = to_params(load_config(["scenario=mmc", "horizon_days=300", "warmup_days=0"]))
    local = run_replications(params, 3, jobs=2)
    ex = ExecutorConfig(kind=ExecutorKind.submitit_local, folder=str(tmp_path / "ex"))
    other = run_replications(params, 3, jobs=2, executor=ex)
    for a, b in zip(local, other, strict=True):
        pd.testing.assert_frame_equal(a.daily, b.daily)
        assert json.dumps(a.summary, sort_keys=True) == json.dumps(b.summary, sort_keys=True)


def test_slurm_executor_gets_the_site_settings(tmp_path, monkeypatch):
    import submitit

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # no srun
    ex = ExecutorConfig(kind=ExecutorKind.slurm, partition="cpu", account="proj42", qos="high",
                        timeout_min=90, cpus_per_task=1, mem_gb=2.5,
                        setup=["module load python/3.11"],
                        additional_parameters={"mail_type": "FAIL"})
    params = submitit_executor(ex, tmp_path, workers=16).parameters
    assert params["partition"] == "cpu" and params["account"] == "proj42"
    assert params["qos"] == "high" and params["time"] == 90 and params["mem"] == "2560MB"
    assert params["array_parallelism"] == 16
    assert params["setup"] == ["module load python/3.11"]
    assert params["additional_parameters"] == {"mail_type": "FAIL"}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "MPLBACKEND": "Agg"}, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _summary_without_executor(path: Path) -> dict:
    doc = json.loads(path.read_text())
    doc["config"].pop("executor")
    return doc


@pytest.mark.slow
def test_cli_replications_identical_on_submitit_local(tmp_path):
    common = ["sim", "replications=4", "jobs=2", "end_date=2025-08-31", "output.plots=false"]
    _run([*common, f"hydra.run.dir={tmp_path / 'local'}"], tmp_path)
    _run([*common, "executor=submitit_local", f"executor.folder={tmp_path / 'ex'}",
          f"hydra.run.dir={tmp_path / 'sub'}"], tmp_path)
    for name in ("daily.csv", "daily_by_class.csv", "daily_by_group.csv"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "sub" / name).read_bytes()
    assert (_summary_without_executor(tmp_path / "local" / "summary.json")
            == _summary_without_executor(tmp_path / "sub" / "summary.json"))


# Sensitivity on submitit's local jobs: tests/test_sweeps.py::test_sensitivity_smoke.


@pytest.mark.slow
def test_calibration_identical_on_submitit_local(tmp_path):
    common = ["sim.calibrate", "calibrate=smoke", "calibrate.match.waves=1",
              "calibrate.match.points=6", "calibrate.match.replications=1",
              "calibrate.check_replications=2"]
    _run([*common, f"hydra.run.dir={tmp_path / 'local'}"], tmp_path)
    _run([*common, "executor=submitit_local", f"executor.folder={tmp_path / 'ex'}",
          f"hydra.run.dir={tmp_path / 'sub'}"], tmp_path)
    assert ((tmp_path / "local" / "points.csv").read_bytes()
            == (tmp_path / "sub" / "points.csv").read_bytes())
    import yaml

    members = [yaml.safe_load((tmp_path / d / "ensemble_baseline_2025.yaml").read_text())
               ["members"] for d in ("local", "sub")]
    assert members[0] == members[1]
