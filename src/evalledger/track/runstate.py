"""The state of a tracked experiment while it runs (shared by the Tracker and resume)."""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.manifest import ExecutionManifest
    from evalledger.project import ExperimentPaths

__all__ = ["ACTIVE", "Run"]

#: Trackers with a running experiment, finished as failed if the process exits first.
ACTIVE: set[Any] = set()


@dataclasses.dataclass(eq=False)
class Run:
    """The state of the running experiment."""

    exp_id: str
    manifest: ExecutionManifest
    manifest_path: Path
    paths: ExperimentPaths
    config_hash: str
    buffer: list[tuple[int, dict[str, Any]]] = dataclasses.field(default_factory=list)
    known: set[str] = dataclasses.field(default_factory=set)
    last: dict[str, float] = dataclasses.field(default_factory=dict)
    last_step: int = -1
    """The last step written (at the last flush)."""
    step: int = -1
    """The last step logged."""
    floor: int = -1  # a resumed run's last step: later steps must pass it (see .resume)
    dirty: bool = True
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    warned: bool = False
    nonfinite: int = 0
    """How many logged values were NaN or infinite (null in JSON, empty in series)."""
