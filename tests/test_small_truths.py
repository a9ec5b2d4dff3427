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
