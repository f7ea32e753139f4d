"""A ledger factory: a git+DVC project holding several commits of hand-made results.

Every number is chosen by hand so that tests can recompute it: per-item scores are
0/1, a cell's metrics are exactly the means of its scores CSV, and each change between
revisions has known discordant-pair counts (so its exact McNemar p-value is known).

History of the built project (branch ``main``)::

    init  make_project(): scaffold, params.yaml, dvc.yaml
    v1    cells alpha/qa 20/40, beta/qa 30/40, gamma/qa 24/40, alpha/math 12/16 (+4
          errored), beta/math 12/20 (clustered); executions A (all five cells) and B
          (partial: re-ran alpha/math later than A, gamma/qa failed)
    v2    alpha/qa 29/40 (+10 -1: significant improvement), beta/qa 22/40 (+1 -9:
          significant regression), gamma/qa 22/40 (+1 -3: not significant), beta/math
          removed, gamma/math added (no scores CSV), params models.alpha.seed 1 -> 2;
          execution C
    v3    gamma/qa 21/40 (-1: not significant); execution D; execution B deleted
    workspace (uncommitted)  alpha/math 14/16 (+2); execution E (untracked)

Also: tags v1/v2/v3, branch ``release`` at v1, and a DVC experiment ``myexp`` (ref
``refs/exps/<v1[:2]>/<v1[2:]>/myexp``) whose commit has alpha/qa at 36/40.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from conftest import git, make_project
from evalledger.manifest import (
    CellRecord,
    CellStatus,
    ExecutionManifest,
    ExecutionStatus,
    GitState,
    write_manifest,
)
from evalledger.project import Project

HEADER = (
    "id,category,correct,score,partial,formatted,latency_ms,prompt_tokens,completion_tokens,error"
)

PARAMS_V1 = """\
axes:
  model: [alpha, beta, gamma]
  benchmark: [qa, math]
models:
  alpha: {adapter: baseline, strategy: solver, error_rate: 0.1, seed: 1}
  beta: {adapter: baseline, strategy: solver, error_rate: 0.2, seed: 2}
  gamma: {adapter: baseline, strategy: adder}
benchmarks:
  qa: {loader: arith, n_items: 40, seed: 1, difficulty: easy}
  math: {loader: arith, n_items: 20, seed: 2, difficulty: hard}
run:
  jobs: 2
"""
PARAMS_V2 = PARAMS_V1.replace("error_rate: 0.1, seed: 1}", "error_rate: 0.1, seed: 2}")
assert PARAMS_V2 != PARAMS_V1

QA_N, MATH_N = 40, 20

EXEC_A = "exec_2026-01-01_100000_aaaa0001"
EXEC_B = "exec_2026-01-02_100000_bbbb0002"
EXEC_C = "exec_2026-01-03_100000_cccc0003"
EXEC_D = "exec_2026-01-04_100000_dddd0004"
EXEC_E = "exec_2026-01-05_100000_eeee0005"


@dataclass
class Cell:
    """One cell's per-item results: which scored items are correct, and errored items."""

    bench: str
    n_scored: int
    correct: set[int]
    errored: int = 0
    cluster_size: int = 0
    """Items i share cluster ``c{i // cluster_size}`` (0: no cluster column)."""
    with_scores: bool = True

    @property
    def n(self) -> int:
        return self.n_scored + self.errored

    @property
    def accuracy(self) -> float:
        return len(self.correct) / self.n_scored

    @property
    def error_rate(self) -> float:
        return self.errored / self.n

    def values(self) -> list[int]:
        return [1 if i in self.correct else 0 for i in range(self.n_scored)]

    def item_id(self, i: int) -> str:
        return f"{self.bench}-{i:03d}"

    def metrics(self) -> dict[str, object]:
        acc = self.accuracy
        return {
            "accuracy": acc,
            "partial_accuracy": acc,
            "format_accuracy": 1.0,
            "mean_score": acc,
            "n": self.n,
            "scored": self.n_scored,
            "correct": len(self.correct),
            "errors": self.errored,
            "error_rate": self.error_rate,
            "latency_ms": {"mean": 5.0, "p50": 5.0, "p95": 5.0},
            "prompt_tokens": 10 * self.n_scored,
            "completion_tokens": 5 * self.n_scored,
        }

    def scores_csv(self) -> str:
        header = HEADER + (",cluster" if self.cluster_size else "")
        lines = [header]
        for i, v in enumerate(self.values()):
            row = f"{self.item_id(i)},cat{i % 2},{v},{float(v)},{v},1,5.0,10,5,"
            if self.cluster_size:
                row += f",c{i // self.cluster_size}"
            lines.append(row)
        for j in range(self.errored):
            row = f"{self.item_id(self.n_scored + j)},cat0,0,0.0,0,0,0.0,10,0,TimeoutError: slow"
            if self.cluster_size:
                row += ",c0"
            lines.append(row)
        return "\n".join(lines) + "\n"


