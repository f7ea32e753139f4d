from __future__ import annotations

from pathlib import Path

import yaml

from conftest import invoke


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
    assert stage["cmd"] == "evalledger cell model=${item.model} benchmark=${item.benchmark}"
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
