"""Memory flat in the number of replications: Results keeps a few numbers a replication (the
rest goes to a temporary file a block at a time), and the tables with a row or a column per
replication are written a block or a line at a time, to the same bytes."""

from __future__ import annotations

import gc
import json
import pickle
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from sim import outputs, results
from sim.outputs import write_csv, write_run, write_wide_csv
from sim.results import Results
from sim.runner import run_replications

TINY = ("scenario=mmc", "horizon_days=30", "warmup_days=0")
RUN_FILES = ("daily.csv", "daily_by_class.csv", "daily_by_group.csv", "replications.csv",
             "who_waits.csv", "pending_by_replication.csv", "summary.json")


def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 4, n)
    x[::7], x[3], x[4] = np.nan, -0.0, np.inf
    return pd.DataFrame({
        "date": [f"2025-04-{d % 28 + 1:02d}" for d in range(n)],
        "count": rng.integers(-5, 10**9, n),
        "x": x,
        "zeros": np.resize([0.0, -0.0, np.nan, 1.5], n),
        "flag": rng.random(n) < 0.5,
        "text": rng.choice(["US", "a,b", 'say "hi"', "line\nbreak", ""], n),
        "where": [None if i % 4 == 0 else ["US", "a,b"][i % 2] for i in range(n)],
        "job": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),
        "label": pd.Categorical([None if i % 6 == 0 else ["US", "a,b"][i % 2]
                                 for i in range(n)], categories=["a,b", "US", "unused"]),
    })


@pytest.mark.parametrize("cells", [1, 7, 100, 10**9])
def test_csv_in_blocks_is_pandas_bytes(tmp_path, monkeypatch, cells):
    monkeypatch.setattr(outputs, "_BLOCK_CELLS", cells)
    table = _table(203)
    for fmt in ("%.6g", "%.17g"):
        table.to_csv(tmp_path / "pandas.csv", index=False, float_format=fmt)
        expected = (tmp_path / "pandas.csv").read_bytes()
        write_csv(tmp_path / "whole.csv", table, float_format=fmt)
        assert (tmp_path / "whole.csv").read_bytes() == expected
        # given a block at a time (blocks of any size, an empty one too)
        bounds = [0, 1, 1, 50, 51, 200, 203]
        blocks = (table.iloc[a:b] for a, b in zip(bounds, bounds[1:], strict=False))
        write_csv(tmp_path / "blocks.csv", blocks, float_format=fmt)
        assert (tmp_path / "blocks.csv").read_bytes() == expected
    for single in (pd.DataFrame({"only": ["", "a", "", "b,c"]}), pd.DataFrame({"a b": []})):
        write_csv(tmp_path / "ours.csv", single)
        single.to_csv(tmp_path / "pandas.csv", index=False, float_format="%.6g")
        assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


def test_csv_blocks_must_agree(tmp_path):
    with pytest.raises(ValueError, match="other columns"):
        write_csv(tmp_path / "x.csv", iter([pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]})]))
    with pytest.raises(ValueError, match="no rows"):
        write_csv(tmp_path / "x.csv", iter([]))
    assert not list(tmp_path.iterdir())  # nothing written, no temporary file left


