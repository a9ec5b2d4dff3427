"""Bad values under the one contract (``error: <key>=<value>: <what is allowed>`` on one line of
stderr, exit code 2, nothing created or changed on disk, within seconds), by class:

A. sizes that would hang or exhaust memory: every size has an upper bound (sim.limits), and a
   run's expected applications are estimated before it starts;
B. YAML bombs and huge files in a user's scenario folder (``--config-dir``);
C. sweeps: checked by their values, not one composition per value, whatever their order, with
   a scenario file's ``hydra.sweeper.params``;
D. settings never checked before (executor, objective bounds, dates after the run, paths,
   output folders from interpolations, a sweep's job folders), the Python API's arguments;
E. Hydra's own flags;
F. messages naming the setting or the file, control characters escaped, choices listed.

The command line runs in-process through the guard ``python -m sim`` calls before Hydra
starts; a few cases run the real entry point as a subprocess.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sim
from sim import limits
from sim.command_line import guard
from sim.params import EventConfig
from sim.validation import ConfigError

T = '+timeline.x={date:"2025-08-01",label:x,changes:{%s}}'
SURGE = 'arrivals.surges=[{start_date:"2025-04-04",size:%s,decay_days:10,elements:april7}]'
BOMB = """# @package _global_
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


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


def _refused(argv: list[str], earlier: Path, capsys, key: str, config_name: str = "config",
             then=None, folder: bool = True) -> str:
    """The guard refuses ``argv`` in one line naming ``key``, in seconds, touching nothing."""
    before = _snapshot(earlier.parent)
    run_dir = "hydra.sweep.dir" if "-m" in argv else "hydra.run.dir"
    start = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        guard([*argv, *([f"{run_dir}={earlier}"] if folder else [])], config_name=config_name,
              then=then)
    assert time.monotonic() - start < 10
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert key in lines[0], lines[0]
    assert "\x1b" not in err
    assert _snapshot(earlier.parent) == before  # nothing created, nothing changed
    return lines[0]


def _passes(argv: list[str], capsys) -> None:
    start = time.monotonic()
    guard(argv)
    assert time.monotonic() - start < 10
    assert capsys.readouterr().err == ""


# -- A. sizes -----------------------------------------------------------------------------------
SIZES = [
    (["officials.count=1000000000000"], "officials.count"),
    ([T % "officials.count:1000000000000"], "officials.count"),
    (["officials.schedule=[{date:2025-07-01,count:1000000000}]"], "officials.schedule[0].count"),
    (["officials.ramp.count=1000000"], "officials.ramp.count"),
    (["officials.count=5000", "officials.scale=100"], "officials.scale"),
    (["green_channel.mode=dedicated", "green_channel.dedicated_officials=1000000000"],
     "green_channel.dedicated_officials"),
    (["arrivals.rate_per_day=1e7"], "arrivals.rate_per_day"),
    ([T % "arrivals.rate_per_day:1e7"], "arrivals.rate_per_day"),
    ([T % "arrivals.scale:1e300"], "arrivals.rate_per_day"),
    (["initial_backlog.count=100000000"], "initial_backlog.count"),
    (["initial_backlog.count=4000000", "arrivals.rate_per_day=5000"], "initial_backlog.count"),
    ([SURGE % "1e12"], "arrivals.surges[0].size"),
    (["incomplete.probability=0.99999"], "incomplete.probability"),
    (["licence.renewal_share=1", "licence.term_days=2", "licence.renewal_lead_days=1",
      "arrivals.rate_per_day=1000"], "licence.renewal_share"),
    (["replications=100000"], "replications"),
    (["replications=10000"], "replications"),  # 10,000 of the baseline: too many applications
    (["scenario=mmc", "replications=3000"], "replications"),  # 15 M replication-days
    (["jobs=100000"], "jobs"),
    (["scenario=mmc", "horizon_days=100000000"], "horizon_days"),
    (["scenario=mmc", "horizon_days=null", "end_date=2225-01-01"], "end_date"),
    (["review.cv=1e308"], "review.cv"),
    (["executor.timeout_min=100000000"], "executor.timeout_min"),
    (["-m", "seed=range(0,1000000000000)"], "seed"),
    (["-m", "seed=range(0,20000)"], "the sweep"),
    (["-m", "seed=range(0,1,0)"], "seed"),
]


