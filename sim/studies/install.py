"""Installing a calibrated point into the scenario file a reader opens.

The representative point's values are written in place, on the lines that set them, so the
scenario file shows the values that run (``calibration.ensemble=false``; with the ensemble on,
each replication draws its member instead). Comments, order and layout are kept: only the value
between a key's colon and its comment changes. Where each value comes from is data, in
``configs/sources/<scenario>.yaml`` (``sim.sources``); a line after the header names the
calibration that wrote them. A scenario that restates a calibrated value (the April surge in
``suspension_lapses_2026``) is kept in step by hand; a test compares the two.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sim.files import atomic_write

_LINE = re.compile(r"^(?P<indent>\s*)(?P<item>-\s+)?(?P<key>[A-Za-z0-9_]+):(?P<rest>.*)$")
PROVENANCE_MARK = "# Calibrated values below: "


def value_lines(text: str) -> dict[str, int]:
    """Dotted key -> index of the line that sets it, for the block-style YAML of a scenario
    (mappings by indentation, lists of mappings as ``- key: value`` items)."""
    stack: list[tuple[int, str]] = []  # (indent, name) from the top level down
    items: dict[str, int] = {}  # list path -> index of its current item
    out = {}
    for n, line in enumerate(text.split("\n")):
        m = _LINE.match(line)
        if m is None or line.lstrip().startswith("#"):
            continue
        indent = len(m["indent"])
        if m["item"]:  # "- key: value" opens item i of the list above
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = ".".join(name for _, name in stack)
            items[parent] = items.get(parent, -1) + 1
            stack.append((indent, str(items[parent])))
            indent += len(m["item"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m["key"]))
        out[".".join(name for _, name in stack)] = n
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _with_value(line: str, value: Any) -> str:
    """The line with its value replaced; the comment keeps its column where it fits."""
    m = _LINE.match(line)
    head = line[:m.start("rest")]
    rest = m["rest"]
    comment_at = rest.find(" #")
    if comment_at < 0:
        return f"{head} {_scalar(value)}"
    comment = rest[comment_at:].lstrip()
    column = len(head) + comment_at + (len(rest[comment_at:]) - len(comment))
    body = f"{head} {_scalar(value)}"
    return f"{body.ljust(column - 1)} {comment}" if len(body) < column else f"{body}  {comment}"


def install_point(path: Path, point: dict[str, Any], provenance: str) -> str:
    """The scenario file's text with each dotted key of ``point`` set on its own line, and the
    provenance line (after the header comments) replaced. KeyError for a key the file does
    not set on a line of its own."""
    text = Path(path).read_text()
    lines = text.split("\n")
    where = value_lines(text)
    for key, value in point.items():
        if key not in where:
            raise KeyError(f"{Path(path).name}: {key} is not set on a line of its own")
        lines[where[key]] = _with_value(lines[where[key]], value)
    lines = [line for line in lines if not line.startswith(PROVENANCE_MARK)]
    first_setting = next(i for i, line in enumerate(lines)
                         if line.strip() and not line.startswith("#"))
    lines.insert(first_setting, PROVENANCE_MARK + provenance)
    return "\n".join(lines)


def install_files(contents: dict[Path, str]) -> None:
    """Write each file's text, all or none: each file is replaced whole
    (:func:`sim.files.atomic_write`, never half-written), and if one write fails the files
    already replaced get their earlier bytes back (or are removed if they were new) before the
    error is raised. Every text is ready before the first write."""
    earlier = {path: path.read_bytes() if path.exists() else None for path in contents}
    done: list[Path] = []
    try:
        for path, text in contents.items():
            atomic_write(path, lambda tmp, text=text: tmp.write_text(text))
            done.append(path)
    except BaseException:
        for path in done:
            old = earlier[path]
            if old is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, lambda tmp, old=old: tmp.write_bytes(old))
        raise
