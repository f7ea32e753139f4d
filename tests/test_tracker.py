"""The Tracker: exact round trips, DVC plots, crash safety, failures, evaluations, secrets."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import dvc, git, invoke
from evalledger.errors import EvalLedgerError
from evalledger.manifest import ArtifactRecord, ExecutionManifest, read_manifest
from evalledger.project import Project, experiment_paths
from evalledger.track.series import read_series, read_series_dir
from evalledger.track.tracker import EXITED_WITHOUT_FINISH, ExperimentConfig, Tracker

METRICS = ("train/loss", "train/reward", "train/lr", "grad_norm", "eval/accuracy")


def _manifest(project: Project, exp_id: str) -> ExecutionManifest:
    return read_manifest(project.runs_dir / exp_id / "manifest.yaml")


def _series_dir(project: Project, exp_id: str) -> Path:
    return experiment_paths(project, _manifest(project, exp_id)).series_dir


def _summary(project: Project, exp_id: str) -> Path:
    return experiment_paths(project, _manifest(project, exp_id)).summary_path


def test_20000_steps_x_5_metrics_load_back_exactly(project: Project) -> None:
    rng = random.Random(7)
    expected: dict[str, list[tuple[int, float]]] = {m: [] for m in METRICS}
    tracker = Tracker(project)
    exp_id = tracker.start_experiment(ExperimentConfig(lr=3e-4), name="grpo")
    for step in range(20_000):
        values = {m: rng.uniform(-1e3, 1e3) * 10 ** rng.randint(-12, 12) for m in METRICS}
        tracker.log_metrics(values, step=step)
        for m, v in values.items():
            expected[m].append((step, v))
    tracker.finish_experiment("completed")

    assert read_series_dir(_series_dir(project, exp_id)) == expected  # bit-identical floats
    assert (
        (_series_dir(project, exp_id) / "train" / "loss.tsv")
        .read_text()
        .startswith("step\tloss\n0\t")
    )
    manifest = _manifest(project, exp_id)
    assert manifest.kind == "experiment" and manifest.name == "grpo"
    assert manifest.status.value == "completed"
    assert manifest.last_metrics == {m: expected[m][-1][1] for m in METRICS} | {"step": 19_999}
    summary = json.loads(_summary(project, exp_id).read_text())
    assert summary["train"]["loss"] == expected["train/loss"][-1][1]
    assert summary["step"] == 19_999


def test_steps_default_to_last_plus_one_and_flush_waits_for_nothing(project: Project) -> None:
    tracker = Tracker(project, flush_interval=3600)
    exp_id = tracker.start_experiment()
    tracker.log_metrics({"loss": 1.0})
    tracker.log_metrics({"loss": 0.5})
    tracker.log_metrics({"loss": 0.25}, step=10)
    tracker.log_metrics({"loss": 0.125})
    assert not (_series_dir(project, exp_id) / "loss.tsv").exists()  # buffered, no I/O
    tracker.flush()
    rows = read_series(_series_dir(project, exp_id) / "loss.tsv")
    assert rows == [(0, 1.0), (1, 0.5), (10, 0.25), (11, 0.125)]
    assert _manifest(project, exp_id).last_metrics == {"loss": 0.125, "step": 11}
    tracker.finish_experiment()


def test_a_fast_loop_is_written_by_size_so_the_buffer_stays_bounded(project: Project) -> None:
    from evalledger.track.tracker import MAX_BUFFERED_STEPS

    tracker = Tracker(project, flush_interval=3600)  # the timer never fires
    exp_id = tracker.start_experiment()
    run = tracker._run
    assert run is not None
    longest = 0
    for step in range(2 * MAX_BUFFERED_STEPS + 7):
        tracker.log_metrics({"loss": 1.0 / (step + 1)})
        longest = max(longest, len(run.buffer))
    assert longest == MAX_BUFFERED_STEPS - 1  # written the moment it reached the bound
    rows = read_series(_series_dir(project, exp_id) / "loss.tsv")
    assert len(rows) == 2 * MAX_BUFFERED_STEPS and rows[-1][0] == 2 * MAX_BUFFERED_STEPS - 1
    tracker.finish_experiment()
    assert len(read_series(_series_dir(project, exp_id) / "loss.tsv")) == 2 * MAX_BUFFERED_STEPS + 7


def test_background_flush_writes_while_training(project: Project) -> None:
    tracker = Tracker(project, flush_interval=0.05)
    exp_id = tracker.start_experiment()
    tracker.log_metrics({"loss": 2.0}, step=0)
    path = _series_dir(project, exp_id) / "loss.tsv"
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert read_series(path) == [(0, 2.0)]
    tracker.finish_experiment()


def test_dvc_plots_and_metrics_show_the_series(project: Project) -> None:
    before = yaml.safe_load(project.dvc_yaml.read_text())
    tracker = Tracker(project)
    exp_id = tracker.start_experiment({"lr": 0.1})
    for step in range(50):
        tracker.log_metrics({"train/loss": 1 / (step + 1), "acc": step / 50}, step=step)
    tracker.finish_experiment()
    text = project.dvc_yaml.read_text()
    after = yaml.safe_load(text)
    assert after["stages"] == before["stages"]  # the eval stage is kept as written
    assert after["plots"] == [{"metrics/_series": {"x": "step"}}]
    assert after["metrics"] == ["metrics/_experiments"]
    assert after["params"] == ["metrics/_params"]
    Tracker(project).start_experiment(name="b")  # declared once: a second one changes nothing
    assert project.dvc_yaml.read_text() == text

    shown = json.loads(dvc(project.root, "plots", "show", "--json").stdout)["data"]
    assert _series_dir(project, exp_id) == project.metrics_dir / "_series" / "train"  # default
    for rel in ("metrics/_series/train/train/loss.tsv", "metrics/_series/train/acc.tsv"):
        assert rel in shown, sorted(shown)
        values = shown[rel][0]["content"]["data"]["values"]
        assert len(values) == 50 and float(values[-1]["step"]) == 49
    metrics = json.loads(dvc(project.root, "metrics", "show", "--json").stdout)
    data = metrics[""]["data"]["metrics/_experiments/train.json"]["data"]
    assert data["train"]["loss"] == 1 / 50 and data["step"] == 49


TRAIN_SCRIPT = """\
import sys, time
from evalledger.track.tracker import Tracker

