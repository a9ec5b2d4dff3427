"""Every bad input is refused under one contract: ``error: <key>=<value>: <what is allowed>`` on
one line of stderr, exit code 2, nothing created or changed on disk (an earlier run's folder
named as the output folder stays byte-identical).

The command-line corpus runs in-process through the same guard ``python -m sim``,
``python -m sim.calibrate`` and ``python -m sim.sensitivity`` call before Hydra starts; a few
cases run the real entry points as subprocesses, and the Python API has its own corpus.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sim
from sim.command_line import guard
from sim.validation import ConfigError

T = '+timeline.x={date:"2025-08-01",label:x,changes:{%s}}'
SURGE = 'arrivals.surges=[{start_date:"2025-04-04",size:%s,decay_days:%s,elements:%s}]'

# (overrides, the key the one line must name)
CLI = [
    (["officials.cnt=3"], "officials.cnt"),
    (["+officials.cnt=3"], "officials.cnt"),
    (["++officials.cnt=3"], "officials.cnt"),
    (["+foo=1"], "foo"),
    (["~officials.count"], "officials.count"),
    (["+officials.count=3"], "officials.count"),
    (["officials.count=0"], "officials.count"),
    (["officials.count=2.5"], "officials.count"),
    (["officials.count=abc"], "officials.count"),
    (["officials.count=null"], "officials.count"),
    (["arrivals.rate_per_day=inf"], "arrivals.rate_per_day"),
    (["arrivals.rate_per_day=nan"], "arrivals.rate_per_day"),
    (["arrivals.rate_per_day=-1"], "arrivals.rate_per_day"),
    (["review.mean_hours=inf"], "review.mean_hours"),
    (["review.mean_hours=0"], "review.mean_hours"),
    (["intake.mean_working_days=inf"], "intake.mean_working_days"),
    (["intake.mean_working_days=nan"], "intake.mean_working_days"),
    (["interagency.mean_working_days=inf"], "interagency.mean_working_days"),
    (["consultation.share=1.5"], "consultation.share"),
    (["consultation.share=nan"], "consultation.share"),
    (["incomplete.probability=1"], "incomplete.probability"),
    (["decision.deny_probability=-0.1"], "decision.deny_probability"),
    (["classes.military_share=2"], "classes.military_share"),
    (["withdrawal.patience_days=0"], "withdrawal.patience_days"),
    (["withdrawal.patience_days=inf"], "withdrawal.patience_days"),
    (["withdrawal.patience_days=nan"], "withdrawal.patience_days"),
    (["withdrawal.patience_distribution=gamma"], "withdrawal.patience_distribution"),
    (["green_channel.mode=fast"], "green_channel.mode"),
    (["green_channel.mode=null"], "green_channel.mode"),
    (["green_channel.destinations=US"], "green_channel.destinations"),
    (["green_channel.destinations=[XX]"], "green_channel.destinations"),
    (["green_channel.mode=dedicated", "green_channel.dedicated_officials=0"],
     "green_channel.dedicated_officials"),
    (["officials.schedule=5"], "officials.schedule"),
    (["officials.schedule=[{dat:2025-07-01,count:3}]"], "officials.schedule"),
    (["officials.schedule=[{date:2025-07-01,count:0}]"], "officials.schedule"),
    (["officials.schedule=[{date:notadate,count:3}]"], "officials.schedule"),
    (["officials.hours_per_day=25"], "officials.hours_per_day"),
    (["officials.scale=0"], "officials.scale"),
    (["officials.scale=inf"], "officials.scale"),
    (["officials.ramp.count=inf"], "officials.ramp.count"),
    (["officials.ramp.start_date=2030-01-01"], "officials.ramp.start_date"),
    (["classes.destination_shares.XX=0.1"], "classes.destination_shares.XX"),
    (["classes.destination_shares.US=0.5"], "classes.destination_shares"),
    (["classes.trusted_share.US=1.5"], "classes.trusted_share.US"),
    (["military.policy=shoot"], "military.policy"),
    (["calendar.kind=lunar"], "calendar.kind"),
    (["review.distribution=gamma"], "review.distribution"),
    (["review.cv=0"], "review.cv"),
    (["clearance.backlog=queue"], "clearance.backlog"),
    (["clearance.fraction_of_peak=0"], "clearance.fraction_of_peak"),
    (["clearance.cohort_date=2030-01-01"], "clearance.cohort_date"),
    (["clearance.cohort_date=2024-01-01"], "clearance.cohort_date"),
    (["clearance.event=nope"], "clearance.event"),
    (["start_date=2003-01-01"], "start_date"),
    (["start_date=notadate"], "start_date"),
    (["end_date=2025-01-01"], "end_date"),
    (["end_date=2040-01-01"], "end_date"),
    (["horizon_days=100"], "horizon_days"),
    (["warmup_days=-1"], "warmup_days"),
    (["seed=-1"], "seed"),
    (["seed=abc"], "seed"),
    (["replications=0"], "replications"),
    (["jobs=0"], "jobs"),
    (["name=../../../../escape_test"], "name"),
    (["name=.hidden"], "name"),
    (["name=a/b"], "name"),
    (["scenario=nope"], "scenario"),
    (["executor=nope"], "executor"),
    (["executor.kind=cloud"], "executor.kind"),
    (["licence.term_days=0"], "licence.term_days"),
    (["licence.renewal_share=2"], "licence.renewal_share"),
    (["licence.renewal_lead_days=500"], "licence.renewal_lead_days"),
    (["statutory.working_days=0"], "statutory.working_days"),
    (["queue.served_last=[XX]"], "queue.served_last"),
    (["controls.october5=maybe"], "controls.october5"),
    (["output.plots=maybe"], "output.plots"),
    (["output.figure_formats=[gif]"], "output.figure_formats"),
    (["initial_backlog.count=-1"], "initial_backlog.count"),
    (["initial_backlog.max_waited_days=inf"], "initial_backlog.max_waited_days"),
    (["calibration.keep=[nope.key]"], "calibration.keep"),
    (["calibration.ensemble_file=missing.yaml"], "calibration.ensemble_file"),
    (["timeline.londn.date=2025-06-11"], "timeline.londn"),
    (["timeline.london.date=notadate"], "timeline.london.date"),
    ([T % "officials.count:2.5"], "timeline.x.changes.officials.count"),
    ([T % "officials.count:nine"], "timeline.x.changes.officials.count"),
    ([T % "officials.count:0"], "officials.count"),
    ([T % "green_channel.destinations:US"], "timeline.x.changes.green_channel.destinations"),
    ([T % "controls.october5:yes"], "timeline.x.changes.controls.october5"),
    ([T % "officials.cnt:3"], "timeline.x.changes.officials.cnt"),
    ([T % 'start_date:"2025-05-01"'], "timeline.x.changes.start_date"),
    (['+timeline.x={date:"2027-08-01",label:x,changes:{}}'], "timeline.x.date"),
    (['+timeline.x={dat:"2025-08-01"}'], "timeline.x.dat"),
    ([SURGE % ("inf", 10, "april7")], "arrivals.surges[0].size"),
    ([SURGE % (100, 0, "april7")], "arrivals.surges[0].decay_days"),
    ([SURGE % (100, 10, "all")], "arrivals.surges[0].elements"),
    (["calibrate.scenario_overrides=[officials.count=0]"], "calibrate.scenario_overrides"),
    (["-m", "officials.count=3,0"], "officials.count"),
    (["-m", "green_channel.mode=off,fast"], "green_channel.mode"),
    (["--config-dir", "/nonexistent/configs"], "--config-dir"),
    (["--cfg", "job", "officials.cnt=3"], "officials.cnt"),
    (["output.plots=2"], "output.plots"),
    (["calibration.ensemble=-1"], "calibration.ensemble"),
    (["--shell-completion"], "--shell-completion"),
    (["-sc", "install=bash", "query=bash"], "--shell-completion"),
]

STUDIES = [
    ("calibrate", ["calibrate.nosuch=1"], "calibrate.nosuch"),
    ("calibrate", ["calibrate=nonexistent"], "calibrate"),
    ("calibrate", ["calibrate.scenario=nonexistent"], "scenario"),
    ("calibrate", ["calibrate.scenario_overrides=[officials.count=0]"],
     "calibrate.scenario_overrides"),
    ("calibrate", ['calibrate.scenario_overrides=["officials.count=0"]'], "officials.count"),
    ("calibrate", ["calibrate.readings=[nope]"], "calibrate.readings"),
    ("calibrate", ["calibrate.match.nope=2"], "calibrate.match.nope"),
    ("calibrate", ["executor=cloud"], "executor"),
    ("sensitivity", ["sensitivity.nosuch=1"], "sensitivity.nosuch"),
    ("sensitivity", ["sensitivity=nonexistent"], "sensitivity"),
    ("sensitivity", ["sensitivity.scenario=nonexistent"], "scenario"),
    ("sensitivity", ["sensitivity.methods=[nope]"], "sensitivity.methods"),
    ("sensitivity", ['sensitivity.scenario_overrides=["officials.cnt=3"]'], "officials.cnt"),
]

SCENARIO_FILES = {  # a user's scenario folder (--config-dir): name -> (text, key named)
    "bad_yaml": ("# @package _global_\nofficials:\n  count: [1, 2\n", "bad_yaml.yaml:4:1"),
    "bad_type": ("# @package _global_\nofficials:\n  count: many\n", "officials.count"),
    "bad_key": ("# @package _global_\nofficials:\n  cnt: 3\n", "officials.cnt"),
    "no_package": ("officials:\n  count: 3\n", "scenario"),
    "bad_value": ("# @package _global_\ndefaults:\n  - baseline_2025\n  - _self_\n"
                  "officials:\n  count: 0\n", "officials.count"),
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture()
def earlier(tmp_path, monkeypatch):
    """An earlier run's folder (given as the output folder), in an otherwise empty cwd."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "earlier"
    (folder / ".hydra").mkdir(parents=True)
    (folder / "summary.json").write_text('{"seed": 1}\n')
    # this project's record of a run: its settings (officials, ...)
    (folder / ".hydra" / "config.yaml").write_text("name: earlier\nofficials: {count: 3}\n")
    return folder


