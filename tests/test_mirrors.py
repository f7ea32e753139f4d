"""Mirrors: loading by name, and the W&B mirror driven through the Mirror protocol offline."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from evalledger.errors import ConfigError
from evalledger.manifest import (
    ArtifactRecord,
    ExecutionManifest,
    GitState,
    new_experiment_id,
    utcnow,
)
from evalledger.mirrors import Mirror, MissingBackendError, known_mirrors, load_mirror
from evalledger.project import Project
from evalledger.redact import REDACTED
from evalledger.track.series import read_series_dir

if TYPE_CHECKING:
    from collections.abc import Iterator


def test_unknown_mirror_lists_the_known_ones() -> None:
    assert "wandb" in known_mirrors()
    with pytest.raises(ConfigError) as err:
        load_mirror("nope")
    assert "unknown mirror 'nope'" in err.value.message
    assert "wandb" in err.value.message


def test_missing_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    with pytest.raises(MissingBackendError) as err:
        load_mirror("wandb", project="p")
    line = err.value.one_line()
    assert "\n" not in line
    assert "pip install 'evalledger[wandb]'" in line


# -- the W&B mirror, with a real offline wandb run ------------------------------------------


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    wandb = pytest.importorskip("wandb", reason="the wandb extra is not installed")
    root = tmp_path / "wandb-home"
    dirs = {"WANDB_DIR": "", "WANDB_CACHE_DIR": "cache", "WANDB_CONFIG_DIR": "config",
            "WANDB_DATA_DIR": "data", "WANDB_ARTIFACT_DIR": "artifacts"}  # fmt: skip
    for var, sub in dirs.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(root / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    wandb.teardown()  # wandb reads its settings (WANDB_DIR, ...) once per setup
    yield root
    wandb.teardown()


def _manifest(**fields: Any) -> ExecutionManifest:
    now = utcnow()
    return ExecutionManifest(
        execution_id=new_experiment_id(now), created_at=now, updated_at=now, kind="experiment",
        git=GitState(commit="a" * 40, branch="main", dirty=True, diff_hash="d" * 16),
        **fields,
    )  # fmt: skip


def _records(path: Path) -> list[Any]:
    """The protobuf records of a ``run-<id>.wandb`` file (LevelDB log format, W&B header)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer: zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0 and length == 0:
            pos += left - 7
            continue
        pending += data[pos : pos + length]
        pos += length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


class OfflineRun:
    """What an offline W&B run wrote: its run record, config, history, summary and exit."""

    def __init__(self, root: Path, run_id: str) -> None:
        import wandb

        wandb.teardown()  # wandb-core writes the log asynchronously: wait for all of it
        (folder,) = (root / "wandb").glob(f"offline-run-*-{run_id}")
        self.folder = folder
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.exit_code: int | None = None
        self.run: Any = None
        for rec in _records(folder / f"run-{run_id}.wandb"):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                self.run = rec.run
                self._config(rec.run.config.update)
            elif kind == "config":
                self._config(rec.config.update)
            elif kind == "history":
                self.history.append(
                    {self._key(i): json.loads(i.value_json) for i in rec.history.item}
                )
            elif kind == "summary":
                for item in rec.summary.update:
                    self.summary[self._key(item)] = json.loads(item.value_json)
            elif kind == "exit":
                self.exit_code = rec.exit.exit_code
        # Newer wandb versions also write the files; when they do, they must agree.
        files = folder / "files"
        if (files / "wandb-summary.json").exists():
            written = json.loads((files / "wandb-summary.json").read_text())
            for key in ("train/loss", "eval/arith/accuracy"):
                if key in self.summary:
                    assert written.get(key) == self.summary[key]

    @staticmethod
    def _key(item: Any) -> str:
        return item.key or "/".join(item.nested_key)

    def _config(self, updates: Any) -> None:
        for item in updates:
            self.config[self._key(item)] = json.loads(item.value_json)


