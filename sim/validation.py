"""Validation of typed parameters: every value, then every regime the timeline produces.

Plain Python on :class:`sim.params.Config`, with no Hydra: the command line, scenario files,
studies and the Python API all end here. Each refusal is a :class:`ConfigError`, one line
naming the key, the value and what is allowed.

Adding a lever: its field goes in :mod:`sim.params`, its check in :func:`_check_levers` (or
:func:`_check_frame` if a timeline event may not change it), its rule in :mod:`sim.policies`
or at its step of the application's path in :mod:`sim.model` (docs/adding_a_lever.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import re
import shutil
import typing
from collections.abc import Sequence
from typing import Any

from sim import keys, limits, policies
from sim.params import (
    CALENDAR_KINDS,
    CLEARANCE_BACKLOGS,
    CONFIG_DIR,
    DESTINATIONS,
    ELEMENT_GROUPS,
    GREEN_CHANNEL_MODES,
    MILITARY_POLICIES,
    PATIENCE_DISTRIBUTIONS,
    REVIEW_DISTRIBUTIONS,
    CalendarKind,
    Config,
    EventConfig,
    ExecutorKind,
    GreenChannelMode,
)


class ConfigError(ValueError):
    """A configuration value outside what is allowed; the message is one line. ``value``
    :data:`NO_VALUE` leaves the value out (``key: allowed``), for a file or a whole entry.
    Control characters (an ESC of a terminal sequence, a line break) are shown escaped, and a
    long key or value is cut, so that the line is safe to print and short enough to read."""

    NO_VALUE = "<no value>"

    def __init__(self, key: str, value: Any, allowed: str):
        shown = "" if value is ConfigError.NO_VALUE else f"={_cut(repr(value))}"
        text = f"{_cut(str(key))}{shown}: {allowed}"
        super().__init__(" ".join(_printable(text).split()))  # one line, whatever the parts hold
        self.key, self.value, self.allowed = key, value, allowed

    def __reduce__(self):  # picklable, so a failed job under a process launcher reports it
        return (type(self), (self.key, self.value, self.allowed))


def _cut(text: str, most: int = 200) -> str:
    return text if len(text) <= most else f"{text[:most]}... ({len(text):,} characters)"


def _printable(text: str) -> str:
    """``text`` with every character a terminal would act on written as its escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


# -- types: what the schema says each value is (the Python API and timeline changes bypass
# OmegaConf's own checks) ----------------------------------------------------------------------
FIGURE_FORMATS = ("png", "svg", "pdf")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def check_value(key: str, value: Any, kind: Any) -> None:
    """Refuse a value that is not of the schema's type ``kind`` (a type hint)."""
    args = typing.get_args(kind)
    if type(None) in args:
        if value is None:
            return
        kind = next(a for a in args if a is not type(None))
        args = typing.get_args(kind)
    origin = typing.get_origin(kind)
    if kind is Any:
        return
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        _one_of(key, value, [m.value for m in kind])
    elif kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "must be true or false")
    elif kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, value, "must be an integer")
    elif kind is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(key, value, "must be a number")
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(key, value, "must be text")
    elif origin is list:
        if not isinstance(value, list):
            raise ConfigError(key, value, "must be a list [...]")
        for i, item in enumerate(value):
            check_value(f"{key}[{i}]", item, args[0])
    elif origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, value, "must be a mapping {key: value}")
        for k, item in value.items():
            check_value(f"{key}.{k}", item, args[1])
    elif dataclasses.is_dataclass(kind):
        if not isinstance(value, kind):
            names = ", ".join(f.name for f in dataclasses.fields(kind))
            raise ConfigError(key, value, f"must be a mapping {{{names}}}")
        check_types(value, key)


def check_types(obj: Any, prefix: str = "") -> None:
    """Every field of a dataclass (recursively) of the schema's type."""
    hints_ = keys.hints(type(obj))
    for f in dataclasses.fields(obj):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if key == "timeline":  # events are checked one by one below
            continue
        check_value(key, getattr(obj, f.name), hints_[f.name])


