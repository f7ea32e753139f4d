"""Shell completion: execution IDs, axis values (models, benchmarks...), metrics, revisions.

Each function runs on every TAB press, so it stays cheap: it lists folders and reads one
small JSON file of the workspace, and asks git for its refs; it imports no pandas, dvc
or YAML parser and never fails (a broken project completes nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = [
    "complete_axis",
    "complete_execution",
    "complete_metric",
    "complete_operand",
    "complete_rev_or_execution",
    "complete_revision",
    "project_root",
]

Completer = Callable[[click.Context, click.Parameter, str], list[str]]

#: Metrics every cell has: offered before any cell exists.
_METRICS = ("accuracy", "mean_score", "partial_accuracy", "format_accuracy", "error_rate",
            "errors", "cost", "latency_ms.p50")  # fmt: skip
_MAX_METRIC_FILES = 3


def project_root(ctx: click.Context) -> Path | None:
    """The project of ``--project`` (or the current folder): params.yaml beside .dvc/."""
    root = ctx.find_root()
    given = root.params.get("project_dir") or (root.obj or {}).get("project_dir")
    try:
        here = Path(given or Path.cwd()).resolve()
    except OSError:
        return None
    for cand in (here, *here.parents):
        if (cand / "params.yaml").is_file() and (cand / ".dvc").is_dir():
            return cand
    return None


def _matching(candidates: list[str], incomplete: str) -> list[str]:
    return [c for c in dict.fromkeys(candidates) if c.startswith(incomplete)]


def _execution_ids(root: Path) -> list[str]:
    runs = root / "runs"
    try:
        return sorted((p.name for p in runs.iterdir() if p.is_dir()), reverse=True)
    except OSError:
        return []


def complete_execution(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Execution IDs of the workspace, newest first (any part matches, as the CLI takes)."""
    root = project_root(ctx)
    ids = _execution_ids(root) if root else []
    starts = _matching(ids, incomplete)
    return starts or [i for i in ids if incomplete in i]


def _cell_keys(root: Path) -> list[tuple[str, ...]]:
    metrics = root / "metrics"
    keys = []
    for path in sorted(metrics.glob("**/*.json")) if metrics.is_dir() else []:
        parts = path.relative_to(metrics).parts
        parts = (*parts[:-1], parts[-1][: -len(".json")])
        if parts and not parts[0].startswith("_") and len(parts) >= 2:
            keys.append(parts)
    return keys


def complete_axis(axis: str) -> Completer:
    """Values of one axis (``model``, ``benchmark``...) for a comma-separated option.

    Taken from the cells in ``metrics/`` (model/benchmark/... by position) and from the
    flow-style ``axes:`` lines of params.yaml; the part after the last comma completes.
    """
    position = {"model": 0, "benchmark": 1}.get(axis)

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        root = project_root(ctx)
        if root is None:
            return []
        values = _axes_in_params(root).get(axis, [])
        if position is not None:
            values += [k[position] for k in _cell_keys(root)]
        head, _, last = incomplete.rpartition(",")
        prefix = f"{head}," if head else ""
        taken = set(head.split(",")) if head else set()
        return [prefix + v for v in _matching(values, last) if v not in taken]

    return complete


def _axes_in_params(root: Path) -> dict[str, list[str]]:
    """``axis: [a, b]`` lines under ``axes:`` in params.yaml, read without a YAML parser."""
    found: dict[str, list[str]] = {}
    try:
        lines = (root / "params.yaml").read_text(errors="replace").splitlines()
    except OSError:
        return found
    inside = False
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            inside = line.split("#")[0].strip() == "axes:"
            continue
        key, sep, value = line.strip().partition(":")
        value = value.split("#")[0].strip()
        if inside and sep and value.startswith("[") and value.endswith("]"):
            found[key.strip()] = [v.strip().strip("'\"") for v in value[1:-1].split(",")]
    return found


def _flat_keys(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict):
        return []
    keys = []
    for key, value in data.items():
        if isinstance(value, dict):
            keys += _flat_keys(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            keys.append(f"{prefix}{key}")
    return keys


def complete_metric(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Metric names (dotted paths) from a few of the workspace's cell metrics files."""
    root = project_root(ctx)
    names = list(_METRICS)
    for parts in _cell_keys(root)[:_MAX_METRIC_FILES] if root else []:
        path = root.joinpath("metrics", *parts[:-1], parts[-1] + ".json")  # type: ignore[union-attr]
        try:
            names += _flat_keys(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return _matching(names, incomplete)


def _git_refs(root: Path) -> list[str]:
    import subprocess  # here: only completing a revision runs git

    try:
        proc = subprocess.run(
            ["git", "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags",
             "refs/remotes", "refs/exps"],
            cwd=root, capture_output=True, text=True, timeout=2, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    refs = []
    for ref in proc.stdout.split():
        parts = ref.split("/")
        if parts[1] == "exps":  # refs/exps/<xx>/<baseline>/<name>: the name is the rev
            refs.append(parts[-1])
        elif len(parts) > 2:
            refs.append("/".join(parts[2:]))
    return refs


def complete_revision(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Revisions: HEAD, workspace, branches, tags, remote branches, DVC experiment names."""
    root = project_root(ctx)
    refs = ["HEAD", "HEAD~1", "workspace", *(_git_refs(root) if root else [])]
    return _matching(refs, incomplete)


def complete_rev_or_execution(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[str]:
    """Revisions and execution IDs (for commands that take either)."""
    root = project_root(ctx)
    ids = _execution_ids(root) if root else []
    return complete_revision(ctx, param, incomplete) + _matching(ids, incomplete)


def complete_operand(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Models, revisions and execution IDs (the operands of ``significance``)."""
    models = complete_axis("model")(ctx, param, incomplete)
    return [*models, *complete_rev_or_execution(ctx, param, incomplete)]
