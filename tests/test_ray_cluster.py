"""``run --executor ray --address`` on a two-node Ray cluster on 127.0.0.1.

The cluster is what an operator starts: ``ray start --head``, then a second node with
``ray start --address``, one CPU each, token authentication on. ``evalledger run`` is a
separate process, as on a real driver host. One test SIGKILLs the worker process that is
evaluating items: its task is submitted again with the items not yet received, every
item is recorded exactly once, and the files equal a local run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import dvc, invoke, ledger_files, make_project
from evalledger.project import Project

pytest.importorskip("ray")

NODE_MODEL = """\
import os
import time


def generate(prompt, item, log, delay=0.0, gate=""):
    import ray

    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    gate_on = os.path.join(os.path.dirname(log), "gate_on")
    if item.id == gate and os.path.exists(gate_on):  # held mid-task until the test lifts it
        open(os.path.join(os.path.dirname(log), f"blocked-{os.getpid()}"), "w").close()
        while os.path.exists(gate_on):
            time.sleep(0.02)
    time.sleep(delay)
    with open(log, "a") as f:
        f.write(f"{item.id} {os.getpid()} {node}\\n")
    return f"The answer is {item.target}."
"""


#: The item whose worker the SIGKILL test kills, while the model holds it.
GATED = "easy-1-0020"
_TEMP: list[str] = []  # the cluster's temp dir, for its logs when a run fails


def _ray_logs() -> str:
    """The ends of the cluster's GCS and raylet logs (both nodes log under its temp dir)."""
    out = []
    for temp in _TEMP:
        for log in sorted(Path(temp).glob("session_*/logs/*")):
            if log.name.startswith(("gcs_server", "raylet", "monitor")) and log.is_file():
                tail = log.read_text(errors="replace").splitlines()[-15:]
                out.append(f"--- {log.name}\n" + "\n".join(tail))
    return "\n".join(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """``(address, env)`` of a running two-node cluster; ``env`` holds its token."""
    ray_bin = Path(sys.executable).with_name("ray")
    # Short: Ray's unix socket paths live under it and must stay under 108 bytes.
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    _TEMP[:] = [temp]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    address = f"127.0.0.1:{_free_port()}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats",
              f"--temp-dir={temp}"]  # fmt: skip
    nodes: list[int] = []  # each node's process group: `ray start` and what it started
    try:
        for args in (["--head", f"--port={address.split(':')[1]}", "--include-dashboard=false"],
                     [f"--address={address}"]):  # fmt: skip
            start = subprocess.Popen([str(ray_bin), "start", *args, *common], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, text=True)  # fmt: skip
            nodes.append(start.pid)
            out, _ = start.communicate(timeout=120)
            assert start.returncode == 0, out
        yield address, env
    finally:
        # Only this cluster's processes: `ray stop` would stop every Ray on the machine,
        # another test's (or a developer's) included.
        for group in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _params(flags: Path, delay: float, n_items: int) -> str:
    return textwrap.dedent(f"""\
        axes:
          model: [node]
          benchmark: [arith, arith_hard]
        models:
          node:
            adapter: python
            callable: node_model:generate
            path: {flags}
            options: {{log: {flags / "calls.log"}, delay: {delay}, gate: {GATED}}}
        benchmarks:
          arith: {{loader: arith, n_items: {n_items}, seed: 1, difficulty: easy}}
          arith_hard: {{loader: arith, n_items: {n_items}, seed: 2, difficulty: hard}}
        """)


def _project(tmp_path: Path, name: str, delay: float, n_items: int) -> tuple[Project, Path]:
    flags = tmp_path / "flags"  # one folder, so both projects' params are the same
    flags.mkdir(exist_ok=True)
    (flags / "node_model.py").write_text(NODE_MODEL)
    project = make_project(tmp_path / name, _params(flags, delay, n_items))
    return project, flags


