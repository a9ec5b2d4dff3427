"""What ran is what is recorded, in the small: the documented Optuna example optimises
something its lever moves and keeps one folder per trial; intervals stay inside their
figure's range; submitit writes into no folder of the caller's; printouts say what they mean.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _sim(args: list[str], cwd: Path, module: str = "sim", env: dict[str, str] | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env={**os.environ, "MPLBACKEND": "Agg", **(env or {})})


# -- the Optuna example of docs/answers.md ------------------------------------------------------
def optuna_example() -> list[str]:
    """The overrides of the documented Optuna sweep (its code block, continuation lines
    joined), without ``python -m sim``."""
    text = (ROOT / "docs" / "answers.md").read_text()
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        if "hydra/sweeper=optuna" in block:
            lines = [line for line in block.splitlines() if not line.startswith("#")]
            words = shlex.split(" ".join(lines).replace("\\ ", " "))
            return words[words.index("sim") + 1:]
    raise AssertionError("docs/answers.md has no Optuna example")


def _with(args: list[str], **values: str) -> list[str]:
    """``args`` with each ``key=value`` replaced (keys given with dots as __)."""
    values = {k.replace("__", "."): v for k, v in values.items()}
    out = [a for a in args if a.split("=", 1)[0] not in values]
    return out + [f"{k}={v}" for k, v in values.items()]


@pytest.mark.slow
def test_documented_optuna_example_optimises_its_lever_one_folder_per_trial(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from sim import keys

    example = optuna_example()
    swept = [a.split("=", 1)[0] for a in example if "range(" in a]
    assert len(swept) == 1, example
    lever = swept[0]
    objective = next(a.split("=", 1)[1] for a in example if a.startswith("objective="))
    # the example shrunk: 4 trials over two values of its lever (so that a value comes back),
    # a short horizon, one replication
    args = _with(example, hydra__sweeper__n_trials="4", hydra__sweeper__sampler__seed="1",
                 end_date="2025-06-30", replications="1", output__plots="false",
                 **{lever.replace(".", "__"): "range(60,80,20)"})
    out = tmp_path / "sweep"
    done = _sim(["-m", *args, f"hydra.sweep.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    folders = [f for f in out.iterdir() if (f / "summary.json").is_file()]
    assert len(folders) == 4, sorted(f.name for f in out.iterdir())  # n trials, n folders
    levers, figures = [], []
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        levers.append(keys.lookup(summary, f"config.{lever}"))
        figures.append(keys.lookup(summary, objective))
    assert len(set(levers)) == 2, levers  # both values ran: the check below means something
    # the objective's figure moves with the swept lever (not a constant the optimiser cannot
    # change, whose "best" is merely the first trial)
    by_lever = {}
    for value, figure in zip(levers, figures, strict=True):
        by_lever.setdefault(value, set()).add(figure)
    assert all(len(v) == 1 for v in by_lever.values()), by_lever
    assert len({next(iter(v)) for v in by_lever.values()}) == 2, by_lever
    # the sweep's own lines only: none of the plugins' set-up
    for noise in ("setup plugin", "Study name:", "A new study created"):
        assert noise not in done.stdout + done.stderr, noise
    assert "Best value" in done.stdout + done.stderr


# -- the solver's intervals stay inside their figure's range ----------------------------------
def test_solver_intervals_within_the_figures_range(tmp_path):
    """A count near 0 has a t interval reaching below 0 (three replications at 0, one at
    4,000: -2,182 .. 4,182); solve.json, evaluations.csv and report.html cut it at 0, as
    sweep_summary.csv and every run's tables do (sim.stats.within_range)."""
    import numpy as np
    import pandas as pd

    from sim import solve as solve_cli
    from sim.config import load_config, to_params
    from sim.studies import solver

    params = to_params(load_config(["scenario=mmc", "replications=4"]))
    settings = solver.Settings(lever="officials.count", target="waiting_end", at_most=10,
                               probability=0.75, low=4, high=5)
    figure = np.array([0.0, 0.0, 0.0, 4000.0])
    evaluations = {v: solver.Evaluation(v, figure, figure <= 10) for v in (4.0, 5.0)}
    solution = solver.Solution(settings, params, "solved", "solved", 4.0, evaluations,
                               solver.monotone_check(evaluations))
    doc = solve_cli.document(solution, ["scenario=mmc"], "python -m sim.solve ...")
    out = tmp_path / "solve"
    solve_cli.write(out, solution, doc)
    for row in json.loads((out / "solve.json").read_text())["evaluations"]:
        assert row["ci95"][0] == 0.0 and row["ci95"][1] > 4000, row
    rows = pd.read_csv(out / "evaluations.csv")
    assert (rows["ci95_low"] == 0).all() and (rows["ci95_high"] > 4000).all()
    page = (out / "report.html").read_text()
    values_run = page.split("<h2>Values run</h2>", 1)[1].split("<img", 1)[0]
    assert not re.search(r">\s*[-−]\s*[\d,.]+\s*<", values_run), values_run


