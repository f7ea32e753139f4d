"""Liveness of tracked runs: a SIGKILLed run is `crashed` in `list` and `show`, a live one
`running`, a finished one `completed`; heartbeats from another boot, a reused pid or
another host are judged as the heartbeat_state module says."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import invoke, listed, make_project
from evalledger.heartbeat_state import (
    INTERVAL,
    NO_HEARTBEAT_AFTER,
    STALE_AFTER,
    boot_id,
    heartbeat_path,
    liveness,
    read_heartbeat,
    write_heartbeat,
)
from evalledger.manifest import read_manifest
from evalledger.project import Project
from evalledger.track import heartbeat
from evalledger.track.tracker import Tracker

TRAIN = """\
import sys, time
from evalledger.track.tracker import Tracker

tracker = Tracker(sys.argv[1], flush_interval=0.2)
exp_id = tracker.start_experiment({"lr": 0.1}, name=sys.argv[2])
print(exp_id, flush=True)
step = 0
while True:
    tracker.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    step += 1
    time.sleep(0.02)
    if step == 10:
        print("ready", flush=True)
        if sys.argv[3] == "finish":
            sys.stdin.readline()  # finish when the test says so
            tracker.finish_experiment()
            break
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj")


def _start(
    project: Project, tmp_path: Path, name: str, mode: str
) -> tuple[subprocess.Popen[str], str]:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(project.root), name, mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    exp_id = proc.stdout.readline().strip()
    assert exp_id.startswith("exp_"), proc.stderr.read() if proc.stderr else ""
    assert proc.stdout.readline().strip() == "ready"
    return proc, exp_id


