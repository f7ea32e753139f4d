"""Any axis, prompt sets as files, and conditions compared item by item.

A ``condition`` axis (control/treatment) with a ``conditions:`` section; the prompt set
``ops`` reads a system prompt and a user template per condition from ``prompts/``. The
model ``heeds`` follows a system prompt asking it to check its work (fewer seeded
mistakes); ``noisy`` ignores it. Editing one prompt file makes exactly its cells stale,
in ``dvc status`` and ``evalledger run --dry-run``; ``significance condition=control
condition=treatment`` gives the treatment effect per model, checked by hand.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from scipy.stats import binomtest

from conftest import dvc, git, invoke, make_project
from evalledger.project import Project

PARAMS = """\
axes:
  model: [noisy, heeds]
  benchmark: [arith]
  prompt_set: [ops]
  condition: [control, treatment]
models:
  noisy: {adapter: baseline, strategy: solver, error_rate: 0.3, seed: 3}
  heeds:
    adapter: baseline
    strategy: solver
    error_rate: 0.3
    seed: 3
    system_error_rates: {"check your work": 0.05}
benchmarks:
  arith: {loader: arith, n_items: 60, seed: 1, difficulty: easy}
prompt_sets:
  ops: {from: files}
conditions:
  control: {}
  treatment: {description: asks the model to check its work}
run:
  jobs: 2
