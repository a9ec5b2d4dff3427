"""Which levers move a scenario's outcomes most: Morris screening and Sobol indices (SALib).

The study receives the scenario's typed parameters (the entry point :mod:`sim.sensitivity`
composes them as ``python -m sim`` does). Every point is the scenario with the factors set,
run through the same replication runner and :func:`sim.executor.parallel_map`; all points use
the scenario's seed (common random numbers), so the results depend on neither the number of
workers nor the executor. Morris gives mu* (mean absolute elementary effect) and sigma; Sobol
the first-order S1 and total ST, each with a bootstrap 95 % interval.

Writes ``points.csv`` (every run: method, factor values, outputs), ``morris.csv``,
``sobol.csv``, ``sensitivity.png`` and ``report.md`` (last: a folder without it is
incomplete).
"""

from __future__ import annotations

import datetime as dt
import math
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sim import keys
from sim.executor import LOCAL, parallel_map
from sim.params import Config
from sim.studies.history_matching import Limit, check_name, check_settings, settings_of
from sim.studies.report import markdown_table
from sim.studies.space import Factor
from sim.validation import ConfigError, validate

METHODS = ("morris", "sobol")


# The study's refusals are the model's kind: one line naming the key, its value and what is
# allowed (the name stays for the callers that catch it).
SettingsError = ConfigError
MAX_SOBOL_N = 2**16  # base sample: runs = n * (factors + 2); beyond this surely a typo


@dataclass
class Output:
    key: str  # dotted key of summary.json
    label: str = ""
    # Replaces a missing value: a number, "horizon" (the run's length) or None (checked in
    # settings_from: the type checker takes no unions beyond None).
    undefined: Any = None


@dataclass
class Morris:
    trajectories: int = 10  # runs: trajectories * (factors + 1)
    levels: int = 4  # grid levels, even (SALib)

    LIMITS: ClassVar[dict[str, Limit]] = {"trajectories": Limit(2, 10_000),
                                          "levels": Limit(2, 100)}


@dataclass
class Sobol:
    n: int = 16  # base sample, a power of two: runs = n * (factors + 2)
    resamples: int = 200  # bootstrap resamples of the intervals

    LIMITS: ClassVar[dict[str, Limit]] = {"n": Limit(2, MAX_SOBOL_N),
                                          "resamples": Limit(2, 100_000)}


@dataclass
class Settings:
    name: str = "default"
    scenario: str = "baseline_2025"
    scenario_overrides: list[str] = field(default_factory=list)
    replications: int = 1
    processes: int = 2  # workers (of the executor the scenario's parameters name)
    seed: int = 2025
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    morris: Morris = field(default_factory=Morris)
    sobol: Sobol = field(default_factory=Sobol)
    outputs: list[Output] = field(default_factory=list)
    factors: list[Factor] = field(default_factory=list)

    LIMITS: ClassVar[dict[str, Limit]] = {"replications": Limit(1, 10_000),
                                          "processes": Limit(1, 1024),
                                          "seed": Limit(0, 2**32 - 1)}


