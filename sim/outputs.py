"""Writing a run's results at the edge: every file atomically, summary.json last.

A run folder without summary.json is an incomplete run; a file is either absent or complete.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.files import atomic_write, package_version, remove_stale_temporaries
from sim.params import Config

__all__ = ["atomic_write", "is_complete", "package_version", "remove_stale_temporaries",
           "save_figure", "summary_document", "write_csv", "write_figures", "write_json",
           "write_run", "write_wide_csv"]


def _cells(column: pd.Series, float_format: str) -> list[str]:
    """A column as CSV text, exactly as ``DataFrame.to_csv(float_format=...)`` writes it
    (numbers through ``float_format``, missing values empty). Columns of numbers, booleans and
    strings format each distinct value once: a long run's tables repeat theirs millions of
    times."""
    if isinstance(column.dtype, pd.CategoricalDtype):  # each category once; missing: code -1
        # as pandas writes a category: its str (no float_format), quoted where needed
        text = [*(_quoted(str(v)) for v in column.cat.categories.tolist()), ""]
        return np.array(text, dtype=object)[column.cat.codes.to_numpy()].tolist()
    kind = column.dtype.kind
    if kind == "f":
        values = column.to_numpy(dtype=float, na_value=np.nan)
        codes, uniques = pd.factorize(values)  # missing: code -1
        cells = np.array([*(float_format % v for v in uniques.tolist()), ""],
                         dtype=object)[codes]
        zero = values == 0  # 0.0 and -0.0 are one value to factorize, not to the format
        cells[zero & np.signbit(values)] = float_format % -0.0
        cells[zero & ~np.signbit(values)] = float_format % 0.0
        return cells.tolist()
    if kind in "biu" and isinstance(column.dtype, np.dtype):  # numpy's, never missing
        return _each_distinct(column.to_numpy(), str)
    if kind == "O" and pd.api.types.infer_dtype(column, skipna=True) == "string":
        codes, uniques = pd.factorize(column)  # missing: code -1
        text = np.array([*map(_quoted, map(str, uniques)), ""], dtype=object)
        return text[codes].tolist()
    return ["" if v is None or v is pd.NA or (isinstance(v, float) and v != v)
            else _quoted(str(v)) for v in column.tolist()]


def _quoted(text: str) -> str:
    """A text field as the csv module writes it: quoted where it must be."""
    if not any(c in text for c in ',"\r\n'):  # nothing the csv module would quote for
        return text
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([text, ""])
    return buffer.getvalue()[:-2]  # less the empty second field and the line end


def _each_distinct(values: np.ndarray, text) -> list[str]:
    """``[text(v) for v in values]``, calling ``text`` once per distinct value."""
    if len(values) == 0:
        return []
    uniques, inverse = np.unique(values, return_inverse=True)
    return np.array([text(u) for u in uniques.tolist()], dtype=object)[inverse].tolist()


# Cells formatted at a time: a block of rows (replications.csv's 800 columns: about 300 rows),
# so a table's text is never held whole (tens of kilobytes a row for replications.csv).
_BLOCK_CELLS = 250_000


def write_csv(path: Path, table: pd.DataFrame | Iterable[pd.DataFrame],
              float_format: str = "%.6g") -> None:
    """The table as CSV, atomically. The same bytes as pandas' ``to_csv(index=False,
    float_format=...)``, several times faster: pandas formats each number through several
    Python calls, and a run over tens of thousands of days writes millions.

    ``table``: a frame, or its rows as frames, a block at a time (at least one, every one with
    the same columns; ``Results.replication_blocks``), appended to the one temporary file as
    they come: a table too large to hold (or to format) whole is written in constant memory.
    Either way rows are formatted a block of about ``_BLOCK_CELLS`` cells at a time, and each
    cell's text depends only on its value and its column's type: the bytes do not depend on
    the blocks."""
    blocks = iter([table] if isinstance(table, pd.DataFrame) else table)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            header = None
            for block in blocks:
                if header is None:
                    header = list(block.columns)
                    csv.writer(f, lineterminator="\n").writerow([str(c) for c in header])
                elif list(block.columns) != header:
                    raise ValueError(f"write_csv: a block of {path.name} has other columns")
                step = max(1, _BLOCK_CELLS // max(1, len(header)))
                if len(block) <= step:
                    _write_rows(f, block, float_format)
                    continue
                for start in range(0, len(block), step):
                    _write_rows(f, block.iloc[start:start + step], float_format)
            if header is None:
                raise ValueError(f"write_csv: no rows given for {path.name}, not even a header")

    atomic_write(path, write)


def _write_rows(f, table: pd.DataFrame, float_format: str) -> None:
    """A block of rows (no header), as write_csv writes them."""
    columns = [_cells(table[c], float_format) for c in table.columns]
    if len(columns) == 1:  # the csv module quotes a lone empty field, not to write a blank line
        columns = [['""' if cell == "" else cell for cell in columns[0]]]
    # cells are quoted already: join them, a block of rows at a time (the csv module would
    # check every character of every cell again)
    rows = zip(*columns, strict=True)
    while block := list(islice(rows, 10_000)):
        f.write("\n".join(map(",".join, block)))
        f.write("\n")


def write_wide_csv(path: Path, left: pd.DataFrame, columns: np.ndarray, prefix: str,
                   float_format: str = "%.6g") -> None:
    """``left`` with one more column per row of ``columns`` (a 2-D array; named ``prefix``
    and its row number: ``r0``, ``r1``, ...), as :func:`write_csv` writes that table (the same
    bytes), a line at a time: the table, one column per replication, is never built (its
    column names, cells and frame cost about as much again as the numbers a replication)."""
    if any(c in prefix for c in ',"\r\n'):
        raise ValueError(f"write_wide_csv: {prefix!r} would need quoting")
    n_columns, n_rows = columns.shape
    if len(left) != n_rows:
        raise ValueError(f"write_wide_csv: {len(left)} rows and {n_rows} values a column")
    width = len(left.columns) + n_columns
    step = max(1, _BLOCK_CELLS)
    left_cells = [_cells(left[c], float_format) for c in left.columns]

    def chunks(cells):  # cells as write_csv writes them: a lone empty field quoted
        return ['""' if width == 1 and cell == "" else cell for cell in cells]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            names = [str(c) for c in left.columns]
            if width < 2:  # the csv module's own line (a lone name: quoted if empty)
                names += [f"{prefix}{i}" for i in range(n_columns)]
                csv.writer(f, lineterminator="\n").writerow(names)
            else:
                f.write(",".join(map(_quoted, names)))
                for start in range(0, n_columns, step):
                    stop = min(start + step, n_columns)
                    f.write(("," if start or names else "")
                            + ",".join(f"{prefix}{i}" for i in range(start, stop)))
                f.write("\n")
            for row in range(n_rows):
                f.write(",".join(chunks([cells[row] for cells in left_cells])))
                for start in range(0, n_columns, step):
                    # one column of ``columns`` per cell: its type is the table's columns' one,
                    # and a cell's text depends only on its value and that type (_cells)
                    cells = _cells(pd.Series(columns[start:start + step, row]), float_format)
                    f.write(("," if start or left_cells else "") + ",".join(chunks(cells)))
                f.write("\n")

    atomic_write(path, write)


def _clean(value: Any) -> Any:
    """JSON without NaN: undefined figures become null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(_clean(data), indent=2, sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def summary_document(params: Config, results) -> dict[str, Any]:
    """summary.json: seed, version, headline figures (with CIs over replications), what a
    replication needs to run again (:func:`sim.what_ran.record`: versions, the values each
    ensemble member drawn ran with), config."""
    from sim.what_ran import record

    return {"seed": params.seed, "version": package_version(), **results.summary,
            **record(params, results.summary), "config": dataclasses.asdict(params)}


def is_complete(out_dir: Path) -> bool:
    """A run folder is complete when its summary.json exists and parses."""
    try:
        json.loads((Path(out_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def save_figure(fig, path: Path, formats: Sequence[str] = ("png",)) -> None:
    """Write a figure in each format, atomically, and close it."""
    import matplotlib.pyplot as plt

    try:
        for fmt in formats:
            target = Path(path).with_suffix(f".{fmt}")
            atomic_write(target, lambda tmp, fmt=fmt: fig.savefig(tmp, dpi=120, format=fmt))
    finally:
        plt.close(fig)


def write_figures(out_dir: Path, results) -> list[str]:
    """The standard figures of a run folder; returns their stems."""
    figures = {
        "backlog": results.plot_backlog,
        "backlog_by_destination": lambda: results.plot_groups("destination"),
        "backlog_by_trust": lambda: results.plot_groups("trusted"),
        "approvals_cumulative": results.plot_cumulative_approvals,
        "waits": results.plot_waits,
        "who_waits": results.plot_who_waits,
    }
    if results.summary.get("exports"):  # months shared with the customs record
        from sim.plot_exports import run_figure

        figures["exports"] = lambda: run_figure(results.summary["exports"])
    for stem, draw in figures.items():  # one figure open at a time
        save_figure(draw(), Path(out_dir) / stem, results.params.output.figure_formats)
    return list(figures)


def write_run(out_dir: Path, results, command: str | None = None) -> Path:
    """All files of a run (sim.results.Results) and its report.html (``command``: the command
    line it quotes), written beside any earlier result and swapped in once complete
    (:mod:`sim.run_folder`): summary.json, renamed in last, marks the folder complete. Refused
    (:class:`sim.run_folder.FolderError`) for a folder that is not a run folder of this project,
    or that another process is writing."""
    from sim import run_folder
    from sim.reports import run_report

    params = results.params
    out_dir = run_folder.claim(Path(out_dir), "run", "out_dir")
    stage = run_folder.staging(out_dir)
    write_csv(stage / "daily.csv", results.daily)
    write_csv(stage / "daily_by_class.csv", results.by_class)
    write_csv(stage / "daily_by_group.csv", results.group_bands)
    # every digit: a threshold checked on this table must see what the run saw
    # replications.csv and pending_by_replication.csv (a row, a column per replication) a
    # block at a time, from where Results keeps them: never a whole table in memory
    write_csv(stage / "replications.csv", results.replication_blocks(), float_format="%.17g")
    write_csv(stage / "who_waits.csv", results.who_waits)
    write_wide_csv(stage / "pending_by_replication.csv", *results.pending_counts(), "r")
    document = summary_document(params, results)
    if "ensemble_values" in document:  # the member and the values each replication ran with
        from sim.what_ran import MEMBERS_FILE, write_members

        write_members(stage / MEMBERS_FILE, document["ensemble"]["used"],
                      document["ensemble_values"])
    apps = [r.applications for r in results.runs if r.applications is not None]
    if apps:
        if len(apps) > 1:
            apps = [a.assign(replication=i) for i, a in enumerate(apps)]
        write_csv(stage / "applications.csv", pd.concat(apps, ignore_index=True))
    if params.output.plots:
        write_figures(stage, results)
    run_report(stage, results, document, command)
    write_json(stage / "summary.json", document)
    run_folder.commit(out_dir, "run", "summary.json")
    (out_dir / "error.txt").unlink(missing_ok=True)  # an earlier attempt's: this one succeeded
    return out_dir
