"""Sweeps, run as a user would: ``python -m sim -m ...`` in subprocesses into temporary folders.

Every sweep is tiny (the M/M/c check scenario over 100 days, 2 replications, no per-run plots,
2-4 points) and writes under pytest's ``tmp_path`` (``hydra.sweep.dir``). The same four points
run under the basic launcher, joblib with 2 jobs, submitit (local) and in reversed order must
give identical numbers per point; failed and missing jobs must be listed, never dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim import collect as collect_cli
from sim.studies import sweeps

BASE = ("scenario=mmc", "horizon_days=100", "warmup_days=0", "output.plots=false",
        "replications=2")
POINTS = ("officials.count=5,6", "review.mean_days=0.9,1.1")
REVERSED = ("review.mean_days=1.1,0.9", "officials.count=6,5")
KEYS = ["officials.count", "review.mean_days"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_sweep(folder: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return sweeps.run_sweep(list(overrides), folder, cwd=folder.parent, timeout=300,
                            env=_env())


def run_collect(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sim.collect", str(folder), *args],
                          cwd=folder.parent, env=_env(), capture_output=True, text=True,
                          timeout=120, check=False)


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / sweeps.SUMMARY_FILE)


def same_per_point(folder: Path, reference: Path) -> None:
    """Every figure and folder of every point equal, job numbers and row order aside."""
    a, b = (table(f).drop(columns=["job"]).sort_values(KEYS, ignore_index=True)
            for f in (folder, reference))
    pd.testing.assert_frame_equal(a[b.columns], b, check_exact=True)


def daily_files(folder: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in folder.glob("*/daily.csv")}


@pytest.fixture(scope="module")
def basic(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder = tmp_path_factory.mktemp("sweep_basic") / "sweep"
    proc = run_sweep(folder, *BASE, *POINTS)
    _ok(proc)
    return proc, folder


# -- the summary table and plots ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.xdist_group("sweeps_basic")  # one worker builds the module fixture once
def test_summary_one_row_per_job(basic):
    _, folder = basic
    t = table(folder)
    assert len(t) == 4
    assert sorted(zip(t["officials.count"], t["review.mean_days"], strict=True)) == [
        (5, 0.9), (5, 1.1), (6, 0.9), (6, 1.1)]
    assert list(t["job"]) == [0, 1, 2, 3]
    assert (t["status"] == "ok").all()
    assert (t["replications"] == 2).all()
    assert t["folder"].is_unique
    for name in t["folder"]:
        assert (folder / name / "summary.json").is_file()


@pytest.mark.slow
@pytest.mark.xdist_group("sweeps_basic")  # one worker builds the module fixture once
def test_summary_columns(basic):
    _, folder = basic
    t = table(folder)
    assert list(t.columns[:4]) == ["job", *KEYS, "status"]
    assert t.columns[-2:].tolist() == ["message", "folder"]
    for figure in ("peak_pending", "pending_end", "mean_wait_days", "utilisation",
                   "mean_time_to_decision_days"):
        assert {figure, f"{figure}_low", f"{figure}_high"} <= set(t.columns)
        assert (t[f"{figure}_low"] <= t[figure] + 1e-9).all()
        assert (t[figure] <= t[f"{figure}_high"] + 1e-9).all()
        assert (t[f"{figure}_low"] >= 0).all()  # cut to the figure's range (sim.stats)
    assert (t["utilisation_high"] <= 1).all()


@pytest.mark.slow
@pytest.mark.xdist_group("sweeps_basic")  # one worker builds the module fixture once
def test_summary_matches_run_folders(basic):
    _, folder = basic
    for _, row in table(folder).iterrows():
        s = json.loads((folder / row["folder"] / "summary.json").read_text())
        assert s["config"]["officials"]["count"] == row["officials.count"]
        assert s["config"]["review"]["mean_days"] == pytest.approx(row["review.mean_days"])
        assert row["peak_pending"] == pytest.approx(s["peak_pending"], rel=1e-5)
        low, high, _ = s["ci95"]["mean_wait_days"]
        assert row["mean_wait_days_low"] == pytest.approx(low, rel=1e-5)
        assert row["mean_wait_days_high"] == pytest.approx(high, rel=1e-5)


@pytest.mark.slow
@pytest.mark.xdist_group("sweeps_basic")  # one worker builds the module fixture once
def test_callback_writes_comparison_plots(basic):
    proc, folder = basic
    assert "4 jobs (4 ok, 0 failed, 0 missing)" in proc.stdout
    for name in (f"{sweeps.BACKLOG_STEM}.png", "sweep_heatmap_peak_pending.png"):
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC, name
    assert not list(folder.rglob("*tmp"))


@pytest.mark.slow
@pytest.mark.xdist_group("sweeps_basic")  # one worker builds the module fixture once
def test_folders_named_by_point_not_job_number(basic):
    _, folder = basic
    for name in table(folder)["folder"]:
        assert name.startswith("horizon_days=100,officials.count="), name
        assert "resume" not in name and "jobs" not in name


# -- launchers and order give the same numbers ----------------------------------------------------
@pytest.mark.xdist_group("sweeps_basic")  # one worker builds the module fixture once
@pytest.mark.slow
def test_joblib_two_jobs_same_numbers(basic, tmp_path):
    _, reference = basic
    folder = tmp_path / "sweep"
    proc = run_sweep(folder, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *BASE, *POINTS)
    _ok(proc)
    same_per_point(folder, reference)
    assert daily_files(folder) == daily_files(reference)


@pytest.mark.xdist_group("sweeps_basic")  # one worker builds the module fixture once
@pytest.mark.slow
def test_submitit_local_same_numbers(basic, tmp_path):
    _, reference = basic
    folder = tmp_path / "sweep"
    proc = run_sweep(folder, "hydra/launcher=submitit_cores", *BASE, *POINTS)
    _ok(proc)
    assert (folder / ".submitit").is_dir()
    assert len(table(folder)) == 4  # submitit's log folders are not jobs
    same_per_point(folder, reference)
    assert daily_files(folder) == daily_files(reference)


@pytest.mark.xdist_group("sweeps_basic")  # one worker builds the module fixture once
@pytest.mark.slow
def test_point_order_does_not_change_results(basic, tmp_path):
    _, reference = basic
    folder = tmp_path / "sweep"
    proc = run_sweep(folder, *BASE, *REVERSED)
    _ok(proc)
    t = table(folder)
    assert list(t.columns[1:3]) == KEYS[::-1]  # swept keys in the order given
    assert (t["officials.count"].iloc[0], t["review.mean_days"].iloc[0]) == (6, 1.1)
    same_per_point(folder, reference)  # same folders and numbers per point
    assert daily_files(folder) == daily_files(reference)


# -- failed, missing and resumed jobs -------------------------------------------------------------
# Every point is valid (the command line refuses a sweep with an invalid point before any job
# starts, sim.sweep_check); a job fails at run time here because another process is writing its
# folder (it holds the folder's lock) when the sweep is run again into the same folder.
FAIL = ("scenario=mmc", "output.plots=false", "horizon_days=300,100", "warmup_days=0,50")
BUSY = (100, 50)  # the point whose folder another process holds


def _busy_folder(folder: Path) -> Path:
    t = table(folder).set_index(["horizon_days", "warmup_days"])
    return folder / t.loc[BUSY, "folder"]


def _hold(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from sim import "
                               "run_folder; run_folder.claim(sys.argv[1], 'run', 'x'); "
                               "print('held', flush=True); time.sleep(120)", str(folder)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _rerun_with_a_busy_job(folder: Path, *launcher: str) -> subprocess.CompletedProcess[str]:
    _ok(run_sweep(folder, *launcher, *FAIL))
    busy = _busy_folder(folder)
    before = {p: p.read_bytes() for p in busy.rglob("*") if p.is_file()}
    holder = _hold(busy)
    started = time.time()
    try:
        proc = run_sweep(folder, *launcher, *FAIL)
        # the busy job's folder was not touched: its earlier result stays, no error.txt in it
        assert {p: p.read_bytes() for p in busy.rglob("*") if p.is_file()
                if p.name != ".sim-folder.lock" and ".staging" not in p.parts} == {
            p: b for p, b in before.items() if p.name != ".sim-folder.lock"}
        proc.started = started
        return proc
    finally:
        holder.kill()
        holder.wait()


def _check_failed_sweep(folder: Path, proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert [line for line in lines
            if line.startswith("error: the sweep finished with a failed job")], proc.stderr
    assert "Traceback" not in proc.stderr
    assert "another process" in proc.stderr
    t = table(folder).set_index(["horizon_days", "warmup_days"])
    assert len(t) == 4
    for point in [(300, 0), (300, 50), (100, 0)]:
        assert t.loc[point, "status"] == "ok"
        assert t.loc[point, "peak_pending"] > 0
        summary = folder / t.loc[point, "folder"] / "summary.json"
        assert summary.stat().st_mtime >= proc.started  # rerun
    assert not (_busy_folder(folder) / "error.txt").exists()


@pytest.mark.slow
def test_failed_job_reported_others_kept(tmp_path):
    folder = tmp_path / "sweep"
    proc = _rerun_with_a_busy_job(folder)
    _check_failed_sweep(folder, proc)
    assert "sweep: 4 of 4 jobs done" in proc.stderr


@pytest.mark.slow
def test_failed_job_under_joblib_keeps_the_others(tmp_path):
    folder = tmp_path / "sweep"
    proc = _rerun_with_a_busy_job(folder, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert "BrokenProcessPool" not in proc.stderr
    _check_failed_sweep(folder, proc)


def test_sweep_with_a_bad_value_starts_no_job(tmp_path):
    folder = tmp_path / "sweep"
    proc = run_sweep(folder, "scenario=mmc", "horizon_days=100", "warmup_days=0",
                     "officials.count=3,0")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: officials.count=0: must be a finite number >= 1"]
    assert not folder.exists()


@pytest.mark.slow
@pytest.mark.xdist_group("sweeps_basic")  # one worker builds the module fixture once
def test_collect_lists_missing_jobs(basic, tmp_path, capsys):
    _, reference = basic
    folder = tmp_path / "sweep"
    shutil.copytree(reference, folder)
    assert collect_cli.main([str(folder), "--no-plots"]) == 0
    names = table(folder).set_index("job")["folder"]
    shutil.rmtree(folder / names[1])  # never started
    (folder / names[2] / "summary.json").unlink()  # interrupted
    (folder / f"{sweeps.BACKLOG_STEM}.png").unlink()
    capsys.readouterr()
    assert collect_cli.main([str(folder)]) == 1
    out = capsys.readouterr().out
    t = table(folder).set_index("job")
    assert len(t) == 4
    assert list(t["status"]) == ["ok", "missing", "missing", "ok"]
    assert t.loc[1, "message"] == "not started"
    assert "started" in t.loc[2, "message"]
    assert "2 ok, 0 failed, 2 missing" in out
    assert "officials.count=5, review.mean_days=1.1: not started" in out
    assert (folder / f"{sweeps.BACKLOG_STEM}.png").is_file()


def test_collect_refuses_a_folder_that_is_not_a_sweep(tmp_path, capsys):
    assert collect_cli.main([str(tmp_path)]) == 2
    assert "not a sweep folder" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_skips_finished_jobs(tmp_path):
    folder = tmp_path / "sweep"
    first = ("scenario=mmc", "horizon_days=100", "warmup_days=0", "output.plots=false")
    _ok(run_sweep(folder, *first, "officials.count=5,6"))
    before = {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("*/summary.json")}
    assert len(before) == 2
    proc = run_sweep(folder, *first, "officials.count=5,6,8", "resume=true")
    _ok(proc)
    assert proc.stdout.count("is complete, skipped") == 2
    after = {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("*/summary.json")}
    assert len(after) == 3
    assert {k: after[k] for k in before} == before  # finished jobs untouched
    t = table(folder)
    assert sorted(t["officials.count"]) == [5, 6, 8]
    assert (t["status"] == "ok").all()


# -- launcher configs -----------------------------------------------------------------------------
def _launcher(*overrides: str, config_dir: Path | None = None) -> str:
    cmd = [sys.executable, "-m", "sim"]
    if config_dir is not None:
        cmd += ["--config-dir", str(config_dir)]
    proc = subprocess.run([*cmd, *overrides, "--cfg", "hydra", "-p", "hydra.launcher"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    _ok(proc)
    assert "deprecated" not in proc.stderr
    return proc.stdout


def test_slurm_launcher_reads_site_settings(tmp_path):
    site = tmp_path / "site" / "local" / "launcher"
    site.mkdir(parents=True)
    (site / "slurm.yaml").write_text("partition: long\naccount: proj42\n")
    text = _launcher("hydra/launcher=slurm", "hydra.launcher.qos=high",
                     config_dir=tmp_path / "site")
    assert "SlurmLauncher" in text
    for line in ("partition: long", "account: proj42", "qos: high", "cpus_per_task: 1"):
        assert line in text, line
    assert "JoblibLauncher" in _launcher("hydra/launcher=cores")


# -- sensitivity analysis ------------------------------------------------------------------------
@pytest.mark.slow
def test_sensitivity_smoke(tmp_path):
    out = {}
    # The second run: one worker, as a submitit job (the cluster code path).
    for processes, methods, executor in ((2, "[morris,sobol]", []),
                                         (1, "[morris]", ["executor=submitit_local",
                                                          f"executor.folder={tmp_path}/ex"])):
        run_dir = tmp_path / f"p{processes}"
        proc = subprocess.run(
            [sys.executable, "-m", "sim.sensitivity", "sensitivity=smoke",
             f"sensitivity.processes={processes}", f"sensitivity.methods={methods}",
             f"hydra.run.dir={run_dir}", *executor],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300, check=False)
        _ok(proc)
        assert f"wrote {run_dir}" in proc.stdout
        out[processes] = run_dir
    run_dir = out[2]
    for name in ("points.csv", "morris.csv", "sobol.csv", "sensitivity.png", "report.md"):
        assert (run_dir / name).is_file(), name
    morris = pd.read_csv(run_dir / "morris.csv")
    assert set(morris["factor"]) == {"officials.count", "review.mean_hours",
                                     "incomplete.probability"}
    assert {"output", "mu_star", "mu_star_conf", "sigma", "rank"} <= set(morris.columns)
    assert set(pd.read_csv(run_dir / "sobol.csv").columns) >= {"S1", "ST", "ST_conf"}
    report = (run_dir / "report.md").read_text()
    assert report.count("Morris screening (mu*") == report.count("Sobol indices (ST") > 0
    assert "| officials.count |" in report  # the tables are filled
    # Results depend on neither the number of workers nor the executor.
    assert (out[1] / "morris.csv").read_bytes() == (run_dir / "morris.csv").read_bytes()
    points = pd.read_csv(run_dir / "points.csv")
    pd.testing.assert_frame_equal(pd.read_csv(out[1] / "points.csv"),
                                  points[points["method"] == "morris"].reset_index(drop=True),
                                  check_dtype=False)


@pytest.mark.parametrize("arguments", [
    ["officials.count=3,5,8", "green_channel.mode=off,priority"],
    ["a=1,2", "b=x", "c=range(0,3)", "a=7,8"],
    ["scenario=mmc,baseline_2025", "+x=[1,2]", "y=choice(1,2)"],
])
def test_sweep_points_are_hydras_own_expansion(arguments):
    # Hydra's basic sweeper is the oracle (a private class: imported here only, never by sim).
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from sim.command_line import expand_sweep

    parsed = OverridesParser.create().parse_overrides(arguments)
    expected = [list(p) for batch in BasicSweeper.split_arguments(parsed, None) for p in batch]
    points, keys = expand_sweep(arguments)
    assert points == expected
    assert keys == list(dict.fromkeys(o.key_or_group for o in parsed if o.is_sweep_override()))
