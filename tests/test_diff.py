"""`evalledger diff`: values, signs, paired tests, formats and the CI regression gate."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

import ledger_factory as lf
from conftest import dvc, invoke
from evalledger.analysis.diff import LedgerDiff, ParamChange, diff_revisions
from evalledger.ledger.history import Ledger

GOLDEN = Path(__file__).parent / "data" / "diff_golden.md"
METRICS = ("accuracy", "mean_score", "partial_accuracy")  # each the mean of a 0/1 column


def _diff(built: lf.Built, a: str | None = None, b: str | None = None, **kw: object) -> LedgerDiff:
    with Ledger(built.project) as ledger:
        return diff_revisions(ledger, a, b, **kw)  # type: ignore[arg-type]


def _hand(old: lf.Cell, new: lf.Cell) -> dict[str, float]:
    """McNemar exact p and Newcombe's CI of the paired difference, from the counts alone."""
    a_only, b_only = lf.discordant(old, new)
    low, high = lf.newcombe_ci(old, new)
    return {"p": lf.mcnemar_p(a_only, b_only), "change": new.accuracy - old.accuracy,
            "ci_low": low, "ci_high": high}  # fmt: skip


def test_hand_computed_mcnemar_values() -> None:
    # The counts behind the v1 -> v2 changes, and their exact two-sided p-values.
    assert lf.discordant(lf.V1["alpha/qa"], lf.V2["alpha/qa"]) == (1, 10)
    assert lf.discordant(lf.V1["beta/qa"], lf.V2["beta/qa"]) == (9, 1)
    assert lf.discordant(lf.V1["gamma/qa"], lf.V2["gamma/qa"]) == (3, 1)
    assert lf.mcnemar_p(1, 10) == 24 / 2048
    assert lf.mcnemar_p(9, 1) == 22 / 1024
    assert lf.mcnemar_p(3, 1) == 10 / 16
    assert lf.mcnemar_p(1, 0) == 1.0


def test_values_signs_and_verdicts_between_two_tags(built: lf.Built) -> None:
    d = _diff(built, "v1", "v2")
    assert (d.a, d.b) == (f"v1 ({built.short('v1')})", f"v2 ({built.short('v2')})")
    assert (d.a_commit, d.b_commit) == (built.shas["v1"], built.shas["v2"])
    # format_accuracy and error_rate did not change, so they are not listed.
    assert [(c.cell, c.metric) for c in d.changes] == [
        (cell, m) for cell in ("alpha/qa", "beta/qa", "gamma/qa") for m in METRICS
    ]
    verdicts = {"alpha/qa": "improvement", "beta/qa": "regression", "gamma/qa": "changed"}
    for c in d.changes:
        old, new = lf.V1[c.cell], lf.V2[c.cell]
        hand = _hand(old, new)
        assert (c.old, c.new) == (old.accuracy, new.accuracy)
        assert c.change == pytest.approx(hand["change"], abs=1e-12)
        assert c.verdict == verdicts[c.cell]
        assert c.better is (c.cell == "alpha/qa")
        assert c.significant is (c.cell != "gamma/qa")
        assert c.test is not None and c.test.method == "mcnemar" and c.test.n == 40
        assert c.test.p_value == pytest.approx(hand["p"], rel=1e-12)
        assert c.test.ci_low == pytest.approx(hand["ci_low"], abs=1e-12)
        assert c.test.ci_high == pytest.approx(hand["ci_high"], abs=1e-12)
    signs = {c.cell: math.copysign(1, c.change or 0) for c in d.changes}
    assert signs == {"alpha/qa": 1, "beta/qa": -1, "gamma/qa": -1}
    assert d.counts() == {"improvement": 3, "regression": 3, "changed": 3}
    assert d.added == ["gamma/math"] and d.removed == ["beta/math"]
    assert d.params == [ParamChange("models.alpha.seed", 1, 2)]
    assert d.unchanged == 1  # alpha/math
    assert [(c.cell, c.metric) for c in d.ordered()[:3]] == [("beta/qa", m) for m in METRICS]


