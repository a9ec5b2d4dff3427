"""Where each value of a scenario comes from: one tag per setting, read as data.

The tags live in a table beside the scenarios, ``configs/sources/<scenario>.yaml`` (setting ->
tag, note, cite), never in the scenario file's comments: a comment that names two sources
("CALIBRATED; prior from DATA") cannot say which one holds. A scenario built on another
(``defaults: [baseline_2025, _self_]``) takes its base's table; the settings its own file sets
are tagged by its own table when it has one, else ``SCENARIO``. The files sit under
``configs/``, so the wheel ships them (as ``sim/configs/sources``) and :data:`CONFIG_DIR` finds
them either way, as it finds the scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sim.params import CONFIG_DIR

SOURCES_DIR = CONFIG_DIR / "sources"
# The tags, in the order the report explains them.
TAGS = {
    "CALIBRATED": "fitted to the articles' figures and China's customs series "
                  "(docs/calibration.md)",
    "DATA": "public statistics dated before April 2025 (seeds/priors.yaml)",
    "ARTICLE": "a reported fact or event (seeds/facts.yaml, seeds/events_2025_2026.yaml)",
    "PROCESS": "how the licensing process works (seeds/process.yaml)",
    "GUESS": "an assumption nothing constrains: vary it",
    "CHOICE": "a choice of the study, not a claim about the world (the period, how clearance "
              "is measured, a lever at its neutral value)",
    "SCENARIO": "set by the scenario's own file: the change it asks about",
}
COMMAND_LINE = "COMMAND LINE"  # a setting the user set: it wins over the file's value
# Settings that are words, not inputs: they get no tag.
WORDS = ("name",)
# Settings of how a run is run, not of what is modelled: set on the command line, they are in
# the provenance, not in the sources table.
RUN_SETTINGS = ("seed", "replications", "jobs", "resume", "output", "executor", "objective",
                "calibration.keep")


@dataclass(frozen=True)
class Source:
    """Where one setting's value comes from."""

    tag: str
    note: str = ""
    cite: tuple[str, ...] = ()


