"""Speed and memory of the model against a minimal bare-SimPy M/M/c of the same size.

    python benchmarks/bench_mmc.py [--applications 200000] [--repeat 3]

Prints applications per second for scenario=mmc (c=5, utilisation 0.9) and for bare SimPy
(simpy.Resource, one process per customer), their ratio, the same under an overloaded queue
holding tens of thousands of waiting applications, and peak memory against run size.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import simpy

from sim.config import load_config, to_params
from sim.runner import simulate


def bare_mmc(n: int, rate: float, c: int, mean_service: float,
             seed: int = 1) -> simpy.Environment:
    """A textbook M/M/c in plain SimPy with n customers, built and ready to run."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / rate, n).tolist()
    services = rng.exponential(mean_service, n).tolist()
    env = simpy.Environment()
    officials = simpy.Resource(env, capacity=c)
    waits = []

    def customer(service):
        arrived = env.now
        with officials.request() as req:
            yield req
            waits.append(env.now - arrived)
            yield env.timeout(service)

    def source():
        for gap, service in zip(gaps, services, strict=True):
            yield env.timeout(gap)
            env.process(customer(service))

    env.process(source())
    return env


def bare_simpy(n: int, rate: float, c: int, mean_service: float, seed: int = 1) -> float:
    """Seconds for a textbook M/M/c in plain SimPy with n customers."""
    env = bare_mmc(n, rate, c, mean_service, seed)
    t0 = time.perf_counter()
    env.run()
    return time.perf_counter() - t0


GREEN_PRIORITY = ["green_channel.mode=priority", "green_channel.start_date=2024-01-01",
                  "green_channel.destinations=[US,EU,JP,KR,IN,other]",
                  "classes.trusted_share={US:0.3,EU:0.3,JP:0.3,KR:0.3,IN:0.3,other:0.3}"]


def ours(n: int, rate: float, c: int, mean_service: float, horizon: int | None = None,
         extra: tuple[str, ...] = ()):
    horizon = horizon or int(n / rate)
    cfg = load_config(["scenario=mmc", f"officials.count={c}", f"arrivals.rate_per_day={rate}",
                       f"review.mean_days={mean_service}", f"horizon_days={horizon}",
                       "warmup_days=0", *extra])
    params = to_params(cfg)
    t0 = time.perf_counter()
    result = simulate(params)
    return time.perf_counter() - t0, result


def speed_words(ours_per_application: float, bare_per_application: float) -> str:
    """The model's speed against bare SimPy in words: "2.0x faster" when it takes half the
    time per application, "1.3x slower" when it takes 1.3 times as long (a ratio below 1 is
    never called slower)."""
    ratio = ours_per_application / bare_per_application
    if ratio < 1:
        return f"{1 / ratio:.1f}x faster"
    return f"{ratio:.1f}x slower" if ratio > 1 else "as fast"


def best(fn, repeat):
    return min(fn() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--applications", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, c = args.applications, 5

    cases = (("utilisation 0.9", 4.5, ()), ("overloaded, utilisation 1.3", 6.5, ()),
             ("overloaded, green channel priority (30 % trusted)", 6.5, GREEN_PRIORITY))
    for label, rate, extra in cases:
        t_bare = best(lambda rate=rate: bare_simpy(n, rate, c, 1.0), args.repeat)
        runs = [ours(n, rate, c, 1.0, extra=extra) for _ in range(args.repeat)]
        t_ours = min(t for t, _ in runs)
        res = runs[0][1]
        arrived = res.summary["totals"]["arrivals"]
        print(f"M/M/{c}, {label}: {arrived} applications, peak waiting "
              f"{int(res.daily['waiting'].max())}")
        print(f"  bare SimPy : {n / t_bare:10,.0f} applications/s")
        print(f"  sim        : {arrived / t_ours:10,.0f} applications/s  "
              f"({speed_words(t_ours / arrived, t_bare / n)} than bare SimPy)")

    print("peak memory (tracemalloc), output.applications=false, same 5,000-day horizon:")
    for servers in (5, 20, 80):
        rate = 0.9 * servers
        tracemalloc.start()
        _, res = ours(int(5000 * rate), rate, servers, 1.0, horizon=5000)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"  {res.summary['totals']['arrivals']:9,d} applications: {peak / 2**20:7.1f} MiB")


if __name__ == "__main__":
    main()
