"""Every value the user gives wins over the calibrated ensemble's member, whatever the value:
``null`` included (``officials.ramp.start_date=null`` removes the extra staff after London), and
a value equal to the scenario's own (the member must not replace it either)."""

from __future__ import annotations

import pytest

import sim
from sim import ensemble


def _params_that_run(overrides: list[str], replications: int = 6) -> list:
    params = sim.to_params(sim.load_config(overrides))
    members = ensemble.ensemble_members(params)
    return [ensemble.replication_params(params, r, members) for r in range(replications)]


def test_the_ensemble_draws_the_calibrated_values_by_default():
    ran = _params_that_run([])
    assert len({p.officials.ramp.start_date for p in ran} | {p.officials.count for p in ran}) > 2


@pytest.mark.parametrize(("override", "read", "expected"), [
    ("officials.ramp.start_date=null", lambda p: p.officials.ramp.start_date, None),
    ("officials.count=6", lambda p: p.officials.count, 6),
    ("incomplete.probability=0.1", lambda p: p.incomplete.probability, 0.1),
])
def test_a_value_the_user_gives_wins_over_every_member(override, read, expected):
    for p in _params_that_run([override]):
        assert read(p) == expected


def test_a_dropped_timeline_event_is_not_kept():
    ran = _params_that_run(["timeline.london=null", "clearance.event=null"], replications=2)
    assert all("london" not in p.timeline for p in ran)
