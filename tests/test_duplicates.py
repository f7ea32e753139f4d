"""Duplicate evaluations: the warning of `evalledger run` and `evalledger list --duplicates`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from conftest import git, invoke, make_project
from evalledger.project import Project

CELLS = [f"{m}/{b}" for m in ("solver", "noisy", "adder") for b in ("arith", "arith_hard")]
NOISY = [k for k in CELLS if k.startswith("noisy/")]


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def run(project: Project, *args: str) -> tuple[str, Result]:
    """`evalledger run ARGS --commit`; the new execution's ID and the result."""
    result = invoke(project, "run", *args, "--commit")
    assert result.exit_code == 0, result.output
    found = re.search(r"running (exec_\S+):", result.stdout)
    assert found, result.output
    return found.group(1), result


def duplicates(project: Project) -> dict[str, list[str]]:
    groups = as_json(invoke(project, "list", "--duplicates", "--json"))
    assert len({g["cell"] for g in groups}) == len(groups), groups  # one group per cell here
    return {g["cell"]: g["executions"] for g in groups}


def warning(result: Result) -> str | None:
    lines = [line for line in result.stderr.splitlines() if "already evaluated" in line]
    assert len(lines) <= 1
    return lines[0] if lines else None


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four committed executions: first; the same again; noisy changed; code changed."""
    project = make_project(tmp_path_factory.mktemp("dups") / "proj")
    out: dict[str, Any] = {"project": project}
    out["first"], out["first_result"] = run(project)
    out["dups_after_first"] = duplicates(project)
    out["second"], out["second_result"] = run(project, "--force")
    out["dups_after_second"] = duplicates(project)
    out["third"], out["third_result"] = run(project, "--force", "-S", "models.noisy.error_rate=0.5")
    out["dups_after_third"] = duplicates(project)
    (project.root / "src_code.py").write_text("def helper():\n    return 42\n")
    git(project.root, "add", "src_code.py")
    git(project.root, "commit", "-qm", "code change")
    out["fourth"], out["fourth_result"] = run(project, "--force")
    out["dups_after_fourth"] = duplicates(project)
    return out


def test_first_run_has_no_duplicates(history: dict[str, Any]) -> None:
    assert warning(history["first_result"]) is None
    assert history["dups_after_first"] == {}
    table = invoke(history["project"], "list", "--duplicates")  # the history's end state
    assert table.exit_code == 0
    assert history["first"] in table.stdout and "solver/arith" in table.stdout


def test_identical_rerun_warns_and_is_listed(history: dict[str, Any]) -> None:
    first, second = history["first"], history["second"]
    line = warning(history["second_result"])
    assert line is not None, history["second_result"].output
    assert first in line
    assert "6 cell(s)" in line
    assert "evalledger list --duplicates" in line
    assert history["dups_after_second"] == {key: [first, second] for key in CELLS}


def test_changed_model_cells_are_not_duplicates(history: dict[str, Any]) -> None:
    first, second, third = history["first"], history["second"], history["third"]
    line = warning(history["third_result"])
    assert line is not None
    assert "4 cell(s)" in line  # solver's and adder's, not noisy's
    expected = {key: [first, second] for key in NOISY}
    expected.update({key: [first, second, third] for key in CELLS if key not in NOISY})
    assert history["dups_after_third"] == expected


def test_code_change_makes_the_same_config_new(history: dict[str, Any]) -> None:
    fourth = history["fourth"]
    assert warning(history["fourth_result"]) is None, history["fourth_result"].stderr
    assert history["dups_after_fourth"] == history["dups_after_third"]
    assert all(fourth not in runs for runs in history["dups_after_fourth"].values())


def test_uncommitted_code_edit_counts_too(tmp_path: Path) -> None:
    """An untracked code file changes the code as much as a committed one."""
    project = make_project(tmp_path / "proj")
    first, _ = run(project, "--models", "solver")
    (project.root / "src_code.py").write_text("X = 1\n")
    _, result = run(project, "--models", "solver", "--force")
    assert warning(result) is None
    assert duplicates(project) == {}
    # the same (still untracked) code again: a duplicate of the run that had it
    third, result = run(project, "--models", "solver", "--force")
    line = warning(result)
    assert line is not None and first not in line
    assert set(duplicates(project)) == {"solver/arith", "solver/arith_hard"}
    assert all(runs[-1] == third and first not in runs for runs in duplicates(project).values())


def test_runs_are_listed_oldest_first_within_one_second(tmp_path: Path) -> None:
    """IDs carry the second and a random suffix: two runs in one second sort randomly.

    An identical run is made (through export/import) whose ID sorts before the
    original's although it was created later within the same second.
    """
    project = make_project(tmp_path / "proj")
    original, _ = run(project, "--models", "solver")
    export = as_json(invoke(project, "export", original))
    entry = export["executions"][0]
    manifest = entry["manifest"]
    stamp = original.rsplit("_", 1)[0]
    later = f"{stamp}_00000000"
    assert later < original
    manifest["execution_id"] = later
    for key in ("created_at", "updated_at"):
        manifest[key] = _later_in_same_second(manifest[key])
    for cell in manifest["cells"].values():
        for key in ("started_at", "finished_at"):
            if cell.get(key):
                cell[key] = _later_in_same_second(cell[key])
    path = tmp_path / "later.json"
    path.write_text(json.dumps(export))
    result = invoke(project, "import", str(path), "--force")
    assert result.exit_code == 0, result.output
    expected = {k: [original, later] for k in ("solver/arith", "solver/arith_hard")}
    assert duplicates(project) == expected


def _later_in_same_second(stamp: str) -> str:
    from datetime import datetime

    value = datetime.fromisoformat(stamp)
    assert value.microsecond < 999_999
    return value.replace(microsecond=999_999).isoformat()
