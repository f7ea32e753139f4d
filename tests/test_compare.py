"""`evalledger compare`: executions and revisions side by side, checked against the files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import Result

from conftest import git, invoke, make_project
from evalledger.project import Project

BENCHES = ["arith", "arith_hard"]
CELLS = [f"{m}/{b}" for m in ("solver", "noisy", "adder") for b in BENCHES]


def metrics_at(root: Path, rev: str, key: str) -> dict:
    return json.loads(git(root, "show", f"{rev}:metrics/{key}.json"))


def ws_metrics(root: Path, key: str) -> dict:
    return json.loads((root / f"metrics/{key}.json").read_text())


def as_json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def execution_ids(project: Project) -> list[str]:
    """Oldest first, by creation time (IDs made within one second sort randomly)."""
    rows = as_json(invoke(project, "list", "--json"))
    return [r["execution_id"] for r in sorted(rows, key=lambda r: r["created_at"])]


def check_winner(data: dict, means: dict[str, float]) -> None:
    assert data["means"] == pytest.approx(means)
    best = max(means, key=lambda k: means[k])
    other = min(means, key=lambda k: means[k])
    assert means[best] != means[other]
    assert data["winner"] == best
    assert data["margin"] == pytest.approx(means[best] - means[other])
    assert data["vs_others"] == pytest.approx(means[best] - means[other])


def check_performance(data: dict, values: dict[str, dict[str, float | None]]) -> None:
    """values: unit -> label -> accuracy; best must be the higher side (None on ties)."""
    rows = {p["unit"]: p for p in data["performance"] if p["metric"] == "accuracy"}
    assert set(rows) == set(values)
    for unit, expected in values.items():
        assert rows[unit]["values"] == pytest.approx(expected), unit
        present = {k: v for k, v in expected.items() if v is not None}
        if len(present) < 2 or len(set(present.values())) == 1:
            assert rows[unit]["best"] is None, unit
        else:
            assert rows[unit]["best"] == max(present, key=lambda k: present[k]), unit


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str, str]:
    """A committed run of the matrix, then noisy re-run at error_rate 0.5 and committed."""
    project = make_project(tmp_path_factory.mktemp("cmp") / "proj")
    assert invoke(project, "run", "--commit").exit_code == 0
    result = invoke(project, "run", "-S", "models.noisy.error_rate=0.5", "--commit")
    assert result.exit_code == 0, result.output
    first, second = execution_ids(project)
    return project, first, second


def test_compare_two_executions(swept: tuple[Project, str, str]) -> None:
    project, first, second = swept
    root = project.root
    data = as_json(invoke(project, "compare", first, second, "--json"))
    assert [s["label"] for s in data["sides"]] == [first, second]
    assert [s["kind"] for s in data["sides"]] == ["execution", "execution"]
    assert data["config_differences"] == {"models.noisy.error_rate": {first: 0.3, second: 0.5}}

    # the first execution owns all six cells at HEAD~1; the second only re-ran noisy's
    values: dict[str, dict[str, float | None]] = {}
    for key in CELLS:
        old = metrics_at(root, "HEAD~1", key)["accuracy"]
        new = metrics_at(root, "HEAD", key)["accuracy"] if key.startswith("noisy/") else None
        values[key] = {first: old, second: new}
    check_performance(data, values)

    common = [f"noisy/{b}" for b in BENCHES]
    assert data["common_units"] == len(common)
    means = {
        label: math.fsum(values[k][label] for k in common) / len(common)  # type: ignore[misc]
        for label in (first, second)
    }
    check_winner(data, means)
    assert data["primary_metric"] == "accuracy"


def test_compare_two_revisions(swept: tuple[Project, str, str]) -> None:
    project, _, _ = swept
    root = project.root
    data = as_json(invoke(project, "compare", "HEAD~1", "HEAD", "--json"))
    labels = [s["label"] for s in data["sides"]]
    assert [s["kind"] for s in data["sides"]] == ["revision", "revision"]
    old_sha = git(root, "rev-parse", "HEAD~1").strip()
    assert old_sha[:7] in labels[0]
    assert data["config_differences"] == {
        "models.noisy.error_rate": dict(zip(labels, [0.3, 0.5], strict=True))
    }
    values = {
        key: {labels[0]: metrics_at(root, "HEAD~1", key)["accuracy"],
              labels[1]: metrics_at(root, "HEAD", key)["accuracy"]}
        for key in CELLS
    }  # fmt: skip
    check_performance(data, values)
    assert data["common_units"] == len(CELLS)
    # only noisy was re-run: the verdict is over its cells, the others are left out
    noisy = [f"noisy/{b}" for b in BENCHES]
    assert data["changed_units"] == noisy
    assert set(data["left_out"]) == {"unchanged"}
    assert sorted(data["left_out"]["unchanged"]) == sorted(k for k in CELLS if k not in noisy)
    for key in CELLS:
        if key not in noisy:
            assert values[key][labels[0]] == values[key][labels[1]]
    means = {lab: math.fsum(values[k][lab] for k in noisy) / len(noisy) for lab in labels}
    check_winner(data, means)


def test_compare_one_model_per_side_compares_per_benchmark(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--models", "solver").exit_code == 0
    assert invoke(project, "run", "--models", "noisy").exit_code == 0
    first, second = execution_ids(project)
    data = as_json(invoke(project, "compare", first, second, "--json"))
    assert data["config_differences"] == {}
    values = {
        b: {first: ws_metrics(project.root, f"solver/{b}")["accuracy"],
            second: ws_metrics(project.root, f"noisy/{b}")["accuracy"]}
        for b in BENCHES
    }  # fmt: skip
    check_performance(data, values)
    assert data["common_units"] == len(BENCHES)
    means = {lab: math.fsum(v[lab] for v in values.values()) / len(BENCHES)
             for lab in (first, second)}  # fmt: skip
    check_winner(data, means)
    assert data["winner"] == first  # the exact solver beats the noisy one

    text = invoke(project, "compare", first, second)
    assert text.exit_code == 0, text.output
    assert f"Winner: [1] {first}" in text.stdout


@pytest.mark.parametrize("refs", [("nope_nope", "HEAD"), ("HEAD", "exec_9999")])
def test_compare_unknown_ref_is_a_usage_error(
    swept: tuple[Project, str, str], refs: tuple[str, str]
) -> None:
    project, _, _ = swept
    result = invoke(project, "compare", *refs)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    bad = refs[0] if refs[0] != "HEAD" else refs[1]
    assert bad in lines[0]
    assert result.stdout == ""


# ----------------------------------------------------------------- evalledger.load


def test_load_returns_the_metrics_files_as_a_tidy_frame(tmp_path: Path) -> None:
    import pandas as pd

    import evalledger

    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--commit").exit_code == 0
    result = invoke(project, "run", "-S", "models.noisy.error_rate=0.5")  # not committed
    assert result.exit_code == 0, result.output
    root = project.root
    head = git(root, "rev-parse", "HEAD").strip()

    df = evalledger.load(["HEAD", "workspace"], metrics=["accuracy"], project=root)
    assert list(df.columns) == ["rev", "commit", "cell", "model", "benchmark", "metric", "value"]
    assert len(df) == 2 * len(CELLS)
    assert set(df["metric"]) == {"accuracy"}
    got = {(r.rev, r.cell): r for r in df.itertuples(index=False)}
    head_label = f"HEAD ({head[:7]})"
    assert {rev for rev, _ in got} == {head_label, "workspace"}
    for key in CELLS:
        model, bench = key.split("/")
        at_head, in_ws = got[(head_label, key)], got[("workspace", key)]
        assert at_head.commit == head
        # the docstring says None; pandas 3's string columns hold it as a missing value
        assert pd.isna(in_ws.commit)
        assert (
            (at_head.model, at_head.benchmark) == (model, bench) == (in_ws.model, in_ws.benchmark)
        )
        assert at_head.value == metrics_at(root, "HEAD", key)["accuracy"]
        assert in_ws.value == ws_metrics(root, key)["accuracy"]
    # the uncommitted re-run shows: noisy differs between the revisions, the rest does not
    for key in CELLS:
        same = got[(head_label, key)].value == got[("workspace", key)].value
        assert same == (not key.startswith("noisy/")), key
