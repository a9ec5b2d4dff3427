"""Command line: ``python -m sim.calibrate [calibrate=smoke] [calibrate.key=value ...]``.

Calibrates a scenario against the articles' figures (see :mod:`sim.calibration`) and writes
into its run folder: ``report.md``, ``targets.png``, ``points.csv``, the best point
``<scenario>.yaml`` and ``ensemble_<scenario>.yaml``. With ``calibrate.install=true`` the last
two also go to ``configs/calibrated/``, where the scenario and the ensemble runner read them.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim.config import CONFIG_DIR, ConfigError, register

register()


def settings_from(cfg: DictConfig):
    """Plain settings from the composed ``calibrate`` node (unknown keys refused)."""
    from sim.calibration import Settings, Wave

    raw = OmegaConf.to_container(cfg.calibrate, resolve=True)
    raw["waves"] = [Wave(**w) for w in raw.get("waves", [])]
    return Settings(**raw)


@hydra.main(version_base="1.3", config_path="../configs", config_name="calibrate")
def main(cfg: DictConfig) -> None:
    from sim import calibration

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    command = " ".join(["python -m sim.calibrate", *map(shlex.quote, overrides)])
    try:
        settings = settings_from(cfg)
        if not settings.waves:
            raise calibration.TargetsError("calibrate.waves: at least one wave is needed")
        cal = calibration.calibrate(settings, log=calibration.stderr, command=command)
    except (calibration.TargetsError, ConfigError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    install = CONFIG_DIR / "calibrated" if settings.install else None
    calibration.write_results(cal, out_dir, install)
    table = calibration.target_table(cal)
    chosen = table[table["chosen"]]
    print(f"calibrated {settings.scenario}: {len(cal.values)} points, "
          f"{int(cal.plausible.sum())} plausible, ensemble {len(cal.members)}"
          f"{' (relaxed)' if cal.relaxed else ''}, {cal.runtime_s:.0f} s")
    for row in chosen.itertuples():
        print(f"  {'met    ' if row.met else 'NOT MET'} {row.target}: [{row.low:g}, {row.high:g}]"
              f" mean {row.best_mean:.1f} (90% {row.best_p05:.0f}..{row.best_p95:.0f}),"
              f" implausibility {row.implausibility:.2f}")
    if install:
        print(f"installed {install / (settings.scenario + '.yaml')} and the ensemble")
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    main()
