"""`evalledger significance` operands and options as documented, on real git+DVC ledgers.

Cells, revisions with -b, NAME@REV, unknown benchmarks, metrics and cluster columns,
the MDE with NaN pairs, left-out items stated, and --unpaired.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from click.testing import Result
from statsmodels.stats.proportion import confint_proportions_2indep

from conftest import git, invoke, make_project
from evalledger.analysis.pairing import Comparison
from evalledger.analysis.significance import compare_paired
from evalledger.project import Project

Z_SUM = 1.959963984540054 + 0.8416212335729143  # z_{0.975} + z_{0.8}


def scores(text: str, column: str = "correct") -> dict[str, float]:
    rows = csv.DictReader(io.StringIO(text))
    return {r["id"]: float(r[column]) if r[column] else math.nan for r in rows if not r["error"]}


def ws(root: Path, key: str, column: str = "correct") -> dict[str, float]:
    return scores((root / f"metrics/{key}.scores.csv").read_text(), column)


def at_rev(root: Path, rev: str, key: str, column: str = "correct") -> dict[str, float]:
    return scores(git(root, "show", f"{rev}:metrics/{key}.scores.csv"), column)


def discordant(a: dict[str, float], b: dict[str, float]) -> tuple[int, int]:
    ids = [i for i in a if i in b]
    return (sum(1 for i in ids if a[i] == 1 and b[i] == 0),
            sum(1 for i in ids if a[i] == 0 and b[i] == 1))  # fmt: skip


def as_json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line_usage_error(result: Result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def rewrite(path: Path, change) -> None:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for row in rows:
        change(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Two commits: the demo, then noisy at error rate 0.6 and arith grown to 40 items."""
    project = make_project(tmp_path_factory.mktemp("ops") / "proj")
    assert invoke(project, "run", "--commit").exit_code == 0
    result = invoke(project, "run", "-S", "models.noisy.error_rate=0.6",
                    "-S", "benchmarks.arith.n_items=40", "--commit")  # fmt: skip
    assert result.exit_code == 0, result.output
    return project


def test_cells_as_operands(history: Project) -> None:
    root = history.root
    data = as_json(invoke(history, "significance", "solver/arith", "noisy/arith", "--json"))
    [comp] = data["comparisons"]
    assert (comp["a"], comp["b"], comp["unit"]) == ("solver/arith", "noisy/arith", "arith")
    a, b = ws(root, "solver/arith"), ws(root, "noisy/arith")
    a_only, b_only = discordant(a, b)
    assert comp["method"] == "mcnemar" and comp["n"] == len(a) == 40
    assert comp["p_value"] == pytest.approx(
        scipy.stats.binomtest(b_only, a_only + b_only, 0.5).pvalue, rel=1e-12)  # fmt: skip
    assert comp["diff"] == pytest.approx((b_only - a_only) / 40)
    # A model beside a cell pairs on the cell's benchmark.
    mixed = as_json(invoke(history, "significance", "solver", "noisy/arith", "--json"))
    assert [c["unit"] for c in mixed["comparisons"]] == ["arith"]
    assert mixed["comparisons"][0]["p_value"] == comp["p_value"]


def test_revisions_with_benchmark_filter(history: Project) -> None:
    root = history.root
    data = as_json(invoke(history, "significance", "HEAD~1", "HEAD", "-b", "arith", "--json"))
    units = [c["unit"] for c in data["comparisons"]]
    assert sorted(units) == ["adder/arith", "noisy/arith", "solver/arith"]
    for comp in data["comparisons"]:
        old, new = at_rev(root, "HEAD~1", comp["unit"]), at_rev(root, "HEAD", comp["unit"])
        assert comp["n"] == 30  # the 30 items both revisions scored
        assert comp["items"] == {"shared": 30, "a_only": 0, "b_only": 10}
        assert comp["note"] == "30 shared items; 0 of HEAD~1's and 10 of HEAD's left out"
        ids = [i for i in old if i in new]
        assert comp["diff"] == pytest.approx(sum(new[i] - old[i] for i in ids) / len(ids))
    hard = as_json(invoke(history, "significance", "HEAD~1", "HEAD", "-b", "arith_hard",
                          "--json"))  # fmt: skip
    assert sorted(c["unit"] for c in hard["comparisons"]) == [
        "adder/arith_hard", "noisy/arith_hard", "solver/arith_hard"]  # fmt: skip
    assert all(c["note"] is None for c in hard["comparisons"])  # same 20 items
    # A git revision spelled with @ (HEAD@{1}, the reflog) is a revision, not NAME@REV.
    reflog = as_json(invoke(history, "significance", "HEAD@{1}", "HEAD", "-b", "arith_hard",
                            "--json"))  # fmt: skip
    assert [c["p_value"] for c in reflog["comparisons"]] == [
        c["p_value"] for c in hard["comparisons"]]  # fmt: skip


