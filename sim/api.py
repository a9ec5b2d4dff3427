"""Python API for notebooks and scripts, on the same configs as the command line.

    import sim
    cfg = sim.load_config(["scenario=no_green_channel", "officials.count=8"])
    res = sim.run(cfg, replications=10)
    res.daily, res.summary, res.plot_backlog()
    res.replications   # one row per replication, every figure of summary.json
    res.who_waits      # who waits longest, ranked; res.plot_who_waits()
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from sim.config import load_config, to_params
from sim.params import Config
from sim.results import Results
from sim.runner import replicate
from sim.validation import ConfigError, check_counts, check_here, check_run_size, validate


def run(cfg: DictConfig | Config | Sequence[str] | None = None, replications: int | None = None,
        jobs: int | None = None, progress: bool | None = None) -> Results:
    """Run a scenario: from a composed config, typed parameters, or a list of overrides.

    ``replications`` and ``jobs`` default to the config's values. Gives the same numbers as
    ``python -m sim`` with the same config.
    """
    check_counts(replications, jobs)
    if progress is not None and not isinstance(progress, bool):
        raise ConfigError("progress", progress, "must be True, False or None (a bar on a "
                                                "terminal or in a notebook)")
    if cfg is None or isinstance(cfg, list | tuple):
        cfg = load_config(list(cfg or []))
    if isinstance(cfg, Config):
        validate(cfg)  # exactly as the command line validates the composed config
        params = cfg
    elif isinstance(cfg, DictConfig):
        params = to_params(cfg)
    else:
        raise ConfigError("cfg", type(cfg).__name__,
                          "must be a Config, a composed DictConfig or a list of overrides")
    if replications is not None:
        check_run_size(params, replications)
    check_here(params)
    return replicate(params, replications, jobs, progress=progress)


def compare(results: Sequence[Results], labels: Sequence[str] | None = None, ax=None):
    """Backlog curves of several scenarios on one set of axes."""
    from sim.plotting import compare_figure

    return compare_figure(results, labels, ax=ax)


__all__ = ["Results", "compare", "load_config", "run", "to_params"]
