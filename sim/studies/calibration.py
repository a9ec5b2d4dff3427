"""Calibration of a scenario against the articles' figures, and what it writes.

:func:`calibrate` takes the scenario's parameters (composed by the entry point), the readings
(``seeds/targets.yaml``) and the uncertain inputs (``configs/calibration/<scenario>.yaml``),
runs the history match (:mod:`sim.studies.history_matching`), then checks the ensemble the way
users will run it: the scenario with each replication drawing its own member. It writes
``report.md``, ``points.csv``, ``ensemble_<scenario>.yaml`` and the representative point
``<scenario>.yaml`` (the member least implausible overall, used when the ensemble is off).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import yaml

from sim import keys
from sim import observations as obs
from sim.files import read_yaml
from sim.outputs import atomic_write
from sim.params import CONFIG_DIR, INSTALLED, Config
from sim.studies import history_matching as hm
from sim.studies import space
from sim.studies.install import install_files, install_point
from sim.studies.report import markdown_table
from sim.studies.targets import (
    Target,
    TargetsError,
    bounds_text,
    file_sha256,
    implausibility,
    last_date,
    load_targets,
    number_text,
    output_values,
    select_targets,
    target_days,
    target_discrepancy,
)
from sim.validation import ConfigError

REPO_DIR = CONFIG_DIR.parent


@dataclass
class Settings:
    """``configs/calibrate/*.yaml``: what to calibrate, against what, and how."""

    name: str = "full"
    scenario: str = "baseline_2025"
    scenario_overrides: list[str] = field(default_factory=list)
    targets_file: str = "seeds/targets.yaml"  # relative to the repository
    ranges_file: str = "calibration/baseline_2025.yaml"  # relative to configs/
    readings: list[str] = field(default_factory=list)  # ids replacing their group's default
    drop_groups: list[str] = field(default_factory=list)
    end_margin_days: int = 1  # runs stop this many days after the last target date
    check_replications: int = 40  # the scenario run with the ensemble, to check the readings
    install: bool = False  # also write the point into the scenario file, and the ensemble
    # Installing anything but the committed recipe (configs/calibrate/default.yaml) over the
    # committed calibration must be asked for: a smoke study would replace it silently.
    install_over_committed: bool = False
    # Observed monthly series (China's customs exports of magnets) read as targets beside the
    # articles' readings; observations.series=[] leaves them out.
    observations: obs.ObservationSettings = field(default_factory=obs.ObservationSettings)
    match: hm.Settings = field(default_factory=hm.Settings)

    LIMITS: ClassVar[dict[str, hm.Limit]] = {"end_margin_days": hm.Limit(0, 3650),
                                             "check_replications": hm.Limit(0, 10_000)}


# Settings that change neither the ensemble nor the report: a recipe that differs only in
# them is the committed one.
NOT_RECIPE = ("install", "install_over_committed", "match.jobs")


def check(s: Settings) -> None:
    """Refuse settings a calibration cannot use, in one line naming ``calibrate.<key>``:
    types and bounds of every field (``match`` too), names, files, and an install over the
    committed calibration that was not asked for. Runs nothing."""
    hm.check_settings(s, "calibrate")
    hm.check(s.match, "calibrate.match")
    hm.check_name("calibrate.name", s.name)
    hm.check_name("calibrate.scenario", s.scenario)
    if s.check_replications == 1:  # a predictive interval needs a variance
        raise ConfigError("calibrate.check_replications", 1, "must be 0 (no check) or >= 2")
    for key, folder in (("targets_file", REPO_DIR), ("ranges_file", CONFIG_DIR)):
        if not (folder / getattr(s, key)).is_file():
            raise ConfigError(f"calibrate.{key}", getattr(s, key), f"no such file under {folder}")
    obs.check(s.observations, "calibrate.observations", REPO_DIR)
    check_install(s)


def recipe_differences(s: Settings) -> list[str]:
    """The settings (dotted) in which ``s`` differs from the committed recipe,
    configs/calibrate/default.yaml, leaving out :data:`NOT_RECIPE`."""
    committed = _dotted(read_yaml(CONFIG_DIR / "calibrate" / "default.yaml"))
    given = _dotted(dataclasses.asdict(s))
    return [k for k in given if k not in NOT_RECIPE and given[k] != committed.get(k)]


def _dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        if k in ("match", "observations") and isinstance(v, dict):
            out.update(_dotted(v, f"{k}."))
        else:
            out[prefix + k] = v
    return out


def check_install(s: Settings) -> None:
    """With ``install``, a recipe other than the committed one replaces the committed
    calibration only with ``install_over_committed=true`` (ConfigError naming it)."""
    if s.install is True and INSTALLED:  # from a wheel: configs/ is inside site-packages
        raise ConfigError("calibrate.install", True, f"{CONFIG_DIR} is the installed package's; "
                          "install from a clone of the repository (pip install -e .)")
    if s.install is not True or s.install_over_committed is True:
        return
    differs = recipe_differences(s)
    if differs:
        raise ConfigError("calibrate.install_over_committed", False, (
            f"set it to true to install calibrate={s.name} over the committed calibration "
            f"(configs/calibrated/, configs/scenario/{s.scenario}.yaml): it differs from "
            f"configs/calibrate/default.yaml in {', '.join(differs)}"))


@dataclass
class Calibration:
    settings: Settings
    match: hm.Match
    base: Config
    check: dict[str, Any]
    provenance: dict[str, Any]

    @property
    def chosen_targets(self) -> list[Target]:
        return [self.match.targets[k] for k in self.match.chosen]

    def member_points(self) -> list[dict[str, Any]]:
        return [self.match.values(i) for i in self.match.members]

    def representative(self) -> dict[str, Any]:
        """The member least implausible overall (the point a single-point run uses)."""
        m = self.match
        members = m.members if len(m.members) else np.arange(len(m.units))
        return m.values(int(members[np.argmin(m.max_imp[members])]))


def cut_to_targets(params: Config, targets: list[Target], margin_days: int) -> Config:
    """The scenario stopped ``margin_days`` after the last target date, without plots."""
    p = copy.deepcopy(params)
    end = dt.date.fromisoformat(last_date(targets)) + dt.timedelta(days=margin_days)
    p.end_date, p.horizon_days = end.isoformat(), None
    p.replications, p.calibration.ensemble = 1, False
    return p


def calibrate(params: Config, settings: Settings, command: str = "",
              log: Callable[[str], None] | None = None,
              cache: hm.RunCache | None = None) -> Calibration:
    """History-match ``params`` (the scenario, composed by the caller) and check the result.
    ``cache``: runs an earlier calibration on the same targets made (a hindcast's origins)."""
    say = log or (lambda _msg: None)
    commit = git_commit()  # the code that runs: taken before any file can change
    targets, chosen_t, factors, base = prepare(params, settings)
    chosen = [targets.index(t) for t in chosen_t]
    say(f"calibrating {settings.scenario}: {len(factors)} inputs, {len(chosen)} readings "
        f"({', '.join(t.id for t in chosen_t)}), runs to {base.end_date}")
    match = hm.history_match(base, factors, targets, chosen, settings.match, log=say,
                             cache=cache)
    if len(match.members) == 0:
        say("no point is left: every simulated point is ruled out (see report.md)")
    cal = Calibration(settings, match, base, {}, provenance(settings, command, match, commit))
    cal.check = check_ensemble(cal, say)
    return cal


def prepare(params: Config, settings: Settings
            ) -> tuple[list[Target], list[Target], list[space.Factor], Config]:
    """The readings, the chosen ones, the inputs and the scenario cut at the last reading;
    ConfigError or TargetsError (one line) for settings that cannot work (:func:`check`).
    Runs no simulation."""
    check(settings)
    targets = load_targets(REPO_DIR / settings.targets_file, params.start_date,
                           params.end_date or "2100-01-01")
    chosen_t = select_targets(targets, settings.readings, settings.drop_groups)
    if settings.observations.series:
        series = obs.targets(obs.load(REPO_DIR / settings.observations.file),
                             settings.observations)
        targets, chosen_t = targets + series, chosen_t + [t for t in series if t.default]
    if not chosen_t:
        raise TargetsError("calibrate: no readings chosen")
    factors = space.load_factors(CONFIG_DIR / settings.ranges_file, params)
    return targets, chosen_t, factors, cut_to_targets(params, targets, settings.end_margin_days)


def check_ensemble(cal: Calibration, say: Callable[[str], None]) -> dict[str, Any]:
    """The scenario as users run it, each replication drawing its member of the new ensemble,
    against every reading (:func:`check_readings`)."""
    members = cal.member_points()
    if not members or cal.settings.check_replications == 0:
        return {}
    # Names the stage whose bar (on a terminal) is labelled by the scenario only.
    say(f"check: {cal.settings.check_replications} replications of the scenario, each drawing "
        f"one of the {len(members)} ensemble members")
    with ensemble_params(cal) as p:
        check = check_readings(p, cal.match.targets, cal.match.chosen,
                               cal.settings.check_replications, cal.settings.match)
    say(f"check: {check['replications']} replications of the scenario with the ensemble; "
        f"{check['share_all_inside']:.0%} inside every chosen reading at once")
    return check


def ensemble_values(params: Config, targets: list[Target], replications: int, jobs: int
                    ) -> np.ndarray:
    """(replications, targets): each reading's output in replications of ``params`` as users
    run it (with ``calibration.ensemble``, each replication draws its member)."""
    from sim.runner import run_replications

    runs = run_replications(params, replications, jobs)
    days = target_days(targets, params.start_date)
    return np.array([output_values(r, targets, days) for r in runs]).reshape(
        len(runs), len(targets))


@contextlib.contextmanager
def ensemble_params(cal: Calibration) -> Iterator[Config]:
    """The calibrated scenario (cut at the last target) with the new ensemble on, from a
    temporary ensemble file removed afterwards."""
    path = Path(_temporary_ensemble(cal.member_points()))
    try:
        p = copy.deepcopy(cal.base)
        p.calibration.ensemble, p.calibration.ensemble_file = True, str(path)
        yield p
    finally:
        path.unlink(missing_ok=True)


def check_readings(params: Config, targets: list[Target], chosen: list[int],
                   replications: int, match: hm.Settings) -> dict[str, Any]:
    """Replications of ``params`` against every reading: per reading the mean, the 95 %
    predictive interval, the share of replications inside the words' interval, and whether the
    reading is met: the implausibility of the predictive mean, with the predictive variance in
    place of the realisation variance, at most the cutoff. Last, the share of replications
    inside every chosen reading's interval at once."""
    values = ensemble_values(params, targets, replications, match.jobs)
    inside = np.column_stack([t.inside(values[:, k]) for k, t in enumerate(targets)])
    rows = []
    for k, t in enumerate(targets):
        lo, hi = np.percentile(values[:, k], [2.5, 97.5])
        scaled = t.to_scale(values[:, k])
        centre = 10 ** scaled.mean() if t.scale == "log" else scaled.mean()
        imp = float(implausibility(t, centre, scaled.var(ddof=1), 0.0,
                                   target_discrepancy(t, match.discrepancy)))
        rows.append(dict(reading=t.id, chosen=k in chosen, low=t.low, high=t.high,
                         mean=float(values[:, k].mean()), predictive_low=float(lo),
                         predictive_high=float(hi), share_inside=float(inside[:, k].mean()),
                         implausibility=imp, met=imp <= match.cutoff))
    return dict(replications=len(values), seed=params.seed, rows=rows,
                share_all_inside=float(inside[:, chosen].all(axis=1).mean()))


def reading_line(row: dict[str, Any]) -> str:
    """One reading of the check (a row of :func:`check_readings`) for a printout: its interval
    in words (``≤ 1`` for a one-sided reading, never ``[None, 1.0]``), the mean and 95 %
    predictive interval over the replications, and the share inside."""
    return (f"{row['reading']}: {bounds_text(row['low'], row['high'])}; mean "
            f"{number_text(row['mean'], 3)}, 95 % predictive "
            f"{number_text(row['predictive_low'], 3)}..{number_text(row['predictive_high'], 3)},"
            f" {row['share_inside']:.0%} inside")


def _temporary_ensemble(members: list[dict[str, Any]]) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump({"members": members}, f, sort_keys=False)
        return f.name


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_DIR, capture_output=True, text=True).stdout.strip()
        return out + (" (uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def provenance(settings: Settings, command: str, match: hm.Match,
               commit: str | None) -> dict[str, Any]:
    return dict(
        date=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(), command=command,
        git_commit=commit, scenario=settings.scenario,
        scenario_overrides=list(settings.scenario_overrides),
        targets_file=settings.targets_file,
        targets_sha256=file_sha256(REPO_DIR / settings.targets_file),
        ranges_file=settings.ranges_file,
        readings=[match.targets[k].id for k in match.chosen],
        cutoff=settings.match.cutoff, discrepancy=dict(settings.match.discrepancy),
        seed=settings.match.seed, runtime_s=round(match.seconds, 1),
        simulation_cpu_s=round(sum(w.cpu_seconds for w in match.waves), 1))


# -- tables and files --------------------------------------------------------------------------
def wave_table(cal: Calibration) -> pd.DataFrame:
    rows = [dataclasses.asdict(w) for w in cal.match.waves]
    rows.append(dict(number="after", points=None, runs=None,
                     region_share=cal.match.final_share, non_implausible_runs=None,
                     seconds=None, cpu_seconds=None))
    return pd.DataFrame(rows)


def factor_table(cal: Calibration) -> pd.DataFrame:
    """Each input: its prior, where it comes from, and the ensemble's 5-95 % range. An input
    is constrained when the ensemble spans under half of its prior range (in unit terms)."""
    m = cal.match
    rows = []
    for j, f in enumerate(m.factors):
        u = m.units[m.members, j] if len(m.members) else np.array([])
        lo, hi = (np.percentile(u, [5, 95]) if len(u) else (np.nan, np.nan))
        rows.append(dict(input=f.key, prior_low=f.low, prior_high=f.high, scale=f.scale,
                         source=f.source,
                         ensemble_p05=f.value(min(lo, 0.999999)) if len(u) else None,
                         ensemble_p95=f.value(min(hi, 0.999999)) if len(u) else None,
                         share_of_prior=float(hi - lo) if len(u) else None,
                         constrained=bool(len(u) and hi - lo < 0.5)))
    return pd.DataFrame(rows)


def points_table(cal: Calibration) -> pd.DataFrame:
    m = cal.match
    table = pd.DataFrame([m.values(i) for i in range(len(m.units))])
    table.insert(0, "wave", m.wave_of)
    for j, k in enumerate(m.chosen):
        table[f"I:{m.targets[k].id}"] = m.imp[:, j]
    for k, t in enumerate(m.targets):
        table[f"mean:{t.id}"] = np.nanmean(m.outputs[:, :, k], axis=1)
    table["max_implausibility"] = m.max_imp
    table["ruled_out_later"] = m.ruled_out_later
    table["member"] = False
    table.loc[m.members, "member"] = True
    return table


def _rank_words(m: hm.Settings) -> str:
    if m.rank == 1:
        return "largest implausibility"
    nth = {2: "second", 3: "third"}.get(m.rank, f"{m.rank}th")
    return f"{nth} largest implausibility (the largest at most {m.cutoff_largest})"


def report_text(cal: Calibration) -> str:
    m, s = cal.match, cal.settings
    chosen = cal.chosen_targets
    obs = pd.DataFrame([dict(reading=t.id, output=t.output, date=t.date, low=t.low,
                             high=t.high, scale=t.scale, observed_z=t.observed,
                             observation_sd=float(np.sqrt(t.observation_var)),
                             discrepancy_sd=target_discrepancy(t, s.match.discrepancy))
        for t in chosen])
    parts = [
        f"# Calibration of {s.scenario} ({s.name})", "",
        f"History matching with {len(m.factors)} inputs and {len(chosen)} readings; cutoff "
        f"{s.match.cutoff} on the {_rank_words(s.match)}; one run a point, then "
        f"{s.match.replications} in all for the points one run does not put beyond "
        f"{s.match.screen_cutoff}, with an emulated realisation variance. {len(m.units)} "
        f"points simulated in {len(m.waves)} waves, {m.seconds:.0f} s. Ensemble: "
        f"{len(m.members)} points not ruled out. Command: `{cal.provenance['command']}`.", "",
        "## Readings, observation uncertainty and model discrepancy", "", markdown_table(obs), "",
        "## Waves: the share of the prior box not ruled out", "",
        "`region_share`: share of the prior box inside the region a wave sampled (after the "
        "earlier waves' emulators); the last row is the region left after the last wave.", "",
        markdown_table(wave_table(cal)), "",
    ]
    if cal.check:
        check = pd.DataFrame(cal.check["rows"])
        parts += [
            "## Check: the scenario with the ensemble", "",
            f"{cal.check['replications']} replications (seed {cal.check['seed']}), each drawing "
            "its member; 95 % predictive interval over replications and members. Share of "
            f"replications inside every chosen reading at once: "
            f"**{cal.check['share_all_inside']:.0%}**.", "", markdown_table(check), ""]
    parts += [
        "## Leave-one-reading-out cross-validation", "",
        "Each chosen reading predicted from wave 1's points (a sample of the prior) that the "
        "other chosen readings do not rule out.", "",
        markdown_table(pd.DataFrame(hm.leave_one_out(m))), "",
        "## Every reading on the ensemble's runs", "",
        "Alternative readings are scored on the same simulations: a low share is a conflict "
        "between that reading and the chosen ones (a finding, not something to tune away).", "",
        markdown_table(pd.DataFrame(hm.alternatives(m))), "",
        "## Inputs: prior and ensemble", "",
        "`share_of_prior`: the ensemble's 5-95 % range as a share of the prior range; under "
        "0.5 counts as constrained. Unconstrained inputs keep their prior uncertainty in the "
        "ensemble's bands.", "", markdown_table(factor_table(cal)), "",
    ]
    return "\n".join(parts)


def ensemble_document(cal: Calibration) -> dict[str, Any]:
    return dict(provenance=cal.provenance, members=cal.member_points())


def point_text(cal: Calibration) -> str:
    """The representative point as a scenario overlay (``# @package _global_``)."""
    head = (f"# @package _global_\n# Representative calibrated point of {cal.settings.scenario}"
            f" (the ensemble member least implausible overall), written by sim.calibrate: do "
            f"not edit by hand.\n# It applies when calibration.ensemble=false; with the ensemble"
            f" on, each replication draws a member of ensemble_{cal.settings.scenario}.yaml.\n"
            f"# command: {cal.provenance['command']}\n# git commit: "
            f"{cal.provenance['git_commit']}\n")
    return head + overlay_yaml(cal.base, cal.representative())


def overlay_yaml(params: Config, point: dict[str, Any]) -> str:
    """A point as nested YAML a scenario can load after it. A key that runs through a list
    (``arrivals.surges.0.size``) writes the whole list, since Hydra replaces lists whole."""
    p = keys.apply_point(params, point)
    nested: dict[str, Any] = {}
    for key in point:
        parts = key.split(".")
        for i in range(1, len(parts)):  # cut the key at the first list
            if isinstance(keys.get(p, ".".join(parts[:i])), list):
                parts = parts[:i]
                break
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = keys.plain(keys.get(p, ".".join(parts)))
    return yaml.safe_dump(nested, sort_keys=False)


def write_results(cal: Calibration, out_dir: Path, install: bool = False) -> list[Path]:
    """report.md, points.csv, the ensemble and the point into ``out_dir``. With ``install``
    (exactly True): the ensemble and the report into configs/calibrated/, and the
    representative point into the scenario file itself (configs/scenario/<scenario>.yaml), on
    the lines that set each value: all three or none (:func:`sim.studies.install.install_files`).
    Returns the installed files."""
    from sim import run_folder

    folder = run_folder.claim(out_dir, "calibration", "hydra.run.dir")
    out_dir = run_folder.staging(folder)  # beside an earlier result, swapped in once complete
    name = cal.settings.scenario
    ensemble = yaml.safe_dump(ensemble_document(cal), sort_keys=False)
    point = point_text(cal)
    report = report_text(cal)
    atomic_write(out_dir / "points.csv", lambda tmp: points_table(cal).to_csv(tmp, index=False))
    atomic_write(out_dir / f"ensemble_{name}.yaml", lambda tmp: tmp.write_text(ensemble))
    atomic_write(out_dir / f"{name}.yaml", lambda tmp: tmp.write_text(point))
    atomic_write(out_dir / "report.md", lambda tmp: tmp.write_text(report))
    run_folder.commit(folder, "calibration", "report.md")
    if install is not True:  # a truthy text ("no") is not a yes
        return []
    check_install(dataclasses.replace(cal.settings, install=True))
    scenario = CONFIG_DIR / "scenario" / f"{name}.yaml"
    prov = cal.provenance
    text = install_point(scenario, cal.representative(),
                         f"{prov['command']} on {prov['date'][:10]} at commit "
                         f"{str(prov['git_commit'])[:10]}; report: "
                         f"configs/calibrated/report_{name}.md")
    files = {CONFIG_DIR / "calibrated" / f"ensemble_{name}.yaml": ensemble,
             CONFIG_DIR / "calibrated" / f"report_{name}.md": report, scenario: text}
    install_files(files)
    return list(files)
