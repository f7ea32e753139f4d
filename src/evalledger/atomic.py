"""Crash-safe file writes: temp file, fsync, rename; and an append-only line log."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalledger.redact import scrub_text

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "AtomicLines",
    "atomic_write",
    "atomic_write_lines",
    "fsync_dir",
    "locked_file",
    "remove_leftover_temps",
]

#: Lines written (and scrubbed) at a time by :func:`atomic_write_lines`.
_LINES_PER_WRITE = 2048


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename inside it survives a crash."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: str | bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    Text (``str``) passes the redaction point, :func:`evalledger.redact.scrub_text`, on
    its way: manifests, metrics, scores, predictions, dvc.yaml and params.yaml edits are
    all written as text. ``bytes`` are written as given: they are binary payloads, or text
    that passed the redaction point already (a checkpoint rewrite); scrubbing bytes that
    happen to decode as UTF-8 could corrupt a binary format.
    """
    payload = scrub_text(data).encode("utf-8") if isinstance(data, str) else data
    _replace(path, [payload], fsync=fsync)


def atomic_write_lines(path: Path, lines: Iterable[str], *, fsync: bool = True) -> None:
    """:func:`atomic_write` of text given line by line (each with its newline).

    The text is never whole in memory: a million predictions are written a few thousand
    lines at a time, each batch through the redaction point (a batch ends at a line's
    end, and no secret spans lines).
    """
    with AtomicLines(path, fsync=fsync) as out:
        for line in lines:
            out.write(line)
        out.commit()


class AtomicLines:
    """A file written line by line into a temp file, renamed into place by :meth:`commit`.

    Several can be open at once, so one pass over a cell's records writes its
    predictions and scores together. Leaving the ``with`` block without ``commit``
    (an error, or every item errored) removes the temp file: the old file stays.
    """

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._batch: list[str] = []
        self._tmp: str | None = None
        self._fh: Any = None

    def __enter__(self) -> AtomicLines:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        self._fh = os.fdopen(fd, "wb")
        # Locked until after the rename: a temp file nobody holds has no live writer,
        # which is how remove_leftover_temps tells a leftover from a write in flight.
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        return self

    def write(self, line: str) -> None:
        """Add one line (with its newline); batches pass the redaction point."""
        self._batch.append(line)
        if len(self._batch) >= _LINES_PER_WRITE:
            self._flush_batch()

    def write_bytes(self, chunk: bytes) -> None:
        """Add bytes as given (they passed the redaction point, or are binary)."""
        self._flush_batch()
        self._fh.write(chunk)

    def _flush_batch(self) -> None:
        if self._batch:
            self._fh.write(scrub_text("".join(self._batch)).encode("utf-8"))
            self._batch.clear()

    def commit(self) -> None:
        """Flush, fsync and rename the temp file into place."""
        assert self._tmp is not None and self._fh is not None
        self._flush_batch()
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        os.fchmod(self._fh.fileno(), 0o644)
        os.replace(self._tmp, self.path)
        self._tmp = None
        self._fh.close()
        if self.fsync:
            fsync_dir(self.path.parent)

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None


def _replace(path: Path, chunks: Iterable[bytes], *, fsync: bool) -> None:
    with AtomicLines(path, fsync=fsync) as out:
        for chunk in chunks:
            out.write_bytes(chunk)
        out.commit()


@contextlib.contextmanager
def locked_file(path: Path, *, blocking: bool = False):  # type: ignore[no-untyped-def]
    """Hold an exclusive ``flock`` on ``path``; yields the open file or None if it is held.

    The kernel drops the lock when the process dies, so a killed run never leaves a
    stale lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115
    try:
        flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(fh.fileno(), flags)
        except BlockingIOError:
            yield None
            return
        try:
            yield fh
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def remove_leftover_temps(
    root: Path, trees: list[str], files: list[str], *, settle: float = 0.5
) -> list[Path]:
    """Delete the temp files (``.NAME.XXXX.tmp``) that killed writes left below ``root``.

    ``trees`` are folders searched recursively for any ``.*.tmp`` file (the names of
    :func:`atomic_write` and of DVC's own copies); ``files`` are paths whose own temp
    files, beside them, are looked for. A temp file lives only from its creation to its
    rename, and :func:`atomic_write` holds an ``flock`` on it all that time: one that
    can be locked has no live writer. It must also be older than ``settle`` seconds, or
    still there unchanged after waiting that long (DVC's temp files carry no lock); one
    that is locked, changes or goes belongs to a writer at work (a Tracker, say) and is
    kept. Links are not followed and nothing outside ``root`` is
    touched. Returns the removed paths.
    """
    import re
    import stat
    import time

    def unlink(path: Path) -> bool:
        """Remove ``path`` unless a live writer holds it (atomic_write's lock)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
        except OSError:  # BlockingIOError: a write in flight; or already gone
            return False
        finally:
            os.close(fd)
        return True

    temp_name = re.compile(r"\..+\.tmp")
    top = root.resolve()
    candidates: list[Path] = []
    for rel in trees:
        folder = root / rel
        if folder.is_symlink() or not folder.is_dir() or not folder.resolve().is_relative_to(top):
            continue
        for dirpath, _, names in os.walk(folder):  # links to folders are not entered
            candidates += [Path(dirpath, n) for n in names if temp_name.fullmatch(n)]
    for rel in files:
        target = root / rel
        if not target.parent.resolve().is_relative_to(top):
            continue
        prefix = f".{target.name}."
        with contextlib.suppress(OSError):
            candidates += [p for p in target.parent.iterdir()
                           if p.name.startswith(prefix) and p.name.endswith(".tmp")]  # fmt: skip
    seen: dict[Path, os.stat_result] = {}
    for path in dict.fromkeys(candidates):
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                seen[path] = st
    now = time.time()
    young = {p: st for p, st in seen.items() if now - st.st_mtime < settle}
    removed = [p for p in seen if p not in young and unlink(p)]
    if young:
        time.sleep(settle)
        for path, st in young.items():
            try:
                again = os.lstat(path)
            except OSError:
                continue  # renamed by its writer: it was in flight
            same = (again.st_ino, again.st_size, again.st_mtime_ns) == (
                st.st_ino, st.st_size, st.st_mtime_ns)  # fmt: skip
            if same and unlink(path):
                removed.append(path)
    return removed
