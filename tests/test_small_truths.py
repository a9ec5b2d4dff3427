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
