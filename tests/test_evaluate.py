"""In-process evaluation: evalledger.evaluate and Tracker.evaluate on a real project."""

from __future__ import annotations

import asyncio
import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

import evalledger
from conftest import invoke
from evalledger.errors import CellError, EvalLedgerError
from evalledger.execution.cell import execute_cell
from evalledger.matrix import Cell
from evalledger.models.baseline import solve
from evalledger.project import Project
from evalledger.track.tracker import Tracker


def answer(question: str) -> str:
    """The ``solver`` baseline's answer, from the question alone."""
    solved = solve(question)
    value = sum(int(n) for n in re.findall(r"-?\d+", question)) if solved is None else solved
    return f"Let me work it out. The answer is {value}."


class Solver:
    name = "my-solver"

    def generate(self, question: str) -> str:
        return answer(question)


class AsyncSolver:
    async def generate(self, question: str) -> str:
        await asyncio.sleep(0)
        return answer(question)


class Flaky:
    """Raises on every third item, by its number."""

    def generate(self, question: str, item: Any) -> str:
        if int(item.id.rsplit("-", 1)[1]) % 3 == 0:
            raise RuntimeError(f"CUDA out of memory on {item.id}")
        return answer(question)


class Wrong:
    """The solver, off by one on every fourth item."""

    def generate(self, question: str, item: Any) -> str:
        if int(item.id.rsplit("-", 1)[1]) % 4 == 0:
            return "The answer is -12345."
        return answer(question)


def _solver_cell(project: Project, bench: str) -> tuple[dict[str, Any], dict[str, bool]]:
    cell = Cell((("model", "solver"), ("benchmark", bench)))
    execute_cell(project, project.spec(), cell)
    metrics = json.loads(project.path(cell.metrics_path).read_text())
    with project.path(cell.scores_path).open() as fh:
        correct = {row["id"]: row["correct"] == "1" for row in csv.DictReader(fh)}
    return metrics, correct


@pytest.mark.parametrize("bench", ["arith", "arith_hard"])
def test_generate_object_matches_the_builtin_solver(project: Project, bench: str) -> None:
    metrics, correct = _solver_cell(project, bench)
    result = evalledger.evaluate(Solver(), bench, project=project)
    assert result.benchmark == bench
    for key in ("accuracy", "partial_accuracy", "format_accuracy", "n", "correct", "errors"):
        assert result.metrics[key] == metrics[key], key
    assert result.metrics["categories"] == metrics["categories"]
    assert {r["id"]: r["correct"] for r in result.records} == correct
    assert result.records[0]["output"].startswith("Let me work it out.")
    if bench == "arith_hard":
        assert 0 < metrics["accuracy"] < 1  # the solver fumbles multi-step problems
    # Nothing of the ledger was written for the in-memory model.
    assert sorted(p.name for p in project.metrics_dir.iterdir() if p.is_dir()) == ["solver"]


def test_n_takes_the_first_items_or_a_seeded_sample(project: Project) -> None:
    first = evalledger.evaluate(Solver(), "arith", 10, project=project)
    everything = evalledger.evaluate(answer, "arith", project=project)  # a plain function
    ids = [r["id"] for r in everything.records]
    assert [r["id"] for r in first.records] == ids[:10] and first.metrics["n"] == 10
    sample = evalledger.evaluate(Solver(), "arith", 10, sample_seed=7, project=project)
    again = evalledger.evaluate(Solver(), "arith", 10, sample_seed=7, project=project)
    picked = [r["id"] for r in sample.records]
    assert picked == [r["id"] for r in again.records] and picked != ids[:10]
    assert picked == [i for i in ids if i in set(picked)]  # kept in benchmark order
    assert evalledger.evaluate(Solver(), "arith", 999, project=project).metrics["n"] == 30


