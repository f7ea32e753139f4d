"""The run's manifest writer keeps its writes a bounded share of the run."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from evalledger.execution import manifest_writer


def test_writes_take_at_most_a_tenth_of_the_time_however_slow_they_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[float] = []

    def slow_write(path: Path, manifest: object) -> None:  # a manifest of many cells
        time.sleep(0.05)
        writes.append(time.monotonic())

    monkeypatch.setattr(manifest_writer, "write_manifest", slow_write)
    writer = manifest_writer.ManifestWriter(tmp_path / "m.yaml", None, interval=0.01)  # type: ignore[arg-type]
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        writer._dirty = True  # a cell changed
        writer.maybe_flush()
        time.sleep(0.005)
    spent = 0.05 * len(writes)
    assert 2 <= len(writes) <= 4  # at 0.01 s apart there would be about 25
    assert spent / (time.monotonic() - started) <= 0.15
    assert all(b - a >= 0.45 for a, b in itertools.pairwise(writes))
    writer.flush()  # the last write is never skipped
    assert len(writes) >= 3
