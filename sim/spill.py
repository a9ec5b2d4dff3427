"""Replications' arrays kept in blocks, spilled to an unnamed temporary file once a block is
full, so that Results' memory does not grow with the number of replications; and a column of
per-replication values stored as 4-byte codes."""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np


class SpillError(OSError):
    """The temporary folder could not take the replications' blocks (full, gone, read-only):
    the message names that folder and how to choose another, not the run's folder."""


class Blocks:
    """Arrays of replications, a block of replications at a time: each block a few named
    parts, each part laid out slab by slab (a slab: one figure of every replication of the
    block, contiguous), kept in memory or written to an unnamed temporary file (``tempfile``'s
    folder: ``TMPDIR``), which has no name to leave behind whatever ends the process. A table
    reads back one slab a block at a time."""

    def __init__(self) -> None:
        self._file = None  # created with the first block written
        self._end = 0
        # (replications, {part: its array (slabs x ...) or where it is (offset, shape, dtype)})
        self.blocks: list[tuple[int, dict[str, Any]]] = []

    def add(self, rows: int, parts: dict[str, np.ndarray], spill: bool) -> None:
        if spill:
            parts = {name: self._write(np.ascontiguousarray(a)) for name, a in parts.items()}
        self.blocks.append((rows, parts))

    @staticmethod
    def slabs(part) -> int:
        """A part's number of slabs."""
        return part.shape[0] if isinstance(part, np.ndarray) else part[1][0]

    def slab(self, part, k: int) -> np.ndarray:
        """Slab ``k`` of a part (a view of one in memory)."""
        if isinstance(part, np.ndarray):
            return part[k]
        offset, shape, dtype = part
        out = np.empty(shape[1:], dtype)
        self._read(out, offset + k * out.nbytes)
        return out

    def whole(self, part) -> np.ndarray:
        if isinstance(part, np.ndarray):
            return part
        offset, shape, dtype = part
        out = np.empty(shape, dtype)
        self._read(out, offset)
        return out

    def _write(self, a: np.ndarray) -> tuple[int, tuple[int, ...], np.dtype]:
        offset, data = self._end, memoryview(a).cast("B")
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="sim-replications-", buffering=0)
            self._file.seek(offset)
            done = 0
            while done < len(data):
                done += self._file.write(data[done:])
        except OSError as err:
            raise SpillError(err.errno, f"could not write the temporary folder "
                             f"{tempfile.gettempdir()} ({err.strerror or err}; TMPDIR chooses "
                             "another)") from err
        self._end += len(data)
        return offset, a.shape, a.dtype

    def _read(self, out: np.ndarray, offset: int) -> None:
        if not out.nbytes:
            return
        view = memoryview(out).cast("B")
        self._file.seek(offset)
        done = 0
        while done < len(view):
            got = self._file.readinto(view[done:])
            if not got:
                raise OSError(f"the temporary file of replications ends early ({self._file.name})")
            done += got

    def __getstate__(self) -> dict[str, Any]:  # a copy (pickle) holds every block itself
        return {"_file": None, "_end": 0,
                "blocks": [(rows, {name: self.whole(part) for name, part in parts.items()})
                           for rows, parts in self.blocks]}


class Codes:
    """One value a replication (a date, a flag, an ensemble member), each distinct value kept
    once and a replication's as its code (4 bytes)."""

    def __init__(self) -> None:
        self._values: list[Any] = []
        self._index: dict[tuple[type, Any], int] = {}  # by type too: True and 1 stay apart
        self._codes = array("i")

    def append(self, value: Any) -> None:
        key = (type(value), value)
        code = self._index.get(key)
        if code is None:
            code = self._index[key] = len(self._values)
            self._values.append(value)
        self._codes.append(code)

    def __iter__(self) -> Iterator[Any]:
        values = self._values
        return (values[c] for c in self._codes)

    def __len__(self) -> int:
        return len(self._codes)
