"""Discrete-event simulation of China's rare-earth export-licence process."""

from sim.api import Results, compare, load_config, run, to_params

__all__ = ["Results", "compare", "load_config", "run", "to_params"]