def _shown(project: Project, exp_id: str) -> str:
    out = invoke(project, "show", exp_id, "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["manifest"]["status"] == "in_progress" or data["status"] == "completed"
    return str(data["status"])


def test_killed_live_and_finished_runs(project: Project, tmp_path: Path) -> None:
    killed, killed_id = _start(project, tmp_path, "killed", "loop")
    live, live_id = _start(project, tmp_path, "live", "finish")
    try:
        assert read_heartbeat(project, killed_id) is not None
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        rows = listed(project)
        assert rows[killed_id]["status"] == "crashed"
        assert rows[killed_id]["recorded_status"] == "in_progress"
        assert rows[live_id]["status"] == "running"
        assert _shown(project, killed_id) == "crashed"
        assert _shown(project, live_id) == "running"
        text = invoke(project, "list", "--no-experiments").output
        assert any(killed_id in line and "crashed" in line for line in text.splitlines())
        shown = invoke(project, "show", killed_id).output.splitlines()[0]
        assert shown.startswith(f"{killed_id}  crashed (in_progress, but its process is gone)")

        assert live.stdin is not None
        live.stdin.write("finish\n")
        live.stdin.close()
        assert live.wait(timeout=60) == 0, live.stderr.read() if live.stderr else ""
    finally:
        for proc in (killed, live):
            if proc.poll() is None:
                proc.kill()
    assert listed(project)[live_id]["status"] == "completed"
    assert _shown(project, live_id) == "completed"
    assert not heartbeat_path(project, live_id).exists()  # removed at the finish
    assert heartbeat_path(project, killed_id).exists()  # left by the killed one


def _fake_beat(project: Project, exp_id: str, **changes: Any) -> None:
    """Replace a running experiment's heartbeat (its own thread stopped) by a doctored one."""
    beat = read_heartbeat(project, exp_id)
    assert beat is not None
    heartbeat.stop(exp_id)  # a no-op once stopped
    write_heartbeat(project, {**beat, **changes})


@pytest.mark.skipif(boot_id() is None, reason="boot IDs are Linux's")
def test_a_heartbeat_from_another_boot_is_crashed(project: Project) -> None:
    tracker = Tracker(project)
    exp_id = tracker.start_experiment(name="rebooted")
    try:
        assert listed(project)[exp_id]["status"] == "running"
        _fake_beat(project, exp_id, boot_id="0" * 8 + "-0000-0000-0000-" + "0" * 12)
        assert listed(project)[exp_id]["status"] == "crashed"
        assert _shown(project, exp_id) == "crashed"
    finally:
        tracker.finish_experiment()
    assert listed(project)[exp_id]["status"] == "completed"


def test_a_reused_pid_is_crashed_and_another_host_goes_stale(project: Project) -> None:
    tracker = Tracker(project)
    exp_id = tracker.start_experiment(name="elsewhere")
    manifest = read_manifest(project.runs_dir / exp_id / "manifest.yaml")
    try:
        beat = read_heartbeat(project, exp_id)
        assert beat is not None and beat["pid"] == os.getpid()
        if beat["process_start"] is not None:  # Linux
            _fake_beat(project, exp_id, process_start="1")  # this pid, another process
            assert liveness(project, manifest) == "crashed"
        beat_at = time.time()
        _fake_beat(project, exp_id, host=f"not-{socket.gethostname()}", beat_at=beat_at)
        assert liveness(project, manifest) == "running"  # recent beat: trusted
        late = beat_at + STALE_AFTER * INTERVAL + 1
        assert liveness(project, manifest, now=late) == "stale"
        assert listed(project)[exp_id]["status"] in ("running", "stale")
    finally:
        tracker.finish_experiment()


def test_an_old_in_progress_run_without_heartbeat_is_crashed(project: Project) -> None:
    tracker = Tracker(project)
    exp_id = tracker.start_experiment(name="no_beat")
    try:
        heartbeat.stop(exp_id)  # as a run from before heartbeats, or killed at its start
        manifest = read_manifest(project.runs_dir / exp_id / "manifest.yaml")
        assert liveness(project, manifest) == "running"  # just written: give it time
        later = manifest.updated_at.timestamp() + NO_HEARTBEAT_AFTER + 1
        assert liveness(project, manifest, now=later) == "crashed"
        assert manifest.provenance is not None
        manifest.provenance.hostname = "another-host"
        assert liveness(project, manifest, now=later) == "stale"  # nothing here can tell
    finally:
        tracker.finish_experiment()
    assert listed(project)[exp_id]["status"] == "completed"


# ----------------------------------------------------------------- failed sweep experiments

DVC_LOG = """\
Reproducing experiment 'tune-2'
Running stage 'train':
> python train.py
Traceback (most recent call last):
  File "train.py", line 3, in <module>
    raise ValueError("lr must be positive, not -0.1")
ValueError: lr must be positive, not -0.1
ERROR: failed to reproduce 'train': failed to run: python train.py, exited with 1
"""


def test_a_failed_sweep_experiment_says_why() -> None:
    from evalledger.share.sweep import log_reason

    assert log_reason(DVC_LOG) == "stage train: ValueError: lr must be positive, not -0.1"
    cell = "> sh .evalledger.sh cell\nError: benchmarks.qa: torn.jsonl line 2 is not valid JSON\n"
    cell += "ERROR: failed to reproduce 'eval@m-qa': failed to run: sh .evalledger.sh cell\n"
    assert (
        log_reason(cell)
        == "stage eval@m-qa: Error: benchmarks.qa: torn.jsonl line 2 is not valid JSON"
    )
    assert log_reason("ERROR: unexpected error - boom\n") == "ERROR: unexpected error - boom"
    assert log_reason("") == "its log is empty"
    assert len(log_reason("x" * 1000)) == 300


def test_sweep_run_json_names_each_failure_and_its_cause(tmp_path: Path) -> None:
    from test_sweep import QA

    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    row = {"id": "q1", "input": "Ada has 1 apple. Ada buys 2 more. How many apples now?",
           "target": "3"}  # fmt: skip
    (root / "data/qa.jsonl").write_text(json.dumps(row) + "\n")
    (root / "data/torn.jsonl").write_text(json.dumps(row) + '\n{"id": "q2", "inp\n')
    project = make_project(root, QA)
    out = invoke(project, "sweep", "-S", "benchmarks.qa.path=data/qa.jsonl,data/torn.jsonl",
                 "--run", "--name", "why", "--timeout", "120", "--json")  # fmt: skip
    assert out.exit_code == 1, out.output
    data = json.loads(out.stdout)
    assert data["results"] == {"why-1": "Success", "why-2": "Failed"}
    assert list(data["errors"]) == ["why-2"]
    assert data["errors"]["why-2"].startswith("stage eval@noisy-qa: Error: benchmarks.qa: ")
    assert "torn.jsonl line 2 is not valid JSON" in data["errors"]["why-2"]