def _date(key: str, value: Any) -> dt.date:
    try:
        return policies.parse_date(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "must be a date YYYY-MM-DD") from None


def _at_least(key: str, value: Any, low: float, strict: bool = False) -> None:
    """A finite number >= low (> low if strict); refuses None, NaN and infinity."""
    ok = (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if strict else value >= low))
    if not ok:
        raise ConfigError(key, value, f"must be a finite number {'>' if strict else '>='} {low}")


def _days(key: str, value: Any, low: float, strict: bool = False) -> None:
    """A duration: a finite number >= low (> low if strict), at most sim.limits.MAX_DAYS (every
    time of the model's clock stays finite)."""
    _at_least(key, value, low, strict)
    if value > limits.MAX_DAYS:
        raise ConfigError(key, value, f"must be at most {limits.MAX_DAYS:,} days")


def _within(key: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    """A finite number in [low, high] (or (low, high]); refuses None, NaN and infinity."""
    ok = (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
          and (low < value if low_open else low <= value) and value <= high)
    if not ok:
        raise ConfigError(key, value, f"must be a number in {'(' if low_open else '['}{low}, "
                                      f"{high}]")


def _text(key: str, value: str) -> None:
    """A free text shown in the report and the figures: at most sim.limits.MAX_TEXT."""
    if len(value) > limits.MAX_TEXT:
        raise ConfigError(key, value, f"at most {limits.MAX_TEXT:,} characters")


def _share(key: str, value: Any, top_open: bool = False) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not (
            0.0 <= value < 1.0 if top_open else 0.0 <= value <= 1.0):
        raise ConfigError(key, value, f"must be a share in [0, 1{')' if top_open else ']'}")


def _one_of(key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(key, value, f"must be one of {', '.join(allowed)}")


def _keys_in(key: str, mapping: dict, allowed: Sequence[str]) -> None:
    for k in mapping:
        if k not in allowed:
            raise ConfigError(f"{key}.{k}", mapping[k],
                              f"unknown key; allowed: {', '.join(allowed)}")


def _count(key: str, value: Any, most: int) -> None:
    """An integer in [1, most]: a size with its documented bound (sim.limits)."""
    check_value(key, value, int)
    _at_least(key, value, 1)
    if value > most:
        raise ConfigError(key, value, f"must be at most {most:,} (an integer in [1, {most:,}])")


def check_counts(replications: Any, jobs: Any) -> None:
    """The API's ``replications`` and ``jobs`` arguments (None: the config's values)."""
    for key, value, most in (("replications", replications, limits.MAX_REPLICATIONS),
                             ("jobs", jobs, limits.MAX_JOBS)):
        if value is not None:
            _count(key, value, most)


def check_run_size(p: Config, replications: int | None = None, regimes: list | None = None
                   ) -> None:
    """Refuse a run larger than this machine finishes (:func:`sim.limits.size_problem`), with
    ``replications`` (None: the config's) replications."""
    problem = limits.size_problem(p, p.replications if replications is None else replications,
                                  regimes)
    if problem is not None:
        what, estimate, allowed = problem
        about = ("more than 1e308" if not math.isfinite(estimate) else
                 f"about {estimate:,.0f}" if estimate < 1e15 else f"about {estimate:.1e}")
        raise ConfigError(f"the run's size: {about} {what}", ConfigError.NO_VALUE, allowed)


def check_here(p: Config) -> None:
    """What the machine starting the run must offer, checked where it starts (not where a
    worker validates its task): ``sbatch`` for executor=slurm, a folder submitit can write."""
    ex = p.executor
    if ex.kind == ExecutorKind.slurm and shutil.which("sbatch") is None:
        raise ConfigError("executor", "slurm", "no Slurm cluster here (no sbatch on PATH); "
                                              "use executor=local or executor=submitit_local")
    if ex.kind == ExecutorKind.slurm:
        from sim.executor import check_partition

        check_partition("executor.partition", ex.partition)
    # local processes write no folder: one that cannot be written is refused only if used;
    # "" is the run's own folder (sim.executor.jobs_root)
    if ex.folder:
        check_folder("executor.folder", ex.folder, written=ex.kind != ExecutorKind.local)


def check_folder(key: str, folder: Any, written: bool = True) -> None:
    """A folder a run will create or write (:func:`sim.limits.folder_problem`)."""
    problem = limits.folder_problem(str(folder), written)
    if problem is not None:
        raise ConfigError(key, str(folder), problem)


def validate(p: Config) -> None:
    """Check every value's type, every value, then every regime the timeline produces; raise
    ConfigError."""
    if not isinstance(p, Config):
        raise ConfigError("config", type(p).__name__, "must be sim.params.Config")
    check_types(p)
    for name, event in p.timeline.items():
        if not isinstance(name, str) or not isinstance(event, EventConfig):
            raise ConfigError(f"timeline.{name}", event, "must be a named {date, label, changes}")
        check_types(event, f"timeline.{name}")
        _text(f"timeline.{name}.label", event.label)
    _check_frame(p)
    _check_levers(p)
    _check_exports(p)
    for name, event in p.timeline.items():
        _date(f"timeline.{name}.date", event.date)
        for key in event.changes:
            if not policies.settable(key):
                raise ConfigError(f"timeline.{name}.changes.{key}", event.changes[key],
                                  "a timeline event cannot change this key")
    for name, event in p.timeline.items():
        for key, value in event.changes.items():
            try:
                kind = keys.field_type(key)
            except KeyError:
                kind = Any  # refused below, as an unknown key
            if dataclasses.is_dataclass(kind):
                raise ConfigError(f"timeline.{name}.changes.{key}", value, "a timeline event "
                                  f"changes single settings, e.g. {key}."
                                  f"{dataclasses.fields(kind)[0].name}")
            check_value(f"timeline.{name}.changes.{key}", value, kind)
            try:
                policies.apply_changes(p, {key: value})
            except KeyError:
                parent = keys.lookup(keys.plain(p), key.rpartition(".")[0])
                allowed = (f"no such key; allowed: {', '.join(parent)}"
                           if isinstance(parent, dict) and "." in key
                           else "unknown key (give a single setting, e.g. officials.count)")
                raise ConfigError(f"timeline.{name}.changes.{key}", value, allowed) from None
    regimes = policies.build_regimes(p)
    for regime in regimes[1:]:
        try:
            _check_levers(regime.params)
        except ConfigError as err:
            label = ", ".join(regime.labels)
            raise ConfigError(f"timeline event '{label}': {err.key}", err.value,
                              err.allowed) from None
    check_run_size(p, regimes=regimes)


def _check_frame(p: Config) -> None:
    """Settings that fix the run's frame (dates, seed, calendar, backlog, outputs)."""
    if not _NAME.fullmatch(p.name):  # it names the run's folder: nothing may escape outputs/
        raise ConfigError("name", p.name, "must be 1-100 letters, digits, '_', '-' or '.', "
                                          "not starting with '.'")
    if not isinstance(p.seed, int) or p.seed < 0:
        raise ConfigError("seed", p.seed, "must be an integer >= 0")
    if p.seed >= 2**63:  # a 64-bit integer: every table and tool that reads it takes it
        raise ConfigError("seed", p.seed, "must be below 2**63")
    start = _date("start_date", p.start_date)
    if (p.end_date is None) == (p.horizon_days is None):
        raise ConfigError("horizon_days", p.horizon_days,
                          "set exactly one of end_date and horizon_days (the other null)")
    if p.end_date is not None:
        end = _date("end_date", p.end_date)
        if end <= start:
            raise ConfigError("end_date", p.end_date, f"must be after start_date={p.start_date}")
        n_days = (end - start).days + 1
    else:
        _count("horizon_days", p.horizon_days, limits.MAX_DAYS)
        n_days = p.horizon_days
    if n_days > limits.MAX_DAYS:
        raise ConfigError("end_date", p.end_date, f"at most {limits.MAX_DAYS:,} days after "
                                                  f"start_date={p.start_date}")
    if not 0 <= p.warmup_days < n_days:
        raise ConfigError("warmup_days", p.warmup_days, f"must be in [0, {n_days}) days")
    _one_of("calendar.kind", p.calendar.kind, CALENDAR_KINDS)
    if p.calendar.kind == CalendarKind.china:
        from sim.calendar import MAX_ESTIMATED_YEARS, china_calendar_years

        # A few years after the data are estimated (sim.calendar, with a warning); years before
        # it are not, and the year before the start is needed for an initial backlog's past.
        first, last = china_calendar_years()
        covers = (f"calendar.kind=china covers {first + 1}..{last + MAX_ESTIMATED_YEARS} "
                  f"(official data to {last}, estimated after)")
        if start.year - 1 < first:
            raise ConfigError("start_date", p.start_date, covers)
        end = start + dt.timedelta(days=n_days - 1)
        if end.year > last + MAX_ESTIMATED_YEARS:
            raise ConfigError("end_date", end.isoformat(), covers)
    for i, s in enumerate(p.arrivals.surges):
        _date(f"arrivals.surges[{i}].start_date", s.start_date)
        _within(f"arrivals.surges[{i}].size", s.size, 0, limits.MAX_APPLICATIONS)
        _days(f"arrivals.surges[{i}].decay_days", s.decay_days, 0, strict=True)
        _one_of(f"arrivals.surges[{i}].elements", s.elements, ELEMENT_GROUPS)
    for i, change in enumerate(p.officials.schedule):
        _date(f"officials.schedule[{i}].date", change.date)
        _count(f"officials.schedule[{i}].count", change.count, limits.MAX_OFFICIALS)
    ramp = p.officials.ramp
    if ramp.start_date is not None:
        _date("officials.ramp.start_date", ramp.start_date)
    _within("officials.ramp.days", ramp.days, 0, 3650)
    _within("officials.ramp.count", ramp.count, 1, limits.MAX_OFFICIALS)
    _date("green_channel.start_date", p.green_channel.start_date)
    _count("replications", p.replications, limits.MAX_REPLICATIONS)
    _count("jobs", p.jobs, limits.MAX_JOBS)
    _count("executor.timeout_min", p.executor.timeout_min, limits.MAX_TIMEOUT_MIN)
    _count("executor.cpus_per_task", p.executor.cpus_per_task, limits.MAX_CPUS_PER_TASK)
    _within("executor.mem_gb", p.executor.mem_gb, 0, limits.MAX_MEM_GB, low_open=True)
    for key in ("objective_at_least", "objective_at_most"):
        if getattr(p, key) is not None and not math.isfinite(getattr(p, key)):
            raise ConfigError(key, getattr(p, key), "must be a finite number or null")
    _at_least("objective_penalty", p.objective_penalty, 0)
    c = p.clearance
    _one_of("clearance.backlog", c.backlog, CLEARANCE_BACKLOGS)
    if not 0 < c.fraction_of_peak <= 1:
        raise ConfigError("clearance.fraction_of_peak", c.fraction_of_peak, "must be in (0, 1]")
    if c.level is not None:
        _at_least("clearance.level", c.level, 0)
    if c.cohort_date is not None:
        _date("clearance.cohort_date", c.cohort_date)
    _check_dates_set(p, start, start + dt.timedelta(days=n_days - 1))
    if c.event is not None and c.event not in p.timeline:
        raise ConfigError("clearance.event", c.event,
                          f"must be null or a timeline event: {', '.join(p.timeline) or 'none'}")
    for key in p.calibration.keep:
        try:
            keys.get(p, key)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ConfigError("calibration.keep", key, "no such setting in the scenario") from None
    if p.calibration.ensemble or "calibration.ensemble_file" in p.calibration.keep:
        path = CONFIG_DIR / p.calibration.ensemble_file
        if not path.is_file():
            raise ConfigError("calibration.ensemble_file", p.calibration.ensemble_file,
                              "is not a regular file" if path.exists()
                              else f"no such file under {CONFIG_DIR}")
        problem = limits.ensemble_problem(path)
        if problem is not None:
            raise ConfigError("calibration.ensemble_file", p.calibration.ensemble_file, problem)
    if p.output.question is not None:
        _text("output.question", p.output.question)
    for fmt in p.output.figure_formats:
        _one_of("output.figure_formats", fmt, FIGURE_FORMATS)
    if len(set(p.output.figure_formats)) < len(p.output.figure_formats):  # each drawn again
        raise ConfigError("output.figure_formats", p.output.figure_formats, "each format once")
    _within("initial_backlog.count", p.initial_backlog.count, 0, limits.MAX_APPLICATIONS)
    if not 0 <= p.initial_backlog.max_waited_days <= 3650:
        raise ConfigError("initial_backlog.max_waited_days", p.initial_backlog.max_waited_days,
                          "must be in [0, 3650] days")


def _check_dates_set(p: Config, first: dt.date, last: dt.date) -> None:
    """A date the user set (``calibration.keep`` lists the settings set on the command line or
    in ``load_config``) that has no effect inside the run is a mistake: refused. A scenario's
    own dates outside a shortened run are not (their measures are then undefined)."""
    kept = set(p.calibration.keep)
    dated = [("clearance.cohort_date", p.clearance.cohort_date, True),
             ("officials.ramp.start_date", p.officials.ramp.start_date, False),
             ("green_channel.start_date", p.green_channel.start_date, False)]
    dated += [(f"timeline.{name}.date", e.date, False) for name, e in p.timeline.items()]
    dated += [(f"arrivals.surges.{i}.start_date", s.start_date, False)
              for i, s in enumerate(p.arrivals.surges)]
    dated += [(f"officials.schedule.{i}.date", s.date, False)
              for i, s in enumerate(p.officials.schedule)]
    for key, value, from_start in dated:
        chosen = key in kept or any(key.startswith(k + ".") for k in kept)
        if not chosen or value is None:
            continue
        day = _date(key, value)
        if day > last or (from_start and day < first):
            span = f"{first} to {last}" if from_start else f"on or before {last}"
            raise ConfigError(key, value, f"has no effect in this run: a date {span}")


def _check_exports(p: Config) -> None:
    """The observation operator's assumptions (sim/exports.py): an output, not a lever."""
    e = p.exports
    check_value("exports.shipping_lag_days", e.shipping_lag_days, int)
    _within("exports.shipping_lag_days", e.shipping_lag_days, 0, 365)
    _share("exports.controlled_share", e.controlled_share)
    _within("exports.renewal_weight", e.renewal_weight, 0, 1)
    _within("exports.demand_level", e.demand_level, 0, 10, low_open=True)


def _check_levers(p: Config) -> None:
    """Settings a timeline event may change: checked for the start and for every regime."""
    a = p.arrivals
    _at_least("arrivals.rate_per_day", a.rate_per_day, 0)
    _at_least("arrivals.october5_rate_per_day", a.october5_rate_per_day, 0)
    _at_least("arrivals.scale", a.scale, 0)
    c = p.classes
    _keys_in("classes.destination_shares", c.destination_shares, DESTINATIONS)
    for k, v in c.destination_shares.items():
        _share(f"classes.destination_shares.{k}", v)
    total = sum(c.destination_shares.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError("classes.destination_shares", round(total, 6), "shares must sum to 1")
    _keys_in("classes.trusted_share", c.trusted_share, DESTINATIONS)
    for k, v in c.trusted_share.items():
        _share(f"classes.trusted_share.{k}", v)
    _share("classes.military_share", c.military_share)
    _days("intake.mean_working_days", p.intake.mean_working_days, 0)
    _days("statutory.working_days", p.statutory.working_days, 1)
    _count("officials.count", p.officials.count, limits.MAX_OFFICIALS)
    _within("officials.scale", p.officials.scale, 0, 100, low_open=True)
    if policies.officials_on_duty(p) > limits.MAX_OFFICIALS:
        raise ConfigError("officials.scale", p.officials.scale,
                          f"officials.count x officials.scale = {policies.officials_on_duty(p):,} "
                          f"officials on duty; at most {limits.MAX_OFFICIALS:,}")
    h = p.officials.hours_per_day
    if not 0 < h <= 24:
        raise ConfigError("officials.hours_per_day", h, "must be in (0, 24]")
    r = p.review
    if (r.mean_hours is None) == (r.mean_days is None):
        raise ConfigError("review.mean_hours", r.mean_hours,
                          "set exactly one of review.mean_hours and review.mean_days")
    if r.mean_hours is not None:
        _at_least("review.mean_hours", r.mean_hours, 0, strict=True)
    else:
        _days("review.mean_days", r.mean_days, 0, strict=True)
    _one_of("review.distribution", r.distribution, REVIEW_DISTRIBUTIONS)
    _within("review.cv", r.cv, 0, limits.MAX_REVIEW_CV, low_open=True)
    _at_least("review.effort_multiplier", r.effort_multiplier, 0, strict=True)
    _within("interagency.mean_working_days", p.interagency.mean_working_days, 0, 250)
    _within("interagency.cv", p.interagency.cv, 0, 10, low_open=True)
    for d in p.queue.served_last:
        _one_of("queue.served_last", d, DESTINATIONS)
    _share("incomplete.probability", p.incomplete.probability, top_open=True)
    _days("incomplete.response_mean_days", p.incomplete.response_mean_days, 0)
    _share("consultation.share", p.consultation.share)
    _days("consultation.mean_working_days", p.consultation.mean_working_days, 0)
    _one_of("military.policy", p.military.policy, MILITARY_POLICIES)
    _share("decision.deny_probability", p.decision.deny_probability)
    g = p.green_channel
    _one_of("green_channel.mode", g.mode, GREEN_CHANNEL_MODES)
    # More dedicated officials than the pool holds is allowed: all of them then serve the
    # green lane first (sim.policies.dedicated_officials caps it), e.g. while staff is short.
    if g.mode == GreenChannelMode.dedicated and g.dedicated_officials < 1:
        raise ConfigError("green_channel.dedicated_officials", g.dedicated_officials,
                          "must be >= 1 when green_channel.mode=dedicated")
    if g.dedicated_officials > limits.MAX_OFFICIALS:
        raise ConfigError("green_channel.dedicated_officials", g.dedicated_officials,
                          f"at most {limits.MAX_OFFICIALS:,}")
    for d in g.destinations:
        _one_of("green_channel.destinations", d, DESTINATIONS)
    _at_least("green_channel.effort_multiplier", g.effort_multiplier, 0, strict=True)
    effort = (policies.mean_effort_working_days(p) * r.effort_multiplier
              * max(1.0, g.effort_multiplier))
    if not effort <= limits.MAX_DAYS:  # the model's clock needs finite times
        key = "review.mean_hours" if r.mean_hours is not None else "review.mean_days"
        raise ConfigError(key, getattr(r, key.split(".")[1]),
                          f"with review.effort_multiplier, green_channel.effort_multiplier and "
                          f"officials.hours_per_day: {effort:.3g} working days of review per "
                          f"application; at most {limits.MAX_DAYS:,}")
    lic = p.licence
    _days("licence.term_days", lic.term_days, 1)
    _share("licence.renewal_share", lic.renewal_share)
    if not 0 <= lic.renewal_lead_days < lic.term_days:
        raise ConfigError("licence.renewal_lead_days", lic.renewal_lead_days,
                          f"must be in [0, licence.term_days={lic.term_days})")
    if p.withdrawal.patience_days is not None:
        _days("withdrawal.patience_days", p.withdrawal.patience_days, 0, strict=True)
    _one_of("withdrawal.patience_distribution", p.withdrawal.patience_distribution,
            PATIENCE_DISTRIBUTIONS)
    if not isinstance(p.controls.april7, bool) or not isinstance(p.controls.october5, bool):
        raise ConfigError("controls", p.controls, "april7 and october5 must be true or false")