"""

PROMPTS = {
    "prompts/ops/control/system.md": "You are a careful calculator.\n",
    "prompts/ops/control/user.md": "Question: {input}\n",
    "prompts/ops/treatment/system.md": "You are a careful calculator. Check your work.\n",
    "prompts/ops/treatment/user.md": "Question: {input}\nThink step by step.\n",
}
CELLS = [f"{m}/arith/ops/{c}" for m in ("noisy", "heeds") for c in ("control", "treatment")]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = make_project(tmp_path_factory.mktemp("cond") / "proj", PARAMS)
    _write(project.root, PROMPTS)
    git(project.root, "add", "prompts")
    git(project.root, "commit", "-qm", "prompts")
    result = invoke(project, "run", "--commit")
    assert result.exit_code == 0, result.output
    return project


def _correct(project: Project, key: str) -> dict[str, int]:
    with (project.root / "metrics" / f"{key}.scores.csv").open() as fh:
        return {row["id"]: int(row["correct"]) for row in csv.DictReader(fh)}


def test_a_custom_axis_is_a_matrix_axis_with_paths_deps_and_stages(ran: Project) -> None:
    for key in CELLS:
        assert (ran.root / "metrics" / f"{key}.json").is_file(), key
    assert json.loads(dvc(ran.root, "status", "--json").stdout) == {}
    lock = (ran.root / "dvc.lock").read_text()
    assert "eval@heeds-arith-ops-treatment:" in lock
    assert "path: prompts/ops/treatment/system.md" in lock
    board = json.loads(invoke(ran, "leaderboard", "--json").stdout)
    assert len(board["entries"]) == 4  # grouped by every axis but the benchmark
    only = json.loads(invoke(ran, "leaderboard", "--only", "condition=treatment", "--json").stdout)
    assert {e["name"] for e in only["entries"]} == {"noisy/ops/treatment", "heeds/ops/treatment"}
    assert only["entries"][0]["name"] == "heeds/ops/treatment"  # it heeds the treatment


def test_the_system_prompt_reaches_the_model(ran: Project) -> None:
    def accuracy(key: str) -> float:
        data = json.loads((ran.root / "metrics" / f"{key}.json").read_text())
        return float(data["accuracy"])

    assert accuracy("heeds/arith/ops/treatment") > accuracy("heeds/arith/ops/control")
    assert _correct(ran, "noisy/arith/ops/treatment") == _correct(ran, "noisy/arith/ops/control")


def test_editing_one_prompt_file_makes_exactly_its_cells_stale(ran: Project) -> None:
    path = ran.root / "prompts/ops/treatment/system.md"
    original = path.read_text()
    path.write_text(original + "Check your work twice.\n")
    try:
        status = json.loads(dvc(ran.root, "status", "--json").stdout)
        assert sorted(status) == [
            "eval@heeds-arith-ops-treatment",
            "eval@noisy-arith-ops-treatment",
        ]
        dry = invoke(ran, "run", "--dry-run", "--json")
        assert dry.exit_code == 0, dry.output
        planned = json.loads(dry.stdout)
        assert sorted(planned["cells"]) == [
            "heeds/arith/ops/treatment",
            "noisy/arith/ops/treatment",
        ]
    finally:
        path.write_text(original)
    assert json.loads(dvc(ran.root, "status", "--json").stdout) == {}


def test_significance_of_conditions_is_the_treatment_effect_per_model(ran: Project) -> None:
    out = invoke(ran, "significance", "condition=control", "condition=treatment", "--json")
    assert out.exit_code == 0, out.output
    comparisons = {c["unit"]: c for c in json.loads(out.stdout)["comparisons"]}
    assert sorted(comparisons) == ["heeds/arith/ops", "noisy/arith/ops"]
    raw = {}
    for model in ("heeds", "noisy"):
        a = _correct(ran, f"{model}/arith/ops/control")
        b = _correct(ran, f"{model}/arith/ops/treatment")
        only_a = sum(a[i] and not b[i] for i in a)
        only_b = sum(b[i] and not a[i] for i in a)
        k = only_a + only_b
        raw[model] = binomtest(min(only_a, only_b), k, 0.5).pvalue if k else 1.0
        got = comparisons[f"{model}/arith/ops"]
        assert got["method"] == "mcnemar" and got["n"] == 60
        assert got["p_value"] == pytest.approx(raw[model], rel=1e-9)
    low = min(raw.values())  # Holm over the two models
    first = min(1.0, 2 * low)
    adjusted = {m: first if p == low else min(1.0, max(first, p)) for m, p in raw.items()}
    for model in ("heeds", "noisy"):
        got = comparisons[f"{model}/arith/ops"]["p_adjusted"]
        assert got == pytest.approx(adjusted[model], rel=1e-9)
    assert comparisons["heeds/arith/ops"]["p_adjusted"] < 0.05  # heeds it
    assert comparisons["noisy/arith/ops"]["p_adjusted"] == 1.0  # the same answers
    assert comparisons["heeds/arith/ops"]["details"]["b_only"] > 0


def test_bad_axes_and_prompt_files_are_one_line(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    params = project.root / "params.yaml"
    base = params.read_text()
    axes = "  benchmark: [arith, arith_hard]"
    params.write_text(base.replace(axes, axes + "\n  condition: [a, b]"))
    out = invoke(project, "run", "--dry-run")
    assert out.exit_code == 2 and len(out.output.strip().splitlines()) == 1, out.output
    assert "no 'conditions:' section" in out.output
    params.write_text(base.replace(axes, axes + "\n  Bad-Axis: [a]"))
    out = invoke(project, "run", "--dry-run")
    assert out.exit_code == 2 and "bad axis name 'Bad-Axis'" in out.output
    with_files = base.replace("axes:\n", "axes:\n  prompt_set: [ops]\n")
    params.write_text(with_files + "prompt_sets:\n  ops: {from: files}\n")
    out = invoke(project, "run", "--dry-run")
    assert out.exit_code == 2, out.output
    assert "prompts/ops/system.md is missing" in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_show_md_is_the_aggregate_report_with_the_conditions(ran: Project) -> None:
    from statsmodels.stats.proportion import proportion_confint

    listed = json.loads(invoke(ran, "list", "--json", "-E").stdout)
    (exec_id,) = [r["execution_id"] for r in listed if r["kind"] == "execution"]
    out = invoke(ran, "show", exec_id, "--md")
    assert out.exit_code == 0, out.output
    md = out.stdout
    assert md.startswith(f"## {exec_id}\n")
    trials = [line for line in md.splitlines() if line.startswith("| heeds |")
              or line.startswith("| noisy |")]  # fmt: skip
    assert len(trials) == 4
    (treated,) = [t for t in trials if t.startswith("| heeds | arith | ops | treatment |")]
    right = sum(_correct(ran, "heeds/arith/ops/treatment").values())
    low, high = proportion_confint(right, 60, alpha=0.05, method="wilson")
    assert f"[{low:.4f}, {high:.4f}]" in treated
    assert "- items: 240" in md and "### Conditions" in md
    (effect,) = [line for line in md.splitlines() if "`heeds/arith/ops`" in line]
    assert effect.startswith("| `condition=treatment` |") and effect.endswith("| significant |")
    (none,) = [line for line in md.splitlines() if "`noisy/arith/ops`" in line]
    assert "| 1.000 | 1.000 |  |" in none


def test_compare_sets_the_conditions_side_by_side(ran: Project) -> None:
    out = invoke(ran, "compare", "condition=control", "condition=treatment", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [s["kind"] for s in data["sides"]] == ["slice", "slice"]
    rows = {(r["unit"], r["metric"]): r["values"] for r in data["performance"]}
    for model in ("heeds", "noisy"):
        values = rows[(f"{model}/arith/ops", "accuracy")]
        for condition in ("control", "treatment"):
            right = sum(_correct(ran, f"{model}/arith/ops/{condition}").values())
            got = values[f"condition={condition} at workspace"]
            assert got == pytest.approx(right / 60, abs=1e-6)
    assert data["winner"] == "condition=treatment at workspace"  # over both models' cells
    bad = invoke(ran, "compare", "condition=control", "condition=placebo")
    assert bad.exit_code == 2 and "condition: control, treatment" in bad.output
