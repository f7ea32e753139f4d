"""What ``evalledger run --commit`` commits: an execution's ledger files and nothing else.

The manifest, dvc.lock, dvc.yaml, params.yaml, each cell's metrics and scores, the
``.dvc`` files of the benchmark data the cells read, init's scaffold while HEAD lacks
it, and the files of cells restored from an earlier execution
(:mod:`evalledger.execution.reuse`). Other staged changes stay staged, out of the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from evalledger.errors import EvalLedgerError
from evalledger.matrix import cell_from_axes

if TYPE_CHECKING:
    from evalledger.execution.plan import RunPlan
    from evalledger.manifest import ExecutionManifest
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = ["commit_into", "commit_reused"]


#: What ``evalledger init`` makes: committed with an execution while HEAD lacks them.
_SCAFFOLD = (".gitignore", ".dvcignore", "runs/.gitkeep", "metrics/.gitkeep",
             ".dvc/config", ".dvc/.gitignore")  # fmt: skip


def _execution_paths(project: Project, manifest: ExecutionManifest) -> list[str]:
    """What an execution adds to git: exactly the ledger's files, nothing else staged.

    The pipeline files (dvc.yaml, dvc.lock, params.yaml and the launcher dvc.yaml
    runs), the manifest folder; per cell its metrics, its scores and the .gitignore DVC
    keeps beside its predictions; the ``.dvc`` files (and their .gitignore) of the
    benchmark data the cells read, so the commit names the data version its results
    came from; and init's files that HEAD does not hold yet.
    """
    from evalledger.gitinfo import LAUNCHER, git

    paths = [f"runs/{manifest.execution_id}", "dvc.lock", "dvc.yaml", "params.yaml", LAUNCHER]
    for rec in manifest.cells.values():
        cell = cell_from_axes(rec.axes)
        folder = cell.predictions_path.rpartition("/")[0]
        paths += [cell.metrics_path, cell.scores_path, f"{folder}/.gitignore"]
    paths += _data_version_files(project, {r.axes.get("benchmark", "") for r in
                                           manifest.cells.values()})  # fmt: skip
    present = [p for p in _SCAFFOLD if (project.root / p).is_file()]
    head = git(project.root, "rev-parse", "-q", "--verify", "HEAD", check=False).strip()
    listed = git(project.root, "ls-tree", "-r", "-z", "--name-only", "HEAD",
                 "--", *present) if present and head else ""  # fmt: skip
    tracked = set(listed.split("\0"))
    paths += [p for p in present if p not in tracked]
    return list(dict.fromkeys(paths))


def _data_version_files(project: Project, benchmarks: set[str]) -> list[str]:
    """The ``.dvc`` files that track these benchmarks' data, each with DVC's .gitignore."""
    from evalledger.execution.cell import cell_benchmark

    try:
        spec = project.spec()
    except EvalLedgerError:
        return []
    found: list[str] = []
    root = project.root.resolve()
    for name in sorted(benchmarks):
        try:
            files = cell_benchmark(project, spec, name).data_files()
        except (EvalLedgerError, OSError):
            continue
        for file in files:
            path = file.resolve()
            while path != root and path.is_relative_to(root):
                dvc_file = path.with_name(path.name + ".dvc")
                if dvc_file.is_file():
                    rel = dvc_file.relative_to(root)
                    found += [rel.as_posix(), (rel.parent / ".gitignore").as_posix()]
                    break
                path = path.parent
    return [p for p in found if (root / p).exists()]


def _commit(
    project: Project, manifest: ExecutionManifest, extra: list[str] | None = None
) -> str | None:
    """Commit the execution's paths and nothing else; None if git already holds them.

    Whatever an earlier, interrupted ``--commit`` staged of them is committed too, and
    an execution whose every cell failed still commits its manifest (the failure
    record). Other staged changes stay staged, out of the commit.
    """
    from evalledger.gitinfo import git_commit

    lines = [f"evalledger: {manifest.execution_id} ({manifest.summary()})", ""]
    for key, rec in manifest.cells.items():
        lines.append(f"- {key}: {rec.status.value}" + (f" ({rec.error})" if rec.error else ""))
    paths = _execution_paths(project, manifest) + (extra or [])
    return git_commit(project.root, list(dict.fromkeys(paths)), "\n".join(lines))


def _reused_paths(spec: MatrixSpec, plan: RunPlan) -> list[str]:
    """What restoring cells from history changed: their metrics and scores, the pipeline."""
    paths = ["dvc.lock", "params.yaml"]
    for key in plan.reused:
        cell = cell_from_axes(dict(zip(spec.axis_names, key.split("/"), strict=True)))
        paths += [cell.metrics_path, cell.scores_path]
    return paths


def commit_reused(project: Project, spec: MatrixSpec, plan: RunPlan) -> str | None:
    """Commit the cells restored from earlier executions (nothing was evaluated)."""
    from evalledger.gitinfo import git_commit

    sources = sorted(set(plan.reused.values()))
    lines = [f"evalledger: restored {len(plan.reused)} cells from {', '.join(sources)}", ""]
    lines += [f"- {key}: restored from {src}" for key, src in plan.reused.items()]
    return git_commit(project.root, _reused_paths(spec, plan), "\n".join(lines))


class _CommitResult(Protocol):
    """The part of a RunResult that committing reads and fills in."""

    plan: RunPlan
    committed: str | None
    message: str | None


def commit_into(
    result: _CommitResult, project: Project, manifest: ExecutionManifest, spec: MatrixSpec | None
) -> None:
    """Commit ``manifest``'s execution (and cells restored from history) into ``result``."""
    extra = _reused_paths(spec, result.plan) if spec is not None and result.plan.reused else None
    result.committed = _commit(project, manifest, extra)
    if result.committed is None:
        note = f"nothing to commit: the files of {manifest.execution_id} are already in git"
        result.message = f"{result.message}\n{note}" if result.message else note
