"""The per-cell item checkpoint: an append-only JSON-lines log of scored items.

It lives in ``.evalledger/checkpoints/``, outside DVC's outputs, so ``dvc repro``
removing a stage's outputs does not lose finished items. One process at a time holds a
cell's checkpoint (``flock``); each item is one ``write()`` of one line, which survives
the process being killed. A torn last line is cut off when the log is reopened.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import TYPE_CHECKING, Any

from evalledger.errors import CellError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Checkpoint", "count_scored", "parse_records"]


def parse_records(data: bytes) -> dict[str, dict[str, Any]]:
    """Item records from a checkpoint's bytes: whole lines only, the last record per id."""
    records: dict[str, dict[str, Any]] = {}
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "id" in rec:
            records[str(rec["id"])] = rec
    return records


def _scored(records: dict[str, dict[str, Any]]) -> set[str]:
    return {k for k, r in records.items() if not r.get("error")}


def count_scored(path: Path) -> int:
    """Items a checkpoint holds as scored (errored ones will run again), read-only."""
    try:
        return len(_scored(parse_records(path.read_bytes())))
    except FileNotFoundError:
        return 0


class Checkpoint:
    """An open, locked item log. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.records: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> Checkpoint:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CellError(
                f"cell checkpoint {self.path.name} is held by another process",
                "wait for the other evalledger run or dvc repro to finish",
            ) from None
        self._fd = fd
        self._load()
        return self

    def _load(self) -> None:
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0) if size else b""
        good = data.rfind(b"\n") + 1
        if good < len(data):
            # A write was torn by a kill: drop the partial line so appends stay aligned.
            os.ftruncate(self._fd, good)
        self.records = parse_records(data)

    @property
    def scored(self) -> set[str]:
        """Ids of items scored so far; errored items are not among them."""
        return _scored(self.records)

    def append(self, record: dict[str, Any]) -> None:
        """Add one finished item; one write so a kill leaves whole lines or a torn tail."""
        assert self._fd is not None
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        os.write(self._fd, line.encode("utf-8"))
        self.records[str(record["id"])] = record

    def remove(self) -> None:
        """Delete the log (the cell's outputs now hold every item)."""
        self.path.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
