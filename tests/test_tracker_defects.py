"""The Tracker's smaller defects (issue 13, item 8), on real projects.

sys.exit inside ``with``, mirrors that fail to build, decreasing steps, NaN/inf in JSON
and series, and dotted experiment and benchmark names.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from conftest import dvc, invoke
from evalledger.errors import EvalLedgerError
from evalledger.manifest import ExecutionManifest, read_manifest
from evalledger.project import Project, experiment_paths
from evalledger.track.series import read_series, read_series_dir
from evalledger.track.tracker import Tracker


def _manifest(project: Project, exp_id: str) -> ExecutionManifest:
    return read_manifest(project.runs_dir / exp_id / "manifest.yaml")


def _strict_json(path: Path) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"{path.name} holds the non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


# -- 1. sys.exit inside `with` ------------------------------------------------------------


def test_sys_exit_0_in_a_script_completes_the_experiment(project: Project) -> None:
    script = project.root / "train.py"
    script.write_text(
        textwrap.dedent("""\
        import sys
        from evalledger import Tracker

        with Tracker().experiment(name="exits") as run:
            run.log_metrics({"loss": 0.5}, step=0)
            print(run.experiment_id)
            sys.exit(0)
        """)
    )
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=project.root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    manifest = _manifest(project, proc.stdout.strip())
    assert manifest.status.value == "completed" and manifest.error is None
    assert manifest.last_metrics["loss"] == 0.5


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        (SystemExit(0), "completed", None),
        (SystemExit(None), "completed", None),
        (SystemExit(3), "failed", "SystemExit: exit code 3"),
        (SystemExit("bad data"), "failed", "SystemExit: bad data"),
        (KeyboardInterrupt(), "failed", "KeyboardInterrupt: interrupted"),
    ],
    ids=["exit0", "exit-none", "exit3", "exit-message", "ctrl-c"],
)
def test_how_a_with_block_ends_is_its_status(
    project: Project, raised: BaseException, status: str, error: str | None
) -> None:
    tracker = Tracker(project)
    with pytest.raises(type(raised)), tracker.experiment(name="ends") as run:
        exp_id = str(run.experiment_id)
        raise raised
    manifest = _manifest(project, exp_id)
    assert (manifest.status.value, manifest.error) == (status, error)

    # The Tracker's own `with` (around start_experiment) reads the exit the same way.
    with pytest.raises(type(raised)), Tracker(project) as other:
        exp_id = other.start_experiment(name="ends")
        raise raised
    manifest = _manifest(project, exp_id)
    assert (manifest.status.value, manifest.error) == (status, error)


# -- 2. a mirror that fails to build --------------------------------------------------------


class ExplodingMirror:
    def __init__(self) -> None:
        raise RuntimeError("cannot reach the tracking server\nat all")


def _one_line_notices(err: str, word: str) -> list[str]:
    return [line for line in err.splitlines() if word in line]


def test_an_mlflow_mirror_with_a_file_uri_is_one_warning(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    tracker = Tracker(project, mirrors=["mlflow"])
    with tracker.experiment(name="no-mirror") as run:
        run.log_metrics({"loss": 1.0}, step=0)
        exp_id = str(run.experiment_id)
    err = capsys.readouterr().err
    lines = _one_line_notices(err, "mirror")
    assert len(lines) == 1, err
    assert lines[0].startswith("evalledger: mirror mlflow is disabled")
    assert "MlflowException" in lines[0] and len(lines[0]) < 400
    assert _manifest(project, exp_id).status.value == "completed"


def test_any_exception_of_a_mirror_constructor_is_one_warning(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import evalledger.mirrors as mirrors

    found = mirrors._group()
    boom = EntryPoint("boom", f"{__name__}:ExplodingMirror", mirrors.MIRRORS_GROUP)
    monkeypatch.setattr(mirrors, "_group", lambda: {**found, "boom": boom})
    monkeypatch.setitem(sys.modules, "wandb", None)  # the wandb extra is missing
    tracker = Tracker(project, mirrors=["boom", "wandb"])
    assert tracker._mirrors.active == []
    with tracker.experiment(name="plain") as run:
        run.log_metrics({"loss": 1.0}, step=0)
        exp_id = str(run.experiment_id)
    err = capsys.readouterr().err
    (boom_line,) = _one_line_notices(err, "mirror boom")
    assert "RuntimeError: cannot reach the tracking server at all" in boom_line
    (wandb_line,) = _one_line_notices(err, "mirror wandb")
    assert "pip install 'evalledger[wandb]'" in wandb_line
    assert _manifest(project, exp_id).status.value == "completed"
    # A typo is still refused before any training.
    with pytest.raises(EvalLedgerError, match="unknown mirror 'bom'"):
        Tracker(project, mirrors=["bom"])


# -- 3. steps do not decrease ------------------------------------------------------------


def test_a_step_before_the_last_one_is_refused(project: Project) -> None:
    tracker = Tracker(project)
    with tracker.experiment(name="steps") as run:
        run.log_metrics({"loss": 1.0}, step=7)
        run.log_metrics({"acc": 0.5}, step=7)  # several metrics at one step
        with pytest.raises(EvalLedgerError) as err:
            run.log_metrics({"loss": 2.0}, step=5)
        line = err.value.one_line()
        assert "\n" not in line
        assert "step 5 is before the last step 7" in line and "must not decrease" in line
        run.flush()
        with pytest.raises(EvalLedgerError, match="step 6 is before the last step 7"):
            run.log_metrics({"loss": 2.0}, step=6)  # also after a flush
        run.log_metrics({"loss": 0.5})  # the next step: 8
        exp_id = str(run.experiment_id)
    series = read_series_dir(experiment_paths(project, _manifest(project, exp_id)).series_dir)
    assert series == {"loss": [(7, 1.0), (8, 0.5)], "acc": [(7, 0.5)]}
    assert _manifest(project, exp_id).status.value == "completed"


# -- 4. NaN and inf ---------------------------------------------------------------------


def test_nan_and_inf_are_null_in_json_and_empty_in_series(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker = Tracker(project)
    with tracker.experiment(name="diverged") as run:
        run.log_metrics({"train/loss": 1.0, "grad_norm": 2.0}, step=0)
        run.log_metrics({"train/loss": math.nan, "grad_norm": math.inf}, step=1)
        run.log_metrics({"train/loss": 0.5, "grad_norm": -math.inf}, step=2)
        run.log_metrics({"train/loss": math.nan}, step=3)
        run.log_evaluation("arith", {"accuracy": 0.5, "perplexity": math.inf})
        exp_id = str(run.experiment_id)
    summary = _strict_json(experiment_paths(project, _manifest(project, exp_id)).summary_path)
    assert summary == {
        "train": {"loss": None}, "grad_norm": None, "step": 3, "nonfinite": 4,
    }  # fmt: skip
    cell = _strict_json(project.metrics_dir / "diverged" / "arith.json")
    assert cell["accuracy"] == 0.5 and cell["perplexity"] is None
    err = capsys.readouterr().err
    assert err.count("non-finite") == 1 and "is nan at step 1" in err  # the series, once
    assert err.count("written as null") == 2  # ... and the evaluation

    series_dir = project.metrics_dir / "_series" / "diverged"
    text = (series_dir / "train" / "loss.tsv").read_text()
    assert text == "step\tloss\n0\t1.0\n1\t\n2\t0.5\n3\t\n"
    assert "inf" not in (series_dir / "grad_norm.tsv").read_text()
    loss = read_series(series_dir / "train" / "loss.tsv")
    assert [s for s, _ in loss] == [0, 1, 2, 3] and math.isnan(loss[1][1])

    plots = json.loads(dvc(project.root, "plots", "show", "--json").stdout)
    values = [
        row
        for name, charts in plots["data"].items()
        if "/diverged/" in name
        for chart in charts
        for row in chart["content"]["data"]["values"]
    ]
    assert values, plots
    tokens = {str(v).lower() for row in values for v in row.values()}
    assert not tokens & {"nan", "inf", "-inf", "infinity"}
    metrics = dvc(project.root, "metrics", "show", "--json")
    assert "diverged" in metrics.stdout or exp_id in metrics.stdout


# -- 5. dotted names ---------------------------------------------------------------------


def test_dots_are_allowed_where_dvc_allows_them(project: Project) -> None:
    tracker = Tracker(project)
    with tracker.experiment(name="llama-3.1-ft") as run:
        run.log_metrics({"loss": 0.5}, step=0)
        run.log_evaluation("gsm8k.v2", {"accuracy": 0.61})
        exp_id = str(run.experiment_id)
    manifest = _manifest(project, exp_id)
    assert manifest.name == "llama-3.1-ft"
    assert set(manifest.cells) == {"llama-3.1-ft/gsm8k.v2"}
    assert (project.metrics_dir / "llama-3.1-ft" / "gsm8k.v2.json").is_file()
    board = json.loads(invoke(project, "leaderboard", "--format", "json").output)
    assert "llama-3.1-ft" in json.dumps(board) and "gsm8k.v2" in json.dumps(board)


@pytest.mark.parametrize("name", [".hidden", "a..b", "a.", "-a", "a/b", "..", ".", "a.b/../c"])
def test_unsafe_dotted_names_are_refused(project: Project, name: str) -> None:
    tracker = Tracker(project)
    with pytest.raises(EvalLedgerError) as err:
        tracker.start_experiment(name=name)
    assert "no '..', not ending in '.'" in err.value.one_line()
    with tracker.experiment(name="ok") as run, pytest.raises(EvalLedgerError):
        run.log_evaluation(name, {"accuracy": 1.0})
    written = [p.relative_to(project.root).as_posix() for p in project.root.rglob("*.json")]
    assert all(p.startswith("metrics/_experiments/") for p in written), written
