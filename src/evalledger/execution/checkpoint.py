"""The per-cell item checkpoint: an append-only JSON-lines log of scored items.

It lives in ``.evalledger/checkpoints/``, outside DVC's outputs, so ``dvc repro``
removing a stage's outputs does not lose finished items. One process at a time holds a
cell's checkpoint (``flock``); each item is one ``write()`` of one line, which survives
the process being killed. A torn last line is cut off when the log is reopened. A line
keeps the item's ``latency_ms`` (which ``.scores.csv`` does not hold), so a resumed cell
writes every item's latency to its predictions file and counts it in its timings; it
keeps the item's per-agent records too, which the cell's ``agents`` metrics count.

Every line is checked when the log is read: one that is not JSON, or lacks a field a
scored item needs (or holds one of the wrong type), is dropped, and its item is
evaluated again. Opening the log to evaluate says so in one warning and rewrites the log
without those lines (atomically), so the warning is not repeated on every resume.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from typing import TYPE_CHECKING, Any

from evalledger.atomic import AtomicLines, atomic_write
from evalledger.errors import CellError, notice
from evalledger.execution.itemindex import RecordIndex
from evalledger.plugin_types import AgentRecordError, agent_records
from evalledger.redact import scrub_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

__all__ = [
    "Checkpoint",
    "count_scored",
    "parse_records",
    "parts_dir",
    "remove_checkpoint",
    "valid_record",
]

_FLAGS = ("correct", "partial", "formatted")
_NUMBERS = ("score", "latency_ms")
_COUNTS = ("prompt_tokens", "completion_tokens")
_TEXTS = ("category", "output")


def valid_record(rec: object) -> bool:
    """Whether ``rec`` holds what ``execution/cell.py`` writes for an item, with its types.

    Every record needs a string ``id``, booleans ``correct``/``partial``/``formatted``,
    numbers ``score``/``latency_ms``, token counts that are integers or null, and text
    (or null) for ``category``, ``output`` and ``error``; an errored one (``error`` set)
    also needs its ``error_class``. Per-agent records (``agents``), when present, must
    each be a valid :class:`~evalledger.plugin_types.AgentRecord`.
    """
    if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
        return False
    if not all(isinstance(rec.get(k), bool) or rec.get(k) in (0, 1) for k in _FLAGS):
        return False
    if not all(_is_number(rec.get(k)) for k in _NUMBERS):
        return False
    if not all(rec.get(k) is None or _is_int(rec.get(k)) for k in _COUNTS):
        return False
    if not all(rec.get(k) is None or isinstance(rec.get(k), str) for k in (*_TEXTS, "error")):
        return False
    if not _valid_agents(rec.get("agents")):
        return False
    return not rec.get("error") or isinstance(rec.get("error_class"), str)


def _valid_agents(agents: object) -> bool:
    """Absent, or a list of per-agent records as :class:`AgentRecord` checks them."""
    if agents is None:
        return True
    if not isinstance(agents, list) or not all(isinstance(a, dict) for a in agents):
        return False
    try:
        agent_records(agents)
    except (AgentRecordError, TypeError):
        return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(data: bytes) -> tuple[dict[str, dict[str, Any]], list[bytes], int]:
    """Valid records (the last per id), the lines holding them, and the lines dropped."""
    records: dict[str, dict[str, Any]] = {}
    kept: list[bytes] = []
    dropped = 0
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        if not line.strip():
            continue
        rec = _record_of(line)
        if rec is None:
            dropped += 1
            continue
        records[rec["id"]] = rec
        kept.append(line)
    return records, kept, dropped


#: Bytes read at a time when a checkpoint is indexed rather than held.
_BLOCK = 1 << 22
#: Records appended to a streamed log between two saves of its index.
INDEX_SAVE_EVERY = 8192
_INDEX_STATE = "index.json"


def _record_of(line: bytes) -> dict[str, Any] | None:
    """The record a line holds, or None when it is not JSON or not a valid record."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested past what it parses
        return None
    return rec if valid_record(rec) else None


def _lines(fd: int, size: int, begin: int = 0) -> Iterator[tuple[int, bytes]]:
    """Each whole line of the bytes from ``begin`` to ``size``, with its offset, by blocks."""
    pos, start, tail = begin, begin, b""
    while pos < size:
        block = os.pread(fd, min(_BLOCK, size - pos), pos)
        if not block:
            return
        pos += len(block)
        data = tail + block
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        for line in data[:cut].split(b"\n")[:-1]:
            yield start, line
            start += len(line) + 1