@pytest.mark.parametrize(("argv", "key"), SIZES, ids=[" ".join(a)[:60] for a, _ in SIZES])
def test_sizes_have_bounds(argv, key, earlier, capsys):
    line = _refused(argv, earlier, capsys, key)
    assert any(ch.isdigit() for ch in line.split(":", 1)[1])  # the bound or the estimate


def test_run_size_names_estimate_limit_and_setting(earlier, capsys):
    line = _refused(["arrivals.rate_per_day=1e7"], earlier, capsys, "the run's size")
    assert "applications per replication" in line
    assert f"{limits.MAX_APPLICATIONS:,}" in line and "arrivals.rate_per_day" in line


def test_many_jobs_are_not_refused(earlier, capsys):
    """More jobs than cores: sim.executor caps the workers, the guard does not refuse."""
    _passes(["jobs=1000", f"hydra.run.dir={earlier.parent}/new"], capsys)
    _passes(["scenario=mmc", "replications=1000", f"hydra.run.dir={earlier.parent}/new"], capsys)


def _base():
    return sim.to_params(sim.load_config(["scenario=mmc", "horizon_days=600"]))


def test_api_refuses_sizes():
    p = _base()
    p.officials.count = 10**12
    with pytest.raises(ConfigError, match="officials.count"):
        sim.run(p)
    p = _base()
    p.timeline = {"x": EventConfig(date="2025-03-01", label="x",
                                   changes={"officials.count": 10**12})}
    with pytest.raises(ConfigError, match="officials.count"):
        sim.run(p)
    p = _base()
    p.initial_backlog.count = 10**8
    with pytest.raises(ConfigError, match="initial_backlog.count"):
        sim.run(p)
    for kwargs, key in (({"replications": 100_000}, "replications"),
                        ({"replications": 9_000}, "replications"),  # 5.4 M days: 2.4e7 apps ok
                        ({"jobs": 100_000}, "jobs")):
        p = _base()
        p.horizon_days = 5000
        with pytest.raises(ConfigError, match=key):
            sim.run(p, **kwargs)
    with pytest.raises(ConfigError, match="review.cv"):
        sim.load_config(["review.cv=1e308"]) and sim.run(["review.cv=1e308"])


def test_estimate_is_an_upper_estimate_of_the_baseline():
    p = sim.to_params(sim.load_config([]))
    parts = limits.estimated_applications(p)
    # the baseline (recalibrated on the customs series) files about 130,000 in a run
    # (python -m sim: arrived 129,432); renewals and extra rounds make the estimate 3x that
    assert 130_000 <= sum(parts.values()) <= 450_000
    assert limits.size_problem(p, 1) is None


# -- B. a user's scenario files -------------------------------------------------------------------
def _scenario_dir(tmp_path: Path, name: str, text: str | bytes) -> Path:
    folder = tmp_path / "mine" / "scenario"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return tmp_path / "mine"


FILES = {
    "bomb": BOMB,  # a billion laughs in a few hundred bytes
    "deep": "# @package _global_\nname: " + "[" * 5000 + "]" * 5000 + "\n",
    "latin1": b"# @package _global_\nname: caf\xe9\n",
    "code": "# @package _global_\nhydra:\n  callbacks:\n    x:\n      _target_: os.system\n",
    "many": "# @package _global_\nx: [" + ",".join(["1"] * 30_000) + "]\n",
}


@pytest.mark.parametrize("name", list(FILES))
def test_scenario_files_bounded_before_hydra_loads_them(name, earlier, capsys, tmp_path):
    mine = _scenario_dir(tmp_path, name, FILES[name])
    _refused(["--config-dir", str(mine), f"scenario={name}"], earlier, capsys, f"{name}.yaml")


