"""The recorder's wait histogram: its bins, its quantiles against exact ones, and values added
in blocks (as the recorder does) giving the same histogram whatever the block size."""

from __future__ import annotations

import math

import numpy as np

from sim.recorder import Recorder, WaitHistogram


def test_bins_are_floor_400_log_and_zeros_apart():
    h = WaitHistogram()
    values = np.array([0.0, 1e-13, 1.0, math.e, 2.5, 2.5, 100.0])
    h.add_block(values)
    assert h.zeros == 2
    expected = {}
    for x in values[2:]:
        k = math.floor(math.log(x) * 400.0)
        expected[k] = expected.get(k, 0) + 1
    assert h.bins == expected and h.n == len(values)


def test_quantiles_within_the_bin_resolution():
    """A bin spans a factor exp(1/400): its mid-point is within 0.13 % of any value in it."""
    x = np.random.default_rng(3).exponential(30.0, 50_000)
    h = WaitHistogram()
    h.add_block(x)
    for q in (0.1, 0.5, 0.9, 0.99):
        exact = np.quantile(x, q, method="lower")
        assert abs(h.quantile(q) / exact - 1) < math.expm1(0.5 / 400.0) + 1e-12


def test_blocks_do_not_change_the_histogram():
    x = np.random.default_rng(4).exponential(5.0, 10_001)
    x[::7] = 0.0
    whole = WaitHistogram()
    whole.add_block(x)
    parts = WaitHistogram()
    for chunk in np.array_split(x, 13):
        parts.add_block(chunk)
    assert (whole.zeros, whole.bins) == (parts.zeros, parts.bins)


def test_recorder_tallies_every_wait_once_it_is_finished():
    """Waits go into the histograms a block at a time; finish() adds the rest."""
    rec = Recorder(n_days=10, warmup_days=0, keep_applications=False)
    waits = np.random.default_rng(5).exponential(2.0, 9_000).tolist()  # > two blocks
    for i, w in enumerate(waits):
        rec.first_review(cls=(i % 3) << 2, submitted=0.0, wait=w)
    rec.finish()
    assert rec.wait_hist.n == len(waits)
    assert sum(h.n for h in rec.segment_waits) == len(waits)
    assert [h.n for h in rec.segment_waits[:3]] == [3000, 3000, 3000]
    expected = WaitHistogram()
    expected.add_block(np.array(waits))
    assert rec.wait_hist.bins == expected.bins
