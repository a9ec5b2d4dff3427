"""Command line: ``python -m sim.hindcast [hindcast=default|smoke] [hindcast.key=value]
[calibrate.key=value] [executor=local|submitit_local|slurm]``.

Calibrates the scenario at each origin on the observed months up to it and scores its
predictions of the later months against a naive forecast and the full calibration (the study:
:mod:`sim.studies.hindcast`). Settings: configs/hindcast.yaml, configs/hindcast/ and the
calibration recipe, configs/calibrate/.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from sim import run_folder
from sim.calibrate import settings_from as calibration_settings
from sim.command_line import app_run, log_line, start_app
from sim.config import CONFIG_DIR, ConfigError, compose_scenario, executor_from, register

register()


def settings_from(cfg: DictConfig):
    """The hindcast's and the calibration's settings, checked (one line for a refusal)."""
    from sim.studies import hindcast
    from sim.studies import history_matching as hm

    raw = dict(OmegaConf.to_container(cfg.hindcast, resolve=True))
    name = raw.pop("name", "hindcast")
    hm.check_name("hindcast.name", name)
    s = hm.settings_of(hindcast.Settings, raw, "hindcast")
    cal = calibration_settings(cfg)
    hindcast.check(s, cal)
    return s, cal


def check(cfg: DictConfig) -> None:
    """Everything that can be refused before the hindcast starts (no simulation)."""
    from sim.studies import calibration

    _, cal = settings_from(cfg)
    params = compose_scenario(cal.scenario, cal.scenario_overrides, executor_from(cfg))
    calibration.prepare(params, cal)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="hindcast")
def main(cfg: DictConfig) -> None:
    from sim.studies import hindcast
    from sim.studies.targets import TargetsError

    out_dir, command = app_run("python -m sim.hindcast")
    try:
        s, cal = settings_from(cfg)
        params = compose_scenario(cal.scenario, cal.scenario_overrides, executor_from(cfg))
        h = hindcast.run(params, cal, s, log=log_line)
    except (TargetsError, ConfigError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    hindcast.write_results(h, out_dir, command, hindcast.observed_table(cal, s.until))
    print(f"hindcast of {cal.scenario}: {len(s.origins)} origins, {h.seconds / 60:.1f} minutes "
          f"({h.cpu_seconds / 60:.1f} CPU minutes)")
    for row in h.summary().itertuples():
        print(f"  origin {row.origin}, {row.forecast}: {row.months} months, 90 % coverage "
              f"{row.coverage_90:.0%}, interval score {row.interval_score_90:.3f}, CRPS "
              f"{row.crps:.3f}")
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    start_app("hindcast", "hindcast", then=check)  # before Hydra writes anything
    run_folder.run_interruptible(main, "interrupted: the hindcast stopped; its folder keeps "
                                       "any earlier result as it was; rerun the same command")
