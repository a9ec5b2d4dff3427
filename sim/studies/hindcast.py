"""Out-of-sample hindcast: calibrate on the months observed up to an origin, predict the rest.

For each origin (a month): the calibration recipe with the observed series cut at the origin
(``observations.last_month``), the later months kept as checks, not targets; its ensemble run
as users run it (each replication draws a member); each later month's predictive distribution
of the *observed* index: the replications' values plus the observation error and the model
discrepancy (normal, the variances the implausibility uses), ``noise_draws`` draws each.

Scored per month (Gneiting & Raftery 2007): whether the observation falls inside the central
50 % and 90 % predictive intervals, the interval score of the 90 % interval
(width + 2/alpha * distance outside, alpha = 0.1) and the CRPS. Against two forecasts:

- naive: the origin's observed index carried forward; its intervals from a random walk whose
  monthly step has the root-mean-square month-on-month change observed up to the origin
  (sd * sqrt(h) at h months ahead, normal);
- the full calibration: the committed ensemble, which saw every month (in-sample; what the
  origin's calibration gives up by not seeing them).

Studies receive plain parameters: this module never composes Hydra.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from sim import observations as obs
from sim.exports import month_end
from sim.params import Config
from sim.studies import calibration
from sim.studies import history_matching as hm
from sim.studies.report import markdown_table
from sim.studies.targets import Target, target_discrepancy
from sim.validation import ConfigError

LEVELS = (0.5, 0.9)


@dataclass
class Settings:
    """``hindcast`` in configs/hindcast.yaml."""

    origins: list[str] = field(default_factory=lambda: ["2025-06", "2025-08", "2025-10"])
    until: str = "2025-12"  # the last month predicted
    replications: int = 40  # of each origin's ensemble, predicting the later months
    noise_draws: int = 200  # draws of observation error and discrepancy per replication
    seed: int = 2026  # of those draws
    reference: bool = True  # also score the committed calibration on the same months

    LIMITS: ClassVar[dict[str, hm.Limit]] = {
        "replications": hm.Limit(2, 10_000), "noise_draws": hm.Limit(1, 10_000),
        "seed": hm.Limit(0, 2**32 - 1)}


def check(s: Settings, cal: calibration.Settings) -> None:
    """One line naming ``hindcast.<key>`` for settings a hindcast cannot use."""
    hm.check_settings(s, "hindcast")
    if not s.origins:
        raise ConfigError("hindcast.origins", s.origins, "must name at least one month")
    for origin in [*s.origins, s.until]:
        try:
            month_end(str(origin))
        except ValueError:
            raise ConfigError("hindcast.origins", origin, "must be months YYYY-MM") from None
    if sorted(set(s.origins)) != list(s.origins):
        raise ConfigError("hindcast.origins", s.origins, "must be distinct months in order")
    if s.origins[-1] >= s.until:
        raise ConfigError("hindcast.until", s.until,
                          f"must be after the last of hindcast.origins, {s.origins[-1]}")
    if s.origins[0] < cal.observations.first_month:
        raise ConfigError("hindcast.origins", s.origins[0], "must not be before "
                          f"calibrate.observations.first_month={cal.observations.first_month}")
    if not cal.observations.series:
        raise ConfigError("calibrate.observations.series", [], "a hindcast needs at least one "
                                                               "observed series")


@dataclass
class Hindcast:
    settings: Settings
    rows: pd.DataFrame  # one per (origin, forecast, series, month)
    origins: list[dict[str, Any]]  # per origin: members, share of the prior box left, time
    seconds: float
    cpu_seconds: float

    def summary(self) -> pd.DataFrame:
        """Per origin and forecast: months predicted, coverage, mean interval score, CRPS."""
        g = self.rows.groupby(["origin", "forecast"], sort=False)
        return g.agg(months=("month", "size"), coverage_50=("inside_50", "mean"),
                     coverage_90=("inside_90", "mean"), interval_score_90=("interval_score_90",
                                                                           "mean"),
                     crps=("crps", "mean")).reset_index()


def origin_settings(cal: calibration.Settings, origin: str, until: str) -> calibration.Settings:
    """The calibration recipe with the observed series read up to ``origin`` only."""
    o = dataclasses.replace(cal.observations, last_month=origin, check_until=until)
    return dataclasses.replace(cal, observations=o, check_replications=0, install=False)


def run(params: Config, cal_settings: calibration.Settings, s: Settings,
        log: Callable[[str], None] | None = None) -> Hindcast:
    """Calibrate at each origin and score its predictions (module docstring)."""
    say = log or (lambda _msg: None)
    check(s, cal_settings)
    t0, cpu0 = time.monotonic(), time.process_time()
    cache = hm.RunCache()  # the origins share their first wave's runs
    rng = np.random.default_rng(s.seed)
    rows, origins = [], []
    cpu = 0.0
    for origin in s.origins:
        say(f"origin {origin}: calibrating on the months to {origin}")
        cs = origin_settings(cal_settings, origin, s.until)
        cal = calibration.calibrate(params, cs, log=say, cache=cache)
        cpu += sum(w.cpu_seconds for w in cal.match.waves)
        ahead = later_months(cal.match.targets, origin)
        members = cal.member_points()
        origins.append(dict(origin=origin, members=len(members),
                            region_share=cal.match.final_share,
                            waves=len(cal.match.waves), seconds=round(cal.match.seconds, 1)))
        if not members:
            say(f"origin {origin}: no ensemble member; nothing predicted")
            continue
        say(f"origin {origin}: {len(members)} members predict {len(ahead)} later months "
            f"({s.replications} replications)")
        with calibration.ensemble_params(cal) as p:
            values = calibration.ensemble_values(p, ahead, s.replications, cs.match.jobs)
        rows += score(origin, "model", ahead, values, cs.match.discrepancy, s.noise_draws, rng)
        rows += naive_rows(origin, ahead, cal.match.targets)
    if s.reference:
        say(f"reference: the committed calibration, {s.replications} replications")
        ref = reference_targets(params, cal_settings, s)
        p = copy.deepcopy(calibration.cut_to_targets(params, ref, cal_settings.end_margin_days))
        p.calibration.ensemble = params.calibration.ensemble
        values = calibration.ensemble_values(p, ref, s.replications, cal_settings.match.jobs)
        for origin in s.origins:
            keep = [k for k, t in enumerate(ref) if t.date[:7] > origin]
            rows += score(origin, "full calibration", [ref[k] for k in keep], values[:, keep],
                          cal_settings.match.discrepancy, s.noise_draws, rng)
    return Hindcast(s, pd.DataFrame(rows), origins, time.monotonic() - t0,
                    cpu + time.process_time() - cpu0)


def later_months(targets: list[Target], origin: str) -> list[Target]:
    """The observed months after ``origin`` (the checks a hindcast predicts)."""
    return [t for t in targets if t.id.startswith("exports_") and t.date[:7] > origin]


def reference_targets(params: Config, cal: calibration.Settings, s: Settings) -> list[Target]:
    """Every observed month after the first origin, as the full calibration reads them."""
    o = dataclasses.replace(cal.observations, check_until=s.until)
    series = obs.targets(obs.load(calibration.REPO_DIR / o.file), o)
    return later_months(series, s.origins[0])


def _series(t: Target) -> str:
    return t.id.split("_")[1]


def _horizon(origin: str, month: str) -> int:
    a, b = dt.date.fromisoformat(origin + "-01"), dt.date.fromisoformat(month + "-01")
    return (b.year - a.year) * 12 + b.month - a.month


def interval_score(low: float, high: float, y: float, alpha: float) -> float:
    """Gneiting & Raftery's interval score of the central (1 - alpha) interval: lower is
    better; its width plus 2 / alpha times the distance of an observation outside."""
    return (high - low) + 2 / alpha * max(low - y, 0.0) + 2 / alpha * max(y - high, 0.0)


def crps_samples(x: np.ndarray, y: float) -> float:
    """CRPS of a sample as the forecast: E|X - y| - E|X - X'| / 2 (sorted-sample formula)."""
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    spread = 2.0 * np.sum(x * (2 * np.arange(1, n + 1) - n - 1)) / n**2
    return float(np.mean(np.abs(x - y)) - spread / 2)


