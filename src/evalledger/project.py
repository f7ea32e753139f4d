"""Locating an evalledger project and the paths inside it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from evalledger.errors import NotAProjectError, UnsafePathError

if TYPE_CHECKING:
    from evalledger.manifest import ExecutionManifest
    from evalledger.matrix import Cell
    from evalledger.params import MatrixSpec

__all__ = [
    "PARAMS_DIR",
    "SERIES_DIR",
    "STATE_DIR",
    "SUMMARY_DIR",
    "ExperimentPaths",
    "Project",
    "experiment_paths",
]

#: Local, git-ignored state: run lock, item checkpoints, caches. Safe to delete when idle.
STATE_DIR = ".evalledger"
#: Folder (below ``metrics/``) of tracked experiments' step series, one subfolder per
#: experiment name (``<exp id>`` in ledgers written before stable paths).
SERIES_DIR = "_series"
#: Folder (below ``metrics/``) of each tracked experiment's latest values, ``<name>.json``.
SUMMARY_DIR = "_experiments"
#: Folder (below ``metrics/``) of each tracked experiment's config and params, ``<name>.yaml``.
PARAMS_DIR = "_params"


@dataclass(frozen=True)
class Project:
    """An evalledger project: a DVC repo whose root holds params.yaml and dvc.yaml."""

    root: Path

    @classmethod
    def find(cls, start: Path | str | None = None) -> Project:
        """The project containing ``start`` (default: the current directory).

        A project outside any git repository is refused here, before a command reads or
        runs anything: evalledger's ledger is git history (``GitStateError``, exit 2).
        """
        here = Path(start or Path.cwd()).resolve()
        for cand in (here, *here.parents):
            if (cand / "params.yaml").is_file() and (cand / ".dvc").is_dir():
                from evalledger.gitinfo import not_a_repository_error, repo_state

                if repo_state(cand) == "outside":
                    raise not_a_repository_error(cand)
                return cls(cand)
        raise NotAProjectError(
            f"{here} is not inside an evalledger project (no params.yaml beside a .dvc/ "
            "folder here or above)",
            "run `evalledger init` first, or pass --project DIR",
        )

    @property
    def params_path(self) -> Path:
        """params.yaml: the matrix axes and every knob."""
        return self.root / "params.yaml"

    @property
    def dvc_yaml(self) -> Path:
        """dvc.yaml: the pipeline, one stage per cell."""
        return self.root / "dvc.yaml"

    @property
    def dvc_lock(self) -> Path:
        """dvc.lock: what DVC recorded for each finished stage."""
        return self.root / "dvc.lock"

    @property
    def runs_dir(self) -> Path:
        """runs/: one folder per execution, holding its manifest."""
        return self.root / "runs"

    @property
    def metrics_dir(self) -> Path:
        """metrics/: cell metrics and per-item scores, in git."""
        return self.root / "metrics"

    @property
    def state_dir(self) -> Path:
        """.evalledger/: local, git-ignored state."""
        return self.root / STATE_DIR

    @property
    def run_lock_path(self) -> Path:
        """The lock that lets only one ``evalledger run`` work on the project at a time."""
        return self.state_dir / "run.lock"

    def checkpoint_path(self, cell: Cell, config_hash: str) -> Path:
        """The append-only item log of a cell; outside DVC outputs so repro keeps it."""
        return self.state_dir / "checkpoints" / f"{cell.slug}.{config_hash}.jsonl"

    def path(self, rel: str) -> Path:
        """The absolute path of a project-relative one, refused unless it stays inside.

        Every file evalledger writes or deletes below the root is reached through here:
        an absolute path, a ``..`` part, or a link that resolves outside the project (a
        symlinked ``metrics/<model>`` committed by a collaborator, say) raises
        :class:`UnsafePathError` instead.
        """
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel:
            raise UnsafePathError(
                f"refusing the path {rel!r}: it is not a plain path inside the project",
                "check the manifest or import that named it",
            )
        full = self.root / rel
        # The folder must resolve inside; the last part may itself be a link (DVC's
        # symlink cache type links outputs into a cache that can live elsewhere), which
        # is safe because evalledger replaces (rename) or unlinks it, never writes through.
        folder = full.parent.resolve()
        if not folder.is_relative_to(self._resolved_root):
            raise UnsafePathError(
                f"refusing {rel}: its folder resolves to {folder}, outside the project",
                "remove the symbolic link that leads out of the project",
            )
        return full

    @cached_property
    def _resolved_root(self) -> Path:
        return self.root.resolve()

    @cached_property
    def _spec_cache(self) -> dict[str, MatrixSpec]:
        return {}

    def spec(self, *, reload: bool = False) -> MatrixSpec:
        """The validated matrix defined by params.yaml."""
        from evalledger.params import load_params, parse_spec

        if reload or "spec" not in self._spec_cache:
            self._spec_cache["spec"] = parse_spec(load_params(self.params_path))
        return self._spec_cache["spec"]


@dataclass(frozen=True)
class ExperimentPaths:
    """Where a tracked experiment's series, summary and params (None: before) live."""

    series_dir: Path
    summary_path: Path
    params_path: Path | None

    def relative(self, project: Project) -> list[str]:
        """The project-relative paths, series folder first."""
        paths = [self.series_dir, self.summary_path, self.params_path]
        return [p.relative_to(project.root).as_posix() for p in paths if p is not None]

    def reset(self) -> None:
        """Remove what an earlier run of the same name left (a new run replaces it)."""
        if self.series_dir.is_dir() and not self.series_dir.is_symlink():
            shutil.rmtree(self.series_dir)
        self.summary_path.unlink(missing_ok=True)


def experiment_paths(project: Project, manifest: ExecutionManifest) -> ExperimentPaths:
    """The files of a tracked experiment: by ``outputs`` name, else by ID (older ledgers)."""
    key = manifest.outputs
    metrics = project.metrics_dir
    if key is None:
        exp_id = manifest.execution_id
        return ExperimentPaths(
            metrics / SERIES_DIR / exp_id, metrics / SUMMARY_DIR / f"{exp_id}.json", None
        )
    return ExperimentPaths(
        metrics / SERIES_DIR / key,
        metrics / SUMMARY_DIR / f"{key}.json",
        metrics / PARAMS_DIR / f"{key}.yaml",
    )
