"""Command line: ``python -m sim.calibrate [calibrate=smoke] [calibrate.key=value ...]
[executor=local|submitit_local|slurm]``.

Composes the scenario exactly as ``python -m sim`` does, hands its parameters to the study
(:mod:`sim.studies.calibration`), and writes into its run folder ``report.md``, ``points.csv``,
the representative point ``<scenario>.yaml`` and ``ensemble_<scenario>.yaml``. With
``calibrate.install=true`` the ensemble and the report also go to ``configs/calibrated/``, and
the representative point into the scenario file itself, on the lines that set each value;
a recipe other than configs/calibrate/default.yaml's (``calibrate=smoke``, fewer points, ...)
installs over the committed calibration only with ``calibrate.install_over_committed=true``.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from sim import run_folder
from sim.command_line import app_run, log_line, start_app
from sim.config import CONFIG_DIR, ConfigError, compose_scenario, executor_from, register

register()


def settings_from(cfg: DictConfig):
    """Checked settings from the composed ``calibrate`` node: unknown keys, values of the wrong
    type or out of bounds, and an install over the committed calibration not asked for are
    refused in one line (:func:`sim.studies.calibration.check`)."""
    from sim.studies import calibration
    from sim.studies import history_matching as hm

    raw = dict(OmegaConf.to_container(cfg.calibrate, resolve=True))
    if "match" in raw:
        raw["match"] = hm.settings_of(hm.Settings, raw["match"], "calibrate.match")
    if "observations" in raw:
        raw["observations"] = hm.settings_of(calibration.obs.ObservationSettings,
                                             raw["observations"], "calibrate.observations")
    settings = hm.settings_of(calibration.Settings, raw, "calibrate")
    calibration.check(settings)
    return settings


def check(cfg: DictConfig) -> None:
    """Everything that can be refused before the calibration starts (no simulation)."""
    from sim.studies import calibration

    settings = settings_from(cfg)
    params = compose_scenario(settings.scenario, settings.scenario_overrides, executor_from(cfg))
    calibration.prepare(params, settings)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="calibrate")
def main(cfg: DictConfig) -> None:
    from sim.studies import calibration
    from sim.studies.targets import TargetsError

    out_dir, command = app_run("python -m sim.calibrate")
    try:
        settings = settings_from(cfg)
        params = compose_scenario(settings.scenario, settings.scenario_overrides,
                                  executor_from(cfg))
        cal = calibration.calibrate(params, settings, command=command, log=log_line)
    except (TargetsError, ConfigError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    installed = calibration.write_results(cal, out_dir, settings.install)
    m = cal.match
    print(f"calibrated {settings.scenario}: {len(m.units)} points in {len(m.waves)} waves, "
          f"{len(m.members)} ensemble members, {m.final_share:.2%} of the prior box left, "
          f"{m.seconds:.0f} s")
    if cal.check:
        print(f"  with the ensemble, {cal.check['share_all_inside']:.0%} of "
              f"{cal.check['replications']} replications inside every chosen reading at once")
        for row in cal.check["rows"]:
            if row["chosen"]:
                print("  " + calibration.reading_line(row))
    for path in installed:
        print(f"installed {path}")
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    start_app("calibrate", "calibration", then=check)  # before Hydra writes anything
    run_folder.run_interruptible(main, "interrupted: the study stopped; its folder keeps any "
                                       "earlier result as it was; rerun the same command")
