"""Finding a run by ID, by experiment name or by DVC experiment, wherever it lives.

A reference is tried, in order, as

1. an execution ID, in HEAD's history and the workspace, on other branches and tags, or
   only in a DVC experiment's commit (``refs/exps/...``, which no branch reaches);
2. the name of a DVC experiment (``dvc exp run -n NAME``): the run that experiment's
   commit added or changed;
3. the ``name`` of a tracked run (``tracker.experiment(name=...)``, the manifest field);
4. any unique part of an execution ID.

An ambiguous reference is one line naming the candidates. Everything is read from git
objects (``ls-tree`` of each experiment commit against its baseline), never checked out.
"""

from __future__ import annotations

import difflib
import weakref
from typing import TYPE_CHECKING, Any, Protocol

from evalledger.errors import CorruptFileError, UnknownExecutionError, UnknownRevisionError
from evalledger.ledger.execinfo import ExecutionInfo
from evalledger.manifestview import EXECUTION_ID_RE, parse_manifest_file

if TYPE_CHECKING:
    from collections.abc import Callable

    from evalledger.ledger.gitobjects import ExperimentRef, GitObjects


class Ledger(Protocol):
    """What is read of :class:`evalledger.ledger.history.Ledger` (which calls in here)."""

    git: GitObjects

    @property
    def _execution_index(self) -> dict[str, ExecutionInfo]: ...

    @property
    def _other_refs_index(self) -> dict[str, ExecutionInfo]: ...

    def parsed(
        self,
        kind: str,
        by_oid: dict[str, str],
        commit: str | None,
        parse: Callable[[bytes], Any],
        parse_many: Callable[[dict[str, bytes]], dict[str, Any]] | None = None,
        *,
        label: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, CorruptFileError]]: ...


__all__ = ["experiment_revisions", "find_execution", "revision_of", "run_names"]

_MANIFEST = "manifest.yaml"
_SHOWN = 5
#: Per ledger: DVC experiment name -> its runs, and the runs found only in experiments.
_EXPERIMENTS: weakref.WeakKeyDictionary[Ledger, tuple[dict[str, list[ExecutionInfo]],
                                                      dict[str, ExecutionInfo]]] = (
    weakref.WeakKeyDictionary()
)  # fmt: skip
_NAMES: weakref.WeakKeyDictionary[Ledger, dict[str, list[str]]] = weakref.WeakKeyDictionary()


def _manifests(tree: dict[str, str]) -> dict[str, str]:
    """Execution ID -> blob id of ``runs/<id>/manifest.yaml`` in an ``ls-tree``."""
    out = {}
    for path, oid in tree.items():
        parts = path.split("/")
        if len(parts) == 3 and parts[2] == _MANIFEST and EXECUTION_ID_RE.match(parts[1]):
            out[parts[1]] = oid
    return out


def _experiments(
    ledger: Ledger,
) -> tuple[dict[str, list[ExecutionInfo]], dict[str, ExecutionInfo]]:
    """DVC experiment name -> the runs its commit added or changed; runs only there."""
    if ledger in _EXPERIMENTS:
        return _EXPERIMENTS[ledger]
    by_name: dict[str, list[ExecutionInfo]] = {}
    only: dict[str, ExecutionInfo] = {}
    known = {**ledger._other_refs_index, **ledger._execution_index}
    baselines: dict[str, dict[str, str]] = {}
    exps: list[ExperimentRef] = ledger.git.experiments() if ledger.git.has_commits else []
    for exp in exps:
        if exp.baseline not in baselines:
            baselines[exp.baseline] = _manifests(ledger.git.ls_tree(exp.baseline, ["runs"]))
        base = baselines[exp.baseline]
        runs = by_name.setdefault(exp.name, [])
        for run_id, oid in sorted(_manifests(ledger.git.ls_tree(exp.commit, ["runs"])).items()):
            if base.get(run_id) == oid:
                continue
            info = ExecutionInfo(run_id, oid, exp.commit, exp.commit,
                                 committed_time=exp.time, ref=f"exp {exp.name}")  # fmt: skip
            runs.append(info)
            if run_id not in known and run_id not in only:
                only[run_id] = info  # experiments are newest first: the newest version
    _EXPERIMENTS[ledger] = (by_name, only)
    return by_name, only


