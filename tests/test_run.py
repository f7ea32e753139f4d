from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import dvc, git, invoke, make_project
from evalledger.execution.executions import execution_ids, load_execution
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