class _NoDuplicates(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice (safe_load keeps the last one silently)."""


def _mapping(loader: _NoDuplicates, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ValueError(f"{node.start_mark.name}: {key} is given twice "
                             f"(line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_NoDuplicates.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def sources_file(scenario: str) -> Path:
    """The sources table of ``scenario`` (it may not exist)."""
    return SOURCES_DIR / f"{scenario}.yaml"


def scenario_file(scenario: str) -> Path:
    return CONFIG_DIR / "scenario" / f"{scenario}.yaml"


def read_sources(scenario: str) -> dict[str, Source]:
    """The entries of ``configs/sources/<scenario>.yaml`` ({} when there is none). ValueError
    for a setting given twice, an unknown tag, or a file naming another scenario."""
    path = sources_file(scenario)
    if not path.is_file():
        return {}
    doc = yaml.load(path.read_text(), Loader=_NoDuplicates) or {}  # noqa: S506 (safe loader)
    if doc.get("scenario") != scenario:
        raise ValueError(f"{path}: scenario {doc.get('scenario')!r}, expected {scenario!r}")
    out = {}
    for key, entry in (doc.get("sources") or {}).items():
        tag = (entry or {}).get("tag")
        if tag not in TAGS:
            raise ValueError(f"{path}: {key}: tag {tag!r} is not one of {', '.join(TAGS)}")
        out[str(key)] = Source(tag, str(entry.get("note") or ""),
                               tuple(str(c) for c in entry.get("cite") or ()))
    return out


def _scenario_doc(scenario: str) -> tuple[str, dict[str, Any]]:
    path = scenario_file(scenario)
    text = path.read_text() if path.is_file() else ""
    return text, (yaml.safe_load(text) or {}) if text else {}


def bases(scenario: str) -> list[str]:
    """The scenarios ``scenario`` is built on, as its ``defaults`` list names them."""
    _, doc = _scenario_doc(scenario)
    return [d for d in doc.get("defaults") or [] if isinstance(d, str) and d != "_self_"]


def _is_label(key: str) -> bool:
    return key.startswith("timeline.") and key.endswith(".label")


def set_here(scenario: str, with_null: bool = False) -> list[str]:
    """The settings ``scenario``'s own file gives a value, in the file's order (dotted keys,
    list items by index): not a mapping's opening line, not null unless ``with_null``, not
    ``name`` nor an event's label."""
    from sim.studies.install import value_lines

    text, _ = _scenario_doc(scenario)
    lines = text.split("\n")
    out = []
    for key, n in value_lines(text).items():
        if key in WORDS or key == "defaults" or key.startswith("defaults.") or _is_label(key):
            continue
        body = lines[n].partition(":")[2]
        comment = body.find(" #")
        body = (body if comment < 0 else body[:comment]).strip()
        if not body:  # a mapping opens here; its settings follow on their own lines
            continue
        if yaml.safe_load(body) is None and not with_null:
            continue
        out.append(key)
    return out


def scenario_sources(scenario: str) -> dict[str, Source]:
    """Setting -> source for ``scenario``: its bases' tables, then its own settings, tagged by
    its own table or, failing that, ``SCENARIO``. {} when neither it nor a base has a table."""
    inherited: dict[str, Source] = {}
    for base in bases(scenario):
        inherited.update(scenario_sources(base))
    own = read_sources(scenario)
    if not inherited and not own:
        return {}
    merged = dict(inherited)
    for key in set_here(scenario, with_null=True):
        if key in own:
            merged[key] = own[key]
        elif inherited:  # a change of the scenario this one is built on
            merged[key] = Source("SCENARIO", f"set by configs/scenario/{scenario}.yaml")
    return merged


def calibrated(scenario: str) -> list[str]:
    """The settings tagged CALIBRATED for ``scenario``."""
    return [k for k, s in scenario_sources(scenario).items() if s.tag == "CALIBRATED"]


def _kept(params, key: str) -> bool:
    """Whether the user set ``key`` (or a setting holding it) on the command line."""
    return any(key == k or key.startswith(k + ".") for k in params.calibration.keep)


def value_column(params) -> str:
    """The value column's name: with the ensemble on, no single value ran (each replication
    drew a member), so the column holds the scenario's value, the representative point."""
    return ("scenario value (representative point)" if params.calibration.ensemble
            else "value that ran")


def sources_table(params) -> pd.DataFrame:
    """One row per setting of the scenario with a source: its value, tag, note and citations;
    with the ensemble on, the members' range of each CALIBRATED setting. A setting the user set
    on the command line is tagged ``COMMAND LINE`` (its file tag in the note)."""
    from sim import keys

    value = value_column(params)
    columns = ["setting", value, "source", "note", "cite"]
    sources = scenario_sources(params.name)
    if not sources:
        return pd.DataFrame(columns=columns)
    ranges = _member_ranges(params) if params.calibration.ensemble else {}
    rows = []
    listed = set(sources)
    extra = [k for k in params.calibration.keep if k not in listed
             and not any(k == r or k.startswith((r + ".", r + "_")) for r in RUN_SETTINGS)]
    for key in [*sources, *extra]:
        try:
            shown = keys.plain(keys.get(params, key))
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            continue  # a setting this run does not have (an event the user dropped)
        src = sources.get(key, Source(COMMAND_LINE, "not set by the scenario file"))
        tag, note = src.tag, src.note
        if _kept(params, key) and key in sources:
            tag, note = COMMAND_LINE, f"set on the command line (the file's: {src.tag}; {note})"
        row = {"setting": key, value: shown, "source": tag, "note": note,
               "cite": ", ".join(src.cite)}
        if ranges:
            row["ensemble members' range"] = ranges.get(key, "") if tag == "CALIBRATED" else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _member_ranges(params) -> dict[str, str]:
    """'low to high' over the ensemble's members, per setting they set."""
    from sim import ensemble

    try:
        members = ensemble.ensemble_members(params)
    except (FileNotFoundError, ValueError):
        return {}
    out = {}
    for key in members[0]:
        values = sorted(m[key] for m in members if key in m)
        out[key] = f"{values[0]} to {values[-1]}"
    return out


def sources_section(params) -> list[str]:
    """The report's section: what is calibrated and what is a guess, with the tags' meaning."""
    from sim.reports import esc, table

    sources = sources_table(params)
    value = value_column(params)
    if params.calibration.ensemble:
        note = (f"With the calibrated ensemble on, each replication drew one member of "
                f"{params.calibration.ensemble_file}, which set every CALIBRATED value: the "
                f"column “{value}” holds the scenario file's value (the calibration's "
                "representative point), not what a replication ran, and the last column the "
                "range the members span. Each replication's member values are in the run "
                "folder's members.csv. ")
    else:
        note = "The calibrated ensemble is off: the values below are those that ran. "
    meaning = "; ".join(f"{tag}: {words}" for tag, words in TAGS.items())
    out = ["<h2>What is calibrated and what is a guess</h2>",
           f"<p class=\"note\">{esc(note)}Tags ({esc(sources_file(params.name).name)} in "
           f"configs/sources/): {esc(meaning)}. {COMMAND_LINE}: set by the user, it wins over "
           "the file.</p>"]
    if sources.empty:
        return out + [f"<p>Scenario {esc(params.name)} has no sources table "
                      f"(configs/sources/{esc(params.name)}.yaml).</p>"]
    sources[value] = sources[value].map(str)
    return out + [table(sources, {c: esc for c in sources.columns})]