def test_async_generate_gives_the_same_scores(project: Project) -> None:
    sync = evalledger.evaluate(Solver(), "arith", project=project)
    result = evalledger.evaluate(AsyncSolver(), "arith", project=project, max_concurrency=4)
    assert [r["correct"] for r in result.records] == [r["correct"] for r in sync.records]
    assert result.metrics["accuracy"] == sync.metrics["accuracy"]


def test_a_raising_generate_records_errors_not_wrong_answers(project: Project) -> None:
    good = evalledger.evaluate(Solver(), "arith", project=project)
    result = evalledger.evaluate(Flaky(), "arith", project=project)
    failed = [r for r in result.records if r["error"]]
    assert len(failed) == result.metrics["errors"] == 10  # items 0, 3, ..., 27 of 30
    assert failed[0]["error"].startswith("RuntimeError: CUDA out of memory on")
    assert result.metrics["error_patterns"] == {"RuntimeError": 10}
    assert result.metrics["scored"] == 20
    scored_ok = [g["correct"] for g, r in zip(good.records, result.records, strict=True)
                 if not r["error"]]  # fmt: skip
    assert result.metrics["correct"] == sum(scored_ok)
    assert result.metrics["accuracy"] == round(sum(scored_ok) / 20, 6)

    def broken(prompt: str) -> str:
        raise ValueError("no weights loaded")

    with pytest.raises(CellError, match="all 30 items errored; first: ValueError"):
        evalledger.evaluate(broken, "arith", project=project)


def test_tracker_evaluate_writes_a_cell_that_significance_pairs(project: Project) -> None:
    tracker = Tracker(project)
    with tracker.experiment({"lr": 0.1}, name="run-a") as run:
        run.log_metrics({"loss": 1.0}, step=0)
        metrics_a = run.evaluate(Solver(), "arith")
    with tracker.experiment({"lr": 0.2}, name="run-b") as run:
        metrics_b = run.evaluate(Wrong(), "arith", n=30)
    for name, metrics in (("run-a", metrics_a), ("run-b", metrics_b)):
        written = json.loads(project.path(f"metrics/{name}/arith.json").read_text())
        assert written == metrics and metrics["n"] == 30
        with project.path(f"metrics/{name}/arith.scores.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 30 and rows[0]["id"] == "easy-1-0000"
    assert metrics_b["accuracy"] < metrics_a["accuracy"]
    result = invoke(project, "significance", "run-a/arith", "run-b/arith", "--json")
    assert result.exit_code == 0, result.output
    (comparison,) = json.loads(result.output)["comparisons"]
    assert comparison["paired"] is True and comparison["items"]["shared"] == 30
    assert comparison["method"] == "mcnemar" and comparison["details"]["a_only"] == 8
    with pytest.raises(EvalLedgerError, match="no experiment is running"):
        tracker.evaluate(Solver(), "arith")


def test_unknown_benchmark_is_one_line_listing_the_valid_ones(project: Project) -> None:
    with pytest.raises(EvalLedgerError) as info:
        evalledger.evaluate(Solver(), "gsm9k", project=project)
    err = info.value
    assert "\n" not in str(err)
    assert "unknown benchmark 'gsm9k'" in str(err)
    assert "params.yaml benchmarks: arith, arith_hard" in str(err)
    assert "loaders: " in str(err) and "gsm8k" in str(err)
    assert err.hint
    with pytest.raises(EvalLedgerError, match=r"defined in params\.yaml"):
        evalledger.evaluate(Solver(), "arith", project=project, n_items=5)
    with pytest.raises(EvalLedgerError, match="no generate"):
        evalledger.evaluate(object(), "arith", project=project)
    with pytest.raises(EvalLedgerError, match="n must be a positive integer"):
        evalledger.evaluate(Solver(), "arith", 0, project=project)


def test_a_registered_loader_with_settings_needs_no_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = evalledger.evaluate(Solver(), "arith", n_items=12, seed=1, difficulty="easy")
    assert result.metrics["n"] == 12 and result.metrics["errors"] == 0
    with pytest.raises(EvalLedgerError, match="no project found"):
        evalledger.evaluate(Solver(), "arith_hard")