def crps_normal(mu: float, sd: float, y: float) -> float:
    """CRPS of a normal forecast (closed form)."""
    if sd <= 0:
        return abs(y - mu)
    z = (y - mu) / sd
    return float(sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z)
                       - 1 / np.sqrt(np.pi)))


def score(origin: str, forecast: str, targets: list[Target], values: np.ndarray,
          discrepancy: dict[str, float], draws: int, rng: np.random.Generator
          ) -> list[dict[str, Any]]:
    """Rows scoring the model's predictive distribution of each target's observed value:
    ``values`` (replications, targets) plus normal observation error and discrepancy."""
    rows = []
    for k, t in enumerate(targets):
        v = values[:, k][np.isfinite(values[:, k])]
        sd = float(np.sqrt(t.observation_var + target_discrepancy(t, discrepancy) ** 2))
        sample = (np.repeat(v, draws) + rng.normal(0.0, sd, len(v) * draws)) if len(v) else v
        rows.append(_row(origin, forecast, t, sample=sample, model_mean=float(np.mean(v))
                         if len(v) else np.nan))
    return rows


def naive_rows(origin: str, ahead: list[Target], targets: list[Target]) -> list[dict[str, Any]]:
    """The origin month's observation carried forward, each series its own random walk."""
    rows = []
    for t in ahead:
        seen = sorted((u.date, u.observed) for u in targets if u.id.startswith("exports_")
                      and _series(u) == _series(t) and u.date[:7] <= origin)
        if len(seen) < 2:
            continue
        level = np.array([v for _, v in seen])
        step = float(np.sqrt(np.mean(np.diff(level) ** 2)))
        h = _horizon(origin, t.date[:7])
        rows.append(_row(origin, "naive", t, mu=float(level[-1]), sd=step * np.sqrt(h)))
    return rows


