"""Command line: ``python -m sim [scenario=...] [key=value ...]`` (a Hydra application)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sim import objective, run_folder
from sim.command_line import start_app
from sim.config import CONFIG_DIR, ConfigError, keep_overrides, register, to_params
from sim.executor import ExecutorError
from sim.spill import SpillError

register()

# Settings that change neither a run's numbers nor its files: a resumed run may differ in these.
_RESUME_FREE = ("resume", "jobs", "executor", "objective", "objective_sense",
                "objective_constraint", "objective_at_least", "objective_at_most",
                "objective_penalty")


def _parallel_launcher() -> bool:
    """Whether this job runs under a launcher that already runs jobs in parallel."""
    hc = HydraConfig.get()
    target = str(hc.launcher.get("_target_", "")) if hc.launcher else ""
    return hc.mode == RunMode.MULTIRUN and "BasicLauncher" not in target


def resume_differences(recorded: dict, params) -> list[str]:
    """The settings (dotted keys) in which ``params`` differs from a complete run's recorded
    config (summary.json's ``config``), leaving out those a resumed run may change."""
    from sim.outputs import _clean

    current = json.loads(json.dumps(_clean(dataclasses.asdict(params))))
    differ: list[str] = []

    def kept(config: dict) -> list:  # calibration.keep lists the keys the user set
        keep = (config.get("calibration") or {}).get("keep") or []
        return sorted(k for k in keep if str(k).split(".")[0] not in _RESUME_FREE)

    def walk(a, b, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                name = f"{prefix}{key}"
                if name == "calibration.keep":
                    walk(kept(recorded), kept(current), name + ".")
                elif name not in _RESUME_FREE:
                    walk(a.get(key), b.get(key), name + ".")
        elif a != b:
            differ.append(prefix.rstrip("."))

    walk(recorded, current, "")
    return differ


def _skip_resumed(out_dir: Path, params) -> dict | None:
    """summary.json of a complete folder that ``resume=true`` may skip; ConfigError when the
    folder's results were made with other settings (they would be kept under a record that
    misdescribes them)."""
    from sim.outputs import is_complete

    if not (params.resume and is_complete(out_dir)):
        return None
    summary = json.loads((out_dir / "summary.json").read_text())
    recorded = summary.get("config") if isinstance(summary, dict) else None
    differ = resume_differences(recorded, params) if isinstance(recorded, dict) else ["config"]
    if differ:
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5
                                         else "")
        raise ConfigError("resume", True, f"{out_dir} holds results made with other settings "
                          f"({shown}); rerun without resume=true to replace them, or give "
                          "another folder")
    return summary


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One run (or one job of a sweep); returns the objective when ``objective`` is set."""
    from sim.command_line import app_run
    from sim.outputs import summary_document, write_run
    from sim.runner import replicate

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        run_folder.claim(out_dir, "run", "hydra.sweep.subdir" if multirun else "hydra.run.dir")
        params = to_params(keep_overrides(cfg, HydraConfig.get().overrides.task))
        resumed = _skip_resumed(out_dir, params)
    except ConfigError as err:
        if multirun:  # let Hydra mark the job failed and carry on with the sweep
            if run_folder.holds(out_dir):  # a folder not ours (held by another) gets nothing
                _record_error(out_dir, f"error: {err}")
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if resumed is not None:
        run_folder.discard(out_dir)  # the record of this attempt: the folder's own stays
        print(f"resume: {out_dir} is complete, skipped")
        return objective.value(params, resumed)
    # One level of parallelism at a time: parallel sweep jobs run their replications serially.
    parallel = _parallel_launcher()
    jobs = 1 if parallel else params.jobs
    try:
        # parallel jobs' bars would draw over each other on one terminal line
        results = replicate(params, jobs=jobs, progress=False if parallel else None)
        write_run(out_dir, results, app_run("python -m sim")[1])
    except OSError as err:  # a full disk, a folder gone: the earlier result is intact
        run_folder.discard(out_dir)
        what = err.strerror if isinstance(err, SpillError) else \
            f"could not write {out_dir} ({err.strerror or err})"
        line = f"error: {what}; nothing in {out_dir} changed (an earlier result stays as it was)"
        if multirun:
            _record_error(out_dir, line)
            raise RuntimeError(line) from None
        print(line, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        run_folder.discard(out_dir)
        raise
    except ExecutorError as err:  # the cluster refused the jobs: its one line, not a traceback
        if multirun:  # the job's error.txt says it as every failed job's does (sim.studies.sweeps)
            _record_error(out_dir, f"error: {type(err).__name__}: {err}")
            raise
        run_folder.discard(out_dir)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        _record_error(out_dir, f"error: {type(err).__name__}: {err}")
        raise
    from sim.reports import summary_lines

    for line in summary_lines(results.summary, params.seed, results.daily):
        print(line)
    print(f"report: open {out_dir / 'report.html'} in a browser")
    print(f"wrote {out_dir}")
    return objective.value(params, summary_document(params, results))


def _record_error(out_dir: Path, line: str) -> None:
    """error.txt in a folder this run owns: what a sweep's collection reports for the job. A
    folder that cannot take it (full, gone) keeps what it has."""
    from sim.files import atomic_write

    try:
        atomic_write(out_dir / "error.txt", lambda tmp: tmp.write_text(line + "\n"))
    except OSError:
        pass


def _is_sweep(argv: list[str]) -> bool:
    return any(a in ("-m", "--multirun") for a in argv)


def _interrupted(argv: list[str]) -> str:
    """The one line for Ctrl-C: what stopped, and how to go on."""
    if _is_sweep(argv):
        return ("interrupted: the sweep stopped; finished jobs are kept; to finish it, rerun "
                "the same command with resume=true")
    return ("interrupted: the run stopped before its results were complete; the output "
            "folder keeps any earlier result as it was; rerun the same command to run it again")


if __name__ == "__main__":
    # one line and exit 2 for bad input, before Hydra writes anything; then the output folder
    # is checked, fixed (its ${now:...} resolved once) and held by this process
    start_app("config", None, then=lambda cfg: objective.check(to_params(cfg)))
    if _is_sweep(sys.argv[1:]) and not any(
            a.startswith(("hydra/sweeper=", "hydra.sweeper.")) for a in sys.argv[1:]):
        # Hydra's basic sweeper composes every job before the first starts: in batches of 20
        # a 5,000-point sweep starts its first job in seconds, not after minutes of silence
        sys.argv.append("hydra.sweeper.max_batch_size=20")
    # Hydra's own errors are raised to here (not printed as a trimmed traceback by Hydra), so
    # that a full disk or Ctrl-C while Hydra writes its record is one line too
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        run_folder.run_interruptible(main, _interrupted(sys.argv[1:]))
    except OSError as err:
        run_folder.discard_all()
        print(f"error: could not write the output folder ({err.strerror or err}"
              f"{': ' + str(err.filename) if err.filename else ''}); an earlier result there "
              "stays as it was", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        if not _is_sweep(sys.argv[1:]):
            raise  # a single run's unexpected failure: the whole traceback, to report it
        # a sweep's failed job: its folder's error.txt and the sweep's report say why
        print(f"error: the sweep finished with a failed job ({' '.join(str(err).split())}); "
              "each job's folder has its error.txt, the sweep folder its report.html",
              file=sys.stderr)
        sys.exit(1)
