"""Every cell's metrics, score summary and file md5s, read together and cached as one.

A leaderboard needs of each cell its metrics, a few numbers per score column (the
summary, :func:`~evalledger.ledger.scores.summarize_files`) and, to tell a stale cell,
the md5s of both files. :func:`prefetch` reads each cell's two files as they come,
reduces them at once and keeps one cache entry per cell, keyed by both blob ids: a warm
read is one cache row a cell, a cold one holds a chunk of files at a time and writes a
row a cell. What it finds goes to :attr:`Ledger.memo <evalledger.ledger.history.Ledger>`,
where :meth:`Snapshot.read <evalledger.ledger.history.Snapshot.read>` takes it before the
cache. A cell whose files do not parse is left alone: the usual reads then refuse it or
warn, exactly as without this.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from evalledger.ledger.scores import summary_or_error
from evalledger.safeload import MAX_METRICS_BYTES, DamagedData, parse_json_objects

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

# history imports this module, so its Snapshot and CellFiles are typed Any here.
Snapshot = Any
CellFiles = Any

__all__ = ["paused_gc", "prefetch"]

_KIND = "cell"
_encode = json.JSONEncoder(separators=(",", ":")).encode
#: Cells read at a time (their two files' bytes are held until they are reduced).
_CHUNK = 2048


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside (the previous state comes back after).

    Reading a ledger builds millions of small dicts and lists that live as long as the
    command, and none of them makes a cycle: each collection the allocations trigger
    walks them all again for nothing. At 50,000 cells that was 3.9 s of 13 s.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _cache_key(cell: CellFiles) -> str:
    return f"{cell.metrics_oid}:{cell.scores_oid or ''}"


def prefetch(snap: Snapshot, keys: Iterable[str], parse_metrics: Callable[[bytes], Any]) -> None:
    """Put the metrics, summaries and md5s of these cells' files in the ledger's memo."""
    with paused_gc():
        _prefetch(snap, keys, parse_metrics)


def _prefetch(snap: Snapshot, keys: Iterable[str], parse_metrics: Callable[[bytes], Any]) -> None:
    ledger = snap.ledger
    memo = ledger.memo
    cells = [snap.cells[k] for k in keys if k in snap.cells]
    cells = [c for c in cells if c.metrics_oid not in memo["metrics"] or (
        c.scores_oid is not None and c.scores_oid not in memo["summary"])]  # fmt: skip
    if not cells:
        return
    found = ledger.cache.get_many(_KIND, {_cache_key(c) for c in cells})
    missing = [c for c in cells if _cache_key(c) not in found]
    for start in range(0, len(missing), _CHUNK):
        chunk = missing[start : start + _CHUNK]
        blobs = _read(snap, chunk)
        # the chunk's metrics in one json call; what it gives no verdict on, one by one
        have = [c.metrics_oid for c in chunk if c.metrics_oid in blobs]
        parsed = parse_json_objects([blobs[oid] for oid in have], max_bytes=MAX_METRICS_BYTES)
        batch = {oid: value for oid, value in zip(have, parsed, strict=True) if value is not None}
        for cell in chunk:
            entry = _entry(cell, blobs, batch.get(cell.metrics_oid), parse_metrics)
            if entry is None:
                continue
            found[_cache_key(cell)] = entry
            if cell.metrics_oid in batch:  # its text is the JSON of its metrics as they are
                ledger.cache.put_json(_KIND, _cache_key(cell), _entry_json(cell, entry, blobs))
            else:
                ledger.cache.put(_KIND, _cache_key(cell), entry)
        del blobs, batch
        if start // _CHUNK % 4 == 3 or start + _CHUNK >= len(missing):
            ledger.cache.flush()  # 8,192 cells' entries at a time, not every cell's at once
    for cell in cells:
        entry = found.pop(_cache_key(cell), None)  # found keeps no copy once in the memo
        if entry is None:
            continue
        memo["metrics"][cell.metrics_oid] = entry["metrics"]
        memo["md5"][cell.metrics_oid] = entry["md5"][0]
        if cell.scores_oid is not None:
            memo["summary"][cell.scores_oid] = entry["summary"]
            memo["md5"][cell.scores_oid] = entry["md5"][1]


def _interned(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with its keys interned: every cell's metrics name the same few keys.

    Each file parsed apart has its own copy of each key: 50,000 cells' metrics held
    twice the memory their values need. (A cold read holds them all; a warm one decodes
    them from the cache, where interning would cost more time than it saves memory.)
    """
    intern = sys.intern  # nested objects recurse; a value (most are numbers) costs no call
    return {intern(k): _interned(v) if type(v) is dict else v for k, v in value.items()}


def _read(snap: Snapshot, cells: list[CellFiles]) -> dict[str, bytes]:
    """Blob id -> bytes of these cells' metrics and scores files."""
    git = snap.ledger.git
    if snap.commit is not None:
        oids = [c.metrics_oid for c in cells] + [c.scores_oid for c in cells if c.scores_oid]
        found: dict[str, bytes] = git.read_blobs(oids)
        return found
    blobs: dict[str, bytes] = {}
    for cell in cells:
        paths = {cell.metrics_oid: f"metrics/{cell.key}.json"}
        if cell.scores_oid:
            paths[cell.scores_oid] = f"metrics/{cell.key}.scores.csv"
        for oid, path in paths.items():
            data = git.read_workspace(path)
            if data is not None:
                blobs[oid] = data
    return blobs


def _entry(
    cell: CellFiles,
    blobs: dict[str, bytes],
    metrics: dict[str, Any] | None,
    parse: Callable[[bytes], Any],
) -> dict[str, Any] | None:
    """The cache entry of one cell, or None when a file is missing or does not parse.

    ``metrics`` are the cell's metrics when already parsed, else None (parsed here).
    """
    data = blobs.get(cell.metrics_oid)
    scores = blobs.get(cell.scores_oid) if cell.scores_oid else None
    if data is None or (cell.scores_oid and scores is None):
        return None
    if metrics is None:
        try:
            metrics = _interned(parse(data))
        except (ValueError, RecursionError):
            return None
    entry: dict[str, Any] = {"metrics": metrics, "summary": None,
                             "md5": [hashlib.md5(data).hexdigest()]}  # fmt: skip
    if scores is not None:
        summary = summary_or_error(scores)
        if isinstance(summary, DamagedData):
            return None
        entry["summary"] = summary
        entry["md5"].append(hashlib.md5(scores).hexdigest())
    return entry


def _entry_json(cell: CellFiles, entry: dict[str, Any], blobs: dict[str, bytes]) -> str:
    """The cache text of an entry, with the cell's metrics file's own text as their JSON.

    Only for metrics that :func:`~evalledger.safeload.parse_json_objects` parsed: that
    text is one JSON object, which decodes to the same value, and encoding the value
    again was a third of what caching cost a cold read.
    """
    text = blobs[cell.metrics_oid].decode("utf-8")
    rest = _encode({"summary": entry["summary"], "md5": entry["md5"]})
    return f'{{"metrics":{text},{rest[1:]}'
