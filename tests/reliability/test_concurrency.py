"""`evalledger run` and Trackers at once: dvc.yaml has one lock, so no edit is lost.

``run`` rewrites dvc.yaml's ``eval`` stage whenever the set of axes changes, and every
Tracker evaluation adds its metrics file to dvc.yaml's top-level ``metrics:``. Without one
lock around both, a run could drop a Tracker's declaration, or a Tracker could put back an
old stage, leaving the run unable to record its cells.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import yaml

from conftest import SMALL_PARAMS, make_project
from evalledger.project import Project

EVALUATIONS = 60  # per Tracker process
RUNS = 8

WITH_DECODING = SMALL_PARAMS.replace(
    "  benchmark: [arith, arith_hard]\n",
    "  benchmark: [arith, arith_hard]\n  decoding: [greedy]\n",
).replace("run:\n", "decodings:\n  greedy: {temperature: 0}\nrun:\n")

TRACKER = textwrap.dedent("""\
    import sys
    from evalledger.track.tracker import Tracker

    root, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tracker = Tracker(root)
    with tracker.experiment({"tag": tag}, name=f"trk-{tag}"):
        for i in range(count):
            tracker.log_evaluation(f"b{i:03d}", {"accuracy": 0.5})
    """)


def evalledger(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "evalledger"
    return subprocess.run([str(exe), "-C", str(root), *args], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


def test_runs_and_trackers_at_once_keep_every_edit(tmp_path: Path) -> None:
    project: Project = make_project(
        tmp_path / "proj", SMALL_PARAMS.replace("n_items: 30", "n_items: 5")
    )
    script = tmp_path / "track.py"
    script.write_text(TRACKER)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    trackers = [
        subprocess.Popen([sys.executable, str(script), str(project.root), tag, str(EVALUATIONS)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for tag in ("a", "b")
    ]  # fmt: skip
    results = []
    variants = [SMALL_PARAMS, WITH_DECODING]
    for i in range(RUNS):
        text = (
            variants[i % 2]
            .replace("n_items: 30", "n_items: 5")
            .replace("n_items: 20", "n_items: 4")
        )
        project.params_path.write_text(text)  # a new axis set: run must rewrite the stage
        results.append(evalledger(project.root, "run", "--force"))
        time.sleep(0.05)
    outputs = [p.communicate(timeout=300)[0] for p in trackers]

    for p, out in zip(trackers, outputs, strict=True):
        assert p.returncode == 0, out
    for r in results:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "recorded in dvc.lock" in r.stdout + r.stderr, r.stdout + r.stderr

    doc = yaml.safe_load(project.dvc_yaml.read_text())
    declared = set(doc.get("metrics") or [])
    wanted = {f"metrics/trk-{tag}/b{i:03d}.json" for tag in ("a", "b") for i in range(EVALUATIONS)}
    assert wanted - declared == set(), f"{len(wanted - declared)} declarations lost"
    last_axes = ["model", "benchmark"] + (["decoding"] if (RUNS - 1) % 2 else [])
    assert list(doc["stages"]["eval"]["matrix"]) == last_axes
    lock = yaml.safe_load(project.dvc_lock.read_text())
    assert lock and len(lock["stages"]) >= 6
    status = subprocess.run(["dvc", "status", "--quiet"], cwd=project.root, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert status.returncode == 0, status.stdout + status.stderr
