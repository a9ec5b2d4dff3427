"""Command line: ``python -m sim [scenario=...] [key=value ...]`` (a Hydra application)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sim.config import ConfigError, register, to_params

register()


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from sim.io import write_run
    from sim.runner import simulate

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        params = to_params(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    result = simulate(params)
    write_run(out_dir, params, result)
    s = result.summary
    t = s["totals"]
    print(f"scenario {params.name}: {s['start_date']} to {s['end_date']}, seed {params.seed}")
    print(f"  arrived {t['arrivals']}, approved {t['approved']}, denied {t['denied']}, "
          f"withdrawn {t['withdrawn']}, pending at end {s['pending_end']}")
    print(f"  peak pending {s['peak_pending']} on {s['peak_pending_date']}; mean wait "
          f"{s['mean_wait_days']:.2f} days (p90 {s['p90_wait_days']:.2f}); "
          f"utilisation {s['utilisation']:.2f}")
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    main()
