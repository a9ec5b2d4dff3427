"""Workers and memory: a killed run leaves no worker behind, workers are capped at the CPUs
unless the user insists, and replications are aggregated as they arrive, to the same numbers
as aggregating them all at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import executor, results
from sim.executor import capped_workers, cpus, parallel_map
from sim.params import ExecutorConfig, ExecutorKind
from sim.recorder import CLASS_DIMS
from sim.results import GROUP_DIMS, Results, flatten_figures
from sim.runner import KEEP_RUNS, replicate, run_replications
from sim.stats import band, mean_ci, percentile_band, within_range

REPO = Path(__file__).resolve().parent.parent
TINY = ("scenario=mmc", "horizon_days=30", "warmup_days=0")
linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


# -- no orphans -------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc/<pid>/stat, field 4)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    return [d for c in _children(pid) for d in (c, *_descendants(c))]


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (ended, waiting for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _kill_and_check(proc: subprocess.Popen, workers: list[int], seconds: float = 5.0) -> None:
    """kill -9 the parent; every worker must have ended within ``seconds``."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + seconds
    while any(_running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if _running(w)]
    for w in left:  # leave the machine clean whatever the outcome
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers alive {seconds} s after kill -9 of their parent: {left}"


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "MPLBACKEND": "Agg"})


def _wait_for(what, seconds: float = 120.0):
    """Poll ``what()`` until it gives something true (returned) or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"nothing after {seconds} s")


@linux_only
def test_killed_run_leaves_no_worker(tmp_path):
    proc = _start(["sim", "replications=6", "jobs=2", f"hydra.run.dir={tmp_path / 'run'}"])
    try:
        workers = _wait_for(lambda: len(_children(proc.pid)) >= 2 and _children(proc.pid))
        time.sleep(0.5)  # the workers at work
        assert proc.poll() is None, "the run ended before it could be killed"
        _kill_and_check(proc, workers)
    finally:
        proc.kill()
        proc.wait()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far (0 once it ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@linux_only
@pytest.mark.slow
def test_killed_joblib_sweep_leaves_no_worker(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = _start(["sim", "-m", "officials.count=3,4", "hydra/launcher=joblib",
                   "hydra.launcher.n_jobs=2", "replications=4", "end_date=2026-06-30",
                   "output.plots=false", "hydra.callbacks.collect.enabled=false",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}"])

    def busy_workers() -> list[int]:
        """The loky workers, once both are well into their job (its imports and config take
        them about 2 s of CPU, then the replications start)."""
        workers = [p for p in _descendants(proc.pid) if "loky" in _cmdline(p)
                   and "resource_tracker" not in _cmdline(p)]
        return workers if len(workers) == 2 and all(
            _cpu_seconds(w) > 4 for w in workers) else []

    try:
        workers = _wait_for(busy_workers)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        _kill_and_check(proc, workers)
    finally:
        proc.kill()
        proc.wait()


@linux_only
@pytest.mark.slow
def test_sweep_killed_while_its_workers_start_leaves_no_worker(tmp_path):
    """kill -9 as soon as the loky workers exist, before any has its first job: a worker that
    had not started yet when its parent ended ends too (it used to idle on for minutes)."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = _start(["sim", "-m", "officials.count=3,4", "hydra/launcher=joblib",
                   "hydra.launcher.n_jobs=2", "replications=1", "end_date=2025-06-30",
                   "output.plots=false", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    try:
        workers = _wait_for(lambda: [p for p in _descendants(proc.pid) if "loky" in _cmdline(p)],
                            seconds=60)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        _kill_and_check(proc, workers + _descendants(proc.pid), seconds=10)
    finally:
        proc.kill()
        proc.wait()


