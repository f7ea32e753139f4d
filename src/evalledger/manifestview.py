"""What a revision's readers need of its manifests, read without pydantic.

A leaderboard, a cell's health and the metric directions need of a manifest only its
kind, when it was written, its directions and, per cell, the status, times, attempts and
error: a :class:`ManifestView`. :func:`light_view` takes them from a manifest file's
parsed data when that data is plainly a manifest of the current schema, each field of a
type the model in :mod:`evalledger.manifest` takes as it is (no coercion), every key one
the model knows, every cell's axes valid names that spell its key. Anything else returns
None, and the caller validates the data with :func:`evalledger.manifest.load_manifest`
instead, which upgrades older schemas or refuses the file and says why: a manifest is
never accepted here that the model would refuse. So a command that only ranks results
does not import pydantic, nor build thousands of cell records.

This module also holds what reading a manifest file needs before validation: the
execution ID pattern, the end marker and :func:`parse_manifest_file`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evalledger.names import is_name
from evalledger.params import canonical_axes

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "END_MARKER",
    "EXECUTION_ID_RE",
    "CellView",
    "ManifestView",
    "is_view_json",
    "light_view",
    "load_view",
    "parse_manifest_file",
]

#: ``exec_...`` for evaluation matrices, ``exp_...`` for tracked experiments.
EXECUTION_ID_RE = re.compile(r"^(exec|exp)_\d{4}-\d{2}-\d{2}_\d{6}_[0-9a-f]{8}\Z")
#: The last line of every manifest file from schema 5 on. A file cut short can still be
#: valid YAML and a valid manifest (its tail holds only optional fields), so without this
#: line a truncated manifest would load, and the next write would lose the rest for good.
END_MARKER = "# end of manifest"
#: The schema :func:`light_view` reads; others go through the model's migrations.
_SCHEMA = 5


@dataclass(frozen=True, slots=True)
class CellView:
    """One cell of an execution, as health and ownership read it."""

    status: str
    """``pending``, ``in_progress``, ``completed`` or ``failed`` (CellStatus's values)."""
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: str | None


@dataclass(frozen=True, slots=True)
class ManifestView:
    """An execution manifest, reduced to what a revision's readers need of it."""

    execution_id: str
    kind: str
    updated_at: datetime
    directions: dict[str, str]
    cells: dict[str, CellView]


def parse_manifest_file(data: bytes | str, *, check_depth: bool = True) -> Any:
    """A manifest file's YAML data, bounded as :func:`evalledger.safeload.parse_yaml` is.

    :class:`~evalledger.safeload.DamagedData` when it is not such YAML, or when a file of
    schema 5 or later lacks its :data:`END_MARKER` (it was cut short). Older files have
    no marker and load as they are. ``check_depth`` as in
    :func:`~evalledger.safeload.parse_json_or_yaml`.
    """
    from evalledger.safeload import MAX_MANIFEST_BYTES, DamagedData, parse_json_or_yaml

    value = parse_json_or_yaml(data, max_bytes=MAX_MANIFEST_BYTES, check_depth=check_depth)
    version = value.get("schema_version") if isinstance(value, dict) else None
    if isinstance(version, int) and version >= 5:
        tail = data[-64:].decode("utf-8", "replace") if isinstance(data, bytes) else data[-64:]
        if tail.rstrip().splitlines()[-1:] != [END_MARKER]:
            raise DamagedData(
                f"{{source}} is cut short: a schema {version} manifest ends with {END_MARKER!r}"
            )
    return value


# --- the types the model takes without coercing ---------------------------------------

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z")


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt_int(v: Any) -> bool:
    return v is None or _int(v)


def _one_of(*values: str) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in values


def _time(v: Any) -> bool:
    return isinstance(v, str) and _TIME.match(v) is not None


def _strs(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _str_keys(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


def _str_map(v: Any) -> bool:
    return _str_keys(v) and all(isinstance(x, str) for x in v.values())


def _record(fields: dict[str, Callable[[Any], bool]], required: set[str]) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return (
            isinstance(v, dict)
            and required <= v.keys()
            and all(k in fields and fields[k](x) for k, x in v.items())
        )

    return check


_GIT = _record({"commit": _opt_str, "branch": _opt_str, "dirty": lambda v: isinstance(v, bool),
                "code_hash": _opt_str, "diff_hash": _opt_str}, set())  # fmt: skip
_PROVENANCE = _record(
    {"captured_at": _time, "user": _opt_str, "hostname": _opt_str, "os": _opt_str,
     "python": _opt_str, "executable": _opt_str, "packages": _str_map, "cpu": _opt_str,
     "cpu_count": _opt_int, "memory_bytes": _opt_int, "accelerators": _strs,
     "data": _str_map, "env": _str_map}, {"captured_at"},
)  # fmt: skip
_ARTIFACT = _record({"path": _str, "sha256": _str, "size": _int, "step": _opt_int,
                     "name": _opt_str, "logged_at": _time},
                    {"path", "sha256", "size", "logged_at"})  # fmt: skip
_NONE = type(None)
#: Each field of :class:`~evalledger.manifest.CellRecord` and the types it may hold here
#: (``type(v) in ...``, so True is no int); statuses, times and axes are checked apart.
CELL_FIELDS: dict[str, tuple[type, ...]] = {
    "axes": (dict,), "stage": (str,), "experiment": (str,), "config_hash": (str,),
    "data_hash": (str, _NONE), "status": (str,), "examples_completed": (int,),
    "examples_total": (int, _NONE), "examples_errored": (int,), "error": (str, _NONE),
    "started_at": (str, _NONE), "finished_at": (str, _NONE), "attempts": (int,),
}  # fmt: skip
_CELL_REQUIRED = {"axes", "stage", "experiment", "config_hash"}
_CELL_STATUS = ("pending", "in_progress", "completed", "failed")
MANIFEST_FIELDS: dict[str, Callable[[Any], bool]] = {
    "schema_version": lambda v: _int(v) and v == _SCHEMA,
    "execution_id": lambda v: isinstance(v, str) and EXECUTION_ID_RE.match(v) is not None,
    "created_at": _time, "updated_at": _time,
    "status": _one_of("in_progress", "completed", "partial", "failed"),
    "command": _strs, "overrides": _strs,
    "filters": lambda v: _str_keys(v) and all(_strs(x) for x in v.values()),
    "config": _str_keys, "git": _GIT, "jobs": _int,
    "cells": _str_keys, "kind": _one_of("matrix", "experiment"),
    "name": lambda v: v is None or (isinstance(v, str) and is_name(v)),
    "notes": _opt_str, "params": _str_keys,
    "last_metrics": lambda v: _str_keys(v) and all(
        isinstance(x, float) or _int(x) for x in v.values()),
    "directions": lambda v: _str_keys(v) and all(map(_one_of("lower", "higher"), v.values())),
    "checkpoints": lambda v: isinstance(v, list) and all(_ARTIFACT(x) for x in v),
    "artifacts": lambda v: isinstance(v, list) and all(_ARTIFACT(x) for x in v),
    "error": _opt_str, "provenance": lambda v: v is None or _PROVENANCE(v),
    "outputs": _opt_str,
}  # fmt: skip
"""Each field of :class:`~evalledger.manifest.ExecutionManifest` and what it may hold here."""
_MANIFEST = _record(MANIFEST_FIELDS, {"schema_version", "execution_id", "created_at", "updated_at"})


class _Names:
    """Which axis names and values are valid, and each axis set's canonical order.

    A manifest repeats a few names thousands of times: each is checked once.
    """

    def __init__(self) -> None:
        self.axes: dict[str, bool] = {}
        self.values: dict[str, bool] = {}
        self.orders: dict[tuple[str, ...], list[str]] = {}

    def cell_ok(self, key: str, rec: Any) -> bool:
        """Whether a cell record is one the model takes as it is, under its key."""
        if type(rec) is not dict or not rec.keys() >= _CELL_REQUIRED:
            return False
        for field, value in rec.items():
            types = CELL_FIELDS.get(field)
            if types is None or type(value) not in types:
                return False
        if rec.get("status", "pending") not in _CELL_STATUS:
            return False
        for field in ("started_at", "finished_at"):
            when = rec.get(field)
            if when is not None and _TIME.match(when) is None:
                return False
        axes = rec["axes"]
        for axis, value in axes.items():  # as CellRecord's validator
            if type(value) is not str:  # (a list is unhashable: the model says what is wrong)
                return False
            ok = self.axes.get(axis)
            if ok is None:
                ok = self.axes[axis] = is_name(axis) and axis.isidentifier()
            good = self.values.get(value)
            if good is None:
                good = self.values[value] = is_name(value)
            if not ok or not good:
                return False
        names = tuple(axes)
        order = self.orders.get(names)
        if order is None:
            order = self.orders[names] = canonical_axes(names)
        return key == "/".join([axes[a] for a in order])  # as the manifest's validator


def light_view(data: Any) -> dict[str, Any] | None:
    """The JSON form of a :class:`ManifestView` of parsed manifest data, or None.

    None unless the data is a current-schema manifest the model takes as it is.
    """
    if not _MANIFEST(data):
        return None
    cells = data.get("cells", {})
    names = _Names()
    if not all(names.cell_ok(k, rec) for k, rec in cells.items()):
        return None
    return {
        "id": data["execution_id"], "kind": data.get("kind", "matrix"),
        "updated_at": data["updated_at"], "directions": data.get("directions", {}),
        "cells": {k: [rec.get("status", "pending"), rec.get("started_at"),
                      rec.get("finished_at"), rec.get("attempts", 0), rec.get("error")]
                  for k, rec in cells.items()},
    }  # fmt: skip


def is_view_json(value: Any) -> bool:
    """Whether ``value`` has the shape of :func:`light_view`'s result (for the cache)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("id"), str)
        and isinstance(value.get("updated_at"), str)
        and isinstance(value.get("directions"), dict)
        and isinstance(value.get("cells"), dict)
        and all(isinstance(c, list) and len(c) == 5 for c in value["cells"].values())
    )


def load_view(value: dict[str, Any]) -> ManifestView:
    """A :class:`ManifestView` from its JSON form."""
    parse = datetime.fromisoformat

    def when(text: str | None) -> datetime | None:
        return None if text is None else parse(text)

    cells = {
        key: CellView(status, when(started), when(finished), attempts, error)
        for key, (status, started, finished, attempts, error) in value["cells"].items()
    }
    return ManifestView(value["id"], value.get("kind", "matrix"), parse(value["updated_at"]),
                        dict(value["directions"]), cells)  # fmt: skip
