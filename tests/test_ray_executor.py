"""``run --executor ray`` on a local Ray (``ray.init(num_cpus=2)``), against the local executor.

Every test shares one Ray started by the module's fixture; the runs join it. The files a
Ray run leaves are compared with a local run's of the same matrix: equal apart from
timings. The model logs each call with its process id, so a test sees the items ran in
Ray's workers, each once.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SMALL_PARAMS, dvc, invoke, ledger_files, make_project
from evalledger.execution.response_cache import cache_path
from evalledger.project import Project
from evalledger.testing.openai_server import ReferenceServer, ServerConfig

ray = pytest.importorskip("ray")

PID_MODEL = """\
import os


def generate(prompt, item, log, fail_on=""):
    if fail_on and os.path.exists(fail_on) and item.id.endswith("3"):
        raise ValueError(f"boom on {item.id}")
    with open(log, "a") as f:
        f.write(f"{item.id} {os.getpid()}\\n")
    return f"The answer is {item.target}."
"""


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    import logging

    # "local": a Ray of its own, never a cluster `ray start` left on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             logging_level=logging.ERROR, log_to_driver=False)  # fmt: skip
    yield
    ray.shutdown()


def _pid_params(flags: Path, n_items: int = 40, resources: str = "") -> str:
    return textwrap.dedent(f"""\
        axes:
          model: [logger]
          benchmark: [arith, arith_hard]
        models:
          logger:
            adapter: python
            callable: pid_model:generate
            path: {flags}
            options: {{log: {flags / "calls.log"}, fail_on: {flags / "fail_on"}}}
            {resources}
        benchmarks:
          arith: {{loader: arith, n_items: {n_items}, seed: 1, difficulty: easy}}
          arith_hard: {{loader: arith, n_items: {n_items}, seed: 2, difficulty: hard}}
        """)


def _pid_project(tmp_path: Path, name: str, resources: str = "") -> tuple[Project, Path]:
    flags = tmp_path / f"{name}-flags"
    flags.mkdir()
    (flags / "pid_model.py").write_text(PID_MODEL)
    return make_project(tmp_path / name, _pid_params(flags, resources=resources)), flags


def _calls(flags: Path) -> list[tuple[str, int]]:
    log = flags / "calls.log"
    lines = log.read_text().split("\n") if log.exists() else []
    return [(i, int(p)) for i, p in (line.split() for line in lines if line)]


def _run(project: Project, *args: str) -> str:
    result = invoke(project, "run", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_ray_run_leaves_the_files_of_a_local_run(tmp_path: Path) -> None:
    local = make_project(tmp_path / "local", SMALL_PARAMS)
    remote = make_project(tmp_path / "remote", SMALL_PARAMS)
    _run(local)
    out = _run(remote, "--executor", "ray")
    assert "completed (6/6 cells completed)" in out
    assert ledger_files(remote.root) == ledger_files(local.root)
    assert "up to date" in dvc(remote.root, "status").stdout


def test_items_run_in_ray_workers_once_each_and_spread_over_tasks(tmp_path: Path) -> None:
    project, flags = _pid_project(tmp_path, "p")
    _run(project, "--executor", "ray")
    calls = _calls(flags)
    ids = [i for i, _ in calls]
    assert len(ids) == 80 and len(set(ids)) == 80  # 2 cells x 40 items, each called once
    pids = {p for _, p in calls}
    import os

    assert os.getpid() not in pids  # not one item in the driver
    assert len(pids) >= 2  # the chunks of a cell went to both of the 2 CPUs' workers
    scores = (project.root / "metrics/logger/arith.scores.csv").read_text().splitlines()
    assert len(scores) == 41 and scores[1].startswith("easy-1-0000,")  # in item order


def test_ray_evaluates_only_what_the_checkpoint_lacks(tmp_path: Path) -> None:
    import asyncio
    import os

    from evalledger.execution.cell import evaluate_items, prepare_cell
    from evalledger.execution.checkpoint import Checkpoint
    from evalledger.matrix import cell_from_axes

    project, flags = _pid_project(tmp_path, "p")
    spec = project.spec()
    cell = cell_from_axes({"model": "logger", "benchmark": "arith"})
    prepared = prepare_cell(project, spec, cell)
    with Checkpoint(project.checkpoint_path(cell, prepared.config_hash)) as ck:
        asyncio.run(evaluate_items(prepared, ck, prepared.items[:25]))  # as a killed run left
    first = {i for i, _ in _calls(flags)}
    assert len(first) == 25
    (flags / "calls.log").unlink()
    _run(project, "--executor", "ray")
    again = _calls(flags)
    arith = sorted(i for i, _ in again if i.startswith("easy-1-"))
    assert arith == sorted({it.id for it in prepared.items} - first)  # the 15 left, once each
    assert len(again) == 15 + 40 and os.getpid() not in {p for _, p in again}
    scores = (project.root / "metrics/logger/arith.scores.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in scores[1:]] == [it.id for it in prepared.items]


def test_item_errors_on_workers_are_recorded_as_locally(tmp_path: Path) -> None:
    local, local_flags = _pid_project(tmp_path, "local")
    remote, remote_flags = _pid_project(tmp_path, "remote")
    for flags in (local_flags, remote_flags):
        (flags / "fail_on").touch()
    invoke(local, "run")
    result = invoke(remote, "run", "--executor", "ray")
    assert "4 items errored: ValueError x4" in result.output
    metrics = json.loads((remote.root / "metrics/logger/arith.json").read_text())
    assert metrics["errors"] == 4
    # (each project's params name its own flags folder)
    assert ledger_files(remote.root, params=False) == ledger_files(local.root, params=False)


def test_a_model_asking_for_more_than_the_cluster_has_fails_its_cell(tmp_path: Path) -> None:
    project, flags = _pid_project(tmp_path, "p", "resources: {num_gpus: 1}")
    result = invoke(project, "run", "--executor", "ray")
    assert result.exit_code == 1
    assert "model 'logger' asks for GPU=1 (cluster: 0) per task" in result.output
    assert _calls(flags) == []


def test_declared_cpus_are_what_each_task_takes(tmp_path: Path) -> None:
    project, flags = _pid_project(tmp_path, "p", "resources: {num_cpus: 2}")
    _run(project, "--executor", "ray")
    assert len(_calls(flags)) == 80


def test_the_response_cache_works_through_the_driver(tmp_path: Path) -> None:
    n = 12
    with ReferenceServer(ServerConfig()) as server:
        params = (
            "axes:\n  model: [ref]\n  benchmark: [arith]\n"
            f"models:\n  ref: {{adapter: openai, base_url: '{server.base_url}', "
            "model: reference, timeout: 5, price: {input: 2, output: 8}}\n"
            f"benchmarks:\n  arith: {{loader: arith, n_items: {n}, seed: 4, difficulty: easy}}\n"
        )
        project = make_project(tmp_path / "p", params)
        _run(project, "--executor", "ray")
        assert server.stats()["requests"] == n
        assert cache_path(project).is_file()  # the workers' answers, stored by the driver
        out = _run(project, "--executor", "ray", "--force")
        assert server.stats()["requests"] == n  # not one call more
        assert f"{n} model calls saved: answered from the response cache" in out
        metrics = json.loads((project.root / "metrics/ref/arith.json").read_text())
        assert metrics["cache_hits"] == n and metrics["cost"] == 0.0
        _run(project, "--executor", "ray", "--force", "--no-cache")
        assert server.stats()["requests"] == 2 * n


def test_run_executor_in_params_is_the_default(tmp_path: Path) -> None:
    project, flags = _pid_project(tmp_path, "p")
    _run(project, "-S", "+run.executor=ray")
    assert {p for _, p in _calls(flags)} and all(p != __import__("os").getpid()
                                                 for _, p in _calls(flags))  # fmt: skip


def test_without_ray_installed_the_run_stops_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path / "p", SMALL_PARAMS)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = invoke(project, "run", "--executor", "ray", "-S", "models.noisy.seed=9")
    assert result.exit_code == 2
    assert result.output == (
        "Error: the ray executor needs Ray, which is not installed; "
        "pip install 'evalledger[ray]', or run with --executor local\n"
    )
    assert not list((project.root / "runs").glob("exec_*"))
    assert "seed: 3" in project.params_path.read_text()  # the override not applied


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--address", "127.0.0.1:6379"], "--address names a Ray cluster"),
        (["--executor", "ray", "--shard", "1/2"], "--shard cannot be combined with --executor"),
        (["-S", "+run.executor=spark"], "run.executor must be one of local, ray"),
    ],
)
def test_bad_executor_options_get_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    project = make_project(tmp_path / "p", SMALL_PARAMS)
    result = invoke(project, "run", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_streamed_cell_on_ray_leaves_the_files_of_a_held_local_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalledger.execution import streaming

    local = make_project(tmp_path / "local", SMALL_PARAMS)
    _run(local)
    monkeypatch.setattr(streaming, "STREAM_ABOVE", 5)  # every cell streamed, cut in chunks
    remote = make_project(tmp_path / "remote", SMALL_PARAMS)
    _run(remote, "--executor", "ray")
    assert ledger_files(remote.root) == ledger_files(local.root)
