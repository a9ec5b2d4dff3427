"""Policy levers over time: the dated timeline and the rules that read the current parameters.

The timeline turns the configuration into *regimes*: from a given day on, a full parameter set
applies. The model swaps its parameters at each regime start; nothing here touches the queue.
The rules that combine levers or change over time live here: when the green channel is open
and who may use it, the officials on duty and dedicated to it, the destinations served last,
the review effort an application costs. A lever read at one step of an application's path
(intake, military policy, incomplete files, other agencies' review, consultation, denial,
withdrawal, renewal) is read at that step of ``LicenceModel.application`` (sim/model.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sim.params import FRAME_KEYS, Config, GreenChannelMode


@dataclass(frozen=True)
class Regime:
    day: int  # first calendar day (relative to start_date) on which `params` apply
    params: Config
    labels: tuple[str, ...]  # the events that opened this regime


def parse_date(value: str) -> dt.date:
    return dt.date.fromisoformat(str(value))


def settable(path: str) -> bool:
    """Whether a timeline event may change the dotted key ``path``."""
    return not any(path == k or path.startswith(k + ".") for k in FRAME_KEYS)


def apply_changes(params: Config, changes: dict[str, Any]) -> Config:
    """A copy of ``params`` with each dotted key set to its new value (unknown keys: KeyError)."""
    for path, value in changes.items():
        params = _replace_path(params, path.split("."), value, path)
    return params


def _replace_path(obj: Any, parts: list[str], value: Any, full: str) -> Any:
    name = parts[0]
    if isinstance(obj, dict) and len(parts) == 1 and name in obj:  # one entry of a mapping,
        return {**obj, name: value}  # e.g. classes.destination_shares.US: a new mapping
    if not dataclasses.is_dataclass(obj) or name not in {f.name for f in dataclasses.fields(obj)}:
        raise KeyError(full)
    if len(parts) == 1:
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):  # only single settings, never a whole group
            raise KeyError(full)
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        return dataclasses.replace(obj, **{name: value})
    return dataclasses.replace(obj, **{name: _replace_path(getattr(obj, name), parts[1:],
                                                           value, full)})


def timeline_events(params: Config) -> list[tuple[dt.date, str, dict[str, Any]]]:
    """All dated changes: the timeline plus `officials.schedule`, in date order (stable)."""
    events = [(parse_date(e.date), e.label or name, dict(e.changes))
              for name, e in params.timeline.items()]
    events += [(parse_date(s.date), f"officials: {s.count}", {"officials.count": s.count})
               for s in params.officials.schedule]
    gc = params.green_channel
    if gc.mode != GreenChannelMode.off or any("green_channel.mode" in ch for _, _, ch in events):
        events.append((parse_date(gc.start_date), "green channel opens", {}))
    return sorted(events, key=lambda e: e[0])


def ramp_events(params: Config, from_count: int) -> list[tuple[dt.date, str, dict[str, Any]]]:
    """`officials.ramp` as weekly staffing steps from ``from_count`` to the ramp's count."""
    ramp = params.officials.ramp
    if ramp.start_date is None:
        return []
    start, steps = parse_date(ramp.start_date), max(1, round(ramp.days / 7))
    events = []
    for k in range(1, steps + 1):
        date = start + dt.timedelta(days=round(k * ramp.days / steps) if ramp.days else 0)
        count = round(from_count + (ramp.count - from_count) * k / steps)
        events.append((date, f"officials: {count} (ramp)", {"officials.count": count}))
    return events


def build_regimes(params: Config) -> list[Regime]:
    """Successive parameter sets; events on or before the start apply from day 0.

    The staffing ramp starts from the pool in force on its start date, so it is laid over the
    regimes of every other event."""
    events = timeline_events(params)
    ramp = params.officials.ramp
    if ramp.start_date is not None:
        day = (parse_date(ramp.start_date) - parse_date(params.start_date)).days
        before = [r for r in _regimes(params, events) if r.day <= max(day, 0)][-1]
        events = sorted(events + ramp_events(params, before.params.officials.count),
                        key=lambda e: e[0])
    return _regimes(params, events)


def _regimes(params: Config, events: list[tuple[dt.date, str, dict[str, Any]]]) -> list[Regime]:
    start = parse_date(params.start_date)
    regimes = [Regime(0, params, ("start",))]
    for date, label, changes in events:
        day = max((date - start).days, 0)
        new = apply_changes(regimes[-1].params, changes)
        if day == regimes[-1].day:
            regimes[-1] = Regime(day, new, regimes[-1].labels + (label,))
        else:
            regimes.append(Regime(day, new, (label,)))
    return regimes


def green_channel_open(params: Config, day: int) -> bool:
    """The green channel runs when a mode is chosen and its start date has come."""
    gc = params.green_channel
    opens = (parse_date(gc.start_date) - parse_date(params.start_date)).days
    return gc.mode != GreenChannelMode.off and day >= opens


def green_eligible(params: Config, destination: str, trusted: bool, military: bool) -> bool:
    """Trusted, civilian applicants bound for a green-channel destination."""
    return trusted and not military and destination in params.green_channel.destinations


def officials_on_duty(params: Config) -> int:
    """The pool's size under the current rules: the staffing level times `officials.scale`
    (at least one official)."""
    return max(1, round(params.officials.count * params.officials.scale))


def dedicated_officials(params: Config) -> int:
    gc = params.green_channel
    if gc.mode != GreenChannelMode.dedicated:
        return 0
    return min(gc.dedicated_officials, officials_on_duty(params))


def served_last(params: Config, destination: str) -> bool:
    """Whether regular applications bound for ``destination`` wait behind every other one."""
    return destination in params.queue.served_last


def effort_factor(params: Config, green: bool) -> float:
    """Multiplier on an application's review effort under the current rules."""
    factor = params.review.effort_multiplier
    return factor * params.green_channel.effort_multiplier if green else factor


def mean_effort_working_days(params: Config) -> float:
    """Mean review effort, in working days of one official."""
    r = params.review
    return r.mean_days if r.mean_days is not None else r.mean_hours / params.officials.hours_per_day
