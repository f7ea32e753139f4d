"""Outputs that dvc.lock records but the workspace lacks: pull them, do not pay again.

A fresh clone holds the ledger (metrics, scores, dvc.lock) but not the DVC-cached
predictions, so every cell looks stale to ``dvc status`` and would be evaluated again,
spending every model call a second time. When the recorded outputs are in the local
DVC cache, or a DVC remote is configured, ``evalledger run`` restores them instead
(:func:`restore_outputs`: a copy from the cache, as ``dvc checkout`` makes it, or ``dvc
pull`` of those stages) and says how many calls that saved; what neither restores stops
the run with the advice to pull, and ``--force`` evaluates anyway.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalledger.errors import ConfigError
from evalledger.matrix import stage_params

if TYPE_CHECKING:
    from evalledger.matrix import Cell
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = [
    "MissingOutputs",
    "check_pullable",
    "missing_outputs",
    "object_sources",
    "restore_outputs",
]


@dataclass
class MissingOutputs:
    """Cells up to date in dvc.lock whose cached predictions are not in the workspace."""

    cells: list[Cell] = field(default_factory=list)
    in_cache: list[Cell] = field(default_factory=list)
    """Those whose recorded predictions are in the local DVC cache (`dvc checkout`)."""
    remote: str | None = None
    """The default DVC remote, when one is configured (`dvc pull` may fetch them)."""
    on_remote: list[Cell] = field(default_factory=list)
    """Those a folder remote holds (other remotes are not asked: that needs the network)."""
    md5s: dict[str, str] = field(default_factory=dict)
    """Cell key -> the md5 dvc.lock records for its predictions."""
    cache: Path | None = None
    """The local DVC cache folder."""

    @property
    def pullable(self) -> bool:
        """Whether pulling (or checking out) can restore at least one of them."""
        return bool(self.in_cache or self.on_remote or (self.remote and self.cells))


def missing_outputs(project: Project, spec: MatrixSpec, cells: list[Cell]) -> MissingOutputs:
    """The ``cells`` whose only change since dvc.lock is a missing predictions file."""
    from evalledger.execution.pipeline import read_lock

    entries, problem = read_lock(project)
    found = MissingOutputs()
    if problem is not None or not entries:
        return found
    config = _dvc_config(project.root)
    cache = found.cache = _cache_dir(project.root, config)
    remote, remote_dir = _remote(project.root, config)
    found.remote = remote
    for cell in cells:
        md5 = _missing_md5(project, spec, cell, entries.get(cell.stage))
        if md5 is None:
            continue
        found.cells.append(cell)
        found.md5s[cell.key] = md5
        rel = Path("files", "md5", md5[:2], md5[2:])
        if (cache / rel).is_file():
            found.in_cache.append(cell)
        elif remote_dir is not None and (remote_dir / rel).is_file():
            found.on_remote.append(cell)
    return found


def check_pullable(project: Project, spec: MatrixSpec, cells: list[Cell]) -> None:
    """ConfigError when cells would be evaluated again though pulling would restore them."""
    missing = missing_outputs(project, spec, cells)
    if not missing.pullable:
        return
    n = len(missing.cells)
    where = ("are in the local DVC cache" if len(missing.in_cache) == n
             else f"may be on the DVC remote {missing.remote!r}" if missing.remote
             else f"{len(missing.in_cache)} are in the local DVC cache")  # fmt: skip
    keys = ", ".join(c.key for c in missing.cells[:3]) + (", ..." if n > 3 else "")
    raise ConfigError(
        f"{n} cell{'s' if n != 1 else ''} up to date in dvc.lock "
        f"{'lack their' if n != 1 else 'lacks its'} predictions in the workspace ({keys}); "
        f"their outputs {where}",
        "run `evalledger pull` (or `dvc checkout`) first, or `evalledger run --force` to "
        "evaluate them again",
    )


def restore_outputs(project: Project, spec: MatrixSpec, cells: list[Cell]) -> dict[str, int]:
    """Bring back the predictions of ``cells`` that only lack them; key -> items saved.

    From the local DVC cache first, then with ``dvc pull`` of the stages from the
    default remote. A cell counts as restored when its predictions have the md5 that
    dvc.lock records; the others are left as they were.
    """
    import subprocess
    import sys

    from evalledger.atomic import atomic_write
    from evalledger.execution.lockfile import file_md5

    missing = missing_outputs(project, spec, cells)
    if not missing.pullable or missing.cache is None:
        return {}
    cache, wanted = missing.cache, missing.md5s
    for cell in missing.in_cache:
        md5 = wanted[cell.key]
        atomic_write(project.path(cell.predictions_path),
                     (cache / "files" / "md5" / md5[:2] / md5[2:]).read_bytes())  # fmt: skip
    rest = [c for c in missing.cells if c not in missing.in_cache]
    if rest and missing.remote:
        subprocess.run([sys.executable, "-m", "dvc", "pull", "-q", *(c.stage for c in rest)],
                       cwd=project.root, capture_output=True, text=True, check=False)  # fmt: skip
    restored = {}
    for cell in missing.cells:
        path = project.path(cell.predictions_path)
        if path.is_file() and file_md5(path) == wanted[cell.key]:
            metrics = project.path(cell.metrics_path).read_text(encoding="utf-8")
            restored[cell.key] = int(_items_of(metrics))
    return restored


def object_sources(root: Path) -> tuple[Path, str | None, Path | None]:
    """The local DVC cache folder, the default remote's name, and its folder if local.

    A DVC object with md5 ``m`` is ``files/md5/<m[:2]>/<m[2:]>`` below either folder.
    """
    config = _dvc_config(root)
    return (_cache_dir(root, config), *_remote(root, config))


def _items_of(metrics_text: str) -> int:
    import json

    try:
        n = json.loads(metrics_text).get("n")
    except (ValueError, AttributeError):
        return 0
    return n if isinstance(n, int) else 0


def _missing_md5(project: Project, spec: MatrixSpec, cell: Cell, entry: Any) -> str | None:
    """The recorded md5 of a cell's predictions when they alone are missing."""
    if not isinstance(entry, dict) or project.path(cell.predictions_path).exists():
        return None
    params = entry.get("params")
    recorded = params.get("params.yaml") if isinstance(params, dict) else None
    if recorded != stage_params(spec, cell):
        return None  # stale for its params: evaluating again is what is wanted
    outs = {o.get("path"): o.get("md5") for o in entry.get("outs") or [] if isinstance(o, dict)}
    for rel in (cell.metrics_path, cell.scores_path):
        if rel not in outs or not project.path(rel).exists():
            return None
    md5 = outs.get(cell.predictions_path)
    return md5 if isinstance(md5, str) and len(md5) == 32 else None


def _dvc_config(root: Path) -> configparser.ConfigParser:
    """.dvc/config overlaid with config.local (DVC's INI files; unreadable ones skipped)."""
    config = configparser.ConfigParser(interpolation=None, strict=False)
    for name in ("config", "config.local"):
        try:
            config.read(root / ".dvc" / name, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
    return config


def _cache_dir(root: Path, config: configparser.ConfigParser) -> Path:
    configured = config.get("cache", "dir", fallback=None)
    if not configured:
        return root / ".dvc" / "cache"
    path = Path(configured).expanduser()
    return path if path.is_absolute() else (root / ".dvc" / path).resolve()


def _remote(root: Path, config: configparser.ConfigParser) -> tuple[str | None, Path | None]:
    """The default remote's name, and its folder when it is a local one."""
    name = config.get("core", "remote", fallback=None)
    if not name:
        return None, None
    url = config.get(f"'remote \"{name}\"'", "url", fallback=None) or config.get(
        f'remote "{name}"', "url", fallback=None
    )
    if not url or ("://" in url and not url.startswith("file://")):
        return name, None
    path = Path(url.removeprefix("file://")).expanduser()
    return name, path if path.is_absolute() else (root / ".dvc" / path).resolve()
