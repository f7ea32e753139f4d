"""`evalledger export` / `evalledger import`: round trips, refusals, and atomicity."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import git, invoke, make_project
from evalledger.cli import cli
from evalledger.ledger.history import Ledger
from evalledger.project import Project

BENCHES = ["arith", "arith_hard"]
CELLS = [f"{m}/{b}" for m in ("solver", "noisy", "adder") for b in BENCHES]


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the project but git's own, by content."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def cell_board(project: Project, rev: str | None = None) -> list[dict]:
    args = ["leaderboard", "--by", "cell", "--json"] + (["--rev", rev] if rev else [])
    return as_json(invoke(project, *args))["entries"]


def manifest_dump(project: Project, exec_id: str) -> dict:
    with Ledger(project) as ledger:
        return ledger.manifest(ledger.find_execution(exec_id)).model_dump()


def assert_one_line_usage_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str, str]:
    """Execution A (all six cells, committed), then B (noisy re-run at 0.5, committed)."""
    project = make_project(tmp_path_factory.mktemp("export") / "src")
    assert invoke(project, "run", "--commit").exit_code == 0
    time.sleep(1.05)  # execution IDs have one-second resolution: keep A < B
    result = invoke(project, "run", "-S", "models.noisy.error_rate=0.5", "--commit")
    assert result.exit_code == 0, result.output
    rows = as_json(invoke(project, "list", "--json"))
    first, second = (r["execution_id"] for r in sorted(rows, key=lambda r: r["created_at"]))
    return project, first, second


@pytest.fixture(scope="module")
def all_export(source: tuple[Project, str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    project, _, _ = source
    out = tmp_path_factory.mktemp("exports") / "all.json"
    result = invoke(project, "export", "--all", "-o", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_export_one_execution_and_import_it(
    source: tuple[Project, str, str], tmp_path: Path
) -> None:
    project, first, _ = source
    out = tmp_path / "one.json"
    result = invoke(project, "export", first, "-o", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["format"] == "evalledger-export"
    assert [e["manifest"]["execution_id"] for e in data["executions"]] == [first]
    assert sorted(data["executions"][0]["cells"]) == sorted(CELLS)
    # stdout export is the same document
    assert as_json(invoke(project, "export", first))["executions"] == data["executions"]

    target = make_project(tmp_path / "dst")
    result = invoke(target, "import", str(out))
    assert result.exit_code == 0, result.output
    # A's results are what HEAD~1 holds (B later re-ran noisy)
    assert cell_board(target) == cell_board(project, "HEAD~1")
    for key in CELLS:
        assert (target.root / f"metrics/{key}.scores.csv").read_text() == git(
            project.root, "show", f"HEAD~1:metrics/{key}.scores.csv")  # fmt: skip
        assert json.loads((target.root / f"metrics/{key}.json").read_text()) == json.loads(
            git(project.root, "show", f"HEAD~1:metrics/{key}.json"))  # fmt: skip
    assert manifest_dump(target, first) == manifest_dump(project, first)


def test_export_all_imports_into_a_fresh_project_as_the_source(
    source: tuple[Project, str, str], all_export: Path, tmp_path: Path
) -> None:
    """The newest execution's results must win in a fresh project, as in the source.

    Both executions of the export write noisy's cells; the older one comes first, and
    its files must not make the import keep them instead of the newer execution's.
    """
    project, first, second = source
    data = json.loads(all_export.read_text())
    assert [e["manifest"]["execution_id"] for e in data["executions"]] == [first, second]
    target = make_project(tmp_path / "dst")
    result = invoke(target, "import", str(all_export))
    assert result.exit_code == 0, result.output
    for exec_id in (first, second):
        assert manifest_dump(target, exec_id) == manifest_dump(project, exec_id)
    for key in CELLS:
        assert (target.root / f"metrics/{key}.json").read_text() == (
            project.root / f"metrics/{key}.json").read_text(), key  # fmt: skip
    assert cell_board(target) == cell_board(project)


@pytest.fixture(scope="module")
def imported(all_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A fresh project holding an import of every execution (never changed after)."""
    target = make_project(tmp_path_factory.mktemp("imported") / "dst")
    result = invoke(target, "import", str(all_export))
    assert result.exit_code == 0, result.output
    return target


