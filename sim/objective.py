"""The number a run hands back to a Hydra sweeper: ``objective=<figure>``, optionally with a
condition that must hold (``objective_constraint="<figure> >= 0.95"``) and a penalty per unit
it is broken by, so that an optimiser such as ``hydra/sweeper=optuna`` can answer constrained
questions ("the fewest officials such that ...") with its usual minimise or maximise."""

from __future__ import annotations

import math
import re
from typing import Any

from sim import keys
from sim.params import Config, ObjectiveSense
from sim.validation import ConfigError

_CONDITION = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.]+)\s*(?P<op>>=|<=)\s*(?P<bound>\S+)\s*$")


def check_figure(setting: str, key: str, params: Config) -> None:
    from sim.runner import figure_keys

    if key.startswith("config."):
        try:
            value = keys.get(params, key.removeprefix("config."))
        except (KeyError, IndexError, ValueError, TypeError):
            raise ConfigError(setting, key, "no such setting after config.") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(setting, key, "must name a numeric setting")
        return
    if key not in figure_keys():
        tail = key.rsplit(".", 1)[-1]
        near = sorted(k for k in figure_keys() if k.endswith(tail))[:4]
        raise ConfigError(setting, key, "no such figure in summary.json" + (
            f"; e.g. {', '.join(near)}" if near else
            "; see the columns of a run's replications.csv, or config.<setting>"))


def condition(params: Config) -> tuple[str, str, float] | None:
    """(figure, ">=" or "<=", bound) of ``objective_constraint``, or None."""
    text = params.objective_constraint
    if text is None:
        return None
    m = _CONDITION.match(text)
    if m is None:
        raise ConfigError("objective_constraint", text,
                          'must read "<figure> >= <number>" or "<figure> <= <number>"')
    try:
        bound = float(m["bound"])
    except ValueError:
        raise ConfigError("objective_constraint", text, "the bound must be a number") from None
    if not math.isfinite(bound):
        raise ConfigError("objective_constraint", text, "the bound must be finite")
    return m["key"], m["op"], bound


def check(params: Config) -> None:
    """Refuse an objective naming no figure, a malformed condition or a negative penalty."""
    if params.objective is not None:
        check_figure("objective", params.objective, params)
    cond = condition(params)
    if cond is not None:
        if params.objective is None:
            raise ConfigError("objective_constraint", params.objective_constraint,
                              "needs objective=<figure> too")
        check_figure("objective_constraint", cond[0], params)
    if not params.objective_penalty >= 0:
        raise ConfigError("objective_penalty", params.objective_penalty, "must be 0 or more")


def _value(key: str, document: dict[str, Any]) -> float:
    value = keys.lookup(document, key)
    return math.nan if value is None else float(value)


def value(params: Config, document: dict[str, Any]) -> float | None:
    """The objective of a finished run from its summary document (summary.json's content):
    the figure's replication mean, made worse by the penalty when the condition is broken.
    An undefined figure gives +inf when minimising and -inf when maximising, so an optimiser
    avoids the point rather than stopping on NaN."""
    if params.objective is None:
        return None
    worse = 1.0 if params.objective_sense == ObjectiveSense.minimize else -1.0
    x = _value(params.objective, document)
    cond = condition(params)
    if cond is not None:
        key, op, bound = cond
        y = _value(key, document)
        broken = math.inf if math.isnan(y) else max(0.0, bound - y if op == ">=" else y - bound)
        x = x + worse * params.objective_penalty * broken if broken else x
    return worse * math.inf if math.isnan(x) else x
