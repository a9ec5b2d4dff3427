"""Textbook results the simulation is checked against (M/M/c, Erlang C)."""

from __future__ import annotations


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (offered load a = lambda / mu)."""
    c, a = servers, offered_load
    if a >= c:
        return 1.0
    term = 1.0  # a^k / k!, built up to avoid huge factorials
    total = 0.0
    for k in range(c):
        total += term
        term *= a / (k + 1)
    tail = term * c / (c - a)  # a^c / c! * 1 / (1 - rho)
    return tail / (total + tail)


def mmc_wait(servers: int, arrival_rate: float, mean_service: float) -> dict[str, float]:
    """Mean wait in queue (Wq), mean number waiting (Lq) and utilisation of a stable M/M/c."""
    mu = 1.0 / mean_service
    a = arrival_rate / mu
    if a >= servers:
        raise ValueError(f"unstable queue: offered load {a} >= servers {servers}")
    wq = erlang_c(servers, a) / (servers * mu - arrival_rate)
    return {"wq": wq, "lq": arrival_rate * wq, "utilisation": a / servers,
            "p_wait": erlang_c(servers, a)}