def test_swapping_the_revisions_flips_every_sign(built: lf.Built) -> None:
    fwd, back = _diff(built, "v1", "v2"), _diff(built, "v2", "v1")
    pairs = {(c.cell, c.metric): c for c in back.changes}
    for c in fwd.changes:
        r = pairs[(c.cell, c.metric)]
        assert (r.old, r.new) == (c.new, c.old)
        assert r.change == pytest.approx(-c.change)  # type: ignore[operator]
        assert r.test is not None and c.test is not None
        assert r.test.p_value == pytest.approx(c.test.p_value)
    assert back.counts() == {"improvement": 3, "regression": 3, "changed": 3}
    assert {c.cell for c in back.changes if c.verdict == "regression"} == {"alpha/qa"}
    assert (back.added, back.removed) == (["beta/math"], ["gamma/math"])
    assert back.params == [ParamChange("models.alpha.seed", 2, 1)]


def test_default_revisions_are_head_and_the_workspace(built: lf.Built) -> None:
    d = _diff(built)
    assert (d.a, d.b) == (f"HEAD ({built.short('v3')})", "workspace")
    assert d.b_commit is None
    old, new = lf.V3["alpha/math"], lf.WORKSPACE["alpha/math"]
    assert [(c.cell, c.metric, c.old, c.new) for c in d.changes] == [
        ("alpha/math", m, 0.75, 0.875) for m in METRICS
    ]
    assert lf.discordant(old, new) == (0, 2)
    for c in d.changes:
        assert c.test is not None and c.test.n == 16  # errored items are not paired
        assert c.test.p_value == pytest.approx(lf.mcnemar_p(0, 2)) == 0.5
        assert c.verdict == "changed" and c.better is True
    assert (d.added, d.removed, d.params, d.unchanged) == ([], [], [], 4)

    out = invoke(built.project, "diff")
    assert out.exit_code == 0
    assert out.stdout.splitlines()[0] == (
        f"HEAD ({built.short('v3')}) -> workspace: 1 cells changed; 0 significant "
        "improvements, 0 significant regressions, 3 other metric changes"
    )
    # One revision: that one against the workspace.
    one = json.loads(invoke(built.project, "diff", "v2", "--json").stdout)
    assert one["a"] == {"rev": f"v2 ({built.short('v2')})", "commit": built.shas["v2"]}
    assert one["b"] == {"rev": "workspace", "commit": None}
    got = {(c["cell"], c["metric"]): (c["old"], c["new"]) for c in one["changes"]}
    assert got == {
        **{("alpha/math", m): (0.75, 0.875) for m in METRICS},
        **{("gamma/qa", m): (0.55, 0.525) for m in METRICS},
    }
    assert {c["test"]["p_value"] for c in one["changes"] if c["cell"] == "gamma/qa"} == {1.0}


def test_no_changes(built: lf.Built) -> None:
    d = _diff(built, "v3", "HEAD")
    assert (d.changes, d.added, d.removed, d.params) == ([], [], [], [])
    short = built.short("v3")
    assert d.summary() == f"no changes between v3 ({short}) and HEAD ({short})"
    assert d.unchanged == 5


def test_json_and_csv_carry_the_same_numbers(built: lf.Built) -> None:
    api = _diff(built, "v1", "v2")
    js = invoke(built.project, "diff", "v1", "v2", "--json")
    assert js.exit_code == 0
    data = json.loads(js.stdout)
    assert data["counts"] == api.counts() and data["summary"] == api.summary()
    assert data["cells_added"] == ["gamma/math"] and data["cells_removed"] == ["beta/math"]
    assert data["params"] == [{"key": "models.alpha.seed", "old": 1, "new": 2}]
    assert data["unchanged_cells"] == 1
    rows = list(
        csv.DictReader(io.StringIO(invoke(built.project, "diff", "v1", "v2", "--csv").stdout))
    )
    assert [(r["cell"], r["verdict"]) for r in rows if r["verdict"] in ("added", "removed")] == [
        ("gamma/math", "added"), ("beta/math", "removed"),
    ]  # fmt: skip
    problems = [(p["cell"], p["reason"]) for p in data["problems"]]
    assert problems == [("gamma/math", "error rate")]  # its new cell has errored items
    assert [(r["cell"], r["verdict"]) for r in rows[-1:]] == problems
    assert len(data["changes"]) == len(rows) - 3 == len(api.changes) == 9
    for c, j, r in zip(api.changes, data["changes"], rows, strict=False):
        assert c.test is not None
        assert (j["cell"], j["metric"], j["verdict"]) == (c.cell, c.metric, c.verdict)
        assert (r["cell"], r["metric"], r["verdict"]) == (c.cell, c.metric, c.verdict)
        assert (j["old"], j["new"], j["change"]) == (c.old, c.new, c.change)
        assert (float(r["old"]), float(r["new"]), float(r["change"])) == (c.old, c.new, c.change)
        assert j["test"]["p_value"] == float(r["p_value"]) == c.test.p_value
        assert j["test"]["ci_low"] == float(r["ci_low"]) == c.test.ci_low
        assert j["test"]["ci_high"] == float(r["ci_high"]) == c.test.ci_high
        assert j["test"]["n"] == int(r["n"]) == 40 and r["method"] == "mcnemar"
        assert j["significant"] is c.significant


