"""`evalledger significance` end to end: real runs, numbers recomputed from the CSVs."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
import scipy.stats
from click.testing import Result

from conftest import git, invoke, make_project
from evalledger.project import Project

BENCHES = ["arith", "arith_hard"]
MODELS = ["solver", "noisy", "adder"]


def scores(text: str, column: str = "correct") -> dict[str, float]:
    """Item id -> value of one column, errored items left out (as evalledger does)."""
    rows = csv.DictReader(io.StringIO(text))
    return {r["id"]: float(r[column]) for r in rows if not r["error"]}


def ws_scores(root: Path, model: str, bench: str, column: str = "correct") -> dict[str, float]:
    return scores((root / f"metrics/{model}/{bench}.scores.csv").read_text(), column)


def rev_scores(root: Path, rev: str, key: str, column: str = "correct") -> dict[str, float]:
    return scores(git(root, "show", f"{rev}:metrics/{key}.scores.csv"), column)


def mean(values: dict[str, float]) -> float:
    return math.fsum(values.values()) / len(values)


def paired_diff(a: dict[str, float], b: dict[str, float]) -> tuple[int, float]:
    ids = [i for i in a if i in b]
    return len(ids), math.fsum(b[i] - a[i] for i in ids) / len(ids)


def holm(pvalues: list[float]) -> list[float]:
    """Holm step-down, written out: the k-th smallest times (m - k), running max, cap 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * pvalues[i])
        out[i] = min(1.0, running)
    return out


def as_json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_usage_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One real `evalledger run` of the 3x2 matrix, shared by the read-only tests."""
    project = make_project(tmp_path_factory.mktemp("sig") / "proj")
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    return project


def test_rows_per_benchmark_and_json_fields(ran: Project) -> None:
    table = invoke(ran, "significance", "solver", "noisy")
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if line.startswith("solver vs noisy")]
    assert [r.split()[3] for r in rows] == BENCHES

    data = as_json(invoke(ran, "significance", "solver", "noisy", "--json"))
    assert data["operands"] == ["solver", "noisy"]
    assert data["method"] == "mcnemar"  # the default for 0/1 scores
    assert [c["unit"] for c in data["comparisons"]] == BENCHES
    for comp in data["comparisons"]:
        for key in ("method", "n", "diff", "ci_low", "ci_high", "p_value", "p_adjusted",
                    "effect_size"):  # fmt: skip
            assert comp[key] is not None, key
        a = ws_scores(ran.root, "solver", comp["unit"])
        b = ws_scores(ran.root, "noisy", comp["unit"])
        n, diff = paired_diff(a, b)
        assert comp["n"] == n == len(a)
        assert comp["diff"] == pytest.approx(mean(b) - mean(a), abs=1e-12)
        assert comp["diff"] == pytest.approx(diff, abs=1e-12)
        assert comp["mean_a"] == pytest.approx(mean(a))
        assert comp["mean_b"] == pytest.approx(mean(b))
        assert comp["ci_low"] <= comp["diff"] <= comp["ci_high"]
        d = [b[i] - a[i] for i in a]
        sd = math.sqrt(math.fsum((x - diff) ** 2 for x in d) / (n - 1))
        assert comp["effect_size"] == pytest.approx(diff / sd)
    # noisy really is worse than the exact solver (error_rate 0.3), so the test is not vacuous
    assert all(c["diff"] < 0 for c in data["comparisons"])


def test_mcnemar_p_is_the_exact_binomial_on_discordant_pairs(ran: Project) -> None:
    data = as_json(invoke(ran, "significance", "solver", "noisy", "--method", "mcnemar", "--json"))
    assert data["method"] == "mcnemar"
    for comp in data["comparisons"]:
        a = ws_scores(ran.root, "solver", comp["unit"])
        b = ws_scores(ran.root, "noisy", comp["unit"])
        a_only = sum(1 for i in a if a[i] == 1 and b[i] == 0)
        b_only = sum(1 for i in a if a[i] == 0 and b[i] == 1)
        assert a_only + b_only > 0
        expected = scipy.stats.binomtest(b_only, a_only + b_only, 0.5).pvalue
        assert comp["method"] == "mcnemar"
        assert comp["p_value"] == pytest.approx(expected, rel=1e-9)
        assert comp["details"]["a_only"] == a_only
        assert comp["details"]["b_only"] == b_only


def test_three_operands_all_pairs_holm_adjusted(ran: Project) -> None:
    data = as_json(invoke(ran, "significance", *MODELS, "--method", "mcnemar", "--json"))
    comps = data["comparisons"]
    pairs = [("solver", "noisy"), ("solver", "adder"), ("noisy", "adder")]
    for bench in BENCHES:
        assert sorted((c["a"], c["b"]) for c in comps if c["unit"] == bench) == sorted(pairs)
    assert len(comps) == 3 * len(BENCHES)
    raw = [c["p_value"] for c in comps]
    for comp in comps:  # raw p recomputed by hand too, so Holm is checked end to end
        a = ws_scores(ran.root, comp["a"], comp["unit"])
        b = ws_scores(ran.root, comp["b"], comp["unit"])
        a_only = sum(1 for i in a if a[i] == 1 and b[i] == 0)
        b_only = sum(1 for i in a if a[i] == 0 and b[i] == 1)
        expected = 1.0 if a_only + b_only == 0 else scipy.stats.binomtest(
            b_only, a_only + b_only, 0.5).pvalue  # fmt: skip
        assert comp["p_value"] == pytest.approx(expected, rel=1e-9)
    assert [c["p_adjusted"] for c in comps] == pytest.approx(holm(raw), rel=1e-12)
    assert any(adj > p for adj, p in zip(holm(raw), raw, strict=True))  # a real adjustment


def test_items_option_reports_a_smaller_mde(ran: Project) -> None:
    data = as_json(invoke(ran, "significance", "solver", "noisy", "--items", "1000", "--json"))
    for comp in data["comparisons"]:
        assert comp["mde"] is not None and comp["mde"] > 0
        assert 0 < comp["mde_at"]["1000"] < comp["mde"]
    text = invoke(ran, "significance", "solver", "noisy", "--items", "1000")
    assert text.exit_code == 0
    assert "with 1000 items the minimum detectable effect" in text.stdout


def test_unknown_operand_suggests_a_close_match(ran: Project) -> None:
    assert_usage_error(invoke(ran, "significance", "solver", "noisyy"), "did you mean", "noisy")


def test_metric_without_per_item_column_is_a_usage_error(ran: Project) -> None:
    assert_usage_error(invoke(ran, "significance", "solver", "noisy", "-m", "n"), "'n'")


def test_mcnemar_on_non_binary_scores_is_a_usage_error(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    assert (
        invoke(project, "run", "--models", "solver,noisy", "--benchmarks", "arith").exit_code == 0
    )
    path = project.root / "metrics/noisy/arith.scores.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    rows[0]["score"] = "0.5"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())
    result = invoke(project, "significance", "solver", "noisy", "-m", "mean_score",
                    "--method", "mcnemar")  # fmt: skip
    assert_usage_error(result, "binary", "0.5")
    # the bootstrap accepts the same scores, and sees the 0.5
    data = as_json(invoke(project, "significance", "solver", "noisy", "-m", "mean_score", "--json"))
    a = ws_scores(project.root, "solver", "arith", "score")
    b = ws_scores(project.root, "noisy", "arith", "score")
    assert data["comparisons"][0]["diff"] == pytest.approx(mean(b) - mean(a))


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """run --commit, then noisy's error rate changed and run again --commit."""
    project = make_project(tmp_path_factory.mktemp("sig2") / "proj")
    assert invoke(project, "run", "--commit").exit_code == 0
    result = invoke(project, "run", "-S", "models.noisy.error_rate=0.6", "--commit")
    assert result.exit_code == 0, result.output
    return project