def test_reimport_without_force_changes_nothing(all_export: Path, imported: Project) -> None:
    before = snapshot(imported.root)
    result = invoke(imported, "import", str(all_export))
    assert_one_line_usage_error(result, "already exists", "--force")
    assert snapshot(imported.root) == before


def test_force_overwrites(source: tuple[Project, str, str], tmp_path: Path) -> None:
    project, first, _ = source
    out = tmp_path / "one.json"
    assert invoke(project, "export", first, "-o", str(out)).exit_code == 0
    exported = json.loads(out.read_text())["executions"][0]
    target = make_project(tmp_path / "dst")
    assert invoke(target, "import", str(out)).exit_code == 0
    metrics = target.root / "metrics/solver/arith.json"
    scores = target.root / "metrics/solver/arith.scores.csv"
    manifest = target.root / f"runs/{first}/manifest.yaml"
    original_manifest = manifest.read_bytes()
    metrics.write_text('{"accuracy": 0.0}\n')
    scores.write_text("tampered\n")
    manifest.write_text("tampered: true\n")
    result = invoke(target, "import", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(metrics.read_text()) == exported["cells"]["solver/arith"]["metrics"]
    assert scores.read_text() == exported["cells"]["solver/arith"]["scores_csv"]
    assert manifest.read_bytes() == original_manifest
    assert manifest_dump(target, first) == manifest_dump(project, first)


def _corrupt(kind: str, data: dict) -> str:
    data = copy.deepcopy(data)
    if kind == "bad_json":
        return json.dumps(data)[:-40]
    if kind == "deep_json":
        return "[" * 100_000 + "]" * 100_000
    if kind == "truncated_scores":
        cell = data["executions"][0]["cells"]["solver/arith"]
        cell["scores_csv"] = "\n".join(cell["scores_csv"].splitlines()[:5]) + "\n"
    if kind == "wrong_format":
        data["format"] = "something-else"
    elif kind == "wrong_version":
        data["version"] = 99
    elif kind == "schema_version":
        data["executions"][-1]["manifest"]["schema_version"] = 99
    elif kind == "foreign_cell":
        # the last execution (noisy only) claims a solver cell: the first stays valid,
        # so a writer that checks as it goes would already have written it
        cells = data["executions"][-1]["cells"]
        cells["solver/arith"] = copy.deepcopy(data["executions"][0]["cells"]["solver/arith"])
    elif kind == "unknown_cell":
        cells = data["executions"][-1]["cells"]
        cells["nosuch/arith"] = copy.deepcopy(next(iter(cells.values())))
    elif kind == "no_metrics":
        next(iter(data["executions"][-1]["cells"].values()))["metrics"] = [1, 2]
    return json.dumps(data)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("bad_json", "invalid JSON"),
        ("wrong_format", "not an evalledger export"),
        ("wrong_version", "99"),
        ("schema_version", "schema_version 99"),
        ("foreign_cell", "solver/arith"),
        ("unknown_cell", "nosuch/arith"),
        ("no_metrics", "metrics"),
        ("deep_json", "deeper than"),
        ("truncated_scores", "item rows"),
    ],
)
def test_corrupted_export_writes_nothing(
    all_export: Path, imported: Project, tmp_path: Path, kind: str, needle: str
) -> None:
    target = imported
    bad = tmp_path / "bad.json"
    bad.write_text(_corrupt(kind, json.loads(all_export.read_text())))
    before = snapshot(target.root)
    assert_one_line_usage_error(invoke(target, "import", str(bad)), needle)
    assert snapshot(target.root) == before
    # --force checks the file just the same
    assert_one_line_usage_error(invoke(target, "import", str(bad), "--force"), needle)
    assert snapshot(target.root) == before


def test_export_unknown_id_is_a_usage_error(source: tuple[Project, str, str]) -> None:
    project, _, _ = source
    assert_one_line_usage_error(invoke(project, "export", "exec_nope"), "exec_nope")


# ------------------------------------------------------------------------ delete


