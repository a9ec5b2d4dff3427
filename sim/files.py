"""Files at the edge: atomic writes and the package's version, for every module that writes.

A file is either absent, as it was, or complete: :func:`atomic_write` writes a hidden
temporary file and renames it onto the target.
"""

from __future__ import annotations

import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def package_version() -> str:
    try:
        return version("rare-earth-licence-sim")
    except PackageNotFoundError:
        return "unknown"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: ``path`` is either absent, as it
    was, or complete. The hidden temporary file (``.<name>.<random>.tmp``) is removed on any
    error; only a kill (``kill -9``) can leave it, and the next write into that folder removes
    it (:func:`remove_stale_temporaries`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    """Remove the temporary files an earlier, killed writer left in ``folder``."""
    for stale in Path(folder).glob(".*.tmp"):
        stale.unlink(missing_ok=True)
