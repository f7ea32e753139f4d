"""The ledger across git history: manifests, metrics and per-item scores at any revision.

A :class:`Snapshot` is the ledger at one revision (a commit, branch, tag, ``HEAD~3``, a
DVC experiment, or the working tree), read straight from git objects: nothing is checked
out and ``git status`` never changes. Every parsed file is cached by its blob id in
``.evalledger/cache/``, so a second read of any revision costs a tree listing and one
cache query. :meth:`Ledger.executions` walks the history once to find every execution
ever committed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from evalledger.errors import CorruptFileError, UnknownExecutionError
from evalledger.ledger.cache import ParsedCache
from evalledger.ledger.cellread import prefetch
from evalledger.ledger.execinfo import ExecutionInfo, index_changes
from evalledger.ledger.gitobjects import WORKSPACE, GitObjects
from evalledger.ledger.scores import ScoreTable, parse_scores, summarize_file, summarize_files
from evalledger.manifestview import EXECUTION_ID_RE, parse_manifest_file
from evalledger.params import AXIS_ORDER, canonical_axes
from evalledger.safeload import (
    MAX_METRICS_BYTES,
    MAX_PARAMS_BYTES,
    DamagedData,
    corrupt_file,
    parse_json,
    parse_yaml,
    restore_hint,
    warn_skipped,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

    from evalledger.manifest import ExecutionManifest
    from evalledger.project import Project

__all__ = [
    "LEDGER_PATHS",
    "SIGNIFICANCE_DIR",
    "WORKSPACE",
    "CellFiles",
    "ExecutionInfo",
    "Ledger",
    "Snapshot",
]

#: What the reader looks at in a revision.
LEDGER_PATHS = ("params.yaml", "dvc.lock", "runs", "metrics")
#: ``metrics/<this>/`` holds saved significance results, not cells. Every folder of
#: ``metrics/`` whose name starts with ``_`` is reserved like it (axis values cannot).
SIGNIFICANCE_DIR = "_significance"
_MANIFEST = "manifest.yaml"


@dataclass(frozen=True)
class CellFiles:
    """A cell's files at one revision."""

    key: str
    axes: dict[str, str]
    metrics_oid: str
    scores_oid: str | None


# Refs whose histories ``executions(all_refs=True)`` walks besides HEAD's.
_OTHER_REFS = ("--branches", "--tags", "--remotes")


_parse_params = partial(parse_yaml, max_bytes=MAX_PARAMS_BYTES)
_parse_manifest = parse_manifest_file


def _parse_metrics(data: bytes) -> Any:
    value = parse_json(data, max_bytes=MAX_METRICS_BYTES)
    if not isinstance(value, dict):
        raise DamagedData(f"{{source}} is not a metrics object: it holds a {type(value).__name__}")
    return value


