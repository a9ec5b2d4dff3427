"""Study settings under the bad-input contract (one line ``error: <key>=<value>: ...`` on
stderr, exit code 2, nothing written): calibrate and calibrate.match, sensitivity and solve
settings are typed and bounded like the model's; installing a recipe other than the committed
one over the committed calibration must be asked for; an install is all three files or none.

The refusals run in-process through the guard the entry points call before Hydra starts (as
tests/test_bad_input.py does); one runs the real ``python -m sim.calibrate``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from sim.command_line import guard
from sim.params import CONFIG_DIR
from sim.validation import ConfigError

SMOKE_INSTALL = ["calibrate=smoke", "calibrate.install=true"]

# (tool, overrides, the key the one line must name)
STUDIES = [
    ("calibrate", ["calibrate.install=no"], "calibrate.install"),
    ("calibrate", ["calibrate.install=maybe"], "calibrate.install"),
    ("calibrate", ["calibrate=smoke", "calibrate.install=yes"], "calibrate.install"),
    ("calibrate", ["calibrate.install_over_committed=sure"], "calibrate.install_over_committed"),
    ("calibrate", ["calibrate.match.jobs=-3"], "calibrate.match.jobs"),
    ("calibrate", ["calibrate.match.jobs=0"], "calibrate.match.jobs"),
    ("calibrate", ["calibrate.match.jobs=1.5"], "calibrate.match.jobs"),
    ("calibrate", ["calibrate.match.points=0"], "calibrate.match.points"),
    ("calibrate", ["calibrate.match.points=true"], "calibrate.match.points"),
    ("calibrate", ["calibrate.match.points=5000"], "calibrate.match.points"),
    ("calibrate", ["calibrate.match.replications=-1"], "calibrate.match.replications"),
    ("calibrate", ["calibrate.match.waves=0"], "calibrate.match.waves"),
    ("calibrate", ["calibrate.match.candidates=10"], "calibrate.match.candidates"),
    ("calibrate", ["calibrate.match.cutoff=0"], "calibrate.match.cutoff"),
    ("calibrate", ["calibrate.match.cutoff=-inf"], "calibrate.match.cutoff"),
    ("calibrate", ["calibrate.match.screen_cutoff=2"], "calibrate.match.screen_cutoff"),
    ("calibrate", ["calibrate.match.stop_ratio=0"], "calibrate.match.stop_ratio"),
    ("calibrate", ["calibrate.match.seed=-1"], "calibrate.match.seed"),
    ("calibrate", ["calibrate.match.discrepancy.linear=nan"], "calibrate.match.discrepancy"),
    ("calibrate", ["+calibrate.match.discrepancy.date=0.1"], "calibrate.match.discrepancy"),
    ("calibrate", ["calibrate.check_replications=-1"], "calibrate.check_replications"),
    ("calibrate", ["calibrate.check_replications=1"], "calibrate.check_replications"),
    ("calibrate", ["calibrate.end_margin_days=-1"], "calibrate.end_margin_days"),
    ("calibrate", ["calibrate.readings=[1]"], "calibrate.readings[0]"),
    ("calibrate", ["calibrate.name=../../escape"], "calibrate.name"),
    ("calibrate", ["calibrate.ranges_file=calibration/nope.yaml"], "calibrate.ranges_file"),
    ("calibrate", SMOKE_INSTALL, "calibrate.install_over_committed"),
    ("calibrate", ["calibrate.install=true", "calibrate.match.waves=2"],
     "calibrate.install_over_committed"),
    ("calibrate", ["calibrate.install=true", "calibrate.match.seed=7"],
     "calibrate.install_over_committed"),
    ("sensitivity", ["sensitivity.replications=0"], "sensitivity.replications"),
    ("sensitivity", ["sensitivity.replications=true"], "sensitivity.replications"),
    ("sensitivity", ["sensitivity.processes=-1"], "sensitivity.processes"),
    ("sensitivity", ["sensitivity.seed=1.5"], "sensitivity.seed"),
    ("sensitivity", ["sensitivity.morris.trajectories=1"], "sensitivity.morris.trajectories"),
    ("sensitivity", ["sensitivity.morris.levels=5"], "sensitivity.morris.levels"),
    ("sensitivity", ["sensitivity.sobol.n=3"], "sensitivity.sobol.n"),
    ("sensitivity", ["sensitivity.sobol.n=131072"], "sensitivity.sobol.n"),
    ("sensitivity", ["sensitivity.methods=[morris,morris]"], "sensitivity.methods"),
    ("sensitivity", ["sensitivity.name=a/b"], "sensitivity.name"),
]

SOLVE = ["solve.lever=officials.count", "solve.target=mean_wait_days", "solve.at_most=5",
         "solve.low=2", "solve.high=10", "scenario=mmc", "horizon_days=600",
         "warmup_days=60"]
SOLVE_BAD = [
    (["solve.check_points=-1"], "solve.check_points"),
    (["solve.check_points=100000"], "solve.check_points"),
    (["solve.probability=1.5"], "solve.probability"),
    (["solve.probability=inf"], "solve.probability"),
    (["solve.step=0"], "solve.step"),
    (["solve.seek=most"], "solve.seek"),
]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _committed() -> dict[str, bytes]:
    """The committed calibration: the ensemble and report, and the scenario's lines."""
    files = {**_snapshot(CONFIG_DIR / "calibrated")}
    files["baseline_2025.yaml"] = (CONFIG_DIR / "scenario" / "baseline_2025.yaml").read_bytes()
    return files