def settings_from(raw: dict[str, Any]) -> Settings:
    """Checked settings from a plain mapping (the composed ``sensitivity`` node): every value
    of its type and within its bounds, ConfigError naming ``sensitivity.<key>`` otherwise."""
    raw = dict(raw)
    factors = [_factor(k, v) for k, v in _mapping(raw.pop("factors", {}), "factors").items()]
    outputs = [settings_of(Output, {"key": k, **_mapping(v, f"outputs.{k}")},
                           f"sensitivity.outputs.{k}")
               for k, v in _mapping(raw.pop("outputs", {}), "outputs").items()]
    for name, kind in (("morris", Morris), ("sobol", Sobol)):
        if name in raw:
            raw[name] = settings_of(kind, raw[name], f"sensitivity.{name}")
    s = settings_of(Settings, {**raw, "factors": factors, "outputs": outputs}, "sensitivity")
    check_settings(s, "sensitivity")
    check_name("sensitivity.name", s.name)
    check_name("sensitivity.scenario", s.scenario)
    if not s.methods or any(m not in METHODS for m in s.methods) \
            or len(set(s.methods)) < len(s.methods):
        raise ConfigError("sensitivity.methods", s.methods,
                          f"must list each of {', '.join(METHODS)} at most once, at least one")
    if s.morris.levels % 2:
        raise ConfigError("sensitivity.morris.levels", s.morris.levels, "must be even (SALib)")
    if s.sobol.n & (s.sobol.n - 1):
        raise ConfigError("sensitivity.sobol.n", s.sobol.n, "must be a power of two")
    if len(s.factors) < 2:
        raise ConfigError("sensitivity.factors", ConfigError.NO_VALUE,
                          f"at least two factors are needed ({len(s.factors)} given)")
    if not s.outputs:
        raise ConfigError("sensitivity.outputs", ConfigError.NO_VALUE,
                          "at least one output is needed")
    for o in s.outputs:
        u = o.undefined
        if not (u is None or u == "horizon" or (isinstance(u, int | float)
                                               and not isinstance(u, bool) and math.isfinite(u))):
            raise ConfigError(f"sensitivity.outputs.{o.key}.undefined", u,
                              "must be a finite number, horizon or null")
    return s


