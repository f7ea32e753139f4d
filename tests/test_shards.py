"""``evalledger run --shard I/N``: N concurrent processes, one merge, the same outputs."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import COUNTING_MODEL, calls, counting_params, dvc, git, invoke, make_project
from evalledger.execution.executions import execution_ids, load_execution
from evalledger.execution.sharding import Shard, parse_shard, shard_of
from evalledger.project import Project

EVALLEDGER = str(Path(sys.executable).parent / "evalledger")
TIMING = ("latency_ms", "total_time_s", "wall_time_s")
CELLS = ("counter/arith", "counter/arith_hard")


def _project(root: Path, **kwargs: object) -> tuple[Project, Path]:
    flags = root / "flags"
    flags.mkdir(parents=True)
    (flags / "counting_model.py").write_text(COUNTING_MODEL)
    return make_project(root / "proj", counting_params(flags, **kwargs)), flags  # type: ignore[arg-type]


def _start(project: Project, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.Popen(
        [EVALLEDGER, "run", *args], cwd=project.root, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def _wait_for(predicate, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _outputs(project: Project, key: str) -> tuple[dict[str, object], str]:
    """The cell's metrics without its timings, and its scores CSV."""
    metrics = json.loads((project.root / f"metrics/{key}.json").read_text())
    for name in TIMING:
        metrics.pop(name)
    return metrics, (project.root / f"metrics/{key}.scores.csv").read_text()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.parts}  # fmt: skip


def _ids(prefix: str, n: int = 40) -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(n)]


def test_shard_assignment_is_the_sha256_rule_and_covers_every_item_once() -> None:
    # Worked by hand: 1 + int(sha256(id).hexdigest(), 16) % 3.
    expected = {"easy-1-0000": 1, "easy-1-0001": 1, "easy-1-0002": 2, "hard-2-0000": 3,
                "hard-2-0007": 2}  # fmt: skip
    for item, shard in expected.items():
        digest = int(hashlib.sha256(item.encode()).hexdigest(), 16)
        assert shard_of(item, 3) == 1 + digest % 3 == shard
        assert Shard(shard, 3).owns(item)
    ids = _ids("easy-1") + _ids("hard-2")
    parts = [Shard(i, 3).select(ids) for i in (1, 2, 3)]
    assert sorted(i for part in parts for i in part) == sorted(ids)
    assert all(parts)
    # Order does not matter, and adding items moves none of the others.
    assert Shard(2, 3).select(reversed(ids)) == list(reversed(parts[1]))
    assert Shard(2, 3).select([*ids, "easy-1-9999"])[: len(parts[1])] == parts[1]
    assert parse_shard("2/3") == Shard(2, 3) and str(parse_shard(" 3 / 3 ")) == "3/3"


def test_three_concurrent_shards_one_killed_match_an_unsharded_run(tmp_path: Path) -> None:
    project, flags = _project(tmp_path / "sharded", n_items=40)
    reference, ref_flags = _project(tmp_path / "plain", n_items=40)
    assert invoke(reference, "run").exit_code == 0
    # A gate index whose easy and hard items are both in one shard: that shard blocks in
    # both cells while the other two finish their parts.
    gate = next(i for i in range(5, 40)
                if shard_of(f"easy-1-{i:04d}", 3) == shard_of(f"hard-2-{i:04d}", 3))  # fmt: skip
    killed = shard_of(f"easy-1-{gate:04d}", 3)
    project.params_path.write_text(counting_params(flags, n_items=40, gate_at=gate))
    git(project.root, "commit", "-qam", "gate")
    (flags / "gate_on").touch()
    procs = {i: _start(project, "--shard", f"{i}/3") for i in (1, 2, 3)}
    _wait_for(lambda: len(list(flags.glob("blocked-*"))) == 2)
    for i, proc in procs.items():
        if i != killed:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert "2 waiting for the other shards to finish" in out
    os.killpg(procs[killed].pid, signal.SIGKILL)
    procs[killed].wait()
    manifest = load_execution(project, None)
    assert manifest.status.value == "in_progress"
    assert not (project.root / "metrics/counter/arith.json").exists()
    (flags / "gate_on").unlink()
    plan = invoke(project, "run", "--shard", f"{killed}/3", "--dry-run")
    assert f"shard {killed}/3 of {manifest.execution_id}: 2 cells to evaluate" in plan.output
    again = _start(project, "--shard", f"{killed}/3")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "2 merged" in out and "2 cells recorded in dvc.lock" in out
    counts = collections.Counter(calls(flags))
    assert set(counts) == set(_ids("easy-1") + _ids("hard-2"))
    repeated = {i for i, n in counts.items() if n > 1}
    # Only the killed shard's items in flight at the kill ran twice, and none thrice.
    assert all(shard_of(i, 3) == killed for i in repeated) and max(counts.values()) <= 2
    assert len(repeated) <= 4, repeated
    for key in CELLS:
        assert _outputs(project, key) == _outputs(reference, key)
        preds = (project.root / f"predictions/{key}.jsonl").read_text().splitlines()
        ref = (reference.root / f"predictions/{key}.jsonl").read_text().splitlines()
        strip = [{k: v for k, v in json.loads(p).items() if k != "latency_ms"} for p in preds]
        assert strip == [{k: v for k, v in json.loads(p).items() if k != "latency_ms"}
                         for p in ref]  # fmt: skip
    assert sorted(collections.Counter(calls(ref_flags)).values()) == [1] * 80
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}
    lock = (project.root / "dvc.lock").read_text()
    assert lock.count("eval@counter-arith:") == lock.count("eval@counter-arith_hard:") == 1
    final = load_execution(project, None)
    assert final.execution_id == manifest.execution_id and execution_ids(project) == [
        manifest.execution_id
    ]
    assert final.status.value == "completed"
    assert all(r.examples_completed == 40 for r in final.cells.values())
    assert not list((project.root / ".evalledger/checkpoints").glob("*.jsonl"))
    # A shard that finds its cells merged does nothing.
    rerun = invoke(project, "run", "--shard", "2/3")
    assert rerun.exit_code == 0 and "selected cells are up to date" in rerun.output
    assert sum(collections.Counter(calls(flags)).values()) == sum(counts.values())


