"""Tracker.resume: a SIGKILLed tracked run continues its series from its last step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import listed, make_project
from evalledger.errors import EvalLedgerError
from evalledger.manifest import read_manifest
from evalledger.project import Project, experiment_paths
from evalledger.track.series import read_series_dir
from evalledger.track.tracker import Tracker

TRAIN = """\
import sys, time
from evalledger.track.tracker import Tracker

tracker = Tracker(sys.argv[1], flush_interval=0.05)
exp_id = tracker.start_experiment({"lr": 0.1}, name=sys.argv[2])
print(exp_id, flush=True)
step = 0
while True:
    tracker.log_metrics({"train/loss": 1.0 / (step + 1)})
    step += 1
    time.sleep(0.01)
    if step == 10:
        print("ready", flush=True)
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj")


def _start(project: Project, tmp_path: Path, name: str) -> tuple[subprocess.Popen[str], str]:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(project.root), name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    exp_id = proc.stdout.readline().strip()
    assert exp_id.startswith("exp_"), proc.stderr.read() if proc.stderr else ""
    assert proc.stdout.readline().strip() == "ready"
    return proc, exp_id


def _steps(project: Project, exp_id: str) -> list[int]:
    manifest = read_manifest(project.runs_dir / exp_id / "manifest.yaml")
    series = read_series_dir(experiment_paths(project, manifest).series_dir)
    return [step for step, _ in series["train/loss"]]


def test_a_killed_run_resumes_where_it_left_off(project: Project, tmp_path: Path) -> None:
    proc, exp_id = _start(project, tmp_path, "killed")
    try:
        time.sleep(0.2)  # some more steps, some flushed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert listed(project)[exp_id]["status"] == "crashed"
    before = _steps(project, exp_id)
    assert len(before) >= 10 and before == list(range(len(before)))
    last = before[-1]

    tracker = Tracker(project, flush_interval=0.05)
    with tracker.resume(exp_id[-8:]) as run:  # a unique part of the ID
        assert run.experiment_id == exp_id
        assert listed(project)[exp_id]["status"] == "running"
        with pytest.raises(EvalLedgerError, match=f"not after step {last}"):
            run.log_metrics({"train/loss": 0.0}, step=last)
        for _ in range(5):
            run.log_metrics({"train/loss": 0.01})
        run.log_metrics({"train/loss": 0.005}, step=last + 6)
    steps = _steps(project, exp_id)
    assert steps == list(range(last + 7))  # contiguous, no duplicates
    manifest = read_manifest(project.runs_dir / exp_id / "manifest.yaml")
    assert manifest.status.value == "completed"
    assert manifest.last_metrics["step"] == last + 6
    assert manifest.config == {"lr": 0.1}
    assert listed(project)[exp_id]["status"] == "completed"
    summary = json.loads(experiment_paths(project, manifest).summary_path.read_text())
    assert summary["step"] == last + 6 and summary["train"]["loss"] == 0.005

    with pytest.raises(EvalLedgerError, match=f"exp {exp_id} is completed; start a new") as e:
        Tracker(project).resume(exp_id)
    assert "\n" not in e.value.message


def test_a_running_run_is_not_resumed(project: Project, tmp_path: Path) -> None:
    proc, exp_id = _start(project, tmp_path, "live")
    try:
        assert listed(project)[exp_id]["status"] == "running"
        with pytest.raises(EvalLedgerError, match=f"exp {exp_id} is running: a live process"):
            Tracker(project).resume(exp_id)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert listed(project)[exp_id]["status"] == "crashed"


def test_a_cut_line_is_dropped_and_unknown_ids_are_one_line(
    project: Project, tmp_path: Path
) -> None:
    proc, exp_id = _start(project, tmp_path, "cut")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    last = _steps(project, exp_id)[-1]
    manifest = read_manifest(project.runs_dir / exp_id / "manifest.yaml")
    path = experiment_paths(project, manifest).series_dir / "train" / "loss.tsv"
    with path.open("a") as f:
        f.write(f"{last + 1}\t0.")  # a line the kill cut short
    assert listed(project)[exp_id]["status"] == "crashed"

    with Tracker(project).resume(exp_id) as again:
        again.log_metrics({"train/loss": 0.5})
    assert _steps(project, exp_id) == list(range(last + 2))
    assert path.read_text().endswith(f"\n{last + 1}\t0.5\n")
    with pytest.raises(EvalLedgerError, match="no tracked experiment 'exp_nope'"):
        Tracker(project).resume("exp_nope")


CHECKPOINTED = """\
import sys
from pathlib import Path
from evalledger.track.tracker import Tracker

tracker = Tracker(sys.argv[1], flush_interval=60)
tracker.start_experiment({"lr": 0.1}, name="ckpt")
for step in range(6):
    tracker.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    if step in (1, 3):
        Path(sys.argv[2], f"w{step}").write_text(str(step))
        tracker.log_checkpoint(Path(sys.argv[2], f"w{step}"), step=step)
tracker.flush()  # steps 4 and 5 are on disk; their weights never were
print(tracker.experiment_id, flush=True)
import os, signal
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_from_checkpoint_cuts_the_series_back_to_the_weights(
    project: Project, tmp_path: Path
) -> None:
    script = tmp_path / "ckpt.py"
    script.write_text(CHECKPOINTED)
    weights = project.root / "weights"
    weights.mkdir()
    out = subprocess.run([sys.executable, str(script), str(project.root), str(weights)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == -signal.SIGKILL, out.stderr
    exp_id = out.stdout.strip()
    assert _steps(project, exp_id) == [0, 1, 2, 3, 4, 5]
    tracker = Tracker(project)
    assert tracker.last_step == -1 and tracker.last_checkpoint is None  # nothing running
    with tracker.resume(exp_id, from_checkpoint=True) as run:
        assert run.last_step == 3 and run.last_checkpoint == weights / "w3"
        assert _steps(project, exp_id) == [0, 1, 2, 3]
        run.log_metrics({"train/loss": 0.2})
        assert run.last_step == 4
    assert _steps(project, exp_id) == [0, 1, 2, 3, 4]
    summary = json.loads(
        experiment_paths(
            project, read_manifest(project.runs_dir / exp_id / "manifest.yaml")
        ).summary_path.read_text()
    )
    assert summary == {"train": {"loss": 0.2}, "step": 4}
