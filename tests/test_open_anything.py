"""Open anything: run IDs, tracked run names and DVC experiment names, wherever the run
lives (here: only in `dvc exp run` commits, the workspace cleaned), in `show`, `compare`,
`diff`, `leaderboard --all-experiments` and `ExperimentConfig.from_experiment`.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import dvc, git, invoke, make_project
from evalledger.errors import UnknownExecutionError
from evalledger.ledger.history import Ledger
from evalledger.project import Project
from evalledger.track.config import ExperimentConfig

TINY = """\
axes:
  model: [noisy]
  benchmark: [arith]
models:
  noisy: {adapter: baseline, strategy: solver, error_rate: 0.3, seed: 3}
benchmarks:
  arith: {loader: arith, n_items: 20, seed: 1, difficulty: easy}
run:
  jobs: 1
"""

TRAIN_PY = """\
import yaml

from evalledger.track.tracker import Tracker

params = yaml.safe_load(open("params.yaml"))["train"]
with Tracker().experiment({"lr": params["lr"]}, name=params["name"]) as run:
    for step in range(3):
        run.log_metrics({"train/loss": 1.0 / (1 + step * params["lr"])}, step=step)
"""

#: DVC experiment -> (train.lr, the tracked run's name); "alpha" names two runs.
EXPERIMENTS = {"tr-a": (0.1, "alpha"), "tr-b": (0.5, "beta"), "tr-c": (0.3, "alpha")}


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, dict[str, str]]:
    """Three `train` experiments and one evaluation experiment; DVC experiment -> run ID."""
    project = make_project(tmp_path_factory.mktemp("open") / "proj", TINY)
    root = project.root
    with (root / "params.yaml").open("a") as fh:
        fh.write("train:\n  lr: 0.01\n  name: base\n")
    with (root / "dvc.yaml").open("a") as fh:
        fh.write(textwrap.indent("train:\n  cmd: python train.py\n  params:\n    - train\n",
                                 "  "))  # fmt: skip
    (root / "train.py").write_text(TRAIN_PY)
    git(root, "add", "params.yaml", "dvc.yaml", "train.py")
    git(root, "commit", "-qm", "a training stage")
    assert invoke(project, "run", "--commit").exit_code == 0
    for exp, (lr, name) in EXPERIMENTS.items():
        dvc(root, "exp", "run", "-S", f"train.lr={lr}", "-S", f"train.name={name}", "-n", exp,
            "train")  # fmt: skip
    dvc(root, "exp", "run", "-S", "models.noisy.error_rate=0.05", "-n", "ev-low", "eval")
    # The runs now live only in the experiments' commits.
    git(root, "checkout", "-q", "--", ".")
    git(root, "clean", "-fdq")
    ids = {}
    for exp in EXPERIMENTS:
        tree = git(root, "ls-tree", "-r", "--name-only", _commit(root, exp)).split()
        base = git(root, "ls-tree", "-r", "--name-only", "HEAD").split()
        (run,) = {p.split("/")[1] for p in tree if p.startswith("runs/exp_")} - {
            p.split("/")[1] for p in base if p.startswith("runs/")
        }
        ids[exp] = run
    return project, ids


def _commit(root: Path, exp: str) -> str:
    refs = git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps").split("\n")
    (sha,) = [r.split()[1] for r in refs if r.split(" ")[0].endswith(f"/{exp}")]
    return sha


def _one_line_error(result: object, *needles: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, output  # type: ignore[attr-defined]
    assert len(output.strip().splitlines()) == 1, output
    for needle in needles:
        assert needle in output, output


def test_show_by_name_by_experiment_and_by_id_only_in_an_experiment(
    swept: tuple[Project, dict[str, str]],
) -> None:
    project, ids = swept
    assert not (project.root / "runs" / ids["tr-a"]).exists()
    by_name = invoke(project, "show", "beta")
    assert by_name.exit_code == 0, by_name.output
    assert by_name.stdout.startswith(ids["tr-b"]) and "name      beta" in by_name.stdout
    sha = _commit(project.root, "tr-b")
    assert f"results   read at {sha[:7]}" in by_name.stdout
    by_id = invoke(project, "show", ids["tr-a"], "--json")
    assert by_id.exit_code == 0, by_id.output
    assert json.loads(by_id.stdout)["manifest"]["name"] == "alpha"
    assert invoke(project, "show", ids["tr-c"][-8:]).stdout.startswith(ids["tr-c"])
    by_exp = invoke(project, "show", "tr-c")
    assert by_exp.exit_code == 0 and by_exp.stdout.startswith(ids["tr-c"])


def test_ambiguous_and_unknown_names_are_one_line(swept: tuple[Project, dict[str, str]]) -> None:
    project, ids = swept
    _one_line_error(invoke(project, "show", "alpha"), "experiment name 'alpha' is ambiguous",
                    ids["tr-a"], ids["tr-c"])  # fmt: skip
    _one_line_error(invoke(project, "show", "bet"), "unknown execution 'bet'", "beta")
    _one_line_error(invoke(project, "show", "ev-low"), "holds no tracked run")
    with Ledger(project) as ledger, pytest.raises(UnknownExecutionError, match="ambiguous"):
        ledger.find_execution("alpha")


def test_compare_two_names(swept: tuple[Project, dict[str, str]]) -> None:
    project, ids = swept
    result = invoke(project, "compare", "beta", "tr-a", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [s["label"] for s in data["sides"]] == [ids["tr-b"], ids["tr-a"]]
    assert data["config_differences"]["lr"] == {ids["tr-b"]: 0.5, ids["tr-a"]: 0.1}


def test_from_experiment_by_name(swept: tuple[Project, dict[str, str]]) -> None:
    project, _ = swept
    assert ExperimentConfig.from_experiment("beta", project.root).to_dict() == {"lr": 0.5}
    assert ExperimentConfig.from_experiment("tr-a", project.root).to_dict() == {"lr": 0.1}


def test_diff_takes_a_run_name(swept: tuple[Project, dict[str, str]]) -> None:
    project, _ = swept
    result = invoke(project, "diff", "HEAD", "beta", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["b"]["commit"] == _commit(project.root, "tr-b")


def test_leaderboard_all_experiments(swept: tuple[Project, dict[str, str]]) -> None:
    project, _ = swept
    result = invoke(project, "leaderboard", "--all-experiments", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r.split()[0] for r in data["revs"]] == ["ev-low", "tr-c", "tr-b", "tr-a"]
    labels = [e["name"] for e in data["entries"]]
    assert len(labels) == 4 and labels[0].startswith("noisy@ev-low"), labels
    assert {label.split("@")[1].split()[0] for label in labels} == {"ev-low", *EXPERIMENTS}
    table = invoke(project, "leaderboard", "--all-experiments", "-r", "beta")
    assert table.exit_code == 0 and "noisy@tr-b" in table.stdout
    empty = make_project(project.root.parent / "empty", TINY)
    _one_line_error(invoke(empty, "leaderboard", "--all-experiments"), "no DVC experiments")


def test_reproduce_a_dvc_experiment_by_name(swept: tuple[Project, dict[str, str]]) -> None:
    project, _ = swept
    result = invoke(project, "reproduce", "tr-b", "--stages", "train", "--json", "-q")
    assert result.exit_code == 0, result.output
    (stage,) = json.loads(result.stdout)["stages"]
    assert stage["cell"] == "train" and stage["verdict"] == "match", stage
    assert stage["metric"]  # the Tracker summary dvc.yaml declares (top-level metrics:)


def test_list_prints_the_runs_that_live_only_in_experiments(
    swept: tuple[Project, dict[str, str]],
) -> None:
    project, ids = swept
    out = invoke(project, "list")
    assert out.exit_code == 0, out.output
    experiments = out.stdout[out.stdout.index("DVC experiments") :]
    for exp, run in ids.items():
        (row,) = [line for line in experiments.splitlines() if line.lstrip("│ ").startswith(exp)]
        assert run in row, (exp, row)
    data = json.loads(invoke(project, "list", "--json").stdout)
    by_name = {d["name"]: d for d in data if d["kind"] == "dvc-experiment"}
    assert {exp: by_name[exp]["executions"] for exp in ids} == {e: [r] for e, r in ids.items()}
