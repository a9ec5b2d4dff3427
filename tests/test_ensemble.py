"""Calibrated ensemble members drawn per replication, and predictive bands over replications."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

import sim
from sim.ensemble import MEMBER_KEY, member_index
from sim.outputs import write_run
from sim.runner import run_replications

# The M/M/c check scenario over 60 days: a few milliseconds per replication.
TINY = ["scenario=mmc", "horizon_days=60", "warmup_days=0"]
COUNTS = (4, 5, 7)  # officials.count of the three members: visible in daily["officials"]


@pytest.fixture
def ensemble_file(tmp_path):
    """A three-member ensemble, at an absolute path (CONFIG_DIR / absolute stays absolute)."""
    path = tmp_path / "ensemble.yaml"
    path.write_text(yaml.safe_dump({"members": [{"officials.count": c} for c in COUNTS]}))
    return path


def tiny(ensemble_file=None, *overrides):
    extra = ["calibration.ensemble=true", f"calibration.ensemble_file={ensemble_file}"]
    return sim.to_params(sim.load_config([*TINY, *(extra if ensemble_file else []),
                                          *overrides]))


def test_member_key_is_far_from_the_model_streams():
    from sim.model import STREAMS

    assert MEMBER_KEY > 100 * len(STREAMS)


def test_member_draw_depends_on_seed_and_replication_only(ensemble_file):
    params = tiny(ensemble_file)
    serial = run_replications(params, n=6, jobs=1)
    parallel = run_replications(params, n=6, jobs=2)
    used = [r.summary["ensemble_member"] for r in serial]
    assert used == [r.summary["ensemble_member"] for r in parallel]
    assert used == [member_index(params.seed, r, len(COUNTS)) for r in range(6)]
    for r in (0, 4, 5):
        alone = run_replications(params, n=1, first=r)[0]
        assert alone.summary["ensemble_member"] == used[r]
        pd.testing.assert_frame_equal(alone.daily, serial[r].daily)
    later = run_replications(params, n=3, first=3)
    assert [r.summary["ensemble_member"] for r in later] == used[3:]
    for r, run in enumerate(serial):
        assert run.daily["officials"].iloc[0] == COUNTS[used[r]]
    other_seed = [member_index(params.seed + 1, r, len(COUNTS)) for r in range(60)]
    assert other_seed != [member_index(params.seed, r, len(COUNTS)) for r in range(60)]


def test_member_draw_is_uniform_not_cycled():
    m, n = 3, 60
    seed = sim.to_params(sim.load_config(TINY)).seed
    used = [member_index(seed, r, m) for r in range(n)]
    assert used != [r % m for r in range(n)]
    counts = np.bincount(used, minlength=m)
    assert (counts > 0).all()
    # Each count is Binomial(n, 1/m): within 4 sd of n/m, and the chi-square not extreme.
    sd = np.sqrt(n * (1 / m) * (1 - 1 / m))
    assert (np.abs(counts - n / m) < 4 * sd).all(), counts
    chi2 = ((counts - n / m) ** 2 / (n / m)).sum()
    assert chi2 < stats.chi2.ppf(0.999, m - 1), counts


def test_predictive_band_covers_replications_and_is_wider_than_the_mean_band(ensemble_file):
    n = 12
    res = sim.run(tiny(ensemble_file), replications=n)
    d = res.daily
    for c in ("pending", "approved", "arrivals"):
        stack = np.vstack([r.daily[c].to_numpy(dtype=float) for r in res.runs])
        low, high = np.percentile(stack, [2.5, 97.5], axis=0)
        np.testing.assert_allclose(d[f"{c}_pred_low"], low)
        np.testing.assert_allclose(d[f"{c}_pred_high"], high)
        # linear percentiles at 2.5 % and 97.5 % of 12 values: at most one value out each side
        assert ((stack < d[f"{c}_pred_low"].to_numpy()).sum(axis=0) <= 1).all()
        assert ((stack > d[f"{c}_pred_high"].to_numpy()).sum(axis=0) <= 1).all()
        pred_width = (d[f"{c}_pred_high"] - d[f"{c}_pred_low"]).to_numpy()
        ci_width = (d[f"{c}_high"] - d[f"{c}_low"]).to_numpy()
        assert np.nanmean(pred_width) > 1.5 * np.nanmean(ci_width), c
    # mmc has no trusted applicants: the 'not trusted' group is the whole backlog
    g = res.group_bands
    g = g[(g["dimension"] == "trusted") & (g["value"] == "False") & (g["figure"] == "pending")]
    np.testing.assert_allclose(g["pred_low"], d["pending_pred_low"])
    np.testing.assert_allclose(g["pred_high"], d["pending_pred_high"])


def test_summary_has_predictive95_and_the_members_used(ensemble_file):
    n = 5
    res = sim.run(tiny(ensemble_file), replications=n)
    s = res.summary
    assert set(s["predictive95"]) == set(s["ci95"]) and "ensemble_member" not in s["ci95"]
    assert "ensemble_member" not in s
    values = [r.summary["mean_wait_days"] for r in res.runs]
    low, high, defined = s["predictive95"]["mean_wait_days"]
    assert defined == n
    assert (low, high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))
    assert s["ensemble"] == {"file": str(ensemble_file), "members": len(COUNTS),
                             "used": [r.summary["ensemble_member"] for r in res.runs]}
    assert len(s["ensemble"]["used"]) == n
    assert s["bands"].endswith("over replications and calibrated ensemble members")
    single = sim.run(tiny(ensemble_file), replications=1).summary
    assert single["predictive95"] == {} and len(single["ensemble"]["used"]) == 1


def test_without_an_ensemble_bands_are_over_replications_only():
    s = sim.run(tiny(), replications=3).summary
    assert "ensemble" not in s and "predictive95" in s
    assert s["bands"].endswith("2.5-97.5 percentiles over replications")


@pytest.mark.slow
def test_run_folder_and_figures_show_the_predictive_band(ensemble_file, tmp_path):
    res = sim.run(tiny(ensemble_file), replications=4)
    out = write_run(tmp_path / "run", res)
    daily = pd.read_csv(out / "daily.csv")
    assert {"pending_pred_low", "pending_pred_high", "arrivals_pred_low"} <= set(daily)
    assert {"pred_low", "pred_high"} <= set(pd.read_csv(out / "daily_by_group.csv"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ensemble"]["used"] == res.summary["ensemble"]["used"]
    assert "predictive95" in summary and "bands" in summary
    label = "95 % predictive interval (replications × ensemble members)"
    for fig in (res.plot_backlog(), res.plot_groups("destination")):
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert any(label in t for t in texts), texts
        assert any("95 % band of the mean" in t for t in texts), texts
    plain = sim.run(tiny(), replications=3).plot_backlog()
    texts = [t.get_text() for t in plain.axes[0].get_legend().get_texts()]
    assert any(t.endswith("95 % predictive interval (replications)") for t in texts), texts


def test_a_setting_the_user_overrides_wins_over_the_members(ensemble_file):
    """officials.count is set by every member; named on the command line (or in load_config),
    it stays at the user's value in every replication, while a member-only setting varies."""
    from sim.ensemble import replication_params

    members = [{"officials.count": c, "review.mean_days": 0.5 + k}
               for k, c in enumerate(COUNTS)]
    ensemble_file.write_text(yaml.safe_dump({"members": members}))
    params = tiny(ensemble_file, "officials.count=9")
    assert "officials.count" in params.calibration.keep
    runs = [replication_params(params, r, members) for r in range(12)]
    assert {p.officials.count for p in runs} == {9}
    assert len({p.review.mean_days for p in runs}) > 1
    free = tiny(ensemble_file)
    assert {replication_params(free, r, members).officials.count for r in range(12)} <= set(COUNTS)
