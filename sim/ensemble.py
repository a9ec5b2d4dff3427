"""The calibrated ensemble as replications use it: members, the draw of one per replication,
and the settings the user set that no member may change.

With a calibrated ensemble on, replication r draws its member from (seed, r) only, so the
bands cover both the model's randomness and the calibrated parameters' uncertainty, and the
draw is the same whatever the number of processes, the executor or a sweep's order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim import keys
from sim.files import read_yaml
from sim.params import CONFIG_DIR, Config
from sim.validation import validate

# spawn_key (r, MEMBER_KEY) seeds replication r's ensemble-member draw. The model's streams of
# replication r are the children (r, i) of SeedSequence(seed, spawn_key=(r,)), i < number of
# streams (a handful), so 2**20 never collides with them and the draw leaves them untouched.
MEMBER_KEY = 2**20


def ensemble_members(params: Config) -> list[dict[str, Any]]:
    """Parameter sets of the calibrated ensemble (dotted key -> value), from its YAML file.

    ``calibration.ensemble_file`` is relative to configs/, or absolute (pathlib keeps an
    absolute right-hand side as it is).
    """
    path = CONFIG_DIR / params.calibration.ensemble_file
    if not path.is_file():
        raise FileNotFoundError(f"calibration.ensemble_file={path}: no such file")
    members = (read_yaml(path) or {}).get("members") or []
    if not members:
        raise ValueError(f"calibration.ensemble_file={path}: no members")
    return members


def member_index(seed: int, replication: int, n_members: int) -> int:
    """The ensemble member (0..n_members-1) replication ``replication`` runs with.

    Drawn uniformly from its own generator, seeded by (seed, replication) only: the same
    whatever the number of processes, the other replications or the order of a sweep.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(replication, MEMBER_KEY)))
    return int(rng.integers(n_members))


def replication_params(params: Config, replication: int,
                       members: list[dict[str, Any]] | None) -> Config:
    """The parameters replication r runs with: its drawn ensemble member when one is on."""
    if not members:
        return params
    member = members[member_index(params.seed, replication, len(members))]
    p = keys.apply_point(params, kept_out(params, member))
    validate(p)
    return p


def kept_out(params: Config, member: dict[str, Any]) -> dict[str, Any]:
    """The member without the settings the user set (``calibration.keep``), nor those of
    timeline events the scenario dropped."""
    kept = params.calibration.keep

    def clash(key: str) -> bool:
        return any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in kept)

    def exists(key: str) -> bool:
        try:
            keys.get(params, key)
            return True
        except (KeyError, IndexError, ValueError, TypeError):
            return False

    return {k: v for k, v in member.items() if not clash(k) and exists(k)}
