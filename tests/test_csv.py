"""The run folder's CSV writer gives pandas' bytes (to_csv with float_format), faster."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.outputs import write_csv


def test_csv_bytes_equal_pandas(tmp_path):
    rng = np.random.default_rng(1)
    n = 500
    x = rng.lognormal(0, 4, n)
    x[::17] = np.nan
    x[5], x[6], x[7] = np.inf, -0.0, 1e-300
    table = pd.DataFrame({
        "date": [f"2025-04-{d % 28 + 1:02d}" for d in range(n)],
        "count": rng.integers(-5, 10**9, n),
        "x": x,
        "flag": rng.random(n) < 0.5,
        "text": rng.choice(["US", "a,b", 'say "hi"', "line\nbreak", "", "cr\rhere", " pad "], n),
        "maybe": [None if i % 3 else i for i in range(n)],
        "job": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),
        "share": pd.array([None if i % 7 == 0 else i / 7 for i in range(n)], dtype="Float64"),
        # values repeated (each distinct value is formatted once): zeros of both signs
        "zeros": np.resize([0.0, -0.0, 0.0, np.nan, 1.5, -1.5, 1e-7], n),
        "negative_zero_first": np.resize([-0.0, 0.0, np.nan, 0.0, 2.0], n),
        # categorical columns (daily_by_group's labels): each category formatted once
        "label": pd.Categorical([None if i % 6 == 0 else ["US", "a,b", "x\ry"][i % 3]
                                 for i in range(n)], categories=["x\ry", "US", "a,b", "unused"]),
        "label_bool": pd.Categorical(rng.random(n) < 0.3),
        "label_float": pd.Categorical(np.resize([1.5, 2.25, np.nan, 1e-7], n)),
        "where": [None if i % 4 == 0 else ["US", "EU", "a,b"][i % 3] for i in range(n)],
        "small": rng.integers(0, 3, n).astype(np.uint8),
    })
    for fmt in ("%.6g", "%.17g"):
        write_csv(tmp_path / "ours.csv", table, float_format=fmt)
        table.to_csv(tmp_path / "pandas.csv", index=False, float_format=fmt)
        assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    for single in (pd.DataFrame({"only": ["", "a", "", "b,c", "x\ry"]}),
                   pd.DataFrame({"only": [1.5, np.nan, 2.0]}), pd.DataFrame({"a b": []})):
        write_csv(tmp_path / "ours.csv", single)
        single.to_csv(tmp_path / "pandas.csv", index=False, float_format="%.6g")
        assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    empty = pd.DataFrame(columns=["date", "pending"])
    write_csv(tmp_path / "ours.csv", empty)
    empty.to_csv(tmp_path / "pandas.csv", index=False)
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
