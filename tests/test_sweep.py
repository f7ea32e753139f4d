"""Sweeps and DVC experiments as ledger revisions: `evalledger sweep`, `list --experiments`,
`leaderboard --rev EXP` and `diff EXP EXP`, on real `dvc exp run` experiments.

The tests after "real DVC experiments" run DVC's experiment queue (celery workers in
temporary workspaces; `swept` and `test_sweep_run_...` are the queued ones); each uses a
1 model x 1 benchmark matrix of 20 items to stay fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import dvc, git, invoke, make_project
from evalledger.errors import ConfigError
from evalledger.project import Project
from evalledger.share.sweep import plan_sweep

TINY = """\
axes:
  model: [noisy]
  benchmark: [arith]
models:
  noisy: {adapter: baseline, strategy: solver, error_rate: 0.3, seed: 3}
benchmarks:
  arith: {loader: arith, n_items: 20, seed: 1, difficulty: easy}
run:
  jobs: 1
"""


def _exp_refs(root: Path) -> list[str]:
    return git(root, "for-each-ref", "--format=%(refname)", "refs/exps").split()


def _fake_experiment(root: Path, name: str, files: dict[str, str]) -> str:
    """Commit ``files`` over HEAD's tree as DVC would, and point refs/exps/.../name at it."""
    env = {**os.environ, "GIT_INDEX_FILE": str(root / ".git" / "fake-exp-index")}

    def run(*args: str, data: str | None = None) -> str:
        return subprocess.run(["git", *args], cwd=root, env=env, input=data, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip

    head = run("rev-parse", "HEAD")
    run("read-tree", "HEAD")
    for path, text in files.items():
        oid = run("hash-object", "-w", "--stdin", data=text)
        run("update-index", "--add", "--cacheinfo", f"100644,{oid},{path}")
    commit = run("commit-tree", run("write-tree"), "-p", head, "-m", f"exp {name}")
    run("update-ref", f"refs/exps/{head[:2]}/{head[2:]}/{name}", commit)
    return commit


# ----------------------------------------------------------------- planning


def test_plan_grid_is_the_product_and_list_zips(project: Project) -> None:
    rate, seed = "models.noisy.error_rate", "models.noisy.seed"
    grid = plan_sweep(project, [f"{rate}=0.1,0.2", f"{seed}=1,2"])
    assert grid == [
        {rate: "0.1", seed: "1"}, {rate: "0.1", seed: "2"},
        {rate: "0.2", seed: "1"}, {rate: "0.2", seed: "2"},
    ]  # fmt: skip
    assert plan_sweep(project, [f"{rate}=0.1,0.2", f"{seed}=1,2"], "list") == [
        {rate: "0.1", seed: "1"}, {rate: "0.2", seed: "2"},
    ]  # fmt: skip
    # a single value goes with every combination; DVC's grammar: range(), quoted commas
    assert plan_sweep(project, [f"{rate}=0.1,0.2", f"{seed}=5"], "list") == [
        {rate: "0.1", seed: "5"}, {rate: "0.2", seed: "5"},
    ]  # fmt: skip
    assert [c[seed] for c in plan_sweep(project, [f"{seed}=range(1,4)"])] == ["1", "2", "3"]
    notes = plan_sweep(project, ["+train.note='a,b',c"])  # a section of the user's own
    assert [c["+train.note"] for c in notes] == ["'a,b'", "c"]


@pytest.mark.parametrize(
    ("overrides", "mode", "message"),
    [
        (["models.noisy.eror_rate=0.1,0.2"], "grid", "no such key in params.yaml"),
        (["+models.noisy.seed=1,2"], "grid", "is already in params.yaml"),
        (["axes.model=[noisy],[nosuch]"], "grid", "unknown model 'nosuch'"),
        (["run.jobs=1,0"], "grid", "run.jobs must be a positive integer"),
        (["models.noisy.seed=1,2", "run.jobs=1,2,3"], "list", "one length"),
        (["models.noisy.seed=1", "models.noisy.seed=2"], "grid", "given twice"),
        (["models.noisy.seed=1,("], "grid", "bad override"),
        (["~models.noisy.seed"], "grid", "deletes a key"),
        ([], "grid", "at least one -S"),
    ],
)
def test_plan_refuses_what_dvc_or_params_yaml_would(
    project: Project, overrides: list[str], mode: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        plan_sweep(project, overrides, mode)


def test_a_bad_combination_queues_nothing(project: Project) -> None:
    out = invoke(project, "sweep", "-S", "axes.model=[noisy],[solver],[nosuch]")
    assert out.exit_code == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith("Error: -S axes.model=[nosuch]: unknown model 'nosuch'")
    assert _exp_refs(project.root) == []  # not even DVC's queue stash


def test_dry_run_numbers_names_after_existing_experiments(project: Project) -> None:
    _fake_experiment(project.root, "sweep-2", {})
    out = invoke(project, "sweep", "-S", "models.noisy.error_rate=0.1,0.2", "--dry-run")
    assert out.exit_code == 0, out.output
    assert "sweep-3     models.noisy.error_rate=0.1" in out.stdout
    assert "sweep-4     models.noisy.error_rate=0.2" in out.stdout
    assert _exp_refs(project.root) == [
        r for r in _exp_refs(project.root) if r.endswith("/sweep-2")
    ]  # nothing queued
    for prefix in ("a..b", "ab\n"):  # `$` would let a trailing newline through
        bad = invoke(project, "sweep", "-S", "models.noisy.seed=1", "--dry-run", "--name", prefix)
        assert bad.exit_code == 2 and f"prefix {prefix!r} is not allowed" in bad.stderr


# ----------------------------------------------------------------- listing


def test_list_shows_experiment_refs_with_changed_params(project: Project) -> None:
    root = project.root
    params = (root / "params.yaml").read_text().replace("error_rate: 0.3", "error_rate: 0.1")
    metrics = json.dumps({"accuracy": 0.9, "n": 30})
    commit = _fake_experiment(root, "lowerr", {"params.yaml": params,
                                               "metrics/noisy/arith.json": metrics})  # fmt: skip
    git(root, "update-ref", "refs/exps/exec/EXEC_HEAD", commit)  # DVC's own: not listed
    head = git(root, "rev-parse", "HEAD").strip()

    out = invoke(project, "list")  # no executions: the experiments are shown anyway
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "DVC experiments"
    assert lines[1].split() == ["experiment", "baseline", "created", "(UTC)", "cells",
                                "changed", "params", "runs"]  # fmt: skip
    row = lines[2].split()
    assert (row[:2], row[4:]) == (["lowerr", head[:7]], ["1", "models.noisy.error_rate=0.1", "-"])
    assert len(lines) == 3

    data = json.loads(invoke(project, "list", "--experiments", "--json").stdout)
    assert data == [{
        "kind": "dvc-experiment", "name": "lowerr",
        "ref": f"refs/exps/{head[:2]}/{head[2:]}/lowerr", "commit": commit, "baseline": head,
        "created_at": data[0]["created_at"], "cells": 1,
        "params": {"models.noisy.error_rate": {"old": 0.3, "new": 0.1}}, "executions": [],
    }]  # fmt: skip
    assert json.loads(invoke(project, "list", "--json", "--no-experiments").stdout) == []


# ----------------------------------------------------------------- real DVC experiments


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """`dvc exp run --queue -S key=0.1,0.2,0.3` (DVC's own sweep) run by `--run-all`."""
    project = make_project(tmp_path_factory.mktemp("dvcsweep") / "proj", TINY)
    dvc(project.root, "exp", "run", "--queue", "-S", "models.noisy.error_rate=0.1,0.2,0.3",
        "--name", "dvcs")  # fmt: skip
    dvc(project.root, "exp", "run", "--run-all", "-j", "1")
    return project


def test_a_dvc_exp_sweep_is_listed(swept: Project) -> None:
    out = invoke(swept, "list", "-e")
    assert out.exit_code == 0, out.output
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[2:]}
    assert sorted(rows) == ["dvcs-1", "dvcs-2", "dvcs-3"]
    for i, rate in enumerate(["0.1", "0.2", "0.3"], 1):
        # 0.3 is the baseline's own value: the experiment changed nothing
        changed = f"models.noisy.error_rate={rate}" if rate != "0.3" else "(same as baseline)"
        assert " ".join(rows[f"dvcs-{i}"][4:]) == f"1 {changed} -"  # cells, no run manifest
    data = json.loads(invoke(swept, "list", "-e", "--json").stdout)
    assert {d["kind"] for d in data} == {"dvc-experiment"} and len(data) == 3


def test_leaderboard_and_diff_compare_experiments(swept: Project) -> None:
    revs = ["--rev", "dvcs-1", "--rev", "dvcs-2", "--rev", "dvcs-3"]
    out = invoke(swept, "leaderboard", *revs, "--json")
    assert out.exit_code == 0, out.output
    board = json.loads(out.stdout)
    names = [e["name"].split(" ")[0] for e in board["entries"]]
    assert sorted(names) == ["noisy@dvcs-1", "noisy@dvcs-2", "noisy@dvcs-3"]
    values = [e["value"] for e in board["entries"]]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    assert names[0] == "noisy@dvcs-1"  # the lowest error rate is best

    table = invoke(swept, "leaderboard", *revs)
    assert table.exit_code == 0 and "noisy@dvcs-2" in table.stdout

    diff = invoke(swept, "diff", "dvcs-1", "dvcs-3")
    assert diff.exit_code == 0, diff.output
    assert diff.stdout.startswith("dvcs-1 (") and "models.noisy.error_rate" in diff.stdout
    assert "noisy/arith  accuracy" in diff.stdout


QA = """\
axes:
  model: [noisy]
  benchmark: [qa]
models:
  noisy: {adapter: baseline, strategy: solver, error_rate: 0.3, seed: 3}
benchmarks:
  qa: {loader: jsonl, path: data/qa.jsonl}
run:
  jobs: 1
"""


def test_sweep_run_queues_runs_and_ranks(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    rows = [{"id": f"q{i}", "input": f"Ada has {i} apples. Ada buys 2 more. How many apples "
             "now?", "target": str(i + 2)} for i in range(1, 21)]  # fmt: skip
    (root / "data/qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "data/torn.jsonl").write_text(json.dumps(rows[0]) + '\n{"id": "q2", "inp\n')
    project = make_project(root, QA)
    out = invoke(
        project, "sweep", "-S", "models.noisy.error_rate=0.05,0.5",
        "-S", "benchmarks.qa.path=data/qa.jsonl,data/torn.jsonl", "--list", "--run", "-j", "2",
        "--name", "tune", "--timeout", "120",
    )  # fmt: skip
    # tune-2's data file is there, so every check before queueing passes; it is torn,
    # which only reading it in the cell finds
    assert out.exit_code == 1, out.output
    assert "Queued 2 experiment(s)" in out.stdout
    assert "tune-1      models.noisy.error_rate=0.05 benchmarks.qa.path=data/qa.jsonl" in out.stdout
    assert "accuracy by model at tune-1 (" in out.stdout
    assert "tune-1: success" in out.stderr and "tune-2: failed" in out.stderr
    assert out.stderr.endswith(
        "Error: 1 of 2 experiment(s) failed: tune-2; see `dvc queue logs tune-2`\n"
    )
    data = json.loads(invoke(project, "list", "-e", "--json").stdout)
    assert [d["name"] for d in data] == ["tune-1"]
    assert data[0]["params"] == {"models.noisy.error_rate": {"old": 0.3, "new": 0.05}}
    assert git(project.root, "status", "--porcelain") == ""  # the workspace is untouched


# ----------------------------------------------------------------- a Tracker training stage

TRAIN_PY = """\
import yaml

from evalledger.track.tracker import Tracker

params = yaml.safe_load(open("params.yaml"))["train"]
with Tracker().experiment({"lr": params["lr"]}, name="trainer") as run:
    for step in range(params["steps"]):
        run.log_metrics({"train/loss": 1.0 / (1 + step * params["lr"])}, step=step)
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    """A `train` stage (Tracker, params from params.yaml's `train:`) run by `dvc exp run -S`."""
    project = make_project(tmp_path_factory.mktemp("train") / "proj", TINY)
    root = project.root
    with (root / "params.yaml").open("a") as fh:
        fh.write("train:\n  lr: 0.01\n  steps: 5\n")
    with (root / "dvc.yaml").open("a") as fh:
        fh.write(textwrap.indent("train:\n  cmd: python train.py\n  params:\n    - train\n",
                                 "  "))  # fmt: skip
    (root / "train.py").write_text(TRAIN_PY)
    git(root, "add", "params.yaml", "dvc.yaml", "train.py")
    git(root, "commit", "-qm", "a training stage")
    # Only the `train` stage: `evalledger cell` refuses params.yaml's `train:` section.
    dvc(root, "exp", "run", "-S", "train.lr=0.1", "-n", "tr1", "train")
    (ref,) = [r for r in _exp_refs(root) if r.endswith("/tr1")]
    return project, ref


def test_a_tracker_experiment_is_listed_with_its_params(trained: tuple[Project, str]) -> None:
    project, ref = trained
    tree = git(project.root, "ls-tree", "-r", "--name-only", ref).split()
    summaries = [p for p in tree if p.startswith("metrics/_experiments/")]
    assert len(summaries) == 1
    data = json.loads(invoke(project, "list", "-e", "--json").stdout)
    exp = next(d for d in data if d["kind"] == "dvc-experiment")
    assert exp["name"] == "tr1"
    assert exp["params"] == {"train.lr": {"old": 0.01, "new": 0.1}}


def test_a_tracker_experiment_commits_its_manifest(trained: tuple[Project, str]) -> None:
    project, ref = trained
    tree = git(project.root, "ls-tree", "-r", "--name-only", ref).split()
    assert any(p.startswith("runs/exp_") and p.endswith("/manifest.yaml") for p in tree)


def test_cells_run_beside_a_train_section(project: Project) -> None:
    with (project.root / "params.yaml").open("a") as fh:
        fh.write("train:\n  lr: 0.01\n")
    out = invoke(project, "cell", "model=noisy", "benchmark=arith")
    assert out.exit_code == 0, out.output