def _check(tool: str):
    from sim import calibrate, sensitivity

    return {"calibrate": calibrate.check, "sensitivity": sensitivity.check}[tool]


@pytest.mark.parametrize(("tool", "argv", "key"), STUDIES,
                         ids=[f"{t} {' '.join(a)}"[:60] for t, a, _ in STUDIES])
def test_study_settings_refused_in_one_line(tool, argv, key, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = _committed()
    with pytest.raises(SystemExit) as exit_:
        guard([*argv, f"hydra.run.dir={tmp_path / 'run'}"], config_name=tool, then=_check(tool))
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}"), lines
    assert list(tmp_path.iterdir()) == [] and _committed() == before


@pytest.mark.parametrize(("argv", "key"), SOLVE_BAD, ids=[" ".join(a) for a, _ in SOLVE_BAD])
def test_solver_settings_refused_in_one_line(argv, key, tmp_path, monkeypatch, capsys):
    from sim import solve

    monkeypatch.chdir(tmp_path)
    assert solve.main([*SOLVE, *argv, f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}="), lines
    assert list(tmp_path.iterdir()) == []


def test_unknown_solver_setting_lists_only_settings(tmp_path, monkeypatch, capsys):
    from sim import solve

    monkeypatch.chdir(tmp_path)
    assert solve.main([*SOLVE, "solve.goal=1", f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: solve.goal='1': no such setting; allowed: lever, target")
    assert "LIMITS" not in line  # a class constant, not a setting


@pytest.mark.parametrize(("tool", "argv"), [
    ("calibrate", []),
    ("calibrate", ["calibrate=smoke"]),
    ("calibrate", ["calibrate.install=true"]),  # the committed recipe: no confirmation
    ("calibrate", ["calibrate.install=true", "calibrate.match.jobs=8"]),
    ("calibrate", [*SMOKE_INSTALL, "calibrate.install_over_committed=true"]),
    ("calibrate", ["calibrate.check_replications=0", "calibrate.match.cutoff=3"]),
    ("sensitivity", []),
    ("sensitivity", ["sensitivity=smoke"]),
    ("sensitivity", ["sensitivity=full"]),
    ("sensitivity", ["sensitivity=smoke", "sensitivity.methods=[sobol]",
                     "sensitivity.sobol.n=65536"]),
], ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_valid_study_settings_pass_the_guard(tool, argv, tmp_path, capsys):
    guard([*argv, f"hydra.run.dir={tmp_path / 'run'}"], config_name=tool, then=_check(tool))
    assert capsys.readouterr().err == ""


def test_valid_solver_settings_pass():
    from sim import solve

    settings, _, _, _ = solve.prepare([*SOLVE, "solve.check_points=0", "solve.probability=1"])
    assert settings.check_points == 0 and settings.probability == 1.0


def _run_killed_after(seconds: float, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command, killed with its workers if it outlives ``seconds`` (a refusal takes a
    few): a run that was not refused is stopped long before it could install anything."""
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"not refused within {seconds} s: {' '.join(args)}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_smoke_study_with_install_no_is_refused_and_installs_nothing(tmp_path):
    before = _committed()
    run = tmp_path / "run"
    proc = _run_killed_after(30, "sim.calibrate", "calibrate=smoke", "calibrate.install=no",
                             f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: calibrate.install='no': must be true or false"]
    assert not run.exists() and _committed() == before


# -- installing: only with install exactly true, all three files or none ----------------------
@pytest.fixture()
def configs(tmp_path, monkeypatch):
    """A copy of the committed calibration's files, where write_results installs, and a
    stand-in calibration whose tables are fixed (the install is what is tested)."""
    from sim.studies import calibration

    root = tmp_path / "configs"
    for rel in ("calibrated/ensemble_baseline_2025.yaml", "calibrated/report_baseline_2025.md",
                "scenario/baseline_2025.yaml", "calibrate/default.yaml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((CONFIG_DIR / rel).read_bytes())
    monkeypatch.setattr(calibration, "CONFIG_DIR", root)
    monkeypatch.setattr(calibration, "points_table", lambda cal: pd.DataFrame({"x": [1]}))
    monkeypatch.setattr(calibration, "ensemble_document", lambda cal: {"members": []})
    monkeypatch.setattr(calibration, "point_text", lambda cal: "# point\n")
    monkeypatch.setattr(calibration, "report_text", lambda cal: "# new report\n")
    return root


def _calibration(**settings):
    from sim.studies import calibration

    return SimpleNamespace(settings=calibration.Settings(**settings), representative=dict,
                           provenance={"command": "test", "date": "2025-01-01",
                                       "git_commit": "abc"})


@pytest.mark.parametrize("install", ["no", "false", 1, None, False])
def test_write_results_installs_only_with_install_true(configs, tmp_path, install):
    from sim.studies import calibration

    before = _snapshot(configs)
    assert calibration.write_results(_calibration(), tmp_path / "out", install) == []
    assert (tmp_path / "out" / "report.md").is_file() and _snapshot(configs) == before


def test_write_results_refuses_a_smoke_recipe_over_the_committed_one(configs, tmp_path):
    from sim.studies import calibration

    before = _snapshot(configs)
    with pytest.raises(ConfigError, match="calibrate.install_over_committed"):
        calibration.write_results(_calibration(name="smoke"), tmp_path / "out", True)
    assert _snapshot(configs) == before
    cal = _calibration(name="smoke", install_over_committed=True)
    assert len(calibration.write_results(cal, tmp_path / "out", True)) == 3
    assert (configs / "calibrated" / "report_baseline_2025.md").read_text() == "# new report\n"


def test_a_failed_install_leaves_the_committed_files_as_they_were(configs, tmp_path,
                                                                   monkeypatch):
    from sim.files import atomic_write
    from sim.studies import calibration, install

    def failing_on_the_scenario(path, write):
        if path.name == "baseline_2025.yaml":
            raise OSError("No space left on device")
        atomic_write(path, write)

    monkeypatch.setattr(install, "atomic_write", failing_on_the_scenario)
    before = _snapshot(configs)
    with pytest.raises(OSError, match="No space"):
        calibration.write_results(_calibration(), tmp_path / "out", True)
    assert _snapshot(configs) == before  # the ensemble and report written first: restored


def test_install_files_removes_a_new_file_when_a_later_one_fails(tmp_path):
    from sim.studies.install import install_files

    old = tmp_path / "old.txt"
    old.write_text("old")
    new = tmp_path / "new.txt"
    with pytest.raises(FileNotFoundError):
        install_files({old: "changed", new: "new", tmp_path / "missing" / "x.txt": "x"})
    assert old.read_text() == "old" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]  # no temporaries