def test_benchmark_filter_is_on_the_benchmark_for_models(history: Project) -> None:
    data = as_json(invoke(history, "significance", "solver", "noisy", "-b", "arith_hard",
                          "--json"))  # fmt: skip
    assert [c["unit"] for c in data["comparisons"]] == ["arith_hard"]
    # A model name is not a benchmark.
    one_line_usage_error(invoke(history, "significance", "solver", "noisy", "-b", "solver"),
                         "unknown benchmark 'solver'")  # fmt: skip


def test_name_at_rev_for_models_and_cells(history: Project) -> None:
    root = history.root
    model = as_json(invoke(history, "significance", "noisy@HEAD~1", "noisy", "-b", "arith_hard",
                           "--json"))  # fmt: skip
    cell = as_json(invoke(history, "significance", "noisy/arith_hard@HEAD~1", "noisy/arith_hard",
                          "--json"))  # fmt: skip
    old = at_rev(root, "HEAD~1", "noisy/arith_hard")
    new = ws(root, "noisy/arith_hard")
    a_only, b_only = discordant(old, new)
    assert a_only + b_only > 0  # the error rate changed: a real comparison
    expected = scipy.stats.binomtest(b_only, a_only + b_only, 0.5).pvalue
    for data in (model, cell):
        [comp] = data["comparisons"]
        assert comp["unit"] == "arith_hard"
        assert comp["p_value"] == pytest.approx(expected, rel=1e-12)


def test_unknown_benchmark_metric_and_cluster_column(history: Project) -> None:
    line = one_line_usage_error(
        invoke(history, "significance", "solver", "noisy", "-b", "nosuch"),
        "unknown benchmark 'nosuch'", "arith, arith_hard")  # fmt: skip
    assert "share no benchmark" not in line
    one_line_usage_error(invoke(history, "significance", "solver", "noisy", "-m", "nosuch"),
                         "unknown metric 'nosuch'", "accuracy", "mean_score")  # fmt: skip
    one_line_usage_error(
        invoke(history, "significance", "solver", "noisy", "--cluster", "no_such_column"),
        "unknown cluster column 'no_such_column'", "category")  # fmt: skip
    # diff shares the check: it no longer clusters silently on another column.
    one_line_usage_error(invoke(history, "diff", "HEAD~1", "HEAD", "--cluster", "nope"),
                         "unknown cluster column 'nope'")  # fmt: skip
    clustered = as_json(invoke(history, "significance", "solver", "noisy", "--cluster",
                               "category", "-b", "arith_hard", "--json"))  # fmt: skip
    [comp] = clustered["comparisons"]
    assert comp["method"] == "cluster-t" and comp["details"]["se"] == "CR1"


def test_unpaired_uses_every_item_of_each_side(history: Project) -> None:
    root = history.root
    data = as_json(invoke(history, "significance", "noisy@HEAD~1", "noisy", "-b", "arith",
                          "--unpaired", "--json"))  # fmt: skip
    [comp] = data["comparisons"]
    old, new = at_rev(root, "HEAD~1", "noisy/arith"), ws(root, "noisy/arith")
    assert comp["paired"] is False and comp["method"] == "fisher"
    assert comp["details"] == {"n_a": 30, "n_b": 40}
    so, sn = int(sum(old.values())), int(sum(new.values()))
    fisher = scipy.stats.fisher_exact([[sn, 40 - sn], [so, 30 - so]]).pvalue
    assert comp["p_value"] == pytest.approx(fisher, rel=1e-12)
    low, high = confint_proportions_2indep(sn, 40, so, 30, method="newcomb", compare="diff")
    assert (comp["ci_low"], comp["ci_high"]) == pytest.approx((low, high), rel=1e-10)
    assert comp["note"] == "unpaired: all 30 items of noisy@HEAD~1 and 40 of noisy (30 shared)"
    text = invoke(history, "significance", "noisy@HEAD~1", "noisy", "-b", "arith")
    assert "30 shared items; 0 of noisy@HEAD~1's and 10 of noisy's left out" in text.stdout
    assert "--unpaired tests all items" in text.stdout
    one_line_usage_error(invoke(history, "significance", "solver", "noisy", "--unpaired",
                                "--method", "mcnemar"), "--unpaired")  # fmt: skip


