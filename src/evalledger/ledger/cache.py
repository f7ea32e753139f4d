"""A cache of parsed ledger files, keyed by git blob id, in ``.evalledger/cache/``.

A blob id names exact bytes, so an entry never goes stale: the same manifest, metrics
file or score table parsed once is reused at every revision that holds it. The folder is
git-ignored and safe to delete at any time; a damaged or locked cache is bypassed (the
reader parses again), never an error. A value that is not valid JSON, or not of the
shape its kind has, counts as not cached. Cache values are evalledger's own, so they
are read with plain ``json``; what they were parsed from went through
:mod:`evalledger.safeload`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from evalledger.ledger.scores import is_score_table_json, is_summary_json
from evalledger.manifestview import is_view_json
from evalledger.safeload import loads_batch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

__all__ = ["CACHE_VERSION", "ParsedCache"]

#: Bumped whenever the shape of a cached value changes; older entries are ignored. (A
#: summary without its file's item rows fails its shape check and is parsed again.)
CACHE_VERSION = 2  # 2: a scores file of repeated samples summarises by question


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_manifest(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("schema_version"), int)


def _is_cell(value: Any) -> bool:
    """A cell's metrics, score summary (None without scores) and files' md5s."""
    if not isinstance(value, dict) or not isinstance(value.get("metrics"), dict):
        return False
    md5s, summary = value.get("md5"), value.get("summary")
    return (
        isinstance(md5s, list)
        and len(md5s) == (1 if summary is None else 2)
        and all(isinstance(m, str) and len(m) == 32 for m in md5s)
        and (summary is None or is_summary_json(summary))
    )


def _is_lock_entry(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("params"), dict)
        and isinstance(value.get("outs"), dict)
    )


#: A value's cache text (``json.dumps`` with these separators, its encoder made once).
_encode = json.JSONEncoder(separators=(",", ":")).encode

#: What a cached value of each kind must look like; anything else is parsed again.
_SHAPES: dict[str, Callable[[Any], bool]] = {
    "params": lambda value: value is None or isinstance(value, dict),
    "manifest": _is_manifest,
    "manifest_view": is_view_json,
    "metrics": _is_dict,
    "scores": is_score_table_json,
    "summary": is_summary_json,
    "cell": _is_cell,
    "scores_text": lambda value: isinstance(value, str),
    "dvc.lock": lambda value: (
        isinstance(value, dict) and all(_is_lock_entry(e) for e in value.values())
    ),
    "md5": lambda value: isinstance(value, str) and len(value) == 32,
}


def _decode_all(values: list[Any]) -> list[Any] | None:
    r"""Every value decoded in one ``json`` call, or None to decode them one by one.

    A warm read of 50,000 cells decodes 50,000 rows; one call per few hundred costs less,
    and its scanner keeps one copy of each key for all of them. A damaged row cannot
    pass for part of another (:func:`~evalledger.safeload.loads_batch`); it, or a row
    that is no text, sends them all one by one.
    """
    if not all(type(v) is str for v in values):
        return None
    return loads_batch(values)


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
            # A rowid table: values are kilobytes (a cell's metrics), which a WITHOUT ROWID
            # table keeps in its key's B-tree, in blob-id (random) order: four times the
            # time to write 50,000 of them and twice the file. (An older cache file made
            # WITHOUT ROWID is read and written alike by the same statements.)
            db.execute(
                "CREATE TABLE IF NOT EXISTS parsed "
                "(kind TEXT, oid TEXT, value TEXT, PRIMARY KEY (kind, oid))"
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
        shape = _SHAPES.get(kind)
        try:
            for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
                chunk = wanted[start : start + 900]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT oid, value FROM parsed WHERE kind=? AND oid IN ({marks})",
                    [kind, *chunk],
                ).fetchall()
                together = _decode_all([value for _, value in rows])
                for i, (oid, value) in enumerate(rows):
                    if together is not None:
                        parsed = together[i]
                    else:
                        try:
                            parsed = json.loads(value)
                        except (TypeError, ValueError, RecursionError):
                            continue  # a damaged entry: parsed again from git
                    if shape is None or shape(parsed):
                        found[oid] = parsed
        except sqlite3.Error:
            return found
        return found

    def put(self, kind: str, oid: str, value: Any) -> None:
        """Queue a value; :meth:`flush` writes the queue in one transaction."""
        if self._db is not None:
            self._pending.append((kind, oid, _encode(value)))

    def put_json(self, kind: str, oid: str, text: str) -> None:
        """Queue a value given as its JSON text (one complete JSON value), as :meth:`put`."""
        if self._db is not None:
            self._pending.append((kind, oid, text))

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