# -- submitit writes into no folder of the caller's --------------------------------------------
@pytest.mark.slow
def test_submitit_local_writes_nothing_into_the_current_folder(tmp_path):
    """executor=submitit_local keeps its pickles and logs inside the run's own folder (and
    removes them when the jobs succeed): the folder the command is started from stays empty."""
    here, run = tmp_path / "here", tmp_path / "run"
    here.mkdir()
    done = _sim(["executor=submitit_local", "replications=2", "jobs=2", "end_date=2025-05-31",
                 "output.plots=false", f"hydra.run.dir={run}"], here)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(here.iterdir()) == []
    assert (run / "summary.json").is_file() and not list(run.rglob(".submitit"))


def test_submitit_outside_a_run_writes_nothing_into_the_current_folder(tmp_path, monkeypatch):
    """Called from Python (a notebook) with the default executor.folder: a temporary folder,
    removed once the jobs succeed; nothing in the current folder."""
    from sim.executor import jobs_root, parallel_map
    from sim.params import ExecutorConfig, ExecutorKind

    monkeypatch.chdir(tmp_path)
    ex = ExecutorConfig(kind=ExecutorKind.submitit_local)
    root, own = jobs_root(ex)
    root.rmdir()
    assert own and not root.is_relative_to(tmp_path) and not root.is_relative_to(ROOT)
    assert parallel_map(abs, [-1, 2, -3], jobs=2, executor=ex) == [1, 2, 3]
    assert list(tmp_path.iterdir()) == []


# -- a Slurm submission the cluster refuses: one line, and advice that works -------------------
def _fake_slurm(folder: Path, partitions: str | None = None) -> str:
    """A PATH whose sbatch refuses every job as Slurm does an unknown partition (srun: submitit
    looks for it; sinfo: lists ``partitions`` when given)."""
    folder.mkdir()
    scripts = {"sbatch": "echo 'sbatch: error: invalid partition specified: nosuch' >&2\n"
                         "echo 'sbatch: error: Batch job submission failed: Invalid partition "
                         "name specified' >&2\nexit 1\n",
               "srun": "exit 0\n"}
    if partitions is not None:
        scripts["sinfo"] = f"printf '{partitions}'\n"
    for name, body in scripts.items():
        (folder / name).write_text("#!/bin/sh\n" + body)
        (folder / name).chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_slurm_refusal_is_one_line_naming_the_setting(tmp_path, monkeypatch, capsys):
    from sim.executor import ExecutorError, parallel_map
    from sim.params import ExecutorConfig, ExecutorKind

    monkeypatch.setenv("PATH", _fake_slurm(tmp_path / "bin"))
    ex = ExecutorConfig(kind=ExecutorKind.slurm, partition="nosuch", folder=str(tmp_path / "ex"))
    with pytest.raises(ExecutorError) as refused:
        parallel_map(abs, [1, -2, 3], jobs=2, executor=ex)
    text = str(refused.value)
    assert "\n" not in text and text.startswith("executor.partition=nosuch: "), text
    assert "invalid partition" in text and refused.value.__cause__ is None
    assert capsys.readouterr().err == ""  # sbatch's own lines are in the one line, not echoed
    assert list((tmp_path / "ex").iterdir()) == []