def _mapping(value: Any, key: str) -> dict[str, Any]:
    """A mapping setting; null is empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"sensitivity.{key}", value, "must be a mapping {key: value}")
    return value


def _factor(key: str, spec: Any) -> Factor:
    """A factor as :class:`sim.studies.space.Factor` takes it: ``label`` is its reason, and
    values are not rounded (the design's positions are used as drawn); checked."""
    where = f"sensitivity.factors.{key}"
    spec = dict(_mapping(spec, f"factors.{key}"))
    f = settings_of(Factor, {"key": key, "reason": spec.pop("label", ""), "significant": None,
                             **spec}, where)
    check_settings(f, where)
    for end in ("low", "high"):
        value = getattr(f, end)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise ConfigError(f"{where}.{end}", value, "must be a finite number")
    if not f.low < f.high:
        raise ConfigError(f"{where}.low", f.low, f"must be below high={f.high}")
    if f.scale not in ("linear", "log") or (f.scale == "log" and f.low <= 0):
        raise ConfigError(f"{where}.scale", f.scale, "must be linear, or log with low > 0")
    return f


def set_values(params: Config, values: dict[str, Any]) -> Config:
    """A validated copy of ``params`` with each dotted key set (ConfigError if not allowed).
    The keys join ``calibration.keep``, so that no ensemble member overrides a factor, and a
    number set on a float setting is a float."""
    for key in values:
        keys.get(params, key)  # KeyError for a key the scenario does not have
    typed = {k: float(v) if isinstance(keys.get(params, k), float) else v
             for k, v in values.items()}
    p = keys.set_values(params, typed)
    p.calibration.keep = [*params.calibration.keep, *values]
    validate(p)
    return p


def check_factors(params: Config, factors: Sequence[Factor]) -> None:
    """Every factor names a value of the scenario, and both ends of its range are valid."""
    for f in factors:
        try:
            keys.get(params, f.key)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ConfigError(f"sensitivity.factors.{f.key}", ConfigError.NO_VALUE,
                              f"no such key in scenario {params.name}") from None
        for u in (0.0, 1.0):
            try:
                set_values(params, {f.key: f.value(u)})
            except ConfigError as err:
                raise ConfigError(f"sensitivity.factors.{f.key}", f.value(u),
                                  f"the model refuses this end of the range ({err})") from None


def _run_point(task: tuple[Config, int]) -> dict[str, Any]:
    from sim.runner import replicate

    params, replications = task
    # Inside a worker: its replications run here, one after the other.
    results = replicate(params, n=replications, jobs=1, progress=False, executor=LOCAL)
    return {"summary": results.summary, "days": int(results.summary.get("days", 0))}


def output_value(result: dict[str, Any], out: Output) -> tuple[float, bool]:
    """(value, undefined) of an output in a point's result; undefined values are replaced."""
    value: Any = result["summary"]
    for part in out.key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is not None and not (isinstance(value, float) and math.isnan(value)):
        return float(value), False
    if out.undefined == "horizon":
        return float(result["days"]), True
    return (math.nan if out.undefined is None else float(out.undefined)), True


def run_points(base: Config, s: Settings, units: np.ndarray, label: str,
               log=None) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Run every design point (rows of ``units`` in [0, 1]); outputs and their undefined flags."""
    tasks = []
    values = []
    for row in units:
        point = {f.key: f.value(u) for f, u in zip(s.factors, row, strict=True)}
        values.append(point)
        tasks.append((set_values(base, point), s.replications))
    results = parallel_map(_run_point, tasks, s.processes, desc=f"sensitivity, {label}",
                           unit="point", executor=base.executor)
    if log:
        log(f"  {label}: {len(results)}/{len(tasks)} runs")
    y = np.full((len(tasks), len(s.outputs)), np.nan)
    undefined = np.zeros_like(y, dtype=bool)
    for i, result in enumerate(results):
        for j, out in enumerate(s.outputs):
            y[i, j], undefined[i, j] = output_value(result, out)
    return y, undefined, values


# -- the study ------------------------------------------------------------------------------------
@dataclass
class Study:
    settings: Settings
    params: Config
    points: Any  # pandas DataFrame: method, point, factor values, outputs, undefined flags
    morris: Any | None  # DataFrame: output, factor, mu, mu_star, mu_star_conf, sigma, rank
    sobol: Any | None  # DataFrame: output, factor, S1, S1_conf, ST, ST_conf, rank
    runtime_s: float
    command: str = ""
    # (method, output) -> why that output has no index (SALib was not run on it)
    undefined: dict[tuple[str, str], str] = field(default_factory=dict)


def problem(s: Settings) -> dict[str, Any]:
    """SALib's problem over the unit cube (factor values are mapped from [0, 1])."""
    return {"num_vars": len(s.factors), "names": [f.key for f in s.factors],
            "bounds": [[0.0, 1.0]] * len(s.factors)}


def run_study(s: Settings, base: Config, log=None, command: str = "") -> Study:
    """Run the study on the scenario ``base`` (typed parameters)."""
    import pandas as pd
    from SALib.analyze import morris as morris_analyze
    from SALib.analyze import sobol as sobol_analyze
    from SALib.sample import morris as morris_sample
    from SALib.sample import sobol as sobol_sample

    t0 = time.perf_counter()
    check_factors(base, s.factors)
    prob = problem(s)
    frames, morris_rows, sobol_rows = [], [], []
    undefined_indices: dict[tuple[str, str], str] = {}
    for method in s.methods:
        if method == "morris":
            levels = s.morris.levels
            units = morris_sample.sample(prob, s.morris.trajectories, num_levels=levels,
                                         seed=s.seed)
        else:
            units = sobol_sample.sample(prob, s.sobol.n, calc_second_order=False,
                                        seed=s.seed)
        if log:
            log(f"{method}: {len(units)} runs of {s.replications} replication(s) "
                f"in {s.processes} process(es)")
        y, undefined, values = run_points(base, s, units, method, log)
        frame = pd.DataFrame(values)
        frame.insert(0, "point", range(len(frame)))
        frame.insert(0, "method", method)
        for j, out in enumerate(s.outputs):
            frame[out.key] = y[:, j]
            frame[f"{out.key}_undefined"] = undefined[:, j]
        frames.append(frame)
        for j, out in enumerate(s.outputs):
            why = no_index_reason(y[:, j], undefined[:, j], out)
            if why is not None:
                undefined_indices[(method, out.key)] = why
                if log:
                    log(f"  {out.key}: no {method} index: {why}")
                continue
            if method == "morris":
                res = morris_analyze.analyze(prob, units, y[:, j], num_levels=levels,
                                             num_resamples=1000, seed=s.seed)
                for i, f in enumerate(s.factors):
                    morris_rows.append({"output": out.key, "factor": f.key,
                                        "mu": res["mu"][i], "mu_star": res["mu_star"][i],
                                        "mu_star_conf": res["mu_star_conf"][i],
                                        "sigma": res["sigma"][i],
                                        "undefined_runs": int(undefined[:, j].sum())})
            else:
                res = sobol_analyze.analyze(prob, y[:, j], calc_second_order=False,
                                            num_resamples=s.sobol.resamples,
                                            seed=s.seed)
                for i, f in enumerate(s.factors):
                    sobol_rows.append({"output": out.key, "factor": f.key,
                                       "S1": res["S1"][i], "S1_conf": res["S1_conf"][i],
                                       "ST": res["ST"][i], "ST_conf": res["ST_conf"][i],
                                       "undefined_runs": int(undefined[:, j].sum())})
    morris = _ranked(pd.DataFrame(morris_rows), "mu_star") if morris_rows else None
    sobol = _ranked(pd.DataFrame(sobol_rows), "ST") if sobol_rows else None
    points = pd.concat(frames, ignore_index=True)
    return Study(s, base, points, morris, sobol, time.perf_counter() - t0, command,
                 undefined_indices)


def no_index_reason(y: np.ndarray, undefined: np.ndarray, out: Output) -> str | None:
    """Why an output's sensitivity indices are undefined over a design's runs, or None.

    An index divides by the output's spread: an output that is the same in every run (the
    backlog never clears before the horizon, counted as its length; a figure no factor moves)
    has none. Sobol's would be 0/0 (SALib warns and returns NaN), Morris' a row of zeros read
    as "no effect" when the design only never saw one. Neither is computed; the report says
    why."""
    if np.isnan(y).any():
        return "undefined in some runs and no `undefined` value for it"
    if len(y) and np.ptp(y) == 0:
        if undefined.all():
            counted = ("counted as the run's length" if out.undefined == "horizon"
                       else f"counted as {out.undefined}")
            return f"undefined in every run ({counted}): the same value in all of them"
        return f"the same value ({y[0]:g}) in every run: no factor moved it"
    return None


def _ranked(table, by: str):
    table["rank"] = table.groupby("output")[by].rank(ascending=False, method="min").astype(int)
    return table.sort_values(["output", "rank"], kind="stable").reset_index(drop=True)


# -- outputs --------------------------------------------------------------------------------------
def _labels(s: Settings) -> tuple[dict[str, str], dict[str, str]]:
    return ({f.key: f.reason or f.key for f in s.factors},
            {o.key: o.label or o.key for o in s.outputs})


def sensitivity_figure(study: Study):
    """Per output (rows): Morris mu* with its interval and sigma; Sobol S1 and ST."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from sim.plotting import PALETTE  # first: it selects the backend

    s = study.settings
    flabel, olabel = _labels(s)
    outputs = [o.key for o in s.outputs]
    columns = [m for m in ("morris", "sobol") if getattr(study, m) is not None]
    fig, axes = plt.subplots(len(outputs), max(len(columns), 1), squeeze=False,
                             figsize=(6.5 * max(len(columns), 1), 0.45 * len(s.factors)
                                      * len(outputs) + 1.2 * len(outputs)),
                             layout="constrained")
    for r, out in enumerate(outputs):
        for c, method in enumerate(columns):
            ax = axes[r][c]
            table = getattr(study, method)
            t = table[table["output"] == out].sort_values("rank", ascending=False)
            if t.empty:
                why = study.undefined.get((method, out), "undefined values")
                ax.text(0.5, 0.5, textwrap.fill(f"no index: {why}", 50), ha="center",
                        va="center", transform=ax.transAxes, fontsize=8)
                ax.set_axis_off()
                continue
            y = np.arange(len(t))
            names = [flabel[k] for k in t["factor"]]
            if method == "morris":
                ax.barh(y, t["mu_star"], xerr=t["mu_star_conf"], color=PALETTE[0],
                        label="mu* (mean |elementary effect|), 95 % interval")
                ax.plot(t["sigma"], y, "D", color=PALETTE[1], label="sigma (interactions, "
                        "non-linearity)")
                ax.set_xlabel("effect over the factor's whole range (output units)")
            else:
                h = 0.38
                ax.barh(y + h / 2, t["ST"], height=h, xerr=t["ST_conf"], color=PALETTE[2],
                        label="total index ST, 95 % interval")
                ax.barh(y - h / 2, t["S1"], height=h, xerr=t["S1_conf"], color=PALETTE[5],
                        label="first-order index S1")
                ax.set_xlabel("share of the output's variance")
                ax.axvline(0, color="grey", lw=0.8)
            ax.set_yticks(y, names, fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(textwrap.fill(f"{method.capitalize()}: {olabel[out]}", 60), fontsize=9)
            if r == 0:
                ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Sensitivity of scenario '{study.params.name}' ({study.params.start_date} to "
                 f"{_end(study.params)}, {len(study.points)} runs)", fontsize=11)
    return fig


def report_text(study: Study) -> str:
    s = study.settings
    flabel, olabel = _labels(s)
    n_runs = len(study.points)
    lines = [f"# Sensitivity of scenario {study.params.name}: {s.name}", "",
             f"- command: `{study.command or 'run_study()'}`",
             f"- {study.params.start_date} to {_end(study.params)}, "
             f"seed {study.params.seed} for every point (common random numbers), "
             f"{s.replications} replication(s) a point",
             f"- {n_runs} runs in {s.processes} process(es), {study.runtime_s:.0f} s",
             f"- methods: {', '.join(s.methods)} (SALib); factors over their ranges:", ""]
    lines += [f"  - `{f.key}` ({flabel[f.key]}): {f.low:g} to {f.high:g}"
              f"{' (log scale)' if f.scale == 'log' else ''}{' (integer)' if f.integer else ''}"
              for f in s.factors]
    for out in s.outputs:
        lines += ["", f"## {olabel[out.key]} (`{out.key}`)", ""]
        undefined = int(study.points[f"{out.key}_undefined"].sum())
        if undefined:
            lines.append(f"Undefined in {undefined} of {n_runs} runs"
                         + (" (counted as the run's length in days: a lower bound)."
                            if out.undefined == "horizon" else "."))
            lines.append("")
        for table, intro, columns in (
                (study.morris, "Morris screening (mu*: mean absolute effect of moving the "
                 "factor over its range; sigma: spread of the effects, i.e. interactions or "
                 "non-linearity):", ["rank", "factor", "mu_star", "mu_star_conf", "sigma", "mu"]),
                (study.sobol, "Sobol indices (ST: share of the variance due to the factor with "
                 "its interactions; S1: alone). Intervals wider than the indices mean the sample "
                 "is too small to tell:", ["rank", "factor", "ST", "ST_conf", "S1", "S1_conf"])):
            t = None if table is None else table[table["output"] == out.key]
            if t is not None and len(t):
                lines += [intro, "", markdown_table(t[columns]), ""]
        for method in s.methods:
            why = study.undefined.get((method, out.key))
            if why is not None:
                lines += [f"No {method.capitalize()} index: {why}.", ""]
    return "\n".join(lines) + "\n"


def _end(params: Config) -> str:
    """The run's last day (end_date, or start_date + horizon_days - 1)."""
    from sim.policies import parse_date
    from sim.runner import horizon_days

    return (parse_date(params.start_date)
            + dt.timedelta(days=horizon_days(params) - 1)).isoformat()


def write_results(study: Study, out_dir: Path) -> list[str]:
    """points.csv, morris.csv, sobol.csv, sensitivity.png, then report.md."""
    from sim import run_folder
    from sim.outputs import atomic_write, save_figure, write_csv

    folder = run_folder.claim(Path(out_dir), "sensitivity", "hydra.run.dir")
    out_dir = run_folder.staging(folder)  # beside an earlier result, swapped in once complete
    written = ["points.csv"]
    write_csv(out_dir / "points.csv", study.points)
    for method in ("morris", "sobol"):
        table = getattr(study, method)
        if table is not None:
            write_csv(out_dir / f"{method}.csv", table)
            written.append(f"{method}.csv")
    if study.morris is not None or study.sobol is not None:
        save_figure(sensitivity_figure(study), out_dir / "sensitivity")
        written.append("sensitivity.png")
    text = report_text(study)
    atomic_write(out_dir / "report.md", lambda tmp: tmp.write_text(text))
    written.append("report.md")
    run_folder.commit(folder, "sensitivity", "report.md")
    return written
