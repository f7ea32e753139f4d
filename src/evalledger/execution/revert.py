"""Reverting params.yaml to an execution's configuration, to re-run an old experiment.

Each manifest keeps ``config``, a snapshot of params.yaml (secrets redacted) as the
execution ran it, ``-S`` overrides included. :func:`revert_params` writes that snapshot
back into params.yaml through ruamel.yaml's round-trip mode, updating the document in
place: values that differ change, missing keys are added, keys the snapshot lacks are
removed, and comments and formatting of everything else survive. A redacted value keeps
params.yaml's current value, so a secret is never replaced by the placeholder. Then
``evalledger run`` re-evaluates exactly the cells whose configuration changed.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from evalledger.atomic import atomic_write, locked_file
from evalledger.errors import ConfigError, RunLockedError
from evalledger.params import plain_data
from evalledger.redact import REDACTED

if TYPE_CHECKING:
    from evalledger.manifest import ExecutionManifest
    from evalledger.project import Project

__all__ = ["ParamChange", "RevertResult", "revert_params"]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


#: An absent key: the ``old`` of an added key, the ``new`` of a removed one.
MISSING: Any = _Missing()


@dataclass(frozen=True)
class ParamChange:
    """One changed key of params.yaml."""

    key: str
    """Dotted path, e.g. ``models.noisy.error_rate`` (list items as ``stop[1]``)."""
    old: Any
    """The current value, or :data:`MISSING` when the key is added."""
    new: Any
    """The execution's value, or :data:`MISSING` when the key is removed."""

    @property
    def kind(self) -> Literal["added", "removed", "changed"]:
        """added, removed or changed."""
        if self.old is MISSING:
            return "added"
        return "removed" if self.new is MISSING else "changed"

    def describe(self, width: int = 60) -> str:
        """``key: old -> new``, long values shortened."""
        return f"{self.key}: {_short(self.old, width)} -> {_short(self.new, width)}"


@dataclass
class RevertResult:
    """What :func:`revert_params` changed (or, for a dry run, would change)."""

    execution_id: str
    changes: list[ParamChange] = field(default_factory=list)
    kept_redacted: list[str] = field(default_factory=list)
    """Keys redacted in the snapshot that keep params.yaml's current value."""
    stale_cells: list[str] = field(default_factory=list)
    """Cells stale with the reverted params.yaml (``evalledger run`` evaluates them)."""
    reusable: dict[str, str] = field(default_factory=dict)
    """Those of them whose outputs ``evalledger run`` restores from history instead ->
    the execution that evaluated them identically (:mod:`evalledger.execution.reuse`)."""
    written: bool = False
    """Whether params.yaml was written (False for a dry run or when nothing changed)."""
    text: str = ""
    """The reverted params.yaml text."""


