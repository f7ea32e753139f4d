"""The console scripts called by path, with no virtualenv on PATH (the README's own style).

`init` must find dvc through the running interpreter, and dvc.yaml's cmd must find
evalledger when `<venv>/bin/dvc repro` runs it through the shell with that same PATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git

BIN = Path(sys.executable).parent


def _bare_env() -> dict[str, str]:
    """os.environ with every folder holding an evalledger or dvc script taken off PATH."""
    keep = [
        p for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and not (Path(p) / "evalledger").exists() and not (Path(p) / "dvc").exists()
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(keep or ["/usr/bin", "/bin"])
    return env


def _run(cwd: Path, *cmd: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_bare_env(), text=True,
                          capture_output=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.skipif(not (BIN / "evalledger").exists(), reason="no console script installed")
def test_init_run_and_dvc_repro_by_path_without_a_venv_on_path(tmp_path: Path) -> None:
    env = _bare_env()
    assert subprocess.run(["sh", "-c", "command -v evalledger || command -v dvc"],
                          env=env, capture_output=True).returncode != 0  # fmt: skip
    _run(tmp_path, BIN / "evalledger", "init", "newp")
    root = tmp_path / "newp"
    assert (root / ".git").is_dir() and (root / ".dvc").is_dir()
    assert git(root, "status", "--porcelain") == ""  # init committed everything it made
    _run(root, BIN / "evalledger", "run", "--models", "solver", "--commit")
    assert git(root, "status", "--porcelain") == ""  # ...and so did run --commit
    # The other cells by DVC alone, through dvc.yaml's cmd and the same bare PATH.
    repro = _run(root, BIN / "dvc", "repro")
    assert "sh .evalledger.sh cell model=adder benchmark=arith" in repro.stdout
    assert (root / "metrics" / "adder" / "arith.json").is_file()
    status = _run(root, sys.executable, "-m", "dvc", "status")
    assert "up to date" in status.stdout
    # Evalledger agrees that DVC's cells are fresh: nothing is left to evaluate.
    again = _run(root, BIN / "evalledger", "run")
    assert "up to date" in again.stdout


def test_launcher_without_an_interpreter_or_path_says_what_to_do(tmp_path: Path) -> None:
    from evalledger.execution.scaffold import LAUNCHER_TEXT

    (tmp_path / ".evalledger.sh").write_text(LAUNCHER_TEXT)
    proc = subprocess.run(["sh", ".evalledger.sh", "cell", "model=a"], cwd=tmp_path,
                          env=_bare_env(), capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 127
    assert proc.stderr.count("\n") == 1
    assert "evalledger: not found" in proc.stderr and "evalledger run here once" in proc.stderr
