"""Parameter sweeps as queued DVC experiments.

A sweep is a list of ``-S key=v1,v2,...`` overrides (DVC's own ``--set-param`` syntax,
parsed with the same Hydra grammar, so ``range(1,4)`` and quoted commas work). They are
expanded into combinations: the cartesian product (``grid``) or the values zipped
position by position (``list``). Every combination is validated against params.yaml
before anything is queued, then each is queued as ``dvc exp run --queue -S ... -n
<prefix>-<i>`` and, on request, run by DVC's queue workers. Each finished experiment is a
revision: ``evalledger leaderboard --rev <name>`` and ``evalledger diff`` read it. A
failed one leaves no experiment: :func:`failure_reasons` reads why from its queue log.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalledger.errors import EXIT_CELLS_FAILED, ConfigError, EvalLedgerError
from evalledger.params import load_params

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from evalledger.project import Project

__all__ = [
    "MODES",
    "QueueTimeoutError",
    "SweepFailedError",
    "SweepPoint",
    "experiment_names",
    "failure_reasons",
    "override_args",
    "plan_sweep",
    "queue_sweep",
    "run_queue",
]

#: How ``-S`` value lists combine: every combination, or the i-th value of each list.
MODES = ("grid", "list")
#: A name prefix DVC accepts as part of ``refs/exps/.../<name>``.
_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")
_DONE = ("Success", "Failed")


class SweepFailedError(EvalLedgerError):
    """Some experiments of a sweep failed."""

    exit_code = EXIT_CELLS_FAILED


class QueueTimeoutError(EvalLedgerError):
    """The queue did not finish the sweep's experiments in time."""

    exit_code = EXIT_CELLS_FAILED


@dataclass(frozen=True)
class SweepPoint:
    """One queued experiment of a sweep."""

    name: str
    params: dict[str, str]
    """Override key -> value, as given to ``dvc exp run -S key=value``."""


def override_args(params: dict[str, str]) -> list[str]:
    """``key=value`` strings for ``dvc exp run -S``."""
    return [f"{k}={v}" for k, v in params.items()]


