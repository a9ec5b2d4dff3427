"""No run, tool or failure deletes or changes a file that a run of this project did not write,
and a failed run leaves the earlier complete result intact (sim/run_folder.py).

Each test puts a user's files and/or a complete earlier run in the target folder of an entry
point, then makes the entry point fail or succeed, as a user would (subprocesses), and compares
the folder's bytes before and after.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim import run_folder

MMC = ["scenario=mmc", "horizon_days=60", "warmup_days=0", "output.plots=false"]
USER_FILES = {"thesis.csv": b"a,b\n1,2\n", "photo.png": b"\x89PNG not really",
              "index.html": b"<p>mine</p>", ".draft.tmp": b"draft", "notes/today.md": b"# me"}


def _env() -> dict[str, str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def sim(*args: str, cwd: Path, module: str = "sim", **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300, check=False, **kwargs)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("error: ", "interrupted: ")), proc.stderr
    return lines[0]


def put_user_files(folder: Path) -> None:
    for name, data in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """A complete run folder (M/M/c, two replications), to copy."""
    cwd = tmp_path_factory.mktemp("earlier")
    proc = sim(*MMC, "replications=2", f"hydra.run.dir={cwd / 'run'}", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / "run"


def _copy(earlier: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(earlier, to)
    return to


# -- a folder that is not a run folder -----------------------------------------------------------
@pytest.mark.parametrize("entry", ["run", "sweep", "compare"])
def test_a_folder_of_user_files_is_refused_by_every_entry_point(entry, tmp_path, earlier):
    target = tmp_path / "mine"
    put_user_files(target)
    before = snapshot(target)
    if entry == "run":
        proc = sim(*MMC, f"hydra.run.dir={target}", cwd=tmp_path)
    elif entry == "sweep":
        proc = sim("-m", *MMC, "officials.count=3,4", f"hydra.sweep.dir={target}", cwd=tmp_path)
    else:
        other = _copy(earlier, tmp_path / "other")
        proc = sim(str(earlier), str(other), "--out", str(target), cwd=tmp_path,
                   module="sim.compare")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert str(target) in line and "did not write" in line
    assert snapshot(target) == before
    assert not (target / run_folder.LOCK).exists() and not (target / ".hydra").exists()


@pytest.mark.slow
def test_no_tool_writes_into_another_tools_folder(tmp_path, earlier):
    run = _copy(earlier, tmp_path / "run")
    other = _copy(earlier, tmp_path / "other")
    before = snapshot(run)
    compare = sim(str(other), str(other), "--out", str(run), cwd=tmp_path, module="sim.compare")
    sweep = sim("-m", *MMC, "officials.count=3,4", f"hydra.sweep.dir={run}", cwd=tmp_path)
    for proc in (compare, sweep):
        assert proc.returncode == 2
        assert "another tool's folder" in one_error_line(proc)
    assert snapshot(run) == before


# -- a rerun into an earlier complete run -------------------------------------------------------
@pytest.mark.slow
def test_a_rerun_replaces_only_what_a_run_wrote(tmp_path, earlier):
    run = _copy(earlier, tmp_path / "run")
    put_user_files(run)
    proc = sim(*MMC, "seed=7", "output.plots=true", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    after = snapshot(run)
    for name, data in USER_FILES.items():
        assert after[name] == data
    assert json.loads(after["summary.json"])["seed"] == 7
    manifest = json.loads(after[run_folder.MANIFEST])
    assert manifest["tool"] == "run" and "backlog.png" in manifest["files"]
    assert not set(USER_FILES) & set(manifest["files"])
    assert not (run / run_folder.STAGING).exists()
    # a run with fewer files removes the earlier run's figures, and only those
    proc = sim(*MMC, "seed=8", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (run / "backlog.png").exists()
    assert all((run / name).read_bytes() == data for name, data in USER_FILES.items())


@pytest.mark.slow
def test_a_run_folder_made_before_manifests_is_still_a_run_folder(tmp_path, earlier):
    run = _copy(earlier, tmp_path / "run")
    (run / run_folder.MANIFEST).unlink()
    (run / "__main__.log").write_text("")  # what Hydra wrote then
    (run / "thesis.csv").write_bytes(b"mine")
    proc = sim(*MMC, "seed=9", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (run / "thesis.csv").read_bytes() == b"mine"
    assert not (run / "__main__.log").exists()
    assert json.loads((run / "summary.json").read_text())["seed"] == 9


@pytest.mark.parametrize("record", [".hydra/config.yaml", "multirun.yaml"])
def test_another_hydra_applications_folder_is_a_users_folder(record, tmp_path):
    """Hydra's record alone does not make a folder ours: another Hydra application's run or
    sweep folder, holding files with our names (summary.json, report.html), is refused."""
    folder = tmp_path / "theirs"
    (folder / record).parent.mkdir(parents=True)
    (folder / record).write_text("model: resnet50\nlr: 0.1\n")
    for name in ("summary.json", "report.html", "daily.csv"):
        (folder / name).write_text("theirs")
    before = snapshot(folder)
    key = "hydra.sweep.dir" if record == "multirun.yaml" else "hydra.run.dir"
    proc = sim(*(["-m"] if record == "multirun.yaml" else []), *MMC, f"{key}={folder}",
               cwd=tmp_path)
    assert proc.returncode == 2
    assert "did not write" in one_error_line(proc)
    assert snapshot(folder) == before


def _limit_file_size(limit: int):
    def limit_it() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_it


@pytest.mark.slow
@pytest.mark.parametrize("limit", [3_000, 40_000])  # while Hydra writes; while the run writes
def test_a_rerun_that_cannot_write_leaves_the_earlier_result(limit, tmp_path, earlier):
    """A disk that fills up (a file-size limit: writes fail as on a full disk)."""
    run = _copy(earlier, tmp_path / "run")
    put_user_files(run)
    before = snapshot(run)
    proc = sim(*MMC, "seed=5", "replications=2", f"hydra.run.dir={run}", cwd=tmp_path,
               preexec_fn=_limit_file_size(limit))
    assert proc.returncode == 1
    assert "could not write" in one_error_line(proc)
    assert snapshot(run) == before
    assert not list(run.rglob("*.sim-tmp"))


@pytest.mark.slow
def test_a_full_temporary_folder_is_named_and_the_earlier_result_kept(tmp_path, earlier):
    """Many replications spill their arrays to TMPDIR: when that fills up (a file-size limit
    here), the line names the temporary folder, not the run's, and the run's folder is intact."""
    run = _copy(earlier, tmp_path / "run")
    put_user_files(run)
    before = snapshot(run)
    spilled_early = ("import runpy, sys; import sim.results as r; r._BLOCK_BYTES = 1 << 20; "
                     "sys.argv[0] = 'sim'; runpy.run_module('sim', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", spilled_early, *MMC, "horizon_days=30",
                           "replications=300", f"hydra.run.dir={run}"], cwd=tmp_path,
                          env={**_env(), "TMPDIR": str(tmp_path)}, capture_output=True,
                          text=True, timeout=300, preexec_fn=_limit_file_size(500_000))
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"could not write the temporary folder {tmp_path} (" in line and "TMPDIR" in line
    assert snapshot(run) == before


def _as_in_a_terminal() -> None:
    """Ctrl-C's disposition of a command typed at a terminal. A child inherits an ignored
    SIGINT (a background job of a non-interactive shell, e.g. a suite started with ``&``) and
    then, by POSIX convention which Python follows, never sees Ctrl-C: that is the shell's
    choice, not the run's, so the test starts the run as a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_a_rerun_killed_or_interrupted_leaves_the_earlier_result(how, tmp_path, earlier):
    run = _copy(earlier, tmp_path / "run")
    put_user_files(run)
    before = snapshot(run)
    proc = subprocess.Popen([sys.executable, "-m", "sim", "scenario=mmc", "horizon_days=4000",
                             "warmup_days=0", "replications=3", f"hydra.run.dir={run}"],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_as_in_a_terminal)
    deadline = time.monotonic() + 60
    while not (run / run_folder.STAGING / ".hydra").is_dir():  # the run has started
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    if how == signal.SIGINT:
        assert proc.returncode == 130
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("interrupted: "), err
    kept = snapshot(run)
    assert {k: v for k, v in kept.items() if not k.startswith(run_folder.STAGING)} == before


