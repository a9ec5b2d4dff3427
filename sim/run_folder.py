"""A tool's output folder: owned by one process at a time, holding only what this project wrote.

The rules every entry point follows (``python -m sim``, a sweep, ``sim.compare``, the studies):

- A folder is **ours** for a tool when it is absent, empty, or holds the tool's manifest
  (``.sim-folder.json``: the tool and the files its last complete result wrote). A run folder
  made before manifests existed is recognised by Hydra's record of a run (``.hydra/``), a sweep
  folder by Hydra's ``multirun.yaml``, when the record holds this project's settings. Any other
  non-empty folder (a user's, another tool's, another Hydra application's) is refused in one
  line before anything is written: :func:`check_target`.
- While it writes, a process holds the folder's lock (``flock`` on ``.sim-folder.lock``, released
  by the kernel when the process ends, ``kill -9`` included); a second process is refused in one
  line: :func:`claim`.
- A new result is written beside the old one, in ``.staging/`` inside the folder, and swapped in
  by renames only once it is complete (:func:`commit`): the old complete result stays intact
  until then, whatever fails (a full disk, an error, Ctrl-C, ``kill -9``). The swap replaces only
  the files the old manifest lists; a user's own files in the folder are never touched.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.validation import ConfigError

MANIFEST = ".sim-folder.json"
LOCK = ".sim-folder.lock"
STAGING = ".staging"
# Hydra's record of a run, and the files a run wrote before the manifest existed
HYDRA_RECORD = ".hydra"
_LEGACY_RUN_FILES = (
    "summary.json", "report.html", "error.txt", "__main__.log", "daily.csv",
    "daily_by_class.csv", "daily_by_group.csv", "replications.csv", "who_waits.csv",
    "pending_by_replication.csv", "applications.csv",
    *(f"{stem}.{ext}" for stem in ("backlog", "backlog_by_destination", "backlog_by_trust",
                                   "approvals_cumulative", "waits", "who_waits")
      for ext in ("png", "svg", "pdf")),
    *(f"{HYDRA_RECORD}/{name}" for name in ("config.yaml", "hydra.yaml", "overrides.yaml")))
_OURS = (MANIFEST, LOCK, STAGING)
# Top-level settings only this project's configurations have (run, calibration, sensitivity,
# solver, hindcast), and the size of a record worth reading for them
_OUR_KEYS = {"officials", "calibrate", "sensitivity", "solve", "hindcast"}
_RECORD_BYTES = 1 << 20  # our bookkeeping, in every folder we own

# Folders this process holds the lock of: flock is per open file, so the same process claiming
# a folder twice (the entry point, then the job inside it) must not lock itself out.
_held: dict[Path, int] = {}


class FolderError(ConfigError):
    """A folder a tool may not write (one line: the setting, the folder, what is allowed)."""


def owner(folder: Path) -> str | None:
    """The tool whose folder this is: ``""`` when absent or empty, the manifest's tool, ``run``
    or ``sweep`` for Hydra's folders made before manifests, None for any other folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return ""
    manifest = _manifest(folder)
    if manifest is not None:
        return manifest["tool"]
    entries = {p.name for p in folder.iterdir()}
    if not entries - set(_OURS):
        return ""
    return _legacy_owner(folder, entries)


def _legacy_owner(folder: Path, entries: set[str]) -> str | None:
    """The tool of a folder made before manifests, by what its tool always wrote there."""
    if "multirun.yaml" in entries:
        return "sweep" if _ours(folder / "multirun.yaml") else None
    if "solve.json" in entries:
        return "solve"
    if "compare.csv" in entries:
        return "compare"
    if any(_ours(f / HYDRA_RECORD / "config.yaml") for f in (folder, folder / STAGING)):
        if any(name.startswith("ensemble_") for name in entries):
            return "calibration"
        if entries & {"morris.csv", "sobol.csv", "sensitivity.png"}:
            return "sensitivity"
        return "run"
    return None