def test_a_huge_value_is_refused_by_the_file_size(earlier, capsys, tmp_path):
    mine = _scenario_dir(tmp_path, "big", "# @package _global_\nname: " + "x" * 50_000_000)
    line = _refused(["--config-dir", str(mine), "scenario=big"], earlier, capsys, "big.yaml")
    assert f"{limits.MAX_CONFIG_FILE_BYTES:,}" in line


def test_a_fifo_in_the_scenario_folder_does_not_block(earlier, capsys, tmp_path):
    mine = _scenario_dir(tmp_path, "ok", "# @package _global_\nofficials:\n  count: 3\n")
    os.mkfifo(mine / "scenario" / "pipe.yaml")
    _refused(["--config-dir", str(mine), "scenario=ok"], earlier, capsys, "pipe.yaml")


def test_a_good_scenario_folder_passes(earlier, capsys, tmp_path):
    mine = _scenario_dir(tmp_path, "ok", "# @package _global_\ndefaults:\n  - mmc\n  - _self_\n"
                                         "common: &c 3\nofficials:\n  count: 3\n")
    (mine / "scenario" / "ok.yaml").write_text("# @package _global_\ndefaults:\n  - mmc\n"
                                               "  - _self_\nofficials:\n  count: 3\n")
    _passes(["--config-dir", str(mine), "scenario=ok", f"hydra.run.dir={earlier.parent}/n"],
            capsys)


# -- C. sweeps ----------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [("300,100", "0,150"), ("100,300", "150,0"),
                                   ("100,300", "0,150")])
def test_sweep_refused_whatever_the_order(order, earlier, capsys):
    horizons, warmups = order
    line = _refused(["-m", "scenario=mmc", f"horizon_days={horizons}",
                     f"warmup_days={warmups}"], earlier, capsys, "warmup_days=150")
    assert "horizon_days=100" in line  # the combination is named


def test_sweep_of_valid_combinations_passes(earlier, capsys):
    _passes(["-m", "scenario=mmc", "horizon_days=300,200", "warmup_days=0,150",
             f"hydra.sweep.dir={earlier.parent}/s"], capsys)


def test_a_sweep_of_5000_seeds_is_checked_in_seconds(earlier, capsys):
    _passes(["-m", "seed=range(0,5000)", f"hydra.sweep.dir={earlier.parent}/s"], capsys)
    _refused(["-m", "seed=range(0,5000)", "officials.count=3,0"], earlier, capsys,
             "officials.count=0")


def test_sweeper_params_of_a_scenario_file_are_checked(earlier, capsys, tmp_path):
    text = "# @package _global_\nhydra:\n  sweeper:\n    params:\n      officials.count: 3,0\n"
    mine = _scenario_dir(tmp_path, "swept", text)
    _refused(["-m", "--config-dir", str(mine), "scenario=swept"], earlier, capsys,
             "officials.count=0")
    (mine / "scenario" / "swept.yaml").write_text(text.replace("3,0", "3,4"))
    _passes(["-m", "--config-dir", str(mine), "scenario=swept",
             f"hydra.sweep.dir={earlier.parent}/s"], capsys)


SWEEPS = [
    (["-m", "officials.count=interval(1,2)"], "officials.count"),
    (["-m", "officials.count=3,4", "green_channel.mode=off,fast"], "green_channel.mode"),
    (["-m", "scenario=mmc,nope"], "scenario"),
    (["-m", "scenario=mmc,baseline_2025", "horizon_days=200", "end_date=null",
      "warmup_days=0,250"], "warmup_days=250"),
    (["-m", "officials.schedule=[{date:2025-07-01,count:3}],[{date:2025-07-01,count:0}]"],
     "officials.schedule"),
    (["-m", "arrivals.rate_per_day=1,nan,3"], "arrivals.rate_per_day"),
    (["-m", "officials.count=3,4", "officials.scale=1,100", "arrivals.rate_per_day=40,20000"],
     "the run's size"),
]