class Snapshot:
    """The ledger at one revision."""

    def __init__(self, ledger: Ledger, rev: str, commit: str | None, files: dict[str, str]):
        self.ledger = ledger
        self.rev = rev
        self.commit = commit
        """The commit SHA, or None for the working tree."""
        self.files = files
        """Path -> blob id of every ledger file."""
        self._metrics: dict[str, dict[str, Any] | None] = {}
        self._manifests: dict[bool, dict[str, ExecutionManifest]] = {}
        self.derived: dict[str, Any] = {}
        """What readers compute once per snapshot from its files (e.g. every cell's health)."""

    @property
    def label(self) -> str:
        """``HEAD~1 (abc1234)``, ``abc1234`` or ``workspace``."""
        if self.commit is None:
            return WORKSPACE
        short = self.commit[:7]
        return short if self.commit.startswith(self.rev) else f"{self.rev} ({short})"

    def source(self, path: str) -> str:
        """How messages name ``path`` of this revision: ``path`` or ``path at <label>``."""
        return path if self.commit is None else f"{path} at {self.label}"

    def read(
        self,
        kind: str,
        paths: Iterable[str],
        parse: Callable[[bytes], Any],
        parse_many: Callable[[dict[str, bytes]], dict[str, Any]] | None = None,
        *,
        skip_damaged: bool = False,
    ) -> dict[str, Any]:
        """Path -> parsed content of files of this revision (through the cache).

        ``parse_many``, when given, parses all uncached blobs in one call (vectorised),
        mapping a blob it refuses to the ValueError why. A file that ``parse`` refuses
        (a ValueError) is a CorruptFileError naming it, or with ``skip_damaged`` a warning.
        """
        wanted = {p: self.files[p] for p in paths if p in self.files}
        by_oid: dict[str, str] = {}
        for path, oid in wanted.items():  # files with equal bytes share one blob id
            by_oid.setdefault(oid, path)
        values, errors = self.ledger.parsed(
            kind, by_oid, self.commit, parse, parse_many, label=self.label
        )
        for oid in sorted(errors, key=lambda oid: by_oid[oid]):
            if not skip_damaged:
                raise errors[oid]
            warn_skipped(errors[oid])
        return {path: values[oid] for path, oid in wanted.items() if oid in values}

    def raw(self, paths: Iterable[str]) -> dict[str, bytes]:
        """Path -> bytes of ledger files of this revision, read in one batch, uncached.

        From the working tree for the workspace, else from git objects; paths this
        revision does not hold are left out.
        """
        wanted = [p for p in paths if p in self.files]
        git = self.ledger.git
        if self.commit is None:
            return {p: data for p in wanted if (data := git.read_workspace(p)) is not None}
        blobs = git.read_blobs({self.files[p] for p in wanted})
        return {p: blobs[self.files[p]] for p in wanted if self.files[p] in blobs}

    @cached_property
    def params(self) -> dict[str, Any]:
        """params.yaml at this revision ({} when absent; CorruptFileError when damaged)."""
        data = self.read("params", ["params.yaml"], _parse_params).get("params.yaml")
        return data if isinstance(data, dict) else {}

    @cached_property
    def axis_names(self) -> list[str]:
        """The matrix's axes at this revision, in canonical order."""
        try:
            axes = self.params.get("axes")
        except CorruptFileError as exc:  # cells are still found; their axes by position
            warn_skipped(exc, "its cells are read without its axes")
            axes = None
        if isinstance(axes, dict):
            return canonical_axes(str(a) for a in axes)
        return list(AXIS_ORDER[:2])

    @cached_property
    def cells(self) -> dict[str, CellFiles]:
        """Cell key -> its files: every ``metrics/<key>.json`` that is a cell's metrics."""
        names = self.axis_names
        cells: dict[str, CellFiles] = {}
        for path, oid in self.files.items():
            if not path.startswith("metrics/") or not path.endswith(".json"):
                continue
            key = path[len("metrics/") : -len(".json")]
            parts = key.split("/")
            if parts[0].startswith("_") or not 2 <= len(parts) <= max(len(names), 4):
                continue
            if len(names) == len(parts):
                axis_names = names
            elif len(parts) <= len(AXIS_ORDER):  # another revision's matrix: by position
                axis_names = list(AXIS_ORDER[: len(parts)])
            else:
                continue
            axes = dict(zip(axis_names, parts, strict=True))
            scores = self.files.get(f"metrics/{key}.scores.csv")
            cells[key] = CellFiles(key, axes, oid, scores)
        return dict(sorted(cells.items()))

    def metrics(self, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Cell key -> its metrics dict; a damaged metrics file is left out with a warning."""
        wanted = list(self.cells) if keys is None else [k for k in keys if k in self.cells]
        missing = [k for k in wanted if k not in self._metrics]
        if missing:
            paths = [f"metrics/{k}.json" for k in missing]
            found = self.read("metrics", paths, _parse_metrics, skip_damaged=True)
            for key in missing:
                self._metrics[key] = found.get(f"metrics/{key}.json")
        return {k: v for k in wanted if (v := self._metrics[k]) is not None}

    def scores(self, key: str) -> ScoreTable | None:
        """The per-item scores of one cell, or None when it has none."""
        return self.score_tables([key]).get(key)

    def score_tables(self, keys: Iterable[str]) -> dict[str, ScoreTable]:
        """Cell key -> per-item scores, for the cells that have them.

        A damaged scores file, or one whose rows are not its metrics' ``n``, is refused.
        """
        paths = {f"metrics/{k}.scores.csv": k for k in keys if k in self.cells}
        found = self.read("scores", paths, lambda d: parse_scores(d).to_json())
        tables = {paths[p]: ScoreTable.from_json(v) for p, v in found.items()}
        self._check_rows({k: t.rows for k, t in tables.items()})
        return tables

    def summaries(self, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Cell key -> per-column score summaries (n, mean, sd, clustered SE).

        Damaged or truncated scores files are refused as :meth:`score_tables` does.
        """
        wanted = list(self.cells) if keys is None else list(keys)
        prefetch(self, wanted, _parse_metrics)  # a cache row a cell, for every kind below
        self.metrics(wanted)  # damaged metrics are warned about before damaged scores
        paths = {f"metrics/{k}.scores.csv": k for k in wanted if k in self.cells}
        found = self.read("summary", paths, summarize_file, summarize_files)
        self._check_rows({paths[p]: v["rows"] for p, v in found.items()})
        return {paths[p]: v["columns"] for p, v in found.items()}

    def _check_rows(self, rows: dict[str, int]) -> None:
        """Refuse scores files whose item rows are not the ``n`` their metrics count."""
        metrics = self.metrics(list(rows))
        for key, count in rows.items():
            n = metrics.get(key, {}).get("n")
            if isinstance(n, int) and not isinstance(n, bool) and n != count:
                path = f"metrics/{key}.scores.csv"
                what = "truncated" if count < n else "not the one of these metrics"
                raise CorruptFileError(
                    f"{self.source(path)} has {count} item rows but metrics/{key}.json "
                    f"counts n={n}: the scores file is {what}", restore_hint(path, self.commit),
                )  # fmt: skip

    @cached_property
    def manifest_ids(self) -> list[str]:
        """The executions whose manifests this revision holds, oldest first."""
        ids = []
        for path in self.files:
            parts = path.split("/")
            is_manifest = len(parts) == 3 and parts[0] == "runs" and parts[2] == _MANIFEST
            if is_manifest and EXECUTION_ID_RE.match(parts[1]):
                ids.append(parts[1])
        return sorted(ids)

    def manifests(self, *, skip_damaged: bool = False) -> dict[str, ExecutionManifest]:
        """Every execution manifest of this revision.

        A damaged one is refused, or with ``skip_damaged`` left out with a warning. Parsed
        once per snapshot: health, directions, owners and a diff's experiments all ask.
        """
        if skip_damaged in self._manifests:
            return dict(self._manifests[skip_damaged])
        paths = {f"runs/{i}/{_MANIFEST}": i for i in self.manifest_ids}
        raw = self.read("manifest", paths, _parse_manifest, skip_damaged=skip_damaged)
        from evalledger.manifest import load_manifest

        out = {}
        for path, data in raw.items():
            try:
                hint = restore_hint(path, self.commit)
                out[paths[path]] = load_manifest(data, self.source(path), hint)
            except CorruptFileError as exc:
                if not skip_damaged:
                    raise
                warn_skipped(exc, "that execution is left out")
        self._manifests[skip_damaged] = out
        return dict(out)

    def owners(self, *, skip_damaged: bool = False) -> dict[str, str]:
        """Cell key -> the execution whose results its files hold at this revision.

        The newest completed run of a cell wrote its metrics; older executions of the
        same cell were superseded. A damaged manifest is refused (deleting by owner must
        know every owner), or with ``skip_damaged`` left out with a warning.
        """
        best: dict[str, tuple[datetime, str]] = {}
        for exec_id, manifest in self.manifests(skip_damaged=skip_damaged).items():
            for key, rec in manifest.cells.items():
                if rec.status.value != "completed":
                    continue
                when = rec.finished_at or manifest.updated_at
                if key not in best or when >= best[key][0]:
                    best[key] = (when, exec_id)
        return {k: v[1] for k, v in best.items()}


#: Files read and parsed at a time by :meth:`Ledger.parsed` (a few MB of scores).
_PARSE_CHUNK = 4096
#: Kinds whose files' md5s (health checks them against dvc.lock) are kept while read.
_HASHED_KINDS = {"metrics", "summary", "scores"}


class Ledger:
    """Reads a project's ledger at any revision; see the module docstring."""

    def __init__(self, project: Project, *, use_cache: bool = True) -> None:
        self.project = project
        self.git = GitObjects(project.root)
        self.cache = ParsedCache(project.state_dir / "cache" if use_cache else None)
        self._snapshots: dict[str, Snapshot] = {}
        self.memo: dict[str, dict[str, Any]] = {"metrics": {}, "summary": {}, "md5": {}}
        """Kind -> blob id -> value read ahead (:mod:`~evalledger.ledger.cellread`)."""

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write what was parsed to the cache."""
        self.cache.close()

    def parsed(
        self,
        kind: str,
        by_oid: dict[str, str],
        commit: str | None,
        parse: Callable[[bytes], Any],
        parse_many: Callable[[dict[str, bytes]], dict[str, Any]] | None = None,
        *,
        label: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, CorruptFileError]]:
        """Blob id -> parsed value; cached values first, then git objects (or files).

        ``commit`` is None for the working tree. Blobs that do not parse come back apart
        (blob id -> a CorruptFileError naming ``path at label``), never cached.
        """
        memo = self.memo.get(kind, {})
        values = {oid: memo[oid] for oid in by_oid if oid in memo}
        values.update(self.cache.get_many(kind, [o for o in by_oid if o not in values]))
        missing = [oid for oid in by_oid if oid not in values]
        errors: dict[str, CorruptFileError] = {}
        # In chunks: the bytes of one chunk at a time are held, not every file's at once.
        for start in range(0, len(missing), _PARSE_CHUNK):
            chunk = missing[start : start + _PARSE_CHUNK]
            if commit is None:
                raw = {oid: self.git.read_workspace(by_oid[oid]) for oid in chunk}
                blobs = {oid: data for oid, data in raw.items() if data is not None}
            else:
                blobs = self.git.read_blobs(chunk)
            if parse_many:
                fresh = parse_many(blobs)
            else:
                fresh = {}
                for oid, data in blobs.items():
                    try:
                        fresh[oid] = parse(data)
                    except (ValueError, RecursionError) as exc:
                        fresh[oid] = exc
            if kind in _HASHED_KINDS:  # dvc.lock's md5 of these files is asked next
                for oid, data in blobs.items():
                    self.cache.put("md5", oid, hashlib.md5(data).hexdigest())
            del blobs
            for oid, value in fresh.items():
                if isinstance(value, Exception):
                    path = by_oid[oid]
                    where = path if commit is None else f"{path} at {label or commit[:7]}"
                    errors[oid] = corrupt_file(where, value, restore_hint(path, commit))
                    continue
                values[oid] = value
                self.cache.put(kind, oid, value)
        if missing:
            self.cache.flush()
        return values, errors

    def snapshot(self, rev: str | None = None) -> Snapshot:
        """The ledger at ``rev``; None or ``workspace`` is the working tree."""
        rev = rev or WORKSPACE
        if rev not in self._snapshots:
            if rev == WORKSPACE:
                snap = Snapshot(self, rev, None, self.git.workspace_files(LEDGER_PATHS))
            else:
                commit = self.git.resolve(rev)
                snap = Snapshot(self, rev, commit, self.git.ls_tree(commit, LEDGER_PATHS))
            self._snapshots[rev] = snap
        return self._snapshots[rev]

    def file_history(
        self, path: str, revs: Iterable[str] = ("HEAD",)
    ) -> list[tuple[str, int, str]]:
        """Every committed version of one file, newest first: (commit, time, blob id)."""
        if not self.git.has_commits:
            return []
        commits = [self.git.resolve(r) for r in revs]  # experiment names; close matches
        return [
            (c.commit, c.time, c.new)
            for c in self.git.log_changes([path], commits)
            if c.path == path and c.new is not None
        ]

    @cached_property
    def _execution_index(self) -> dict[str, ExecutionInfo]:
        infos: dict[str, ExecutionInfo] = {}
        if self.git.has_commits:
            infos = index_changes(self.git.log_changes(["runs"], ["HEAD"]))
        for path, oid in self.snapshot(WORKSPACE).files.items():
            parts = path.split("/")
            if len(parts) == 3 and parts[0] == "runs" and parts[2] == _MANIFEST:
                if not EXECUTION_ID_RE.match(parts[1]):
                    continue
                info = infos.get(parts[1])
                if info is None or info.oid != oid:
                    first = info.first_commit if info else None
                    infos[parts[1]] = info = ExecutionInfo(parts[1], oid, None, first)
                info.in_workspace = True
        return dict(sorted(infos.items()))

    @cached_property
    def _other_refs_index(self) -> dict[str, ExecutionInfo]:
        """Executions committed only on other branches, tags or remote-tracking branches."""
        if not self.git.has_commits:
            return {}
        # Commits HEAD reaches are walked but their executions are already indexed; one
        # walk with --source names the ref that holds each of the others.
        changes = self.git.log_changes(["runs"], [*_OTHER_REFS], source=True)
        found = index_changes(changes)
        return {k: v for k, v in sorted(found.items()) if k not in self._execution_index}

    def executions(self, *, all_refs: bool = False) -> list[ExecutionInfo]:
        """Every execution in the history of HEAD and in the working tree, oldest first.

        With ``all_refs``, also those committed only on other branches, tags or
        remote-tracking branches (each with ``ref`` naming where).
        """
        if not all_refs:
            return list(self._execution_index.values())
        both = {**self._execution_index, **self._other_refs_index}
        return [both[k] for k in sorted(both)]

    def find_execution(self, ref: str) -> ExecutionInfo:
        """A run by ID (or any unique part), experiment name or DVC experiment name.

        HEAD's history and the workspace come first, then other branches and tags, then
        DVC experiment commits; see :mod:`evalledger.ledger.resolve`.
        """
        from evalledger.ledger.resolve import find_execution

        return find_execution(self, ref)

    def manifest(self, info: ExecutionInfo) -> ExecutionManifest:
        """The newest version of an execution's manifest; CorruptFileError when damaged."""
        path = f"runs/{info.execution_id}/{_MANIFEST}"
        raw, errors = self.parsed("manifest", {info.oid: path}, info.commit, _parse_manifest)
        if info.oid in errors:
            raise errors[info.oid]
        if info.oid not in raw:
            raise UnknownExecutionError(f"the manifest of {info.execution_id} cannot be read")
        where = path if info.commit is None else f"{path} at {info.commit[:7]}"
        from evalledger.manifest import load_manifest

        return load_manifest(raw[info.oid], where, restore_hint(path, info.commit))

    def home(self, info: ExecutionInfo) -> Snapshot:
        """The revision holding the newest version of an execution and its results."""
        return self.snapshot(info.commit or WORKSPACE)

    def results(self, info: ExecutionInfo) -> dict[str, dict[str, Any] | None]:
        """Cell key -> the execution's metrics for that cell, None where superseded."""
        snap = self.home(info)
        owners = snap.owners(skip_damaged=True)
        keys = list(self.manifest(info).cells)
        found = snap.metrics([k for k in keys if owners.get(k) == info.execution_id])
        return {k: found.get(k) for k in keys}
