"""Textbook results the simulation is checked against: M/M/c (Erlang C), its non-preemptive
priority version (Cobham) and M/M/c with exponential patience (Erlang A)."""

from __future__ import annotations

import math
from collections.abc import Sequence


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


def priority_mmc_waits(servers: int, arrival_rates: Sequence[float],
                       mean_service: float) -> list[float]:
    """Mean wait in queue per class of a non-preemptive priority M/M/c (Cobham, 1954).

    Classes in priority order (first = highest), all with the same exponential service of mean
    ``mean_service``; FIFO within a class. W_k = C(c, a) / (c mu) / ((1 - s_{k-1}) (1 - s_k)),
    with C the Erlang C probability of waiting for the total offered load a and s_k the
    utilisation of classes 1..k (s_0 = 0).
    """
    mu = 1.0 / mean_service
    total = sum(arrival_rates)
    a = total / mu
    if a >= servers:
        raise ValueError(f"unstable queue: offered load {a} >= servers {servers}")
    w0 = erlang_c(servers, a) / (servers * mu)  # mean wait until a server frees, times P(wait)
    waits, before = [], 0.0
    for rate in arrival_rates:
        after = before + rate / (servers * mu)
        waits.append(w0 / ((1.0 - before) * (1.0 - after)))
        before = after
    return waits


def erlang_a(servers: int, arrival_rate: float, mean_service: float, mean_patience: float,
             tail: float = 1e-15) -> dict[str, float]:
    """Exact stationary figures of the M/M/c+M queue (Erlang A, Palm 1943) from its birth-death
    chain: states n = 0..N in the system, birth rate lambda, death rate
    min(n, c) mu + max(n - c, 0) theta (theta = 1 / mean patience: each waiting customer
    abandons at that rate). N grows until the next state's probability relative to the largest
    falls below ``tail`` (reported as ``tail_mass``, the last state's probability).

    Returns p_abandon (= theta Lq / lambda, the share of arrivals that abandon), lq (mean number
    waiting), wq_all (mean time in queue of all arrivals, abandoning ones until they abandon;
    Little: Lq / lambda), wq_served (mean wait of the customers who are served, zero waits
    included; each arrival sees the stationary state, PASTA), p_wait and n_states.
    """
    lam, mu, theta, c = arrival_rate, 1.0 / mean_service, 1.0 / mean_patience, servers
    weights = [1.0]  # unnormalised pi_n
    top = 1.0
    n = 0
    while True:
        death = min(n + 1, c) * mu + max(n + 1 - c, 0) * theta
        nxt = weights[-1] * lam / death
        n += 1
        weights.append(nxt)
        top = max(top, nxt)
        if n > c and nxt < tail * top:
            break
        if n > 10_000_000:
            raise ValueError("birth-death chain did not converge")
    total = math.fsum(weights)
    pi = [w / total for w in weights]
    lq = math.fsum((k - c) * p for k, p in enumerate(pi) if k > c)
    # A served customer's wait: arriving with j already queued ahead, it moves forward at rate
    # c mu + j theta and abandons at rate theta. S_j = P(served), T_j = E[wait; served].
    served_waiting = wait_served = 0.0
    s = t = 0.0
    for j, p in enumerate(pi[c:]):
        rate = c * mu + j * theta + theta
        forward = (c * mu + j * theta) / rate
        if j == 0:
            s = c * mu / rate
            t = s / rate
        else:
            s, t = forward * s, forward * s / rate + forward * t
        served_waiting += p * s
        wait_served += p * t
    p_served = math.fsum(pi[:c]) + served_waiting
    return {"p_abandon": theta * lq / lam, "lq": lq, "wq_all": lq / lam,
            "wq_served": wait_served / p_served, "p_served": p_served,
            "p_wait": math.fsum(pi[c:]), "tail_mass": pi[-1], "n_states": len(pi)}
