"""Shared fixtures.

``compose``: overrides -> typed, validated parameters (``sim.load_config`` then
``sim.to_params``, as the command line composes them). ``run_dir``: a fresh output folder under
pytest's ``tmp_path``, for ``hydra.run.dir=...`` or ``sim.outputs.write_run``; nothing a test writes
there ends up in the repository's outputs/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


@pytest.fixture
def compose() -> Callable[..., object]:
    """``compose("scenario=mmc", "horizon_days=400")`` or ``compose([...])``: a sim Config."""
    import sim

    def _compose(*overrides: str | Sequence[str]):
        if len(overrides) == 1 and not isinstance(overrides[0], str):
            overrides = tuple(overrides[0])
        return sim.to_params(sim.load_config(list(overrides)))

    return _compose


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """``tmp_path / "run"``, not yet created (Hydra and write_run create it)."""
    path = tmp_path / "run"
    assert not path.exists()
    return path