def _row(origin: str, forecast: str, t: Target, sample: np.ndarray | None = None,
         mu: float | None = None, sd: float | None = None,
         model_mean: float | None = None) -> dict[str, Any]:
    y = t.observed
    row: dict[str, Any] = dict(origin=origin, forecast=forecast, series=_series(t),
                               month=t.date[:7], horizon_months=_horizon(origin, t.date[:7]),
                               observed=y, kind=t.reading)
    if sample is not None and len(sample) == 0:
        return {**row, "mean": np.nan, "inside_50": False, "inside_90": False,
                "interval_score_90": np.nan, "crps": np.nan}
    for level in LEVELS:
        q = (1 - level) / 2
        if sample is not None:
            lo, hi = np.quantile(sample, [q, 1 - q])
        else:
            lo, hi = stats.norm.ppf([q, 1 - q], mu, sd) if sd > 0 else (mu, mu)
        row[f"low_{level:.0%}".replace("%", "")] = float(lo)
        row[f"high_{level:.0%}".replace("%", "")] = float(hi)
        row[f"inside_{level:.0%}".replace("%", "")] = bool(lo <= y <= hi)
    row["mean"] = float(np.mean(sample)) if sample is not None else mu
    if model_mean is not None:
        row["model_mean"] = model_mean
    row["interval_score_90"] = interval_score(row["low_90"], row["high_90"], y, 0.1)
    row["crps"] = crps_samples(sample, y) if sample is not None else crps_normal(mu, sd, y)
    return row


def report_text(h: Hindcast, command: str) -> str:
    s = h.settings
    summary = h.summary()
    parts = [
        "# Hindcast", "",
        f"Origins {', '.join(s.origins)}: at each, the calibration recipe read the observed "
        f"months up to the origin only, and its ensemble ({s.replications} replications, each "
        f"drawing a member) predicted every later month to {s.until}, with observation error "
        "and model discrepancy added. Naive: the origin's observation carried forward, a "
        "random walk's intervals. Full calibration: the committed ensemble (saw every month). "
        f"{h.seconds / 60:.1f} minutes. Command: `{command}`.", "",
        "## Scores per origin", "",
        "Coverage: share of predicted months whose observation fell inside the central "
        "interval (nominal 0.5 and 0.9). Interval score (90 %) and CRPS: lower is better.", "",
        markdown_table(summary), "",
        "## Origins", "", markdown_table(pd.DataFrame(h.origins)), "",
        "## Every predicted month", "", markdown_table(h.rows), ""]
    return "\n".join(parts)


def observed_table(cal: calibration.Settings, until: str) -> pd.DataFrame:
    """The observed months of the series used, to ``until``: month, series, observed, kind."""
    o = cal.observations
    return pd.DataFrame([dict(month=x.month, series=x.series, observed=x.index, kind=x.kind)
                         for x in obs.load(calibration.REPO_DIR / o.file)
                         if x.series in o.series and o.first_month <= x.month <= until])


def write_results(h: Hindcast, out_dir: Path, command: str, observed: pd.DataFrame) -> None:
    """hindcast.csv, hindcast_summary.csv, report.md and hindcast.png, swapped in together."""
    from sim import run_folder
    from sim.outputs import atomic_write

    folder = run_folder.claim(out_dir, "hindcast", "hydra.run.dir")
    staged = run_folder.staging(folder)
    atomic_write(staged / "hindcast.csv", lambda tmp: h.rows.to_csv(tmp, index=False))
    atomic_write(staged / "hindcast_summary.csv",
                 lambda tmp: h.summary().to_csv(tmp, index=False))
    _figure(h, staged / "hindcast.png", observed)
    text = report_text(h, command)
    atomic_write(staged / "report.md", lambda tmp: tmp.write_text(text))
    run_folder.commit(folder, "hindcast", "report.md")


def _figure(h: Hindcast, path: Path, observed: pd.DataFrame) -> None:
    from sim.outputs import atomic_write
    from sim.plot_exports import hindcast_figure

    fig = hindcast_figure(h.rows, h.settings.origins, observed)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
