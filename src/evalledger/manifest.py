"""Typed, versioned manifests of executions (``runs/<execution id>/manifest.yaml``).

Every manifest carries ``schema_version``. Older versions are upgraded step by step by
the functions in ``_MIGRATIONS`` and then validated by the current model, so files written
by any earlier evalledger keep loading. History of the format:

1. The first format.
2. Cells record ``examples_errored`` (items whose model call failed after retries).
3. ``git.code_hash`` (the project's code, ledger files aside) and cells' ``data_hash``
   (their benchmark's data files): with ``config_hash`` they make a cell's fingerprint,
   which finds identical configurations already evaluated at the same code and data.
4. Tracked experiments (``kind: experiment``, IDs ``exp_...``, from the Tracker API) beside
   evaluation matrices: ``name``, ``notes``, ``params``, ``last_metrics``, ``checkpoints``,
   ``artifacts``, ``error``; a ``failed`` execution status; ``provenance`` (machine,
   packages, environment, data versions); ``git.diff_hash``.
5. The file's end marker; later, an optional ``outputs``: the name a tracked experiment's
   series, summary and params files are kept under (absent: under its ID, as before).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evalledger.atomic import atomic_write
from evalledger.errors import ConfigError, CorruptFileError
from evalledger.manifestview import END_MARKER, EXECUTION_ID_RE, parse_manifest_file
from evalledger.names import NAME_HINT, is_name
from evalledger.params import canonical_axes

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = [
    "END_MARKER",
    "EXECUTION_ID_RE",
    "SCHEMA_VERSION",
    "ArtifactRecord",
    "CellRecord",
    "CellStatus",
    "ExecutionManifest",
    "ExecutionStatus",
    "GitState",
    "InvalidManifestError",
    "Provenance",
    "cell_fingerprint",
    "dump_manifest",
    "load_manifest",
    "new_execution_id",
    "new_experiment_id",
    "new_experiment_name",
    "parse_manifest_file",
    "read_manifest",
    "write_manifest",
]

SCHEMA_VERSION: Literal[5] = 5


class CellStatus(StrEnum):
    """Where a cell stands within an execution."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class ExecutionStatus(StrEnum):
    """Where an execution stands as a whole."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False)


class GitState(_Strict):
    """The git state of the project when the execution started."""

    commit: str | None = None
    """Commit SHA of HEAD, or None before the first commit."""
    branch: str | None = None
    """Current branch, or None when HEAD is detached."""
    dirty: bool = False
    """Whether tracked files had uncommitted changes."""
    code_hash: str | None = None
    """Hash of the project's code (ledger files aside), uncommitted changes included.

    Committing results leaves it unchanged; editing code changes it. None outside git
    and in executions recorded before schema 3.
    """
    diff_hash: str | None = None
    """Hash of ``git diff HEAD`` (tracked files' uncommitted changes); None when clean."""


class Provenance(_Strict):
    """Where and with what an execution ran. Secrets are redacted before it is written."""

    captured_at: datetime
    """When it was captured (UTC)."""
    user: str | None = None
    hostname: str | None = None
    os: str | None = None
    """e.g. ``Linux-6.1.0-x86_64-with-glibc2.36``."""
    python: str | None = None
    """Python version, e.g. ``3.11.7``."""
    executable: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    """Installed distributions, name -> version (what ``pip freeze`` lists)."""
    cpu: str | None = None
    cpu_count: int | None = None
    memory_bytes: int | None = None
    accelerators: list[str] = Field(default_factory=list)
    """GPUs or other accelerators found (e.g. from ``nvidia-smi -L``); empty for CPU only."""
    data: dict[str, str] = Field(default_factory=dict)
    """DVC-tracked data files or folders -> their DVC hash (md5) at the time."""
    env: dict[str, str] = Field(default_factory=dict)
    """Selected environment variables; values of secret-looking ones are redacted."""


class ArtifactRecord(_Strict):
    """A checkpoint or artifact, recorded by path and content hash (its bytes stay in DVC)."""

    path: str
    """Project-relative when inside the project, else absolute."""
    sha256: str
    """Content hash (of every file, by relative name, for a folder)."""
    size: int
    """Bytes (all files, for a folder)."""
    step: int | None = None
    name: str | None = None
    logged_at: datetime


class CellRecord(_Strict):
    """One cell of an execution."""

    axes: dict[str, str]
    """Axis -> value, e.g. ``{model: gpt4, benchmark: gsm8k}``."""

    @field_validator("axes")
    @classmethod
    def _axes_are_names(cls, axes: dict[str, str]) -> dict[str, str]:
        # Axis values become paths below metrics/ and predictions/: a manifest from a
        # collaborator's commit or an import must not name `..` or a folder elsewhere.
        for axis, value in axes.items():
            if not is_name(axis) or not axis.isidentifier():
                raise ValueError(f"axis {axis!r} is not a valid axis name")
            if not is_name(value):
                raise ValueError(f"{axis} {value!r} is not a valid name ({NAME_HINT})")
        return axes

    stage: str
    """The DVC stage name, e.g. ``eval@gpt4-gsm8k``."""
    experiment: str
    """Pre-generated experiment name, stable across resumes."""
    config_hash: str
    """Canonical hash of the cell's effective configuration."""
    data_hash: str | None = None
    """Hash of the benchmark's data files; None for generated benchmarks (and before
    schema 3)."""
    status: CellStatus = CellStatus.PENDING
    """pending, in_progress, completed or failed."""
    examples_completed: int = 0
    """Items scored so far."""
    examples_total: int | None = None
    """Items in the benchmark, once known."""
    examples_errored: int = 0
    """Items whose model call failed after retries; a resume tries them again."""
    error: str | None = None
    """``ErrorClass: message`` of the last failure, if any."""
    started_at: datetime | None = None
    """When the cell last started."""
    finished_at: datetime | None = None
    """When the cell last finished or failed."""
    attempts: int = 0
    """How many times the cell was started (1 + resumes)."""

    def fingerprint(self, code_hash: str | None) -> str:
        """The cell's duplicate key at ``code_hash`` (see :func:`cell_fingerprint`)."""
        return cell_fingerprint(self.config_hash, self.data_hash, code_hash)


class ExecutionManifest(_Strict):
    """An execution: one ``evalledger run`` and its resumes, over a set of cells."""

    schema_version: Literal[5] = SCHEMA_VERSION
    """Format version of this file."""
    execution_id: str
    """``exec_YYYY-MM-DD_HHMMSS_<8 hex>``."""
    created_at: datetime
    """When the execution was created (UTC)."""
    updated_at: datetime
    """When this file was last written (UTC)."""
    status: ExecutionStatus = ExecutionStatus.IN_PROGRESS
    """in_progress, completed or partial."""
    command: list[str] = Field(default_factory=list)
    """The command line that created the execution."""
    overrides: list[str] = Field(default_factory=list)
    """``-S key=value`` overrides applied to params.yaml."""
    filters: dict[str, list[str]] = Field(default_factory=dict)
    """Axis filters that selected the cells."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Snapshot of params.yaml (secrets redacted)."""
    git: GitState = Field(default_factory=GitState)
    """git state at creation."""
    jobs: int = 1
    """Cells evaluated at once."""
    cells: dict[str, CellRecord] = Field(default_factory=dict)
    """Cell key (``model/benchmark``) -> record."""
    kind: Literal["matrix", "experiment"] = "matrix"
    """``matrix``: an ``evalledger run``; ``experiment``: a run tracked with the Tracker."""
    name: str | None = None
    """An experiment's name (its evaluations are cells ``<name>/<benchmark>``)."""
    notes: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    """Hyperparameters logged with ``log_params`` (secrets redacted)."""
    last_metrics: dict[str, float] = Field(default_factory=dict)
    """The last logged value of each step metric, and ``step``: the last step."""
    directions: dict[str, Literal["lower", "higher"]] = Field(default_factory=dict)
    """Metric name (or glob) -> which way is better, from ``log_metrics(direction=...)``."""
    checkpoints: list[ArtifactRecord] = Field(default_factory=list)
    artifacts: list[ArtifactRecord] = Field(default_factory=list)
    error: str | None = None
    """``ErrorClass: message`` when an experiment failed."""
    provenance: Provenance | None = None
    """The machine, packages, environment and data versions (schema 4 on)."""
    outputs: str | None = None
    """A tracked experiment's stable output name: its series, summary and params are
    ``metrics/_series/<outputs>/``, ``metrics/_experiments/<outputs>.json`` and
    ``metrics/_params/<outputs>.yaml``. None (ledgers written before it): keyed by ID."""

    @field_validator("execution_id")
    @classmethod
    def _id_is_well_formed(cls, value: str) -> str:
        if not EXECUTION_ID_RE.match(value):
            raise ValueError(f"execution id {value!r} is not exec_/exp_YYYY-MM-DD_HHMMSS_<8 hex>")
        return value

    @model_validator(mode="after")
    def _cell_keys_match_axes(self) -> ExecutionManifest:
        for key, rec in self.cells.items():
            expected = "/".join(rec.axes[a] for a in canonical_axes(rec.axes))
            if key != expected:
                raise ValueError(f"cell key {key!r} does not match its axes ({expected!r})")
        if self.name is not None and not is_name(self.name):
            raise ValueError(f"name {self.name!r} is not a valid name ({NAME_HINT})")
        return self

    def counts(self) -> dict[str, int]:
        """Number of cells per status."""
        out = {s.value: 0 for s in CellStatus}
        for rec in self.cells.values():
            out[rec.status.value] += 1
        return out

    def summary(self) -> str:
        """e.g. ``5/6 cells completed, 1 failed``; for an experiment ``2 evaluations``."""
        if self.kind == "experiment":
            n = len(self.cells)
            return f"{n} evaluation{'s' if n != 1 else ''}" if n else "no evaluations"
        c = self.counts()
        parts = [f"{c['completed']}/{len(self.cells)} cells completed"]
        for key in ("failed", "in_progress", "pending"):
            if c[key]:
                parts.append(f"{c[key]} {key.replace('_', ' ')}")
        return ", ".join(parts)


def utcnow() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def new_execution_id(now: datetime | None = None) -> str:
    """``exec_YYYY-MM-DD_HHMMSS_<8 hex>``."""
    now = now or utcnow()
    return f"exec_{now:%Y-%m-%d_%H%M%S}_{secrets.token_hex(4)}"


def new_experiment_id(now: datetime | None = None) -> str:
    """``exp_YYYY-MM-DD_HHMMSS_<8 hex>``: the ID of a tracked experiment."""
    now = now or utcnow()
    return f"exp_{now:%Y-%m-%d_%H%M%S}_{secrets.token_hex(4)}"


def new_experiment_name(values: tuple[str, ...], judge: str | None = None) -> str:
    """A readable, predictable experiment name: the axis values, the judge, an 8-hex suffix."""
    parts = [*values, f"judge_{judge}"] if judge else list(values)
    return f"{'-'.join(parts)}-{secrets.token_hex(4)}"


def cell_fingerprint(config_hash: str, data_hash: str | None, code_hash: str | None) -> str:
    """The duplicate key of a cell: equal when configuration, data and code are equal.

    Two cells with the same fingerprint evaluated the same configuration on the same data
    at the same code. A None data hash (a generated benchmark) or code hash (no git)
    takes part as such, so it only matches another None.
    """
    blob = json.dumps([config_hash, data_hash, code_hash], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    cells = data.get("cells")
    if isinstance(cells, dict):
        for key, rec in cells.items():
            if isinstance(rec, dict) and "examples_errored" in rec:
                raise ConfigError(f"cells.{key}.examples_errored is not a schema 1 field")
    return {**data, "schema_version": 2}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    git = data.get("git")
    if isinstance(git, dict) and "code_hash" in git:
        raise ConfigError("git.code_hash is not a schema 2 field")
    cells = data.get("cells")
    if isinstance(cells, dict):
        for key, rec in cells.items():
            if isinstance(rec, dict) and "data_hash" in rec:
                raise ConfigError(f"cells.{key}.data_hash is not a schema 2 field")
    return {**data, "schema_version": 3}


_V4_FIELDS = ("kind", "name", "notes", "params", "last_metrics", "checkpoints", "artifacts",
              "error", "provenance")  # fmt: skip


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    for name in _V4_FIELDS:
        if name in data:
            raise ConfigError(f"{name} is not a schema 3 field")
    git = data.get("git")
    if isinstance(git, dict) and "diff_hash" in git:
        raise ConfigError("git.diff_hash is not a schema 3 field")
    return {**data, "schema_version": 4}


def _v4_to_v5(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "schema_version": 5}  # 5 adds only the file's end marker


#: ``version -> function`` upgrading a manifest of that version to the next one.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
}


class InvalidManifestError(CorruptFileError, ConfigError):
    """A manifest file whose content is not a manifest of any known schema version.

    A damaged file (what readers skip with a warning); a ConfigError too, as it always was.
    """


def load_manifest(
    data: Any, source: str = "manifest", hint: str | None = None
) -> ExecutionManifest:
    """Validate manifest data of any known schema version into the current model.

    Data that is not a manifest (wrong types, unknown fields, an unknown schema version)
    is a CorruptFileError naming ``source``, with ``hint`` (default: restore it from git).
    """
    fix = hint or _MANIFEST_HINT.replace("FILE", source)
    if not isinstance(data, dict):
        what = _kind(data)
        raise InvalidManifestError(f"{source} is not a manifest (a mapping): it holds {what}", fix)
    version = data.get("schema_version")
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        known = ", ".join(map(str, range(1, SCHEMA_VERSION + 1)))
        raise InvalidManifestError(
            f"{source} has schema_version {version!r}; this evalledger reads {known}",
            "upgrade evalledger" if isinstance(version, int) else fix,
        )
    try:
        while version < SCHEMA_VERSION:
            data = _MIGRATIONS[version](data)
            version += 1
    except ConfigError as exc:
        raise InvalidManifestError(f"{source}: {exc.message}", fix) from None
    try:
        return ExecutionManifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InvalidManifestError(f"{source}: {loc}: {err['msg']}", fix) from None
    except RecursionError:  # safeload bounds the depth; data from elsewhere may not be
        raise InvalidManifestError(f"{source} nests too deep", fix) from None


_MANIFEST_HINT = "restore the manifest from git (`git checkout -- FILE`) or fix it by hand"


def _kind(data: Any) -> str:
    if data is None:
        return "nothing"
    return f"a {type(data).__name__}"


def dump_manifest(manifest: ExecutionManifest) -> str:
    """The text of a manifest: YAML in JSON's syntax, one key or list item per line.

    Any YAML reader reads the same data, diffs stay line by line, and ``json`` reads it
    fifty times faster than libyaml reads block YAML: a 10,000-cell manifest (5 MB) in
    0.06 s instead of 3.5 s, which is most of a cold ``report`` or ``leaderboard``.
    """
    data = manifest.model_dump(mode="json")
    if not data["directions"]:  # only experiments that set one carry the key
        del data["directions"]
    if data["outputs"] is None:  # only experiments with stable paths carry the key
        del data["outputs"]
    return f"{_yaml_compatible(json.dumps(data, indent=2, ensure_ascii=False))}\n{END_MARKER}\n"


# Characters JSON leaves raw that a YAML reader would fold as line breaks (NEL, LS, PS)
# or refuse as unprintable; JSON's \uXXXX escape means the same to both.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
# A number ends its line (a string cannot: JSON strings hold no raw line break). YAML 1.1
# (PyYAML) reads 1e-05 as a string and needs 1.0e-05; it spells NaN and Infinity .nan and
# .inf, which sends such a rare file to the YAML parser on reading, as it should.
_BARE_EXPONENT = re.compile(r"(?<= )(-?\d+)(e[-+]\d+)(?=,?$)", re.MULTILINE)
_NOT_A_NUMBER = re.compile(r"(?<= )(-?)(Infinity|NaN)(?=,?$)", re.MULTILINE)


def _yaml_compatible(text: str) -> str:
    text = _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    text = _BARE_EXPONENT.sub(r"\1.0\2", text)
    if "Infinity" in text or "NaN" in text:
        text = _NOT_A_NUMBER.sub(lambda m: m[1] + (".inf" if m[2] == "Infinity" else ".nan"), text)
    return text


def read_manifest(path: Path) -> ExecutionManifest:
    """Load a manifest file; a damaged one is a CorruptFileError naming it.

    Refused unread when over 64 MiB (:data:`~evalledger.safeload.MAX_MANIFEST_BYTES`;
    16 MiB for block YAML);
    YAML aliases and deep nesting are refused as :func:`evalledger.safeload.load_yaml`
    does.
    """
    from evalledger.safeload import MAX_MANIFEST_BYTES, DamagedData, read_bounded

    hint = _MANIFEST_HINT.replace("FILE", str(path))
    try:
        data = parse_manifest_file(read_bounded(path, MAX_MANIFEST_BYTES, str(path)))
    except CorruptFileError as exc:
        raise InvalidManifestError(exc.message, hint) from None
    except DamagedData as exc:
        raise InvalidManifestError(exc.describe(str(path)), hint) from None
    return load_manifest(data, str(path), hint)


def write_manifest(path: Path, manifest: ExecutionManifest) -> None:
    """Write a manifest atomically, stamping ``updated_at``."""
    manifest.updated_at = utcnow()
    atomic_write(path, dump_manifest(manifest))