def _refused(argv: list[str], config_name: str, earlier: Path, capsys, key: str,
             then=None) -> str:
    before = _snapshot(earlier.parent)
    run_dir = "hydra.sweep.dir" if "-m" in argv else "hydra.run.dir"
    with pytest.raises(SystemExit) as exit_:
        guard([*argv, f"{run_dir}={earlier}"], config_name=config_name, then=then)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert key in lines[0], lines[0]
    assert _snapshot(earlier.parent) == before  # nothing created, nothing changed
    return lines[0]


@pytest.mark.parametrize(("argv", "key"), CLI, ids=[" ".join(a)[:60] for a, _ in CLI])
def test_command_line_refuses_bad_input(argv, key, earlier, capsys):
    _refused(argv, "config", earlier, capsys, key)


@pytest.mark.parametrize(("override", "key"), [("timeline=[{date: 2025-06-01}]", "timeline"),
                                             ("arrivals.surges={a: 1}", "arrivals.surges")])
def test_a_list_for_a_mapping_says_what_is_allowed(override, key, earlier, capsys):
    line = _refused([override], "config", earlier, capsys, key)
    assert "a list [...] and a mapping {key: value}" in line, line


def test_a_huge_run_size_is_said_in_a_short_line(earlier, capsys):
    line = _refused(["arrivals.rate_per_day=1e300"], "config", earlier, capsys, "run's size")
    assert "about 1.1e+303 applications per replication" in line and len(line) < 250, line


