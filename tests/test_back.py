"""Back tests: the numbers of a few short runs, pinned in tests/back/expected/.

Each case reruns the overrides and replications stored in its file and compares every stored
number (summary leaves, daily column sums and every 7th day's values) with a relative and
absolute tolerance of 1e-9; NaN equals NaN, None equals None, dates and booleans exactly. A
failure means a result moved: if that is intended, regenerate the files with
``python tests/back/regenerate.py`` and say why in the commit (see that script's docstring).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

BACK = Path(__file__).resolve().parent / "back"
RTOL = ATOL = 1e-9


def _regenerate_module():
    spec = importlib.util.spec_from_file_location("back_regenerate", BACK / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


regen = _regenerate_module()
CASE_NAMES = sorted(set(regen.CASES) | {p.stem for p in (BACK / "expected").glob("*.json")})


def same(stored: Any, new: Any) -> bool:
    if stored is None or new is None:
        return stored is None and new is None
    if isinstance(stored, bool) or isinstance(new, bool) or isinstance(stored, str):
        return type(stored) is type(new) and stored == new
    if isinstance(new, str):
        return False
    stored, new = float(stored), float(new)
    if math.isnan(stored) or math.isnan(new):
        return math.isnan(stored) and math.isnan(new)
    return math.isclose(stored, new, rel_tol=RTOL, abs_tol=ATOL)


def differences(case: str, stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per stored leaf whose new value differs or is missing."""
    flat_old, flat_new = regen.flatten(stored), regen.flatten(new)
    out = []
    for key, old in flat_old.items():
        if key not in flat_new:
            out.append(f"{case}: {key}: stored {old!r}, now missing")
        elif not same(old, flat_new[key]):
            out.append(f"{case}: {key}: stored {old!r}, new {flat_new[key]!r}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", CASE_NAMES)
def test_back(case):
    path = regen.case_file(case)
    assert path.is_file(), f"{case}: no {path}; run python tests/back/regenerate.py {case}"
    assert case in regen.CASES, f"{case}: {path} has no case in tests/back/regenerate.py"
    doc = json.loads(path.read_text())
    overrides, replications = regen.CASES[case]
    assert (doc["overrides"], doc["replications"]) == (overrides, replications), (
        f"{case}: the case in regenerate.py ({overrides}, {replications}) is not the one "
        f"stored ({doc['overrides']}, {doc['replications']}); regenerate it")
    new = regen.compute(doc["overrides"], doc["replications"])
    stored = {"summary": doc["summary"], "daily": doc["daily"]}
    problems = differences(case, stored, new)
    shown = "\n".join(problems[:40]) + (f"\n... and {len(problems) - 40} more"
                                         if len(problems) > 40 else "")
    assert not problems, f"{len(problems)} stored value(s) moved:\n{shown}"