@pytest.mark.parametrize(("argv", "key"), SWEEPS, ids=[" ".join(a)[:60] for a, _ in SWEEPS])
def test_sweeps_refused(argv, key, earlier, capsys):
    _refused(argv, earlier, capsys, key)


# -- D. settings never checked, paths, folders, the Python API ---------------------------------
SETTINGS = [
    (["executor.timeout_min=-5"], "executor.timeout_min"),
    (["executor.cpus_per_task=-4"], "executor.cpus_per_task"),
    (["executor.mem_gb=nan"], "executor.mem_gb"),
    (["executor.folder=/proc/x"], "executor.folder"),
    (["objective_at_most=nan"], "objective_at_most"),
    (["objective_penalty=inf"], "objective_penalty"),
    (["officials.schedule=[{date:2027-01-01,count:3}]"], "officials.schedule.0.date"),
    (["calibration.ensemble_file=/etc/passwd"], "calibration.ensemble_file"),
    (["calibration.ensemble_file=/dev/zero"], "calibration.ensemble_file"),
    (["calibration.ensemble_file=/proc/self/environ"], "calibration.ensemble_file"),
    (["calibration.ensemble_file=calibration/baseline_2025.yaml"], "calibration.ensemble_file"),
]


@pytest.mark.parametrize(("argv", "key"), SETTINGS, ids=[" ".join(a)[:60] for a, _ in SETTINGS])
def test_settings_checked(argv, key, earlier, capsys):
    _refused(argv, earlier, capsys, key)