@pytest.mark.parametrize(("tool", "argv", "key"), STUDIES,
                         ids=[f"{t} {' '.join(a)}"[:60] for t, a, _ in STUDIES])
def test_study_tools_refuse_bad_input(tool, argv, key, earlier, capsys):
    from sim import calibrate, sensitivity

    check = {"calibrate": calibrate.check, "sensitivity": sensitivity.check}[tool]
    _refused(argv, tool, earlier, capsys, key, then=check)


@pytest.mark.parametrize("name", list(SCENARIO_FILES))
def test_user_scenario_files_refused_in_one_line(name, earlier, capsys, tmp_path):
    text, key = SCENARIO_FILES[name]
    folder = tmp_path / "mine" / "scenario"
    folder.mkdir(parents=True)
    (folder / f"{name}.yaml").write_text(text)
    _refused(["--config-dir", str(tmp_path / "mine"), f"scenario={name}",
              "end_date=2025-07-31"], "config", earlier, capsys, key)


def test_unwritable_output_folder_refused(earlier, capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(SystemExit):
        guard([f"hydra.run.dir={a_file}/run"])
    assert "is a file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(SystemExit):
            guard([f"hydra.run.dir={locked}/run"])


def test_valid_input_passes_the_guard(earlier, capsys, tmp_path):
    guard(["officials.count=8", "+timeline.x={date:\"2025-08-01\",label:x,changes:"
           "{officials.count:9}}", "timeline.call=null", "~timeline.geneva",
           "++officials.scale=2", f"hydra.run.dir={earlier}"])
    guard(["-m", "officials.count=3,5", "green_channel.mode=off,priority"])
    guard(["end_date=2025-05-31"])  # the scenario's own cohort date is then simply not reached
    guard(["--cfg", "job", "-p", "officials", "officials.count=3"])  # flags with values
    assert capsys.readouterr().err == ""


# -- the Python API ---------------------------------------------------------------------------
def _base():
    return sim.to_params(sim.load_config(["scenario=mmc", "horizon_days=600"]))


def _set(path: str, value):
    def change(p):
        *parents, last = path.split(".")
        obj = p
        for part in parents:
            obj = getattr(obj, part)
        if isinstance(obj, dict):
            obj[last] = value
        else:
            setattr(obj, last, value)
    return change


API = [
    ("officials.count", 0), ("officials.count", "3"), ("officials.count", 2.5),
    ("arrivals.rate_per_day", float("inf")), ("review.mean_days", float("nan")),
    ("classes.destination_shares.US", 0.0), ("green_channel.destinations", "US"),
    ("green_channel.mode", "fast"), ("withdrawal.patience_days", -1.0), ("name", "../x"),
    ("replications", 0), ("jobs", True),
]


@pytest.mark.parametrize(("path", "value"), API, ids=[f"{k}={v!r}" for k, v in API])
def test_api_validates_a_config_as_the_command_line_does(path, value):
    p = copy.deepcopy(_base())
    _set(path, value)(p)
    with pytest.raises(ConfigError) as err:
        sim.run(p)
    assert "\n" not in str(err.value)
    assert any(part in str(err.value) for part in path.split(".")[1:] or [path])


@pytest.mark.parametrize("kwargs", [{"replications": 0}, {"replications": "2"}, {"jobs": 0},
                                    {"jobs": 1.5}])
def test_api_checks_replications_and_jobs(kwargs):
    with pytest.raises(ConfigError):
        sim.run(_base(), **kwargs)


def test_api_refuses_what_is_not_a_config():
    with pytest.raises(ConfigError):
        sim.run(42)


# -- the real entry points, end to end ----------------------------------------------------------
def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})