@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["sim.calibrate", "calibrate=smoke"],
    ["sim.sensitivity", "sensitivity=smoke"],
    ["sim.hindcast", "hindcast=smoke"],
    ["sim.solve", "solve.lever=officials.count", "solve.target=mean_wait_days",
     "solve.at_most=5", "solve.low=2", "solve.high=10", "scenario=mmc", "horizon_days=3000",
     "warmup_days=60", "replications=4", "jobs=2"],
], ids=lambda a: a[0])
def test_killed_study_leaves_no_worker(args, tmp_path):
    """Every study's points run on the same pool as a run's replications: kill -9 of the study
    while its workers work leaves none behind."""
    proc = _start([*args, f"hydra.run.dir={tmp_path / 'study'}"])
    try:
        workers = _wait_for(lambda: len(_children(proc.pid)) >= 2 and _children(proc.pid))
        time.sleep(0.5)  # the workers at work
        assert proc.poll() is None, "the study ended before it could be killed"
        _kill_and_check(proc, workers + _descendants(proc.pid))
    finally:
        proc.kill()
        proc.wait()


# -- workers capped at the CPUs ---------------------------------------------------------------
def test_workers_capped_at_cpus_unless_oversubscribed(capsys, monkeypatch):
    monkeypatch.setattr(executor, "_capped_told", set())
    local = ExecutorConfig()
    n = cpus()
    assert capped_workers(1000, 5000, local) == n
    assert capped_workers(1000, 5000, local) == n
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"jobs=1000: {n} workers"), err
    assert "executor.oversubscribe=true" in err
    assert capped_workers(1000, 3, ExecutorConfig(oversubscribe=True)) == 3  # and the tasks
    assert capped_workers(1000, 5000, ExecutorConfig(kind=ExecutorKind.slurm)) == 1000
    assert capped_workers(1000, 1, local) == 1
    assert capped_workers(n, 5000, local) == n
    assert capsys.readouterr().err == ""  # no cap: nothing said


def test_capped_pool_gives_the_same_results(monkeypatch):
    monkeypatch.setattr(executor, "_capped_told", set())
    tasks = list(range(-40, 40))
    assert parallel_map(abs, tasks, jobs=1000) == [abs(t) for t in tasks]


