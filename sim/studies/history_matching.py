"""History matching in waves (Vernon et al. 2010; Andrianakis et al. 2015).

1. Wave 1: a Latin hypercube over the prior box. Each point runs once; a point that one run
   already puts far outside (implausibility above ``screen_cutoff`` with no realisation
   variance; 5 by default, well above the cutoff of 3) gets no more runs, the others run
   ``replications`` times in all. Replications go where they decide something.
2. After each wave, a Gaussian-process emulator per target (scikit-learn) of the mean output on
   the target's scale, and one of the log variance of a single realisation (the pooled,
   emulated variance: a few replications per point give a noisy variance, the emulator
   borrows strength from neighbouring points).
3. Implausibility of a point (:func:`sim.studies.targets.implausibility`), maximised over the
   chosen targets; cutoff 3 (Pukelsheim's three-sigma rule).
4. The non-implausible region after wave k: the prior samples that no emulator of waves 1..k
   rules out. Its share of the prior box is reported; the next wave samples inside it
   (rejection), and the waves stop when the share stops shrinking (or at the last wave).
5. The ensemble: simulated points not ruled out by their own runs nor by any later emulator.

Studies receive plain parameters: this module never composes Hydra. Every simulation goes
through :func:`sim.executor.parallel_map`, each point with its own seed from a SeedSequence.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sim.executor import parallel_map
from sim.params import Config
from sim.runner import simulate
from sim.studies import space
from sim.studies.settings import Limit, check_name, check_settings, settings_of
from sim.studies.targets import (
    SCALES,
    Target,
    implausibility,
    output_values,
    target_days,
    target_discrepancy,
)
from sim.validation import ConfigError

__all__ = ["Limit", "check_name", "check_settings", "settings_of"]


# Study settings are checked by sim.studies.settings (re-exported here for the studies).
@dataclass
class Settings:
    """How the history match runs (``configs/calibrate/*.yaml``)."""

    cutoff: float = 3.0
    # Model discrepancy: standard deviation on each target scale (log10 for counts, so 0.05 is
    # about +-12 %; linear for shares and ratios).
    discrepancy: dict[str, float] = field(default_factory=lambda: {"log": 0.05, "linear": 0.02})
    waves: int = 4  # at most
    points: int = 100  # simulated per wave (as configs/calibrate/default.yaml)
    replications: int = 4  # per point; the realisation variance is emulated across points
    screen_cutoff: float = 5.0  # after one run, points above this get no further runs
    candidates: int = 50000  # prior samples estimating each region's share, drawing the next wave
    stop_ratio: float = 0.8  # stop once a wave keeps more than this share of the last region
    seed: int = 2025
    jobs: int = 1
    # Which implausibility of a point's targets is compared with the cutoff: 1 the largest; 2
    # the second largest (Vernon et al. 2010, I_2M): with tens of monthly readings one of
    # them beyond 3 is expected by chance alone, and the largest must still stay below
    # ``cutoff_largest``.
    rank: int = 2
    cutoff_largest: float = 4.0

    # Upper bounds: a wave's Gaussian processes cost points**3, and each prediction over the
    # candidates a (candidates x points) matrix; beyond these a value is surely a typo.
    LIMITS: ClassVar[dict[str, Limit]] = {
        "cutoff": Limit(0, 100, above=True), "screen_cutoff": Limit(0, 100, above=True),
        "waves": Limit(1, 20), "points": Limit(2, 1000), "replications": Limit(1, 100),
        "candidates": Limit(2, 200_000), "stop_ratio": Limit(0, 1, above=True),
        "seed": Limit(0, 2**32 - 1), "jobs": Limit(1, 1024), "rank": Limit(1, 10),
        "cutoff_largest": Limit(0, 100, above=True)}


def check(s: Settings, prefix: str = "match") -> None:
    """Refuse settings a history match cannot use, in one line naming ``prefix.<field>``:
    types and bounds (:func:`check_settings`), then the settings taken together."""
    check_settings(s, prefix)
    if set(s.discrepancy) != set(SCALES):
        raise ConfigError(f"{prefix}.discrepancy", s.discrepancy,
                          f"must give one sd for each target scale: {', '.join(SCALES)}")
    for scale, sd in s.discrepancy.items():
        if not sd >= 0:
            raise ConfigError(f"{prefix}.discrepancy.{scale}", sd, "must be a finite number >= 0")
    if s.candidates < s.points:  # a wave's points are drawn among the candidates
        raise ConfigError(f"{prefix}.candidates", s.candidates,
                          f"must be at least {prefix}.points={s.points}")
    if s.screen_cutoff < s.cutoff:  # screening below the cutoff would drop plausible points
        raise ConfigError(f"{prefix}.screen_cutoff", s.screen_cutoff,
                          f"must be at least {prefix}.cutoff={s.cutoff}")
    if s.cutoff_largest < s.cutoff:
        raise ConfigError(f"{prefix}.cutoff_largest", s.cutoff_largest,
                          f"must be at least {prefix}.cutoff={s.cutoff}")


def plausible(imp: np.ndarray, s: Settings, cutoff: float | None = None) -> np.ndarray:
    """Rows of ``imp`` (points, targets) not ruled out: the ``rank``-th largest at most
    ``cutoff`` (the settings' by default) and the largest at most ``cutoff_largest``. NaN
    counts as infinite (a run that gave no value)."""
    imp = np.nan_to_num(np.asarray(imp, dtype=float), nan=np.inf)
    if imp.shape[1] == 0:
        return np.ones(len(imp), dtype=bool)
    k = min(s.rank, imp.shape[1])
    kth = -np.partition(-imp, k - 1, axis=1)[:, k - 1]
    return (kth <= (s.cutoff if cutoff is None else cutoff)) & (
        imp.max(axis=1) <= max(s.cutoff_largest, s.cutoff if cutoff is None else cutoff))


@dataclass
class Wave:
    number: int
    points: int
    runs: int  # simulations made (one per point, more for those not screened out)
    region_share: float  # share of the prior box not ruled out before this wave (1 for wave 1)
    non_implausible_runs: int  # of its simulated points, not ruled out by their own runs
    seconds: float
    cpu_seconds: float


@dataclass
class Match:
    """Everything a history match produced, for reports and the ensemble."""

    factors: list[space.Factor]
    targets: list[Target]  # every reading (chosen and alternatives)
    chosen: list[int]  # indices of the chosen readings in ``targets``
    units: np.ndarray  # (points, factors) in [0, 1)
    wave_of: np.ndarray  # (points,)
    outputs: np.ndarray  # (points, replications, targets)
    imp: np.ndarray  # (points, chosen): implausibility from the point's own runs
    ruled_out_later: np.ndarray  # (points,) bool: ruled out by a later wave's emulator
    waves: list[Wave]
    final_share: float  # share of the prior box left after the last wave
    settings: Settings
    seconds: float = 0.0

    @property
    def max_imp(self) -> np.ndarray:
        return self.imp.max(axis=1)

    @property
    def members(self) -> np.ndarray:
        """Indices of the ensemble: not ruled out by their runs, nor by a later emulator."""
        ok = plausible(self.imp, self.settings) & ~self.ruled_out_later
        return np.flatnonzero(ok)

    def values(self, i: int) -> dict[str, Any]:
        return space.values_at(self.factors, self.units[i])


# -- simulations ---------------------------------------------------------------------------------
def point_seed(seed: int, wave: int, index: int) -> int:
    """Seed of design point ``index`` of ``wave``: from a SeedSequence, never from a worker."""
    return int(np.random.SeedSequence(seed, spawn_key=(wave, index)).generate_state(1)[0])


def _run_point(task: tuple[Config, range, list[Target], np.ndarray]
               ) -> tuple[np.ndarray, float]:
    params, reps, targets, days = task
    cpu = time.process_time()
    values = np.array([output_values(simulate(params, replication=r), targets, days)
                       for r in reps]).reshape(len(reps), len(targets))
    return values, time.process_time() - cpu


def run_points(points: Sequence[Config], replications: int | range, targets: Sequence[Target],
               jobs: int = 1, desc: str = "", cache: RunCache | None = None
               ) -> tuple[np.ndarray, float]:
    """(points, replications, targets) outputs, and the CPU seconds the simulations took.
    ``replications``: a count (0..n-1) or a range of replication indices. With a ``cache``,
    a (point, replication) already run is taken from it, not run again."""
    reps = range(replications) if isinstance(replications, int) else replications
    if not points:
        return np.empty((0, len(reps), len(targets))), 0.0
    if cache is not None:
        return cache.run(points, reps, targets, jobs, desc)
    days = target_days(targets, points[0].start_date)
    tasks = [(p, reps, list(targets), days) for p in points]
    results = parallel_map(_run_point, tasks, jobs, desc=desc, unit="point",
                           executor=points[0].executor)
    return np.array([v for v, _ in results]), sum(c for _, c in results)


class RunCache:
    """Outputs of (point, replication) runs kept for studies that repeat runs: a hindcast's
    origins share their first wave (same design, same seeds, same targets). A run is found by
    the point's whole parameters, its replication and the targets' ids."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, int, tuple[str, ...]], np.ndarray] = {}
        self.reused = 0

    def run(self, points: Sequence[Config], reps: range, targets: Sequence[Target], jobs: int,
            desc: str) -> tuple[np.ndarray, float]:
        ids = tuple(t.id for t in targets)
        keys = [[(repr(p), r, ids) for r in reps] for p in points]
        todo = [i for i, row in enumerate(keys) if any(k not in self._runs for k in row)]
        cpu = 0.0
        if todo:
            fresh, cpu = run_points([points[i] for i in todo], reps, targets, jobs, desc)
            for j, i in enumerate(todo):
                for k, key in enumerate(keys[i]):
                    self._runs[key] = fresh[j, k]
        self.reused += (len(points) - len(todo)) * len(reps)
        return np.array([[self._runs[k] for k in row] for row in keys]), cpu


def screened_runs(points: Sequence[Config], targets: Sequence[Target], chosen: Sequence[int],
                  s: Settings, desc: str, cache: RunCache | None = None
                  ) -> tuple[np.ndarray, float]:
    """Outputs (points, replications, targets): one run each, then the other replications for
    the points one run does not put beyond ``screen_cutoff`` (NaN for runs not made)."""
    first, cpu = run_points(points, 1, targets, s.jobs, desc=f"{desc}, first runs", cache=cache)
    out = np.full((len(points), s.replications, len(targets)), np.nan)
    out[:, :1] = first
    chosen_t = [targets[k] for k in chosen]
    one = np.stack([implausibility(t, first[:, 0, k], 0.0, 0.0,
                                   target_discrepancy(t, s.discrepancy))
                    for t, k in zip(chosen_t, chosen, strict=True)], axis=1)
    go = np.flatnonzero(plausible(one, s, cutoff=s.screen_cutoff))
    if s.replications > 1 and len(go):
        rest, more = run_points([points[i] for i in go], range(1, s.replications), targets,
                                s.jobs, desc=f"{desc}, more runs", cache=cache)
        out[go, 1:] = rest
        cpu += more
    return out, cpu


# -- emulators -----------------------------------------------------------------------------------
def _gp(d: int, seed: int):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.full(d, 0.5), (0.05, 50.0))
              + WhiteKernel(1e-2, (1e-6, 1.0)))
    return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=1,
                                    random_state=seed)


class Emulator:
    """Per chosen target: a GP of the mean output and one of the log realisation variance."""

    def __init__(self, units: np.ndarray, scaled: np.ndarray, seed: int):
        """``scaled``: (points, replications, chosen targets) on the targets' scales."""
        from sklearn.exceptions import ConvergenceWarning

        self.mean_gps, self.var_gps = [], []
        # Points screened out after one run inform the mean; the variance is learnt from the
        # points with several runs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (ConvergenceWarning, RuntimeWarning))
            means = np.nanmean(scaled, axis=1)
            runs = np.isfinite(scaled).sum(axis=1)
            log_vars = np.log(np.nanvar(scaled, axis=1, ddof=1) + 1e-10)
            for k in range(scaled.shape[2]):
                ok = np.isfinite(means[:, k])
                self.mean_gps.append(_gp(units.shape[1], seed + k).fit(units[ok], means[ok, k]))
                several = ok & (runs[:, k] > 1)
                if several.sum() < 3:  # too few to learn a variance: none
                    several = ok
                    log_vars[:, k] = np.log(1e-10)
                self.var_gps.append(_gp(units.shape[1], seed + 100 + k).fit(
                    units[several], log_vars[several, k]))

    def predict(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Emulated mean, the emulator's variance of it, and the realisation variance:
        each (points, chosen targets)."""
        mean, var_m, var_s = [], [], []
        for mgp, vgp in zip(self.mean_gps, self.var_gps, strict=True):
            m, sd = mgp.predict(units, return_std=True)
            mean.append(m)
            var_m.append(sd**2)
            var_s.append(np.exp(vgp.predict(units)))
        return np.array(mean).T, np.array(var_m).T, np.array(var_s).T


def scaled_outputs(outputs: np.ndarray, targets: Sequence[Target]) -> np.ndarray:
    """Outputs (..., targets) on each target's scale."""
    return np.stack([t.to_scale(outputs[..., k]) for k, t in enumerate(targets)], axis=-1)


def emulated_implausibility(em: Emulator, units: np.ndarray, targets: Sequence[Target],
                            discrepancy: dict[str, float]) -> np.ndarray:
    """(points, targets) implausibility of unsimulated points, from an emulator."""
    mean, var_m, var_s = em.predict(units)
    return np.stack([implausibility(t, _unscale(t, mean[:, k]), var_s[:, k], var_m[:, k],
                                    target_discrepancy(t, discrepancy))
                     for k, t in enumerate(targets)], axis=1)


def _unscale(t: Target, x: np.ndarray) -> np.ndarray:
    """Inverse of Target.to_scale (implausibility takes values on the output's own scale)."""
    return 10.0**x if t.scale == "log" else x


def run_implausibility(scaled: np.ndarray, var_s: np.ndarray, targets: Sequence[Target],
                       discrepancy: dict[str, float]) -> np.ndarray:
    """(points, targets) implausibility from the points' own runs: the mean of the replications
    on the target's scale, the (emulated) realisation variance, and its share var_s / n for the
    estimate of the mean."""
    n = np.isfinite(scaled).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(scaled, axis=1)
    imp = np.stack([implausibility(t, _unscale(t, mean[:, k]), var_s[:, k],
                                   var_s[:, k] / np.maximum(n[:, k], 1),
                                   target_discrepancy(t, discrepancy))
                    for k, t in enumerate(targets)], axis=1)
    return np.nan_to_num(imp, nan=np.inf)  # a run that gave no value rules its point out


# -- the waves -----------------------------------------------------------------------------------
# Spawn keys (wave, index) of the seeds that are not a design point's: a wave's candidate
# sample, its pick among them, its emulators' optimiser; and the sample measuring the region
# left after the last wave.
_CANDIDATES, _PICK, _EMULATOR = 2**31 - 1, 2**31 - 2, 2**31 - 3
_FINAL_WAVE = 99

def history_match(base: Config, factors: Sequence[space.Factor], targets: Sequence[Target],
                  chosen: Sequence[int], settings: Settings,
                  log: Callable[[str], None] | None = None, cache: RunCache | None = None
                  ) -> Match:
    """Run the waves; ``base`` is the scenario cut to the last target date. ``cache``: runs
    already made by an earlier match on the same targets (:class:`RunCache`)."""
    say = log or (lambda _msg: None)
    s, d = settings, len(factors)
    chosen_targets = [targets[k] for k in chosen]
    t_start = time.monotonic()
    units_all, wave_all, out_all, imp_all = [], [], [], []
    emulators: list[Emulator] = []
    waves: list[Wave] = []
    share = 1.0
    for w in range(1, s.waves + 1):
        t0 = time.monotonic()
        if w == 1:
            units = space.lhs(s.points, d, point_seed(s.seed, 0, 0))
        else:
            cand = space.lhs(s.candidates, d, point_seed(s.seed, w, _CANDIDATES))
            keep = _not_ruled_out(cand, emulators, chosen_targets, s)
            new_share = float(keep.mean())
            say(f"wave {w}: {new_share:.2%} of the prior box not ruled out after wave {w - 1}")
            if keep.sum() == 0:
                share = 0.0
                break
            if w > 2 and new_share / share > s.stop_ratio:
                share = new_share
                say(f"wave {w}: the region stopped shrinking (kept "
                    f"{new_share / waves[-1].region_share if waves[-1].region_share else 0:.0%}"
                    " of the last); stopping")
                break
            share = new_share
            pick = np.random.default_rng(point_seed(s.seed, w, _PICK)).permutation(
                np.flatnonzero(keep))[:s.points]
            units = cand[np.sort(pick)]
        points = [space.point_params(base, factors, u) for u in units]
        for i, p in enumerate(points):
            p.seed = point_seed(s.seed, w, i)
        outputs, cpu = screened_runs(points, targets, chosen, s, desc=f"wave {w}", cache=cache)
        scaled = scaled_outputs(outputs[:, :, chosen], chosen_targets)
        em = Emulator(units, scaled, point_seed(s.seed, w, _EMULATOR) % 2**16)
        _, _, var_s = em.predict(units)
        imp = run_implausibility(scaled, var_s, chosen_targets, s.discrepancy)
        emulators.append(em)
        units_all.append(units)
        wave_all.append(np.full(len(units), w))
        out_all.append(outputs)
        imp_all.append(imp)
        ok = int(plausible(imp, s).sum())
        runs = int(np.isfinite(outputs[:, :, chosen[0]]).sum())
        waves.append(Wave(w, len(units), runs, share if w > 1 else 1.0, ok,
                          time.monotonic() - t0, cpu))
        say(f"wave {w}: {len(units)} points, {runs} runs, {ok} not ruled out by their runs, "
            f"{time.monotonic() - t0:.0f} s ({cpu:.0f} s of CPU)")
    units = np.vstack(units_all)
    wave_of = np.concatenate(wave_all)
    # A point simulated in wave k is checked against the emulators of the waves after it.
    later = np.zeros(len(units), dtype=bool)
    for k, em in enumerate(emulators, start=1):
        rows = wave_of < k
        if rows.any():
            later[rows] |= ~_not_ruled_out(units[rows], [em], chosen_targets, s)
    final = space.lhs(s.candidates, d, point_seed(s.seed, _FINAL_WAVE, 0))
    final_share = float(_not_ruled_out(final, emulators, chosen_targets, s).mean())
    say(f"after {len(waves)} waves: {final_share:.2%} of the prior box not ruled out")
    return Match(list(factors), list(targets), list(chosen), units, wave_of,
                 np.concatenate(out_all), np.vstack(imp_all), later, waves, final_share,
                 settings, time.monotonic() - t_start)


def _not_ruled_out(units: np.ndarray, emulators: Sequence[Emulator],
                   targets: Sequence[Target], s: Settings) -> np.ndarray:
    keep = np.ones(len(units), dtype=bool)
    for em in emulators:
        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            break
        imp = emulated_implausibility(em, units[idx], targets, s.discrepancy)
        keep[idx] = plausible(imp, s)
    return keep


# -- checks on the result --------------------------------------------------------------------------
def leave_one_out(match: Match) -> list[dict[str, Any]]:
    """Leave-one-reading-out: predict each chosen reading from wave 1's points (a prior sample,
    so not tilted towards the reading) that the other readings do not rule out."""
    rows = []
    first = np.flatnonzero(match.wave_of == 1)
    s = match.settings
    for j, k in enumerate(match.chosen):
        t = match.targets[k]
        others = [i for i in range(len(match.chosen)) if i != j]
        ok = first[plausible(match.imp[first][:, others], s)] if others else first
        values = match.outputs[ok][:, :, k].ravel()
        values = values[np.isfinite(values)]
        if len(values) == 0:
            rows.append(dict(reading=t.id, points=0))
            continue
        scaled = t.to_scale(values)
        lo, hi = np.percentile(values, [2.5, 97.5])
        var = t.observation_var + target_discrepancy(t, s.discrepancy) ** 2 + scaled.var()
        z = float(t.distance(_unscale(t, np.array([scaled.mean()])))[0] / np.sqrt(var))
        overlap = (t.low is None or hi >= t.low) and (t.high is None or lo <= t.high)
        rows.append(dict(reading=t.id, points=len(ok), predicted_mean=float(values.mean()),
                         predicted_low=float(lo), predicted_high=float(hi),
                         observed_low=t.low, observed_high=t.high,
                         share_inside=float(t.inside(values).mean()),
                         implausibility=z, covered=bool(overlap)))
    return rows


def alternatives(match: Match) -> list[dict[str, Any]]:
    """Every reading scored on the ensemble's runs: the share of member replications inside
    it, and of members whose mean is inside."""
    members = match.members
    rows = []
    for k, t in enumerate(match.targets):
        v = match.outputs[members][:, :, k] if len(members) else np.empty((0, 1))
        rows.append(dict(reading=t.id, group=t.group, chosen=k in match.chosen,
                         low=t.low, high=t.high,
                         share_of_runs_inside=float(t.inside(v).mean()) if v.size else 0.0,
                         share_of_members_inside=float(t.inside(np.nanmean(v, axis=1)).mean())
                         if v.size else 0.0))
    return rows