def test_markdown_matches_the_golden_file(built: lf.Built) -> None:
    # Tag names keep the labels stable; the short SHAs in them vary from run to run, so the
    # golden file holds {v1} and {v2} where they go, filled in before a byte-for-byte check.
    out = invoke(built.project, "diff", "v1", "v2", "--md")
    assert out.exit_code == 0
    expected = GOLDEN.read_text(encoding="utf-8")
    expected = expected.replace("{v1}", built.short("v1")).replace("{v2}", built.short("v2"))
    assert out.stdout == expected
    assert "| 🔴 | `beta/qa` | accuracy | 0.75 | 0.55 | -0.2 |" in out.stdout
    assert "| 0.012 | 40 |" in out.stdout and "| 0.021 | 40 |" in out.stdout


def test_fail_on_regression_exit_codes(built: lf.Built) -> None:
    p = built.project
    out = invoke(p, "diff", "v1", "v2", "--fail-on-regression")
    assert out.exit_code == 5
    assert "beta/qa" in out.stdout  # the report is still printed
    assert out.stderr == (
        f"Error: the gate fails from v1 ({built.short('v1')}) to v2 ({built.short('v2')}) "
        "(1 regression, 1 error rate), e.g. beta/qa accuracy 0.75 -> 0.55 (-0.2, p 0.021); "
        "threshold 0, alpha 0.05; re-run failed, stale or incomplete cells with "
        "`evalledger run`, or allow some errors with --max-error-rise\n"
    )
    # The JSON report marks the gated change.
    data = json.loads(invoke(p, "diff", "v1", "v2", "--json", "--fail-on-regression").stdout)
    flagged = [(c["cell"], c["metric"]) for c in data["changes"] if c["fails_gate"]]
    assert flagged == [("beta/qa", "accuracy")]
    # A drop of 0.2 within the threshold, or not significant at a smaller alpha: exit 0,
    # once the new cell's 4% errored items are allowed.
    assert invoke(p, "diff", "v1", "v2", "--fail-on-regression", "--threshold", "0.25",
                  "--max-error-rise", "0.05").exit_code == 0  # fmt: skip
    assert invoke(p, "diff", "v1", "v2", "--fail-on-regression", "--threshold", "0.25",
                  "--max-error-rise", "0.03").exit_code == 5  # fmt: skip
    assert (
        invoke(p, "diff", "v1", "v2", "--fail-on-regression", "--threshold", "0.1").exit_code == 5
    )
    allow = ("--max-error-rise", "0.05")
    assert invoke(p, "diff", "v1", "v2", "--fail-on-regression", "--alpha", "0.02", *allow
                  ).exit_code == 0  # fmt: skip
    assert invoke(p, "diff", "v1", "v2", "--fail-on-regression", "--alpha", "0.03").exit_code == 5
    # The only drop from v2 to v3 (gamma/qa 0.55 -> 0.525) has p = 1: not a regression.
    ok = invoke(p, "diff", "v2", "v3", "--fail-on-regression")
    assert ok.exit_code == 0 and ok.stderr == ""
    assert "gamma/qa" in ok.stdout and "0.525" in ok.stdout
    # -m chooses the gated metrics.
    assert invoke(p, "diff", "v1", "v2", "--fail-on-regression", "-m", "mean_score").exit_code == 5
    gated = invoke(p, "diff", "v1", "v2", "--fail-on-regression", "-m", "format_accuracy", *allow)
    assert gated.exit_code == 0 and "0 cells changed" in gated.stdout