@pytest.mark.parametrize("cells", [1, 3, 10**9])
@pytest.mark.parametrize("dtype", [np.int64, np.float64, np.int32])
def test_wide_csv_is_the_tables_bytes(tmp_path, monkeypatch, cells, dtype):
    monkeypatch.setattr(outputs, "_BLOCK_CELLS", cells)
    rng = np.random.default_rng(5)
    for n in (1, 2, 9):
        left = pd.DataFrame({"date": [f"2025-05-{d + 1:02d}" for d in range(6)]})
        counts = rng.integers(0, 4, (n, 6)).astype(dtype)
        if dtype is np.float64:
            counts[0, 1], counts[-1, 2] = np.nan, -0.0
        table = pd.concat([left, pd.DataFrame({f"r{i}": row for i, row in enumerate(counts)})],
                          axis=1)
        write_csv(tmp_path / "table.csv", table)
        write_wide_csv(tmp_path / "wide.csv", left, counts, "r")
        assert (tmp_path / "wide.csv").read_bytes() == (tmp_path / "table.csv").read_bytes()
        table.to_csv(tmp_path / "pandas.csv", index=False, float_format="%.6g")
        assert (tmp_path / "wide.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


def _same(a: Results, b: Results) -> None:
    for name in ("daily", "by_class", "group_bands", "replications", "pending_by_replication",
                 "who_waits"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert json.dumps(outputs._clean(a.summary)) == json.dumps(outputs._clean(b.summary))
    for key in a.replications.columns[1:]:
        np.testing.assert_array_equal(a.per_run(key), b.per_run(key))


@pytest.mark.parametrize("overrides", [
    TINY,
    ("end_date=2025-05-15", "calibration.ensemble=true"),  # classes, groups, an ensemble
])
@pytest.mark.slow
def test_blocks_in_a_file_give_the_same_results_and_files(compose, overrides, monkeypatch,
                                                          tmp_path):
    params = compose(*overrides, "output.plots=false")
    runs = run_replications(params, 7, jobs=1)
    whole = Results(params, iter(runs), keep_runs=False)  # one block, in memory
    assert len(whole._blocks.blocks) == 1 and whole._blocks._file is None
    monkeypatch.setattr(results, "_BLOCK_BYTES", 1)  # a block (in the file) a replication
    spilled = Results(params, iter(runs), keep_runs=False)
    assert len(spilled._blocks.blocks) == 7 and spilled._blocks._file is not None
    copied = pickle.loads(pickle.dumps(Results(params, iter(runs), keep_runs=False)))
    assert copied._blocks._file is None  # a copy holds its blocks itself
    monkeypatch.setattr(results, "_BLOCK_BYTES", 30_000)  # a few a block
    few = Results(params, iter(runs), keep_runs=False)
    assert 1 < len(few._blocks.blocks) < 7
    for other in (spilled, few, copied):
        _same(whole, other)
    monkeypatch.setattr(outputs, "_BLOCK_CELLS", 50)  # replications.csv a row at a time
    write_run(tmp_path / "spilled", Results(params, iter(runs), keep_runs=False))
    monkeypatch.setattr(results, "_BLOCK_BYTES", 1 << 40)
    monkeypatch.setattr(outputs, "_BLOCK_CELLS", 1 << 40)
    write_run(tmp_path / "whole", Results(params, iter(runs), keep_runs=False))
    for name in RUN_FILES:
        assert ((tmp_path / "whole" / name).read_bytes()
                == (tmp_path / "spilled" / name).read_bytes()), name


def test_figures_that_come_late_are_undefined_before(compose, monkeypatch):
    # A figure a later replication has first (a group that earlier ones never saw): earlier
    # blocks, narrower, read it as undefined.
    params = compose(*TINY)
    runs = run_replications(params, 3, jobs=1)
    late = runs[2]
    late.summary["late_figure"] = 1.5
    monkeypatch.setattr(results, "_BLOCK_BYTES", 1)
    res = Results(params, iter(runs), keep_runs=False)
    np.testing.assert_array_equal(res.per_run("late_figure"), [np.nan, np.nan, 1.5])
    assert res.replications["late_figure"].tolist()[2] == 1.5
    assert np.isnan(res.replications["late_figure"].tolist()[:2]).all()


@pytest.mark.slow
def test_memory_kept_a_replication_is_a_few_numbers(compose, monkeypatch):
    # What Results keeps in memory grows by the clearance dates and the ensemble member of a
    # replication (a code each) and its share of a block's bookkeeping, not by its figures and
    # series (about 13 kB here): those are in the file, but for the last block's.
    monkeypatch.setattr(results, "_BLOCK_BYTES", 1 << 20)
    monkeypatch.setattr(results, "_CLASS_BATCH_ROWS", 1)  # per-class tables summed at once
    params = compose(*TINY)
    # each replication a fresh copy, as it comes from the runner (pandas keeps track of what
    # was read from a table: one read over and over would keep what it tracks growing)
    runs = [pickle.dumps(run) for run in run_replications(params, 2, jobs=1)]

    def kept(n: int) -> int:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        res = Results(params, (pickle.loads(runs[r % 2]) for r in range(n)), keep_runs=False)
        gc.collect()  # pandas' cycles left behind, whatever their number
        size = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert res.n == n and res._blocks._file is not None
        _, last = res._blocks.blocks[-1]  # in memory: at most _BLOCK_BYTES, whatever n
        return size - sum(a.nbytes for a in last.values() if isinstance(a, np.ndarray))

    per_replication = (kept(1000) - kept(200)) / 800
    assert per_replication < 100, per_replication  # about 30 (before the file: 13,000)
