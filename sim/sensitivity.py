"""Command line: ``python -m sim.sensitivity [sensitivity=full|smoke] [sensitivity.key=value]
[executor=local|submitit_local|slurm]``.

Ranks the levers of a scenario by their effect on clearance time and peak backlog (the study:
:mod:`sim.studies.sensitivity`). Settings: configs/sensitivity.yaml and configs/sensitivity/.
The scenario is composed exactly as ``python -m sim`` composes it, with
``sensitivity.scenario`` and ``sensitivity.scenario_overrides``.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from sim import run_folder
from sim.command_line import app_run, log_line, start_app
from sim.config import CONFIG_DIR, ConfigError, compose_scenario, executor_from, register

register()


def check(cfg: DictConfig) -> None:
    """Everything that can be refused before the study starts (no simulation)."""
    from sim.studies.sensitivity import check_factors, settings_from

    s = settings_from(OmegaConf.to_container(cfg.sensitivity, resolve=True))
    check_factors(compose_scenario(s.scenario, s.scenario_overrides, executor_from(cfg)),
                  s.factors)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="sensitivity")
def main(cfg: DictConfig) -> None:
    from sim.studies.sensitivity import run_study, settings_from, write_results

    out_dir, command = app_run("python -m sim.sensitivity")
    try:
        s = settings_from(OmegaConf.to_container(cfg.sensitivity, resolve=True))
        params = compose_scenario(s.scenario, s.scenario_overrides, executor_from(cfg))
        study = run_study(s, params, log=log_line, command=command)
    except ConfigError as err:  # the study's refusals too (one line)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    write_results(study, out_dir)
    print(f"sensitivity of {study.params.name} ({s.name}): {len(study.points)} runs, "
          f"{study.runtime_s:.0f} s")
    for out in s.outputs:
        for method, table, by in (("morris", study.morris, "mu_star"),
                                  ("sobol", study.sobol, "ST")):
            if table is None:
                continue
            t = table[table["output"] == out.key].head(3)
            if len(t):
                top = ", ".join(f"{r.factor} ({by} {getattr(r, by):.3g})"
                                for r in t.itertuples())
                print(f"  {out.key}: {method} ranks first {top}")
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    start_app("sensitivity", "sensitivity", then=check)  # before Hydra writes anything
    run_folder.run_interruptible(main, "interrupted: the study stopped; its folder keeps any "
                                       "earlier result as it was; rerun the same command")