def _range(lo: int, hi: int) -> set[int]:
    return set(range(lo, hi))


# The cells, revision by revision (see the module docstring).
V1: dict[str, Cell] = {
    "alpha/qa": Cell("qa", QA_N, _range(0, 20)),
    "beta/qa": Cell("qa", QA_N, _range(0, 30)),
    "gamma/qa": Cell("qa", QA_N, _range(0, 24)),
    "alpha/math": Cell("math", 16, _range(0, 12), errored=4),
    "beta/math": Cell("math", MATH_N, {0, 1, 2, 4, 5, 8, 9, 10, 12, 13, 16, 17}, cluster_size=4),
}
V2: dict[str, Cell] = {
    "alpha/qa": Cell("qa", QA_N, _range(1, 30)),  # loses 0, gains 20..29
    "beta/qa": Cell("qa", QA_N, _range(9, 31)),  # loses 0..8, gains 30
    "gamma/qa": Cell("qa", QA_N, _range(3, 25)),  # loses 0..2, gains 24
    "alpha/math": V1["alpha/math"],
    "gamma/math": Cell("math", 48, _range(0, 30), errored=2, with_scores=False),
}
V3: dict[str, Cell] = {**V2, "gamma/qa": Cell("qa", QA_N, _range(4, 25))}  # loses 3
WORKSPACE: dict[str, Cell] = {**V3, "alpha/math": Cell("math", 16, _range(0, 14), errored=4)}
EXPERIMENT: dict[str, Cell] = {**V1, "alpha/qa": Cell("qa", QA_N, _range(0, 36))}


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts, by hand."""
    m = a_only + b_only
    if m == 0:
        return 1.0
    k = min(a_only, b_only)
    return min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2**m)


def discordant(old: Cell, new: Cell) -> tuple[int, int]:
    """(#items right before and wrong after, #items wrong before and right after)."""
    shared = range(min(old.n_scored, new.n_scored))
    a_only = sum(1 for i in shared if i in old.correct and i not in new.correct)
    b_only = sum(1 for i in shared if i not in old.correct and i in new.correct)
    return a_only, b_only


def newcombe_ci(old: Cell, new: Cell, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's square-and-add CI of new - old accuracy, built on scipy's Wilson intervals."""
    import scipy.stats

    n = old.n_scored
    both = len(old.correct & new.correct)
    a_only, b_only = discordant(old, new)
    neither = n - both - a_only - b_only
    p_new, p_old = (both + b_only) / n, (both + a_only) / n
    w_new = scipy.stats.binomtest(both + b_only, n).proportion_ci(confidence, "wilson")
    w_old = scipy.stats.binomtest(both + a_only, n).proportion_ci(confidence, "wilson")
    # Newcombe (1998) method 10: phi with its continuity correction.
    cross = both * neither - b_only * a_only
    cross = cross - n / 2 if cross > n / 2 else (0 if cross >= 0 else cross)
    margins = (both + b_only) * (n - both - b_only) * (both + a_only) * (n - both - a_only)
    phi = cross / math.sqrt(margins) if margins else 0.0
    dl, uu = p_new - w_new.low, w_old.high - p_old
    ll, ul = p_old - w_old.low, w_new.high - p_new
    low = p_new - p_old - math.sqrt(dl**2 + uu**2 - 2 * phi * dl * uu)
    high = p_new - p_old + math.sqrt(ll**2 + ul**2 - 2 * phi * ll * ul)
    return low, high


def write_cells(root: Path, cells: dict[str, Cell]) -> None:
    """Write the metrics (and scores) of these cells; delete other cells' files."""
    metrics = root / "metrics"
    for path in metrics.rglob("*"):
        if path.is_file() and path.name != ".gitkeep":
            path.unlink()
    for key, cell in cells.items():
        base = metrics / key
        base.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{base}.json").write_text(json.dumps(cell.metrics(), indent=2) + "\n")
        if cell.with_scores:
            Path(f"{base}.scores.csv").write_text(cell.scores_csv())


def _t(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def _record(key: str, cell: Cell | None, status: CellStatus, finished: datetime) -> CellRecord:
    model, bench = key.split("/")
    done = cell.n_scored if cell and status == CellStatus.COMPLETED else 0
    return CellRecord(
        axes={"model": model, "benchmark": bench},
        stage=f"eval@{model}-{bench}",
        experiment=f"{model}-{bench}-0000abcd",
        config_hash=f"{model}{bench}".ljust(16, "0")[:16],
        status=status,
        examples_completed=done,
        examples_total=cell.n if cell else None,
        examples_errored=cell.errored if cell and status == CellStatus.COMPLETED else 0,
        error="RuntimeError: boom" if status == CellStatus.FAILED else None,
        started_at=finished,
        finished_at=finished,
        attempts=1,
    )


def write_execution(
    root: Path,
    exec_id: str,
    day: int,
    cells: dict[str, tuple[Cell | None, CellStatus]],
    params: str,
    commit: str | None,
    overrides: list[str] | None = None,
) -> ExecutionManifest:
    """Write ``runs/<exec_id>/manifest.yaml`` with the given cells."""
    records = {k: _record(k, c, s, _t(day, 10, 5)) for k, (c, s) in cells.items()}
    failed = any(s == CellStatus.FAILED for _, s in cells.values())
    manifest = ExecutionManifest(
        execution_id=exec_id,
        created_at=_t(day),
        updated_at=_t(day, 10, 5),
        status=ExecutionStatus.PARTIAL if failed else ExecutionStatus.COMPLETED,
        command=["evalledger", "run", *[x for o in overrides or [] for x in ("-S", o)]],
        overrides=overrides or [],
        config=yaml.safe_load(params),
        git=GitState(commit=commit, branch="main", dirty=False, code_hash="c0de" * 4),
        jobs=2,
        cells=records,
    )
    write_manifest(root / "runs" / exec_id / "manifest.yaml", manifest)
    return manifest


@dataclass
class Built:
    """A built ledger project and the SHAs of its commits."""

    project: Project
    shas: dict[str, str] = field(default_factory=dict)
    """Name (init, v1, v2, v3, exp) -> full commit SHA."""

    @property
    def root(self) -> Path:
        return self.project.root

    def short(self, name: str) -> str:
        return self.shas[name][:7]


def _commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


def build_ledger(root: Path) -> Built:
    """Build the project described in the module docstring at ``root``."""
    project = make_project(root, PARAMS_V1)
    git(root, "branch", "-M", "main")
    built = Built(project, {"init": git(root, "rev-parse", "HEAD").strip()})
    init = built.shas["init"]
    done, failed = CellStatus.COMPLETED, CellStatus.FAILED

    # v1: executions A (all cells) and B (alpha/math again, later; gamma/qa failed).
    write_cells(root, V1)
    write_execution(root, EXEC_A, 1, {k: (c, done) for k, c in V1.items()}, PARAMS_V1, init)
    write_execution(
        root,
        EXEC_B,
        2,
        {"alpha/math": (V1["alpha/math"], done), "gamma/qa": (V1["gamma/qa"], failed)},
        PARAMS_V1,
        init,
        overrides=["run.jobs=1"],
    )
    built.shas["v1"] = v1 = _commit(root, "v1: first results")
    git(root, "tag", "v1")
    git(root, "branch", "release", "v1")

    # A DVC experiment off v1 (DVC's ref layout), on a commit outside main's history.
    git(root, "checkout", "-q", "-b", "exp-tmp")
    write_cells(root, EXPERIMENT)
    built.shas["exp"] = exp = _commit(root, "experiment")
    git(root, "update-ref", f"refs/exps/{v1[:2]}/{v1[2:]}/myexp", exp)
    git(root, "checkout", "-q", "main")
    git(root, "branch", "-q", "-D", "exp-tmp")

    # v2: three qa cells change, beta/math removed, gamma/math added, a param changes.
    (root / "params.yaml").write_text(PARAMS_V2)
    write_cells(root, V2)
    c_cells = {k: (V2[k], done) for k in ("alpha/qa", "beta/qa", "gamma/qa", "gamma/math")}
    write_execution(root, EXEC_C, 3, c_cells, PARAMS_V2, v1)
    built.shas["v2"] = v2 = _commit(root, "v2: second results")
    git(root, "tag", "v2")

    # v3: gamma/qa drops one item; execution B is deleted.
    write_cells(root, V3)
    write_execution(root, EXEC_D, 4, {"gamma/qa": (V3["gamma/qa"], done)}, PARAMS_V2, v2)
    shutil.rmtree(root / "runs" / EXEC_B)
    built.shas["v3"] = v3 = _commit(root, "v3: third results")
    git(root, "tag", "v3")

    # Workspace: alpha/math improves, execution E is not committed.
    write_cells(root, WORKSPACE)
    write_execution(root, EXEC_E, 5, {"alpha/math": (WORKSPACE["alpha/math"], done)},
                    PARAMS_V2, v3)  # fmt: skip
    return built


def copy_ledger(template: Built, dest: Path) -> Built:
    """A private copy of a built ledger (tests that write to it use one)."""
    shutil.copytree(
        template.root, dest, symlinks=True, ignore=shutil.ignore_patterns(".evalledger")
    )
    os.utime(dest)
    return Built(Project.find(dest), dict(template.shas))


def work_tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Path -> (size, mtime_ns) of every file outside .git and .evalledger."""
    state = {}
    for dirpath, dirnames, names in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".evalledger")]
        for name in names:
            path = Path(dirpath) / name
            st = path.stat()
            state[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return state
