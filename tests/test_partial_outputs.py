"""A streamed cell's outputs, written in item order while it runs, and kept across a kill.

``STREAM_ABOVE`` is lowered so 40-item cells stream, and ``SAVE_EVERY`` so the saved
prefix moves every 4 items. Every test ends with the files of a held, uninterrupted run
of the same matrix (equal apart from timings) and a clean ``dvc status``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import COUNTING_MODEL, calls, counting_params, dvc, invoke, ledger_files, make_project
from evalledger.errors import InterruptedRun
from evalledger.execution import partial_outputs, streaming
from evalledger.execution.cell import evaluate_cell, prepare_cell
from evalledger.execution.checkpoint import parts_dir
from evalledger.matrix import cell_from_axes
from evalledger.project import Project

SHUFFLING_MODEL = """\
import time


def generate(prompt, item, slow_at=-1):
    index = int(item.id.rsplit("-", 1)[1])
    time.sleep(0.4 if index == slow_at else (index * 7 % 5) * 0.002)
    return f"The answer is {item.target}."
"""

_PATCH = "streaming.STREAM_ABOVE = 5; partial_outputs.SAVE_EVERY = 4"


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "STREAM_ABOVE", 5)
    monkeypatch.setattr(partial_outputs, "SAVE_EVERY", 4)


def _shuffling(tmp_path: Path, name: str, slow_at: int = -1) -> Project:
    flags = tmp_path / "shuffling"  # one folder, so every project's params are the same
    flags.mkdir(exist_ok=True)
    (flags / "shuffling_model.py").write_text(SHUFFLING_MODEL)
    params = textwrap.dedent(f"""\
        axes:
          model: [shuffler]
          benchmark: [arith, arith_hard]
        models:
          shuffler:
            adapter: python
            callable: shuffling_model:generate
            path: {flags}
            max_concurrency: 4
            options: {{slow_at: {slow_at}}}
        benchmarks:
          arith: {{loader: arith, n_items: 40, seed: 1, difficulty: easy}}
          arith_hard: {{loader: arith, n_items: 40, seed: 2, difficulty: hard}}
        """)
    return make_project(tmp_path / name, params)


def _counting(tmp_path: Path, name: str, **kw: Any) -> tuple[Project, Path]:
    flags = tmp_path / "counting"
    flags.mkdir(exist_ok=True)
    (flags / "counting_model.py").write_text(COUNTING_MODEL)
    return make_project(tmp_path / name, counting_params(flags, **kw)), flags


def _held_files(make: Any) -> dict[str, object]:
    """The ledger files of ``make()``'s project run the held way (STREAM_ABOVE as shipped)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(streaming, "STREAM_ABOVE", streaming.STREAM_ABOVE + 10**6)
        project = make()
        result = invoke(project, "run")
        assert result.exit_code == 0, result.output
    for log in project.root.parent.glob("*/calls.log"):
        log.unlink()  # the held run's calls
    return ledger_files(project.root)


