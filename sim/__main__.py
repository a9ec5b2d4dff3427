"""Command line: ``python -m sim [scenario=...] [key=value ...]`` (a Hydra application)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sim.command_line import guard
from sim.config import ConfigError, keep_overrides, register, to_params

register()


def _parallel_launcher() -> bool:
    """Whether this job runs under a launcher that already runs jobs in parallel."""
    hc = HydraConfig.get()
    target = str(hc.launcher.get("_target_", "")) if hc.launcher else ""
    return hc.mode == RunMode.MULTIRUN and "BasicLauncher" not in target


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from sim.outputs import is_complete, write_run
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
        return
    (out_dir / "error.txt").unlink(missing_ok=True)
    # One level of parallelism at a time: parallel sweep jobs run their replications serially.
    jobs = 1 if _parallel_launcher() else params.jobs
    try:
        results = replicate(params, jobs=jobs)
        write_run(out_dir, results)
    except Exception as err:
        (out_dir / "error.txt").write_text(f"error: {type(err).__name__}: {err}\n")
        raise
    s = results.summary
    t = s["totals"]
    reps = f", {results.n} replications (means)" if results.n > 1 else ""
    print(f"scenario {params.name}: {s['start_date']} to {s['end_date']}, seed {params.seed}{reps}")
    print(f"  arrived {t['arrivals']:.0f}, approved {t['approved']:.0f}, denied {t['denied']:.0f}, "
          f"withdrawn {t['withdrawn']:.0f}, pending at end {s['pending_end']:.0f}")
    cleared = s["clearance"].get("clearance_date") or "not cleared"
    print(f"  peak pending {s['peak_pending']:.0f} on {s['peak_pending_date']}; backlog cleared: "
          f"{cleared}; mean wait {s['mean_wait_days']:.2f} days (p90 {s['p90_wait_days']:.2f}); "
          f"utilisation {s['utilisation']:.2f}")
    if s["waiting_end"]:
        print(f"  still waiting for a first review at the end: {s['waiting_end']:.0f} (mean "
              f"{s['mean_age_waiting_end_days']:.1f} days so far; mean wait with them "
              f"{s['mean_wait_days_with_waiting']:.2f} days)")
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    guard(sys.argv[1:])  # one line and exit 2 for bad input, before Hydra writes anything
    main()
