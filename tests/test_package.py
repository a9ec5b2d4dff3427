"""The package as users get it: a wheel built from the repository, installed in a fresh venv,
runs a model and a solve from a folder outside the repository, and writes nothing into it.

The venv sees this environment's packages (``--system-site-packages``), so the dependencies
need no download; the wheel goes in with ``--no-deps``. The editable install of the repository
is hidden from the venv by running Python in isolated mode (``-I``: no cwd on sys.path and no
PYTHONPATH) and by the wheel's own ``sim`` coming first (``pip install --force-reinstall``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MMC = ["scenario=mmc", "warmup_days=0", "output.plots=false"]


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_the_wheel_runs_from_outside_the_repository(tmp_path):
    before = git_status()
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        tmp_path, timeout=600)
    (wheel,) = wheels.glob("*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp_path)
    python = str(venv / "bin" / "python")
    # --force-reinstall: this environment's editable install must not stand in for the wheel
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        tmp_path)

    where = run([python, "-I", "-c", "import sim.params as p; print(p.INSTALLED, p.CONFIG_DIR)"],
                tmp_path).stdout
    assert where.startswith("True ") and str(venv) in where, where  # the wheel's, not the repo's

    run([python, "-I", "-m", "sim", *MMC, "horizon_days=60", f"hydra.run.dir={tmp_path / 'run'}"],
        tmp_path)
    assert (tmp_path / "run" / "summary.json").is_file()
    run([python, "-I", "-m", "sim.solve", "solve.lever=officials.count",
         "solve.target=mean_wait_days", "solve.at_most=0.5", "solve.probability=0.6",
         "solve.low=5", "solve.high=8", "solve.check_points=0", *MMC, "horizon_days=120",
         "replications=3", f"hydra.run.dir={tmp_path / 'solve'}"], tmp_path)
    assert (tmp_path / "solve" / "solve.json").is_file()
    # calibrate.install would write into site-packages: refused in one line
    refused = subprocess.run([python, "-I", "-m", "sim.calibrate", "calibrate.install=true",
                              f"hydra.run.dir={tmp_path / 'cal'}"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "calibrate.install" in refused.stderr, refused.stderr
    assert git_status() == before  # nothing written into the source tree


def test_ci_and_the_readme_install_the_locked_versions():
    """The lock (constraints.txt) pins every dependency the package and its test extra name,
    and the README's test command, which CI runs verbatim (.ci/run), installs with it."""
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    pinned = {norm(line.split("==")[0]) for line in (REPO / "constraints.txt").read_text()
              .splitlines() if "==" in line and not line.startswith("#")}
    names = {norm(re.split(r"[<>=!~;\[ ]", w, maxsplit=1)[0]) for w in wanted}
    assert names <= pinned, sorted(names - pinned)
    readme = (REPO / "README.md").read_text()
    command = re.search(r"run the whole test suite:\n\n```\n(.+)\n```", readme).group(1)
    assert "-c constraints.txt" in command and "python -m pytest" in command
    assert (REPO / ".ci" / "run").read_text().strip().splitlines()[-1] == command
