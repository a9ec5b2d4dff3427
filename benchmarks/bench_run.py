"""Where the CPU time of one run goes, and how far the model is from bare SimPy.

    python benchmarks/bench_run.py [--rounds 5] [--quick] [--case baseline|mmc|all]

Cases: ``baseline`` (``python -m sim``: one replication, default outputs) and ``mmc`` (c = 5,
utilisation 0.9, 200,000 applications: ``scenario=mmc arrivals.rate_per_day=4.5
review.mean_days=1.0 officials.count=5 horizon_days=44444 warmup_days=0``). Times are CPU
seconds (``time.process_time``; ``os.wait4`` for a whole process), never wall time: medians of
``--rounds`` interleaved rounds.

- CPU per phase, a fresh process per run (``--phase-run``: cold imports). imports: sim and what
  ``python -m sim`` imports (hydra, numpy, pandas, simpy; chinese_calendar for the baseline),
  matplotlib apart; compose (guard): the check before Hydra starts (``command_line.guard``);
  compose (again): Hydra's main composing again (``load_config`` + ``to_params``); model: the
  replication's parameters, clock and ``LicenceModel(...).run()``, as ``sim.runner``; tables:
  ``metrics.tabulate`` and the ``Results`` tables a run folder is written from; files:
  ``write_run`` with ``output.plots=false`` (CSV, JSON, report.html); figures: ``write_figures``.
- Against bare SimPy, in one process, interleaved: a bare M/M/c (``simpy.Resource``, a process
  per customer, 200,000 customers) against the model phase, model + ``metrics.tabulate`` (the
  tables every replication makes: what calibration and sweeps pay) and model + every table a
  run folder is written from, per application; applications/s; SimPy events scheduled per
  application (the environment's event counter, read without advancing it).
- Whole process: ``python -m sim`` (run folder in a temporary folder), with its default
  outputs and with ``output.plots=false``, against a bare-SimPy process of 200,000 customers
  (``--bare-process``) run beside it.
- Memory: peak RSS of each process; tracemalloc peak of the model phase of ``mmc`` with 50,000,
  100,000 and 200,000 applications: at c = 5 (the horizon grows with them: per-day counters),
  and over the same horizon with c = 5, 10, 20 (what the applications themselves cost).
- Queue length: ``mmc`` at rate 6.5, green channel in priority mode (30 % trusted): c = 5
  (50,000 waiting at the end) against c = 20 (an empty queue), per application and per event.

``--quick``: 20,000 applications (5,000 waiting), 2 rounds. Memory and queue length run with the
mmc case. The script measures the ``sim`` beside it, whatever is installed.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the sim next to this script, also in every child process
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
GREEN_PRIORITY = ("green_channel.mode=priority", "green_channel.start_date=2024-01-01",
                  "green_channel.destinations=[US,EU,JP,KR,IN,other]",
                  "classes.trusted_share={US:0.3,EU:0.3,JP:0.3,KR:0.3,IN:0.3,other:0.3}")
# what python -m sim imports (sim/__main__.py and its main), then what figures add
IMPORTS = ("hydra", "numpy", "pandas", "simpy", "sim.__main__", "sim.command_line",
           "sim.outputs", "sim.runner", "sim.reports")
TABLES = ("daily", "by_class", "group_bands", "waits", "summary", "replications", "who_waits",
          "pending_by_replication")
PHASES = (("startup", "startup (interpreter)"), ("imports", "imports (sim, hydra, ...)"),
          ("imports_matplotlib", "imports (matplotlib)"), ("compose_guard", "compose (guard)"),
          ("compose", "compose (again)"), ("model", "model"), ("tables", "tables"),
          ("files", "files (plots off)"), ("figures", "figures"))


def mmc(rate: float, c: int, horizon: int, extra: tuple[str, ...] = ()) -> list[str]:
    return ["scenario=mmc", f"arrivals.rate_per_day={rate}", "review.mean_days=1.0",
            f"officials.count={c}", f"horizon_days={horizon}", "warmup_days=0", *extra]


def case_overrides(case: str, n: int) -> list[str]:
    return [] if case == "baseline" else mmc(4.5, 5, int(n / 4.5))


def events_scheduled(env) -> int:
    """Events scheduled so far: the next value of the environment's itertools.count, read from
    its repr ("count(N)") so that the counter, and the run, are untouched."""
    return int(repr(env._eid)[len("count("):-1])


def bare_simpy(n: int, rate: float = 4.5, c: int = 5, seed: int = 1) -> tuple[float, int]:
    """CPU seconds and SimPy events of a textbook M/M/c in plain SimPy with n customers
    (the same model as bench_mmc.py's)."""
    from bench_mmc import bare_mmc  # this folder is on sys.path when run as a script

    env = bare_mmc(n, rate, c, 1.0, seed)
    t0 = time.process_time()
    env.run()
    return time.process_time() - t0, events_scheduled(env)


def compose(overrides: list[str]):
    from sim.config import load_config, to_params

    return to_params(load_config(overrides))


def run_model(params) -> dict:
    """Replication 0's model phase as sim.runner.run_replications and simulate run it (the
    ensemble member's parameters, the clock, the model), without metrics.tabulate."""
    from sim import ensemble
    from sim.model import LicenceModel, make_streams
    from sim.runner import cohort_day, horizon_days, make_clock

    members = ensemble.ensemble_members(params) if params.calibration.ensemble else None
    p = ensemble.replication_params(params, 0, members)
    n_days = horizon_days(p)
    clock = make_clock(p, n_days)
    model = LicenceModel(p, make_streams(p.seed, 0), clock, n_days, p.output.applications,
                         cohort_day(p, n_days))
    return {"model": model, "rec": model.run(), "clock": clock, "n_days": n_days, "p": p,
            "member": ensemble.member_index(params.seed, 0, len(members)) if members else None}


def tables(params, run: dict, every: bool = True):
    """The tables phase: metrics.tabulate, then (``every``) each table of Results a run folder
    is written from. Returns the Results."""
    from sim import metrics
    from sim.results import Results

    result = metrics.tabulate(run["p"], run["rec"], run["clock"], run["model"].regimes,
                              run["n_days"])
    if run["member"] is not None:
        result.summary["ensemble_member"] = run["member"]
    results = Results(params, [result])
    for name in TABLES if every else ():
        getattr(results, name)
    return results


def arrivals(results) -> int:
    return results.runs[0].summary["totals"]["arrivals"]


def phase_run(case: str, n: int) -> None:
    """One whole run in this fresh process, timed phase by phase; prints one line of JSON."""
    cpu = {"startup": time.process_time()}

    def mark(name: str) -> None:
        cpu[name] = time.process_time() - sum(cpu.values())

    for name in IMPORTS + (("chinese_calendar",) if case == "baseline" else ()):
        importlib.import_module(name)
    mark("imports")
    for name in ("matplotlib.pyplot", "sim.plotting"):
        importlib.import_module(name)
    mark("imports_matplotlib")
    from sim import objective
    from sim.command_line import guard
    from sim.config import to_params
    from sim.outputs import write_figures, write_run

    overrides = case_overrides(case, n)
    with tempfile.TemporaryDirectory() as out:
        guard([*overrides, f"hydra.run.dir={out}"],
              then=lambda cfg: objective.check(to_params(cfg)))
        mark("compose_guard")
        params = compose(overrides)
        mark("compose")
        run = run_model(params)
        mark("model")
        results = tables(params, run)
        mark("tables")
        plots, params.output.plots = params.output.plots, False
        write_run(Path(out), results, "python -m sim")
        mark("files")
        params.output.plots = plots
        write_figures(Path(out), results)
        mark("figures")
    print(json.dumps({"cpu": cpu, "applications": arrivals(results)}))


def child(args: list[str]) -> tuple[str, float, float]:
    """Run ``python <args>``: its stdout, CPU seconds and peak RSS (MiB), from os.wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=ENV, stdout=out,
                                stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            sys.exit(f"python {' '.join(args)} failed:\n{err.read().decode()}")
        return out.read().decode(), usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def show(title: str, columns: list[str], rows: list[tuple[str, list[str]]]) -> None:
    print(f"\n{title}")
    for label, cells in [("", columns), *rows]:
        print(f"  {label:48}" + "".join(f"{c:>14}" for c in cells))


def phases(cases: list[str], n: int, rounds: int) -> None:
    runs = {case: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            text, cpu, rss = child([__file__, "--phase-run", case, "--applications", str(n)])
            runs[case].append({**json.loads(text.splitlines()[-1]), "whole": cpu, "rss": rss})
    rows = [(label, [f"{median(r['cpu'][key] for r in runs[c]):.2f}" for c in cases])
            for key, label in PHASES]
    rows += [("whole process (os.wait4)",
              [f"{median(r['whole'] for r in runs[c]):.2f}" for c in cases]),
             ("applications", [f"{runs[c][0]['applications']:,}" for c in cases]),
             ("peak RSS (MiB)", [f"{max(r['rss'] for r in runs[c]):.0f}" for c in cases])]
    show(f"CPU per phase of one run (s), a fresh process per run, median of {rounds}",
         cases, rows)


def against_bare(cases: list[str], n: int, rounds: int) -> None:
    m = {}
    for case in cases:
        params = compose(case_overrides(case, n))
        found = []
        for _ in range(rounds):
            gc.collect()
            bare, bare_events = bare_simpy(n)
            gc.collect()
            t0 = time.process_time()
            run = run_model(params)
            t1 = time.process_time()
            results = tables(params, run, every=False)
            t_own = time.process_time()
            for name in TABLES:
                getattr(results, name)
            t2 = time.process_time()
            apps = arrivals(results)
            per_bare = apps * bare / n  # bare SimPy's CPU for as many customers
            found.append((apps, apps / (t1 - t0), events_scheduled(run["model"].env) / apps,
                          n / bare, bare_events / n, (t1 - t0) / per_bare,
                          (t_own - t0) / per_bare, (t2 - t0) / per_bare))
            del run
        m[case] = [median(f[i] for f in found) for i in range(len(found[0]))]
    labels = ("applications", "model: applications/s", "model: SimPy events per application",
              "bare SimPy: customers/s", "bare SimPy: events per customer",
              "ratio model / bare, per application",
              "ratio model + metrics.tabulate / bare",
              "ratio model + run-folder tables / bare")
    show(f"Model against a bare-SimPy M/M/c of {n:,} customers, one process, interleaved, "
         f"median of {rounds}", cases,
         [(label, [f"{m[c][i]:,.0f}" if i in (0, 1, 3) else f"{m[c][i]:.2f}" for c in cases])
          for i, label in enumerate(labels)])


def whole_process(cases: list[str], n: int, rounds: int) -> None:
    """Each case's whole process beside a bare-SimPy one, with its default outputs and with
    ``output.plots=false`` (what the figures cost a whole run)."""
    cpu = {case: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            _, bare, bare_rss = child([__file__, "--bare-process", "--applications", str(n)])
            found = []
            for plots in ([], ["output.plots=false"]):
                with tempfile.TemporaryDirectory() as out:
                    found.append(child(["-m", "sim", *case_overrides(case, n), *plots,
                                        f"hydra.run.dir={out}"]))
            (_, ours, rss), (_, no_plots, _) = found
            cpu[case].append((ours, bare, ours / bare, no_plots, no_plots / bare, rss,
                              bare_rss))
    labels = ("python -m sim: CPU (s)", f"bare-SimPy process, {n:,} customers: CPU (s)",
              "ratio python -m sim / bare process",
              "python -m sim output.plots=false: CPU (s)", "ratio plots off / bare process")
    rows = [(label, [f"{median(x[i] for x in cpu[c]):.2f}" for c in cases])
            for i, label in enumerate(labels)]
    rows += [(label, [f"{max(x[i] for x in cpu[c]):.0f}" for c in cases]) for i, label in
             ((5, "python -m sim: peak RSS (MiB)"), (6, "bare-SimPy process: peak RSS (MiB)"))]
    show(f"Whole process (os.wait4), beside a bare-SimPy process, median of {rounds}",
         cases, rows)
    for case in cases:
        print(f"  {case}: python -m sim {' '.join(case_overrides(case, n))}".rstrip())


def memory(n: int) -> None:
    """tracemalloc peak of the model phase: c = 5 over a horizon growing with the applications,
    and the same horizon (n/4 applications at c = 5) with c and the rate scaled instead."""
    rows, days = [], int(n // 4 / 4.5)
    for k in (1, 2, 4):
        peaks = []
        for overrides in (mmc(4.5, 5, int(k * n // 4 / 4.5)), mmc(4.5 * k, 5 * k, days)):
            params = compose(overrides)
            gc.collect()
            tracemalloc.start()
            run = run_model(params)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
            del run
        rows.append((f"{k * n // 4:,} applications", [f"{x:.1f}" for x in peaks]))
    show(f"Memory: tracemalloc peak of the model phase (MiB), mmc at utilisation 0.9; "
         f"same days: {days:,} days, c = 5, 10, 20", ["c = 5", "same days"], rows)


def queue_length(n: int, rounds: int) -> None:
    horizon = int(n // 4 / 1.5)  # n/4 waiting at the end: 6.5 arrivals a day, 5 served
    cases = {"empty, c = 20": compose(mmc(6.5, 20, horizon, GREEN_PRIORITY)),
             "queue, c = 5": compose(mmc(6.5, 5, horizon, GREEN_PRIORITY))}
    found = {label: [] for label in cases}
    for _ in range(rounds):
        for label, params in cases.items():
            gc.collect()
            t0 = time.process_time()
            run = run_model(params)
            cpu = time.process_time() - t0
            apps, events = arrivals(tables(params, run, every=False)), events_scheduled(
                run["model"].env)
            found[label].append((apps, run["model"].pool.n_waiting, events / apps,
                                 cpu / apps * 1e6, cpu / events * 1e6))
            del run
    labels = ("applications", "waiting at the end", "SimPy events per application",
              "model: CPU per application (us)", "model: CPU per SimPy event (us)")
    show(f"Queue length: scenario=mmc, rate 6.5, green channel priority (30 % trusted), "
         f"median of {rounds}", list(found),
         [(label, [f"{median(f[i] for f in found[c]):,.{0 if i < 2 else 2}f}" for c in found])
          for i, label in enumerate(labels)])
    empty, queue = found.values()
    for i, what in ((3, "per application"), (4, "per SimPy event")):
        ratio = median(q[i] / e[i] for q, e in zip(queue, empty, strict=True))
        print(f"  ratio queue / empty queue, {what}: {ratio:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="20,000 applications, 2 rounds")
    ap.add_argument("--case", choices=("baseline", "mmc", "all"), default="all")
    ap.add_argument("--applications", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--phase-run", choices=("baseline", "mmc"), help=argparse.SUPPRESS)
    ap.add_argument("--bare-process", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    n = args.applications or (20_000 if args.quick else 200_000)
    if args.phase_run:
        return phase_run(args.phase_run, n)
    if args.bare_process:
        bare_simpy(n)
        return
    rounds = 2 if args.quick else args.rounds
    cases = ["baseline", "mmc"] if args.case == "all" else [args.case]
    import simpy

    print(f"bench_run: sim in {ROOT}, Python {sys.version.split()[0]}, SimPy "
          f"{simpy.__version__}, {n:,} applications (mmc), {rounds} rounds, CPU time")
    # The processes first, while this one is small: a child's ru_maxrss starts from the peak
    # RSS of the process that spawned it (vfork, then exec).
    phases(cases, n, rounds)
    whole_process(cases, n, rounds)
    against_bare(cases, n, rounds)
    if "mmc" in cases:
        memory(n)
        queue_length(n, rounds)


if __name__ == "__main__":
    main()