def test_a_drop_without_scores_is_gated_by_the_threshold_alone(
    built: lf.Built, tmp_path: Path
) -> None:
    copy = lf.copy_ledger(built, tmp_path / "copy")
    worse = lf.Cell("math", 48, set(range(24)), errored=2, with_scores=False)  # 0.625 -> 0.5
    (copy.root / "metrics" / "gamma" / "math.json").write_text(json.dumps(worse.metrics()))
    d = _diff(copy)
    acc = next(c for c in d.changes if (c.cell, c.metric) == ("gamma/math", "accuracy"))
    assert (acc.old, acc.new, acc.test, acc.significant) == (0.625, 0.5, None, None)
    assert acc.verdict == "changed" and acc.better is False
    out = invoke(copy.project, "diff", "--fail-on-regression")
    assert out.exit_code == 5
    assert "gamma/math accuracy 0.625 -> 0.5" in out.stderr and out.stderr.count("\n") == 1
    assert invoke(copy.project, "diff", "--fail-on-regression", "--threshold", "0.2").exit_code == 0


def test_regressions_api_with_a_threshold(built: lf.Built) -> None:
    # myexp -> v1: alpha/qa 0.9 -> 0.5, p far below alpha.
    d = _diff(built, "myexp", "v1")
    acc = next(c for c in d.changes if c.metric == "accuracy")
    assert acc.cell == "alpha/qa" and acc.change == pytest.approx(-0.4)
    assert acc.test is not None and acc.test.p_value == pytest.approx(lf.mcnemar_p(16, 0))
    assert d.regressions() == [acc]
    assert d.regressions(threshold=0.5) == []


def test_experiment_names_are_revisions(built: lf.Built) -> None:
    out = invoke(built.project, "diff", "v1", "myexp", "--md")
    assert out.exit_code == 0
    assert out.stdout.startswith(f"### evalledger diff: `v1 ({built.short('v1')})` → "
                                 f"`myexp ({built.short('exp')})`")  # fmt: skip
    assert "| 🟢 | `alpha/qa` | accuracy | 0.5 | 0.9 | +0.4 |" in out.stdout
    assert "| <0.001 | 40 |" in out.stdout  # p = 2 / 2**16


def test_unknown_revision_is_one_line_with_close_matches(built: lf.Built) -> None:
    out = invoke(built.project, "diff", "mian")
    assert out.exit_code == 2
    assert out.stdout == ""
    assert out.stderr == "Error: unknown revision 'mian'; did you mean main?\n"
    out = invoke(built.project, "diff", "v1", "relase")
    assert out.exit_code == 2
    assert out.stderr.count("\n") == 1 and "did you mean release" in out.stderr


def test_agrees_with_dvc_metrics_diff(built: lf.Built) -> None:
    ours = _diff(built, "v1", "v2")
    proc = dvc(built.root, "metrics", "diff", "v1", "v2", "--json")
    theirs = json.loads(proc.stdout)
    for c in ours.changes:
        entry = theirs[f"metrics/{c.cell}.json"][c.metric]
        assert (entry["old"], entry["new"]) == (c.old, c.new)
        assert entry["diff"] == pytest.approx(c.change)
    changed_by_dvc = {
        path[len("metrics/") : -len(".json")]
        for path, ms in theirs.items()
        if all(v.get("old") is not None and v.get("new") is not None for v in ms.values())
    }
    assert changed_by_dvc == set(ours.changed_cells)


