"""Heartbeats of tracked experiments, and whether an ``in_progress`` one still runs.

A running :class:`~evalledger.track.tracker.Tracker` experiment keeps a small,
git-ignored file ``.evalledger/heartbeats/<exp id>.json`` (written atomically at the
start, every :data:`INTERVAL` seconds, and removed at the finish) holding its process ID,
host, boot ID (Linux: ``/proc/sys/kernel/random/boot_id``), the process's start time and
the time of the last beat. :func:`liveness` reads it to tell a live run from a dead one:

- ``running``: the heartbeat's process is alive (same host and boot, the pid exists and
  started when the heartbeat says); on another host (a shared file system), its last
  beat is recent;
- ``crashed``: same host, and the machine rebooted since (another boot ID), the pid is
  gone, or the pid was reused by another process (another start time); or the run left no
  heartbeat at all and its manifest has not changed for :data:`NO_HEARTBEAT_AFTER`
  seconds (a run on this host killed before, or from before, heartbeats);
- ``stale``: nothing here can check the process: the heartbeat is from another host and
  older than :data:`STALE_AFTER` intervals, or the manifest, without heartbeat, names
  another host. It may be alive but cut off, or dead.

Every other execution keeps the status its manifest records. This module is core: the
ledger (``list``, ``show``) and the Tracker both use it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write

if TYPE_CHECKING:
    from evalledger.manifest import ExecutionManifest
    from evalledger.project import Project

__all__ = [
    "INTERVAL",
    "LIVENESS",
    "NO_HEARTBEAT_AFTER",
    "STALE_AFTER",
    "beat_record",
    "boot_id",
    "heartbeat_path",
    "liveness",
    "process_start",
    "read_heartbeat",
    "write_heartbeat",
]

#: Seconds between two beats.
INTERVAL = 2.0
#: A heartbeat from another host is stale after this many intervals without a beat.
STALE_AFTER = 5
#: Seconds after its last manifest write that an in_progress run without heartbeat is dead.
NO_HEARTBEAT_AFTER = 60.0
#: What :func:`liveness` returns for an ``in_progress`` experiment.
LIVENESS = ("running", "crashed", "stale")


def heartbeat_path(project: Project, exp_id: str) -> Path:
    """``.evalledger/heartbeats/<exp id>.json``."""
    return project.state_dir / "heartbeats" / f"{exp_id}.json"


def boot_id() -> str | None:
    """The boot ID of this machine (Linux), None where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (Linux); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the name, in parentheses, may hold spaces
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    return True


def beat_record(exp_id: str, started_at: str, interval: float) -> dict[str, Any]:
    """The heartbeat of this process for ``exp_id``, beating now."""
    pid = os.getpid()
    return {
        "exp_id": exp_id, "pid": pid, "host": socket.gethostname(), "boot_id": boot_id(),
        "process_start": process_start(pid), "started_at": started_at,
        "beat_at": time.time(), "interval": interval,
    }  # fmt: skip


def write_heartbeat(project: Project, record: dict[str, Any]) -> None:
    """Replace the heartbeat file of ``record["exp_id"]`` (atomically, without fsync)."""
    path = heartbeat_path(project, str(record["exp_id"]))
    atomic_write(path, json.dumps(record, indent=1) + "\n", fsync=False)


def read_heartbeat(project: Project, exp_id: str) -> dict[str, Any] | None:
    """The heartbeat of ``exp_id``, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads(heartbeat_path(project, exp_id).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def _heartbeat_liveness(beat: dict[str, Any], now: float) -> str:
    if beat.get("host") != socket.gethostname():
        interval = beat.get("interval")
        interval = float(interval) if isinstance(interval, int | float) else INTERVAL
        beat_at = beat.get("beat_at")
        fresh = isinstance(beat_at, int | float) and now - beat_at <= STALE_AFTER * interval
        return "running" if fresh else "stale"
    here = boot_id()
    if beat.get("boot_id") is not None and here is not None and beat["boot_id"] != here:
        return "crashed"  # the machine rebooted since
    pid = int(beat["pid"])
    if not _pid_alive(pid):
        return "crashed"
    started = beat.get("process_start")
    if started is not None and process_start(pid) not in (None, started):
        return "crashed"  # the pid now belongs to another process
    return "running"


def liveness(project: Project, manifest: ExecutionManifest, now: float | None = None) -> str:
    """Where ``manifest`` stands: its recorded status, or a liveness for a tracked run.

    An ``in_progress`` experiment is ``running``, ``crashed`` or ``stale`` (see the
    module docstring); every other execution keeps its recorded status.
    """
    status = manifest.status.value
    if status != "in_progress" or manifest.kind != "experiment":
        return status
    now = time.time() if now is None else now
    beat = read_heartbeat(project, manifest.execution_id)
    if beat is not None:
        return _heartbeat_liveness(beat, now)
    host = manifest.provenance.hostname if manifest.provenance is not None else None
    if host is not None and host != socket.gethostname():
        return "stale"
    updated = manifest.updated_at
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)
    age = now - updated.timestamp()
    return "crashed" if age > NO_HEARTBEAT_AFTER else "running"