def test_slurm_without_a_cluster(earlier, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch
    _refused(["executor=slurm"], earlier, capsys, "executor")
    _refused(["-m", "hydra/launcher=slurm", "seed=1,2"], earlier, capsys, "hydra/launcher")


FOLDERS = [
    (["hydra.run.dir=${oc.env:SIM_TEST_NOPE}"], "hydra.run.dir"),
    (["hydra.run.dir=/proc/${name}"], "hydra.run.dir"),
    (["hydra.run.dir=/sys/x"], "hydra.run.dir"),
    (["hydra.run.dir=/tmp/$(whoami)"], "hydra.run.dir"),
    (["hydra.run.dir=/tmp/`whoami`"], "hydra.run.dir"),
    (["hydra.run.dir=${nope}"], "hydra.run.dir"),
    (["hydra.output_subdir=../../x"], "hydra.output_subdir"),
    (["-m", "hydra.sweep.dir=${oc.env:SIM_TEST_NOPE}", "seed=1,2"], "hydra.sweep.dir"),
    (["-m", "hydra.sweep.subdir=../../x", "seed=1,2"], "hydra.sweep.subdir"),
    (["-m", "hydra.sweep.subdir=/tmp/x", "seed=1,2"], "hydra.sweep.subdir"),
    (["-m", "hydra.sweep.subdir=${hydra:job.num}/../..", "seed=1,2"], "hydra.sweep.subdir"),
    (["-m", "output.question=../../../x,y"], "hydra.sweep.subdir"),
    (["-m", "output.question='$(whoami)',y"], "hydra.sweep.subdir"),
    (["-m", f"output.question={'q' * 300},y"], "hydra.sweep.subdir"),
]


@pytest.mark.parametrize(("argv", "key"), FOLDERS, ids=[" ".join(a)[:60] for a, _ in FOLDERS])
def test_output_folders_resolved_and_checked(argv, key, earlier, capsys):
    given = any(a.startswith(("hydra.run.dir", "hydra.sweep.dir")) for a in argv)
    _refused(argv, earlier, capsys, key, folder=not given)


def test_interpolated_folders_that_resolve_pass(earlier, capsys, monkeypatch):
    monkeypatch.setenv("SIM_TEST_DIR", str(earlier.parent / "env"))
    _passes(["hydra.run.dir=${oc.env:SIM_TEST_DIR}/${name}/${now:%H}"], capsys)
    _passes(["-m", f"hydra.sweep.dir={earlier.parent}/s", "hydra.sweep.subdir=${hydra:job.num}",
             "seed=1,2"], capsys)


def test_api_arguments_checked():
    with pytest.raises(ConfigError, match="progress"):
        sim.run(["scenario=mmc"], progress="yes")
    for bad in ([5], [None], ["officials.count=3", 5]):
        with pytest.raises(ConfigError, match=r"overrides\["):
            sim.run(bad)
        with pytest.raises(ConfigError, match=r"overrides\["):
            sim.load_config(bad)
    with pytest.raises(ConfigError, match="overrides"):
        sim.load_config("officials.count=3")
    with pytest.raises(ConfigError, match="config_name"):
        sim.load_config([], config_name="nope")


@pytest.mark.parametrize(("path", "value"), [
    ("executor.timeout_min", -5), ("executor.cpus_per_task", -4),
    ("executor.mem_gb", float("nan")), ("objective_at_most", float("nan")),
    ("executor.folder", "/proc/x"), ("calibration.ensemble_file", "/etc/passwd")])
def test_api_config_settings_checked(path, value):
    p = copy.deepcopy(_base())
    section, _, name = path.rpartition(".")
    setattr(p if not section else getattr(p, section), name, value)
    p.calibration.ensemble = path.startswith("calibration")
    with pytest.raises(ConfigError, match=path):
        sim.run(p)


# -- E. Hydra's own flags -----------------------------------------------------------------------
FLAGS = [
    (["--config-name", "nope"], "--config-name"),
    (["--config-path", "/x"], "--config-path"),
    (["--config-dir="], "--config-dir"),
    (["--config-dir", ""], "--config-dir"),
    (["hydra/launcher=nope"], "hydra/launcher"),
    (["-m", "hydra/sweeper=nope", "seed=1,2"], "hydra/sweeper"),
    (["--cfg", "nonsense"], "--cfg"),
    (["--info", "nonsense"], "--info"),
    (["--foo"], "--foo"),
    (["--exp", "x.pkl"], "--exp"),  # Hydra would read it as --experimental-rerun
    (["officials.count=3", "-m", "seed=1,2"], "seed"),  # Hydra refuses overrides on both sides
    (["-p", "officials"], "--package"),
    (["--run", "-m"], "--run"),
    (["--config-dir"], "command line"),
]


@pytest.mark.parametrize(("argv", "key"), FLAGS, ids=[" ".join(a)[:60] for a, _ in FLAGS])
def test_hydra_flags_checked(argv, key, earlier, capsys):
    _refused(argv, earlier, capsys, key, folder=False)


class _Touch:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):  # unpickling this creates the file: the code a pickle may hold
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("tool", ["config", "calibrate"])
def test_experimental_rerun_is_refused_without_unpickling(tool, earlier, capsys, tmp_path):
    from sim import calibrate

    marker = tmp_path / "unpickled"
    (tmp_path / "config.pickle").write_bytes(pickle.dumps(_Touch(marker)))
    _refused(["--experimental-rerun", str(tmp_path / "config.pickle")], earlier, capsys,
             "--experimental-rerun", config_name=tool,
             then=calibrate.check if tool == "calibrate" else None, folder=False)
    assert not marker.exists()


def test_print_modes_still_pass(capsys):
    guard(["--cfg", "job", "-p", "officials", "officials.count=3"])
    guard(["--info", "config"])
    guard(["--config-name", "config", "--cfg", "job"])
    assert capsys.readouterr().err == ""


# -- F. messages ----------------------------------------------------------------------------------
def test_timeline_change_of_one_destination_share(earlier, capsys):
    line = _refused([T % "classes.destination_shares.US:0.5"], earlier, capsys,
                    "classes.destination_shares")
    assert "sum to 1" in line and "unknown key" not in line and "no such" not in line
    _passes(["scenario=mmc", T.replace("2025-08-01", "2025-03-01")
             % "classes.destination_shares.US:0.2", f"hydra.run.dir={earlier.parent}/n"], capsys)