def test_timing_changes_are_listed_apart_and_other_metrics_counted(tmp_path: Path) -> None:
    from conftest import make_project

    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    path = project.root / "metrics/solver/arith.json"
    original = json.loads(path.read_text())
    data = json.loads(path.read_text())
    data["latency_ms"]["p50"] += 1.0  # a rerun: same answers, other timings
    data["wall_time_s"] += 2.0
    path.write_text(json.dumps(data, indent=2) + "\n")
    out = invoke(project, "diff")
    assert out.exit_code == 0
    assert (  # and stale: a hand edit, not a run, changed the file dvc.lock recorded
        "no change in the compared metrics; timings changed in 1 cells (--timings lists them); "
        "problems: 1 stale"
    ) in out.stdout.splitlines()[0]
    assert "latency_ms.p50" not in out.stdout  # collapsed
    listed = invoke(project, "diff", "--timings").stdout
    assert "Timing changes" in listed and "latency_ms.p50" in listed and "+2" in listed
    for args in ((), ("--all",)):
        report = json.loads(invoke(project, "diff", *args, "--json").stdout)
        assert (report["changes"], report["other_changes"]) == ([], 0)
        assert [(c["cell"], c["metric"], c["change"]) for c in report["timing_changes"]] == [
            ("solver/arith", "latency_ms.p50", pytest.approx(1.0)),
            ("solver/arith", "wall_time_s", pytest.approx(2.0)),
        ]
    md = invoke(project, "diff", "--md").stdout
    assert "<details><summary>Timing changes in 1 cells</summary>" in md
    assert "| `solver/arith` | latency_ms.p50 |" in md
    asked = json.loads(invoke(project, "diff", "-m", "latency_ms.p50", "--json").stdout)
    assert [c["metric"] for c in asked["changes"]] == ["latency_ms.p50"]  # asked for: shown

    data["prompt_tokens"] += 5  # not a default metric, not a timing
    path.write_text(json.dumps(data, indent=2) + "\n")
    report = json.loads(invoke(project, "diff", "--json").stdout)
    assert (report["changes"], report["other_changes"]) == ([], 0)  # the timings are there
    data["latency_ms"], data["wall_time_s"] = original["latency_ms"], original["wall_time_s"]
    path.write_text(json.dumps(data, indent=2) + "\n")
    report = json.loads(invoke(project, "diff", "--json").stdout)
    assert (report["changes"], report["other_changes"], report["timing_changes"]) == ([], 1, [])
    assert "1 cells differ only in others (--all shows them)" in report["summary"]


def test_a_category_change_is_tested_on_its_own_items(tmp_path: Path) -> None:
    from conftest import make_project

    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--models", "noisy", "--commit").exit_code == 0
    out = invoke(project, "run", "--models", "noisy", "-S", "models.noisy.seed=11")
    assert out.exit_code == 0
    report = json.loads(invoke(project, "diff", "--all", "--json").stdout)
    cats = [c for c in report["changes"] if c["metric"].startswith("categories.")
            and c["metric"].endswith(".accuracy") and c["cell"] == "noisy/arith"]  # fmt: skip
    assert cats, report["changes"]
    metrics = json.loads((project.root / "metrics/noisy/arith.json").read_text())
    for c in cats:
        name = c["metric"].split(".")[1]
        assert c["test"]["n"] == metrics["categories"][name]["n"] < metrics["n"]


def test_an_unknown_metric_is_one_line_with_a_guess(built: lf.Built) -> None:
    out = invoke(built.project, "diff", "v1", "v2", "-m", "acuracy", "--fail-on-regression")
    assert out.exit_code == 2 and out.stdout == ""
    assert out.stderr.startswith(
        "Error: unknown metric 'acuracy' for -m/--metric; did you mean accuracy? known: "
    )
    assert out.stderr.count("\n") == 1
    # A JSON change says whether it is a significant move and, apart, whether it fails.
    data = json.loads(invoke(built.project, "diff", "v1", "v2", "--json").stdout)
    worse = next(c for c in data["changes"] if c["verdict"] == "regression")
    assert worse["fails_gate"] is False  # no gate was asked for


def test_a_damaged_metrics_file_is_not_reported_as_changes(tmp_path: Path) -> None:
    from conftest import make_project

    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    (project.root / "metrics/solver/arith.json").write_text('{"accuracy": 0.5, "n": ')
    report = json.loads(invoke(project, "diff", "--json").stdout)
    assert report["changes"] == []  # not five metrics "changed to -"
    assert report["unreadable_cells"] == ["solver/arith"]
    assert report["unchanged_cells"] == 1
    assert "problems: 1 unreadable" in report["summary"]
    assert report["problems"] == [
        {
            "cell": "solver/arith",
            "reason": "unreadable",
            "detail": "a metrics file is damaged: restore it from git",
        }
    ]
    gate = invoke(project, "diff", "--fail-on-regression")
    assert gate.exit_code == 5 and "solver/arith a metrics file is damaged" in gate.stderr
    out = invoke(project, "diff")
    assert "note: 1 cell not compared, a metrics file damaged: solver/arith" in out.output
