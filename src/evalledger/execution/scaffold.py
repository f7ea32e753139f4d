"""``evalledger init``: scaffold an evaluation project."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from evalledger.atomic import atomic_write
from evalledger.errors import ConfigError, EvalLedgerError
from evalledger.execution.launcher import INTERPRETER_FILE, LAUNCHER_TEXT, ensure_launcher
from evalledger.gitinfo import LAUNCHER, git_commit
from evalledger.project import STATE_DIR, Project

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "DEMO_PARAMS",
    "INTERPRETER_FILE",
    "LAUNCHER_TEXT",
    "commit_scaffold",
    "ensure_launcher",
    "init_project",
    "scaffold_paths",
]

#: Where (below the project) the launcher finds the interpreter: git-ignored, per clone.

DEMO_PARAMS = """\
# evalledger parameters: the matrix and every knob.
# Each list under `axes:` is one axis of the matrix; each value names an entry in the
# section of that axis (models:, benchmarks:, prompt_sets:, decodings:). dvc.yaml runs
# one stage per combination, and each stage depends only on its own entries, so
# editing one model re-runs only that model's cells.
axes:
  model: [solver, noisy, adder]
  benchmark: [arith, arith_hard]

models:
  solver:           # parses one-step word problems exactly
    adapter: baseline
    strategy: solver
  noisy:            # the solver with seeded mistakes
    adapter: baseline
    strategy: solver
    error_rate: 0.25
    seed: 7
  adder:            # adds up every number it sees
    adapter: baseline
    strategy: adder

benchmarks:
  arith:
    loader: arith
    n_items: 300
    seed: 1
    difficulty: easy
  arith_hard:
    loader: arith
    n_items: 200
    seed: 2
    difficulty: hard

run:
  jobs: 4           # cells evaluated at once by `evalledger run`
"""

#: The lines of .gitignore that ``init`` makes sure of, each after its comment.
GITIGNORE_LINES = {
    f"/{STATE_DIR}/": "# evalledger local state: run lock, item checkpoints, caches",
    ".*.tmp": "# temp files of a write killed before its rename (removed by the next run)",
}


def _run(cmd: list[str], cwd: Path, name: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise EvalLedgerError(f"{name} is not installed", f"install {name}") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise EvalLedgerError(f"`{name} {' '.join(cmd[-2:])}` failed: {last[-1] if last else ''}")


def _tools_init(root: Path, created: list[str]) -> None:
    """``git init`` and ``dvc init`` where missing; a failure takes back what they made.

    dvc is this interpreter's (``python -m dvc``), never whichever one PATH finds first.
    """
    if importlib.util.find_spec("dvc") is None:
        raise EvalLedgerError(
            f"dvc is not installed for {sys.executable}",
            f"install it into that environment: `{sys.executable} -m pip install dvc`",
        )
    try:
        if not (root / ".git").exists():
            _run(["git", "init", "-q"], root, "git")
            created.append(".git/")
        if not (root / ".dvc").exists():
            _run([sys.executable, "-m", "dvc", "init", "-q"], root, "dvc")
            created.append(".dvc/")
    except BaseException:
        for made in reversed(created):  # only what this init made: nothing half-written
            shutil.rmtree(root / made, ignore_errors=True)
        raise


def init_project(directory: Path, *, force: bool = False) -> tuple[Project, list[str]]:
    """Create params.yaml, dvc.yaml, runs/, metrics/ and .gitignore; git/dvc init if missing.

    Returns the project and the paths created. Existing files are kept unless ``force``.
    Nothing is committed: :func:`commit_scaffold` does that.
    """
    from evalledger.execution.pipeline import sync_dvc_yaml
    from evalledger.params import load_params, parse_spec

    root = directory.resolve()
    root.mkdir(parents=True, exist_ok=True)
    existing = [n for n in ("params.yaml", "dvc.yaml") if (root / n).exists()]
    if existing and not force:
        raise ConfigError(
            f"{root / existing[0]} already exists",
            "pass --force to overwrite it, or edit it by hand",
        )
    created: list[str] = []
    _tools_init(root, created)
    atomic_write(root / "params.yaml", DEMO_PARAMS)
    created.append("params.yaml")
    if force and (root / "dvc.yaml").exists():
        (root / "dvc.yaml").unlink()
    project = Project(root)
    sync_dvc_yaml(project, parse_spec(load_params(project.params_path)))
    created.append("dvc.yaml")
    for folder in ("runs", "metrics"):
        keep = root / folder / ".gitkeep"
        if not keep.exists():
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.touch()
            created.append(f"{folder}/")
    gi = root / ".gitignore"
    current = gi.read_text() if gi.exists() else ""
    present = set(current.splitlines())
    missing = [f"{why}\n{line}\n" for line, why in GITIGNORE_LINES.items() if line not in present]
    if missing:
        atomic_write(gi, current + ("\n" if current and not current.endswith("\n") else "")
                     + "".join(missing))  # fmt: skip
        created.append(".gitignore")
    dvcignore = root / ".dvcignore"
    if not dvcignore.exists():
        # Keeps DVC from walking virtualenvs when it looks for dvc.yaml files.
        atomic_write(dvcignore, ".venv/\nvenv/\nnode_modules/\n")
        created.append(".dvcignore")
    if LAUNCHER not in created:
        created.append(LAUNCHER)  # sync_dvc_yaml wrote it
    return project, created


def commit_scaffold(root: Path) -> str | None:
    """Commit the scaffold's files and nothing else staged; the SHA, None if already in git."""
    return git_commit(root, scaffold_paths(root), "evalledger init: the project scaffold")


def scaffold_paths(root: Path) -> list[str]:
    """The files of an evalledger scaffold, as git should hold them."""
    paths = ["params.yaml", "dvc.yaml", LAUNCHER, ".gitignore", ".dvcignore",
             "runs/.gitkeep", "metrics/.gitkeep", ".dvc/config", ".dvc/.gitignore"]  # fmt: skip
    return [p for p in paths if (root / p).exists()]
