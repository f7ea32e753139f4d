"""The heartbeat of a running tracked experiment: how ``list`` and ``show`` know it lives.

It tells a live run from a killed one; see :mod:`evalledger.heartbeat_state`.

:func:`start` writes ``.evalledger/heartbeats/<exp id>.json`` and rewrites it from a daemon
thread every :data:`~evalledger.heartbeat_state.INTERVAL` seconds; :func:`stop`, or the
event passed as ``until``, ends the thread, which removes the file. A killed process leaves
the file behind, naming a process that no longer exists.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalledger.errors import describe, notice
from evalledger.heartbeat_state import INTERVAL, beat_record, heartbeat_path, write_heartbeat
from evalledger.manifest import utcnow

if TYPE_CHECKING:
    from evalledger.project import Project

__all__ = ["start", "stop"]


@dataclass(eq=False)
class _Beat:
    project: Project
    record: dict[str, Any]
    interval: float
    stop: threading.Event
    thread: threading.Thread | None = None
    warned: bool = False

    def write(self) -> None:
        record = beat_record(str(self.record["exp_id"]), self.record["started_at"], self.interval)
        try:
            write_heartbeat(self.project, record)
        except OSError as exc:  # a full disk: the run goes on, say so once
            if not self.warned:
                self.warned = True
                notice(f"the heartbeat of {record['exp_id']} failed: {describe(exc)}")

    def loop(self) -> None:
        while not self.stop.wait(self.interval):
            self.write()
        self.remove()

    def remove(self) -> None:
        exp_id = str(self.record["exp_id"])
        with _LOCK:
            if _BEATS.get(exp_id) is self:
                del _BEATS[exp_id]
        heartbeat_path(self.project, exp_id).unlink(missing_ok=True)

    def join(self) -> None:
        """Wait for the thread to end (it removes the file); remove it here if it cannot."""
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if thread is None or thread.is_alive() or thread is threading.current_thread():
            self.remove()


_BEATS: dict[str, _Beat] = {}
_LOCK = threading.Lock()


def start(
    project: Project, exp_id: str, interval: float = INTERVAL, until: threading.Event | None = None
) -> None:
    """Write the heartbeat of ``exp_id`` now, then every ``interval`` seconds.

    It ends, and its file is removed, at :func:`stop` or once ``until`` is set (the
    Tracker passes the event its finish sets).
    """
    record = {"exp_id": exp_id, "started_at": utcnow().isoformat()}
    beat = _Beat(project, record, interval, until if until is not None else threading.Event())
    beat.write()
    beat.thread = threading.Thread(target=beat.loop, name=f"evalledger-beat-{exp_id}",
                                   daemon=True)  # fmt: skip
    with _LOCK:
        old = _BEATS.pop(exp_id, None)
        _BEATS[exp_id] = beat
    if old is not None:
        old.stop.set()
    beat.thread.start()


def stop(exp_id: str) -> None:
    """End the heartbeat of ``exp_id`` and remove its file (nothing if it has none)."""
    with _LOCK:
        beat = _BEATS.get(exp_id)
    if beat is not None:
        beat.stop.set()
        beat.join()


def _stop_ended() -> None:
    """At exit, after the Tracker's own exit handler: remove the files of ended beats.

    Daemon threads may not run again once the interpreter shuts down.
    """
    with _LOCK:
        beats = [b for b in _BEATS.values() if b.stop.is_set()]
    for beat in beats:
        beat.join()


atexit.register(_stop_ended)
