"""What ran, recorded so that any replication can be rerun from its run folder alone.

A run folder's ``summary.json`` holds the configuration (``config``), the seed, the versions
of Python and of the libraries the numbers depend on (``versions``) and, with the calibrated
ensemble on, the member each replication drew (``ensemble.used``) and, for each member drawn,
the value each of its settings ran with (``ensemble_values``; a setting the user set ran at
the configuration's value, and ``ensemble_kept`` names those). ``members.csv`` gives the same
as a table, one row per replication. :func:`rerun` runs one replication again from that
record and nothing else: the configuration with the ensemble off, the member's values set, the
same seed and replication index.
"""

from __future__ import annotations

import csv
import json
import platform
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sim import ensemble, keys
from sim.files import atomic_write
from sim.metrics import RunResult
from sim.params import Config
from sim.validation import validate

MEMBERS_FILE = "members.csv"
# The libraries whose versions a run's numbers may depend on (random streams, arithmetic,
# composition of the configuration), recorded beside the package's own version.
LIBRARIES = ("numpy", "scipy", "simpy", "pandas", "hydra-core", "omegaconf")


def versions() -> dict[str, str]:
    """Python's version and each of :data:`LIBRARIES`' (``"unknown"`` when not installed)."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def member_values(params: Config, used: Iterable[int]) -> dict[int, dict[str, Any]]:
    """For each member index in ``used``, every setting the member sets with the value it
    ran with (the member's, or the configuration's where the user's value kept it out); a
    setting the run does not have (a timeline event the scenario dropped) is left out."""
    members = ensemble.ensemble_members(params)
    out = {}
    for m in sorted(set(used)):
        applied = ensemble.kept_out(params, members[m])  # what the replication set
        values = {}
        for key, value in members[m].items():
            if key in applied:
                values[key] = value
                continue
            try:
                values[key] = keys.plain(keys.get(params, key))  # the run's own value
            except (KeyError, IndexError, ValueError, TypeError):
                continue
        out[m] = values
    return out


def record(params: Config, summary: dict[str, Any]) -> dict[str, Any]:
    """What summary.json adds to a run's figures so that it can be rerun: ``versions`` and,
    with the ensemble on, ``ensemble_values`` (member index, as text -> setting -> value that
    ran) and ``ensemble_kept`` (the members' settings that ran at the configuration's value,
    set by the user)."""
    out: dict[str, Any] = {"versions": versions()}
    if not params.calibration.ensemble:
        return out
    values = member_values(params, summary["ensemble"]["used"])
    members = ensemble.ensemble_members(params)
    kept = {k for m in values for k in values[m]
            if k not in ensemble.kept_out(params, members[m])}
    out["ensemble_values"] = {str(m): v for m, v in values.items()}
    out["ensemble_kept"] = sorted(kept)
    return out


def _cell(value: Any) -> str:
    """A value that ran, as members.csv writes it: text as it is, null, true/false, numbers
    with every digit (shortest exact form)."""
    return value if isinstance(value, str) else json.dumps(value)


def write_members(path: Path, used: list[int], values: dict[str, dict[str, Any]]) -> None:
    """members.csv, atomically: one row per replication, its member, and each setting the
    ensemble's members set with the value that ran (empty where the run has no such
    setting)."""
    columns = list(dict.fromkeys(k for m in values.values() for k in m))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(["replication", "member", *columns])
            for r, m in enumerate(used):
                ran = values[str(m)]
                out.writerow([r, m, *(_cell(ran[k]) if k in ran else "" for k in columns)])

    atomic_write(path, write)


def replication_params(folder: Path, replication: int) -> Config:
    """The parameters replication ``replication`` of the run in ``folder`` ran with, from its
    summary.json alone: the recorded configuration, with its member's recorded values set and
    the ensemble off (nothing is drawn again, no ensemble file is read)."""
    from omegaconf import OmegaConf

    from sim.config import to_params

    summary = json.loads((Path(folder) / "summary.json").read_text())
    params = to_params(OmegaConf.merge(OmegaConf.structured(Config), summary["config"]))
    if not params.calibration.ensemble:
        return params
    member = summary["ensemble"]["used"][replication]
    params = keys.apply_point(params, summary["ensemble_values"][str(member)])
    params.calibration.ensemble = False
    validate(params)
    return params


def rerun(folder: Path, replication: int) -> RunResult:
    """Replication ``replication`` of the run in ``folder``, run again from what the folder
    records (:func:`replication_params`, the recorded seed and the same replication index):
    its figures are its row of replications.csv, its pending counts its column of
    pending_by_replication.csv."""
    from sim.runner import simulate

    params = replication_params(folder, replication)
    result = simulate(params, replication=replication)
    summary = json.loads((Path(folder) / "summary.json").read_text())
    if "ensemble" in summary:  # the member's index is a column of replications.csv
        result.summary["ensemble_member"] = summary["ensemble"]["used"][replication]
    return result