def test_model_at_rev_pairs_across_a_commit(two_commits: Project) -> None:
    root = two_commits.root
    data = as_json(invoke(two_commits, "significance", "noisy@HEAD~1", "noisy", "--json"))
    assert [c["unit"] for c in data["comparisons"]] == BENCHES
    for comp in data["comparisons"]:
        old = rev_scores(root, "HEAD~1", f"noisy/{comp['unit']}")
        new = ws_scores(root, "noisy", comp["unit"])
        n, diff = paired_diff(old, new)
        assert comp["n"] == n
        assert comp["diff"] == pytest.approx(diff, abs=1e-12)
        assert comp["mean_a"] == pytest.approx(mean(old))
    assert any(c["diff"] != 0 for c in data["comparisons"])
    # noisy@HEAD is the workspace's noisy: nothing changed since the last commit
    same = as_json(invoke(two_commits, "significance", "noisy@HEAD", "noisy", "--json"))
    assert all(c["diff"] == 0 for c in same["comparisons"])


def test_revision_operands_pair_the_same_cells(two_commits: Project) -> None:
    root = two_commits.root
    data = as_json(invoke(two_commits, "significance", "HEAD~1", "HEAD", "--json"))
    units = [c["unit"] for c in data["comparisons"]]
    assert sorted(units) == sorted(f"{m}/{b}" for m in MODELS for b in BENCHES)
    for comp in data["comparisons"]:
        old = rev_scores(root, "HEAD~1", comp["unit"])
        new = rev_scores(root, "HEAD", comp["unit"])
        n, diff = paired_diff(old, new)
        assert comp["n"] == n
        assert comp["diff"] == pytest.approx(diff, abs=1e-12)
        if not comp["unit"].startswith("noisy/"):
            assert comp["diff"] == 0  # only noisy was re-run
    assert any(c["diff"] != 0 for c in data["comparisons"] if c["unit"].startswith("noisy/"))


def test_save_writes_the_report_and_readers_ignore_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    assert invoke(project, "run").exit_code == 0
    before = as_json(invoke(project, "leaderboard", "--by", "cell", "--json"))
    result = invoke(project, "significance", "solver", "noisy", "--save", "--json")
    data = as_json(result)
    saved = list((project.root / "metrics" / "_significance").glob("*.json"))
    assert len(saved) == 1
    assert "metrics/_significance/" in result.stderr
    content = json.loads(saved[0].read_text())
    assert content["comparisons"] == data["comparisons"]
    assert content["operands"] == ["solver", "noisy"]

    after = as_json(invoke(project, "leaderboard", "--by", "cell", "--json"))
    assert "_significance" not in json.dumps(after)
    assert after == before
    # and once committed, history readers skip it too
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "results and a saved report")
    at_head = invoke(project, "leaderboard", "--by", "cell", "--rev", "HEAD", "--json")
    assert "_significance" not in as_json(at_head).__repr__()
    diff = invoke(project, "diff", "HEAD", "--json")
    assert diff.exit_code == 0, diff.output
    assert "_significance" not in diff.stdout
    again = as_json(invoke(project, "significance", "HEAD", "workspace", "--json"))
    assert all(not c["unit"].startswith("_significance") for c in again["comparisons"])
