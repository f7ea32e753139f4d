"""The index of a streamed checkpoint, saved beside it so a resume does not parse it again.

A log opened again reads only the lines added after the saved index; an index that no
longer describes the log (cut short, rewritten, replaced) is ignored and the log parsed
whole, with the same result as if no index had been saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalledger.execution import checkpoint
from evalledger.execution.checkpoint import Checkpoint, count_scored, parts_dir, remove_checkpoint
from evalledger.execution.itemindex import id_hashes


def _record(i: int, error: bool = False) -> dict[str, Any]:
    return {"id": f"item-{i:04d}", "category": "c", "correct": i % 3 == 0, "score": 1.0,
            "partial": False, "formatted": True, "latency_ms": 1.5, "prompt_tokens": 1,
            "completion_tokens": 2, "output": f"answer {i}", "error": "boom" if error else None,
            "error_class": "ValueError" if error else None}  # fmt: skip


def _fill(path: Path, ids: range, errored: frozenset[int] = frozenset()) -> None:
    with Checkpoint(path, keep_records=False) as ck:
        for i in ids:
            ck.append(_record(i, i in errored))


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The lines parsed from now on; the memo of the last index read is off."""
    seen: list[bytes] = []
    record_of = checkpoint._record_of

    def spy(line: bytes) -> dict[str, Any] | None:
        seen.append(line)
        return record_of(line)

    monkeypatch.setattr(checkpoint, "_record_of", spy)
    monkeypatch.setattr(checkpoint, "_MEMO_ABOVE", 1 << 62)
    monkeypatch.setattr(checkpoint, "_last_index", None)
    return seen


def _located(path: Path, n: int) -> list[list[int]]:
    with Checkpoint(path, keep_records=False) as ck:
        found = ck.index.locate(id_hashes(f"item-{i:04d}" for i in range(n)))
        return [np.asarray(a).astype(int).tolist() for a in found]


def test_a_reopened_log_parses_only_the_lines_after_its_saved_index(
    tmp_path: Path, parsed: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "INDEX_SAVE_EVERY", 10)
    path = tmp_path / "cell.jsonl"
    _fill(path, range(25), errored=frozenset({7}))  # saved at 10 and 20, and on close at 25
    state = json.loads((parts_dir(path) / "index.json").read_text())
    assert state["records"] == 25 and state["end"] == path.stat().st_size
    with path.open("ab") as f:  # two lines a killed run wrote after the last save
        f.write(json.dumps(_record(25)).encode() + b"\n" + json.dumps(_record(7)).encode() + b"\n")
    assert count_scored(path) == 26  # item 7 scored in its second record
    assert [json.loads(line)["id"] for line in parsed] == ["item-0025", "item-0007"]
    parsed.clear()
    fast = _located(path, 27)
    assert len(parsed) == 2
    parsed.clear()
    assert _located(path, 27) == fast and not parsed  # its close appended the 2 to the index
    (parts_dir(path) / "index.json").unlink()
    assert _located(path, 27) == fast  # the same as parsing the whole log
    assert len(parsed) == 27


@pytest.mark.parametrize("change", ["cut short", "first line changed", "torn in the middle"])
def test_an_index_of_another_log_is_not_used(
    tmp_path: Path, parsed: list[bytes], change: str
) -> None:
    path = tmp_path / "cell.jsonl"
    _fill(path, range(12))
    lines = path.read_bytes().splitlines(keepends=True)
    if change == "cut short":
        path.write_bytes(b"".join(lines[:5]))
    elif change == "first line changed":
        path.write_bytes(lines[0].replace(b'"c"', b'"d"') + b"".join(lines[1:]))
    else:
        path.write_bytes(b"".join(lines[:5]) + lines[5][:20] + b"\n" + b"".join(lines[6:]))
    expected = {"cut short": 5, "first line changed": 12, "torn in the middle": 11}[change]
    assert count_scored(path) == expected
    assert len(parsed) == (5 if change == "cut short" else 12)  # the whole log, parsed


def test_removing_a_checkpoint_removes_its_saved_index(tmp_path: Path) -> None:
    path = tmp_path / "cell.jsonl"
    _fill(path, range(3))
    assert (parts_dir(path) / "index.json").exists()
    remove_checkpoint(path)
    assert not path.exists() and not parts_dir(path).exists()