def _ours(record: Path) -> bool:
    """Whether Hydra's record ``record`` (a run's ``.hydra/config.yaml``, a sweep's
    ``multirun.yaml``) is one of this project's: its settings have a top-level key only this
    project's configurations have. Another Hydra application's folder is a user's folder."""
    import yaml

    try:
        if record.stat().st_size > _RECORD_BYTES:
            return False
        settings = yaml.safe_load(record.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(settings, dict) and bool(_OUR_KEYS & set(map(str, settings)))


def check_target(folder: Path, tool: str, setting: str) -> None:
    """Refuse (:class:`FolderError`) a folder ``tool`` may not write: not a folder, not
    writable, or non-empty and not ``tool``'s own."""
    folder = Path(folder)
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FolderError(setting, str(folder), f"cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FolderError(setting, str(folder), f"cannot be written: {existing} is not writable")
    found = owner(folder)
    if found in ("", tool):
        return
    if found is None:
        raise FolderError(setting, str(folder), f"holds files this project did not write; a "
                          f"{_words(tool)} writes only into a new or empty folder or one of its "
                          "own: give another folder")
    raise FolderError(setting, str(folder), f"is the folder of a {_words(found)}; a "
                      f"{_words(tool)} never writes into another tool's folder: give another")


def _words(tool: str) -> str:
    return {"run": "run (python -m sim)", "sweep": "sweep (python -m sim -m)",
            "compare": "comparison (python -m sim.compare)",
            "calibration": "calibration (python -m sim.calibrate)",
            "sensitivity": "sensitivity study (python -m sim.sensitivity)",
            "hindcast": "hindcast (python -m sim.hindcast)",
            "solve": "solver (python -m sim.solve)"}.get(tool, tool)


def claim(folder: Path, tool: str, setting: str) -> Path:
    """Check ``folder`` (:func:`check_target`), create it and hold its lock until this process
    ends; refused in one line when another process holds it. Returns the folder."""
    folder = Path(folder).absolute()
    if folder in _held:
        return folder
    check_target(folder, tool, setting)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:  # /proc, /sys, a full or read-only file system
        raise FolderError(setting, str(folder), f"cannot be written ({err.strerror or err}); "
                          "give a folder on a writable disk") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise
        raise FolderError(setting, str(folder), "is being written by another process "
                          "(another run into the same folder); wait for it or give another "
                          "folder") from None
    _held[folder] = fd
    return folder


def holds(folder: Path) -> bool:
    """Whether this process holds ``folder``'s lock (may write into it)."""
    return Path(folder).absolute() in _held


def release(folder: Path) -> None:
    """Give up the lock of a folder this process claimed (the process's end does it too)."""
    fd = _held.pop(Path(folder).absolute(), None)
    if fd is not None:
        os.close(fd)


def staging(folder: Path) -> Path:
    """The empty staging folder inside ``folder``, where a new result is written whole before
    :func:`commit` swaps it in. What an earlier, failed attempt left there is ours: removed,
    except Hydra's record of the attempt now running (``.staging/.hydra``)."""
    stage = Path(folder) / STAGING
    stage.mkdir(parents=True, exist_ok=True)
    for entry in stage.iterdir():
        if entry.name == HYDRA_RECORD:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return stage


def commit(folder: Path, tool: str, last: str) -> list[str]:
    """Swap the complete result in ``folder/.staging`` into ``folder``, by renames: ``last``
    (the file that marks a result complete, e.g. summary.json) is removed first and renamed in
    last. Files the previous manifest lists and the new result lacks are removed; no other file
    is touched. Returns the new result's files (relative paths)."""
    folder = Path(folder)
    stage = folder / STAGING
    new = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*")
                 if p.is_file() or p.is_symlink())
    old = _previous_files(folder)
    (folder / last).unlink(missing_ok=True)  # the folder is incomplete while files move
    for rel in new:
        if rel == last:
            continue
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / rel, folder / rel)
    for rel in old:
        if rel not in new and rel != last:
            (folder / rel).unlink(missing_ok=True)
    write_manifest(folder, tool, new)
    if last in new:
        os.replace(stage / last, folder / last)
    shutil.rmtree(stage, ignore_errors=True)
    return new


def write_manifest(folder: Path, tool: str, files: list[str]) -> None:
    """``folder``'s manifest: the tool that owns it and the files of its result."""
    from sim.files import atomic_write

    text = json.dumps({"tool": tool, "files": sorted(files)}, indent=1) + "\n"
    atomic_write(Path(folder) / MANIFEST, lambda tmp: tmp.write_text(text))


def discard(folder: Path) -> None:
    """Remove the staging folder of a failed or skipped attempt (ours; nothing else)."""
    shutil.rmtree(Path(folder) / STAGING, ignore_errors=True)


def discard_all() -> None:
    """:func:`discard` in every folder this process holds: what a failed process leaves is
    the folders as they were."""
    for folder in list(_held):
        discard(folder)


def run_interruptible(main: Callable[[], Any], line: str) -> Any:
    """``main()``; on Ctrl-C, this process's unfinished staging removed, ``line`` printed (what
    stopped, how to go on) and exit code 130, not a traceback. Every entry point ends here."""
    try:
        return main()
    except KeyboardInterrupt:
        discard_all()
        print(line, file=sys.stderr)
        sys.exit(130)


def _manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("tool"), str) \
            or not isinstance(data.get("files"), list):
        return None
    return data


def _previous_files(folder: Path) -> list[str]:
    """The files of the folder's current result: its manifest's, or (a run folder made before
    manifests) the names a run wrote then. Never a path outside the folder."""
    manifest = _manifest(folder)
    files = manifest["files"] if manifest is not None else (
        _LEGACY_RUN_FILES if owner(folder) == "run" else ())
    inside = []
    for rel in map(str, files):
        parts = Path(rel).parts
        if rel and not Path(rel).is_absolute() and ".." not in parts and parts[0] not in _OURS:
            inside.append(rel)
    return inside
