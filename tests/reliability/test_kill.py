"""kill -9 of a real `evalledger run --commit -j 3`, then `run --resume --commit`: nothing lost.

Each trial copies one committed project (whose earlier execution left a dvc.lock), points
its model at a fresh call log (so every cell is stale and really runs), starts the run
in a subprocess and SIGKILLs it: at seeded random instants between its first manifest
write and its end, and at chosen points (inside the dvc.lock write, between a manifest's
temp write and its rename, after `git add` and before the commit) through the
sitecustomize hooks in killpoints/. The resume must leave: every item scored exactly
once (an item finished before the kill is never evaluated again; at most the items in
flight, one per cell, are), dvc.lock non-empty and valid, `dvc status` clean, no temp
file anywhere, and nothing uncommitted.
"""

from __future__ import annotations

import collections
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from conftest import COUNTING_MODEL, dvc, git, invoke, make_project
from evalledger.execution.checkpoint import parse_records

if TYPE_CHECKING:
    from collections.abc import Callable

KILLPOINTS = Path(__file__).parent / "killpoints"
BENCHMARKS = {"easy": (1, "easy"), "hard": (2, "hard"), "more": (3, "easy")}
N_ITEMS = 100
STAGES = {f"eval@counter-{b}" for b in BENCHMARKS}
RANDOM_TRIALS = 12


def _params(flags: Path) -> str:
    lines = [
        "axes:",
        "  model: [counter]",
        f"  benchmark: [{', '.join(BENCHMARKS)}]",
        "models:",
        "  counter:",
        "    adapter: python",
        "    callable: counting_model:generate",
        f"    path: {flags}",
        f"    options: {{log: {flags / 'calls.log'}, flags: {flags}}}",
        "benchmarks:",
        *(
            f"  {name}: {{loader: arith, n_items: {N_ITEMS}, seed: {seed}, difficulty: {level}}}"
            for name, (seed, level) in BENCHMARKS.items()
        ),
        "run:",
        "  jobs: 3",
    ]
    return "\n".join(lines) + "\n"


def _flags(folder: Path) -> Path:
    folder.mkdir()
    (folder / "counting_model.py").write_text(COUNTING_MODEL)
    return folder


@dataclass
class Reference:
    """A committed project to copy, and when an unkilled run writes its manifest and ends."""

    template: Path
    lock: bytes
    first_manifest: float
    end: float


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    base = tmp_path_factory.mktemp("kill")
    flags = _flags(base / "template-flags")
    project = make_project(base / "template", _params(flags))
    assert invoke(project, "run", "--commit").exit_code == 0
    assert git(project.root, "status", "--porcelain") == ""
    lock = project.dvc_lock.read_bytes()
    # One unkilled run on a copy, timed: the random kills fall within it.
    root = _copy(base, project.root, "timing")
    started = time.monotonic()
    proc = _start(root)
    first = None
    while proc.poll() is None:
        if first is None and len(list((root / "runs").glob("exec_*/manifest.yaml"))) > 1:
            first = time.monotonic() - started
        time.sleep(0.005)
    assert proc.returncode == 0, proc.communicate()
    return Reference(project.root, lock, first or 0.0, time.monotonic() - started)


def _copy(base: Path, template: Path, name: str) -> Path:
    root = base / name
    shutil.copytree(template, root, symlinks=True)
    (root / "params.yaml").write_text(_params(_flags(base / f"{name}-flags")))
    return root


