"""Streamed cells (more than STREAM_ABOVE items): the same files as held ones, in bounded memory.

Each test lowers ``STREAM_ABOVE`` so small cells take the streamed path, and compares
with the same matrix run the held way: the ledger files must be equal apart from
timings. Resume, damaged checkpoint lines and duplicate ids are checked on the streamed
path too, and its peak memory against the held path's on the same cell.
"""

from __future__ import annotations

import asyncio
import json
import threading
import tracemalloc
from pathlib import Path

import pytest

from conftest import (
    COUNTING_MODEL,
    SMALL_PARAMS,
    calls,
    counting_params,
    dvc,
    invoke,
    ledger_files,
    make_project,
)
from evalledger.errors import CellError, InterruptedRun
from evalledger.execution import streaming
from evalledger.execution.cell import evaluate_cell, evaluate_items, prepare_cell
from evalledger.execution.checkpoint import Checkpoint
from evalledger.execution.streaming import StreamedItems, scan_items
from evalledger.matrix import cell_from_axes
from evalledger.plugin_types import Item
from evalledger.project import Project


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cells of more than 5 items are streamed."""
    monkeypatch.setattr(streaming, "STREAM_ABOVE", 5)


def _counting(tmp_path: Path, name: str, n_items: int = 40) -> tuple[Project, Path]:
    flags = tmp_path / f"{name}-flags"
    flags.mkdir()
    (flags / "counting_model.py").write_text(COUNTING_MODEL)
    return make_project(tmp_path / name, counting_params(flags, n_items=n_items)), flags


def test_a_streamed_run_writes_the_files_of_a_held_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = make_project(tmp_path / "held", SMALL_PARAMS)
    assert invoke(held, "run").exit_code == 0
    monkeypatch.setattr(streaming, "STREAM_ABOVE", 5)
    streamed = make_project(tmp_path / "streamed", SMALL_PARAMS)
    result = invoke(streamed, "run")
    assert result.exit_code == 0, result.output
    assert ledger_files(streamed.root) == ledger_files(held.root)
    for rel in ("metrics/noisy/arith.scores.csv", "metrics/adder/arith_hard.scores.csv"):
        assert (streamed.root / rel).read_bytes() == (held.root / rel).read_bytes()
    assert "up to date" in dvc(streamed.root, "status").stdout


def test_prepare_streams_only_above_the_limit(tmp_path: Path, streamed: None) -> None:
    project = make_project(tmp_path / "p", SMALL_PARAMS)
    spec = project.spec()
    big = prepare_cell(project, spec, cell_from_axes({"model": "solver", "benchmark": "arith"}))
    assert isinstance(big.items, StreamedItems) and len(big.items) == 30
    assert big.prompts is None
    ids = [it.id for it in big.items]
    assert ids == [it.id for it in big.items] and len(set(ids)) == 30  # read again, same order


def test_a_streamed_cell_resumes_with_only_the_items_left(tmp_path: Path, streamed: None) -> None:
    project, flags = _counting(tmp_path, "p")
    spec = project.spec()
    cell = cell_from_axes({"model": "counter", "benchmark": "arith"})
    prepared = prepare_cell(project, spec, cell)
    assert isinstance(prepared.items, StreamedItems)
    stop = threading.Event()

    def progress(done: int, total: int, errors: int) -> None:
        if done >= 17:
            stop.set()  # as a signal would: the items in flight finish, no new one starts

    with pytest.raises(InterruptedRun):
        asyncio.run(evaluate_cell(project, prepared, keep_checkpoint=True, progress=progress,
                                  stop=stop))  # fmt: skip
    first = calls(flags)
    assert 17 <= len(first) < 40
    (flags / "calls.log").unlink()
    result = invoke(project, "run", "--models", "counter", "-b", "arith")
    assert result.exit_code == 0, result.output
    again = calls(flags)
    assert sorted(again) == sorted({it.id for it in prepared.items} - set(first))
    rows = (project.root / "metrics/counter/arith.scores.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == [it.id for it in prepared.items]


def test_damaged_lines_of_a_streamed_checkpoint_are_dropped_and_run_again(
    tmp_path: Path, streamed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    project, flags = _counting(tmp_path, "p", n_items=12)
    spec = project.spec()
    cell = cell_from_axes({"model": "counter", "benchmark": "arith"})
    prepared = prepare_cell(project, spec, cell)
    path = project.checkpoint_path(cell, prepared.config_hash)
    with Checkpoint(path, keep_records=False) as ck:
        asyncio.run(evaluate_items(prepared, ck, prepared.items))
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 12
    damaged = [*lines[:3], b'{"id": "broken"\n', *lines[4:], b'{"id": "easy-1-00']  # torn
    path.write_bytes(b"".join(damaged))
    (flags / "calls.log").unlink()
    with Checkpoint(path, keep_records=False) as ck:
        assert len(ck.index) == 11
        evaluated = asyncio.run(evaluate_items(prepared, ck, prepared.items))
    assert evaluated == 1 and calls(flags) == [json.loads(lines[3])["id"]]
    assert "dropped 1 malformed line" in capsys.readouterr().err
    assert len(path.read_bytes().splitlines()) == 12  # the log rewritten whole, then appended


def test_duplicate_ids_are_found_when_streamed() -> None:
    items = [Item(id=f"q{i % 7}", input="x", target="1") for i in range(20)]
    with pytest.raises(CellError, match="has duplicate item ids"):
        scan_items(lambda: iter(items), "benchmark 'dup'", limit=5)
    with pytest.raises(CellError, match="has no items"):
        scan_items(lambda: iter([]), "benchmark 'empty'", limit=5)
    ok = scan_items(lambda: iter(items[:7]), "benchmark 'ok'", limit=5)
    assert isinstance(ok, StreamedItems) and len(ok) == 7


def _peak(project: Project, cell_axes: dict[str, str]) -> int:
    spec = project.spec()
    cell = cell_from_axes(cell_axes)
    tracemalloc.start()
    try:
        prepared = prepare_cell(project, spec, cell)
        asyncio.run(evaluate_cell(project, prepared))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_streamed_cell_holds_far_less_than_a_held_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = SMALL_PARAMS.replace("n_items: 30", "n_items: 20000")
    held = make_project(tmp_path / "held", params)
    axes = {"model": "solver", "benchmark": "arith"}
    held_peak = _peak(held, axes)
    monkeypatch.setattr(streaming, "STREAM_ABOVE", 1000)
    streamed = make_project(tmp_path / "streamed", params)
    streamed_peak = _peak(streamed, axes)
    assert streamed_peak * 5 < held_peak, (streamed_peak, held_peak)
    for rel in ("metrics/solver/arith.scores.csv", "metrics/solver/arith.json"):
        a, b = (streamed.root / rel).read_text(), (held.root / rel).read_text()
        if rel.endswith(".json"):
            a, b = json.dumps(json.loads(a)["categories"]), json.dumps(json.loads(b)["categories"])
        assert a == b