@pytest.mark.parametrize("args", [
    ("sim", "+officials.cnt=3"),
    ("sim", "-m", "officials.count=3,0"),
    ("sim.calibrate", "calibrate.nosuch=1"),
    ("sim.sensitivity", "sensitivity.scenario=nonexistent"),
], ids=lambda a: " ".join(a))
def test_entry_points_refuse_before_writing(args, earlier):
    before = _snapshot(earlier.parent)
    key = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
    proc = _run(earlier.parent, *args, f"{key}={earlier}")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: ")
    assert _snapshot(earlier.parent) == before


@pytest.mark.parametrize("folder", ["outputs_runs", "nonexistent"])
def test_collect_refuses_what_is_not_a_sweep_folder(folder, earlier):
    (earlier.parent / "outputs_runs").mkdir()
    before = _snapshot(earlier.parent)
    proc = _run(earlier.parent, "sim.collect", folder)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert _snapshot(earlier.parent) == before


@pytest.mark.slow
def test_figures_are_png_unless_other_formats_are_asked_for(tmp_path):
    from sim.outputs import write_run

    res = sim.run(["scenario=mmc", "horizon_days=300", "warmup_days=0"])
    write_run(tmp_path / "png", res)
    assert {p.suffix for p in (tmp_path / "png").iterdir() if p.stem == "backlog"} == {".png"}
    res = sim.run(["scenario=mmc", "horizon_days=300", "warmup_days=0",
                   "output.figure_formats=[png,svg]"])
    write_run(tmp_path / "both", res)
    assert {p.suffix for p in (tmp_path / "both").glob("backlog.*")} == {".png", ".svg"}


def test_a_killed_writer_leaves_nothing_after_the_next_run(tmp_path):
    from sim.outputs import write_run

    res = sim.run(["scenario=mmc", "horizon_days=300", "warmup_days=0", "output.plots=false"])
    stale = tmp_path / ".staging" / ".daily.csv.abc123.sim-tmp"  # what kill -9 leaves
    stale.parent.mkdir()
    stale.write_text("partial")
    write_run(tmp_path, res)
    assert not list(tmp_path.rglob("*tmp"))
    assert not (tmp_path / ".staging").exists()