def _calls(flags: Path) -> list[list[str]]:
    log = flags / "calls.log"
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def _start_run(project: Project, address: str, env: dict[str, str]) -> subprocess.Popen[str]:
    evalledger = Path(sys.executable).with_name("evalledger")
    return subprocess.Popen(
        [str(evalledger), "-C", str(project.root), "run", "--executor", "ray",
         "--address", address],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _localledger_files(tmp_path: Path, delay: float, n_items: int) -> dict[str, object]:
    local, flags = _project(tmp_path, "local", delay, n_items)
    assert invoke(local, "run").exit_code == 0
    (flags / "calls.log").unlink()
    return ledger_files(local.root)


def _recorded_once(project: Project, n_items: int) -> None:
    for bench in ("arith", "arith_hard"):
        rows = (project.root / f"metrics/node/{bench}.scores.csv").read_text().splitlines()[1:]
        ids = [row.split(",")[0] for row in rows]
        assert len(ids) == n_items == len(set(ids))
        preds = (project.root / f"predictions/node/{bench}.jsonl").read_text().splitlines()
        assert [json.loads(p)["id"] for p in preds] == ids
    manifest = next((project.root / "runs").glob("exec_*/manifest.yaml"))
    import yaml

    cells = yaml.safe_load(manifest.read_text())["cells"]
    assert {k: (c["status"], c["examples_completed"]) for k, c in cells.items()} == {
        "node/arith": ("completed", n_items),
        "node/arith_hard": ("completed", n_items),
    }


def test_a_two_node_cluster_shares_the_items(
    tmp_path: Path, cluster: tuple[str, dict[str, str]]
) -> None:
    address, env = cluster
    expected = _localledger_files(tmp_path, 0.01, 40)
    project, flags = _project(tmp_path, "remote", 0.01, 40)
    proc = _start_run(project, address, env)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, f"{out}\n{_ray_logs()}"
    calls = _calls(flags)
    assert len(calls) == 80 and len({c[0] for c in calls}) == 80  # each item called once
    assert len({c[2] for c in calls}) == 2  # on both nodes
    _recorded_once(project, 40)
    assert ledger_files(project.root) == expected
    assert "up to date" in dvc(project.root, "status").stdout


def test_a_sigkilled_worker_loses_no_item_and_records_none_twice(
    tmp_path: Path, cluster: tuple[str, dict[str, str]]
) -> None:
    address, env = cluster
    n_items = 60
    expected = _localledger_files(tmp_path, 0.04, n_items)
    project, flags = _project(tmp_path, "remote", 0.04, n_items)
    (flags / "gate_on").touch()
    proc = _start_run(project, address, env)
    deadline = time.monotonic() + 120
    while not (blocked := list(flags.glob("blocked-*"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run ended before the kill: {proc.communicate()[0]}\n{_ray_logs()}")
        time.sleep(0.02)
    victim = int(blocked[0].name.split("-")[1])  # a worker in the middle of a task
    os.kill(victim, signal.SIGKILL)
    (flags / "gate_on").unlink()  # the item submitted again runs through
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, f"{out}\n{_ray_logs()}"
    calls = _calls(flags)
    assert victim not in {int(c[1]) for c in calls if c[0] == GATED}
    assert [c[0] for c in calls].count(GATED) == 1  # the victim never answered it
    assert "a Ray task was lost (WorkerCrashedError)" in out
    assert "items not yet recorded are submitted again (attempt 2 of 4)" in out
    assert len({c[0] for c in calls}) == 2 * n_items  # every item called at least once
    _recorded_once(project, n_items)  # ... and recorded exactly once
    assert ledger_files(project.root) == expected
    assert "up to date" in dvc(project.root, "status").stdout


def test_an_unreachable_cluster_is_one_line_and_nothing_written(tmp_path: Path) -> None:
    from conftest import SMALL_PARAMS

    project = make_project(tmp_path / "p", SMALL_PARAMS)
    port = _free_port()  # nothing listens there now
    result = invoke(project, "run", "--executor", "ray", "--address", f"127.0.0.1:{port}",
                    "-S", "models.noisy.seed=9")  # fmt: skip
    assert result.exit_code == 2
    assert result.output == (
        f"Error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused; start "
        "it with `ray start --head --port PORT`, or fix --address (run.ray_address in "
        "params.yaml)\n"
    )
    assert not list((project.root / "runs").glob("exec_*"))
    assert "seed: 3" in project.params_path.read_text()
