"""The number a run hands back to a Hydra sweeper: ``objective=<figure>``, optionally with a
condition that must hold (``objective_constraint=<figure> objective_at_least=0.95``) and a
penalty per unit it is broken by, so that an optimiser such as ``hydra/sweeper=optuna`` can
answer constrained questions ("the fewest officials such that ...") with its usual minimise
or maximise."""

from __future__ import annotations

import math
from typing import Any

from sim import keys
from sim.params import Config, ObjectiveSense
from sim.validation import ConfigError


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
    key = params.objective_constraint
    least, most = params.objective_at_least, params.objective_at_most
    if key is None:
        if least is not None or most is not None:
            name = "objective_at_least" if least is not None else "objective_at_most"
            raise ConfigError(name, least if least is not None else most,
                              "needs objective_constraint=<figure> too")
        return None
    if (least is None) == (most is None):
        raise ConfigError("objective_constraint", key,
                          "give exactly one of objective_at_least and objective_at_most")
    return (key, ">=", least) if least is not None else (key, "<=", most)


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