def _short(value: Any, width: int) -> str:
    if value is MISSING:
        return "(absent)"
    text = json.dumps(plain_data(value), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _same(current: Any, wanted: Any) -> bool:
    """Equal as configuration: the way config hashes see them (1 != 1.0 != true)."""

    def canon(v: Any) -> str:
        return json.dumps(plain_data(v), sort_keys=True, default=str)

    return canon(current) == canon(wanted)


def _styled(new: Any, like: Any) -> Any:
    """``new`` as a collection in the flow or block style of ``like``.

    ``like`` is the node ``new`` replaces, or a sibling: ``model: [a, b]`` stays on one line.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    out: Any
    if isinstance(new, dict) and isinstance(like, CommentedMap):
        out = CommentedMap(new)
    elif isinstance(new, list) and isinstance(like, CommentedSeq):
        out = CommentedSeq(new)
    else:
        return new
    if like.fa.flow_style():
        out.fa.set_flow_style()
    return out


class _Reverter:
    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self.changes: list[ParamChange] = []
        self.kept: list[str] = []

    def no_current_value(self, path: str) -> ConfigError:
        return ConfigError(
            f"{path} was redacted in {self.execution_id} and params.yaml has no current "
            "value for it",
            f"set {path} in params.yaml (or name an environment variable) and revert again",
        )

    def resolve(self, target: Any, current: Any, path: str) -> Any:
        """``target`` as plain data, redacted values taken from ``current``."""
        if isinstance(target, str) and target == REDACTED:
            if current is MISSING:
                raise self.no_current_value(path)
            self.kept.append(path)
            return current
        if isinstance(target, dict):
            here = current if isinstance(current, dict) else {}
            keys = {str(k): k for k in here}
            return {
                k: self.resolve(v, here[keys[k]] if k in keys else MISSING, f"{path}.{k}")
                for k, v in target.items()
            }
        if isinstance(target, list):
            same_shape = isinstance(current, list) and len(current) == len(target)
            return [
                self.resolve(v, current[i] if same_shape else MISSING, f"{path}[{i}]")
                for i, v in enumerate(target)
            ]
        return target

    def sync(self, node: Any, target: Any, path: str) -> Any:
        """The value to store at ``path``: ``node`` updated in place when possible."""
        if isinstance(node, dict) and isinstance(target, dict):
            self.sync_mapping(node, target, path)
            return node
        if isinstance(node, list) and isinstance(target, list) and len(node) == len(target):
            for i, value in enumerate(target):
                new = self.sync(node[i], value, f"{path}[{i}]")
                if new is not node[i]:
                    node[i] = new
            return node
        new = self.resolve(target, node, path)
        if node is MISSING or not _same(node, new):
            self.changes.append(ParamChange(path, plain_data(node), plain_data(new)))
            return _styled(new, node)
        return node

    def sync_mapping(self, node: dict[Any, Any], target: dict[str, Any], path: str) -> None:
        prefix = f"{path}." if path else ""
        keys = {str(k): k for k in node}
        for name in [n for n in keys if n not in target]:
            key = keys.pop(name)
            self.changes.append(ParamChange(prefix + name, plain_data(node[key]), MISSING))
            del node[key]
        order = list(target)
        for i, (name, value) in enumerate(target.items()):
            if name in keys:
                key = keys[name]
                new = self.sync(node[key], value, prefix + name)
                if new is not node[key]:
                    node[key] = new
                continue
            # Insert where the snapshot had it (after the nearest earlier key present),
            # styled as the sibling before it.
            current = list(node)
            before = [current.index(keys[n]) for n in order[:i] if n in keys]
            pos = max(before) + 1 if before else 0
            sibling = node[current[pos - 1]] if pos else next(iter(node.values()), None)
            new = _styled(self.sync(MISSING, value, prefix + name), sibling)
            if hasattr(node, "insert"):
                node.insert(pos, name, new)
            else:
                node[name] = new
            keys[name] = name


def _yaml_rt() -> Any:
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap lines the revert does not touch
    return y


def revert_params(
    project: Project, manifest: ExecutionManifest, *, dry_run: bool = False
) -> RevertResult:
    """Write ``manifest.config`` back into params.yaml, keeping comments and formatting.

    Values redacted in the snapshot keep params.yaml's current value (a ConfigError
    names the key when there is none). The result is validated as a matrix before it
    is written, atomically; with ``dry_run`` nothing is written. Refused while an
    ``evalledger run`` holds the project's run lock.
    """
    from ruamel.yaml.comments import CommentedMap

    from evalledger.execution.pipeline import stale_cells, sync_dvc_yaml
    from evalledger.execution.reuse import find_reusable
    from evalledger.matrix import expand
    from evalledger.params import checked_params_text, parse_spec
    from evalledger.safeload import load_yaml

    exec_id = manifest.execution_id
    if not manifest.config:
        raise ConfigError(
            f"{exec_id} has no configuration snapshot to revert to",
            "pick another execution (see runs/)",
        )
    yaml_rt = _yaml_rt()
    path = project.params_path
    text = checked_params_text(path) if path.exists() else ""
    doc = yaml_rt.load(text) if text.strip() else None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, dict):
        raise ConfigError("params.yaml must be a mapping at the top level")
    reverter = _Reverter(exec_id)
    reverter.sync_mapping(doc, manifest.config, "")
    result = RevertResult(execution_id=exec_id, changes=reverter.changes,
                          kept_redacted=reverter.kept, text=text)  # fmt: skip
    if not result.changes:
        return result
    buf = io.StringIO()
    yaml_rt.dump(doc, buf)
    result.text = buf.getvalue()
    try:
        data = load_yaml(result.text, f"params.yaml as {exec_id} had it") or {}
        spec = parse_spec(data)
    except ConfigError as exc:
        raise ConfigError(
            f"the configuration of {exec_id} is not valid today: {exc.message}",
            "edit params.yaml by hand, or revert to another execution",
        ) from None
    if not dry_run:
        with locked_file(project.run_lock_path) as fh:
            if fh is None:
                raise RunLockedError(
                    "an evalledger run is in progress in this project",
                    "wait for it to finish, then revert",
                )
            atomic_write(path, result.text)
            try:
                sync_dvc_yaml(project, spec)
            except BaseException:  # a damaged dvc.yaml: leave params.yaml as it was
                atomic_write(path, text)
                raise
        result.written = True
    stale = stale_cells(project, spec, expand(spec))
    result.stale_cells = [c.key for c in stale]
    found = find_reusable(project, spec, stale).found
    result.reusable = {k: hit.execution_id for k, hit in found.items()}
    return result