@pytest.mark.slow
def test_two_runs_into_one_folder_the_second_is_refused(tmp_path, earlier):
    run = _copy(earlier, tmp_path / "run")
    before = snapshot(run)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from sim import "
                               "run_folder; run_folder.claim(sys.argv[1], 'run', 'x'); "
                               "print('held', flush=True); time.sleep(60)", str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = sim(*MMC, f"hydra.run.dir={run}", cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2
    assert "another process" in one_error_line(proc)
    assert snapshot(run) == before


def test_resume_refuses_changed_settings_and_skips_the_same(tmp_path, earlier):
    run = _copy(earlier, tmp_path / "run")
    before = snapshot(run)
    changed = sim(*MMC, "replications=2", "officials.count=9", "resume=true",
                  f"hydra.run.dir={run}", cwd=tmp_path)
    assert changed.returncode == 2
    line = one_error_line(changed)
    assert "officials.count" in line and "resume" in line
    same = sim(*MMC, "replications=2", "resume=true", "jobs=2", f"hydra.run.dir={run}",
               cwd=tmp_path)
    assert same.returncode == 0 and "skipped" in same.stdout, same.stderr
    assert snapshot(run) == before


# -- tools on damaged folders --------------------------------------------------------------------
def _damage(folder: Path, how: str) -> None:
    if how == "truncated summary":
        text = (folder / "summary.json").read_text()
        (folder / "summary.json").write_text(text[: len(text) // 3])
    elif how == "summary a list":
        (folder / "summary.json").write_text("[1, 2]\n")
    elif how == "edited config":
        data = json.loads((folder / "summary.json").read_text())
        data["config"]["officials"]["count"] = "many"
        (folder / "summary.json").write_text(json.dumps(data))
    elif how == "short pending":
        lines = (folder / "pending_by_replication.csv").read_text().splitlines()
        (folder / "pending_by_replication.csv").write_text("\n".join(lines[:5]) + "\n")
    elif how == "text in pending":
        lines = (folder / "pending_by_replication.csv").read_text().splitlines()
        lines[3] = lines[3].split(",")[0] + ",abc," + ",".join(lines[3].split(",")[2:])
        (folder / "pending_by_replication.csv").write_text("\n".join(lines) + "\n")
    elif how == "text in replications":
        lines = (folder / "replications.csv").read_text().splitlines()
        header = lines[0].split(",")
        cells = lines[1].split(",")
        cells[header.index("totals.arrivals")] = "abc"
        lines[1] = ",".join(cells)
        (folder / "replications.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated summary", "summary a list", "edited config",
                                 "short pending", "text in pending", "text in replications"])
def test_compare_refuses_a_damaged_run_in_one_line(how, tmp_path, earlier):
    good = _copy(earlier, tmp_path / "good")
    bad = _copy(earlier, tmp_path / "bad")
    _damage(bad, how)
    out = tmp_path / "out"
    proc = sim(str(good), str(bad), "--out", str(out), cwd=tmp_path, module="sim.compare")
    assert proc.returncode == 2
    assert "bad" in one_error_line(proc)
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("multirun", ["{{{\n", "- a list\n", "hydra: 5\n",
                                      "hydra:\n  overrides:\n    task: ['a=(']\n"])
def test_collect_refuses_a_damaged_multirun_record_in_one_line(multirun, tmp_path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "multirun.yaml").write_text(multirun)
    before = snapshot(folder)
    proc = sim(str(folder), cwd=tmp_path, module="sim.collect")
    assert proc.returncode == 2
    assert "multirun.yaml" in one_error_line(proc)
    assert snapshot(folder) == before


@pytest.mark.slow
@pytest.mark.parametrize("target", ["/proc/x", "/sys/kernel/x"])
def test_folders_that_cannot_be_written_are_refused_in_one_line(target, tmp_path, earlier):
    run = sim(*MMC, f"hydra.run.dir={target}", cwd=tmp_path)
    compare = sim(str(earlier), str(earlier), "--out", target, cwd=tmp_path,
                  module="sim.compare")
    for proc in (run, compare):
        assert proc.returncode == 2
        assert target in one_error_line(proc)


def test_a_sweep_refuses_a_job_folder_of_user_files(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")  # a sweep folder of this project
    job = sweep / "horizon_days=60,officials.count=5,output.plots=False,scenario=mmc,warmup_days=0"
    put_user_files(job)
    before = snapshot(sweep)
    proc = sim("-m", *MMC, "officials.count=3,5", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "did not write" in one_error_line(proc)
    assert snapshot(sweep) == before


@pytest.mark.slow
@pytest.mark.parametrize(("module", "args"), [
    ("sim.calibrate", ["calibrate=smoke"]),
    ("sim.sensitivity", ["sensitivity=smoke"]),
    ("sim.solve", ["solve.lever=officials.count", "solve.target=waiting_end", "solve.at_most=500",
                   "solve.low=2", "solve.high=12", "scenario=mmc", "horizon_days=60",
                   "warmup_days=0"]),
])
def test_every_study_refuses_a_folder_of_user_files_or_of_another_tool(module, args, tmp_path,
                                                                        earlier):
    mine = tmp_path / "mine"
    put_user_files(mine)
    run = _copy(earlier, tmp_path / "run")
    before = snapshot(tmp_path)
    for target, words in ((mine, "did not write"), (run, "another tool's folder")):
        proc = sim(*args, f"hydra.run.dir={target}", cwd=tmp_path, module=module)
        assert proc.returncode == 2
        assert words in one_error_line(proc)
    assert snapshot(tmp_path) == before
