"""The one writer of a running execution's manifest (``runs/<id>/manifest.yaml``)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from evalledger.manifest import write_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.manifest import CellRecord, ExecutionManifest

__all__ = ["ManifestWriter"]


class ManifestWriter:
    """The one writer of the manifest.

    Workers update it in memory; the orchestrator's loop writes it at most every
    ``interval`` seconds, and once more at the end. A write costs time in proportion to
    the cells (about 25 ms per 1,000); the gap after one is at least nine times what it
    took, so writing stays under a tenth of the run at any size instead of growing with
    the square of the cells.

    A lagging manifest loses nothing: a cell that finished after the last write still has
    its full checkpoint (checkpoints are dropped only after the final write), so a resume
    rebuilds its outputs without evaluating any item again.
    """

    def __init__(self, path: Path, manifest: ExecutionManifest, interval: float = 0.5) -> None:
        self.path = path
        self.manifest = manifest
        self.interval = interval
        self.lock = threading.RLock()
        self._last = 0.0
        self._gap = interval
        self._dirty = False
        self.cache_hits = 0
        """Answers the cells took from the response cache, for the run's summary."""

    def update(self, key: str, **changes: object) -> None:
        with self.lock:
            rec = self.manifest.cells[key]
            for name, value in changes.items():
                setattr(rec, name, value)
            self._dirty = True

    def finish(self, key: str, **changes: object) -> CellRecord:
        """Apply a cell's final changes and return a copy for the reporter."""
        with self.lock:
            self.update(key, **changes)
            return self.manifest.cells[key].model_copy()

    def maybe_flush(self) -> None:
        with self.lock:
            if self._dirty and time.monotonic() - self._last >= self._gap:
                self._write()

    def flush(self) -> None:
        with self.lock:
            self._write()

    def _write(self) -> None:
        started = time.monotonic()
        write_manifest(self.path, self.manifest)
        self._last, self._dirty = time.monotonic(), False
        self._gap = max(self.interval, 9 * (self._last - started))