def owned_files(root: Path, cells: list[str]) -> list[Path]:
    files = []
    for key in cells:
        files += [root / f"metrics/{key}.json", root / f"metrics/{key}.scores.csv",
                  root / f"predictions/{key}.jsonl"]  # fmt: skip
    return files


@pytest.fixture
def superseded(tmp_path: Path) -> tuple[Project, str, str]:
    """A runs every cell; B re-runs noisy's cells (--force), so A still owns four."""
    project = make_project(tmp_path / "proj")
    assert invoke(project, "run").exit_code == 0
    assert invoke(project, "run", "--models", "noisy", "--force").exit_code == 0
    rows = as_json(invoke(project, "list", "--json"))
    first, second = (r["execution_id"] for r in sorted(rows, key=lambda r: r["created_at"]))
    return project, first, second


def test_delete_removes_only_what_the_execution_still_owns(
    superseded: tuple[Project, str, str],
) -> None:
    project, first, second = superseded
    root = project.root
    noisy = [f"noisy/{b}" for b in BENCHES]
    others = [k for k in CELLS if k not in noisy]
    assert all(p.exists() for p in owned_files(root, CELLS))
    noisy_before = {p: p.read_bytes() for p in owned_files(root, noisy)}

    result = invoke(project, "delete", first, "--yes")
    assert result.exit_code == 0, result.output
    assert not (root / "runs" / first).exists()
    assert (root / "runs" / second / "manifest.yaml").exists()
    assert not any(p.exists() for p in owned_files(root, others))
    assert {p: p.read_bytes() for p in owned_files(root, noisy)} == noisy_before
    listed = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    expected = {f"runs/{first}", *(str(p.relative_to(root)) for p in owned_files(root, others))}
    assert set(listed) == expected
    # the ledger agrees: only B's noisy cells remain, B still shows its results
    board = as_json(invoke(project, "leaderboard", "--by", "cell", "--json"))["entries"]
    assert sorted(e["name"] for e in board) == sorted(noisy)
    shown = as_json(invoke(project, "show", second, "--json"))
    assert all(shown["results"][k] is not None for k in noisy)


def test_delete_declined_removes_nothing(superseded: tuple[Project, str, str]) -> None:
    project, first, _ = superseded
    before = snapshot(project.root)
    result = CliRunner().invoke(cli, ["-C", str(project.root), "delete", first], input="n\n")
    assert result.exit_code != 0
    assert "Delete these files?" in result.output
    assert snapshot(project.root) == before


def test_delete_of_an_execution_only_in_history_is_a_usage_error(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    (exec_id,) = (r["execution_id"] for r in as_json(invoke(project, "list", "--json")))
    assert invoke(project, "delete", exec_id, "--yes").exit_code == 0
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "delete it")
    before = snapshot(project.root)
    result = invoke(project, "delete", exec_id, "--yes")
    assert_one_line_usage_error(result, exec_id, "not in the workspace")
    assert snapshot(project.root) == before
    assert_one_line_usage_error(invoke(project, "delete", "exec_nope", "--yes"), "exec_nope")


def test_import_refuses_cell_keys_that_leave_metrics(
    all_export: Path, imported: Project, tmp_path: Path
) -> None:
    """A crafted export whose cell axes are `..` must not write outside metrics/."""
    data = json.loads(all_export.read_text())
    entry = data["executions"][-1]
    key = "../../escaped"
    rec = copy.deepcopy(next(iter(entry["manifest"]["cells"].values())))
    rec["axes"] = {"model": "..", "benchmark": "..", "prompt_set": "escaped"}
    entry["manifest"]["cells"][key] = rec
    entry["cells"][key] = copy.deepcopy(next(iter(entry["cells"].values())))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    before = snapshot(imported.root)
    result = invoke(imported, "import", str(bad), "--force")
    outside = imported.root.parent / "escaped.json"
    try:
        assert not outside.exists(), "import wrote outside the project"
        assert_one_line_usage_error(result, key)
        assert snapshot(imported.root) == before
    finally:
        outside.unlink(missing_ok=True)
        (imported.root.parent / "escaped.scores.csv").unlink(missing_ok=True)
