"""The calibrated ensemble as replications use it: members, the draw of one per replication,
and the settings the user set that no member may change.

With a calibrated ensemble on, replication r draws its member from (seed, r) only, so the
bands cover both the model's randomness and the calibrated parameters' uncertainty, and the
draw is the same whatever the number of processes, the executor or a sweep's order.

A member replaces a calibrated setting only where the run holds the calibrated value: the
value written in the calibrated scenario's own file (``configs/scenario/<scenario>.yaml``, the
scenario the ensemble's provenance names, on the lines ``calibrate.install`` writes). Any
other value was given by someone (a scenario file of the project or of the user, the command
line, the API, a sweep point, a solver's lever, a sensitivity factor) and wins, as does a
setting named in ``calibration.keep`` whatever its value. A scenario that restates a
calibrated value unchanged (a list of surges restated whole, say) leaves it to the members.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
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
    """The member without the settings the user set (``calibration.keep``, and those whose
    value is not the calibrated one: :func:`user_values`), nor those of timeline events the
    scenario dropped."""
    kept = [*params.calibration.keep, *user_values(params, member)]

    def clash(key: str) -> bool:
        return any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in kept)

    def exists(key: str) -> bool:
        try:
            keys.get(params, key)
            return True
        except (KeyError, IndexError, ValueError, TypeError):
            return False

    return {k: v for k, v in member.items() if not clash(k) and exists(k)}


def user_values(params: Config, member: dict[str, Any]) -> list[str]:
    """The member's settings whose value in ``params`` is not the calibrated scenario's (see
    the module's docstring): values someone gave, which the member must not replace. None
    of them when the ensemble names no calibrated scenario of this project (then only
    ``calibration.keep`` holds settings)."""
    point = calibrated_point(CONFIG_DIR / params.calibration.ensemble_file)
    if point is None:
        return []
    out = []
    for key in member:
        try:
            value = keys.plain(keys.get(params, key))
        except (KeyError, IndexError, ValueError, TypeError):
            continue  # a dropped timeline event's setting: left out by kept_out
        if key in point and _same(value, point[key]):
            continue
        out.append(key)
    return out


def calibrated_point(path: Path) -> dict[str, Any] | None:
    """The calibrated values of the ensemble at ``path``: every setting its members set, as
    the calibrated scenario's own file writes it (a setting the file does not write is left
    out: any value of it is the user's). None when the ensemble's provenance names no
    scenario file of configs/scenario/. Read once per version of the two files."""
    try:
        stamp = Path(path).stat()
    except OSError:
        return None
    return _calibrated_point(Path(path).resolve(), stamp.st_mtime_ns, stamp.st_size)


@functools.lru_cache(maxsize=8)
def _calibrated_point(path: Path, mtime_ns: int, size: int) -> dict[str, Any] | None:
    content = read_yaml(path) or {}
    scenario = (content.get("provenance") or {}).get("scenario")
    file = CONFIG_DIR / "scenario" / f"{scenario}.yaml"
    if not isinstance(scenario, str) or not scenario or not file.is_file():
        return None
    written = read_yaml(file) or {}
    point = {}
    for member in content.get("members") or []:
        for key in member:
            found, value = _written(written, key)
            if found:
                point[key] = value
    return point


def _written(content: Any, key: str) -> tuple[bool, Any]:
    """Whether a YAML file's content writes the dotted ``key`` (mappings and list items),
    and its value."""
    for part in key.split("."):
        if isinstance(content, dict) and part in content:
            content = content[part]
        elif isinstance(content, list) and part.isdigit() and int(part) < len(content):
            content = content[int(part)]
        else:
            return False, None
    return True, content


def _same(value: Any, written: Any) -> bool:
    """A run's value equals a file's (a date YAML read unquoted is the ISO text the run holds;
    True is not 1)."""
    if isinstance(written, dt.date):
        written = written.isoformat()
    if isinstance(value, bool) or isinstance(written, bool):
        return type(value) is type(written) and value == written
    return value == written
