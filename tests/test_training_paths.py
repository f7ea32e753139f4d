"""A tracked training run keeps stable, DVC-native paths named after its experiment.

A real small model (scikit-learn's ``SGDClassifier`` on ``load_digits``, seeded) is
trained with the Tracker and committed at two revisions; DVC's own commands then compare
them as they compare DVCLive runs: ``dvc plots diff`` overlays the revisions in one chart
per metric, ``dvc params diff`` and ``dvc exp show`` see the config keys, and ``dvc metrics
diff`` gives change values.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from conftest import dvc, git, invoke
from evalledger.errors import ConfigError
from evalledger.manifest import read_manifest
from evalledger.project import Project, experiment_paths
from evalledger.track.config import ExperimentConfig
from evalledger.track.series import read_series_dir
from evalledger.track.tracker import Tracker

METRICS = ("train/loss", "train/acc", "val/loss", "val/acc")


class TrainConfig(ExperimentConfig):
    lr: float = 0.01
    epochs: int = 4
    seed: int = 0


def train(
    project: Project, config: TrainConfig, name: str | None = "digits", checkpoint: str = ""
) -> str:
    """Train SGDClassifier on digits for ``config.epochs`` epochs; the experiment's ID.

    With ``checkpoint`` (a project-relative path) the model is pickled there and logged.
    """
    import pickle

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=0.25, random_state=config.seed)
    classes = np.unique(y)
    model = SGDClassifier(
        loss="log_loss", learning_rate="constant", eta0=config.lr, random_state=config.seed
    )
    with Tracker(project).experiment(config, name=name) as run:
        run.log_params({"train_size": len(y_tr)})
        for epoch in range(config.epochs):
            model.partial_fit(x_tr, y_tr, classes=classes)
            values: dict[str, Any] = {}
            for split, xs, ys in (("train", x_tr, y_tr), ("val", x_val, y_val)):
                values[f"{split}/loss"] = log_loss(ys, model.predict_proba(xs), labels=classes)
                values[f"{split}/acc"] = accuracy_score(ys, model.predict(xs))
            run.log_metrics(values, step=epoch, direction={"*loss": "lower", "*acc": "higher"})
        if checkpoint:
            (project.root / checkpoint).write_bytes(pickle.dumps(model))
            run.log_checkpoint(project.root / checkpoint, step=config.epochs - 1)
        return str(run.experiment_id)


@pytest.fixture(scope="module")
def two_revisions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str, str]:
    from conftest import make_project

    project = make_project(tmp_path_factory.mktemp("paths") / "proj")
    revs = []
    for lr in (0.01, 0.1):
        train(project, TrainConfig(lr=lr))
        git(project.root, "add", "-A")
        git(project.root, "commit", "-qm", f"train lr={lr}")
        revs.append(git(project.root, "rev-parse", "HEAD").strip())
    return project, revs[0], revs[1]


def test_a_run_writes_under_its_name_and_records_it(
    two_revisions: tuple[Project, str, str],
) -> None:
    project, _, _ = two_revisions
    names = git(project.root, "ls-files", "metrics", "runs").split()
    assert sorted(n for n in names if n.startswith("metrics/_")) == sorted(
        [f"metrics/_series/digits/{m}.tsv" for m in METRICS]
        + ["metrics/_experiments/digits.json", "metrics/_params/digits.yaml"]
    )
    assert len([n for n in names if n.endswith("/manifest.yaml")]) == 2  # one per run
    (last,) = git(project.root, "diff", "--name-only", "HEAD~1", "HEAD", "--", "runs").split()
    manifest = read_manifest(project.root / last)
    assert manifest.outputs == "digits" and manifest.name == "digits"
    series = read_series_dir(experiment_paths(project, manifest).series_dir)
    assert set(series) == set(METRICS) and [s for s, _ in series["val/loss"]] == [0, 1, 2, 3]
    params = yaml.safe_load((project.metrics_dir / "_params" / "digits.yaml").read_text())
    assert params == {"lr": 0.1, "epochs": 4, "seed": 0, "train_size": 1347}
    declared = yaml.safe_load(project.dvc_yaml.read_text())
    assert {"metrics/_series": {"x": "step"}} in declared["plots"]
    assert "metrics/_experiments" in declared["metrics"]
    assert declared["params"] == ["metrics/_params"]


def test_dvc_plots_diff_overlays_the_revisions(two_revisions: tuple[Project, str, str]) -> None:
    project, a, b = two_revisions
    out = dvc(project.root, "plots", "diff", a, b, "--json").stdout
    plots = json.loads(out)["data"]
    assert sorted(plots) == sorted(f"metrics/_series/digits/{m}.tsv" for m in METRICS)
    for path, charts in plots.items():
        assert len(charts) == 1, path  # one chart per metric ...
        revs = {v["rev"] for v in charts[0]["content"]["data"]["values"]}
        assert revs == {a, b}, (path, revs)  # ... with a series per revision


def test_dvc_sees_config_keys_and_metric_changes(two_revisions: tuple[Project, str, str]) -> None:
    project, a, b = two_revisions
    params = json.loads(dvc(project.root, "params", "diff", a, b, "--json").stdout)
    (change,) = params["metrics/_params/digits.yaml"].items()  # epochs, seed... unchanged
    assert change[0] == "lr" and (change[1]["old"], change[1]["new"]) == (0.01, 0.1)
    metrics = json.loads(dvc(project.root, "metrics", "diff", a, b, "--json").stdout)
    changes = metrics["metrics/_experiments/digits.json"]
    for key in ("train.loss", "val.loss", "val.acc"):
        assert isinstance(changes[key]["diff"], float), (key, changes)
    shown = json.loads(dvc(project.root, "exp", "show", "--json").stdout)
    data = shown[0]["data"]  # the workspace row: one column per config key and metric
    assert data["params"]["metrics/_params/digits.yaml"]["data"]["lr"] == 0.1
    assert set(data["metrics"]["metrics/_experiments/digits.json"]["data"]) == {
        "train", "val", "step",
    }  # fmt: skip


def test_a_grid_search_gets_one_folder_per_name_and_a_name_again_replaces(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from conftest import make_project

    project = make_project(tmp_path_factory.mktemp("grid") / "proj")
    for lr in (0.01, 0.1):
        train(project, TrainConfig(lr=lr, epochs=2), name=f"lr-{lr}")
    again = train(project, TrainConfig(lr=0.5, epochs=3), name="lr-0.1")
    default = train(project, TrainConfig(epochs=1), name=None)
    assert sorted(p.name for p in (project.metrics_dir / "_series").iterdir()) == [
        "lr-0.01", "lr-0.1", "train",
    ]  # fmt: skip
    series = read_series_dir(project.metrics_dir / "_series" / "lr-0.1")
    assert [s for s, _ in series["val/acc"]] == [0, 1, 2]  # the later run, not appended
    params = yaml.safe_load((project.metrics_dir / "_params" / "lr-0.1.yaml").read_text())
    assert params["lr"] == 0.5
    assert read_manifest(project.runs_dir / again / "manifest.yaml").outputs == "lr-0.1"
    manifest = read_manifest(project.runs_dir / default / "manifest.yaml")
    assert manifest.outputs == "train" and manifest.name == default  # cells keep the ID


def test_an_older_manifest_falls_back_to_id_paths(project: Project) -> None:
    with Tracker(project).experiment(name="x") as run:
        run.log_metrics({"loss": 1.0}, step=0)
        exp_id = str(run.experiment_id)
    old = read_manifest(project.runs_dir / exp_id / "manifest.yaml").model_copy(
        update={"outputs": None}
    )
    paths = experiment_paths(project, old)
    assert paths.series_dir == project.metrics_dir / "_series" / exp_id
    assert paths.summary_path == project.metrics_dir / "_experiments" / f"{exp_id}.json"
    assert paths.params_path is None


def test_strict_config_refuses_a_typo_with_a_did_you_mean() -> None:
    assert TrainConfig(lrr=0.5).lr == 0.01  # not strict: stored beside the default
    with pytest.raises(ConfigError) as err:
        TrainConfig(strict=True, lrr=0.5)
    assert err.value.one_line() == ("unknown config key 'lrr' for TrainConfig; did you mean 'lr'?")

    class Strict(TrainConfig):
        strict_keys = True

    with pytest.raises(ConfigError) as err:
        Strict(epoch=3)
    assert err.value.one_line().endswith("did you mean 'epochs'?")
    with pytest.raises(ConfigError) as err:
        Strict.model_validate({"sede": 1})
    assert err.value.one_line().endswith("did you mean 'seed'?")
    assert Strict(lr=0.2).to_dict() == {"lr": 0.2, "epochs": 4, "seed": 0}


def test_evalledger_diff_shows_the_config_change(two_revisions: tuple[Project, str, str]) -> None:
    project, a, b = two_revisions
    out = invoke(project, "diff", a, b, "--json")
    assert out.exit_code == 0, out.output
    params = json.loads(out.stdout)["params"]
    assert params == [{"key": "metrics/_params/digits.yaml:lr", "old": 0.01, "new": 0.1}]