def parse_records(data: bytes) -> dict[str, dict[str, Any]]:
    """Item records from a checkpoint's bytes: whole, valid lines only, the last per id."""
    return _parse(data)[0]


def _scored(records: dict[str, dict[str, Any]]) -> set[str]:
    return {k for k, r in records.items() if not r.get("error")}


def count_scored(path: Path) -> int:
    """Items a checkpoint holds as scored (errored ones will run again), read-only.

    Read block by block into an index, so a million-line log is never held.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        index = _index_log(fd, path)[0]
    finally:
        os.close(fd)
    return index.scored_count()


#: The index of the last large log read, by (device, inode, size, mtime): planning a
#: resume counts a log, then the run opens it, and a million lines are parsed once.
_last_index: tuple[tuple[int, int, int, int], tuple[RecordIndex, int, int, int]] | None = None
_MEMO_ABOVE = 1 << 20


def _index_log(fd: int, path: Path) -> tuple[RecordIndex, int, int, int]:
    """The log's index, the lines dropped, where whole lines end, and the records saved.

    The first records, those of a saved index (:meth:`Checkpoint.save_index`), are not
    read from the log again; the last number is how many they are.
    """
    global _last_index
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if _last_index is not None and _last_index[0] == key:
        index, dropped, end, saved = _last_index[1]
        return index.copy(), dropped, end, saved
    index, end = _saved_index(fd, path, st.st_size)
    dropped, saved = 0, len(index)
    for start, line in _lines(fd, st.st_size, end):
        end = start + len(line) + 1
        if not line.strip():
            continue
        rec = _record_of(line)
        if rec is None:
            dropped += 1
        else:
            index.add(rec["id"], start, len(line), not rec.get("error"))
    if st.st_size >= _MEMO_ABOVE:  # kept as read; callers get copies, which they extend
        _last_index = (key, (index, dropped, end, saved))
        return index.copy(), dropped, end, saved
    return index, dropped, end, saved


def _saved_index(fd: int, path: Path, size: int) -> tuple[RecordIndex, int]:
    """The saved index of the log's first lines and where they end; empty when it is not.

    It is taken only when the log still holds the lines it was made of: long enough,
    a line ending at its end, and its first and last records' bytes as they were.
    """
    folder = parts_dir(path)
    try:
        saved = json.loads((folder / _INDEX_STATE).read_bytes())
        n, end = int(saved["records"]), int(saved["end"])
        if saved.get("version") != 1 or n <= 0 or not 0 < end <= size:
            raise ValueError("another log")
        index = RecordIndex.load(folder, n)
        ends = [_digest(fd, *index.span(i)) for i in (0, n - 1)]
        if os.pread(fd, 1, end - 1) != b"\n" or ends != saved["ends"]:
            raise ValueError("another log")
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return RecordIndex(), 0
    return index, end


def _digest(fd: int, offset: int, length: int) -> str:
    return hashlib.blake2b(os.pread(fd, length, offset), digest_size=16).hexdigest()


def _notice_dropped(path: Path, dropped: int) -> None:
    notice(
        f"checkpoint {path}: dropped {dropped} malformed "
        f"line{'s' if dropped != 1 else ''}; their items will be evaluated again"
    )


class Checkpoint:
    """An open, locked item log. Use as a context manager.

    By default every record is held (``records``). With ``keep_records=False`` (a
    streamed cell) only an :class:`~evalledger.execution.itemindex.RecordIndex` of
    where each record is is kept, and records are read back with :meth:`read`.
    """

    def __init__(self, path: Path, *, keep_records: bool = True) -> None:
        self.path = path
        self._fd: int | None = None
        self.records: dict[str, dict[str, Any]] = {}
        self.keep_records = keep_records
        self.index = RecordIndex()
        self._end = 0
        self._index_saved = 0  # records of the index saved beside the log

    def __enter__(self) -> Checkpoint:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = self._open_locked()
        try:
            self._load()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open_locked(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CellError(
                f"cell checkpoint {self.path.name} is held by another process",
                "wait for the other evalledger run or dvc repro to finish",
            ) from None
        return fd

    def _load(self) -> None:
        if not self.keep_records:
            self._load_index()
            return
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0) if size else b""
        good = data.rfind(b"\n") + 1
        if good < len(data):
            # A write was torn by a kill: drop the partial line so appends stay aligned.
            os.ftruncate(self._fd, good)
        self.records, kept, dropped = _parse(data)
        if dropped:
            self._rewrite([b"".join(line + b"\n" for line in kept)])
            _notice_dropped(self.path, dropped)

    def _load_index(self) -> None:
        """Index the log block by block, never holding it whole (cf. :meth:`_load`)."""
        fd = self._fd
        assert fd is not None
        index, dropped, end, saved = _index_log(fd, self.path)
        if end < os.fstat(fd).st_size:
            os.ftruncate(fd, end)  # a write torn by a kill
        self.index, self._end = index, end
        self._index_saved = saved  # the next save appends to what is on disk
        if dropped:
            self._rewrite(line + b"\n" for _, line in _lines(fd, end)
                          if line.strip() and _record_of(line) is not None)  # fmt: skip
            _notice_dropped(self.path, dropped)
            self._load_index()

    def read(self, offsets: Iterable[int], lengths: Iterable[int]) -> Iterator[dict[str, Any]]:
        """The records at these offsets (from :attr:`index`), in the order given."""
        assert self._fd is not None
        for offset, length in zip(offsets, lengths, strict=True):
            yield json.loads(os.pread(self._fd, int(length), int(offset)))

    def _rewrite(self, chunks: Iterable[bytes]) -> None:
        """Replace the log with ``chunks`` (renamed into place), then hold the new file."""
        assert self._fd is not None
        with AtomicLines(self.path) as out:
            for chunk in chunks:
                out.write_bytes(chunk)
            (parts_dir(self.path) / _INDEX_STATE).unlink(missing_ok=True)  # of the old log
            out.commit()
        # A process that opens the new file before we lock it gets it, and we stop with
        # CellError: the log is whole either way.
        fd = self._open_locked()
        os.close(self._fd)
        self._fd = fd

    @property
    def scored(self) -> set[str]:
        """Ids of items scored so far; errored items are not among them."""
        return _scored(self.records)

    def append(self, record: dict[str, Any]) -> None:
        """Add one finished item; one write so a kill leaves whole lines or a torn tail.

        The line passes the redaction point first (an endpoint may echo a key in its
        error); what is kept in memory is what the log holds.
        """
        assert self._fd is not None
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        scrubbed = scrub_text(line)
        if scrubbed != line:
            try:
                record = json.loads(scrubbed)
            except ValueError:  # a redaction across JSON syntax: redact the values instead
                record = _scrub_values(record)
                scrubbed = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        data = (scrubbed + "\n").encode("utf-8")
        os.write(self._fd, data)
        if self.keep_records:
            self.records[str(record["id"])] = record
        else:
            self.index.add(str(record["id"]), self._end, len(data) - 1, not record.get("error"))
            self._end += len(data)
            if len(self.index) - self._index_saved >= INDEX_SAVE_EVERY:
                self.save_index()

    def save_index(self) -> None:
        """Save the index of a streamed log (``keep_records=False``) beside it.

        Reading a log of a million lines again to resume it took longer than what was
        left to evaluate: the next open reads only the lines added since.
        """
        n = len(self.index)
        if self.keep_records or self._fd is None or n == self._index_saved:
            return
        folder = parts_dir(self.path)
        folder.mkdir(parents=True, exist_ok=True)
        self.index.save(folder, self._index_saved)
        ends = [_digest(self._fd, *self.index.span(i)) for i in (0, n - 1)]
        state = {"version": 1, "records": n, "end": self._end, "ends": ends}
        atomic_write(folder / _INDEX_STATE, json.dumps(state), fsync=False)
        self._index_saved = n

    def remove(self) -> None:
        """Delete the log (the cell's outputs now hold every item)."""
        remove_checkpoint(self.path)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            try:
                if self.path.exists():  # not after remove()
                    self.save_index()
            finally:
                os.close(self._fd)
                self._fd = None


def _scrub_values(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_values(v) for v in value]
    return value


def parts_dir(checkpoint: Path) -> Path:
    """Where a checkpoint's partial outputs live (:mod:`~evalledger.execution.partial_outputs`)."""
    return checkpoint.with_suffix(".parts")


def remove_checkpoint(checkpoint: Path) -> None:
    """Delete an item log and the partial outputs beside it."""
    checkpoint.unlink(missing_ok=True)
    shutil.rmtree(parts_dir(checkpoint), ignore_errors=True)