# -- replications aggregated as they arrive ---------------------------------------------------
def _at_the_end(runs) -> dict[str, pd.DataFrame]:
    """The tables as aggregated from every replication at once (the formulas Results used
    before aggregating as replications arrive, bands cut to their figure's range as
    sim.stats.within_range cuts them): what streaming must give, to the bit."""
    n, keys = len(runs), ["date", *[d for d, _ in CLASS_DIMS]]
    first = runs[0].daily
    daily = first[["date", "day", "working_day"]].copy()
    for c in [c for c in first.columns if c not in ("date", "day", "working_day")]:
        stack = np.vstack([r.daily[c].to_numpy(dtype=float) for r in runs])
        daily[c] = band(stack)[0]
        if c == "pending":
            daily["pending_low"], daily["pending_high"] = (within_range(x, c)
                                                           for x in band(stack)[1:])
            daily["pending_pred_low"], daily["pending_pred_high"] = percentile_band(stack)
    by_class = (pd.concat([r.by_class for r in runs], ignore_index=True)
                .groupby(keys, sort=True).sum(numeric_only=True) / n).reset_index()
    flat = [flatten_figures(r.summary, booleans=True) for r in runs]
    columns = list(dict.fromkeys(k for f in flat for k in f))
    replications = pd.DataFrame([{k: np.nan if f.get(k) is None else f[k] for k in columns}
                                 for f in flat], columns=columns, dtype=float)
    pending = pd.DataFrame({f"r{i}": r.daily["pending"].to_numpy() for i, r in enumerate(runs)})
    groups = {}
    for dim in GROUP_DIMS:
        table = pd.concat([r.by_class.assign(k=i) for i, r in enumerate(runs)])
        for value in sorted({v for r in runs for v in r.by_class[dim].unique()}, key=str):
            sums = (table[table[dim] == value].groupby(["k", "date"])["pending"].sum()
                    .unstack(fill_value=0).reindex(index=range(n), columns=first["date"],
                                                   fill_value=0))
            mean, low, high = band(sums.to_numpy(dtype=float))
            groups[(dim, str(value))] = (mean, within_range(low, "pending"),
                                         within_range(high, "pending"),
                                         *percentile_band(sums.to_numpy(dtype=float)))
    return {"daily": daily, "by_class": by_class, "replications": replications,
            "pending": pending, "groups": groups}


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    TINY,
    ("end_date=2025-05-15", "calibration.ensemble=true"),  # classes, groups, an ensemble
])
def test_streamed_aggregate_equals_the_one_at_the_end(compose, overrides, monkeypatch):
    monkeypatch.setattr(results, "_CLASS_BATCH_ROWS", 500)  # per-class tables summed by batches
    params = compose(*overrides)
    n = 40 if overrides == TINY else 5
    runs = run_replications(params, n, jobs=1)
    res = Results(params, iter(runs), keep_runs=False)
    assert res.n == n and res.runs == []
    ref = _at_the_end(runs)
    daily = res.daily
    pd.testing.assert_frame_equal(daily[ref["daily"].columns], ref["daily"], check_exact=True)
    pd.testing.assert_frame_equal(res.by_class, ref["by_class"], check_exact=True)
    pd.testing.assert_frame_equal(res.replications.drop(columns="replication"),
                                  ref["replications"], check_exact=True)
    pd.testing.assert_frame_equal(res.pending_by_replication.drop(columns="date"),
                                  ref["pending"], check_exact=True)
    g = res.group_bands
    for (dim, value), expected in ref["groups"].items():
        got = g[(g["dimension"] == dim) & (g["value"] == value) & (g["figure"] == "pending")]
        for column, numbers in zip(("mean", "low", "high", "pred_low", "pred_high"), expected,
                                   strict=True):
            np.testing.assert_array_equal(got[column].to_numpy(), numbers)
    assert set(g["value"][g["dimension"] == "destination"]) == {
        v for dim, v in ref["groups"] if dim == "destination"}
    values = [r.summary["mean_wait_days"] for r in runs]
    assert res.summary["mean_wait_days"] == mean_ci(values)[0]
    np.testing.assert_array_equal(res.per_run("mean_wait_days"), values)
    np.testing.assert_array_equal(res.per_run("no.such.figure"), np.full(n, np.nan))


def test_a_replication_without_applications(compose):
    # Its per-class table is empty: the aggregate is typed as one concat of them all types it.
    params = compose(*TINY, "horizon_days=10", "arrivals.rate_per_day=0.05")
    runs = run_replications(params, 6, jobs=1)
    assert any(r.by_class.empty for r in runs) and not all(r.by_class.empty for r in runs)
    res = Results(params, runs, keep_runs=False)
    pd.testing.assert_frame_equal(res.by_class, _at_the_end(runs)["by_class"], check_exact=True)


def test_replicate_keeps_whole_runs_only_when_few(compose):
    params = compose(*TINY, "horizon_days=5")
    assert len(replicate(params, n=3, jobs=1).runs) == 3
    assert replicate(params, n=3, jobs=1, keep_runs=False).runs == []
    assert KEEP_RUNS >= 20  # the notebooks look at their replications one by one


@pytest.mark.slow
def test_memory_per_replication_is_small(compose):
    # A RunResult of this run takes about 100 kB (tracemalloc); what Results keeps of it, a few.
    params = compose(*TINY)
    runs = run_replications(params, 2, jobs=1)

    def kept(n: int) -> int:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        res = Results(params, (runs[r % 2] for r in range(n)), keep_runs=False)
        assert res.summary["replications"] == n  # its figures gathered in one block
        size = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return size

    per_replication = (kept(600) - kept(200)) / 400
    assert per_replication < 25_000, per_replication