def _parse(overrides: list[str]) -> list[tuple[str, list[str]]]:
    """Each ``-S`` as (key with its ``+``/``++`` prefix, its values as override strings)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    axes: list[tuple[str, list[str]]] = []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as exc:
            reason = (str(exc).splitlines() or ["not KEY=VALUE"])[0]
            raise ConfigError(
                f"bad override {text!r}: {reason}", "write it as -S key.path=v1,v2,..."
            ) from None
        key = override.get_key_element()
        if key.startswith("~"):
            raise ConfigError(f"{text!r} deletes a key, which a sweep cannot vary",
                              "give the key values to sweep over")  # fmt: skip
        if override.is_sweep_override():
            values = [str(v) for v in override.sweep_string_iterator()]
        else:
            values = [str(override.get_value_element_as_str())]
        if not values:
            raise ConfigError(f"{text!r} gives no values", "list them: -S key=v1,v2")
        if any(k == key for k, _ in axes):
            raise ConfigError(f"-S {key} is given twice", "give all its values in one -S")
        axes.append((key, values))
    return axes


def _combine(axes: list[tuple[str, list[str]]], mode: str) -> list[dict[str, str]]:
    keys = [k for k, _ in axes]
    if mode == "grid":
        return [dict(zip(keys, c, strict=True)) for c in itertools.product(*(v for _, v in axes))]
    lengths = {len(v) for _, v in axes if len(v) > 1}
    if len(lengths) > 1:
        shown = ", ".join(f"{k}: {len(v)}" for k, v in axes)
        raise ConfigError(f"--list needs -S value lists of one length; got {shown}",
                          "give each key the same number of values, or use --grid")  # fmt: skip
    n = lengths.pop() if lengths else 1
    return [{k: v[i] if len(v) > 1 else v[0] for k, v in axes} for i in range(n)]


def _lookup(data: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _no_such_key(data: dict[str, Any], key: str) -> ConfigError:
    """Why a plain ``-S`` key names nothing: an unknown section or entry, or a missing key."""
    from evalledger.params import entry_kinds

    path = key.split(".")
    kinds = entry_kinds(data)
    if path[0] not in data:
        known = list(data)
        close = difflib.get_close_matches(path[0], known, n=1, cutoff=0.6)
        return ConfigError(f"unknown key {path[0]!r} in -S {key}",
                           (f"did you mean {close[0]!r}? " if close else "")
                           + f"top-level keys: {', '.join(known)}")  # fmt: skip
    if path[0] in kinds and len(path) > 1 and isinstance(data[path[0]], dict):
        entries = [str(k) for k in data[path[0]]]
        if path[1] not in entries:
            close = difflib.get_close_matches(path[1], entries, n=1, cutoff=0.6)
            return ConfigError(f"unknown {kinds[path[0]]} {path[1]!r} in -S {key}",
                               (f"did you mean {close[0]!r}? " if close else "")
                               + f"{path[0]}: {', '.join(entries) or 'none'}")  # fmt: skip
    node: Any = data
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    siblings = [str(k) for k in node] if isinstance(node, dict) else []
    close = difflib.get_close_matches(path[-1], siblings, n=1, cutoff=0.6)
    return ConfigError(f"-S {key}: no such key in params.yaml",
                       (f"did you mean {'.'.join([*path[:-1], close[0]])!r}? " if close else "")
                       + f"fix the name, or write +{key} to add it")  # fmt: skip


def _check_keys(data: dict[str, Any], keys: list[str]) -> None:
    """Refuse keys DVC would refuse: a plain key must exist, a ``+`` key must not."""
    for key in keys:
        path = key.lstrip("+").split(".")
        exists = _lookup(data, path)
        if key.startswith("++"):
            continue
        if key.startswith("+") and exists:
            raise ConfigError(f"-S {key}: {key[1:]} is already in params.yaml",
                              f"drop the '+' to override it, or use ++{key[1:]}")  # fmt: skip
        if not key.startswith("+") and not exists:
            raise _no_such_key(data, key)


def plan_sweep(project: Project, overrides: list[str], mode: str = "grid") -> list[dict[str, str]]:
    """The combinations of a sweep, each validated as `run` would; nothing is queued.

    ``overrides`` are ``key=v1,v2,...`` strings; ``mode`` is ``grid`` (cartesian product)
    or ``list`` (zipped; a single value is used in every combination). Every combination
    is checked in full (:mod:`evalledger.execution.validate`): params and plugin settings,
    dvc.yaml's eval stage, and the plugins of the cells its experiment would run built
    (API-key variables set).
    """
    if mode not in MODES:
        raise ConfigError(f"unknown sweep mode {mode!r}; known: {', '.join(MODES)}")
    if not overrides:
        raise ConfigError("a sweep needs at least one -S", "e.g. -S models.m.temperature=0,0.5")
    axes = _parse(overrides)
    _check_keys(load_params(project.params_path), [k for k, _ in axes])
    combos = _combine(axes, mode)
    built: set[tuple[str, str]] = set()
    for combo in combos:
        args = [f"{k}={v}" for k, v in combo.items()]
        try:
            built |= _check_combination(project, args, built)
        except ConfigError as exc:
            if "-S " in exc.message:
                raise
            raise ConfigError(f"-S {' '.join(args)}: {exc.message}", exc.hint) from None
    return combos


def _check_combination(
    project: Project, args: list[str], built: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Validate one combination as its experiment would run; the cells newly built."""
    from evalledger.execution.cell import cell_context
    from evalledger.execution.pipeline import stale_cells
    from evalledger.execution.validate import check_ready, checked_spec, require_dvc_yaml
    from evalledger.matrix import expand

    _, spec = checked_spec(project, args)
    require_dvc_yaml(project, spec, "the experiments would fail")
    stale = stale_cells(project, spec, expand(spec))
    fresh = {(c.key, cell_context(spec, c, project.root)[1]): c for c in stale}
    todo = [c for k, c in fresh.items() if k not in built]
    check_ready(project, spec, todo, args)
    return set(fresh)


@contextlib.contextmanager
def _dvc_repo(project: Project) -> Iterator[Any]:
    """DVC's repository object (its console stays quiet outside DVC's own CLI).

    The current folder is the project's meanwhile: parts of DVC's git layer open the
    repository around the current folder, as under DVC's own CLI.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with contextlib.chdir(project.root), Repo(str(project.root)) as repo:
            yield repo
    except DvcException as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise EvalLedgerError(f"DVC failed: {msg}") from None


def _queue_status(repo: Any) -> dict[str, str]:
    """Name -> status (Queued, Running, Success, Failed) of the queue's named tasks."""
    found: dict[str, str] = {}
    for task in repo.experiments.celery_queue.status():
        if task.get("name"):
            found.setdefault(str(task["name"]), str(task["status"]))
    return found


def _names(taken: set[str], prefix: str, count: int) -> list[str]:
    if not _PREFIX_RE.fullmatch(prefix) or prefix.endswith(".lock"):
        raise ConfigError(f"experiment name prefix {prefix!r} is not allowed",
                          "use letters, digits, '_', '-' and single dots")  # fmt: skip
    pattern = re.compile(re.escape(prefix) + r"-(\d+)$")
    used = [int(m.group(1)) for name in taken if (m := pattern.match(name))]
    start = max(used, default=0) + 1
    return [f"{prefix}-{i}" for i in range(start, start + count)]


def experiment_names(project: Project, prefix: str, count: int) -> list[str]:
    """``<prefix>-<i>`` for ``count`` new experiments.

    Numbered after every name in use (finished experiments and the queue's tasks), so a
    second sweep never collides with the first.
    """
    from evalledger.ledger.gitobjects import GitObjects

    taken = {e.name for e in GitObjects(project.root).experiments()}
    with _dvc_repo(project) as repo:
        taken |= set(_queue_status(repo))
    return _names(taken, prefix, count)


