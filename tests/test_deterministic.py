"""Deterministic ledger files: a re-run of a deterministic model changes only timings.

Per-item latency lives in the predictions file (DVC-cached, not in git); a cell's
``.scores.csv`` holds only what the answers determine, and its metrics JSON differs
from run to run only in its timing keys (``evalledger.metrics.TIMING_METRICS``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import dvc, git, invoke
from evalledger.ledger.scores import parse_scores
from evalledger.metrics import TIMING_METRICS, flatten, is_timing_metric
from evalledger.project import Project


def _outs(root: Path) -> dict[str, str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for s in lock["stages"].values() for o in s["outs"]}


def _changed_lines(root: Path, path: str) -> int:
    """Lines removed from ``path`` in the workspace against HEAD (``git diff --numstat``)."""
    out = git(root, "diff", "--numstat", "--", path).split()
    return int(out[1]) if out else 0


def test_a_forced_rerun_changes_only_timing_lines_of_the_metrics_json(project: Project) -> None:
    root = project.root
    first = invoke(project, "run", "--commit")
    assert first.exit_code == 0, first.output
    before = _outs(root)
    old = {
        p.relative_to(root).as_posix(): json.loads(p.read_text())
        for p in sorted(root.glob("metrics/*/*.json"))
    }
    assert len(old) == 6
    again = invoke(project, "run", "--force")
    assert again.exit_code == 0, again.output
    changed = git(root, "diff", "--name-only", "--", "metrics/").split()
    assert set(changed) <= set(old), changed  # no scores.csv line moved
    for path, was in old.items():
        now = json.loads((root / path).read_text())
        flat_old, flat_new = flatten(was), flatten(now)
        assert list(flat_old) == list(flat_new), path  # same keys, in the same order
        moved = [k for k in flat_old if flat_old[k] != flat_new[k]]
        assert all(is_timing_metric(k) for k in moved), (path, moved)
        # one line per timing value that moved, and no other line of the file
        assert _changed_lines(root, path) == len(moved), path
    # dvc.lock: the scores files hash the same; only metrics JSONs and predictions moved
    after = _outs(root)
    assert after.keys() == before.keys()
    for path in after:
        if path.endswith(".scores.csv"):
            assert after[path] == before[path], path
    assert json.loads(dvc(root, "status", "--json").stdout) == {}


def test_per_item_latency_is_in_the_predictions_not_the_scores(project: Project) -> None:
    assert invoke(project, "run", "--models", "solver").exit_code == 0
    scores = (project.root / "metrics/solver/arith.scores.csv").read_text().splitlines()
    assert "latency_ms" not in scores[0]
    rows = [
        json.loads(line)
        for line in (project.root / "predictions/solver/arith.jsonl").read_text().splitlines()
    ]
    assert len(rows) == len(scores) - 1 == 30
    assert all(isinstance(r["latency_ms"], float) and r["latency_ms"] >= 0 for r in rows)
    metrics = json.loads((project.root / "metrics/solver/arith.json").read_text())
    lat = sorted(r["latency_ms"] for r in rows)
    assert metrics["latency_ms"]["mean"] == round(sum(lat) / len(lat), 3)
    # the timings are one block of the file, so a re-run's diff is one hunk
    keys = list(metrics)
    spots = [keys.index(k) for k in TIMING_METRICS]
    assert spots == list(range(spots[0], spots[0] + len(TIMING_METRICS)))


def test_an_old_scores_file_with_latency_still_reads_and_diffs_clean(project: Project) -> None:
    """A ledger written before the change: its latency column reads, and the upgrade is
    no score change."""
    root = project.root
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    path = root / "metrics/solver/arith.scores.csv"
    new_text = path.read_text()
    lines = new_text.splitlines()
    old_lines = []
    for i, line in enumerate(lines):
        cells = line.split(",")
        cells.insert(6, "latency_ms" if i == 0 else "1.5")
        old_lines.append(",".join(cells))
    path.write_text("\n".join(old_lines) + "\n")
    git(root, "commit", "-qam", "scores as the previous version wrote them")
    table = parse_scores(path.read_bytes())
    assert table.columns["latency_ms"] == [1.5] * 30
    assert table.columns["correct"] == parse_scores(new_text.encode()).columns["correct"]
    path.write_text(new_text)
    git(root, "commit", "-qam", "upgrade")
    shown = invoke(project, "diff", "HEAD~1", "HEAD", "--json")
    assert shown.exit_code == 0, shown.output
    changes = json.loads(shown.stdout)["changes"]
    assert [c for c in changes if not is_timing_metric(c["metric"])] == []
    sig = invoke(project, "significance", "solver/arith@HEAD~1", "solver/arith@HEAD")
    assert sig.exit_code == 0, sig.output


@pytest.mark.parametrize(
    ("name", "timing"),
    [
        ("latency_ms", True), ("latency_ms.p50", True), ("latency_ms.mean", True),
        ("total_time_s", True), ("wall_time_s", True), ("train/epoch_time", True),
        ("time_to_first_token_ms", True), ("eval_duration", True), ("throughput", True),
        ("accuracy", False), ("n", False), ("cost", False), ("prompt_tokens", False),
        ("categories.two_step.accuracy", False), ("error_rate", False),
        ("timeout_rate", False), ("runtime_errors", False),
    ],
)  # fmt: skip
def test_timing_metrics_are_named_by_one_rule(name: str, timing: bool) -> None:
    assert is_timing_metric(name) is timing