def test_wandb_mirror_copies_an_experiment_offline(offline_wandb: Path) -> None:
    mirror = load_mirror("wandb", project="evalledger-tests")
    assert isinstance(mirror, Mirror)
    manifest = _manifest(
        name="lr-sweep-3", notes="higher learning rate",
        config={"model": {"base": "tiny"}, "api_key": "sk-live-abcdefghijklmnop0123"},
        params={"lr": 0.001},
    )  # fmt: skip
    mirror.start(manifest)
    for step, loss in enumerate([2.0, 1.5, 1.25]):
        mirror.log_metrics({"train/loss": loss, "train/reward": step / 2}, step=step)
    mirror.log_params({"lr": 0.0005, "batch_size": 32, "hf_token": "hf_abcdefghijklmnopqrstuv"})
    ckpt = ArtifactRecord(path="checkpoints/step-2", sha256="c" * 64, size=1234, step=2,
                          logged_at=utcnow())  # fmt: skip
    mirror.log_artifact(ckpt, "checkpoint")
    report = ArtifactRecord(path="out/report.html", sha256="e" * 64, size=99, name="report",
                            logged_at=utcnow())  # fmt: skip
    mirror.log_artifact(report, "artifact")
    mirror.log_evaluation(
        "arith", {"accuracy": 0.75, "n": 40, "ci": {"low": 0.6, "high": 0.85}, "model": "x",
                  "ok": True},
    )  # fmt: skip
    mirror.finish("completed")

    run = OfflineRun(offline_wandb, manifest.execution_id)
    assert run.run.run_id == manifest.execution_id
    assert run.run.display_name == "lr-sweep-3"
    assert run.run.project == "evalledger-tests"
    assert run.run.notes == "higher learning rate"
    assert list(run.run.tags) == ["evalledger"]
    assert run.config["model"] == {"base": "tiny"}
    assert run.config["api_key"] == REDACTED
    assert run.config["lr"] == 0.0005 and run.config["batch_size"] == 32
    assert run.config["hf_token"] == REDACTED
    assert run.config["evalledger"]["execution_id"] == manifest.execution_id
    assert run.config["evalledger"]["git_commit"] == "a" * 40
    assert run.config["evalledger"]["diff_hash"] == "d" * 16
    steps = [(h["_step"], h["train/loss"], h["train/reward"]) for h in run.history]
    assert steps == [(0, 2.0, 0.0), (1, 1.5, 0.5), (2, 1.25, 1.0)]
    assert run.summary["train/loss"] == 1.25
    assert run.summary["eval/arith/accuracy"] == 0.75
    assert run.summary["eval/arith/n"] == 40
    assert run.summary["eval/arith/ci/low"] == 0.6
    assert "eval/arith/model" not in run.summary and "eval/arith/ok" not in run.summary
    assert run.summary["checkpoint/checkpoints/step-2"]["sha256"] == "c" * 64
    assert run.summary["checkpoint/latest"]["step"] == 2
    assert run.summary["artifact/report"] == {
        "path": "out/report.html", "sha256": "e" * 64, "size": 99, "name": "report",
        "logged_at": report.logged_at.isoformat().replace("+00:00", "Z"),
    }  # fmt: skip
    assert run.summary["evalledger/status"] == "completed"
    assert run.exit_code == 0
    raw = b"".join(p.read_bytes() for p in run.folder.rglob("*") if p.is_file())
    assert b"sk-live-abcdefghijklmnop0123" not in raw
    assert b"hf_abcdefghijklmnopqrstuv" not in raw


def test_wandb_mirror_failed_experiment_and_two_runs_in_one_process(
    offline_wandb: Path,
) -> None:
    first, second = _manifest(name="a"), _manifest(name=None)
    m1 = load_mirror("wandb", project="p", mode="offline")
    m2 = load_mirror("wandb", project="p")
    m1.start(first)
    m2.start(second)  # two experiments at once (e.g. a sweep in threads) stay apart
    m1.log_metrics({"loss": 1.0}, step=0)
    m2.log_metrics({"loss": 9.0}, step=0)
    m1.finish("failed")
    m2.finish("completed")
    one = OfflineRun(offline_wandb, first.execution_id)
    two = OfflineRun(offline_wandb, second.execution_id)
    assert one.exit_code == 1 and one.summary["evalledger/status"] == "failed"
    assert [h["loss"] for h in one.history] == [1.0]
    assert two.exit_code == 0 and [h["loss"] for h in two.history] == [9.0]
    assert two.run.display_name == second.execution_id  # no name: the ID
    with pytest.raises(RuntimeError, match="start"):
        m1.log_metrics({"loss": 0.5}, step=1)


