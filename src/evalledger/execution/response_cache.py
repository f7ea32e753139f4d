"""The response cache: a paid model call is made once per exact request.

An answer is keyed by the model's identity (adapter, endpoint URL, model name: what
:meth:`~evalledger.models.base.Model.cache_identity` returns) and the exact request the
model would send (:meth:`~evalledger.models.base.Model.cache_request`: messages and
decoding, a repeated item's sample index and seed included), so a ``revert`` to an
evaluated configuration, a ``--force`` run or a second cell with the same prompts
costs nothing. Only answers are kept, never errors: a failed call is tried again.

Entries live in one SQLite file, ``.evalledger/cache/responses/responses.sqlite`` (WAL,
so concurrent shards and cells share it under SQLite's own lock), and expire after
``run.cache_expiry`` (default 14 days; ``run.cache: false`` or ``run --no-cache``
turns the cache off). Every value passes the redaction point on its way to disk.
``evalledger cache stats`` and ``evalledger cache clear`` manage it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalledger.errors import ConfigError
from evalledger.redact import scrub_text
from evalledger.runsettings import DEFAULT_CACHE_EXPIRY_S

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.plugin_types import Completion
    from evalledger.project import Project

__all__ = [
    "CacheStats",
    "CachedAnswer",
    "ResponseCache",
    "cache_path",
    "cache_stats",
    "clear_cache",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    created REAL NOT NULL,
    value TEXT NOT NULL
)
"""


def cache_path(project: Project) -> Path:
    """Where the project's response cache lives (under the untracked ``.evalledger/``)."""
    return project.state_dir / "cache" / "responses" / "responses.sqlite"


@dataclass(frozen=True)
class CachedAnswer:
    """A cached model answer, with the latency of the call that made it."""

    completion: Completion
    latency_ms: float


class ResponseCache:
    """One connection to the cache, opened on first use in the thread that uses it."""

    def __init__(self, path: Path, expiry_s: float | None = DEFAULT_CACHE_EXPIRY_S) -> None:
        self.path = path
        self.expiry_s = expiry_s
        self._db: sqlite3.Connection | None = None

    @staticmethod
    def key(identity: dict[str, Any], request: dict[str, Any]) -> str:
        """The sha256 of the model's identity and its exact request, canonically."""
        blob = json.dumps([identity, request], sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, default=str)  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under ``key``, unless it expired."""
        from evalledger.plugin_types import Completion

        row = (
            self._conn()
            .execute("SELECT created, value FROM responses WHERE key = ?", (key,))
            .fetchone()
        )
        if row is None or (self.expiry_s is not None and time.time() - row[0] > self.expiry_s):
            return None
        value = json.loads(row[1])
        completion = Completion(text=value["text"], prompt_tokens=value.get("prompt_tokens"),
                                completion_tokens=value.get("completion_tokens"))  # fmt: skip
        return CachedAnswer(completion, float(value.get("latency_ms") or 0.0))

    def put(self, key: str, model: str, completion: Completion, latency_ms: float) -> None:
        """Store an answer (a multi-agent answer is not cached: its records are per call)."""
        if getattr(completion, "agents", ()):
            return
        value = json.dumps({"text": completion.text, "prompt_tokens": completion.prompt_tokens,
                            "completion_tokens": completion.completion_tokens,
                            "latency_ms": latency_ms}, ensure_ascii=False)  # fmt: skip
        with self._conn() as db:
            db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                       (key, model, time.time(), scrub_text(value)))  # fmt: skip

    def open(self) -> ResponseCache:
        """Connect now (a damaged cache is a ConfigError before any call is made)."""
        self._conn()
        return self

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = _connect(self.path)
        return self._db


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Opened while a cell is prepared (a worker thread), then used on the event loop only.
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a lost last answer is only a new call
        db.execute(_SCHEMA)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ConfigError(
            f"the response cache {path} is damaged ({exc})",
            "`evalledger cache clear` deletes it; then run again",
        ) from None
    return db


@dataclass(frozen=True)
class CacheStats:
    """What ``evalledger cache stats`` shows."""

    path: str
    entries: int
    expired: int
    bytes: int
    models: dict[str, int]
    oldest: float | None
    newest: float | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def cache_stats(project: Project, expiry_s: float | None = DEFAULT_CACHE_EXPIRY_S) -> CacheStats:
    """Entries per model, expired ones, the file's size and the time span."""
    path = cache_path(project)
    if not path.exists():
        return CacheStats(str(path), 0, 0, 0, {}, None, None)
    db = _connect(path)
    try:
        per_model = "SELECT model, COUNT(*) FROM responses GROUP BY model ORDER BY model"
        models = dict(db.execute(per_model).fetchall())
        oldest, newest = db.execute("SELECT MIN(created), MAX(created) FROM responses").fetchone()
        cutoff = time.time() - expiry_s if expiry_s is not None else float("-inf")
        expired = db.execute("SELECT COUNT(*) FROM responses WHERE created < ?",
                             (cutoff,)).fetchone()[0]  # fmt: skip
    finally:
        db.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return CacheStats(str(path), sum(models.values()), expired, size, models, oldest, newest)


def clear_cache(
    project: Project, *, expired_only: bool = False, model: str | None = None,
    expiry_s: float | None = DEFAULT_CACHE_EXPIRY_S,
) -> int:  # fmt: skip
    """Delete entries (every one, the expired ones, or one model's); how many went.

    Clearing every entry of a damaged cache deletes its files (it is only a cache).
    """
    path = cache_path(project)
    if not path.exists():
        return 0
    try:
        db = _connect(path)
    except ConfigError:
        if expired_only or model is not None:
            raise
        for part in path.parent.glob(path.name + "*"):  # the database, its WAL and shm
            part.unlink(missing_ok=True)
        return 0
    try:
        where: list[str] = ["1"]
        args: list[Any] = []
        if expired_only:
            if expiry_s is None:
                return 0
            where.append("created < ?")
            args.append(time.time() - expiry_s)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        with db:
            gone = db.execute(f"DELETE FROM responses WHERE {' AND '.join(where)}", args).rowcount
        db.execute("VACUUM")
    finally:
        db.close()
    return int(gone)
