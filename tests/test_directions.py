"""Metric directions: every ranking, diff, gate and winner knows which way is better."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import git, invoke, make_project
from evalledger.errors import ConfigError
from evalledger.metrics import Directions
from evalledger.project import Project
from evalledger.track.tracker import Tracker


def _evaluate(project: Project, name: str, **metrics: float) -> str:
    tracker = Tracker(project)
    with tracker.experiment({"run": name}, name=name):
        tracker.log_evaluation("heldout", {**metrics, "n": 100})
        exp_id = tracker.experiment_id
    assert exp_id is not None
    return exp_id


def _commit(project: Project, message: str) -> None:
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", message)


@pytest.fixture
def losses(tmp_path: Path) -> tuple[Project, str, str]:
    """Two commits of one model whose val_loss falls from 0.5 to 0.2 (an improvement)."""
    project = make_project(tmp_path / "proj")
    first = _evaluate(project, "tuned", val_loss=0.5)
    _commit(project, "val_loss 0.5")
    second = _evaluate(project, "tuned", val_loss=0.2)
    _commit(project, "val_loss 0.2")
    return project, first, second


def test_a_falling_loss_passes_the_gate_and_a_rising_one_fails_it(
    losses: tuple[Project, str, str],
) -> None:
    project, _, _ = losses
    better = invoke(project, "diff", "HEAD~1", "HEAD", "-m", "val_loss", "--fail-on-regression")
    assert better.exit_code == 0, better.output
    worse = invoke(project, "diff", "HEAD", "HEAD~1", "-m", "val_loss", "--fail-on-regression")
    assert worse.exit_code == 5, worse.output
    assert "tuned/heldout val_loss 0.2 -> 0.5" in worse.output


def test_leaderboard_and_compare_rank_the_lower_loss_first(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    high = _evaluate(project, "wide", val_loss=0.5)
    low = _evaluate(project, "narrow", val_loss=0.2)
    board = json.loads(invoke(project, "leaderboard", "-m", "val_loss", "--format", "json").stdout)
    assert [e["name"] for e in board["entries"]][:2] == ["narrow", "wide"]
    compared = json.loads(invoke(project, "compare", high, low, "-m", "val_loss", "--json").stdout)
    means = compared["means"]
    assert compared["winner"] == min(means, key=means.get)  # the 0.2 side
    assert means[compared["winner"]] == pytest.approx(0.2)
    assert low in compared["winner"] and high not in compared["winner"]


def test_params_yaml_sets_directions_by_name_and_glob(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    text = project.params_path.read_text() + "metrics:\n  quality_gap: lower\n  'probe/*': lower\n"
    project.params_path.write_text(text)
    _evaluate(project, "a", quality_gap=0.3)
    _evaluate(project, "b", quality_gap=0.1)
    board = json.loads(
        invoke(project, "leaderboard", "-m", "quality_gap", "--format", "json").stdout
    )
    assert [e["name"] for e in board["entries"]][:2] == ["b", "a"]
    directions = Directions.from_params({"metrics": {"quality_gap": "lower", "probe/*": "lower"}})
    assert directions.lower_is_better("probe/drift")
    assert not directions.lower_is_better("accuracy") and directions.assumed == set()


def test_the_tracker_records_a_direction_that_diff_and_leaderboard_follow(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "proj")
    tracker = Tracker(project)
    with tracker.experiment({"run": "wide"}, name="wide"):
        tracker.log_metrics({"drift": 0.5}, direction="lower")
        tracker.log_evaluation("heldout", {"drift": 0.5, "n": 100})
    _commit(project, "drift 0.5")
    with tracker.experiment({"run": "wide"}, name="wide"):
        tracker.log_metrics({"drift": 0.2}, direction={"dri*": "lower"})
        tracker.log_evaluation("heldout", {"drift": 0.2, "n": 100})
    _commit(project, "drift 0.2")
    manifests = sorted(p.read_text() for p in project.root.glob("runs/exp_*/manifest.yaml"))
    assert sum(yaml.safe_load(m).get("directions") == {"drift": "lower"} for m in manifests) == 1
    assert sum(yaml.safe_load(m).get("directions") == {"dri*": "lower"} for m in manifests) == 1
    better = invoke(project, "diff", "HEAD~1", "HEAD", "-m", "drift", "--fail-on-regression")
    assert better.exit_code == 0, better.output
    worse = invoke(project, "diff", "HEAD", "HEAD~1", "-m", "drift", "--fail-on-regression")
    assert worse.exit_code == 5 and "drift 0.2 -> 0.5" in worse.stderr
    assert "taken as higher-is-better" not in worse.output
    with tracker.experiment({"run": "narrow"}, name="narrow"):
        tracker.log_evaluation("heldout", {"drift": 0.1, "n": 100})
    board = json.loads(invoke(project, "leaderboard", "-m", "drift", "--json").stdout)
    assert [e["name"] for e in board["entries"]] == ["narrow", "wide"]
    assert board["notes"] == []
    by_direction = {("dri*" in p.read_text()): p.parent.name
                    for p in project.root.glob("runs/exp_*/manifest.yaml")
                    if '"directions":' in p.read_text()}  # fmt: skip
    low, high = by_direction[True], by_direction[False]  # drift 0.2, drift 0.5
    compared = json.loads(invoke(project, "compare", high, low, "-m", "drift", "--json").stdout)
    assert compared["winner"] == low  # lower being better, as the Tracker was told
    # params.yaml has the last word.
    project.params_path.write_text(project.params_path.read_text() + "metrics:\n  drift: higher\n")
    board = json.loads(invoke(project, "leaderboard", "-m", "drift", "--json").stdout)
    assert [e["name"] for e in board["entries"]] == ["wide", "narrow"]


def test_a_bad_tracker_direction_is_one_line(tmp_path: Path) -> None:
    from evalledger.errors import EvalLedgerError

    project = make_project(tmp_path / "proj")
    tracker = Tracker(project)
    with tracker.experiment({"run": "x"}, name="x"):
        with pytest.raises(EvalLedgerError, match=r"direction of 'loss' is 'down'; use 'lower'"):
            tracker.log_metrics({"loss": 1.0}, direction="down")
        tracker.log_metrics({"loss": 1.0})  # the bad call logged nothing


def test_an_unknown_direction_is_assumed_higher_and_said_once(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    _evaluate(project, "a", quirk=0.3)
    _evaluate(project, "b", quirk=0.1)
    result = invoke(project, "leaderboard", "-m", "quirk", "--format", "json")
    assert [e["name"] for e in json.loads(result.stdout)["entries"]][:2] == ["a", "b"]
    notes = [line for line in result.stderr.splitlines() if "quirk" in line]
    assert len(notes) == 1 and "taken as higher-is-better" in notes[0]


def test_a_bad_direction_in_params_yaml_is_refused_before_a_run(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    project.params_path.write_text(project.params_path.read_text() + "metrics:\n  loss: down\n")
    result = invoke(project, "run")
    assert result.exit_code == 2
    assert "metrics.loss is 'down'; use lower or higher" in result.output
    with pytest.raises(ConfigError):
        Directions.from_params({"metrics": ["loss"]})


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("val_loss", "lower"), ("train/loss", "lower"), ("perplexity", "lower"),
        ("error_rate", "lower"), ("errors", "lower"), ("latency_ms.p95", "lower"),
        ("cost", "lower"), ("prompt_tokens", "lower"), ("runtime_s", "lower"),
        ("accuracy", "higher"), ("mean_score", "higher"), ("format_accuracy", "higher"),
        ("categories.two_step.accuracy", "higher"), ("bleu", "higher"),
    ],
)  # fmt: skip
def test_built_in_directions(metric: str, direction: str) -> None:
    d = Directions()
    assert d.direction(metric) == direction
    assert d.assumed == set()