def test_control_characters_are_escaped(earlier, capsys):
    line = _refused(["officials.count=\x1b[31mred"], earlier, capsys, "officials.count")
    assert "\\x1b" in line
    _refused(["name=a\x1b]0;title\x07"], earlier, capsys, "name")
    err = ConfigError("k\x1b", "v\x9b\u2028", "allowed\x07")
    assert str(err).isprintable()
    assert len(str(ConfigError("name", "x" * 10**6, "too long"))) < 400


@pytest.mark.parametrize(("argv", "key", "words"), [
    (["green_channel.mode=fast"], "green_channel.mode", "off, priority, dedicated"),
    (["military.policy=[deny]"], "military.policy", "deny, hold, reject_at_intake"),
    (["arrivals.surges=[5]"], "arrivals.surges", "mapping"),
])
def test_choices_and_fields_are_listed(argv, key, words, earlier, capsys):
    assert words in _refused(argv, earlier, capsys, key)


@pytest.mark.parametrize(("text", "key"), [
    ("# @package _global_\nofficials: 3\n", "bad.yaml"),
    ("# @package _global_\n- a\n", "bad.yaml"),
    ("# @package _global_\ndefaults:\n  - nope\n", "bad.yaml"),
    ("# @package _global_\nofficials:\n  count: ${nope}\n", "officials.count"),
    ("# @package _global_\ngreen_channel:\n  mode: [a]\n", "green_channel.mode"),
])
def test_a_file_error_names_the_file_or_the_setting(text, key, earlier, capsys, tmp_path):
    mine = _scenario_dir(tmp_path, "bad", text)
    line = _refused(["--config-dir", str(mine), "scenario=bad"], earlier, capsys, key)
    assert not line.startswith("error: config")


def test_api_refuses_what_the_schema_cannot_hold():
    from omegaconf import OmegaConf

    with pytest.raises(ConfigError, match="cfg"):
        sim.run(OmegaConf.create({"name": "x"}))  # a DictConfig not composed on the schema
    p = copy.deepcopy(_base())
    p.timeline = {5: EventConfig(date="2025-03-01")}
    with pytest.raises(ConfigError, match="timeline.5"):
        sim.run(p)
    p = copy.deepcopy(_base())
    p.output.question = "q" * 10**6
    with pytest.raises(ConfigError, match="output.question"):
        sim.run(p)


def test_api_names_the_fields_of_a_mapping():
    p = copy.deepcopy(_base())
    p.arrivals.surges = [5]
    with pytest.raises(ConfigError, match="start_date, size, decay_days, elements"):
        sim.run(p)


# -- found by trying inputs as an attacker would -------------------------------------------------
FOUND = [
    (["review.mean_hours=1e308", "review.effort_multiplier=1e308"], "review.mean_hours"),
    (["intake.mean_working_days=1e300"], "intake.mean_working_days"),
    (["licence.term_days=1000000000"], "licence.term_days"),
    (["seed=9223372036854775808"], "seed"),
    (["seed=1" + "0" * 5000], "seed"),
    (["-m", "scenario=glob(mmc*)", "officials.count=0"], "officials.count"),
    (["hydra.mode=MULTIRUN", "seed=1,-2"], "seed=-2"),
    (["--cfg", "job", "-p", "nope"], "--package"),
    (["--config-dir", "/proc"], "--config-dir"),
    ([T % "officials:{count:3}"], "timeline.x.changes.officials"),
    (["-m", "seed=1,2", "hydra.sweep.subdir=x"], "two jobs would write"),
    (["-m", "seed=1,2", "hydra.job.config.override_dirname.exclude_keys=[seed]"],
     "two jobs would write"),
    (["-m", "seed=1,2", "hydra.sweeper.max_batch_size=0"], "hydra.sweeper.max_batch_size"),
    (["hydra.job_logging.root.level=NOPE"], "hydra.job_logging.root.level"),
    (["output.figure_formats=[png,png]"], "output.figure_formats"),
    (["-m", "name=" + ",".join(f"n{i}" for i in range(3000))], "the sweep"),
    (["-m", "name=" + ",".join(f"n{i}" for i in range(1999)) + ",zz/x"], "name='zz/x'"),
]