def _all(ledger: Ledger) -> dict[str, ExecutionInfo]:
    """Every execution: HEAD and the workspace first, then other refs, then experiments."""
    return {**_experiments(ledger)[1], **ledger._other_refs_index, **ledger._execution_index}


def run_names(ledger: Ledger) -> dict[str, list[str]]:
    """Tracked run name -> the IDs of the runs with that name (manifest field ``name``)."""
    if ledger in _NAMES:
        return _NAMES[ledger]
    infos = _all(ledger)
    names: dict[str, list[str]] = {}
    for committed in (False, True):
        group = {i.oid: f"runs/{i.execution_id}/{_MANIFEST}" for i in infos.values()
                 if (i.commit is not None) == committed}  # fmt: skip
        if not group:
            continue
        commit = next(i.commit for i in infos.values() if (i.commit is not None) == committed)
        values, _ = ledger.parsed("manifest", group, commit, parse_manifest_file)
        for info in infos.values():
            data: Any = values.get(info.oid)
            name = data.get("name") if isinstance(data, dict) else None
            if isinstance(name, str) and (info.commit is not None) == committed:
                names.setdefault(name, []).append(info.execution_id)
    _NAMES[ledger] = names
    return names


def _ambiguous(what: str, ids: list[str]) -> UnknownExecutionError:
    shown = ", ".join(ids[:_SHOWN]) + (f" (+{len(ids) - _SHOWN} more)" if len(ids) > _SHOWN else "")
    return UnknownExecutionError(f"{what} is ambiguous: it matches runs {shown}",
                                 "give a run ID (see `evalledger list`)")  # fmt: skip


def find_execution(ledger: Ledger, ref: str) -> ExecutionInfo:
    """A run by ID, DVC experiment name, run name or unique part of an ID (see above)."""
    index = ledger._execution_index
    if ref in index:
        return index[ref]
    everything = _all(ledger)
    if ref in everything:
        return everything[ref]
    by_exp = _experiments(ledger)[0]
    if by_exp.get(ref):
        runs = {i.execution_id: i for i in by_exp[ref]}
        if len(runs) == 1:
            return next(iter(runs.values()))
        raise _ambiguous(f"DVC experiment {ref!r}", list(runs))
    named = run_names(ledger).get(ref)
    if named:
        ids = list(dict.fromkeys(named))
        if len(ids) == 1:
            return everything[ids[0]]
        raise _ambiguous(f"experiment name {ref!r}", ids)
    for pool in (index, everything):
        matches = [i for i in pool if ref in i]
        if len(matches) == 1:
            return pool[matches[0]]
        if matches:
            raise _ambiguous(f"execution {ref!r}", matches)
    if ref in by_exp:
        hint = f"use it as a revision (`evalledger diff HEAD {ref}`)"
        raise UnknownExecutionError(f"DVC experiment {ref!r} holds no tracked run", hint)
    choices = [*everything, *run_names(ledger), *by_exp]
    close = difflib.get_close_matches(ref, choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `evalledger list`"
    raise UnknownExecutionError(f"unknown execution {ref!r}", hint)


def revision_of(ledger: Ledger, ref: str) -> str:
    """``ref`` itself when git (or DVC) resolves it as a revision; else its run's home.

    A run (ID, name or DVC experiment) is at the commit that last changed it, or the
    workspace when that is uncommitted. Neither is the revision's one-line error.
    """
    from evalledger.ledger.gitobjects import WORKSPACE

    if ref == WORKSPACE:
        return ref
    try:
        ledger.git.resolve(ref)
        return ref
    except UnknownRevisionError as rev_err:
        try:
            info = find_execution(ledger, ref)
        except UnknownExecutionError as exec_err:
            if "ambiguous" in exec_err.message:
                raise exec_err from None
            raise rev_err from None  # not a run either: the revision's own close matches
    return info.commit or WORKSPACE


def experiment_revisions(ledger: Ledger) -> list[str]:
    """Every DVC experiment as a revision, newest first: its name, or commit when shared."""
    exps = ledger.git.experiments() if ledger.git.has_commits else []
    if not exps:
        hint = "run some first (`dvc exp run`, or `evalledger sweep`)"
        raise UnknownRevisionError("there are no DVC experiments", hint)
    counts: dict[str, int] = {}
    for exp in exps:
        counts[exp.name] = counts.get(exp.name, 0) + 1
    return [e.name if counts[e.name] == 1 else e.commit for e in exps]
