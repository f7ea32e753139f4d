"""Hostile names and paths: nothing outside the project is written or deleted.

A manifest may come from a collaborator's commit, from ``evalledger import`` or from a
hand edit; a folder in the tree may be a symbolic link that a commit added. Each case
here builds the attack for real and checks that the victim, a file or folder beside the
project, survives byte for byte, and that evalledger answers with one line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from conftest import git, invoke, make_project
from evalledger.project import Project

EXEC_ID = "exec_2026-11-30_120000_0badf00d"


def victims(base: Path) -> Path:
    """A file and a folder named like a cell file, outside the project."""
    victim = base / "victim"
    (victim / "keep.json").parent.mkdir(parents=True, exist_ok=True)
    (victim / "keep.json").write_text('{"precious": true}\n')
    (victim / "dir.json").mkdir(exist_ok=True)
    (victim / "dir.json" / "inside.txt").write_text("precious\n")
    (victim / "arith.json").write_text('{"precious": 2}\n')
    return victim


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def crafted_manifest(axes: dict[str, str], key: str) -> dict[str, Any]:
    return {
        "schema_version": 4,
        "execution_id": EXEC_ID,
        "created_at": "2026-11-30T12:00:00Z",
        "updated_at": "2026-11-30T12:00:00Z",
        "status": "completed",
        "cells": {
            key: {
                "axes": axes,
                "stage": "eval@x",
                "experiment": "x",
                "config_hash": "0" * 16,
                "status": "completed",
            }
        },
    }


def assert_one_line_refusal(result: Result, *needles: str) -> None:
    out = result.output.strip()
    assert result.exit_code == 2, out
    assert len(out.splitlines()) == 1, out
    assert out.startswith("Error: ") and "Traceback" not in out and "internal error" not in out
    for needle in needles:
        assert needle in out, out


HOSTILE = [
    pytest.param({"model": "..", "benchmark": "../victim/keep"}, "../../victim/keep", id="dotdot"),
    pytest.param({"model": "..", "benchmark": "victim"}, "../victim", id="parent"),
    pytest.param({"model": "m`x", "benchmark": "b"}, "m`x/b", id="backtick"),
    pytest.param({"model": "solver\n", "benchmark": "arith"}, "solver\n/arith", id="newline"),
    pytest.param({"model": "/abs", "benchmark": "b"}, "/abs/b", id="absolute"),
]


@pytest.mark.parametrize(("axes", "key"), HOSTILE)
def test_delete_of_a_committed_crafted_manifest_touches_nothing_outside(
    tmp_path: Path, axes: dict[str, str], key: str, reliability: Any
) -> None:
    project = make_project(tmp_path / "proj")
    victim = victims(tmp_path)
    before = fingerprint(victim)
    folder = project.runs_dir / EXEC_ID
    folder.mkdir(parents=True)
    (folder / "manifest.yaml").write_text(yaml.safe_dump(crafted_manifest(axes, key)))
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "a collaborator's crafted manifest")

    result = invoke(project, "delete", EXEC_ID, "--yes")

    survived = fingerprint(victim) == before and (victim / "dir.json").is_dir()
    reliability("traversal", survived and result.exit_code == 2)
    assert survived
    assert_one_line_refusal(result, "manifest")
    assert (folder / "manifest.yaml").exists()  # refused whole, nothing half-deleted


@pytest.mark.parametrize(("axes", "key"), HOSTILE)
def test_import_validates_every_cell_of_every_manifest_it_carries(
    tmp_path: Path, axes: dict[str, str], key: str, reliability: Any
) -> None:
    project = make_project(tmp_path / "proj")
    victim = victims(tmp_path)
    before = fingerprint(victim)
    manifest = crafted_manifest(axes, key)
    # The export lists no files for the hostile cell: only its manifest names it.
    export = {"format": "evalledger-export", "version": 1,
              "executions": [{"manifest": manifest, "cells": {}}]}  # fmt: skip
    source = tmp_path / "export.json"
    source.write_text(json.dumps(export))
    status_before = git(project.root, "status", "--porcelain")

    result = invoke(project, "import", str(source))

    survived = fingerprint(victim) == before
    reliability("traversal", survived and result.exit_code == 2)
    assert survived
    assert_one_line_refusal(result)
    assert not (project.runs_dir / EXEC_ID).exists()
    assert git(project.root, "status", "--porcelain") == status_before


def test_the_export_format_is_the_one_import_reads(tmp_path: Path) -> None:
    # The crafted exports above must fail for their cells, not for their wrapper.
    project = make_project(tmp_path / "proj")
    assert invoke(project, "run").exit_code == 0
    exported = tmp_path / "all.json"
    assert invoke(project, "export", "--all", "-o", str(exported)).exit_code == 0
    data = json.loads(exported.read_text())
    assert (data["format"], data["version"]) == ("evalledger-export", 1)


def test_a_symlinked_model_folder_is_not_written_through(tmp_path: Path, reliability: Any) -> None:
    project = make_project(tmp_path / "proj")
    victim = victims(tmp_path)
    before = fingerprint(victim)
    link = project.metrics_dir / "solver"
    link.symlink_to(victim, target_is_directory=True)

    result = invoke(project, "run", "--models", "solver", "--benchmarks", "arith")

    survived = fingerprint(victim) == before
    reliability("traversal", survived)
    assert survived
    assert result.exit_code != 0
    assert "outside the project" in result.output


def test_delete_refuses_a_cell_behind_a_link_that_leaves_the_project(
    tmp_path: Path, reliability: Any
) -> None:
    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--models", "solver", "--benchmarks", "arith").exit_code == 0
    victim = victims(tmp_path)
    model_dir = project.metrics_dir / "solver"
    for name in ("arith.json", "arith.scores.csv"):
        (model_dir / name).unlink()
    model_dir.rmdir()
    model_dir.symlink_to(victim, target_is_directory=True)  # the victim holds arith.json
    before = fingerprint(victim)
    exec_id = next(p.name for p in project.runs_dir.iterdir() if p.name.startswith("exec_"))

    result = invoke(project, "delete", exec_id, "--yes")

    survived = fingerprint(victim) == before
    reliability("traversal", survived)
    assert survived
    assert_one_line_refusal(result, "outside the project")


def test_delete_never_removes_a_folder_named_like_a_cell_file(
    tmp_path: Path, reliability: Any
) -> None:
    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--models", "solver", "--benchmarks", "arith").exit_code == 0
    exec_id = next(p.name for p in project.runs_dir.iterdir() if p.name.startswith("exec_"))
    cell_file = project.metrics_dir / "solver" / "arith.json"
    cell_file.unlink()
    cell_file.mkdir()  # a folder where the cell's metrics file should be
    (cell_file / "notes.txt").write_text("mine\n")

    result = invoke(project, "delete", exec_id, "--yes")

    kept = (cell_file / "notes.txt").read_text() == "mine\n"
    reliability("traversal", kept)
    assert kept
    assert result.exit_code == 0, result.output
    assert not (project.runs_dir / exec_id).exists()


@pytest.mark.parametrize(
    "value",
    ['"solver\\n"', '"sol`ver"', '"sol/ver"', '".."', '"sol\\tver"', '"sol\\u0000ver"'],
)
def test_params_yaml_refuses_names_that_are_not_names(tmp_path: Path, value: str) -> None:
    project = make_project(tmp_path / "proj")
    text = project.params_path.read_text().replace(
        "model: [solver, noisy, adder]", f"model: [{value}, noisy, adder]"
    )
    project.params_path.write_text(text)
    result = invoke(project, "run")
    assert_one_line_refusal(result, "model name")
    assert not any(p.name.startswith("exec_") for p in project.runs_dir.iterdir())


@pytest.mark.parametrize("name", ["run\n", "a`b", "a/b", "..", "x\x00y", ""])
def test_tracker_names_are_names(project: Project, name: str) -> None:
    from evalledger.errors import EvalLedgerError
    from evalledger.track.tracker import Tracker

    tracker = Tracker(project)
    with pytest.raises(EvalLedgerError, match=r"not allowed|must be"):
        tracker.start_experiment({"lr": 1}, name=name)
    with (
        tracker.experiment({"lr": 1}, name="ok"),
        pytest.raises(EvalLedgerError, match=r"not allowed|must be"),
    ):
        tracker.log_evaluation(name, {"accuracy": 1.0})


@pytest.mark.parametrize(
    ("operands", "metric"),
    [(["../../a", "b"], "accuracy"), (["a", "b"], "../../../escape"), (["a/../../b", "c"], "x`y")],
)
def test_significance_save_keeps_its_file_in_its_folder(
    tmp_path: Path, operands: list[str], metric: str, reliability: Any
) -> None:
    from evalledger.analysis.pairing import SignificanceReport

    metrics_dir = tmp_path / "proj" / "metrics"
    report = SignificanceReport(operands, metric, "bootstrap", 0.05, [])
    path = report.save(metrics_dir)
    inside = path.parent == metrics_dir / "_significance" and path.resolve().is_relative_to(
        metrics_dir.resolve()
    )
    reliability("traversal", inside)
    assert inside, path
    assert "`" not in path.name and "/" not in path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_markdown_spans_and_cells_hold_any_text() -> None:
    from evalledger.analysis.diff import md_code, md_text

    assert md_code("solver/arith") == "`solver/arith`"  # ordinary names render as before
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x") == "`` `x ``"
    assert md_code("a|b\nc") == "`a\\|b c`"
    assert md_text("acc|x`y*") == "acc\\|x\\`y\\*"
    assert md_text("partial_accuracy") == "partial_accuracy"
