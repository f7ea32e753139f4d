"""A tracked experiment's manifest: how it starts, and how its files join a DVC experiment."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from evalledger.errors import EvalLedgerError
from evalledger.manifest import ExecutionManifest, GitState, Provenance, utcnow
from evalledger.redact import redact

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.project import Project

__all__ = ["new_experiment_manifest", "stage_for_dvc_experiment"]


def new_experiment_manifest(
    project: Project, exp_id: str, name: str, notes: str | None, config: dict[str, Any]
) -> ExecutionManifest:
    """The manifest of an experiment starting now: its redacted config, git state, provenance."""
    root = project.root
    now = utcnow()
    return ExecutionManifest(
        execution_id=exp_id, created_at=now, updated_at=now, kind="experiment",
        name=name, notes=notes, command=redact(list(sys.argv)), config=config,
        git=_git(root), provenance=_provenance(root),
    )  # fmt: skip


def _provenance(root: Path) -> Provenance:
    from evalledger.provenance import capture_provenance

    prov = capture_provenance(root)
    prov.env = redact(prov.env)  # a second guard: nothing secret leaves the process
    return prov


def _git(root: Path) -> GitState:
    from evalledger.gitinfo import code_hash, git_state

    try:
        state = git_state(root)  # with diff_hash when tracked files changed
        state.code_hash = code_hash(root)
    except EvalLedgerError:  # git is not installed
        return GitState()
    return state


def stage_for_dvc_experiment(project: Project, manifest: ExecutionManifest) -> None:
    """Under ``dvc exp run``, stage the files DVC would otherwise leave out.

    DVC commits an experiment's tracked files and declared outputs only; the manifest,
    evaluation cells, series, summary and params file are new files, so they are added
    to git's index here.
    """
    from evalledger.track.series import experiment_paths

    if "DVC_EXP_BASELINE_REV" not in os.environ:
        return
    paths = [f"runs/{manifest.execution_id}/manifest.yaml"]
    paths += experiment_paths(project, manifest).relative(project)
    for key in manifest.cells:
        paths += [f"metrics/{key}.json", f"metrics/{key}.scores.csv"]
    existing = [p for p in paths if (project.root / p).exists()]
    subprocess.run(["git", "add", "--", *existing], cwd=project.root,
                   capture_output=True, check=False)  # fmt: skip