def test_note_wording_when_both_sides_lose_items() -> None:
    result = compare_paired([0.0, 1.0, 1.0], [1.0, 1.0, 0.0])
    both = Comparison("a", "b", "arith", "accuracy", result,
                      items={"shared": 200, "a_only": 100, "b_only": 100})  # fmt: skip
    assert both.note() == "200 shared items; 100 on each side left out"
    same = Comparison("a", "b", "arith", "accuracy", result,
                      items={"shared": 3, "a_only": 0, "b_only": 0})  # fmt: skip
    assert same.note() is None


def test_mde_survives_nan_pairs_and_continuous_default(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    run = invoke(project, "run", "--models", "adder", "--benchmarks", "arith", "--commit")
    assert run.exit_code == 0, run.output
    path = project.root / "metrics/adder/arith.scores.csv"
    state = {"i": 0}

    def change(row: dict[str, str]) -> None:
        i = state["i"]
        state["i"] += 1
        if i == 0:
            row["score"] = ""  # a missing score: the pair is dropped
        elif i <= 12:
            row["score"] = f"{0.07 * i:.2f}"  # partial credit: continuous scores

    rewrite(path, change)
    data = as_json(invoke(project, "significance", "adder@HEAD", "adder", "-m", "mean_score",
                          "--json"))  # fmt: skip
    [comp] = data["comparisons"]
    a = at_rev(project.root, "HEAD", "adder/arith", "score")
    b = ws(project.root, "adder/arith", "score")
    ids = [i for i in a if not math.isnan(b[i])]
    d = np.array([b[i] - a[i] for i in ids])
    assert comp["details"]["dropped_nan_pairs"] == 1 and comp["n"] == len(ids) == 29
    # 12 nonzero differences of both signs: the exact sign-flip test, as scipy computes it.
    assert np.count_nonzero(d) == 12 and (d > 0).any() and (d < 0).any()
    assert comp["method"] == "permutation" and comp["details"]["auto"] == "n < 200"
    assert comp["details"]["null"] == "exact"
    # Zeros never change the sign-flip statistic; scipy would enumerate 2**29 patterns.
    reference = scipy.stats.permutation_test(
        (d[d != 0],), lambda x, axis=-1: np.mean(x, axis=axis), permutation_type="samples",
        vectorized=True, n_resamples=np.inf,
    ).pvalue  # fmt: skip
    assert 0.01 < reference < 0.99  # a p-value where the comparison has teeth
    assert comp["p_value"] == pytest.approx(reference, rel=1e-9)
    ci = scipy.stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert (comp["ci_low"], comp["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    # The MDE comes from the 29 pairs used (it was null whenever a pair was dropped).
    sd = float(np.std(d, ddof=1))
    assert comp["mde"] == pytest.approx(Z_SUM * sd / math.sqrt(29), rel=1e-9)


def test_a_category_metric_is_tested_on_its_own_items(history: Project) -> None:
    root = history.root
    data = as_json(invoke(history, "significance", "solver/arith", "noisy/arith", "-m",
                          "categories.two_step.accuracy", "--json"))  # fmt: skip
    (c,) = data["comparisons"]
    rows = list(csv.DictReader(io.StringIO((root / "metrics/noisy/arith.scores.csv").read_text())))
    mine = {r["id"] for r in rows if r["category"] == "two_step" and not r["error"]}
    a = {i: v for i, v in ws(root, "solver/arith").items() if i in mine}
    b = {i: v for i, v in ws(root, "noisy/arith").items() if i in mine}
    assert c["n"] == len(mine) < len(rows)
    b10, b01 = discordant(a, b)
    exact = scipy.stats.binomtest(min(b10, b01), b10 + b01, 0.5).pvalue if b10 + b01 else 1.0
    assert c["method"] == "mcnemar" and c["p_value"] == pytest.approx(exact)
    one_line_usage_error(
        invoke(history, "significance", "solver", "noisy", "-m", "categories.nosuch.accuracy"),
        "unknown category 'nosuch'",
        "two_step",
    )
