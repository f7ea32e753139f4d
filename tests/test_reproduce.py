"""evalledger reproduce: re-run a committed revision in a temporary worktree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import dvc, git, invoke
from evalledger.ledger.scores import parse_scores
from evalledger.project import Project
from evalledger.share.reproduce import _run_groups, temporary_worktree
from evalledger.share.verdicts import compare_cell


def _state(root: Path) -> tuple[str, list[str]]:
    return git(root, "status", "--porcelain", "--untracked-files=all"), git(
        root, "worktree", "list", "--porcelain"
    ).split("\n\n")


def _verdicts(output: str) -> dict[str, str]:
    return {c["cell"]: c["verdict"] for c in json.loads(output)["cells"]}


def _tamper(root: Path, key: str, flips: int) -> None:
    """Mark ``flips`` correct items of a cell wrong, in its scores and its metrics."""
    scores = root / "metrics" / f"{key}.scores.csv"
    lines = scores.read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("correct")
    done = 0
    for i, line in enumerate(lines[1:], start=1):
        row = line.split(",")
        if done < flips and row[col] == "1":
            row[col] = "0"
            lines[i] = ",".join(row)
            done += 1
    assert done == flips
    scores.write_text("\n".join(lines) + "\n")
    metrics_file = root / "metrics" / f"{key}.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["correct"] -= flips
    metrics["accuracy"] = metrics["correct"] / metrics["scored"]
    metrics_file.write_text(json.dumps(metrics, indent=2))


def test_reproduce_committed_run_matches_and_leaves_tree_alone(project: Project) -> None:
    assert invoke(project, "run", "--commit").exit_code == 0
    (project.root / "scratch.txt").write_text("uncommitted work\n")  # must survive as is
    before = _state(project.root)
    result = invoke(project, "reproduce", "HEAD", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(_verdicts(result.stdout).values()) == {"match"}
    assert len(data["cells"]) == 6 and data["ok"]
    assert "latency_ms.p95" in data["ignored_metrics"]
    assert "wall_time_s" in data["ignored_metrics"]
    after = _state(project.root)
    assert after == before
    assert len([w for w in after[1] if w.strip()]) == 1  # no leftover worktree


def test_reproduce_table_and_filters(project: Project) -> None:
    assert invoke(project, "run", "--commit").exit_code == 0
    result = invoke(project, "reproduce", "--models", "solver", "--benchmarks", "arith", "-q")
    assert result.exit_code == 0, result.output
    assert "solver/arith " in result.stdout and "match" in result.stdout
    assert "noisy" not in result.stdout and "arith_hard" not in result.stdout
    assert "not compared (vary run to run):" in result.stdout
    result = invoke(project, "reproduce", "--cells", "noisy/arith_hard", "--cells",
                    "adder/arith", "--json", "-q")  # fmt: skip
    assert _verdicts(result.stdout) == {"noisy/arith_hard": "match", "adder/arith": "match"}


def test_tampered_metrics_differ_and_small_changes_are_noise(project: Project) -> None:
    assert invoke(project, "run", "--commit").exit_code == 0
    _tamper(project.root, "solver/arith", 10)  # 10 of 30 flipped one way: McNemar p ~ 0.002
    _tamper(project.root, "noisy/arith", 1)  # one item: p = 1, within noise
    git(project.root, "commit", "-qam", "tamper")
    result = invoke(project, "reproduce", "HEAD", "--json", "-q")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    verdicts = _verdicts(result.stdout)
    assert verdicts.pop("solver/arith") == "differs"
    assert verdicts.pop("noisy/arith") == "consistent"
    assert set(verdicts.values()) == {"match"}
    cells = {c["cell"]: c for c in data["cells"]}
    solver = cells["solver/arith"]
    assert solver["recorded"] == pytest.approx(20 / 30) and solver["reproduced"] == 1.0
    assert solver["p_value"] < 0.05 and solver["tests"]["accuracy"]["method"] == "mcnemar"
    assert "accuracy" in solver["differing"]
    assert cells["noisy/arith"]["p_value"] >= 0.05
    table = invoke(project, "reproduce", "HEAD~1", "-q")  # the untampered commit
    assert table.exit_code == 0 and "differs" not in table.stdout


def test_cell_without_recorded_metrics_is_missing(project: Project) -> None:
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    result = invoke(project, "reproduce", "--cells", "noisy/arith", "--cells", "solver/arith",
                    "--json", "-q")  # fmt: skip
    assert result.exit_code == 1
    assert _verdicts(result.stdout) == {"noisy/arith": "missing", "solver/arith": "match"}


def test_failed_cell(project: Project) -> None:
    params = project.params_path.read_text()
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    # The committed params make the cell fail when run again: a benchmark file that the
    # commit records but that is not in git (only the metrics are).
    (project.root / "items.jsonl").write_text(
        json.dumps({"id": "a", "input": "1+1", "target": "2"}) + "\n"
        + json.dumps({"id": "b", "input": "2+2", "target": "4"}) + "\n"
    )  # fmt: skip
    local = "benchmarks:\n  local: {loader: jsonl, path: items.jsonl}\n"
    params = params.replace("benchmarks:\n", local)
    project.params_path.write_text(
        params.replace("[arith, arith_hard]", "[arith, arith_hard, local]")
    )
    assert invoke(project, "run", "--models", "solver", "--benchmarks", "local").exit_code == 0
    git(project.root, "add", "params.yaml", "dvc.yaml", "dvc.lock", "metrics", "runs")
    git(project.root, "commit", "-qm", "local benchmark, data left out of git")
    result = invoke(project, "reproduce", "--models", "solver", "--json", "-q")
    assert result.exit_code == 1
    verdicts = _verdicts(result.stdout)
    assert verdicts == {"solver/arith": "match", "solver/arith_hard": "match",
                        "solver/local": "failed"}  # fmt: skip
    note = json.loads(result.stdout)["cells"][2]["note"]
    assert note and "items.jsonl" in note


def test_unknown_revision_and_cells(project: Project) -> None:
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    result = invoke(project, "reproduce", "HAED")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "unknown revision 'HAED'" in result.stderr and "HEAD" in result.stderr
    result = invoke(project, "reproduce", "--cells", "nope/x")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "unknown cell 'nope/x'" in result.stderr and "solver/arith" in result.stderr
    result = invoke(project, "reproduce", "--models", "gpt")
    assert result.exit_code == 2 and "unknown model 'gpt'" in result.stderr
    assert invoke(project, "reproduce", "workspace").exit_code == 2
    assert len(git(project.root, "worktree", "list").splitlines()) == 1


def test_run_groups_cover_exactly_the_cells() -> None:
    full = {f"{m}/{b}": {"model": m, "benchmark": b} for m in "ab" for b in "xy"}
    assert _run_groups(full) == [{"model": ["a", "b"], "benchmark": ["x", "y"]}]
    part = {k: v for k, v in full.items() if k != "b/y"}
    assert _run_groups(part) == [
        {"model": ["a"], "benchmark": ["x", "y"]},
        {"model": ["b"], "benchmark": ["x"]},
    ]


def test_compare_cell_structural_and_no_scores() -> None:
    old = {"accuracy": 0.5, "n": 10, "latency_ms": {"p50": 3.0}}
    assert compare_cell("m/b", old, {**old, "latency_ms": {"p50": 9.0}}, None, None).verdict == (
        "match"
    )
    check = compare_cell("m/b", old, {**old, "accuracy": 0.6}, None, None)
    assert check.verdict == "differs" and check.note and "per-item" in check.note
    table = parse_scores(b"id,correct\na,1\nb,0\n")
    check = compare_cell("m/b", old, {**old, "n": 11}, table, table)
    assert check.verdict == "differs" and check.note and check.note.startswith("n differs")


def test_dvc_tracked_benchmark_data_is_restored_in_the_worktree(project: Project) -> None:
    data = project.root / "data"
    data.mkdir()
    rows = [{"id": f"q{i}", "input": f"{i}+{i}", "target": str(2 * i)} for i in range(12)]
    (data / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dvc(project.root, "add", "data/items.jsonl")
    local = "benchmarks:\n  local: {loader: jsonl, path: data/items.jsonl}\n"
    params = project.params_path.read_text().replace("benchmarks:\n", local)
    project.params_path.write_text(params.replace("[arith, arith_hard]", "[local]"))
    # Not staged: the .dvc file of data a cell read is one of the execution's files, so
    # the commit names the data version its results came from (and nothing else staged).
    (project.root / "mine.py").write_text("x = 1\n")
    git(project.root, "add", "mine.py")
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    committed = git(project.root, "show", "--name-only", "--format=", "HEAD").split()
    assert {"data/items.jsonl.dvc", "data/.gitignore"} <= set(committed)
    assert "mine.py" not in committed
    git(project.root, "reset", "-q", "--", "mine.py")
    (project.root / "mine.py").unlink()
    before = _state(project.root)
    result = invoke(project, "reproduce", "--json", "-q")
    assert result.exit_code == 0, result.output
    assert _verdicts(result.stdout) == {"solver/local": "match"}
    assert _state(project.root) == before


def test_worktree_is_removed_on_interrupt(project: Project) -> None:
    head = git(project.root, "rev-parse", "HEAD").strip()
    with pytest.raises(KeyboardInterrupt), temporary_worktree(project.root, head) as tree:
        assert (tree / "params.yaml").is_file()
        raise KeyboardInterrupt
    assert not tree.exists() and not tree.parent.exists()
    assert len(git(project.root, "worktree", "list").splitlines()) == 1


def test_metric_that_disagrees_with_its_items_differs() -> None:
    table = parse_scores(b"id,correct\na,1\nb,0\nc,1\nd,1\n")
    old = {"accuracy": 0.5, "n": 4}  # edited by hand: the items say 0.75
    check = compare_cell("m/b", old, {**old, "accuracy": 0.75}, table, table)
    assert check.verdict == "differs" and check.note and "recorded accuracy" in check.note
    flipped = parse_scores(b"id,correct\na,1\nb,1\nc,1\nd,1\n")
    check = compare_cell("m/b", {**old, "accuracy": 0.75}, {**old, "accuracy": 1.0}, table, flipped)
    assert check.verdict == "consistent" and check.test and check.test.method == "mcnemar"