@pytest.mark.slow
def test_refused_slurm_setting_left_out_of_the_resume_advice(tmp_path):
    out = tmp_path / "sweep"
    done = _sim(["-m", "executor=slurm", "executor.partition=nosuch", "officials.count=3,5",
                 "replications=2", "jobs=2", "end_date=2025-05-31", "output.plots=false",
                 f"hydra.sweep.dir={out}"], tmp_path,
                env={"PATH": _fake_slurm(tmp_path / "bin")})
    assert done.returncode == 1, done.stderr[-2000:]
    text = done.stdout + done.stderr
    assert "Traceback" not in text and "sbatch: error" not in text, text
    advice = [line for line in done.stdout.splitlines() if "re-run the unfinished" in line]
    assert len(advice) == 1, done.stdout
    command = advice[0].split(": ", 1)[1]
    assert "executor.partition=nosuch" not in command and "resume=true" in command
    assert "officials.count=3,5" in command and "executor=slurm" in command
    errors = sorted(out.rglob("error.txt"))
    assert len(errors) == 2
    for error in errors:
        lines = error.read_text().strip().splitlines()
        assert len(lines) == 1 and "executor.partition=nosuch: " in lines[0], lines


def test_unknown_slurm_partition_of_the_launcher_refused_before_anything(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = tmp_path / "sweep"
    done = _sim(["-m", "hydra/launcher=slurm", "hydra.launcher.partition=nosuch",
                 "officials.count=3,5", f"hydra.sweep.dir={out}"], tmp_path,
                env={"PATH": _fake_slurm(tmp_path / "bin", partitions="cpu*\\ngpu\\n")})
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: hydra.launcher.partition="), lines
    assert "nosuch" in lines[0] and "cpu, gpu" in lines[0]
    assert not out.exists()


@pytest.mark.slow
def test_single_run_refused_by_slurm_is_one_line(tmp_path):
    out = tmp_path / "run"
    done = _sim(["executor=slurm", "executor.partition=nosuch", "replications=2", "jobs=2",
                 "end_date=2025-05-31", "output.plots=false", f"hydra.run.dir={out}"], tmp_path,
                env={"PATH": _fake_slurm(tmp_path / "bin")})
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: executor.partition=nosuch: "), lines
    assert not (out / "summary.json").exists()


def test_unknown_slurm_partition_of_the_executor_refused_before_anything(tmp_path):
    out = tmp_path / "run"
    done = _sim(["executor=slurm", "executor.partition=nosuch", f"hydra.run.dir={out}"],
                tmp_path, env={"PATH": _fake_slurm(tmp_path / "bin", partitions="cpu*\\ngpu\\n")})
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: executor.partition='nosuch': "), lines
    assert "cpu, gpu" in lines[0] and not out.exists()


# -- printouts that say what they mean -----------------------------------------------------------
def test_help_names_the_tool_and_only_its_groups(tmp_path):
    done = _sim(["--help"], tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    assert text.startswith("python -m sim: "), text[:200]
    assert "__main__" not in text and "powered by Hydra" not in text
    groups_part = text.split("== Configuration groups ==", 1)[1].split("== Config ==", 1)[0]
    listed: dict[str, list[str]] = {}
    group = None
    for line in groups_part.splitlines()[1:]:
        head, sep, rest = line.partition(": ")
        if sep and not line.startswith(" "):
            group, line = head, rest
        if group is not None and line.strip():
            listed.setdefault(group, []).extend(
                o.replace("(default)", "").strip() for o in line.split(",") if o.strip())
    configs = ROOT / "configs"
    assert listed == {g: sorted(p.stem for p in (configs / g).glob("*.yaml"))
                      for g in ("scenario", "executor")}, listed
    assert "\nname: baseline_2025\n" in text  # the values that run follow


# -- one way to name the output folder -----------------------------------------------------------
def test_compare_takes_the_output_folder_as_every_tool_does():
    from sim.compare import parse
    from sim.validation import ConfigError

    args, setting = parse(["a", "b", "hydra.run.dir=out/x", "--labels", "A", "B"])
    assert (args.runs, args.out, args.labels, setting) == (["a", "b"], "out/x", ["A", "B"],
                                                           "hydra.run.dir")
    args, setting = parse(["a", "b", "--out", "out/y"])  # the older spelling, kept
    assert (args.out, setting) == ("out/y", "--out")
    with pytest.raises(ConfigError, match="hydra.run.dir"):
        parse(["a", "b", "hydra.run.dir=out/x", "--out", "out/y"])


@pytest.mark.slow
def test_compare_writes_into_hydra_run_dir(tmp_path):
    runs = []
    for name, extra in (("a", []), ("b", ["officials.count=6"])):
        runs.append(tmp_path / name)
        done = _sim(["scenario=mmc", "horizon_days=90", "warmup_days=0", "replications=2",
                     "output.plots=false", *extra, f"hydra.run.dir={runs[-1]}"], tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "a_vs_b"
    done = _sim([*map(str, runs), f"hydra.run.dir={out}"], tmp_path, module="sim.compare")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "compare.csv").is_file() and (out / "report.html").is_file()


def test_calibration_printout_says_one_sided_readings_in_words():
    from sim.studies.calibration import reading_line

    row = {"reading": "backlog_falling_0627", "chosen": True, "low": None, "high": 1.0,
           "mean": 0.995, "predictive_low": 0.968, "predictive_high": 1.02,
           "share_inside": 0.5}
    line = reading_line(row)
    assert line.startswith("backlog_falling_0627: ≤ 1;"), line
    assert "None" not in line and "[" not in line
    lower = reading_line({**row, "low": 0.8, "high": None})
    assert lower.startswith("backlog_falling_0627: ≥ 0.8;"), lower
    both = reading_line({**row, "low": 2000.0, "high": 29999.0, "mean": 16400.0,
                         "predictive_low": 14300.0, "predictive_high": 18500.0})
    assert "2,000 to 29,999; mean 16,400, 95 % predictive 14,300..18,500, 50% inside" in both
    assert "e+" not in both


def test_bench_mmc_says_faster_or_slower_as_it_is():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_mmc", ROOT / "benchmarks" /
                                                  "bench_mmc.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.speed_words(0.49, 1.0) == "2.0x faster"  # half the time per application
    assert bench.speed_words(1.3, 1.0) == "1.3x slower"
    assert bench.speed_words(1.0, 1.0) == "as fast"


def test_sensitivity_of_a_constant_output_is_undefined_with_a_reason(monkeypatch, tmp_path):
    """The smoke study's clearance time is undefined in every run (the backlog never clears
    before the horizon, counted as the run's length): the same value everywhere, so no index
    exists. It is reported as such, without SALib's 'invalid value encountered in divide' and
    without Morris' zeros passed off as "no effect"."""
    import warnings

    import numpy as np
    import yaml

    from sim.config import load_config, to_params
    from sim.studies import sensitivity as sens

    raw = yaml.safe_load((ROOT / "configs" / "sensitivity" / "smoke.yaml").read_text())
    s = sens.settings_from(raw)
    base = to_params(load_config(["end_date=2025-06-30"]))

    def run_points(base, s, units, label, log=None):
        varied = 1000 + 100 * units[:, 0] + 10 * units[:, 1]  # moves with two factors
        y = np.column_stack([np.full(len(units), 88.0), varied])
        undefined = np.column_stack([np.ones(len(units), bool), np.zeros(len(units), bool)])
        return y, undefined, [{} for _ in units]

    monkeypatch.setattr(sens, "run_points", run_points)
    said: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SALib's RuntimeWarning would fail the test
        study = sens.run_study(s, base, log=said.append)
    constant, varied = (o.key for o in s.outputs)
    for table in (study.morris, study.sobol):
        assert set(table["output"]) == {varied}
    for method in ("morris", "sobol"):
        assert "undefined in every run" in study.undefined[(method, constant)]
    assert any(constant in line and "no morris index" in line for line in said), said
    report = sens.report_text(study)
    assert "No Morris index: undefined in every run (counted as the run's length)" in report
    assert "No Sobol index" in report
    sens.sensitivity_figure(study)  # draws the reason where the bars would be
