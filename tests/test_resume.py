from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import calls, counting_params, dvc, invoke
from evalledger.errors import EXIT_NOTHING_TO_RESUME
from evalledger.execution.checkpoint import Checkpoint
from evalledger.execution.executions import execution_ids, load_execution
from evalledger.execution.plan import checkpoint_of
from evalledger.project import Project


def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _scores(project: Project, key: str) -> list[str]:
    rows = (project.root / f"metrics/{key}.scores.csv").read_text().splitlines()[1:]
    return [r.split(",")[0] for r in rows]


def _start_run(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "evalledger", "run", *args],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_sigkill_mid_cell_then_resume_scores_every_item_exactly_once(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    project.params_path.write_text(counting_params(flags, gate_at=15))
    (flags / "gate_on").touch()
    proc = _start_run(project)
    # Both cells block inside the model on item 15: items 0-14 are scored and logged.
    _wait_for(lambda: len(list(flags.glob("blocked-*"))) == 2)
    # The orchestrator writes the manifest at most twice a second; let it catch up.
    _wait_for(
        lambda: all(
            r.examples_completed == 15 for r in load_execution(project, None).cells.values()
        )
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    manifest = load_execution(project, None)
    assert manifest.status.value == "in_progress"
    assert {r.status.value for r in manifest.cells.values()} == {"in_progress"}
    assert len(calls(flags)) == 30
    (flags / "gate_on").unlink()
    plan = invoke(project, "run", "--resume", "--dry-run")
    assert "resume: 2 cells to evaluate" in plan.output
    assert "arith: 25 items left (15 in checkpoint)" in plan.output
    result = invoke(project, "run", "--resume")
    assert result.exit_code == 0, result.output
    log = calls(flags)
    counts = collections.Counter(log)
    assert len(log) == 80 and set(counts.values()) == {1}, counts.most_common(3)
    resumed = load_execution(project, None)
    assert resumed.execution_id == manifest.execution_id
    assert resumed.status.value == "completed"
    for key, rec in resumed.cells.items():
        assert rec.experiment == manifest.cells[key].experiment
        assert rec.attempts == 2 and rec.examples_completed == 40
        assert sorted(_scores(project, key)) == sorted(
            i for i in log if i.startswith("easy" if key.endswith("arith") else "hard")
        )
        # The 15 items restored from the checkpoint keep their latency (the model sleeps
        # 2 ms an item): in the predictions file and in the metrics' timings.
        preds = (project.root / f"predictions/{key}.jsonl").read_text().splitlines()
        assert len(preds) == 40 and all(json.loads(p)["latency_ms"] >= 2 for p in preds)
        metrics = json.loads((project.root / f"metrics/{key}.json").read_text())
        assert metrics["latency_ms"]["p50"] >= 2 and metrics["total_time_s"] >= 0.08
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}
    assert not list((project.root / ".evalledger/checkpoints").glob("*.jsonl"))


def test_sigkill_at_a_random_instant_loses_at_most_the_items_in_flight(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    for after_calls in (3, 47):
        proc = _start_run(project, "--force")
        _wait_for(lambda n=after_calls: len(calls(flags)) >= n)  # type: ignore[misc]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = len(calls(flags))
        result = invoke(project, "run", "--resume")
        assert result.exit_code == 0, result.output
        for key in ("counter/arith", "counter/arith_hard"):
            ids = _scores(project, key)
            assert len(ids) == len(set(ids)) == 40
        # at most one item per running cell was evaluated twice
        assert len(calls(flags)) - 80 <= 2, (before, len(calls(flags)))
        (flags / "calls.log").unlink()
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


def test_errored_items_are_recorded_and_only_they_are_retried_on_resume(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    project.params_path.write_text(counting_params(flags, fail_at=5, jobs=1))
    (flags / "fail_on").touch()
    result = invoke(project, "run")
    assert result.exit_code == 1
    assert "rerun them with `evalledger run --resume exec_" in result.output
    m = load_execution(project, None)
    assert m.status.value == "partial"
    for key, rec in m.cells.items():
        assert rec.status.value == "completed"
        assert (rec.examples_completed, rec.examples_errored) == (39, 1)
        assert rec.error == "1 items errored: ValueError x1"
        metrics = json.loads((project.root / f"metrics/{key}.json").read_text())
        assert (metrics["n"], metrics["scored"], metrics["errors"]) == (40, 39, 1)
        assert metrics["accuracy"] == 1.0  # the errored item is not counted as wrong
        assert metrics["error_patterns"] == {"ValueError": 1}
        rows = (project.root / f"metrics/{key}.scores.csv").read_text().splitlines()
        row = next(r for r in rows if "-0005," in r)
        assert row.endswith("ValueError: boom on " + row.split(",")[0])
    assert len(calls(flags)) == 78
    plan = invoke(project, "run", "--resume", "--dry-run").output
    # an errored item is not done: the plan counts it among the items left
    assert "counter/arith: 1 items left (39 in checkpoint)" in plan
    (flags / "fail_on").unlink()
    resumed = invoke(project, "resume")
    assert resumed.exit_code == 0, resumed.output
    m = load_execution(project, None)
    assert m.status.value == "completed"
    assert all(r.examples_errored == 0 and r.error is None for r in m.cells.values())
    log = calls(flags)
    assert len(log) == 80 and sorted(collections.Counter(log).values()) == [1] * 80
    assert json.loads((project.root / "metrics/counter/arith.json").read_text())["errors"] == 0


def test_failed_cell_is_recorded_and_rerun_on_resume(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    project.params_path.write_text(counting_params(flags, fail_at="all", jobs=1))
    (flags / "fail_on").touch()
    result = invoke(project, "run", "--benchmarks", "arith")
    assert result.exit_code == 1
    m = load_execution(project, None)
    rec = m.cells["counter/arith"]
    assert rec.status.value == "failed" and m.status.value == "partial"
    assert rec.error == "all 40 items errored; first: ValueError: boom on easy-1-0000"
    assert not (project.root / "metrics/counter/arith.json").exists()
    (flags / "fail_on").unlink()
    resumed = invoke(project, "run", "--resume")
    assert resumed.exit_code == 0, resumed.output
    rec = load_execution(project, None).cells["counter/arith"]
    assert rec.status.value == "completed" and rec.attempts == 2 and rec.error is None
    assert sorted(collections.Counter(calls(flags)).values()) == [1] * 40


def test_nothing_to_resume_and_already_complete_have_distinct_exit_codes(
    project: Project,
) -> None:
    none = invoke(project, "run", "--resume")
    assert none.exit_code == EXIT_NOTHING_TO_RESUME == 3
    assert none.output.strip() == (
        "Error: no execution to resume; start one with `evalledger run` first"
    )
    assert invoke(project, "run", "--models", "solver").exit_code == 0
    done = invoke(project, "run", "--resume")
    assert done.exit_code == 0
    assert "all 2 cells of exec_" in done.output and "already completed" in done.output
    assert len(execution_ids(project)) == 1


def test_resume_refuses_changed_params_and_extra_options(project: Project) -> None:
    assert invoke(project, "run", "--models", "noisy").exit_code == 0
    assert invoke(project, "run", "--resume", "-S", "run.jobs=2").exit_code == 2
    assert invoke(project, "run", "--resume", "--models", "noisy").exit_code == 2
    text = project.params_path.read_text().replace("error_rate: 0.3", "error_rate: 0.2")
    project.params_path.write_text(text)
    result = invoke(project, "run", "--resume")
    assert result.exit_code == 2
    assert "params.yaml changed since exec_" in result.output


def test_dvc_repro_after_interruption_runs_only_unfinished_items(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    project.params_path.write_text(counting_params(flags, gate_at=15, n_items=25))
    (flags / "gate_on").touch()
    proc = subprocess.Popen(
        ["dvc", "repro"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # The first stage blocks on item 15; the second has not started.
    _wait_for(lambda: len(list(flags.glob("blocked-*"))) == 1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (project.root / ".dvc/tmp/rwlock").unlink(missing_ok=True)
    assert len(calls(flags)) == 15
    (flags / "gate_on").unlink()
    dvc(project.root, "repro")
    counts = collections.Counter(calls(flags))
    assert len(counts) == 50 and set(counts.values()) == {1}
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}
    second = dvc(project.root, "repro").stdout
    assert second.count("didn't change, skipping") == 2


def test_malformed_checkpoint_lines_are_dropped_and_their_items_run_again(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    project.params_path.write_text(counting_params(flags, fail_at=5, jobs=1))
    (flags / "fail_on").touch()
    assert invoke(project, "run", "--benchmarks", "arith").exit_code == 1  # item 5 errored
    rec = load_execution(project, None).cells["counter/arith"]
    checkpoint = checkpoint_of(project, rec)
    lines = checkpoint.read_text().splitlines()
    damaged = {
        "easy-1-0007": {"id": "easy-1-0007", "correct": True},  # valid JSON, fields missing
        "easy-1-0008": {**json.loads(lines[8]), "correct": "yes", "latency_ms": None},
    }
    for i, line in enumerate(lines):
        item = json.loads(line)["id"]
        if item in damaged:
            lines[i] = json.dumps(damaged[item])
    checkpoint.write_text("\n".join([*lines, '{"no": "id"}', "[1, 2]"]) + "\n")
    plan = invoke(project, "run", "--resume", "--dry-run").output
    assert "counter/arith: 3 items left (37 in checkpoint)" in plan
    (flags / "fail_on").unlink()
    resumed = invoke(project, "run", "--resume")
    assert resumed.exit_code == 0, resumed.output
    warning = f"evalledger: checkpoint {checkpoint}: dropped 4 malformed lines; their items"
    assert resumed.output.count(warning) == 1
    counts = collections.Counter(calls(flags))
    assert sorted(i for i, n in counts.items() if n == 2) == ["easy-1-0007", "easy-1-0008"]
    assert len(counts) == 40 and counts["easy-1-0005"] == 1  # errored first: no call logged
    metrics = json.loads((project.root / "metrics/counter/arith.json").read_text())
    assert (metrics["n"], metrics["scored"], metrics["errors"]) == (40, 40, 0)


def test_checkpoint_lines_pass_the_redaction_point(tmp_path: Path) -> None:
    token = "sk-" + "a1B2c3D4" * 4
    path = tmp_path / "cell.jsonl"
    record = {
        "id": "x-1", "category": "c", "correct": False, "score": 0.0, "partial": False,
        "formatted": False, "latency_ms": 1.0, "prompt_tokens": None,
        "completion_tokens": None, "output": None,
        "error": f"HTTPError: 401 invalid key {token}", "error_class": "HTTPError",
    }  # fmt: skip
    with Checkpoint(path) as ck:
        ck.append(record)
        kept = ck.records["x-1"]
    assert token not in path.read_text() and token not in kept["error"]
    with Checkpoint(path) as ck:
        assert ck.records == {"x-1": kept}
