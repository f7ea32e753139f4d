from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from conftest import git, invoke
from evalledger.errors import EvalLedgerError
from evalledger.execution.scaffold import LAUNCHER_TEXT, init_project


def test_init_creates_a_runnable_project(tmp_path: Path) -> None:
    root = tmp_path / "new"
    result = invoke(tmp_path, "init", str(root))
    assert result.exit_code == 0, result.output
    for rel in (
        "params.yaml",
        "dvc.yaml",
        ".gitignore",
        ".dvcignore",
        "runs/.gitkeep",
        "metrics/.gitkeep",
        ".git/HEAD",
        ".dvc/config",
    ):
        assert (root / rel).exists(), rel
    stage = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["eval"]
    assert stage["matrix"] == {"model": "${axes.model}", "benchmark": "${axes.benchmark}"}
    # The launcher finds this interpreter's evalledger: dvc repro needs no activated venv.
    cmd = "sh .evalledger.sh cell model=${item.model} benchmark=${item.benchmark}"
    assert stage["cmd"] == cmd
    assert (root / ".evalledger.sh").read_text() == LAUNCHER_TEXT
    assert stage["params"] == ["models.${item.model}", "benchmarks.${item.benchmark}"]
    assert "/.evalledger/" in (root / ".gitignore").read_text()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    root = tmp_path / "p"
    assert invoke(tmp_path, "init", str(root)).exit_code == 0
    (root / "params.yaml").write_text("# mine\n")
    result = invoke(tmp_path, "init", str(root))
    assert result.exit_code == 2
    assert "already exists" in result.output and "--force" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (root / "params.yaml").read_text() == "# mine\n"
    forced = invoke(tmp_path, "init", str(root), "--force")
    assert forced.exit_code == 0
    assert "axes:" in (root / "params.yaml").read_text()


def test_init_keeps_existing_gitignore_lines(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / ".gitignore").write_text("data/\n")
    assert invoke(tmp_path, "init", str(root)).exit_code == 0
    text = (root / ".gitignore").read_text()
    assert text.startswith("data/\n") and "/.evalledger/" in text


def test_init_commits_its_files_and_only_them(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    git(root, "init", "-q")
    (root / "mycode.py").write_text("x = 1\n")
    git(root, "add", "mycode.py")
    result = invoke(tmp_path, "init", str(root), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["commit"] == git(root, "rev-parse", "HEAD").strip()
    committed = set(git(root, "ls-tree", "-r", "--name-only", "HEAD").split())
    assert {"params.yaml", "dvc.yaml", ".evalledger.sh", ".gitignore", ".dvcignore",
            "runs/.gitkeep", "metrics/.gitkeep", ".dvc/config"} <= committed  # fmt: skip
    assert "mycode.py" not in committed
    assert git(root, "status", "--porcelain") == "A  mycode.py\n"  # still staged, only that


def test_init_no_commit_says_how_to_commit(tmp_path: Path) -> None:
    root = tmp_path / "p"
    result = invoke(tmp_path, "init", str(root), "--no-commit")
    assert result.exit_code == 0
    assert "not committed (--no-commit); commit it with `git add params.yaml" in result.output
    assert git(root, "rev-list", "--all") == ""


def test_init_without_dvc_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "dvc" else real(name, *a))  # fmt: skip
    root = tmp_path / "p"
    with pytest.raises(EvalLedgerError, match="dvc is not installed for") as err:
        init_project(root)
    assert "-m pip install dvc" in (err.value.hint or "")
    assert list(root.iterdir()) == []  # no .git/ left behind
