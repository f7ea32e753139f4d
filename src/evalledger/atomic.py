"""Crash-safe file writes: temp file, fsync, rename; and an append-only line log."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from evalledger.redact import scrub_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
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

    def batches() -> Iterator[bytes]:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= _LINES_PER_WRITE:
                yield scrub_text("".join(batch)).encode("utf-8")
                batch.clear()
        if batch:
            yield scrub_text("".join(batch)).encode("utf-8")

    _replace(path, batches(), fsync=fsync)


def _replace(path: Path, chunks: Iterable[bytes], *, fsync: bool) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            # Locked until after the rename: a temp file nobody holds has no live writer,
            # which is how remove_leftover_temps tells a leftover from a write in flight.
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), 0o644)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


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
