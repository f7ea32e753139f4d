"""The gate and the leaderboard see failures: errors, a dead endpoint, stale cells.

Every case runs the real matrix (the reference OpenAI server over HTTP on 127.0.0.1, or
the built-in models) in a git+DVC project, and reads the verdict back from the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint

from conftest import dvc, git, invoke, make_project
from evalledger.testing.openai_server import ReferenceServer, ServerConfig


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(ServerConfig()) as srv:
        yield srv


def _params(base_url: str, n_items: int = 100) -> str:
    return (
        "axes:\n  model: [ref, solver]\n  benchmark: [arith]\n"
        f"models:\n  ref: {{adapter: openai, base_url: '{base_url}', model: reference, "
        "max_concurrency: 8, timeout: 2, max_retries: 0, backoff: 0.01}\n"
        "  solver: {adapter: baseline, strategy: solver}\n"
        f"benchmarks:\n  arith: {{loader: arith, n_items: {n_items}, seed: 4, difficulty: easy}}\n"
    )


def _metrics(root: Path, key: str) -> dict:  # type: ignore[type-arg]
    return json.loads((root / f"metrics/{key}.json").read_text())


def test_an_error_rate_rise_fails_the_gate_with_its_reason(
    tmp_path: Path, server: ReferenceServer
) -> None:
    project = make_project(tmp_path / "p", _params(server.base_url))
    assert invoke(project, "run", "--commit").exit_code == 0
    assert _metrics(project.root, "ref/arith")["error_rate"] == 0.0

    server.config.fault_rate, server.config.faults, server.config.seed = 0.08, ("500",), 3
    invoke(project, "run", "--force", "--no-cache", "--models", "ref")  # fresh calls
    m = _metrics(project.root, "ref/arith")
    assert 0 < m["errors"] < 100 and m["accuracy"] == 1.0  # errored items are not "wrong"
    rate = m["error_rate"]

    gate = invoke(project, "diff", "--fail-on-regression")
    assert gate.exit_code == 5
    assert f"ref/arith 0.0% -> {rate:.1%} of items errored" in gate.stderr
    assert "(1 error rate)" in gate.stderr and gate.stderr.count("\n") == 1
    rows = json.loads(invoke(project, "diff", "--json").stdout)["problems"]
    assert rows == [{"cell": "ref/arith", "reason": "error rate",
                     "detail": f"0.0% -> {rate:.1%} of items errored"}]  # fmt: skip
    allowed = invoke(project, "diff", "--fail-on-regression", "--max-error-rise", str(rate))
    assert allowed.exit_code == 0, allowed.output

    board = json.loads(invoke(project, "leaderboard", "--json").stdout)
    ref = next(e for e in board["entries"] if e["name"] == "ref")
    assert ref["errored"] == pytest.approx(rate) and ref["value"] == 1.0
    strict = json.loads(invoke(project, "leaderboard", "--json", "--strict").stdout)
    assert [e["name"] for e in strict["entries"]] == ["solver"]
    assert "--strict left out 1 cell(s): ref/arith" in strict["notes"][0]


def test_an_endpoint_that_refuses_every_call_fails_the_gate(
    tmp_path: Path, server: ReferenceServer
) -> None:
    project = make_project(tmp_path / "p", _params(server.base_url, n_items=30))
    assert invoke(project, "run", "--commit").exit_code == 0
    before = (project.root / "metrics/ref/arith.json").read_bytes()
    server.stop()  # the port now refuses connections

    run = invoke(project, "run", "--force", "--no-cache", "--models", "ref")
    assert run.exit_code != 0
    assert (project.root / "metrics/ref/arith.json").read_bytes() == before  # old metrics kept
    gate = invoke(project, "diff", "--fail-on-regression")
    assert gate.exit_code == 5
    assert "(1 failed)" in gate.stderr
    assert "ref/arith latest attempt failed, metrics are an older run's" in gate.stderr
    assert "no changes between" in invoke(project, "diff").stdout  # what it used to pass on
    cells = json.loads(invoke(project, "leaderboard", "--by", "cell", "--json").stdout)
    flags = {e["name"]: e["flags"] for e in cells["entries"]}
    assert flags == {"ref/arith": ["failed"], "solver/arith": []}


def test_a_stale_cell_is_marked_and_fails_the_gate(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert invoke(project, "run", "--commit").exit_code == 0
    params = project.root / "params.yaml"
    params.write_text(params.read_text().replace("n_items: 30", "n_items: 25"))
    changed = json.loads(dvc(project.root, "status", "--json").stdout)
    assert sorted(changed) == [f"eval@{m}-arith" for m in ("adder", "noisy", "solver")]

    board = invoke(project, "leaderboard", "--by", "cell", "--json")
    flags = {e["name"]: e["flags"] for e in json.loads(board.stdout)["entries"]}
    assert {k for k, f in flags.items() if f == ["stale"]} == {
        "adder/arith", "noisy/arith", "solver/arith",
    }  # fmt: skip
    assert all(f == [] for k, f in flags.items() if k.endswith("arith_hard"))
    table = invoke(project, "leaderboard").stdout
    assert "flags" in table.splitlines()[1] and "stale" in table
    gate = invoke(project, "diff", "--fail-on-regression")
    assert gate.exit_code == 5 and "(3 stale)" in gate.stderr
    assert "params changed since it ran: benchmarks.arith" in gate.stderr
    # Re-running clears it, and a commit of the results passes the gate.
    assert invoke(project, "run").exit_code == 0
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "re-run")
    assert invoke(project, "diff", "HEAD~1", "HEAD", "--fail-on-regression").exit_code == 5
    assert invoke(project, "diff", "--fail-on-regression").exit_code == 0


def test_a_changed_item_count_is_a_gate_row(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert invoke(project, "run", "--commit").exit_code == 0
    invoke(project, "run", "-S", "benchmarks.arith.n_items=20", "--models", "solver")
    rows = json.loads(invoke(project, "diff", "--json").stdout)["problems"]
    assert {"cell": "solver/arith", "reason": "n changed",
            "detail": "30 -> 20 items: the values are not over the same items"} in rows  # fmt: skip


CATEGORY_PARAMS = """\
axes:
  model: [solver, noisy]
  benchmark: [arith, arith_b, one]
