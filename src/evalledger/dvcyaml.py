"""dvc.yaml as a round-trip document: load, write atomically, and edit under one lock.

evalledger writes dvc.yaml from several places (the matrix stage, the Tracker's plots
and metrics declarations, delete). All of them go through here, so comments, order and
the user's own stages survive, and concurrent writers never lose each other's edits.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write, locked_file
from evalledger.errors import ConfigError, CorruptFileError
from evalledger.params import axis_section

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from evalledger.project import Project

__all__ = [
    "edit_dvc_yaml",
    "load_dvc_yaml",
    "render_stage",
    "top_level_list",
    "undeclare_metrics",
    "write_dvc_yaml",
]


def _yaml_rt() -> Any:
    from ruamel.yaml import YAML

    y = YAML()
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    return y


def load_dvc_yaml(project: Project) -> Any:
    """dvc.yaml as a round-trip document (comments and order kept); {} when absent.

    The safe loader checks it first (size, UTF-8, no aliases, bounded depth), so ruamel
    only ever parses text that cannot expand or recurse without bound.
    """
    from evalledger.safeload import MAX_DVC_YAML_BYTES, load_yaml, read_bounded

    hint = "restore it with `git checkout -- dvc.yaml`, or fix it by hand"
    doc: Any = None
    try:
        data = read_bounded(project.dvc_yaml, MAX_DVC_YAML_BYTES, "dvc.yaml")
    except FileNotFoundError:
        data = None
    if data is not None:
        load_yaml(data, "dvc.yaml", max_bytes=MAX_DVC_YAML_BYTES, hint=hint)
        try:
            doc = _yaml_rt().load(data.decode("utf-8"))
        except Exception as exc:  # what ruamel refuses beyond the safe loader: one line
            raise CorruptFileError(
                f"invalid YAML in dvc.yaml: {str(exc).splitlines()[0]}", hint
            ) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise CorruptFileError(f"dvc.yaml must be a mapping, not a {type(doc).__name__}", hint)
    return doc


def write_dvc_yaml(project: Project, doc: Any) -> None:
    """Write a document from :func:`load_dvc_yaml` back, atomically."""
    buf = io.StringIO()
    _yaml_rt().dump(doc, buf)
    atomic_write(project.dvc_yaml, buf.getvalue())


def top_level_list(doc: dict[str, Any], key: str) -> list[Any]:
    """dvc.yaml's top-level ``plots:`` or ``metrics:`` list, created when absent."""
    items = doc.get(key)
    if items is None:
        items = doc[key] = []
    if not isinstance(items, list):
        raise ConfigError(f"dvc.yaml: {key} must be a list")
    return items


def edit_dvc_yaml(project: Project, edit: Callable[[Any], bool]) -> bool:
    """Apply ``edit`` to dvc.yaml under a file lock; write it back if ``edit`` says it changed.

    The lock keeps concurrent trackers from losing each other's edits, and the round trip
    keeps every other part of dvc.yaml (stages, comments, order) as written.
    """
    with locked_file(project.state_dir / "dvcyaml.lock", blocking=True):
        doc = load_dvc_yaml(project)
        changed = edit(doc)
        if changed:
            write_dvc_yaml(project, doc)
    return changed


def undeclare_metrics(project: Project, paths: Sequence[str]) -> bool:
    """Drop ``paths`` from dvc.yaml's top-level ``metrics:`` list; True if it changed."""
    gone = set(paths)

    def edit(doc: Any) -> bool:
        metrics = doc.get("metrics")
        if not isinstance(metrics, list) or not gone.intersection(metrics):
            return False
        for i in reversed(range(len(metrics))):  # in place: ruamel keeps the comments
            if metrics[i] in gone:
                del metrics[i]
        return True

    return edit_dvc_yaml(project, edit)


def render_stage(
    axis_names: list[str], judges: bool = False, prompt_files: bool = False,
    run_repeats: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The ``eval`` stage for a matrix over ``axis_names`` (canonical order).

    With ``judges``, every cell also depends on the ``judges:`` section, so changing a
    judge re-runs the cells it grades. With ``prompt_files``, each cell depends on its
    prompt files (:mod:`evalledger.prompts`); with ``run_repeats``, on ``run.repeats``.
    """
    from evalledger.gitinfo import LAUNCHER
    from evalledger.prompts import dep_templates

    item = {a: "${item.%s}" % a for a in axis_names}  # noqa: UP031 - DVC's own syntax
    key = "/".join(item.values())
    args = " ".join(f"{a}={v}" for a, v in item.items())
    stage: dict[str, Any] = {
        "matrix": {a: "${axes.%s}" % a for a in axis_names},  # noqa: UP031
        # The launcher finds this interpreter's evalledger: no activated venv needed.
        "cmd": f"sh {LAUNCHER} cell {args}",
        **({"deps": dep_templates(axis_names)} if prompt_files else {}),
        "params": [f"{axis_section(a)}.{item[a]}" for a in axis_names]
        + (["judges"] if judges else [])
        + (["run.repeats"] if run_repeats else []),
        "outs": [
            f"predictions/{key}.jsonl",
            {f"metrics/{key}.scores.csv": {"cache": False}},
        ],
        "metrics": [{f"metrics/{key}.json": {"cache": False}}],
    }
    return stage
