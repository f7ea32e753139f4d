"""Validation before anything runs: the one check that ``run``, ``sweep`` and ``cell`` share.

Bad input costs one line and writes nothing. params.yaml and the ``-S`` overrides are
validated in memory, as one document, before any file is touched:

* structure, axes and entries (:func:`~evalledger.params.parse_spec`), secrets refused,
  and each override's section and entry known (:func:`~evalledger.params.override_params`);
* each plugin's settings: unknown keys, types, ranges (:func:`~evalledger.plugins.check_plugins`);
* the plugins of the cells that will run, built: API-key variables set, ``python``
  callables importable (:func:`~evalledger.plugins.build_plugins`);
* dvc.yaml readable and its ``eval`` stage the one params.yaml's axes make.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalledger.dvcyaml import load_dvc_yaml
from evalledger.errors import ConfigError
from evalledger.matrix import STAGE, expand
from evalledger.params import axis_section, blame_overrides, override_params, parse_spec, plain_data
from evalledger.plugins import build_plugins, check_plugins

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evalledger.matrix import Cell
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = [
    "check_cell",
    "check_ready",
    "checked_spec",
    "dvc_yaml_problem",
    "require_dvc_yaml",
    "touched_cells",
]

_FIX_DVC_YAML = (
    "`evalledger run` regenerates its eval stage from params.yaml, or restore it with "
    "`git checkout -- dvc.yaml`"
)


def touched_cells(spec: MatrixSpec, overrides: list[str]) -> list[Cell]:
    """The cells of the matrix whose entries some ``-S`` override sets.

    An override of ``axes``, ``judges`` or a whole section touches every cell.
    """
    everything = expand(spec)
    sections = {axis_section(axis): axis for axis in spec.axis_names}
    wanted: dict[str, set[str]] = {}
    for text in overrides:
        keys = text.partition("=")[0].strip().lstrip("+").split(".")
        if keys[0] in ("axes", "judges") or (keys[0] in sections and len(keys) < 2):
            return everything
        if keys[0] in sections:
            wanted.setdefault(sections[keys[0]], set()).add(keys[1])
    return [c for c in everything if any(c.axis(a) in names for a, names in wanted.items())]


def checked_spec(
    project: Project, overrides: list[str], filters: dict[str, list[str]] | None = None
) -> tuple[str, MatrixSpec]:
    """params.yaml's text with the overrides and the spec it defines, validated in memory.

    The settings of the plugins of the cells that ``filters`` select (default: the whole
    matrix) and of every entry an override sets are checked too. Nothing is written.
    """
    text, data = override_params(project.params_path, overrides)
    spec = parse_spec(data)
    try:
        chosen = expand(spec, filters)
    except ConfigError as exc:
        raise blame_overrides(exc, overrides) from None
    keys = {c.key for c in chosen}
    extra = [c for c in touched_cells(spec, overrides) if c.key not in keys]
    try:
        check_plugins(spec, [*chosen, *extra])
    except ConfigError as exc:
        raise blame_overrides(exc, overrides) from None
    return text, spec


def check_ready(
    project: Project, spec: MatrixSpec, cells: list[Cell], overrides: Sequence[str] = ()
) -> None:
    """The cells that will run can start: their plugins build and prompt files read.

    Each plugin is built offline; prompt files are read when the prompt sets have them.

    A missing API-key variable or an unimportable callable is one line now, before the
    first cell starts, not a failed cell after others ran.
    """
    try:
        build_plugins(spec, cells, project.root)
    except ConfigError as exc:
        raise blame_overrides(exc, list(overrides)) from None
    if spec.prompt_files:  # a missing or template-less prompt file, before any cell runs
        from evalledger.prompts import read_prompt_files

        for cell in cells:
            read_prompt_files(project.root, dict(cell.axes))


def dvc_yaml_problem(project: Project, spec: MatrixSpec) -> str | None:
    """Why dvc.yaml's eval stage is not the one ``spec`` makes (missing, out of date).

    None when it is. A dvc.yaml that cannot be read or edited (damaged YAML, ``stages:``
    not a mapping) raises instead: no command can fix it for you.
    """
    from evalledger.dvcyaml import render_stage

    exists = project.dvc_yaml.exists()
    doc = load_dvc_yaml(project)
    stages = doc.get("stages")
    if stages is not None and not isinstance(stages, dict):
        raise ConfigError(
            "dvc.yaml: stages must be a mapping", "fix dvc.yaml by hand, or restore it with "
            "`git checkout -- dvc.yaml`",
        )  # fmt: skip
    if not exists:
        return "dvc.yaml is missing"
    stage = (stages or {}).get(STAGE)
    if stage is None:
        return f"dvc.yaml has no {STAGE!r} stage"
    if plain_data(stage) != render_stage(spec.axis_names, *spec.stage_options):
        return f"dvc.yaml's {STAGE!r} stage does not match the axes in params.yaml"
    return None


def require_dvc_yaml(project: Project, spec: MatrixSpec, why: str) -> None:
    """Raise unless dvc.yaml's eval stage is the one ``spec`` makes; ``why`` says who needs it."""
    problem = dvc_yaml_problem(project, spec)
    if problem is not None:
        raise ConfigError(f"{problem}, so {why}", _FIX_DVC_YAML)


def check_cell(project: Project, spec: MatrixSpec, cell: Cell) -> None:
    """What ``evalledger cell`` checks before evaluating: the cell's plugins and dvc.yaml."""
    check_plugins(spec, [cell])
    require_dvc_yaml(project, spec, "DVC cannot record this cell")
