"""Files at the edge: atomic writes, YAML read fast, and the package's version.

A file is either absent, as it was, or complete: :func:`atomic_write` writes a hidden
temporary file (``.<name>.<random>.sim-tmp``: a name no user file has) and renames it onto the
target.
"""

from __future__ import annotations

import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

# PyYAML's LibYAML parser where it is built in (the wheels have it): the same objects as
# yaml.safe_load, about seven times faster (the calibrated ensemble is read on every run)
TEMPORARY = ".sim-tmp"  # the suffix of atomic_write's temporary files
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """A YAML file's content, as ``yaml.safe_load`` reads it."""
    return yaml.load(Path(path).read_text(), Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)


def package_version() -> str:
    try:
        return version("rare-earth-licence-sim")
    except PackageNotFoundError:
        return "unknown"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: ``path`` is either absent, as it
    was, or complete. The hidden temporary file (``.<name>.<random>.sim-tmp``) is removed on
    any error; only a kill (``kill -9``) can leave it, and the next write into that folder
    removes it (:func:`remove_stale_temporaries`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files an earlier, killed :func:`atomic_write` left in ``folder``
    (only its own: a user's ``.draft.tmp`` is not one)."""
    for stale in Path(folder).glob(f".*{TEMPORARY}"):
        stale.unlink(missing_ok=True)