def queue_sweep(
    project: Project, combos: list[dict[str, str]], prefix: str = "sweep"
) -> list[SweepPoint]:
    """Queue each combination as ``dvc exp run --queue -S ... -n <prefix>-<i>``.

    Validate with :func:`plan_sweep` first; the experiments run once queue workers start
    (``dvc queue start`` or :func:`run_queue`).
    """
    from evalledger.ledger.gitobjects import GitObjects

    git = GitObjects(project.root)
    if not git.has_commits:
        raise ConfigError("DVC experiments need a commit to start from",
                          "commit params.yaml and dvc.yaml first")  # fmt: skip
    taken = {e.name for e in git.experiments()}
    points: list[SweepPoint] = []
    with _dvc_repo(project) as repo:
        taken |= set(_queue_status(repo))
        for name, combo in zip(_names(taken, prefix, len(combos)), combos, strict=True):
            repo.experiments.run(params=override_args(combo), queue=True, name=name)
            points.append(SweepPoint(name, combo))
    return points


@contextlib.contextmanager
def _tools_on_path() -> Iterator[None]:
    """Put this interpreter's scripts first on PATH: workers run ``dvc`` and ``evalledger``."""
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{old}"
    try:
        yield
    finally:
        os.environ["PATH"] = old


def run_queue(
    project: Project,
    names: list[str],
    *,
    jobs: int = 1,
    timeout: float | None = None,
    poll: float = 0.5,
    on_update: Callable[[str, str], None] | None = None,
) -> dict[str, str]:
    """Start ``jobs`` queue workers (``dvc queue start -j``) and wait for ``names``.

    Returns name -> final status (``Success`` or ``Failed``). ``on_update(name, status)``
    is called on each change. Stopping the wait (timeout, Ctrl-C) leaves the workers
    running; ``dvc queue status`` shows them.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: dict[str, str] = {}
    with _dvc_repo(project) as repo:
        queue = repo.experiments.celery_queue
        with _tools_on_path():
            queue.start_workers(jobs)
        started = time.monotonic()
        idle_checked = started
        while True:
            status = _queue_status(repo)
            for name in names:
                state = status.get(name, "Unknown")
                if seen.get(name) != state:
                    seen[name] = state
                    if on_update is not None:
                        on_update(name, state)
            if all(seen[n] in _DONE for n in names):
                return {n: seen[n] for n in names}
            now = time.monotonic()
            waiting = [n for n in names if seen[n] not in _DONE]
            if deadline is not None and now > deadline:
                raise QueueTimeoutError(
                    f"{len(waiting)} experiment(s) still queued or running after {timeout:g} s: "
                    f"{', '.join(waiting)}",
                    "the queue keeps working; see `dvc queue status`",
                )
            if now - idle_checked > 15 and "Running" not in seen.values():
                idle_checked = now  # workers can die without running anything
                if not queue.worker_status():
                    raise EvalLedgerError(
                        f"no DVC queue worker is running, and {', '.join(waiting)} "
                        "are still queued",
                        "start one with `dvc queue start`; see `dvc queue logs NAME`",
                    )
            time.sleep(poll)


#: The cause of a failure: a Python exception ending a traceback (``ValueError: bad lr``)
#: or the one-line ``Error: ...`` of a command (evalledger's own).
_CAUSE_RE = re.compile(
    r"^(?:Error: .+|(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\b.*)"
)
_STAGE_RE = re.compile(r"^ERROR: failed to reproduce '([^']+)'")
#: What a reason is cut to.
_REASON_CHARS = 300


def log_reason(log: str) -> str:
    """Why a queued experiment failed, in one line, from its log.

    The last exception or ``Error:`` line, with the stage that DVC's ``ERROR:`` line
    names; else DVC's ``ERROR:`` line, or the log's last line.
    """
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    dvc_error = next((x for x in reversed(lines) if x.startswith("ERROR")), None)
    cause = next((x for x in reversed(lines) if _CAUSE_RE.match(x)), None)
    stage = _STAGE_RE.match(dvc_error) if dvc_error else None
    if cause and stage:
        text = f"stage {stage.group(1)}: {cause}"
    else:
        text = cause or dvc_error or (lines[-1] if lines else "its log is empty")
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def failure_reasons(project: Project, names: list[str]) -> dict[str, str]:
    """Name -> why each of the failed queued experiments ``names`` failed (one line).

    Read from DVC's queue log of the experiment (what ``dvc queue logs NAME`` prints).
    """
    out: dict[str, str] = {}
    with _dvc_repo(project) as repo:
        queue = repo.experiments.celery_queue
        entries = queue.match_queue_entry_by_name(set(names), queue.iter_failed())
        for name in names:
            entry = entries.get(name)
            try:
                log = Path(queue.proc[entry.stash_rev].stdout).read_text(errors="replace")
            except (AttributeError, KeyError, OSError, TypeError):
                out[name] = "it failed before it started (no log); see `dvc queue logs`"
                continue
            out[name] = log_reason(log)
    return out
