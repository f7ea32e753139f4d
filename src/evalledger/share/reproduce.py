"""``evalledger reproduce``: re-run a committed revision's cells and check the results.

The revision is checked out into a temporary, detached git worktree, and its cells are
re-run there by ``python -m evalledger -C <worktree> run --force`` in a fresh process:
that commit's params.yaml and project code (python callables, data files in git, and
DVC-tracked inputs, copied out of the project's DVC cache) apply,
nothing leaks from this process's imports, ``sys.path`` or working directory, and the
run's lock, checkpoints and DVC cache live inside the worktree, which is always removed
afterwards. The user's working tree, index and DVC cache are never touched.

Each cell's new metrics are compared with the recorded ones: the score metrics exactly
(up to 1e-9); metrics that vary from run to run (latency, timings) are ignored. When a
metric differs and both runs have per-item scores, a paired test on the shared items
(McNemar for 0/1 scores, else a paired t-test) decides whether the difference is within
the noise of sampled decoding. The verdicts are made in ``share/verdicts.py``.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalledger.errors import ConfigError, EvalLedgerError
from evalledger.gitinfo import git
from evalledger.share.verdicts import (
    CellCheck,
    ReproduceReport,
    compare_cell,
    is_ignored,
    numeric_metrics,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from evalledger.ledger.history import Snapshot
    from evalledger.ledger.scores import ScoreTable
    from evalledger.project import Project

__all__ = ["reproduce", "temporary_worktree"]

#: ``evalledger run`` warns that the cells were evaluated before: here that is the point.
_EXPECTED_WARNING = "already evaluated with the same configuration"
_AXIS_FLAGS = {"model": "--models", "benchmark": "--benchmarks",
               "prompt_set": "--prompt-sets", "decoding": "--decodings"}  # fmt: skip


# -------------------------------------------------------------------------- worktree


@contextmanager
def temporary_worktree(root: Path, commit: str) -> Iterator[Path]:
    """A detached worktree of ``commit`` in a temporary folder, removed on any exit.

    Hooks are disabled for the checkout (a DVC post-checkout hook would run there).
    Yields the worktree's top-level folder.
    """
    tmp = Path(tempfile.mkdtemp(prefix="evalledger-reproduce-"))
    tree = tmp / "tree"
    try:
        git(root, "-c", f"core.hooksPath={os.devnull}", "worktree", "add", "--detach",
             "--quiet", str(tree), commit)  # fmt: skip
        yield tree
    finally:
        git(root, "worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        git(root, "worktree", "prune", check=False)


# --------------------------------------------------------------------------- running


def _known_cells(snap: Snapshot) -> dict[str, dict[str, str]]:
    """Cell key -> axes of the matrix at the revision (params.yaml), in order."""
    from evalledger.matrix import expand
    from evalledger.params import parse_spec

    try:
        cells = expand(parse_spec(snap.params), {})
    except EvalLedgerError:
        return {}
    return {c.key: dict(c.axes) for c in cells}


def _select(
    snap: Snapshot, cells: list[str], filters: dict[str, list[str]], *, required: bool = True
) -> tuple[list[str], dict[str, dict[str, str]], list[str]]:
    """The cells to check, the axes of the runnable ones, and notes about skipped ones.

    No cell at all is an error when ``required`` (there are no stages to re-run either).
    """
    matrix = _known_cells(snap)
    recorded = {k: c.axes for k, c in snap.cells.items()}
    known = {**recorded, **matrix}
    notes = []
    if cells:
        unknown = [c for c in cells if c not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(known), n=3, cutoff=0.5)
            hint = f"known cells: {', '.join(known) or 'none'}"
            if close:
                hint = f"did you mean {', '.join(close)}? {hint}"
            raise ConfigError(f"unknown cell {unknown[0]!r} at {snap.label}", hint)
        selected = list(dict.fromkeys(cells))
    else:
        selected = [k for k in recorded if k in matrix]
        tracked = {key for m in snap.manifests(skip_damaged=True).values()
                   if m.kind == "experiment" for key in m.cells}  # fmt: skip
        stale = [k for k in recorded if k not in matrix and k not in tracked]
        if tracked & set(recorded):  # a training stage rewrites them: judged with it
            notes.append(f"{len(tracked & set(recorded))} cell(s) of tracked runs are "
                         "judged with the stage that writes them")  # fmt: skip
        if stale:
            notes.append(f"{len(stale)} cell(s) with metrics but not in params.yaml at "
                         f"{snap.label} were skipped (e.g. {stale[0]})")  # fmt: skip
    for axis, values in filters.items():
        if not values:
            continue
        seen = {a.get(axis) for a in known.values()} - {None}
        bad = [v for v in values if v not in seen]
        if bad:
            raise ConfigError(f"unknown {axis} {bad[0]!r} at {snap.label}",
                              f"known: {', '.join(sorted(str(s) for s in seen))}")  # fmt: skip
        selected = [k for k in selected if known[k].get(axis) in values]
    if not selected and required:
        raise ConfigError(f"no cells or stages to reproduce at {snap.label}",
                          "commit an evaluation or a dvc.yaml stage first")  # fmt: skip
    return selected, {k: matrix[k] for k in selected if k in matrix}, notes


def _run_groups(axes: dict[str, dict[str, str]]) -> list[dict[str, list[str]]]:
    """Axis filters for ``evalledger run`` that cover exactly the given cells.

    One run when the cells form a full product of their axis values; otherwise one run
    per combination of the non-benchmark axes.
    """
    if not axes:
        return []
    names = list(next(iter(axes.values())))
    values = {n: list(dict.fromkeys(a[n] for a in axes.values())) for n in names}
    if math.prod(len(v) for v in values.values()) == len(axes):
        return [values]
    groups: dict[tuple[str, ...], list[str]] = {}
    for a in axes.values():
        rest = tuple(a[n] for n in names if n != "benchmark")
        groups.setdefault(rest, []).append(a["benchmark"])
    out = []
    for rest, benches in groups.items():
        others = [n for n in names if n != "benchmark"]
        group = {n: [v] for n, v in zip(others, rest, strict=True)}
        group["benchmark"] = benches
        out.append(group)
    return out


def _run_in(
    root: Path, group: dict[str, list[str]], jobs: int | None, log: Callable[[str], None]
) -> tuple[int, str | None]:
    """``evalledger run --force`` in a fresh interpreter; its output goes to ``log``.

    Returns the exit code and the last ``Error:`` line, if any.
    """
    cmd = [sys.executable, "-P", "-m", "evalledger", "-C", str(root), "run", "--force"]
    for axis, vals in group.items():
        cmd += [_AXIS_FLAGS[axis], ",".join(vals)]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)  # fmt: skip
    error = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Error: "):
                error = line[len("Error: ") :].strip()
            if _EXPECTED_WARNING not in line:
                log(line.rstrip("\n"))
        return proc.wait(), error
    finally:
        if proc.poll() is None:  # interrupted: the child got the same SIGINT; give it time
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _checkout_data(root: Path, project: Project) -> str | None:
    """Restore the worktree's DVC-tracked inputs (``*.dvc`` files) from the user's cache.

    The worktree reads the project's cache only for this checkout (copies, no links);
    the run afterwards writes to the worktree's own cache. Returns a note on failure.
    """
    tracked = git(root, "ls-files", "--", "*.dvc").split()
    tracked = [t for t in tracked if not t.startswith(".dvc/")]
    if not tracked:
        return None

    def dvc(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=where,
                              capture_output=True, text=True, check=False)  # fmt: skip

    cache = dvc(project.root, "cache", "dir").stdout.strip()
    local = root / ".dvc" / "config.local"
    try:
        if cache:
            dvc(root, "config", "--local", "cache.dir", cache)
            dvc(root, "config", "--local", "cache.type", "copy")
        proc = dvc(root, "checkout", *tracked)
    finally:
        local.unlink(missing_ok=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"dvc checkout of {len(tracked)} data file(s) failed: " + (
            lines[-1] if lines else str(proc.returncode)
        )
    return None


def _cell_statuses(root: Path, before: set[str]) -> dict[str, tuple[str, str | None]]:
    """Cell key -> (status, error) from the executions the runs created."""
    from evalledger.manifest import read_manifest

    out: dict[str, tuple[str, str | None]] = {}
    runs = root / "runs"
    for path in sorted(runs.glob("*/manifest.yaml")) if runs.is_dir() else []:
        if path.parent.name in before:
            continue
        for key, rec in read_manifest(path).cells.items():
            out[key] = (rec.status.value, rec.error)
    return out


def _read_new(root: Path, key: str) -> tuple[dict[str, Any] | None, ScoreTable | None]:
    from evalledger.ledger.scores import parse_scores

    metrics_file = root / "metrics" / f"{key}.json"
    scores_file = root / "metrics" / f"{key}.scores.csv"
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError):
        return None, None
    scores = parse_scores(scores_file.read_bytes()) if scores_file.is_file() else None
    return metrics if isinstance(metrics, dict) else None, scores


def reproduce(
    project: Project,
    rev: str = "HEAD",
    *,
    cells: list[str] | None = None,
    filters: dict[str, list[str]] | None = None,
    stages: list[str] | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    rtol: float = 0.05,
    jobs: int | None = None,
    log: Callable[[str], None] | None = None,
) -> ReproduceReport:
    """Re-run ``rev``'s cells and DVC stages in a temporary worktree; compare with the record.

    ``cells`` (keys) or ``filters`` (axis -> values) select cells, ``stages`` (names) the
    user's dvc.yaml stages; with none of them, every cell with metrics at ``rev`` and
    every stage. Naming cells only re-runs no stage, and naming stages only no cell.
    A stage's differing metrics within ``rtol`` are ``consistent``. ``log`` receives the
    runs' output lines.
    """
    from evalledger.ledger.gitobjects import WORKSPACE
    from evalledger.ledger.history import Ledger
    from evalledger.share.stages import read_stages, rerun_stages, select_stages

    log = log or (lambda line: None)
    pick_cells = bool(cells) or any((filters or {}).values())
    with Ledger(project) as ledger:
        if rev == WORKSPACE:
            raise ConfigError("reproduce needs a commit, not the workspace",
                              "commit the results first (`evalledger run --commit`)")  # fmt: skip
        snap = ledger.snapshot(rev)
        assert snap.commit is not None
        prefix = git(project.root, "rev-parse", "--show-prefix").strip()
        worktree = temporary_worktree(project.root, snap.commit)
    with worktree as tree:
        root = tree / prefix if prefix else tree
        user_stages = read_stages(root)
        chosen = [] if pick_cells and not stages else select_stages(user_stages, stages or [],
                                                                    snap.label)  # fmt: skip
        selected: list[str] = []
        runnable: dict[str, dict[str, str]] = {}
        notes: list[str] = []
        if not stages or pick_cells:
            selected, runnable, notes = _select(snap, cells or [], filters or {},
                                                required=pick_cells or not chosen)  # fmt: skip
        with Ledger(project) as ledger:  # the commit's, even if HEAD moved meanwhile
            at = ledger.snapshot(snap.commit)
            recorded = at.metrics(selected)
            recorded_scores = at.score_tables(selected)
        to_run = {k: a for k, a in runnable.items() if k in recorded}
        checks: dict[str, CellCheck] = {}
        ignored: set[str] = set()
        before = {p.name for p in (root / "runs").iterdir()} if (root / "runs").is_dir() else set()
        note = _checkout_data(root, project) if to_run or chosen else None
        if note:
            notes.append(note + " (`dvc pull` in the project first?)")
        stage_checks = rerun_stages(root, chosen, log, rtol=rtol) if chosen else []
        run_error = None
        for group in _run_groups(to_run):
            code, error = _run_in(root, group, jobs, log)
            if code not in (0, 1):  # 1: some cells failed, which the verdicts say
                run_error = run_error or error or f"the run exited with {code}"
        statuses = _cell_statuses(root, before)
        for key in selected:
            if key not in recorded:
                checks[key] = CellCheck(key, "missing", note=f"no metrics at {snap.label}")
                continue
            if key not in to_run:
                checks[key] = CellCheck(key, "failed", note=f"not in params.yaml at {snap.label}")
                continue
            status, error = statuses.get(key, ("not run", None))
            new, new_scores = _read_new(root, key)
            if status != "completed" or new is None:
                reason = error or run_error or f"status {status}"
                checks[key] = CellCheck(key, "failed", note=reason)
                continue
            ignored.update(
                k for k in [*numeric_metrics(recorded[key]), *numeric_metrics(new)] if is_ignored(k)
            )
            checks[key] = compare_cell(
                key, recorded[key], new, recorded_scores.get(key), new_scores,
                alpha=alpha, confidence=confidence,
            )  # fmt: skip
    ordered = stage_checks + [checks[k] for k in selected]
    return ReproduceReport(snap.rev, snap.commit, alpha, ordered, sorted(ignored), notes)