def _start(root: Path, kill_at: str | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if kill_at is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(KILLPOINTS), env.get("PYTHONPATH")]))
        env["EVALLEDGER_KILL_AT"] = kill_at
    return subprocess.Popen(
        [sys.executable, "-m", "evalledger", "run", "--commit", "-j", "3"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def _settle(proc: subprocess.Popen[bytes]) -> None:
    """Wait for the killed run and for what it started (a git command runs to its end)."""
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    raise AssertionError("the killed run's children did not finish")


def _calls(root: Path) -> collections.Counter[str]:
    log = root.parent / f"{root.name}-flags" / "calls.log"
    return collections.Counter(log.read_text().split() if log.exists() else [])


def _score_ids(root: Path, bench: str) -> list[str]:
    path = root / "metrics" / "counter" / f"{bench}.scores.csv"
    if not path.exists():
        return []
    return [row["id"] for row in csv.DictReader(path.open(encoding="utf-8"))]


def _finished(root: Path, template: Path) -> set[str]:
    """Items the killed run had finished: in a checkpoint, or in scores it rewrote."""
    done: set[str] = set()
    for ck in (root / ".evalledger" / "checkpoints").glob("*.jsonl"):
        done |= {k for k, r in parse_records(ck.read_bytes()).items() if not r.get("error")}
    for bench in BENCHMARKS:
        rel = Path("metrics", "counter", f"{bench}.scores.csv")
        if (root / rel).read_bytes() != (template / rel).read_bytes():  # latencies differ
            done |= set(_score_ids(root, bench))
    return done


def _temp_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*.tmp")
        if ".git" not in p.relative_to(root).parts
    )  # fmt: skip


def _executions(root: Path) -> set[str]:
    return {p.parent.name for p in (root / "runs").glob("exec_*/manifest.yaml")}


def _resume(root: Path, template: Path) -> tuple[int, str]:
    new = _executions(root) - _executions(template)
    if new:
        result = invoke(root, "run", "--resume", *new, "--commit")
    else:  # killed before its manifest was in place: nothing to resume, run it again
        result = invoke(root, "run", "--commit", "-j", "3")
    return result.exit_code, result.output


def _problems(root: Path, finished: set[str], exit_code: int, output: str) -> list[str]:
    """What the resumed project gets wrong; empty when nothing was lost."""
    problems = []
    if exit_code != 0:
        problems.append(f"resume exited {exit_code}: {output.strip()[-300:]}")
    calls = _calls(root)
    for bench in BENCHMARKS:
        ids = _score_ids(root, bench)
        if len(ids) != N_ITEMS or len(set(ids)) != N_ITEMS or not set(ids) <= set(calls):
            problems.append(f"{bench}: {len(ids)} rows, {len(set(ids))} distinct items scored")
    again = sorted(i for i in finished if calls[i] != 1)
    if again:
        problems.append(f"finished items evaluated again: {again[:5]}")
    twice = [i for i, n in calls.items() if n > 1]
    if len(twice) > len(BENCHMARKS) or any(calls[i] > 2 for i in twice):
        problems.append(f"more than the items in flight evaluated twice: {twice[:5]}")
    lock = (root / "dvc.lock").read_text() if (root / "dvc.lock").exists() else ""
    doc = yaml.safe_load(lock) if lock.strip() else None
    stages = doc.get("stages") or {} if isinstance(doc, dict) else {}
    if not set(stages) >= STAGES:
        problems.append(f"dvc.lock lacks stages: {sorted(STAGES - set(stages))}")
    status = dvc(root, "status", "--json", check=False)
    if status.returncode != 0 or status.stdout.strip() != "{}":
        problems.append(f"dvc status: {status.stdout.strip()[:200]} {status.stderr.strip()[:200]}")
    if temps := _temp_files(root):
        problems.append(f"temp files left: {temps}")
    if porcelain := git(root, "status", "--porcelain").strip():
        problems.append(f"uncommitted: {porcelain.splitlines()[:5]}")
    return problems


def _check(root: Path, template: Path, record: Callable[..., None]) -> None:
    finished = _finished(root, template)
    exit_code, output = _resume(root, template)
    try:
        problems = _problems(root, finished, exit_code, output)
    except Exception as exc:  # a check that cannot even run is a failed trial, counted
        problems = [f"checking failed: {exc!r}"]
    record("kill", not problems)
    assert not problems, problems


@pytest.mark.parametrize("trial", range(RANDOM_TRIALS))
def test_kill_at_a_random_instant_then_resume_loses_nothing(
    trial: int, reference: Reference, tmp_path: Path, reliability: Callable[..., None]
) -> None:
    # Stratified: trial k falls at a seeded random point of the k-th of equal slices of
    # the run, from just before its first manifest write to its commit.
    rng = random.Random(1000 + trial)
    start = max(0.0, reference.first_manifest - 0.1)
    instant = start + (trial + rng.random()) / RANDOM_TRIALS * (0.98 * reference.end - start)
    for attempt in range(4):  # a run quicker than the reference may end first: kill sooner
        root = _copy(tmp_path, reference.template, f"t{attempt}")
        proc = _start(root)
        time.sleep(instant)
        os.kill(proc.pid, signal.SIGKILL)
        _settle(proc)
        if proc.returncode == -signal.SIGKILL:
            break
        instant /= 2
    else:
        pytest.fail("every run ended before its kill")
    _check(root, reference.template, reliability)


@pytest.mark.parametrize(
    "point",
    [
        "replace:dvc.lock:1",  # all cells done and cached; the new dvc.lock is not in place
        "replace:manifest.yaml:2",  # a manifest write while cells run
        "git:commit:1",  # --commit: after `git add`, before the commit
    ],
)
def test_kill_at_a_chosen_point_then_resume_loses_nothing(
    point: str, reference: Reference, tmp_path: Path, reliability: Callable[..., None]
) -> None:
    root = _copy(tmp_path, reference.template, "t")
    proc = _start(root, kill_at=point)
    _settle(proc)
    assert proc.returncode == -signal.SIGKILL, f"{point} was never reached"
    target = point.split(":")[1]
    if target != "commit":
        # The kill fell between the temp file's fsync and its rename: the old file stands.
        assert any(Path(t).name.startswith(f".{target}.") for t in _temp_files(root))
    if target == "dvc.lock":
        assert (root / "dvc.lock").read_bytes() == reference.lock
    if target == "commit":
        assert git(root, "diff", "--cached", "--name-only").strip()  # staged, not committed
    _check(root, reference.template, reliability)


def test_a_kill_inside_one_large_instant_cell_leaves_a_plan_with_counts(tmp_path: Path) -> None:
    """An instant model never awaits; the manifest is written all the same while it runs."""
    n = 60_000
    project = make_project(tmp_path / "p", (
        "axes:\n  model: [solver]\n  benchmark: [arith]\n"
        "models:\n  solver: {adapter: baseline, strategy: solver}\n"
        f"benchmarks:\n  arith: {{loader: arith, n_items: {n}, seed: 1, difficulty: easy}}\n"
    ))  # fmt: skip
    evalledger = str(Path(sys.executable).parent / "evalledger")
    proc = subprocess.Popen([evalledger, "run"], cwd=project.root, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    manifests = project.root / "runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(manifests.glob("exec_*/manifest.yaml"))
        cell = yaml.safe_load(found[0].read_text())["cells"]["solver/arith"] if found else {}
        if (cell.get("examples_completed") or 0) > 1000:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the cell finished before the manifest showed progress"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    plan = invoke(project, "run", "--resume", "--dry-run")
    assert plan.exit_code == 0, plan.output
    line = next(ln for ln in plan.stdout.splitlines() if ln.startswith("  solver/arith: "))
    left, done = line.removeprefix("  solver/arith: ").split(" items left (")
    assert left != "all"
    assert int(left) + int(done.split()[0]) == n and 0 < int(left) < n