# -- the MLflow mirror, driven by a real Tracker into a local MLflow store -------------------


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A local MLflow file store (no server) and a client that reads it back."""
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    # MLflow 3 keeps its file store only behind this switch; a database needs the full
    # (heavy) mlflow package, and the mirror is the same code against either.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield MlflowClient(tracking_uri=uri)


def _mlflow_run(client: Any, exp_id: str) -> Any:
    (run,) = client.search_runs(
        [client.get_experiment_by_name("evalledger").experiment_id],
        filter_string=f"tags.`evalledger.execution_id` = '{exp_id}'",
    )
    return run


def test_mlflow_mirror_copies_a_tracked_experiment(
    project: Project, tmp_path: Path, mlflow_store: Any
) -> None:
    from evalledger.track.tracker import Tracker

    tracker = Tracker(project, mirrors=["mlflow"])
    config = {"model": {"base": "tiny", "layers": 2}, "api_key": "sk-live-abcdefghijklmnop0123"}
    exp_id = tracker.start_experiment(config, name="mlflow-run", notes="first try")
    for step in range(2_500):  # over 1,000 metrics per flush: several log_batch calls
        tracker.log_metrics({"train/loss": 1.0 / (step + 1), "lr": 1e-3 * 0.999**step}, step)
    tracker.log_params({"batch_size": 32, "hf_token": "hf_abcdefghijklmnopqrstuv"})
    tracker.log_params({"batch_size": 64})  # MLflow params are immutable: becomes a tag
    ckpt = tmp_path / "ckpt.bin"
    ckpt.write_bytes(b"weights")
    record = tracker.log_checkpoint(ckpt, step=2_499)
    # A checkpoint flushes the Tracker, and the Tracker's flush sends the mirror's batch.
    live = _mlflow_run(mlflow_store, exp_id)
    assert live.info.status == "RUNNING"
    assert len(mlflow_store.get_metric_history(live.info.run_id, "train/loss")) == 2_500
    tracker.log_evaluation("arith", {"accuracy": 0.75, "n": 40, "model": "x"})
    tracker.finish_experiment("completed")

    client = mlflow_store
    run = _mlflow_run(client, exp_id)
    assert run.info.run_name == "mlflow-run" and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.note.content"] == "first try"
    assert run.data.tags["evalledger.status"] == "completed"
    assert run.data.params["model.base"] == "tiny" and run.data.params["model.layers"] == "2"
    assert run.data.params["api_key"] == REDACTED and run.data.params["hf_token"] == REDACTED
    assert run.data.params["batch_size"] == "32" and run.data.tags["params.batch_size"] == "64"
    # Every step arrives, with the ledger's exact values.
    series = read_series_dir(project.metrics_dir / "_series" / "mlflow-run")  # its name
    for key in ("train/loss", "lr"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted((m.step, m.value) for m in history) == series[key]
    assert run.data.metrics["eval/arith/accuracy"] == 0.75
    assert run.data.metrics["eval/arith/n"] == 40 and "eval/arith/model" not in run.data.metrics
    latest = json.loads(run.data.tags["checkpoint/latest"])
    assert (latest["sha256"], latest["step"]) == (record.sha256, 2_499)
    raw = b"".join(p.read_bytes() for p in (tmp_path / "mlruns").rglob("*") if p.is_file())
    assert b"sk-live-abcdefghijklmnop0123" not in raw
    assert b"hf_abcdefghijklmnopqrstuv" not in raw


def test_mlflow_mirror_marks_a_raising_block_failed(project: Project, mlflow_store: Any) -> None:
    from evalledger.track.tracker import Tracker

    tracker = Tracker(project, mirrors=["mlflow"])
    with pytest.raises(ZeroDivisionError), tracker.experiment({"lr": 0.1}, name="boom"):
        tracker.log_metrics({"loss": 2.0}, step=0)
        exp_id = tracker.experiment_id
        _ = 1 / 0
    run = _mlflow_run(mlflow_store, exp_id)
    assert run.info.status == "FAILED" and run.data.tags["evalledger.status"] == "failed"
    assert [m.value for m in mlflow_store.get_metric_history(run.info.run_id, "loss")] == [2.0]


def test_mlflow_keys_are_normalised_relative_paths() -> None:
    from evalledger.mirrors.mlflow import mlflow_key

    assert mlflow_key("train/loss") == "train/loss"
    assert mlflow_key("checkpoint//tmp/run/ckpt.bin") == "checkpoint/tmp/run/ckpt.bin"
    assert mlflow_key("a/../b/./c:d") == "a/b/c_d"
    assert mlflow_key("///") == "_"
    assert len(mlflow_key("k" * 400)) == 250
