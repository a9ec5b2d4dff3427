"""Typed parameters of the licence model: one dataclass per component, units in the names.

These dataclasses are the Hydra schema (registered in :mod:`sim.config`) *and* the plain
parameter objects the model receives, so the defaults live in exactly one place. This module
imports nothing from Hydra, so the model can use it anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

# The project's configs/ (scenarios, calibrated ensembles, study settings) and seeds/ (facts,
# calibration targets): the one place that finds them. In the source tree (an editable install,
# or PYTHONPATH) they sit beside sim/; a wheel ships them inside the package as sim/configs and
# sim/seeds (pyproject.toml's package-dir). A plain path, not importlib.resources: Hydra and
# the studies read them as folders, and the source tree needs no install to find them.
PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED = (PACKAGE_DIR / "configs").is_dir()  # from a wheel: the configs are in site-packages
DATA_DIR = PACKAGE_DIR if INSTALLED else PACKAGE_DIR.parent
CONFIG_DIR = DATA_DIR / "configs"
SEEDS_DIR = DATA_DIR / "seeds"

DESTINATIONS = ("US", "EU", "JP", "KR", "IN", "other")
ELEMENT_GROUPS = ("april7", "october5")
ELEMENTS = {
    "april7": ("Sm", "Gd", "Tb", "Dy", "Lu", "Sc", "Y"),
    "october5": ("Ho", "Er", "Tm", "Eu", "Yb"),
}


# Modes are enums: OmegaConf refuses any other value, and each compares equal to its text
# (member names equal their values, so `mode=priority` and timeline changes read as written).
class MilitaryPolicy(StrEnum):
    deny = "deny"  # denied after review
    hold = "hold"  # reviewed, then held undecided for ever
    reject_at_intake = "reject_at_intake"  # refused before review, using no official's time


class GreenChannelMode(StrEnum):
    off = "off"
    priority = "priority"  # trusted files go first in the one queue (non-preemptive)
    dedicated = "dedicated"  # some officials serve the green lane first


class CalendarKind(StrEnum):
    china = "china"
    every_day = "every_day"


class ReviewDistribution(StrEnum):
    exponential = "exponential"
    lognormal = "lognormal"
    fixed = "fixed"  # every review takes exactly its mean effort, no random draw (tests)


class PatienceDistribution(StrEnum):
    fixed = "fixed"  # every applicant waits withdrawal.patience_days, then withdraws
    exponential = "exponential"  # each applicant's own patience, exponential with that mean


class ClearanceBacklog(StrEnum):
    waiting = "waiting"
    pending = "pending"


class ObjectiveSense(StrEnum):
    minimize = "minimize"  # as hydra.sweeper.direction=minimize
    maximize = "maximize"


class ExecutorKind(StrEnum):
    local = "local"  # processes on this machine
    submitit_local = "submitit_local"  # submitit's jobs on this machine: the cluster code path
    slurm = "slurm"  # submitit's Slurm jobs


MILITARY_POLICIES = tuple(MilitaryPolicy)
GREEN_CHANNEL_MODES = tuple(GreenChannelMode)
CALENDAR_KINDS = tuple(CalendarKind)
REVIEW_DISTRIBUTIONS = tuple(ReviewDistribution)
PATIENCE_DISTRIBUTIONS = tuple(PatienceDistribution)
CLEARANCE_BACKLOGS = tuple(ClearanceBacklog)


@dataclass
class CalendarConfig:
    # china: weekends and statutory holidays off, official make-up working days on
    # (chinese-calendar package); every_day: officials are always on duty (M/M/c checks).
    kind: CalendarKind = CalendarKind.china


@dataclass
class SurgeConfig:
    """Pent-up applications filed when controls on an element group start, decaying."""

    start_date: str = "2025-04-04"
    size: float = 0.0  # expected number of extra applications in the whole surge
    decay_days: float = 10.0  # e-folding time, in arrival days (working days if so set)
    elements: str = "april7"  # the surge only happens if this group is controlled then


@dataclass
class ArrivalsConfig:
    # Poisson base rate of new applications for the April-2025 elements, per arrival day.
    rate_per_day: float = 40.0
    # Extra rate for applications covering the October-2025 elements, while they are controlled.
    october5_rate_per_day: float = 0.0
    # Multiplies both rates (not the surges): a timeline lever for flows that leave or join the
    # queue, e.g. 0.8 while a fifth of the shipments travel under general licences.
    scale: float = 1.0
    # True: applications are filed on working days only (rates are per working day).
    working_days_only: bool = True
    surges: list[SurgeConfig] = field(default_factory=list)


@dataclass
class ClassesConfig:
    destination_shares: dict[str, float] = field(
        default_factory=lambda: {"US": 0.2, "EU": 0.25, "JP": 0.15, "KR": 0.1, "IN": 0.1,
                                 "other": 0.2}
    )
    # Share of applicants that are trusted (green-channel eligible), per destination.
    trusted_share: dict[str, float] = field(
        default_factory=lambda: {d: 0.2 for d in DESTINATIONS}
    )
    military_share: float = 0.0  # share of applications declaring a military end use


@dataclass
class ControlsConfig:
    april7: bool = True  # Sm, Gd, Tb, Dy, Lu, Sc, Y
    october5: bool = False  # Ho, Er, Tm, Eu, Yb


@dataclass
class IntakeConfig:
    # Local commerce office check before acceptance; no official of the pool involved.
    mean_working_days: float = 0.0


@dataclass
class StatutoryConfig:
    working_days: int = 45  # review due within this many working days of acceptance


@dataclass
class StaffingChange:
    date: str = "2025-01-01"
    count: int = 1


@dataclass
class RampConfig:
    """Staff added gradually: from the pool in force on `start_date` to `count` officials,
    in weekly steps over `days` calendar days (null start_date: no ramp)."""

    start_date: str | None = None
    days: int = 0
    count: int = 1


@dataclass
class OfficialsConfig:
    count: int = 5
    hours_per_day: float = 8.0
    # Pool size from given dates on (a list, so an override replaces it whole).
    schedule: list[StaffingChange] = field(default_factory=list)
    ramp: RampConfig = field(default_factory=RampConfig)
    # Multiplies every staffing level of the run (count, schedule, ramp): the one staffing lever
    # that moves the whole horizon, so a sweep over it is not confined to the first regime.
    scale: float = 1.0


@dataclass
class ReviewConfig:
    # Set exactly one of mean_hours (working hours of effort) and mean_days (working days).
    mean_hours: float | None = 8.0
    mean_days: float | None = None
    distribution: ReviewDistribution = ReviewDistribution.exponential
    cv: float = 1.0  # coefficient of variation, lognormal only (fixed: none, exponential: 1)
    effort_multiplier: float = 1.0  # e.g. more documentation per application


@dataclass
class InteragencyConfig:
    """Elapsed review outside the pool after an official's review: other agencies' checks and
    sign-off. Takes calendar time on working days but none of the pool's officials' time, so a
    decision is neither instant when officials are idle nor capped by their number."""

    mean_working_days: float = 0.0  # lognormal with this mean; 0: decided at once
    cv: float = 0.5


@dataclass
class QueueConfig:
    # Destinations whose (non-green) applications are served only when no other application
    # waits: the reported slower handling of US-bound files before complaints hastened them.
    served_last: list[str] = field(default_factory=list)


@dataclass
class IncompleteConfig:
    probability: float = 0.0  # a review ends in a request for more documents
    response_mean_days: float = 10.0  # applicant's answer delay, calendar days, exponential


@dataclass
class ConsultationConfig:
    share: float = 0.0  # share of civilian applications needing other agencies
    mean_working_days: float = 10.0  # exponential delay outside the officials' pool


@dataclass
class MilitaryConfig:
    policy: MilitaryPolicy = MilitaryPolicy.deny


@dataclass
class DecisionConfig:
    deny_probability: float = 0.0  # civilian applications denied after review


@dataclass
class GreenChannelConfig:
    mode: GreenChannelMode = GreenChannelMode.off
    start_date: str = "2025-06-10"
    dedicated_officials: int = 1  # used when mode=dedicated
    destinations: list[str] = field(default_factory=lambda: ["US"])
    effort_multiplier: float = 1.0  # < 1: fast track for trusted applicants


@dataclass
class LicenceConfig:
    term_days: int = 182  # six months
    renewal_share: float = 0.0
    renewal_lead_days: int = 30  # renewal filed this many days before expiry


@dataclass
class WithdrawalConfig:
    """An application still waiting for an official this long after submission withdraws."""

    patience_days: float | None = None  # None: applicants never withdraw
    # fixed: everyone's patience is patience_days; exponential: each application's own,
    # drawn (from the `withdrawal` stream) the first time it has to wait, mean patience_days
    patience_distribution: PatienceDistribution = PatienceDistribution.fixed


@dataclass
class BacklogConfig:
    """Applications already waiting when the scenario starts (class mix from `classes`)."""

    count: int = 0
    max_waited_days: float = 0.0  # waited uniformly between 0 and this many calendar days


@dataclass
class EventConfig:
    """A dated policy event: from `date` on, each dotted key takes its new value."""

    date: str = "2025-01-01"
    label: str = ""
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClearanceConfig:
    """How backlog clearance is measured (see sim/clearance.py)."""

    # Cleared: first day after the peak when pending < fraction_of_peak * peak, or < level
    # when level is set.
    fraction_of_peak: float = 0.1
    level: int | None = None
    # The backlog whose clearance is measured. waiting: applications waiting for an official
    # (the work the pool has not reached); pending: every application not yet decided, which
    # also counts files at intake, with the applicant, in other agencies' review, and held.
    # With elapsed stages pending never falls below the files in normal processing (Little's
    # law: filings a day times days in process), so `waiting` is the default.
    backlog: ClearanceBacklog = ClearanceBacklog.waiting
    # With backlog=pending: false leaves out applications held for ever
    # (military.policy=hold), since no number of officials can clear them; true counts them.
    count_held: bool = False
    cohort_date: str | None = None  # follow the applications pending at this date's end
    event: str | None = None  # timeline event to count days-to-clearance from


@dataclass
class ExportsConfig:
    """What China's customs would record of the licensed flow (sim/exports.py): an output
    only, nothing here changes the queue. Each field is one assumption of the mapping."""

    # Calendar days from a licence's approval to the export declaration (goods waiting at
    # the maker are trucked to port or flown out).
    shipping_lag_days: int = 7
    # Share of the pre-control magnet tonnes that needs a licence (magnets holding a
    # controlled element); the rest keeps flowing as before the controls.
    controlled_share: float = 1.0
    # Shipments a renewed licence carries, against a new one: 1, a renewal is a repeat order
    # on top of the steady filings; 0, it only extends a licence whose goods already left.
    renewal_weight: float = 1.0
    # The flow before the controls against the reference level of the customs series (the
    # 2024 monthly mean): demand grew into 2025.
    demand_level: float = 1.0


@dataclass
class CalibrationConfig:
    # true: each replication runs with an ensemble member drawn from (seed, replication), so
    # the bands carry the calibrated inputs' uncertainty
    ensemble: bool = False
    ensemble_file: str = "calibrated/ensemble_baseline_2025.yaml"  # relative to configs/
    # Settings the members must not change. A value other than the calibrated scenario's wins
    # over the members wherever it was set (sim.ensemble.kept_out); the command line's and
    # sim.load_config's overrides are added here automatically, so that they win even at the
    # calibrated value. A scenario file lists a setting here only to hold it at that value.
    keep: list[str] = field(default_factory=list)


@dataclass
class OutputConfig:
    applications: bool = False  # write applications.csv (one row per application)
    plots: bool = True
    figure_formats: list[str] = field(default_factory=lambda: ["png"])  # png, svg, pdf
    question: str | None = None  # the question the run answers, at the top of its report.html


@dataclass
class ExecutorConfig:
    """Where a study's independent tasks run: replications, calibration points, sensitivity
    points. Each task carries its own seed, so results are identical for every kind; ``jobs``
    (or a study's own ``jobs``) is the number of workers. Options: configs/executor/."""

    kind: ExecutorKind = ExecutorKind.local
    # submitit's pickles and logs, a subfolder per call; "" (the default): inside the running
    # tool's output folder, removed once its jobs succeed (sim.executor.jobs_root)
    folder: str = ""
    timeout_min: int = 60  # per worker job (submitit)
    # On this machine (local, submitit_local) jobs above the CPUs this process may use run one
    # worker per CPU (said on stderr; results are the same): true starts every one asked for.
    oversubscribe: bool = False
    # Slurm only (site settings: configs/local/executor/slurm.yaml, git-ignored)
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    setup: list[str] = field(default_factory=list)  # shell lines run before a job
    additional_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    name: str = "custom"
    seed: int = 20250404
    replications: int = 1  # independent replications; replication r uses streams (seed, r)
    jobs: int = 1  # processes running them (results identical for any value)
    resume: bool = False  # skip the run if its folder already holds a complete summary.json
    start_date: str = "2025-04-04"
    end_date: str | None = None  # inclusive; set this or horizon_days
    horizon_days: int | None = 365
    warmup_days: int = 0  # left out of the headline statistics
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    arrivals: ArrivalsConfig = field(default_factory=ArrivalsConfig)
    classes: ClassesConfig = field(default_factory=ClassesConfig)
    controls: ControlsConfig = field(default_factory=ControlsConfig)
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    statutory: StatutoryConfig = field(default_factory=StatutoryConfig)
    officials: OfficialsConfig = field(default_factory=OfficialsConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    interagency: InteragencyConfig = field(default_factory=InteragencyConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    incomplete: IncompleteConfig = field(default_factory=IncompleteConfig)
    consultation: ConsultationConfig = field(default_factory=ConsultationConfig)
    military: MilitaryConfig = field(default_factory=MilitaryConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    green_channel: GreenChannelConfig = field(default_factory=GreenChannelConfig)
    licence: LicenceConfig = field(default_factory=LicenceConfig)
    withdrawal: WithdrawalConfig = field(default_factory=WithdrawalConfig)
    initial_backlog: BacklogConfig = field(default_factory=BacklogConfig)
    exports: ExportsConfig = field(default_factory=ExportsConfig)
    # Dated policy events by name, so a scenario can add, change or drop (null) one event.
    # Values are EventConfig fields; typed as Any so `+timeline.name={...}` works on the
    # command line; sim.config.to_params checks them and turns them into EventConfig.
    timeline: dict[str, Any] = field(default_factory=dict)
    clearance: ClearanceConfig = field(default_factory=ClearanceConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    # What the run returns to a Hydra sweeper (hydra/sweeper=optuna; docs/sweeps.md): the
    # replication mean of a figure (dotted key of summary.json, or config.<setting>).
    objective: str | None = None
    objective_sense: ObjectiveSense = ObjectiveSense.minimize  # as hydra.sweeper.direction
    # A condition on another figure's replication mean (give at_least or at_most): each unit
    # it is broken by makes the objective `objective_penalty` worse
    objective_constraint: str | None = None
    objective_at_least: float | None = None
    objective_at_most: float | None = None
    objective_penalty: float = 1000.0


# Keys a timeline event may not change: they fix the run's frame, not a policy.
FRAME_KEYS = ("name", "seed", "replications", "jobs", "resume", "executor", "objective",
              "objective_sense", "objective_constraint", "objective_at_least", "objective_at_most",
              "objective_penalty", "clearance", "exports",
              "calibration",
              "start_date", "end_date", "horizon_days", "warmup_days",
              "calendar", "initial_backlog", "timeline", "output", "officials.schedule",
              "officials.ramp",
              "arrivals.surges", "green_channel.start_date")
