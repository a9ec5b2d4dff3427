"""Discrete-event simulation of China's rare-earth export-licence process."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Results", "compare", "load_config", "run", "to_params"]


def __getattr__(name: str) -> Any:
    # The API (and with it scipy, pandas and matplotlib) loads on first use, so that
    # `python -m sim` starts, validates its input and launches sweep workers without it.
    if name in __all__:
        return getattr(importlib.import_module("sim.api"), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