tracker = Tracker(sys.argv[1], flush_interval=0.1)
exp_id = tracker.start_experiment({"lr": 0.1}, name="killed")
print(exp_id, flush=True)
step = 0
while True:
    tracker.log_metrics({"train/loss": 1.0 / (step + 1), "acc": step * 1e-3}, step=step)
    step += 1
    if step % 100 == 0:
        time.sleep(0.001)
"""


def _wait_rows(path: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") > n:
            return
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} rows")


def test_sigkill_leaves_readable_files(project: Project, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(project.root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        exp_id = proc.stdout.readline().strip()
        loss = _series_dir(project, exp_id) / "train" / "loss.tsv"
        _wait_rows(loss, 1000, proc)  # a few flushes in
        time.sleep(0.25)
        flushed = loss.read_text().count("\n") - 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    series = read_series_dir(_series_dir(project, exp_id))
    assert set(series) == {"train/loss", "acc"}
    assert len(series["train/loss"]) >= flushed
    for rows in series.values():
        assert [s for s, _ in rows] == list(range(len(rows)))  # whole rows, in order
        assert all(v == 1.0 / (s + 1) for s, v in series["train/loss"])
    manifest = _manifest(project, exp_id)
    assert manifest.status.value == "in_progress"
    assert manifest.last_metrics["step"] <= len(series["train/loss"]) - 1
    json.loads(_summary(project, exp_id).read_text())


def test_exit_without_finish_marks_failed(project: Project, tmp_path: Path) -> None:
    script = tmp_path / "forgot.py"
    script.write_text(
        textwrap.dedent("""\
        import sys
        from evalledger.track.tracker import Tracker
        tracker = Tracker(sys.argv[1], flush_interval=60)
        print(tracker.start_experiment())
        tracker.log_metrics({"loss": 0.5}, step=3)
        """)
    )
    out = subprocess.run([sys.executable, str(script), str(project.root)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    manifest = _manifest(project, out.strip())
    assert manifest.status.value == "failed"
    assert manifest.error == EXITED_WITHOUT_FINISH
    assert manifest.last_metrics == {"loss": 0.5, "step": 3}


def test_context_manager_marks_failed_with_the_error(project: Project) -> None:
    tracker = Tracker(project)
    with pytest.raises(RuntimeError, match="CUDA out of memory"), tracker.experiment() as run:
        exp_id = run.experiment_id
        run.log_metrics({"loss": 1.5}, step=0)
        raise RuntimeError("CUDA out of memory")
    assert exp_id is not None and tracker.experiment_id is None
    manifest = _manifest(project, exp_id)
    assert manifest.status.value == "failed"
    assert manifest.error == "RuntimeError: CUDA out of memory"
    assert read_series(_series_dir(project, exp_id) / "loss.tsv") == [(0, 1.5)]

    with tracker.experiment({"a": 1}) as run:
        run.log_metrics({"loss": 1.0}, step=0)
    ok_id = sorted(p.name for p in project.runs_dir.iterdir() if p.name.startswith("exp_"))
    assert any(_manifest(project, i).status.value == "completed" for i in ok_id)


def test_evaluations_become_ledger_cells(project: Project) -> None:
    tracker = Tracker(project)
    with tracker.experiment(ExperimentConfig(dataset={"name": "arith"}), name="grpo-7b") as run:
        run.log_metrics({"loss": 0.3}, step=100)
        per_item = [{"id": f"arith-{i}", "correct": i % 4 != 0} for i in range(40)]
        metrics = run.log_evaluation("arith", {"metrics": {"accuracy": 0.1}, "scores": per_item})
        run.log_evaluation("arith_hard", {"accuracy": 0.25, "n": 8})
        exp_id = run.experiment_id
    assert metrics["accuracy"] == 0.75  # computed from the items, which tests pair on
    assert (
        (project.metrics_dir / "grpo-7b" / "arith.scores.csv")
        .read_text()
        .startswith("id,category,correct,score,partial,formatted,")
    )
    manifest = _manifest(project, str(exp_id))
    assert set(manifest.cells) == {"grpo-7b/arith", "grpo-7b/arith_hard"}
    cell = manifest.cells["grpo-7b/arith"]
    assert cell.axes == {"model": "grpo-7b", "benchmark": "arith"}
    assert cell.status.value == "completed" and cell.examples_completed == 40
    # Declared in dvc.yaml, so DVC's own metrics commands see the evaluations too.
    declared = yaml.safe_load(project.dvc_yaml.read_text())["metrics"]
    assert declared == [
        "metrics/_experiments", "metrics/grpo-7b/arith.json", "metrics/grpo-7b/arith_hard.json",
    ]  # fmt: skip
    shown = json.loads(dvc(project.root, "metrics", "show", "--json").stdout)[""]["data"]
    assert shown["metrics/grpo-7b/arith.json"]["data"]["accuracy"] == 0.75
    assert shown["metrics/grpo-7b/arith_hard.json"]["data"] == {"accuracy": 0.25, "n": 8}

    invoke(project, "run")
    board = json.loads(invoke(project, "leaderboard", "--format", "json").output)
    names = {e["name"]: e for e in board["entries"]}
    assert names["grpo-7b"]["benchmarks"] == {"arith": 0.75, "arith_hard": 0.25}
    assert {"solver", "noisy", "adder"} <= set(names)
    listed = json.loads(invoke(project, "list", "--json").output)
    mine = [row for row in listed if row["execution_id"] == exp_id]
    assert len(mine) == 1 and mine[0]["status"] == "completed"
    assert mine[0]["kind"] == "experiment"
    result = invoke(project, "significance", "grpo-7b", "noisy", "--benchmark", "arith")
    assert result.exit_code == 0, result.output


def test_secrets_never_reach_a_file(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_secret = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"
    cfg_secret = "secret123-do-not-write-me"
    monkeypatch.setenv("OPENAI_API_KEY", env_secret)
    monkeypatch.setenv("MY_SERVICE_TOKEN", cfg_secret)
    monkeypatch.setattr(sys, "argv", ["train.py", "--key", env_secret])
    checkpoint = tmp_path / "ckpt.bin"
    checkpoint.write_bytes(b"weights")
    tracker = Tracker(project)
    config = ExperimentConfig(wandb={"api_key": cfg_secret, "project": "p"}, token=cfg_secret)
    with tracker.experiment(config, notes="secret test") as run:
        run.log_params({"openai": {"api_key": env_secret}, "hf": env_secret})
        run.log_metrics({"loss": 1.0}, step=0)
        run.log_checkpoint(checkpoint, step=0)
        run.log_evaluation("arith", {"accuracy": 0.5, "judge_key": env_secret})
        exp_id = run.experiment_id
    written = [project.dvc_yaml, *project.runs_dir.rglob("*"), *project.metrics_dir.rglob("*")]
    files = [p for p in written if p.is_file()]
    assert any(str(exp_id) in str(p) for p in files)
    for path in files:
        text = path.read_text(errors="replace")
        assert env_secret not in text, path
        assert cfg_secret not in text, path
    manifest = _manifest(project, str(exp_id))
    assert manifest.config["wandb"] == {"api_key": "<redacted>", "project": "p"}


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"train/": 1.0}, "metric name 'train/' is not allowed"),
        ({"_hidden": 1.0}, "metric name '_hidden' is not allowed"),
        ({"step": 1.0}, "metric name 'step' is not allowed"),
        ({"loss": "low"}, "metric 'loss' has a non-numeric value 'low' (str)"),
        ({"loss": None}, "metric 'loss' has a non-numeric value None (NoneType)"),
        ({"loss": True}, "metric 'loss' has a non-numeric value True (bool)"),
        ({"train": 1.0, "train/loss": 2.0}, "clashes with"),
    ],
)
def test_bad_metrics_raise_one_line_errors(
    project: Project, metrics: dict[str, Any], message: str
) -> None:
    tracker = Tracker(project)
    tracker.start_experiment()
    tracker.log_metrics({"ok": 1.0}, step=0)
    with pytest.raises(EvalLedgerError) as info:
        tracker.log_metrics(metrics, step=1)
    assert message in info.value.one_line() and "\n" not in info.value.one_line()
    with pytest.raises(EvalLedgerError, match="must be an integer"):
        tracker.log_metrics({"ok": 1.0}, step=1.5)  # type: ignore[arg-type]
    tracker.finish_experiment()


def test_bad_names_and_states(project: Project) -> None:
    tracker = Tracker(project)
    with pytest.raises(EvalLedgerError, match="no experiment is running"):
        tracker.log_metrics({"loss": 1.0})
    for bad in ("_private", "a/b", ""):
        with pytest.raises(EvalLedgerError, match="experiment name"):
            tracker.start_experiment(name=bad)
    tracker.start_experiment(name="ok")
    with pytest.raises(EvalLedgerError, match="still running"):
        tracker.start_experiment()
    with pytest.raises(EvalLedgerError, match="benchmark name"):
        tracker.log_evaluation("_x", {"accuracy": 1.0})
    with pytest.raises(EvalLedgerError, match="unknown final status"):
        tracker.finish_experiment("done")
    tracker.finish_experiment("partial")


def test_numpy_like_values_are_converted(project: Project) -> None:
    class Scalar:
        def __init__(self, v: float) -> None:
            self.v = v

        def __float__(self) -> float:
            return self.v

    tracker = Tracker(project)
    exp_id = tracker.start_experiment()
    tracker.log_metrics({"loss": Scalar(0.1), "n": 3}, step=2)  # type: ignore[dict-item]
    tracker.finish_experiment()
    assert read_series_dir(_series_dir(project, exp_id)) == {
        "loss": [(2, 0.1)],
        "n": [(2, 3.0)],
    }


def test_checkpoints_and_artifacts_by_hash(project: Project) -> None:
    ckpt = project.root / "checkpoints" / "step-10"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "model.bin").write_bytes(b"abc")
    (ckpt / "sub" / "opt.bin").write_bytes(b"defg")
    single = project.root / "notes.txt"
    single.write_text("hello")
    tracker = Tracker(project, flush_interval=3600)
    exp_id = tracker.start_experiment()
    tracker.log_metrics({"loss": 1.0}, step=10)
    rec = tracker.log_checkpoint(ckpt, step=10)
    # a checkpoint flushes: the series and the manifest are on disk at once
    assert read_series(_series_dir(project, exp_id) / "loss.tsv") == [(10, 1.0)]
    on_disk = _manifest(project, exp_id)
    assert on_disk.checkpoints == [rec]
    assert rec.path == "checkpoints/step-10" and rec.size == 7 and rec.step == 10
    art = tracker.log_artifact(single, name="notes")
    tracker.finish_experiment()
    import hashlib

    assert art.sha256 == hashlib.sha256(b"hello").hexdigest() and art.path == "notes.txt"
    assert _manifest(project, exp_id).artifacts == [art]
    (ckpt / "model.bin").write_bytes(b"abd")
    tracker.start_experiment()
    assert tracker.log_checkpoint(ckpt).sha256 != rec.sha256
    with pytest.raises(EvalLedgerError, match="does not exist"):
        tracker.log_checkpoint(project.root / "missing.pt")
    tracker.finish_experiment()


class RecordingMirror:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def start(self, manifest: ExecutionManifest) -> None:
        self.calls.append(("start", manifest.execution_id))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.calls.append(("log_metrics", (step, metrics)))

    def log_params(self, params: dict[str, Any]) -> None:
        self.calls.append(("log_params", params))

    def log_artifact(self, record: ArtifactRecord, kind: str) -> None:
        self.calls.append(("log_artifact", kind))

    def log_evaluation(self, benchmark: str, metrics: dict[str, Any]) -> None:
        self.calls.append(("log_evaluation", benchmark))

    def finish(self, status: str) -> None:
        self.calls.append(("finish", status))


class BrokenMirror(RecordingMirror):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        raise ConnectionError("wandb is down")


def test_mirrors_get_everything_and_a_broken_one_is_dropped(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    good, broken = RecordingMirror(), BrokenMirror()
    tracker = Tracker(project, mirrors=[broken, good])
    with tracker.experiment(name="m") as run:
        run.log_params({"lr": 0.1, "api_key": "hunter2-hunter2"})
        run.log_metrics({"loss": 1.0}, step=0)
        run.log_metrics({"loss": 0.5}, step=1)
        run.flush()
        run.log_metrics({"loss": 0.25}, step=2)
        run.log_checkpoint(project.params_path, step=2)
        run.log_evaluation("arith", {"accuracy": 1.0})
        exp_id = run.experiment_id
    assert good.calls == [
        ("start", exp_id),
        ("log_params", {"lr": 0.1, "api_key": "<redacted>"}),
        ("log_metrics", (0, {"loss": 1.0})),
        ("log_metrics", (1, {"loss": 0.5})),
        ("log_metrics", (2, {"loss": 0.25})),
        ("log_artifact", "checkpoint"),
        ("log_evaluation", "arith"),
        ("finish", "completed"),
    ]
    err = capsys.readouterr().err
    assert err.count("mirror BrokenMirror failed in log_metrics") == 1
    assert "ConnectionError: wandb is down" in err
    assert ("finish", "completed") not in broken.calls
    assert _manifest(project, str(exp_id)).status.value == "completed"


def test_public_exports() -> None:
    import evalledger

    assert evalledger.Tracker is Tracker
    assert evalledger.ExperimentConfig is ExperimentConfig


def test_an_unknown_mirror_name_is_a_config_error_before_training(project: Project) -> None:
    from evalledger.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown mirror 'nope'"):
        Tracker(project, mirrors=["nope"])


def test_show_prints_an_experiment_with_its_provenance(project: Project) -> None:
    import importlib.metadata
    import platform
    import socket

    (project.root / "ckpt.bin").write_bytes(b"\0" * 2048)
    tracker = Tracker(project)
    with tracker.experiment({"lr": 0.1}, name="lr_0_1", notes="a short run") as run:
        run.log_params({"lr": 0.1, "rank": 8})
        run.log_metrics({"train/loss": 0.5}, step=0)
        run.log_metrics({"train/loss": 0.25}, step=1)
        run.log_checkpoint(project.root / "ckpt.bin", step=1)
        exp_id = run.experiment_id
    out = invoke(project, "show", exp_id)
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line for line in out.output.splitlines() if line.strip()}
    assert lines["name"].split()[1] == "lr_0_1"
    assert lines["notes"] == "notes     a short run"
    assert lines["params"] == "params    lr=0.1, rank=8"
    assert "train/loss=0.25" in lines["last"] and "step=1" in lines["last"]
    assert lines["checkpoint"].startswith("checkpoint ckpt.bin step 1  sha256 ")
    assert lines["checkpoint"].endswith("2,048 B")
    assert f"@{socket.gethostname()}," in lines["host"]
    assert lines["python"].startswith(f"python    {platform.python_version()} (")
    version = importlib.metadata.version("evalledger")
    listed = invoke(project, "show", exp_id, "--packages").output
    assert f"  evalledger=={version}" in listed.splitlines()


def test_a_config_comes_back_from_an_earlier_experiment(project: Project) -> None:
    class GRPOConfig(ExperimentConfig):
        learning_rate: float = 5e-5
        lora_rank: int = 8

    tracker = Tracker(project)
    cfg = GRPOConfig(learning_rate=1e-4, dataset={"name": "gsm8k", "train_size": 8000},
                     wandb={"api_key": "secret-value-123"})  # fmt: skip
    with tracker.experiment(cfg, name="grpo") as run:
        run.log_metrics({"loss": 1.0}, step=0)
        exp_id = run.experiment_id
    assert exp_id is not None
    again = GRPOConfig.from_experiment(exp_id[-8:], project=project)  # a unique part
    assert isinstance(again, GRPOConfig)
    assert (again.learning_rate, again.lora_rank) == (1e-4, 8)
    assert again.to_dict()["dataset"] == {"name": "gsm8k", "train_size": 8000}
    assert again.to_dict()["wandb"] == {"api_key": "<redacted>"}  # secrets are not kept
    result = invoke(project, "run", "--models", "solver", "--benchmarks", "arith")
    assert result.exit_code == 0
    matrix = next(i for i in os.listdir(project.runs_dir) if i.startswith("exec_"))
    with pytest.raises(EvalLedgerError, match="is an evaluation matrix"):
        ExperimentConfig.from_experiment(matrix, project=project)
    with pytest.raises(EvalLedgerError, match="unknown execution"):
        ExperimentConfig.from_experiment("exp_nope", project=project)


def test_delete_removes_an_experiments_files_and_its_dvc_yaml_entries(project: Project) -> None:
    tracker = Tracker(project)
    with tracker.experiment({"lr": 0.1}, name="short") as run:
        run.log_metrics({"loss": 0.5}, step=0)
        run.log_evaluation("arith", {"accuracy": 0.5, "n": 2})
        exp_id = str(run.experiment_id)
    with tracker.experiment({"lr": 0.2}, name="kept") as run:
        run.log_evaluation("arith", {"accuracy": 0.7, "n": 2})
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "two experiments")

    out = invoke(project, "delete", exp_id, "--yes")
    assert out.exit_code == 0, out.output
    assert not (project.runs_dir / exp_id).exists()
    assert not (project.metrics_dir / "_series" / "short").exists()
    assert not (project.metrics_dir / "_experiments" / "short.json").exists()
    assert not (project.metrics_dir / "_params" / "short.yaml").exists()
    assert (project.metrics_dir / "_params" / "kept.yaml").exists()
    assert not (project.metrics_dir / "short").exists()
    # Emptied, but dvc.yaml declares it: kept, so `dvc metrics show` does not miss it.
    assert (project.metrics_dir / "_experiments").is_dir()
    assert "dvc.yaml" in out.output and "dvc.lock still records" not in out.output
    declared = yaml.safe_load(project.dvc_yaml.read_text())["metrics"]
    assert declared == ["metrics/_experiments", "metrics/kept/arith.json"]
    # DVC no longer looks for the deleted file (the unrun matrix cells still err).
    data = json.loads(dvc(project.root, "metrics", "show", "--json").stdout)[""]["data"]
    assert "metrics/short/arith.json" not in data
    assert data["metrics/kept/arith.json"]["data"] == {"accuracy": 0.7, "n": 2}
