"""Deleting an execution from the workspace: its manifest and the cell files it owns."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evalledger.errors import UnknownExecutionError
from evalledger.matrix import cell_from_axes
from evalledger.project import SERIES_DIR, experiment_paths

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger
    from evalledger.manifest import ExecutionManifest

__all__ = ["DeletePlan", "apply_delete", "plan_delete"]


@dataclass
class DeletePlan:
    """What deleting an execution removes."""

    execution_id: str
    paths: list[str]
    """Project-relative files and folders, the manifest's folder first."""
    cells: list[str]
    """Cells whose current results belong to the execution (and go with it)."""
    kind: str = "matrix"
    undeclare: list[str] = field(default_factory=list)
    """Metrics files dvc.yaml's top-level ``metrics:`` lists that go with it (a tracked
    experiment's evaluations), so ``dvc metrics show`` does not look for them."""

    def commit_hint(self) -> str:
        """The git commands that record the deletion."""
        paths = self.paths if len(self.paths) <= 4 else [self.paths[0], "metrics"]
        if self.undeclare:
            paths = [*paths, "dvc.yaml"]
        return f"git add -A -- {' '.join(paths)} && git commit -m 'Delete {self.execution_id}'"


def plan_delete(ledger: Ledger, ref: str) -> DeletePlan:
    """The files an execution has in the workspace: its folder and the cells it owns."""
    info = ledger.find_execution(ref)
    if info.ref is not None:
        raise UnknownExecutionError(
            f"{info.execution_id} is committed on {info.ref}, not in this branch",
            f"check out {info.ref} to delete it there",
        )
    if not info.in_workspace:
        raise UnknownExecutionError(
            f"{info.execution_id} is not in the workspace (it was deleted in a later commit)",
            f"its last version is in commit {info.where.split()[0]}",
        )
    ws = ledger.snapshot()
    owners = ws.owners()
    cells = [k for k, owner in owners.items() if owner == info.execution_id]
    project = ledger.project
    paths = [f"runs/{info.execution_id}"]
    manifest = ledger.manifest(info)
    for key in cells:
        cell = cell_from_axes(manifest.cells[key].axes)
        for rel in (cell.metrics_path, cell.scores_path, cell.predictions_path):
            if project.path(rel).exists():  # checked: a link out of the project is refused
                paths.append(rel)
    undeclare: list[str] = []
    if manifest.kind == "experiment":
        if not _replaced(ws.manifests(skip_damaged=True), manifest):
            for rel in experiment_paths(project, manifest).relative(project):
                if project.path(rel).exists():
                    paths.append(rel)
        undeclare = [f"metrics/{key}.json" for key in cells]
    return DeletePlan(info.execution_id, paths, cells, manifest.kind, undeclare)


def _replaced(manifests: dict[str, ExecutionManifest], manifest: ExecutionManifest) -> bool:
    """Whether a later experiment of the same output name now holds its stable files."""
    key = manifest.outputs
    return key is not None and any(
        m.kind == "experiment" and m.outputs == key and m.created_at > manifest.created_at
        for m in manifests.values()
    )


def apply_delete(ledger: Ledger, plan: DeletePlan) -> None:
    """Remove the planned files (the manifest's folder last, so a crash can be redone)."""
    from evalledger.dvcyaml import undeclare_metrics

    project = ledger.project
    root = project.root
    folders = {plan.paths[0]}
    folders.update(p for p in plan.paths if p.startswith(f"metrics/{SERIES_DIR}/"))
    for rel in plan.paths[1:]:
        target = project.path(rel)  # checked again: the tree may have changed since the plan
        if rel in folders:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
        elif target.is_file() or target.is_symlink():
            target.unlink(missing_ok=True)  # a cell file, never a folder of that name
    tops = (root / "metrics", root / "predictions")
    for rel in plan.paths[1:]:  # a model's folder the execution emptied goes too
        parent = (root / rel).parent
        # Not metrics/_series, _experiments, _params: dvc.yaml declares those folders.
        reserved = parent.parent not in tops or parent.name.startswith("_")
        if not reserved and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    if plan.undeclare:
        undeclare_metrics(ledger.project, plan.undeclare)
    run_folder = project.path(plan.paths[0])
    if not run_folder.is_symlink():
        shutil.rmtree(run_folder, ignore_errors=True)
