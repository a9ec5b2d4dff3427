"""Regenerate the back-test expectations in tests/back/expected/ from the CURRENT code.

    python tests/back/regenerate.py            # every case
    python tests/back/regenerate.py mmc ...    # only the cases named

tests/test_back.py reruns each case below and compares every stored number with the one the
code gives now (relative and absolute tolerance 1e-9). The files pin the numbers the model
produced when they were written, so that a refactor which moves a result fails a test.

Regenerate ONLY when a change of the numbers is intended (a model change, a new random stream,
a fixed bug), never to make a failing back test pass after a refactor that should not have
changed anything; commit the new files on their own and say in the commit message why the
numbers moved. To pin the numbers of an older commit, run this script against that commit's
package, e.g. from a worktree:

    git worktree add /tmp/base <commit>
    cd /tmp/base && PYTHONPATH=/tmp/base python /work/main/tests/back/regenerate.py

(the script prints which `sim` it imported: check it is the one you mean).

Each file holds the case's overrides and replications, the flattened leaves of the summary
(dotted keys; numbers, None, booleans and ISO dates; free text, file names, and anything that
depends on the time, the machine or the package version are left out), and for a few columns
of the daily table their sum, last value and every 7th day's value. NaN is written as JSON
``NaN`` (Python's json module reads it back).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXPECTED_DIR = HERE / "expected"

# name -> (overrides, replications). Short runs (a few seconds each) that together go through
# the main paths: the calibrated ensemble with bands, the representative calibrated point, the
# M/M/c check scenario, the green channel off and dedicated, withdrawals, an initial backlog.
CASES: dict[str, tuple[list[str], int]] = {
    "baseline_ensemble": (["scenario=baseline_2025", "end_date=2025-07-31"], 2),
    "baseline_point": (["scenario=baseline_2025", "calibration.ensemble=false",
                        "end_date=2025-06-30"], 1),
    "mmc": (["scenario=mmc", "horizon_days=400", "warmup_days=50"], 3),
    "no_green_channel": (["scenario=no_green_channel", "end_date=2025-07-31"], 1),
    "june_2025_backlog": (["scenario=june_2025_backlog", "end_date=2025-08-31"], 1),
    "dedicated_withdrawal": (["scenario=baseline_2025", "calibration.ensemble=false",
                              "end_date=2025-07-15", "green_channel.mode=dedicated",
                              "withdrawal.patience_days=30"], 1),
}

DAILY_COLUMNS = ("arrivals", "approved", "denied", "withdrawn", "pending", "waiting",
                 "in_review", "mean_waiting", "utilisation", "past_statutory_limit", "held",
                 "officials", "cohort_pending", "pending_low", "pending_high",
                 "pending_pred_low", "pending_pred_high")
EVERY = 7  # keep days 0, 7, 14, ... (and the last day)

# Summary keys (any dotted component) that are not results of the model: run time, versions,
# commits, hosts, writing dates. None of them is in the API's summary today; the list guards
# against their appearing there.
EXCLUDED_PARTS = {"runtime", "runtime_s", "elapsed", "elapsed_s", "seconds", "wall_time",
                  "version", "package_version", "python", "git", "commit", "git_commit",
                  "written", "written_at", "created", "created_at", "timestamp", "host",
                  "hostname", "platform", "user", "cwd", "output_dir", "out_dir"}
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _number(v: Any) -> Any:
    """Plain Python scalars (numpy scalars have .item())."""
    return v.item() if hasattr(v, "item") and not isinstance(v, list | dict | str) else v


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf; lists are indexed (``ci95.totals.arrivals.0``)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = _number(value)
    return out


def kept(key: str, value: Any) -> bool:
    if any(part.lower() in EXCLUDED_PARTS for part in key.split(".")):
        return False
    if value is None or isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and bool(ISO_DATE.match(value))  # a result date


def _run(overrides: list[str], replications: int):
    import sim

    cfg = sim.load_config(list(overrides))
    try:
        return sim.run(cfg, replications=replications, jobs=1, progress=False)
    except TypeError:  # an API without the progress argument
        return sim.run(cfg, replications=replications, jobs=1)


def compute(overrides: list[str], replications: int) -> dict[str, Any]:
    """The numbers a case is compared on: summary leaves and daily columns."""
    res = _run(overrides, replications)
    summary = {k: v for k, v in flatten(res.summary).items() if kept(k, v)}
    daily = res.daily
    n = len(daily)
    rows = sorted({*range(0, n, EVERY), n - 1}) if n else []
    columns = {}
    for c in DAILY_COLUMNS:
        if c not in daily:
            continue
        values = [float(x) for x in daily[c].to_numpy(dtype=float)]
        finite = [x for x in values if not math.isnan(x)]
        columns[c] = {"sum": math.fsum(finite), "n_nan": len(values) - len(finite),
                      "last": values[-1] if values else None,
                      "every_7th": [values[i] for i in rows]}
    return {"summary": summary,
            "daily": {"rows": n, "first_date": daily["date"].iloc[0] if n else None,
                      "last_date": daily["date"].iloc[-1] if n else None,
                      "every_7th_days": rows, "columns": columns}}


def case_file(name: str) -> Path:
    return EXPECTED_DIR / f"{name}.json"


def write_case(name: str) -> Path:
    overrides, replications = CASES[name]
    doc = {"case": name, "overrides": overrides, "replications": replications, "jobs": 1,
           **compute(overrides, replications)}
    path = case_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, allow_nan=True) + "\n")
    return path


def main(argv: list[str]) -> int:
    import sim

    names = argv or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}",
              file=sys.stderr)
        return 2
    print(f"sim imported from {Path(sim.__file__).resolve().parent}")
    for name in names:
        print(f"  {name}: {write_case(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
