"""``evalledger diff`` of a training change: config, final training metrics, and the run.

A real seeded SGDClassifier on digits is trained with the Tracker at two learning rates
and committed twice (helpers from test_training_paths); the diff shows the lr change, the
summary's ``val.loss`` with its direction, and the B run's ID with its checkpoint's sha256.
The gate on ``-m val.loss`` passes when the loss falls and fails (exit 5) when it rises.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from conftest import git, invoke
from evalledger.project import Project
from test_training_paths import TrainConfig, train

LOSS = "val.loss"
CELL = "_experiments/digits"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str, str, list[float]]:
    """Two commits (lr 0.01, then 0.5): the B run's ID, its checkpoint hash, both losses."""
    from conftest import make_project

    project = make_project(tmp_path_factory.mktemp("tdiff") / "proj")
    losses, exp_id = [], ""
    for lr in (0.01, 0.5):
        exp_id = train(project, TrainConfig(lr=lr), checkpoint="model.pkl")
        summary = json.loads((project.metrics_dir / "_experiments" / "digits.json").read_text())
        losses.append(summary["val"]["loss"])
        git(project.root, "add", "-A")
        git(project.root, "commit", "-qm", f"train lr={lr}")
    digest = hashlib.sha256((project.root / "model.pkl").read_bytes()).hexdigest()
    return project, exp_id, digest, losses


def _diff(project: Project, *args: str) -> Any:
    out = invoke(project, "diff", *args)
    assert out.exit_code == 0, out.output
    return out.stdout


def test_the_markdown_shows_config_loss_and_the_run(
    trained: tuple[Project, str, str, list[float]],
) -> None:
    project, exp_id, digest, (old, new) = trained
    assert new < old  # in 4 epochs the larger rate trains the seeded model further
    md = _diff(project, "HEAD~1", "HEAD", "--md")
    assert "| `metrics/_params/digits.yaml:lr` | `0.01` | `0.5` |" in md
    (row,) = [line for line in md.splitlines() if f"| {LOSS} ↓ |" in line]  # lower is better
    assert row.startswith(f"| better | `{CELL}` |")  # untested: better by its direction
    assert f"{old:.4f}"[:5] in row and f"{new:.4f}"[:5] in row
    assert "#### Experiments" in md
    (exp_row,) = [line for line in md.splitlines() if digest in line]
    assert f"`{exp_id}`" in exp_row and "`model.pkl`" in exp_row and "digits" in exp_row


def test_the_json_has_the_changes_direction_and_experiments(
    trained: tuple[Project, str, str, list[float]],
) -> None:
    project, exp_id, digest, (old, new) = trained
    data = json.loads(_diff(project, "HEAD~1", "HEAD", "--json"))
    assert {"key": "metrics/_params/digits.yaml:lr", "old": 0.01, "new": 0.5} in data["params"]
    by_metric = {c["metric"]: c for c in data["changes"] if c["cell"] == CELL}
    loss = by_metric[LOSS]
    assert (loss["old"], loss["new"]) == (old, new)
    assert loss["significant"] is None and "test" not in loss  # no per-item scores
    assert {"val.loss", "train.loss"} <= set(by_metric) and "step" not in by_metric
    assert [e["id"] for e in data["experiments"]] == [exp_id]
    (ckpt,) = data["experiments"][0]["checkpoints"]
    assert ckpt["path"] == "model.pkl" and ckpt["sha256"] == digest and ckpt["step"] == 3
    assert data["experiments"][0]["name"] == "digits"


def test_the_gate_on_the_loss_follows_its_direction(
    trained: tuple[Project, str, str, list[float]],
) -> None:
    project, _, _, _ = trained
    gate = ("-m", LOSS, "--fail-on-regression")
    falls = invoke(project, "diff", "HEAD~1", "HEAD", *gate)
    assert falls.exit_code == 0, falls.output
    rises = invoke(project, "diff", "HEAD", "HEAD~1", *gate, "--json")
    assert rises.exit_code == 5, rises.output
    (change,) = [c for c in json.loads(rises.stdout)["changes"] if c["metric"] == LOSS]
    assert change["fails_gate"] is True
    assert json.loads(rises.stdout)["experiments"] == []  # HEAD~1 holds no new manifest
    typo = invoke(project, "diff", "HEAD~1", "HEAD", "-m", "val.los")
    assert typo.exit_code != 0 and "did you mean val.loss" in typo.output
