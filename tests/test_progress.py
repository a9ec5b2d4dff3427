"""Progress of long work: the bar of :func:`sim.executor.parallel_map` (stderr, never when
asked not to or when stderr is not a terminal) and the sweep's line per finished job
(:class:`sim.command_line.ProgressCallback`), in-process and in real sweeps.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from sim import executor
from sim.command_line import ProgressCallback
from sim.executor import parallel_map
from sim.studies import sweeps

TASKS = [-3, -1, -4, -1, -5]
EXPECTED = [3, 1, 4, 1, 5]  # abs: a module-level function that pickles
TINY = ("scenario=mmc", "horizon_days=30", "warmup_days=0", "output.plots=false",
        "hydra.callbacks.collect.plots=false")
REPO = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^sweep: (\d+) of (\d+) jobs done \((.*)\): (.*)$", re.M)


# -- parallel_map's bar -----------------------------------------------------------------------
@pytest.mark.parametrize("jobs", [1, 2])
def test_bar_on_stderr_when_asked(capsys, jobs):
    assert parallel_map(abs, TASKS, jobs, desc="tiny study", progress=True) == EXPECTED
    out, err = capsys.readouterr()
    assert out == ""
    assert "tiny study" in err and "5/5" in err and "100%" in err


@pytest.mark.parametrize("progress", [False, None])  # None: stderr is not a terminal here
def test_no_bar_when_off_or_not_a_terminal(capfd, progress):
    assert parallel_map(abs, TASKS, 2, desc="tiny study", progress=progress) == EXPECTED
    assert capfd.readouterr() == ("", "")


def test_text_bar_in_a_notebook_kernel_without_warning(capsys, monkeypatch):
    # In a Jupyter kernel (stderr is the cell's output) the text bar, without tqdm.auto's
    # "IProgress not found" warning where ipywidgets is missing.
    monkeypatch.setattr(executor, "_in_notebook", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parallel_map(abs, TASKS, 1, desc="in a notebook") == EXPECTED
    err = capsys.readouterr().err
    assert "in a notebook" in err and "5/5" in err and "IProgress" not in err


# -- the sweep's line per job, in-process -----------------------------------------------------
def _multirun(task: list[str]):
    return OmegaConf.create({"hydra": {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                    "params": None},
        "overrides": {"task": task}}})


def _job(overrides: list[str], folder: Path, resume: bool = False):
    return OmegaConf.create({"resume": resume, "hydra": {
        "runtime": {"output_dir": str(folder)}, "overrides": {"task": overrides}}})


def _end(callback: ProgressCallback, overrides: list[str], folder: Path,
         error: Exception | None = None, resume: bool = False) -> None:
    config = _job(overrides, folder, resume)
    callback.on_job_start(config=config, task_function=None)
    ret = JobReturn(overrides=overrides, status=JobStatus.FAILED if error else
                    JobStatus.COMPLETED, _return_value=error)
    callback.on_job_end(config=config, job_return=ret)


def test_callback_counts_jobs_across_copies(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the counter file goes there
    cb = ProgressCallback()
    cb.on_multirun_start(config=_multirun(["scenario=mmc", "officials.count=3,4,5",
                                           "resume=true"]))
    assert len(list(tmp_path.glob("*.progress"))) == 1
    done = tmp_path / "done"
    done.mkdir()
    (done / "summary.json").write_text("{}")
    _end(cb, ["scenario=mmc", "officials.count=3", "resume=true"], tmp_path / "new", None, True)
    copy = pickle.loads(pickle.dumps(cb))  # as joblib sends it to a worker process
    _end(copy, ["scenario=mmc", "officials.count=4", "resume=true"], done, None, True)
    _end(cb, ["scenario=mmc", "officials.count=5", "resume=true"], tmp_path / "bad",
         ValueError("officials.count=5: too many\nsecond line"), True)
    cb.on_multirun_end(config=_multirun([]))
    assert capsys.readouterr().err.splitlines() == [
        "sweep: 1 of 3 jobs done (officials.count=3): ok",
        "sweep: 2 of 3 jobs done (officials.count=4): skipped (resume)",
        "sweep: 3 of 3 jobs done (officials.count=5): failed: officials.count=5: too many"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done"]  # the counter removed


def test_callback_silent_in_a_single_run(capsys, tmp_path):
    cb = ProgressCallback()  # no multirun started: a plain `python -m sim`
    _end(cb, ["scenario=mmc"], tmp_path)
    disabled = ProgressCallback(enabled=False)
    disabled.on_multirun_start(config=_multirun(["officials.count=3,4"]))
    _end(disabled, ["officials.count=3"], tmp_path)
    assert capsys.readouterr() == ("", "")


def test_callback_without_a_known_total(capsys, tmp_path):
    cb = ProgressCallback()
    cb.on_multirun_start(config=_multirun(["officials.count=interval(1,5)"]))
    _end(cb, ["officials.count=2"], tmp_path)
    cb.on_multirun_end(config=_multirun([]))
    assert capsys.readouterr().err == "sweep: 1 of ? jobs done (officials.count=2): ok\n"


# -- real sweeps --------------------------------------------------------------------------------
def _sweep(folder: Path, tmp: Path, *overrides: str):
    # This checkout first on the path, however the package is installed; the sweep's counter
    # file in ``tmp``.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TMPDIR": str(tmp)}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = sweeps.run_sweep([*TINY, *overrides], folder, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def _lines(proc) -> list[tuple[int, int, str, str]]:
    return [(int(k), int(n), point, status) for k, n, point, status
            in LINE.findall(proc.stderr)]


def test_sweep_prints_k_of_n_as_jobs_end(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    folder = tmp_path / "sweep"
    proc = _sweep(folder, tmp, "officials.count=3,4,5", "hydra.callbacks.collect.enabled=false")
    lines = _lines(proc)
    assert [(k, n) for k, n, _, _ in lines] == [(1, 3), (2, 3), (3, 3)]
    assert sorted(p for _, _, p, _ in lines) == [f"officials.count={c}" for c in (3, 4, 5)]
    assert {s for _, _, _, s in lines} == {"ok"}
    assert "jobs done" not in proc.stdout  # stderr only, and no file of the sweep holds it
    assert not any("jobs done" in p.read_text(errors="ignore")
                   for p in folder.rglob("*") if p.is_file())
    assert list(tmp.glob("*.progress")) == []  # the counter file is gone


@pytest.mark.slow
def test_joblib_sweep_and_resume_count_every_job(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    folder = tmp_path / "sweep"
    joblib = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    lines = _lines(_sweep(folder, tmp, *joblib, "officials.count=3,4,5"))
    assert sorted(k for k, _, _, _ in lines) == [1, 2, 3]
    assert {n for _, n, _, _ in lines} == {3}
    # Resumed with one point more: the three finished jobs are skipped and still count.
    lines = _lines(_sweep(folder, tmp, *joblib, "officials.count=3,4,5,6", "resume=true"))
    assert sorted(k for k, _, _, _ in lines) == [1, 2, 3, 4]
    assert sorted((p, s) for _, _, p, s in lines) == [
        ("officials.count=3", "skipped (resume)"), ("officials.count=4", "skipped (resume)"),
        ("officials.count=5", "skipped (resume)"), ("officials.count=6", "ok")]
    assert list(tmp.glob("*.progress")) == []
