"""Command line: ``python -m sim [scenario=...] [key=value ...]`` (a Hydra application)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sim import objective
from sim.command_line import guard
from sim.config import ConfigError, keep_overrides, register, to_params

register()


def _parallel_launcher() -> bool:
    """Whether this job runs under a launcher that already runs jobs in parallel."""
    hc = HydraConfig.get()
    target = str(hc.launcher.get("_target_", "")) if hc.launcher else ""
    return hc.mode == RunMode.MULTIRUN and "BasicLauncher" not in target


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One run (or one job of a sweep); returns the objective when ``objective`` is set."""
    from sim.command_line import app_run
    from sim.outputs import is_complete, summary_document, write_run
    from sim.runner import replicate

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        params = to_params(keep_overrides(cfg, HydraConfig.get().overrides.task))
    except ConfigError as err:
        if multirun:  # let Hydra mark the job failed and carry on with the sweep
            (out_dir / "error.txt").write_text(f"error: {err}\n")
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if params.resume and is_complete(out_dir):
        print(f"resume: {out_dir} is complete, skipped")
        return objective.value(params, json.loads((out_dir / "summary.json").read_text()))
    (out_dir / "error.txt").unlink(missing_ok=True)
    # One level of parallelism at a time: parallel sweep jobs run their replications serially.
    parallel = _parallel_launcher()
    jobs = 1 if parallel else params.jobs
    try:
        # parallel jobs' bars would draw over each other on one terminal line
        results = replicate(params, jobs=jobs, progress=False if parallel else None)
        write_run(out_dir, results, app_run("python -m sim")[1])
    except Exception as err:
        (out_dir / "error.txt").write_text(f"error: {type(err).__name__}: {err}\n")
        raise
    from sim.reports import summary_lines

    for line in summary_lines(results.summary, params.seed):
        print(line)
    print(f"report: open {out_dir / 'report.html'} in a browser")
    print(f"wrote {out_dir}")
    return objective.value(params, summary_document(params, results))


if __name__ == "__main__":
    # one line and exit 2 for bad input, before Hydra writes anything
    guard(sys.argv[1:], then=lambda cfg: objective.check(to_params(cfg)))
    main()
