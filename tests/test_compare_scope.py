"""`evalledger compare` judges on what changed: margins, winners and costs over the cells
every side evaluated, untouched cells left out; -b and -m filters; one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import Result

from conftest import git, invoke, make_project
from evalledger.project import Project
from evalledger.track.tracker import Tracker

BENCHES = ["arith", "arith_hard"]
CELLS = [f"{m}/{b}" for m in ("solver", "noisy", "adder") for b in BENCHES]
COSTS = ("prompt_tokens", "completion_tokens", "errors", "wall_time_s")


def at(root: Path, rev: str, key: str) -> dict:
    return json.loads(git(root, "show", f"{rev}:metrics/{key}.json"))


def as_json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def execution_ids(project: Project) -> list[str]:
    rows = as_json(invoke(project, "list", "--json"))
    return [r["execution_id"] for r in sorted(rows, key=lambda r: r["created_at"])]


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def one_cell(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """HEAD~1: the whole matrix; HEAD: only noisy/arith re-run, at error_rate 0.5."""
    project = make_project(tmp_path_factory.mktemp("scope") / "proj")
    assert invoke(project, "run", "--commit").exit_code == 0
    result = invoke(project, "run", "-S", "models.noisy.error_rate=0.5", "--benchmarks",
                    "arith", "--commit")  # fmt: skip
    assert result.exit_code == 0, result.output
    changed = [k for k in CELLS if at(project.root, "HEAD~1", k) != at(project.root, "HEAD", k)]
    assert changed == ["noisy/arith"]  # the premise: one cell moved
    return project


def test_the_margin_is_the_one_changed_cells_change_undiluted(one_cell: Project) -> None:
    root = one_cell.root
    data = as_json(invoke(one_cell, "compare", "HEAD~1", "HEAD", "--json"))
    old, new = at(root, "HEAD~1", "noisy/arith"), at(root, "HEAD", "noisy/arith")
    assert old["accuracy"] != new["accuracy"]
    labels = [s["label"] for s in data["sides"]]
    assert data["means"] == dict(zip(labels, [old["accuracy"], new["accuracy"]], strict=True))
    better = 0 if old["accuracy"] > new["accuracy"] else 1
    assert data["winner"] == labels[better]
    change = abs(new["accuracy"] - old["accuracy"])
    assert data["margin"] == pytest.approx(change, abs=1e-12)
    assert data["vs_others"] == pytest.approx(change, abs=1e-12)
    assert data["margin"] > 2 * change / len(CELLS)  # not the mean over all six cells
    assert data["changed_units"] == ["noisy/arith"]
    assert sorted(data["left_out"]["unchanged"]) == sorted(k for k in CELLS if k != "noisy/arith")
    assert set(data["left_out"]) == {"unchanged"}
    assert data["common_units"] == len(CELLS)
    # the costs are the changed cell's, on both sides
    assert data["costs_over"] == ["noisy/arith"]
    for name in COSTS:
        assert data["costs"][name] == dict(zip(labels, [old[name], new[name]], strict=True))
    rows = {(p["unit"], p["metric"]): p for p in data["performance"]}
    assert rows[("noisy/arith", "accuracy")]["status"] == "changed"
    assert rows[("solver/arith", "accuracy")]["status"] == "unchanged"

    text = invoke(one_cell, "compare", "HEAD~1", "HEAD")
    assert text.exit_code == 0, text.output
    assert f"Winner: [{better + 1}] {labels[better]}, mean accuracy " in text.stdout
    assert "over the 1 cell that changed (noisy/arith; 5 unchanged cells are left out)" in (
        text.stdout
    )
    assert "Costs (over noisy/arith, on every side)" in text.stdout
    assert "Unchanged on every side: " in text.stdout


def test_costs_total_only_the_cells_every_side_has(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--models", "solver,noisy", "--commit").exit_code == 0
    result = invoke(project, "run", "-S", "models.noisy.error_rate=0.5", "--models",
                    "noisy,adder", "--commit")  # fmt: skip
    assert result.exit_code == 0, result.output
    root = project.root
    noisy = [f"noisy/{b}" for b in BENCHES]
    adder = [f"adder/{b}" for b in BENCHES]

    def totals(rev: str, name: str) -> float:
        return math.fsum(at(root, rev, k)[name] for k in noisy)

    # revisions: HEAD has adder's cells too; solver's are the same execution's on both
    data = as_json(invoke(project, "compare", "HEAD~1", "HEAD", "--json"))
    labels = [s["label"] for s in data["sides"]]
    assert data["changed_units"] == data["costs_over"] == noisy
    assert sorted(data["left_out"]["not_on_every_side"]) == sorted(adder)
    assert sorted(data["left_out"]["unchanged"]) == [f"solver/{b}" for b in BENCHES]
    for name in COSTS:
        expected = [totals("HEAD~1", name), totals("HEAD", name)]
        assert data["costs"][name] == pytest.approx(dict(zip(labels, expected, strict=True)))
    everything = math.fsum(at(root, "HEAD", k)["prompt_tokens"] for k in CELLS)
    assert data["costs"]["prompt_tokens"][labels[1]] < everything
    text = invoke(project, "compare", "HEAD~1", "HEAD")
    assert text.exit_code == 0, text.output
    assert ("over the 2 cells that changed (noisy/arith, noisy/arith_hard; 2 unchanged cells "
            "and 2 cells only one side has are left out)") in text.stdout  # fmt: skip

    # executions: each holds four cells, and only noisy's are in both
    first, second = execution_ids(project)
    data = as_json(invoke(project, "compare", first, second, "--json"))
    assert data["costs_over"] == noisy
    assert sorted(data["left_out"]["not_on_every_side"]) == sorted(
        [f"solver/{b}" for b in BENCHES] + adder
    )
    for name in COSTS:
        expected = [totals("HEAD~1", name), totals("HEAD", name)]
        assert data["costs"][name] == pytest.approx(dict(zip([first, second], expected,
                                                             strict=True)))  # fmt: skip
    assert "over the 2 cells both sides evaluated" in data["scope"]


def test_benchmark_filter_keeps_that_benchmarks_cells(one_cell: Project) -> None:
    root = one_cell.root
    data = as_json(invoke(one_cell, "compare", "HEAD~1", "HEAD", "-b", "arith", "--json"))
    assert data["benchmarks"] == ["arith"]
    assert {p["unit"] for p in data["performance"]} == {f"{m}/arith" for m in
                                                        ("solver", "noisy", "adder")}  # fmt: skip
    assert data["changed_units"] == ["noisy/arith"]
    assert sorted(data["left_out"]["unchanged"]) == ["adder/arith", "solver/arith"]
    old, new = at(root, "HEAD~1", "noisy/arith"), at(root, "HEAD", "noisy/arith")
    assert data["margin"] == pytest.approx(abs(new["accuracy"] - old["accuracy"]), abs=1e-12)

    # on arith_hard nothing was re-run: no winner, and no average of identical cells
    data = as_json(invoke(one_cell, "compare", "HEAD~1", "HEAD", "-b", "arith_hard", "--json"))
    assert data["changed_units"] == [] and data["costs"] == {}
    assert data["winner"] is None and data["margin"] is None
    assert data["means"] == {s["label"]: None for s in data["sides"]}
    text = invoke(one_cell, "compare", "HEAD~1", "HEAD", "-b", "arith_hard")
    assert text.exit_code == 0, text.output
    assert ("Nothing changed: both sides hold the same results in all 3 cells they share; "
            "no winner.") in text.stdout  # fmt: skip

    both = as_json(invoke(one_cell, "compare", "HEAD~1", "HEAD", "-b", "arith", "-b",
                          "arith_hard", "--json"))  # fmt: skip
    unfiltered = as_json(invoke(one_cell, "compare", "HEAD~1", "HEAD", "--json"))
    assert {**both, "benchmarks": None} == unfiltered


def test_metric_filter_shows_those_metrics_and_the_first_decides(one_cell: Project) -> None:
    root = one_cell.root
    path = "categories.two_step.accuracy"
    data = as_json(invoke(one_cell, "compare", "HEAD~1", "HEAD", "-m", "partial_accuracy",
                          "-m", path, "--json"))  # fmt: skip
    assert data["metrics"] == ["partial_accuracy", path]
    assert data["primary_metric"] == "partial_accuracy"
    assert {p["metric"] for p in data["performance"]} == {"partial_accuracy", path}
    labels = [s["label"] for s in data["sides"]]
    old, new = at(root, "HEAD~1", "noisy/arith"), at(root, "HEAD", "noisy/arith")
    assert data["means"] == dict(zip(labels, [old["partial_accuracy"], new["partial_accuracy"]],
                                     strict=True))  # fmt: skip
    rows = {(p["unit"], p["metric"]): p["values"] for p in data["performance"]}
    two_step = [at(root, r, "noisy/arith")["categories"]["two_step"]["accuracy"]
                for r in ("HEAD~1", "HEAD")]  # fmt: skip
    assert rows[("noisy/arith", path)] == dict(zip(labels, two_step, strict=True))


def test_lower_is_better_comes_from_a_tracked_experiments_config(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    ids = []
    for name, gap in (("wide", 0.3), ("narrow", 0.1)):
        tracker = Tracker(project)
        with tracker.experiment({"run": name, "metrics": {"quality_gap": "lower"}}, name=name):
            tracker.log_evaluation("heldout", {"quality_gap": gap, "accuracy": 0.5, "n": 10})
            ids.append(tracker.experiment_id)
    data = as_json(invoke(project, "compare", *ids, "-m", "quality_gap", "--json"))
    assert data["winner"] == ids[1]  # the smaller gap
    assert data["margin"] == pytest.approx(-0.2)
    assert data["changed_units"] == ["heldout"]  # one model each: compared per benchmark


@pytest.mark.parametrize(
    ("option", "bad", "known"),
    [("-b", "nosuch", "arith, arith_hard"), ("-b", "arith_hrd", "did you mean arith_hard?"),
     ("-m", "acuracy", "did you mean accuracy?"), ("-m", "nosuch", "accuracy, partial_accuracy")],
)  # fmt: skip
def test_unknown_benchmark_or_metric_is_one_line_with_the_choices(
    one_cell: Project, option: str, bad: str, known: str
) -> None:
    line = one_error_line(invoke(one_cell, "compare", "HEAD~1", "HEAD", option, bad))
    what = "benchmark" if option == "-b" else "metric"
    assert f"unknown {what} {bad!r}" in line and known in line, line
