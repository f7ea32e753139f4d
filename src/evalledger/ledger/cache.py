"""A cache of parsed ledger files, keyed by git blob id, in ``.evalledger/cache/``.

A blob id names exact bytes, so an entry never goes stale: the same manifest, metrics
file or score table parsed once is reused at every revision that holds it. The folder is
git-ignored and safe to delete at any time; a damaged or locked cache is bypassed (the
reader parses again), never an error.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = ["CACHE_VERSION", "ParsedCache"]

#: Bumped whenever the shape of a cached value changes; older entries are ignored.
CACHE_VERSION = 1


class ParsedCache:
    """JSON values by (kind, blob id); reads and writes in batches."""

    def __init__(self, folder: Path | None) -> None:
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[str, str, str]] = []
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(folder / f"parsed-v{CACHE_VERSION}.sqlite", timeout=2)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS parsed "
                "(kind TEXT, oid TEXT, value TEXT, PRIMARY KEY (kind, oid)) WITHOUT ROWID"
            )
            self._db = db
        except (OSError, sqlite3.Error):
            self._db = None

    def get_many(self, kind: str, oids: Iterable[str]) -> dict[str, Any]:
        """The cached values of those blobs that have one."""
        if self._db is None:
            return {}
        found: dict[str, Any] = {}
        wanted = list(oids)
        try:
            for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
                chunk = wanted[start : start + 900]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT oid, value FROM parsed WHERE kind=? AND oid IN ({marks})",
                    [kind, *chunk],
                )
                for oid, value in rows:
                    found[oid] = json.loads(value)
        except (sqlite3.Error, ValueError):
            return found
        return found

    def put(self, kind: str, oid: str, value: Any) -> None:
        """Queue a value; :meth:`flush` writes the queue in one transaction."""
        if self._db is not None:
            self._pending.append((kind, oid, json.dumps(value, separators=(",", ":"))))

    def flush(self) -> None:
        """Write queued values."""
        if self._db is None or not self._pending:
            return
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO parsed (kind, oid, value) VALUES (?, ?, ?)",
                    self._pending,
                )
        except sqlite3.Error:
            pass  # a read-only or busy cache only costs speed
        self._pending.clear()

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None