def test_dry_run_counts_this_shards_items_and_one_shard_alone_waits(tmp_path: Path) -> None:
    project, flags = _project(tmp_path, n_items=40)
    for i in (1, 2, 3):
        out = invoke(project, "run", "--shard", f"{i}/3", "--dry-run")
        assert out.exit_code == 0, out.output
        for key, prefix in zip(CELLS, ("easy-1", "hard-2"), strict=True):
            n = len(Shard(i, 3).select(_ids(prefix)))
            assert f"  {key}: {n} items left (0 in checkpoint)" in out.output
    assert not execution_ids(project) and not calls(flags)
    result = invoke(project, "run", "--shard", "1/3")
    assert result.exit_code == 0, result.output
    mine = Shard(1, 3).select(_ids("easy-1") + _ids("hard-2"))
    assert sorted(calls(flags)) == sorted(mine)
    assert "2 waiting for the other shards to finish" in result.output
    assert not (project.root / "metrics/counter/arith.json").exists()
    again = invoke(project, "run", "--shard", "1/3", "--dry-run")
    assert "counter/arith: 0 items left" in again.output
    assert load_execution(project, None).status.value == "in_progress"


@pytest.mark.parametrize("value", ["0/3", "4/3", "a/b", "3", "1/0", "-1/3"])
def test_bad_shard_values_are_one_line_exit_2_and_write_nothing(tmp_path: Path, value: str) -> None:
    project, flags = _project(tmp_path)
    before = _tree(project.root)
    result = invoke(project, "run", "--shard", value)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: --shard {value!r}"), lines
    assert _tree(project.root) == before
    assert not execution_ids(project) and not calls(flags)


def test_shard_refuses_resume_and_force(tmp_path: Path) -> None:
    project, _ = _project(tmp_path)
    for flag in ("--resume", "--force"):
        result = invoke(project, "run", "--shard", "1/2", flag)
        assert result.exit_code == 2
        assert result.output.strip() == (
            f"Error: {flag} cannot be combined with --shard; run the same "
            "`evalledger run --shard I/N` again to continue a shard"
        )


def test_a_shard_killed_while_merging_merges_on_the_same_command_again(tmp_path: Path) -> None:
    project, flags = _project(tmp_path, n_items=40)
    import zc.lockfile  # type: ignore[import-untyped]  # DVC's lock library

    for i in (2, 3):
        assert invoke(project, "run", "--shard", f"{i}/3").exit_code == 0
    # A DVC command holds the repository lock, so the merge waits to record dvc.lock
    # after writing the cell's outputs: the kill lands mid-merge, every time.
    (project.root / ".dvc/tmp").mkdir(parents=True, exist_ok=True)
    dvc_lock = zc.lockfile.LockFile(str(project.root / ".dvc/tmp/lock"))
    try:
        proc = _start(project, "--shard", "1/3")
        # Killed once the merge of the first cell has begun (its metrics are written).
        _wait_for(lambda: (project.root / "metrics/counter/arith.json").exists()
                  or proc.poll() is not None)  # fmt: skip
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        dvc_lock.close()
    assert proc.returncode == -signal.SIGKILL
    assert load_execution(project, None).status.value == "in_progress"
    result = invoke(project, "run", "--shard", "1/3")
    assert result.exit_code == 0, result.output
    final = load_execution(project, None)
    assert final.status.value == "completed" and len(execution_ids(project)) == 1
    for key, prefix in zip(CELLS, ("easy-1", "hard-2"), strict=True):
        rows = (project.root / f"metrics/{key}.scores.csv").read_text().splitlines()[1:]
        assert [r.split(",")[0] for r in rows] == _ids(prefix)
        assert final.cells[key].examples_completed == 40
    counts = collections.Counter(calls(flags))
    assert len(counts) == 80
    assert all(shard_of(i, 3) == 1 for i, n in counts.items() if n > 1)
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


def test_the_shard_that_completes_the_execution_commits_it(tmp_path: Path) -> None:
    project, _ = _project(tmp_path, n_items=10)
    first = invoke(project, "run", "--shard", "1/2", "--commit", "--json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["shard"] == "1/2" and data["waiting"] == list(CELLS) and data["ok"] is True
    assert data["committed"] is None and git(project.root, "log", "--format=%s").count("\n") == 1
    second = invoke(project, "run", "--shard", "2/2", "--commit")
    assert second.exit_code == 0, second.output
    assert "2 merged" in second.output and "committed " in second.output
    subject = git(project.root, "log", "-1", "--format=%s").strip()
    assert subject.startswith(f"evalledger: {data['execution_id']} (2/2 cells completed")
    assert git(project.root, "status", "--porcelain") == ""
