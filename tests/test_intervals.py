"""One rule keeps every interval inside its figure's possible range (sim.stats.within_range):
a t interval of a mean near 0 (or a share near 1) reaches past it, and no table may print a
negative count or a share above 100 %."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.stats import figure_kind, mean_ci, within_range


@pytest.mark.parametrize(("figure", "kind"), [
    ("peak_pending", "count"), ("waiting_end", "count"), ("mean_wait_days", "days"),
    ("by_group.destination.US.p90_wait_days", "days"), ("utilisation", "share"),
    ("share_decided_late", "share"), ("clearance.fraction_of_peak", "share")])
def test_figure_kinds(figure, kind):
    assert figure_kind(figure) == kind


def test_an_interval_crossing_the_range_is_cut_at_it():
    # two replications far apart around a small mean: the t interval crosses 0 (and 1)
    _, low, high = mean_ci([0.0, 0.9])
    assert low < 0 and high > 1
    assert within_range(low, "waiting_end") == 0.0
    assert within_range(high, "waiting_end") == high
    assert within_range(high, "share_decided_late") == 1.0
    assert within_range(low, "utilisation") == 0.0
    assert within_range(None, "utilisation") is None
    assert math.isnan(within_range(math.nan, "utilisation"))
    cut = within_range(np.array([-3.0, 0.5, 1.2, np.nan]), "utilisation")
    assert cut[:3].tolist() == [0.0, 0.5, 1.0] and math.isnan(cut[3])
