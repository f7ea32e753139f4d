from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import calls, counting_params, dvc, git, invoke, make_project
from evalledger.atomic import locked_file, remove_leftover_temps
from evalledger.execution.executions import execution_ids, load_execution
from evalledger.execution.pipeline import sync_dvc_yaml
from evalledger.project import Project

CELLS = [
    "solver/arith",
    "solver/arith_hard",
    "noisy/arith",
    "noisy/arith_hard",
    "adder/arith",
    "adder/arith_hard",
]


def test_run_evaluates_every_cell_and_dvc_agrees(project: Project) -> None:
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    manifest = load_execution(project, None)
    assert manifest.status.value == "completed"
    assert list(manifest.cells) == CELLS
    for key, rec in manifest.cells.items():
        assert rec.status.value == "completed"
        assert rec.examples_completed == rec.examples_total == (30 if key.endswith("arith") else 20)
        assert rec.experiment.startswith(key.replace("/", "-") + "-")
        assert rec.stage == "eval@" + key.replace("/", "-")
    # DVC sees exactly what evalledger recorded
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}
    shown = json.loads(dvc(project.root, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    solver = json.loads((project.root / "metrics/solver/arith.json").read_text())
    assert files["metrics/solver/arith.json"]["data"]["accuracy"] == solver["accuracy"] == 1.0
    adder = json.loads((project.root / "metrics/adder/arith.json").read_text())
    assert 0 < adder["accuracy"] < 0.5
    assert set(adder["categories"]) == {
        "addition",
        "subtraction",
        "multiplication",
        "division",
        "two_step",
    }
    rows = (project.root / "metrics/noisy/arith.scores.csv").read_text().splitlines()
    assert rows[0].startswith("id,category,correct,score")
    assert len(rows) == 31
    # predictions are DVC-cached, not in git
    assert "/arith.jsonl" in (project.root / "predictions/solver/.gitignore").read_text()
    assert dvc(project.root, "repro").stdout.count("didn't change, skipping") == 6


def test_second_run_skips_up_to_date_cells_and_force_reruns(project: Project) -> None:
    assert invoke(project, "run").exit_code == 0
    again = invoke(project, "run")
    assert again.exit_code == 0
    assert "all 6 selected cells are up to date" in again.output
    assert len(execution_ids(project)) == 1
    forced = invoke(project, "run", "--force", "--models", "solver")
    assert forced.exit_code == 0, forced.output
    assert len(execution_ids(project)) == 2
    assert list(load_execution(project, None).cells) == ["solver/arith", "solver/arith_hard"]


def test_editing_one_model_reruns_only_its_cells(project: Project) -> None:
    assert invoke(project, "run").exit_code == 0
    text = project.params_path.read_text().replace("error_rate: 0.3", "error_rate: 0.1")
    project.params_path.write_text(text)
    changed = json.loads(dvc(project.root, "status", "--json").stdout)
    assert sorted(changed) == ["eval@noisy-arith", "eval@noisy-arith_hard"]
    plan = invoke(project, "run", "--dry-run")
    assert "new run: 2 cells to evaluate, 4 up to date" in plan.output
    assert invoke(project, "run").exit_code == 0
    assert list(load_execution(project, None).cells) == ["noisy/arith", "noisy/arith_hard"]
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


def test_overrides_filters_and_commit(project: Project) -> None:
    result = invoke(
        project,
        "run",
        "-S",
        "models.noisy.error_rate=0.5",
        "--models",
        "noisy",
        "--benchmarks",
        "arith",
        "--commit",
    )
    assert result.exit_code == 0, result.output
    manifest = load_execution(project, None)
    assert list(manifest.cells) == ["noisy/arith"]
    assert manifest.overrides == ["models.noisy.error_rate=0.5"]
    assert manifest.filters == {"model": ["noisy"], "benchmark": ["arith"]}
    assert manifest.config["models"]["noisy"]["error_rate"] == 0.5
    params = project.params_path.read_text()
    assert "error_rate: 0.5" in params and params.startswith("# small demo matrix")
    log = git(project.root, "log", "-1", "--format=%B")
    assert log.startswith(f"evalledger: {manifest.execution_id} (1/1 cells completed)")
    assert git(project.root, "status", "--porcelain") == ""
    tracked = git(project.root, "ls-files").split()
    assert f"runs/{manifest.execution_id}/manifest.yaml" in tracked
    assert "metrics/noisy/arith.json" in tracked and "dvc.lock" in tracked
    assert "predictions/noisy/arith.jsonl" not in tracked


def test_manifest_captures_config_git_and_redacts_secrets(project: Project) -> None:
    text = project.params_path.read_text().replace(
        "adapter: baseline, strategy: adder", "adapter: baseline, strategy: adder, latency_ms: 0"
    )
    text += "prompt_sets: {}\n"
    project.params_path.write_text(text)
    git(project.root, "commit", "-qam", "tweak")
    head = git(project.root, "rev-parse", "HEAD").strip()
    assert invoke(project, "run", "--models", "adder").exit_code == 0
    m = load_execution(project, None)
    assert m.git.commit == head and m.git.branch and m.git.dirty is False
    assert m.config["models"]["adder"]["latency_ms"] == 0
    assert m.command == ["evalledger", "-C", str(project.root), "run", "--models", "adder"]


def test_status_table_json_and_unknown_id(project: Project) -> None:
    assert invoke(project, "run", "--models", "solver").exit_code == 0
    exec_id = execution_ids(project)[0]
    table = invoke(project, "status")
    assert exec_id in table.output and "solver/arith_hard" in table.output
    assert "30/30" in table.output and "completed" in table.output
    data = json.loads(invoke(project, "status", exec_id[-8:], "--json").output)
    assert data["execution_id"] == exec_id and data["counts"]["completed"] == 2
    bad = invoke(project, "status", exec_id[:-1] + "x")
    assert bad.exit_code == 2
    assert f"unknown execution '{exec_id[:-1]}x'; did you mean {exec_id}?" in bad.output


def test_dvc_yaml_is_regenerated_when_axes_change_keeping_user_stages(project: Project) -> None:
    with project.dvc_yaml.open("a") as fh:
        fh.write("  report:\n    cmd: echo report  # mine\n    deps:\n      - metrics\n")
    params = yaml.safe_load(project.params_path.read_text())
    params["axes"]["prompt_set"] = ["plain", "terse"]
    params["prompt_sets"] = {
        "plain": {"template": "{input}"},
        "terse": {"template": "Answer briefly. {input}"},
    }
    project.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    result = invoke(project, "run", "--models", "solver", "--benchmarks", "arith")
    assert result.exit_code == 0, result.output
    text = project.dvc_yaml.read_text()
    assert "cmd: echo report  # mine" in text
    stage = yaml.safe_load(text)["stages"]["eval"]
    assert stage["matrix"]["prompt_set"] == "${axes.prompt_set}"
    assert "prompt_sets.${item.prompt_set}" in stage["params"]
    assert (project.root / "metrics/solver/arith/terse.json").exists()
    preds = (project.root / "predictions/solver/arith/terse.jsonl").read_text().splitlines()
    assert json.loads(preds[0])["prompt"].startswith("Answer briefly. ")
    status = json.loads(dvc(project.root, "status", "--json").stdout)
    assert "eval@solver-arith-terse" not in status and "eval@solver-arith-plain" not in status


def test_a_second_run_is_locked_out(tmp_path: Path) -> None:
    slow = (
        "axes:\n  model: [slow]\n  benchmark: [arith]\n"
        "models: {slow: {adapter: baseline, latency_ms: 40, max_concurrency: 1}}\n"
        "benchmarks: {arith: {loader: arith, n_items: 50}}\n"
    )
    project = make_project(tmp_path / "p", slow)
    first = subprocess.Popen(
        [sys.executable, "-m", "evalledger", "run"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 30
        while not execution_ids(project) and time.time() < deadline:
            time.sleep(0.05)
        second = invoke(project, "run", "--force")
        assert second.exit_code == 4
        assert "another evalledger run is in progress in this project (pid " in second.output
        assert len(second.output.strip().splitlines()) == 1
        assert first.wait(timeout=60) == 0
    finally:
        first.kill()
    assert len(execution_ids(project)) == 1
    assert load_execution(project, None).status.value == "completed"
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


def test_dvc_repro_alone_runs_the_matrix_and_then_does_nothing(project: Project) -> None:
    first = dvc(project.root, "repro").stdout
    assert first.count("Running stage 'eval@") == 6
    for key in CELLS:
        assert json.loads((project.root / f"metrics/{key}.json").read_text())["n"] > 0
    lock = project.dvc_lock.read_text()
    second = dvc(project.root, "repro").stdout
    assert "Running stage" not in second and second.count("didn't change, skipping") == 6
    assert project.dvc_lock.read_text() == lock
    # what dvc repro wrote, evalledger agrees is up to date
    assert "all 6 selected cells are up to date" in invoke(project, "run").output


def test_status_accepts_any_unique_part_of_an_id(project: Project) -> None:
    assert invoke(project, "run", "--models", "solver").exit_code == 0
    exec_id = execution_ids(project)[0]
    time_part = exec_id.split("_")[2]
    data = json.loads(invoke(project, "status", time_part, "--json").output)
    assert data["execution_id"] == exec_id


def test_dvc_lock_is_the_bytes_dvc_writes_and_no_temp_file_stays(project: Project) -> None:
    assert invoke(project, "run").exit_code == 0
    ours = project.dvc_lock.read_bytes()
    dvc(project.root, "commit", "-f", "-q")  # DVC's own dump of the same stages
    assert project.dvc_lock.read_bytes() == ours
    assert not [p for p in project.root.rglob(".*.tmp") if ".git" not in p.parts]


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"stages: [\n",
        b"\xff\xfe\x00garbage",
        b"- just\n- a list\n",
        b"schema: '2.0'\nstages:\n  eval@counter-arith:\n    cmd: 5\n",
    ],
    ids=["empty", "not-yaml", "not-utf8", "a-list", "wrong-types"],
)
def test_a_damaged_dvc_lock_is_rebuilt_without_evaluating_again(
    counting_project: tuple[Project, Path], damage: bytes
) -> None:
    project, flags = counting_project
    assert invoke(project, "run").exit_code == 0
    lock, evaluated = project.dvc_lock.read_bytes(), len(calls(flags))
    project.dvc_lock.write_bytes(damage)
    assert "0 cells to evaluate, 2 up to date" in invoke(project, "run", "--dry-run").output
    again = invoke(project, "run")
    assert again.exit_code == 0, again.output
    assert "rebuilt it from the completed cells in runs/ and their outputs: 2 cells recorded" in (
        again.output
    )
    assert "all 2 selected cells are up to date" in again.output
    assert len(calls(flags)) == evaluated
    assert project.dvc_lock.read_bytes() == lock
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}
    # and a resume (or any later run) works: the advice no longer loops back to itself
    assert invoke(project, "run", "--resume").exit_code == 0


def test_a_rebuild_records_only_cells_whose_outputs_are_whole(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    assert invoke(project, "run").exit_code == 0
    scores = project.root / "metrics/counter/arith_hard.scores.csv"
    scores.write_text("\n".join(scores.read_text().splitlines()[:20]) + "\n")  # torn
    project.dvc_lock.write_text("")
    (flags / "calls.log").unlink()
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    assert ": 1 cells recorded again, none evaluated again" in result.output
    assert list(load_execution(project, None).cells) == ["counter/arith_hard"]
    assert len(calls(flags)) == 40 and all(c.startswith("hard-") for c in calls(flags))
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


def test_run_edits_dvc_yaml_under_the_lock_a_tracker_takes(project: Project) -> None:
    params = yaml.safe_load(project.params_path.read_text())
    params["axes"]["prompt_set"] = ["plain"]
    params["prompt_sets"] = {"plain": {"template": "{input}"}}
    project.params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    before = project.dvc_yaml.read_text()
    with locked_file(project.state_dir / "dvcyaml.lock", blocking=True):
        worker = threading.Thread(target=sync_dvc_yaml, args=(project, project.spec(reload=True)))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and project.dvc_yaml.read_text() == before
    worker.join(10)
    assert "prompt_set: ${axes.prompt_set}" in project.dvc_yaml.read_text()


def test_commit_records_an_execution_whose_every_cell_failed(
    counting_project: tuple[Project, Path],
) -> None:
    project, flags = counting_project
    project.params_path.write_text(counting_params(flags, fail_at="all", jobs=1))
    (flags / "fail_on").touch()
    result = invoke(project, "run", "--commit")
    assert result.exit_code == 1
    assert "committed " in result.output
    exec_id = load_execution(project, None).execution_id
    message = git(project.root, "log", "-1", "--format=%B")
    assert message.startswith(f"evalledger: {exec_id} (0/2 cells completed")
    assert "- counter/arith: failed (all 40 items errored" in message
    assert f"runs/{exec_id}/manifest.yaml" in git(project.root, "ls-files").split()
    assert git(project.root, "status", "--porcelain") == ""


def test_resume_commit_finishes_an_interrupted_commit(project: Project) -> None:
    assert invoke(project, "run", "--models", "solver").exit_code == 0
    exec_id = load_execution(project, None).execution_id
    git(project.root, "add", "runs", "metrics")  # as a --commit killed after `git add`
    resumed = invoke(project, "run", "--resume", "--commit")
    assert resumed.exit_code == 0, resumed.output
    assert "committed " in resumed.output
    assert git(project.root, "log", "-1", "--format=%s").startswith(f"evalledger: {exec_id}")
    assert git(project.root, "status", "--porcelain") == ""
    again = invoke(project, "run", "--resume", "--commit")
    assert again.exit_code == 0
    assert f"nothing to commit: the files of {exec_id} are already in git" in again.output


def test_leftover_temp_files_are_removed_at_start_and_never_committed(project: Project) -> None:
    assert invoke(project, "run", "--models", "solver").exit_code == 0
    exec_id = load_execution(project, None).execution_id
    leftovers = [
        f"runs/{exec_id}/.manifest.yaml.k1ll3d_x.tmp",
        "metrics/solver/.arith.json.abcd1234.tmp",
        "predictions/solver/.arith.jsonl.abcd1234.tmp",
        "predictions/solver/.Zx8-dvc_copy_token_.tmp",  # DVC's own temp name
        ".dvc.lock.abcd1234.tmp",
        ".params.yaml.abcd1234.tmp",
    ]
    kept = ["notes.tmp", "metrics/solver/.keep", ".mine.tmp"]  # not temp files of ours
    for rel in leftovers + kept:
        project.path(rel).write_text("x")
    result = invoke(project, "run", "--resume", "--commit")
    assert result.exit_code == 0, result.output
    assert [rel for rel in leftovers if project.path(rel).exists()] == []
    assert all(project.path(rel).exists() for rel in kept)
    assert not any(name.endswith(".tmp") for name in git(project.root, "ls-files").split())
    # the scaffold's .gitignore hides temp files, and none of the files DVC needs in git
    assert ".*.tmp" in (project.root / ".gitignore").read_text().splitlines()
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", ".x.json.abcd1234.tmp", "dvc.lock", "dvc.yaml",
         ".dvc/config", ".dvcignore", "predictions/solver/.gitignore"],
        cwd=project.root, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert ignored == [".x.json.abcd1234.tmp"]


def test_a_dvc_stage_lock_table_torn_by_a_kill_does_not_block_recording(project: Project) -> None:
    assert invoke(project, "run").exit_code == 0
    (project.root / ".dvc/tmp/rwlock").write_text('{"write": {"/x": {"pi')  # DVC writes in place
    result = invoke(project, "run", "--force", "--models", "solver")
    assert result.exit_code == 0, result.output
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


def test_a_temp_file_being_written_is_not_taken_for_a_leftover(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    busy = tmp_path / "runs" / ".manifest.yaml.inflight.tmp"
    renamed = tmp_path / "runs" / ".manifest.yaml.renamed.tmp"
    stale = tmp_path / "runs" / ".manifest.yaml.old.tmp"
    for path in (busy, renamed, stale):
        path.write_text("x")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    stop = threading.Event()

    def writers() -> None:  # at work: one temp file is renamed into place, one grows
        time.sleep(0.1)
        renamed.rename(tmp_path / "runs" / "manifest.yaml")
        while not stop.is_set():
            with busy.open("a") as fh:
                fh.write("x")
            time.sleep(0.01)

    thread = threading.Thread(target=writers)
    thread.start()
    try:
        removed = remove_leftover_temps(tmp_path, ["runs"], [], settle=0.3)
    finally:
        stop.set()
        thread.join()
    assert removed == [stale]
    assert busy.exists() and (tmp_path / "runs" / "manifest.yaml").exists()


def test_a_temp_file_that_a_live_writer_holds_is_kept_however_old(tmp_path: Path) -> None:
    import fcntl

    (tmp_path / "runs").mkdir()
    held = tmp_path / "runs" / ".manifest.yaml.slowfsync.tmp"
    held.write_text("a write stuck in a long fsync\n")
    os.utime(held, (time.time() - 600, time.time() - 600))  # old and unchanged
    with held.open("rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # as atomic_write holds it until the rename
        assert remove_leftover_temps(tmp_path, ["runs"], [], settle=0.05) == []
        assert held.exists()
    # Its writer gone (the lock released, as a kill does), it is a leftover.
    assert remove_leftover_temps(tmp_path, ["runs"], [], settle=0.05) == [held]
    assert not held.exists()
