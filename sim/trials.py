"""Sweeps run by an optimising sweeper (``hydra/sweeper=optuna``, or any other than Hydra's
basic one): one folder per trial, and only the sweep's own lines on the terminal.

Hydra's basic sweeper runs each point once, so a point's folder is named by its overrides
(``hydra.sweep.subdir`` in ``configs/config.yaml``): a resumed or reordered sweep finds it again.
An optimiser may propose the same values twice; named by its overrides alone, the second trial
would overwrite the first one's folder (6 trials, 5 folders). Under such a sweeper every trial's
folder is numbered by its trial (``<job number>_<overrides>``), through one more Hydra override
that each trial's ``.hydra/hydra.yaml`` records (:func:`trial_subdir`).

The Optuna sweeper imports Optuna, which imports alembic, and both log their set-up at INFO
(seven lines of "setup plugin alembic...", the study's name, its storage): quietened here,
before the sweeper is built. What the sweep itself says (the trials launched, the best
parameters and value) stays.

:class:`TrialsCallback` does both; it is registered in ``configs/config.yaml``
(``hydra.callbacks.trials``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from hydra.experimental.callback import Callback

SUBDIR_KEY = "hydra.sweep.subdir"
NUMBER = "${hydra:job.num}"
# The loggers of the plugins' set-up, and the set-up lines of the Optuna sweeper's own logger
_SETUP_LOGGERS = ("alembic", "optuna")
_OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper._impl"
_SETUP_LINES = re.compile(r"(Study name|Storage|Sampler|Directions?): ")


def is_basic(sweeper: Any) -> bool:
    """Whether ``hydra.sweeper`` (its node, as a mapping) is Hydra's basic sweeper."""
    target = (sweeper or {}).get("_target_", "") if hasattr(sweeper, "get") else ""
    return "BasicSweeper" in str(target or "BasicSweeper")


def numbered(subdir: str) -> bool:
    """Whether a ``hydra.sweep.subdir`` differs between jobs whatever their values are (it
    holds the job's number or id)."""
    return bool(re.search(r"\$\{hydra[:.]job\.(num|id)\}", subdir))


def trial_subdir(subdir: str) -> str:
    """The folder of one trial of an optimising sweeper: ``subdir`` prefixed by the trial's
    number (``${hydra:job.num}_``), unless it holds the job's number or id already."""
    return subdir if numbered(subdir) else f"{NUMBER}_{subdir}"


def _quoted(text: str) -> str:
    """``text`` as a quoted value of Hydra's override grammar (interpolations kept)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _DropSetup(logging.Filter):
    """Drops the Optuna sweeper's set-up lines (study name, storage, sampler, directions)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _SETUP_LINES.match(str(record.msg))


def quiet_setup_logs(optuna: bool = True) -> None:
    """Set the loggers of the plugins' set-up to WARNING and drop the Optuna sweeper's set-up
    lines; warnings and errors still show. alembic's level is set first: it logs as Optuna
    imports it. ``optuna``: the sweeper is Optuna's (imported here, as it would be next)."""
    for name in _SETUP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if optuna:
        try:  # Optuna's own handler sets its level to INFO when first used: set it in Optuna
            import optuna as optuna_module
        except ImportError:
            pass
        else:
            optuna_module.logging.set_verbosity(optuna_module.logging.WARNING)
    sweeper = logging.getLogger(_OPTUNA_SWEEPER)
    if not any(isinstance(f, _DropSetup) for f in sweeper.filters):
        sweeper.addFilter(_DropSetup())


class TrialsCallback(Callback):
    """Hydra callback: under any sweeper but the basic one, number each trial's folder and
    quieten the plugins' set-up logs (see the module's docstring). ``enabled=false`` leaves
    both as Hydra and the plugins have them."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        from omegaconf import OmegaConf, read_write

        sweeper = config.hydra.get("sweeper")
        if not self.enabled or is_basic(sweeper):
            return
        quiet_setup_logs(optuna="optuna" in str(sweeper.get("_target_", "")).lower())
        subdir = str(OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"])
        if numbered(subdir):
            return
        # Each job's configuration is composed again from hydra.overrides.hydra and its own
        # overrides (Hydra's load_sweep_config): an override added here reaches every trial
        # and is recorded in its .hydra/hydra.yaml.
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.append(f"{SUBDIR_KEY}={_quoted(trial_subdir(subdir))}")
