"""evalledger reproduce re-runs the user's own DVC stages (training) and judges them."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git, invoke, make_project
from evalledger.project import Project
from evalledger.share.verdicts import compare_stage

TRAIN = '''\
"""Train SGDClassifier on digits for a few epochs; write metrics and a loss series."""
import json
import random
import sys

import numpy as np
import yaml
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss

params = yaml.safe_load(open("params.yaml"))["train"]
seed = params["seed"] if params["seed"] is not None else random.randrange(10**6)
X, y = load_digits(return_X_y=True)
X = X / 16.0
rng = np.random.default_rng(seed)
order = rng.permutation(len(y))
X, y = X[order], y[order]
split = int(0.8 * len(y))
model = SGDClassifier(loss="log_loss", alpha=params["lr"], random_state=seed)
series = []
for epoch in range(params["epochs"]):
    model.partial_fit(X[:split], y[:split], classes=np.arange(10))
    series.append({"step": epoch, "val_loss": log_loss(y[split:], model.predict_proba(X[split:]),
                                                       labels=np.arange(10))})
acc = float(model.score(X[split:], y[split:]))
json.dump({"val_acc": acc, "val_loss": series[-1]["val_loss"], "epoch_time_s": random.random()},
          open("train_metrics.json", "w"))
json.dump({"val_loss": series}, open("train_series.json", "w"))
'''

STAGE = """
  train:
    cmd: {python} train.py
    deps: [train.py]
    params: [train]
    metrics:
      - train_metrics.json:
          cache: false
    plots:
      - train_series.json:
          cache: false
          x: step
          y: val_loss
"""


def _training_project(root: Path, seed: int | None) -> Project:
    import sys

    project = make_project(root)
    (root / "train.py").write_text(TRAIN)
    params = (root / "params.yaml").read_text()
    seed_text = "null" if seed is None else str(seed)
    (root / "params.yaml").write_text(
        params + f"train: {{lr: 0.001, epochs: 4, seed: {seed_text}}}\n"
    )
    dvc_yaml = (root / "dvc.yaml").read_text()
    (root / "dvc.yaml").write_text(
        dvc_yaml.replace("stages:\n", "stages:" + STAGE.format(python=sys.executable), 1)
    )
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "-s", "train"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "train")
    return project


def test_seeded_training_stage_matches(tmp_path: Path) -> None:
    project = _training_project(tmp_path / "proj", seed=7)
    recorded = (project.root / "train_metrics.json").read_text()
    result = invoke(project, "reproduce", "HEAD", "--json", "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(s["cell"], s["verdict"]) for s in data["stages"]] == [("train", "match")]
    assert data["cells"] == [] and data["ok"]
    assert (project.root / "train_metrics.json").read_text() == recorded  # tree untouched
    table = invoke(project, "reproduce", "-q")
    assert table.exit_code == 0, table.output
    assert "train (stage:" in table.stdout and "match" in table.stdout
    assert "1 stage(s)" in table.stdout


def test_unseeded_training_stage_reports_numbers(tmp_path: Path) -> None:
    project = _training_project(tmp_path / "proj", seed=None)
    result = invoke(project, "reproduce", "HEAD", "--stages", "train", "--json", "-q")
    data = json.loads(result.stdout)
    (stage,) = data["stages"]
    assert stage["verdict"] in ("consistent", "differs"), stage
    assert "train_metrics.json:val_acc" in stage["changes"] or stage["changes"]
    change = next(iter(stage["changes"].values()))
    assert change["recorded"] != change["reproduced"]
    assert "->" in stage["note"]
    assert result.exit_code == (0 if stage["verdict"] == "consistent" else 1)
    # the timing is never compared
    assert not any("epoch_time" in k for k in stage["changes"])


def test_unknown_stage_is_one_line(tmp_path: Path) -> None:
    project = _training_project(tmp_path / "proj", seed=7)
    result = invoke(project, "reproduce", "--stages", "trian")
    assert result.exit_code != 0
    assert "unknown stage 'trian'" in result.output and "stages: train" in result.output
    assert len(result.output.strip().splitlines()) <= 2


def test_compare_stage_verdicts() -> None:
    same = compare_stage("t", {"m.json:acc": 0.9}, {"m.json:acc": 0.9}, {}, {})
    assert same.verdict == "match"
    near = compare_stage("t", {"m.json:acc": 0.9}, {"m.json:acc": 0.91}, {}, {})
    assert near.verdict == "consistent" and "0.9 -> 0.91" in (near.note or "")
    far = compare_stage("t", {"m.json:acc": 0.9}, {"m.json:acc": 0.5}, {}, {})
    assert far.verdict == "differs" and far.changes == {"m.json:acc": (0.9, 0.5)}
    timing = compare_stage("t", {"m.json:wall_time_s": 1.0}, {"m.json:wall_time_s": 2.0}, {}, {})
    assert timing.verdict == "match"
    series = compare_stage("t", {}, {}, {"s.json:0.loss": 1.0}, {"s.json:0.loss": 1.1})
    assert series.verdict == "consistent" and "series" in (series.note or "")


def test_a_failing_stage_names_its_exception(tmp_path: Path) -> None:
    project = _training_project(tmp_path / "proj", seed=7)
    (project.root / "train.py").write_text("raise ValueError('diverged at epoch 3')\n")
    git(project.root, "commit", "-qam", "broken training")
    result = invoke(project, "reproduce", "--json", "-q")
    assert result.exit_code == 1
    (stage,) = json.loads(result.stdout)["stages"]
    assert stage["verdict"] == "failed"
    assert stage["note"] == "dvc repro: ValueError: diverged at epoch 3"