models:
  solver: {adapter: baseline, strategy: solver}
  noisy: {adapter: baseline, strategy: solver, error_rate: 0.3, seed: 3}
benchmarks:
  arith: {loader: arith, n_items: 300, seed: 1, difficulty: easy}
  arith_b: {loader: arith, n_items: 300, seed: 5, difficulty: easy}
  one: {loader: arith, n_items: 1, seed: 1, difficulty: easy}
"""


@pytest.fixture(scope="module")
def categories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("cat") / "p", CATEGORY_PARAMS)
    assert invoke(project, "run", "--commit").exit_code == 0
    return project.root


def test_a_category_interval_is_wilson_at_the_category_n(categories: Path) -> None:
    m = _metrics(categories, "noisy/arith")
    cat = m["categories"]["two_step"]
    assert cat["n"] < m["n"]
    lines = (categories / "metrics/noisy/arith.scores.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    mine = [r for r in rows if r["category"] == "two_step"]
    correct = sum(int(r["correct"]) for r in mine)
    assert len(mine) == cat["n"] and correct / len(mine) == pytest.approx(cat["accuracy"], abs=1e-6)

    out = invoke(categories, "leaderboard", "-m", "categories.two_step.accuracy", "--by",
                 "cell", "-b", "arith", "--json")  # fmt: skip
    entry = next(e for e in json.loads(out.stdout)["entries"] if e["name"] == "noisy/arith")
    low, high = proportion_confint(correct, len(mine), alpha=0.05, method="wilson")
    assert entry["n_items"] == len(mine)
    assert (entry["ci_low"], entry["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    whole = proportion_confint(m["correct"], m["n"], method="wilson")
    assert entry["ci_high"] - entry["ci_low"] > whole[1] - whole[0]  # not the cell's n


def test_a_model_mean_of_all_correct_cells_does_not_collapse(categories: Path) -> None:
    out = invoke(categories, "leaderboard", "-b", "arith", "-b", "arith_b", "--json")
    solver = next(e for e in json.loads(out.stdout)["entries"] if e["name"] == "solver")
    assert solver["benchmarks"] == {"arith": 1.0, "arith_b": 1.0}
    assert solver["value"] == 1.0 and solver["ci_high"] == 1.0
    cell_low, _ = proportion_confint(300, 300, method="wilson")
    # MOVER: 1 - sqrt(2 (1 - l)^2) / 2, tighter than one cell's bound, but below 1.
    assert solver["ci_low"] == pytest.approx(1 - (2 * (1 - cell_low) ** 2) ** 0.5 / 2)
    assert cell_low < solver["ci_low"] < 1


def test_a_one_item_cell_gets_wilsons_interval(categories: Path) -> None:
    out = invoke(categories, "leaderboard", "-b", "one", "--by", "cell", "--json")
    entry = next(e for e in json.loads(out.stdout)["entries"] if e["name"] == "solver/one")
    low, high = proportion_confint(1, 1, method="wilson")
    assert entry["n_items"] == 1 and entry["value"] == 1.0
    assert (entry["ci_low"], entry["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert round(entry["ci_low"], 2) == 0.21


def test_models_on_disjoint_benchmarks_are_not_ranked_together(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert invoke(project, "run", "--models", "solver", "--benchmarks", "arith").exit_code == 0
    assert invoke(project, "run", "--models", "adder", "--benchmarks", "arith_hard").exit_code == 0
    out = invoke(project, "leaderboard")
    assert out.exit_code == 2 and out.stdout == ""
    assert out.stderr == (
        "Error: adder (arith_hard) and solver (arith) share no benchmark, so their means "
        "are not comparable; rank shared benchmarks with -b NAME, or single cells with "
        "--by cell\n"
    )
    assert invoke(project, "leaderboard", "--by", "cell").exit_code == 0