@pytest.mark.parametrize(("argv", "key"), FOUND, ids=[" ".join(a)[:60] for a, _ in FOUND])
def test_found_by_an_attacker(argv, key, earlier, capsys):
    given = "hydra.mode=MULTIRUN" in argv
    line = _refused([*argv, *([f"hydra.sweep.dir={earlier}"] if given else [])], earlier,
                    capsys, key)
    assert len(line) < 600


@pytest.mark.parametrize(("text", "words"), [
    ("# @package _global_\na: &a [*a]\n", "recursive alias"),
    ("# @package _global_\nname: !!python/object/apply:os.system ['true']\n", "x.yaml:2"),
    ("# @package _global_\nhydra:\n  job:\n    env_set:\n      LD_PRELOAD: x.so\n", "env_set"),
    ("# @package _global_\ndefaults:\n  - x\n  - _self_\n", "loop"),
    ("# @package _global_\nofficials:\n  \"c\x1bount\": 3\n", "control characters"),
])
def test_found_in_scenario_files(text, words, earlier, capsys, tmp_path):
    mine = _scenario_dir(tmp_path, "x", text)
    assert words in _refused(["--config-dir", str(mine), "scenario=x"], earlier, capsys, "")


def test_valid_forms_found_on_the_way_pass(earlier, capsys):
    _passes(["-cp", "../configs", "--cfg", "job"], capsys)  # read from the app's folder
    _passes(["hydra.mode=MULTIRUN", "seed=1,2", f"hydra.sweep.dir={earlier.parent}/s"], capsys)
    _passes(["-m", "scenario=glob(mmc*)", f"hydra.sweep.dir={earlier.parent}/s"], capsys)
    _passes(["--shell-completion", "install=bash"], capsys)
    _passes([f"hydra.run.dir=/dev/shm/sim_test_{os.getpid()}"], capsys)


# -- the real entry point, end to end ---------------------------------------------------------
def _run(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sim", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    return proc, time.monotonic() - start


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ("officials.count=1000000000000",),
    ("arrivals.rate_per_day=1e7",),
    ("-m", "scenario=mmc", "horizon_days=100,300", "warmup_days=150,0"),
    ("-m", "seed=range(0,5000)", "officials.count=3,0"),
    ("--experimental-rerun", "config.pickle"),
    ("hydra.run.dir=${oc.env:SIM_TEST_NOPE}",),
    ("--config-dir", "mine", "scenario=bomb"),
], ids=lambda a: " ".join(a)[:50])
def test_entry_point_refuses_in_one_line(args, earlier):
    mine = _scenario_dir(earlier.parent, "bomb", BOMB)
    (earlier.parent / "config.pickle").write_bytes(pickle.dumps(_Touch(earlier.parent / "u")))
    before = _snapshot(earlier.parent)
    key = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
    given = any(a.startswith(key) for a in args)
    proc, seconds = _run(earlier.parent, *args, *([] if given else [f"{key}={earlier}"]))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: ")
    assert _snapshot(earlier.parent) == before and mine.is_dir()
    assert seconds < 30  # Python and Hydra start in a few seconds; the check in fewer


@pytest.mark.slow
def test_entry_point_runs_valid_input(tmp_path):
    proc, _ = _run(tmp_path, "scenario=mmc", "horizon_days=30", "warmup_days=0",
                   "output.plots=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "summary.json").is_file()


@pytest.mark.slow
def test_entry_point_runs_a_valid_sweep(tmp_path):
    proc, _ = _run(tmp_path, "-m", "officials.count=3,4", "scenario=mmc", "horizon_days=10",
                   "warmup_days=0", "output.plots=false", f"hydra.sweep.dir={tmp_path / 's'}")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "s").glob("*/summary.json"))) == 2