def _written_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the prediction lines the partial outputs write from now on."""
    written: list[str] = []
    line = partial_outputs.prediction_line

    def spy(prepared: Any, item: Any, rec: dict[str, Any]) -> str:
        written.append(item.id)
        return line(prepared, item, rec)

    monkeypatch.setattr(partial_outputs, "prediction_line", spy)
    return written


def _saved_items(project: Project, benchmark: str, model: str = "counter") -> int:
    cell = cell_from_axes({"model": model, "benchmark": benchmark})
    prepared = prepare_cell(project, project.spec(), cell)
    state = parts_dir(project.checkpoint_path(cell, prepared.config_hash)) / "state.json"
    return int(json.loads(state.read_text())["items"])


def _assert_done(project: Project, expected: dict[str, object]) -> None:
    assert ledger_files(project.root) == expected
    assert not list((project.state_dir / "checkpoints").glob("*"))  # logs and parts gone
    assert "up to date" in dvc(project.root, "status").stdout


def test_answers_out_of_order_make_the_files_of_a_held_run(
    tmp_path: Path, streamed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _held_files(lambda: _shuffling(tmp_path, "held"))
    project = _shuffling(tmp_path, "streamed")
    written = _written_lines(monkeypatch)
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    assert len(written) == 80  # each line written once, while the cell ran
    _assert_done(project, expected)


def test_a_record_stuck_behind_a_slow_item_is_written_from_the_checkpoint(
    tmp_path: Path, streamed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _held_files(lambda: _shuffling(tmp_path, "held", slow_at=3))
    project = _shuffling(tmp_path, "streamed", slow_at=3)
    monkeypatch.setattr(partial_outputs, "MAX_WAITING", 5)
    stopped: list[int] = []
    stop_writing = partial_outputs.PartialOutputs._stop_writing

    def spy(self: partial_outputs.PartialOutputs) -> None:
        stopped.append(self.next)
        stop_writing(self)

    monkeypatch.setattr(partial_outputs.PartialOutputs, "_stop_writing", spy)
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    assert stopped == [3, 3]  # both cells waited on item 3 with more than 5 records
    _assert_done(project, expected)


def test_an_interrupted_cell_resumes_past_its_saved_prefix(
    tmp_path: Path, streamed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _held_files(lambda: _counting(tmp_path, "held")[0])
    project, flags = _counting(tmp_path, "streamed")
    cell = cell_from_axes({"model": "counter", "benchmark": "arith"})
    prepared = prepare_cell(project, project.spec(), cell)
    stop = threading.Event()

    def progress(done: int, total: int, errors: int) -> None:
        if done >= 18:
            stop.set()

    with pytest.raises(InterruptedRun):
        asyncio.run(evaluate_cell(project, prepared, progress=progress, stop=stop))
    kept = _saved_items(project, "arith")
    assert kept == len(calls(flags)) >= 18  # one model call at a time: all saved on the way out
    written = _written_lines(monkeypatch)
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    assert written.count(f"easy-1-{kept:04d}") == 1 and len(written) == 80 - kept
    _assert_done(project, expected)


def test_an_errored_item_ends_the_saved_prefix_and_runs_again(
    tmp_path: Path, streamed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _held_files(lambda: _counting(tmp_path, "held")[0])
    project, flags = _counting(tmp_path, "streamed", fail_at=10)
    (flags / "fail_on").touch()
    result = invoke(project, "run")
    assert result.exit_code == 1 and "1 items errored" in result.output
    assert "boom on easy-1-0010" in (project.root / "metrics/counter/arith.scores.csv").read_text()
    (flags / "fail_on").unlink()
    (flags / "calls.log").unlink()
    result = invoke(project, "run", "--resume")
    assert result.exit_code == 0, result.output
    assert sorted(calls(flags)) == ["easy-1-0010", "hard-2-0010"]
    got = ledger_files(project.root)
    assert got.pop("dvc.lock") != expected.pop("dvc.lock")  # fail_at is in the cells' params
    assert got == expected
    assert "up to date" in dvc(project.root, "status").stdout


def test_a_run_killed_mid_cell_resumes_from_the_saved_prefix(
    tmp_path: Path, streamed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _held_files(lambda: _counting(tmp_path, "held", gate_at=25)[0])
    project, flags = _counting(tmp_path, "streamed", gate_at=25)
    (flags / "gate_on").touch()
    script = (
        f"import sys; from evalledger.execution import streaming, partial_outputs; {_PATCH}; "
        f"from evalledger.cli import main; sys.argv = ['evalledger', '-C', {str(project.root)!r},"
        " 'run']; main()"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(flags.glob("blocked-*"))) < 2:  # both cells wait in item 25
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run ended before the kill: {proc.communicate()[0]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _saved_items(project, "arith") == _saved_items(project, "arith_hard") == 24
    (flags / "gate_on").unlink()
    (flags / "calls.log").unlink()
    written = _written_lines(monkeypatch)
    result = invoke(project, "run", "--resume")
    assert result.exit_code == 0, result.output
    assert len(calls(flags)) == 2 * 15  # item 25 to 39 of each cell
    assert sorted(written) == sorted(f"{p}-{i:04d}" for p in ("easy-1", "hard-2")
                                     for i in range(24, 40))  # fmt: skip
    _assert_done(project, expected)


def test_outputs_on_another_file_system_are_copied_into_place(
    tmp_path: Path, streamed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _held_files(lambda: _shuffling(tmp_path, "held"))
    project = _shuffling(tmp_path, "streamed")
    replace = os.replace

    def across(src: Any, dst: Any) -> None:
        if ".parts" in str(src) and ".parts" not in str(dst):  # out, onto another mount
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", across)
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    _assert_done(project, expected)
    assert not list(project.root.rglob(".*.tmp"))  # the copies' temp files renamed away
