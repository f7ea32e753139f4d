"""Tracking training experiments into the ledger: :class:`Tracker` and :class:`ExperimentConfig`.

::

    from evalledger import ExperimentConfig, Tracker

    tracker = Tracker()  # the project containing the current directory
    with tracker.experiment(ExperimentConfig(lr=3e-4, dataset={"name": "gsm8k"})) as run:
        for step in range(steps):
            run.log_metrics({"train/loss": loss, "train/reward": reward}, step=step)
        run.log_checkpoint("checkpoints/last.pt", step=steps)  # then `dvc add` it
        run.log_evaluation("gsm8k", {"accuracy": 0.61, "scores": per_item})

An experiment leaves, in the ledger's layout:

- ``runs/<exp id>/manifest.yaml``: the execution manifest (``kind: experiment``), its
  redacted configuration and params, git state, provenance, checkpoints and artifacts
  (path, sha256, size: their bytes are left to DVC), the last value of every metric,
  its status and, when it failed, the error;
- ``metrics/_series/<exp id>/<metric>.tsv``: one step series per metric, in DVC's plots
  format (declared once in dvc.yaml, so ``dvc plots show`` draws them);
- ``metrics/_experiments/<exp id>.json``: the latest values (a DVC metrics file, also
  declared in dvc.yaml, for ``dvc metrics show`` and ``dvc exp show``);
- ``metrics/<name>/<benchmark>.json`` (+ ``.scores.csv``): one ledger cell per
  :meth:`Tracker.log_evaluation`, so ``evalledger leaderboard``, ``diff`` and
  ``significance`` treat the experiment like any model.

Logging costs almost nothing in the training loop: :meth:`Tracker.log_metrics` only
appends to a buffer. A background thread writes the buffer every ``flush_interval``
seconds, and :meth:`Tracker.flush` runs at every checkpoint, evaluation and at the finish.
Series files only grow by whole lines (one ``write`` per file per flush); the manifest and
summary are replaced atomically. A killed process loses at most the last interval, and
leaves every file readable.
"""

from __future__ import annotations

import atexit
import csv
import dataclasses
import hashlib
import io
import json
import numbers
import operator
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict

from evalledger.atomic import atomic_write, locked_file
from evalledger.errors import ConfigError, EvalLedgerError
from evalledger.manifest import (
    ArtifactRecord,
    CellRecord,
    CellStatus,
    ExecutionManifest,
    ExecutionStatus,
    GitState,
    Provenance,
    dump_manifest,
    new_experiment_id,
    utcnow,
)
from evalledger.project import Project
from evalledger.redact import redact
from evalledger.series import (
    SERIES_DIR,
    SUMMARY_DIR,
    append_rows,
    check_metric_name,
    series_path,
)

if TYPE_CHECKING:
    from types import TracebackType

    from evalledger.mirrors import Mirror

__all__ = ["ExperimentConfig", "Tracker"]

#: How an experiment that never called finish_experiment is recorded at exit.
EXITED_WITHOUT_FINISH = "process exited without finish_experiment"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]*$")
_ITEM_KEYS = ("scores", "items", "per_item")
_FINAL = {s.value: s for s in ExecutionStatus if s is not ExecutionStatus.IN_PROGRESS}


class ExperimentConfig(BaseModel):
    """An experiment's configuration: typed fields of a subclass, plus free-form sections.

    Subclass it for typed, validated hyperparameters, or pass any nested sections
    (``agents``, ``workflow``, ``tasks``, ``dataset``...) as keyword arguments::

        class GRPOConfig(ExperimentConfig):
            learning_rate: float = 5e-5
            lora_rank: int = 8

        GRPOConfig(learning_rate=1e-4, dataset={"name": "gsm8k", "train_size": 8000})

    It is written to the manifest (secret-looking values redacted) and hashed into the
    ``config_hash`` of the experiment's evaluation cells.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: declared fields and extra sections."""
        return self.model_dump(mode="json")

    @classmethod
    def from_experiment(cls, ref: str, project: Project | Path | str | None = None) -> Self:
        """The configuration an earlier experiment ran with, to run it again.

        ``ref`` is its ID or any unique part of one, found anywhere in the history of
        HEAD or in the working tree. Values that were redacted when it was recorded
        (secrets) stay ``<redacted>``: set them again before use.
        """
        from evalledger.history import Ledger

        proj = project if isinstance(project, Project) else Project.find(project)
        with Ledger(proj) as ledger:
            info = ledger.find_execution(ref)
            manifest = ledger.manifest(info)
        if manifest.kind != "experiment":
            raise ConfigError(
                f"{info.execution_id} is an evaluation matrix, not a tracked experiment",
                f"use `evalledger revert {info.execution_id}` to restore its params.yaml",
            )
        return cls.model_validate(manifest.config)


@dataclasses.dataclass(eq=False)
class _Run:
    """The state of the running experiment."""

    exp_id: str
    manifest: ExecutionManifest
    manifest_path: Path
    series_dir: Path
    summary_path: Path
    config_hash: str
    buffer: list[tuple[int, dict[str, Any]]] = dataclasses.field(default_factory=list)
    known: set[str] = dataclasses.field(default_factory=set)
    last: dict[str, float] = dataclasses.field(default_factory=dict)
    last_step: int = -1
    """The last step written (at the last flush)."""
    step: int = -1
    """The last step logged."""
    dirty: bool = True
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    warned: bool = False


class _Mirrors:
    """Mirrors (W&B, MLflow...) called beside the ledger; one that raises is dropped."""

    def __init__(self, mirrors: list[tuple[str, Any]]) -> None:
        self.active = mirrors

    def call(self, method: str, *args: Any, optional: bool = False) -> None:
        """Call ``method`` on every mirror; ``optional`` skips those without it."""
        for entry in list(self.active):
            label, mirror = entry
            if optional and not callable(getattr(mirror, method, None)):
                continue
            try:
                getattr(mirror, method)(*args)
            except Exception as exc:
                self.active.remove(entry)
                _warn(
                    f"mirror {label} failed in {method} ({_describe(exc)}); it is disabled, "
                    "the ledger keeps recording"
                )


def _warn(text: str) -> None:
    sys.stderr.write(f"evalledger: {text}\n")
    sys.stderr.flush()


def _describe(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _plain(value: Any, what: str) -> dict[str, Any]:
    """A plain JSON-ready dict from a config, params or result object."""
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = dataclasses.asdict(value)
    elif callable(getattr(value, "to_dict", None)):
        data = value.to_dict()
    elif isinstance(value, Mapping):
        data = dict(value)
    else:
        raise EvalLedgerError(
            f"{what} must be a mapping, a pydantic model or a dataclass, not {type(value).__name__}"
        )
    try:  # a round trip makes it plain JSON data (numpy scalars, paths... become text)
        plain = json.loads(json.dumps(data, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise EvalLedgerError(f"{what} is not JSON-serialisable: {exc}") from None
    if not isinstance(plain, dict):
        raise EvalLedgerError(f"{what} must be a mapping")
    return plain


def _json_default(obj: Any) -> Any:
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise EvalLedgerError(
            f"{kind} {name!r} is not allowed",
            "start with a letter or digit; then letters, digits, '_', '+' or '-'",
        )
    return name


def _as_number(name: str, value: Any) -> float:
    """A logged value as a float, or a one-line error naming the metric."""
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        return float(value)
    if not isinstance(value, bool | str | bytes) and hasattr(value, "__float__"):
        try:  # numpy scalars, 0-d tensors
            return float(value)
        except (TypeError, ValueError):
            pass
    raise EvalLedgerError(
        f"metric {name!r} has a non-numeric value {value!r:.60} ({type(value).__name__})",
        "log numbers only (int, float, or a 0-d array)",
    )


def _as_step(step: Any) -> int:
    try:
        if isinstance(step, bool):
            raise TypeError
        value = operator.index(step)
    except TypeError:
        raise EvalLedgerError(f"step {step!r} must be an integer") from None
    if value < 0:
        raise EvalLedgerError(f"step {step!r} must not be negative")
    return value


def _nested(flat: Mapping[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _hash_path(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, or of a folder's files by relative name."""
    if path.is_file():
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest(), path.stat().st_size
    if path.is_dir():
        digest, total = hashlib.sha256(), 0
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            with open(file, "rb") as fh:
                file_hash = hashlib.file_digest(fh, "sha256").hexdigest()
            digest.update(f"{file.relative_to(path).as_posix()}\0{file_hash}\n".encode())
            total += file.stat().st_size
        return digest.hexdigest(), total
    raise EvalLedgerError(f"{path} does not exist", "log a checkpoint after writing it")


def _provenance(root: Path) -> Provenance:
    from evalledger.provenance import capture_provenance

    prov = capture_provenance(root)
    prov.env = redact(prov.env)  # a second guard: nothing secret leaves the process
    return prov


def _git(root: Path) -> GitState:
    from evalledger.gitinfo import code_hash, git_state

    try:
        state = git_state(root)  # with diff_hash when tracked files changed
        state.code_hash = code_hash(root)
    except EvalLedgerError:  # git is not installed
        return GitState()
    return state


def _top_level_list(doc: dict[str, Any], key: str) -> list[Any]:
    """dvc.yaml's top-level ``plots:`` or ``metrics:`` list, created when absent."""
    items = doc.get(key)
    if items is None:
        items = doc[key] = []
    if not isinstance(items, list):
        raise ConfigError(f"dvc.yaml: {key} must be a list")
    return items


def _edit_dvc_yaml(project: Project, edit: Callable[[Any], bool]) -> bool:
    """Apply ``edit`` to dvc.yaml under a file lock; write it back if ``edit`` says it changed.

    The lock keeps concurrent trackers from losing each other's edits, and the round trip
    keeps every other part of dvc.yaml (stages, comments, order) as written.
    """
    from evalledger.pipeline import load_dvc_yaml, write_dvc_yaml

    with locked_file(project.state_dir / "dvcyaml.lock", blocking=True):
        doc = load_dvc_yaml(project)
        changed = edit(doc)
        if changed:
            write_dvc_yaml(project, doc)
    return changed


def declare_outputs(project: Project, metrics_files: Sequence[str] = ()) -> bool:
    """Declare the series (plots) and summaries (metrics) in dvc.yaml once; True if changed.

    ``metrics_files`` (evaluation cells' ``metrics/<name>/<benchmark>.json``) join the
    top-level ``metrics:`` list too, so ``dvc metrics show`` and ``dvc exp show`` see
    them; DVC lists a file once even when a matrix stage also outputs it. Idempotent.
    """
    series, summary = f"metrics/{SERIES_DIR}", f"metrics/{SUMMARY_DIR}"

    def edit(doc: Any) -> bool:
        changed = False
        plots = _top_level_list(doc, "plots")
        names = {p if isinstance(p, str) else next(iter(p), None) for p in plots if p}
        if series not in names:
            plots.append({series: {"x": "step"}})
            changed = True
        metrics = _top_level_list(doc, "metrics")
        for path in (summary, *metrics_files):
            if path not in metrics:
                metrics.append(path)
                changed = True
        return changed

    return _edit_dvc_yaml(project, edit)


def undeclare_metrics(project: Project, paths: Sequence[str]) -> bool:
    """Drop ``paths`` from dvc.yaml's top-level ``metrics:`` list; True if it changed."""
    gone = set(paths)

    def edit(doc: Any) -> bool:
        metrics = doc.get("metrics")
        if not isinstance(metrics, list) or not gone.intersection(metrics):
            return False
        for i in reversed(range(len(metrics))):  # in place: ruamel keeps the comments
            if metrics[i] in gone:
                del metrics[i]
        return True

    return _edit_dvc_yaml(project, edit)


class Tracker:
    """Records training experiments into an evalledger project; see the module docstring.

    ``project`` is a :class:`Project`, a path inside one, or None for the project around
    the current directory. ``flush_interval`` is the most a killed process can lose, in
    seconds. ``fsync`` syncs every periodic flush to disk (the final flush always is);
    without it a flush survives a killed process but not a power cut. ``mirrors`` are
    other trackers to copy everything to: names for :func:`evalledger.mirrors.load_mirror`
    or objects with the ``Mirror`` methods; one that raises is disabled with a warning.
    """

    def __init__(
        self,
        project: Project | Path | str | None = None,
        *,
        flush_interval: float = 1.0,
        fsync: bool = False,
        mirrors: list[str | Mirror] | None = None,
    ) -> None:
        self.project = project if isinstance(project, Project) else Project.find(project)
        if not flush_interval > 0:
            raise EvalLedgerError(f"flush_interval must be positive, not {flush_interval!r}")
        self.flush_interval = float(flush_interval)
        self.fsync = fsync
        self._lock = threading.RLock()
        self._run: _Run | None = None
        self._mirrors = _Mirrors(self._load_mirrors(mirrors or []))

    @staticmethod
    def _load_mirrors(mirrors: list[str | Mirror]) -> list[tuple[str, Any]]:
        loaded: list[tuple[str, Any]] = []
        for entry in mirrors:
            if not isinstance(entry, str):
                loaded.append((type(entry).__name__, entry))
                continue
            try:
                from evalledger.mirrors import load_mirror

                loaded.append((entry, load_mirror(entry)))
            except EvalLedgerError:
                raise  # an unknown mirror name: a configuration error, before training
            except Exception as exc:
                _warn(f"mirror {entry} could not be loaded ({_describe(exc)}); it is disabled")
        return loaded

    # ----------------------------------------------------------------- lifecycle

    @property
    def experiment_id(self) -> str | None:
        """The running experiment's ID, or None."""
        run = self._run
        return run.exp_id if run else None

    def start_experiment(
        self,
        config: ExperimentConfig | BaseModel | Mapping[str, Any] | None = None,
        name: str | None = None,
        notes: str | None = None,
    ) -> str:
        """Create an experiment and return its ID (``exp_YYYY-MM-DD_HHMMSS_<8 hex>``).

        ``name`` (default: the ID) is how its evaluations appear in the ledger, as the
        model of cells ``metrics/<name>/<benchmark>.json``.
        """
        from evalledger.matrix import config_hash

        with self._lock:
            if self._run is not None:
                raise EvalLedgerError(
                    f"experiment {self._run.exp_id} is still running",
                    "call finish_experiment() first, or use another Tracker",
                )
            exp_id = new_experiment_id()
            name = _check_name("experiment name", name) if name is not None else exp_id
            cfg = redact(_plain(config, "config"))
            root = self.project.root
            now = utcnow()
            manifest = ExecutionManifest(
                execution_id=exp_id, created_at=now, updated_at=now, kind="experiment",
                name=name, notes=notes, command=redact(list(sys.argv)), config=cfg,
                git=_git(root), provenance=_provenance(root),
            )  # fmt: skip
            declare_outputs(self.project)
            run = _Run(
                exp_id=exp_id,
                manifest=manifest,
                manifest_path=self.project.runs_dir / exp_id / "manifest.yaml",
                series_dir=self.project.metrics_dir / SERIES_DIR / exp_id,
                summary_path=self.project.metrics_dir / SUMMARY_DIR / f"{exp_id}.json",
                config_hash=config_hash(cfg),
            )
            run.series_dir.mkdir(parents=True, exist_ok=True)
            self._write_state(run, fsync=True)
            self._run = run
            self._mirrors.call("start", manifest)
            run.thread = threading.Thread(
                target=self._flush_loop, args=(run,), name=f"evalledger-{exp_id}", daemon=True
            )
            run.thread.start()
            _ACTIVE.add(self)
            return exp_id

    def finish_experiment(self, status: str = "completed", error: str | None = None) -> None:
        """Flush everything (synced to disk) and record the final status.

        ``status`` is ``completed``, ``failed`` or ``partial``; ``error`` is recorded with
        it (``ErrorClass: message`` by convention).
        """
        final = _FINAL.get(str(status))
        if final is None:
            raise EvalLedgerError(
                f"unknown final status {status!r}", f"use one of {', '.join(_FINAL)}"
            )
        run = self._require()
        run.stop.set()
        if run.thread is not None and run.thread is not threading.current_thread():
            run.thread.join()
        with self._lock:
            if self._run is not run:
                return
            try:
                run.manifest.status = final
                run.manifest.error = error
                run.dirty = True
                self._flush(run, fsync=True)
                self._stage_for_dvc_experiment(run.manifest)
            finally:
                self._run = None
                _ACTIVE.discard(self)
                self._mirrors.call("finish", final.value)

    def _stage_for_dvc_experiment(self, manifest: ExecutionManifest) -> None:
        """Under ``dvc exp run``, stage the files DVC would otherwise leave out.

        DVC commits an experiment's tracked files and declared outputs only; the manifest
        and evaluation cells are new files, so they are added to git's index here (the
        series and summary are declared in dvc.yaml and need nothing).
        """
        if "DVC_EXP_BASELINE_REV" not in os.environ:
            return
        paths = [f"runs/{manifest.execution_id}/manifest.yaml"]
        for key in manifest.cells:
            paths += [f"metrics/{key}.json", f"metrics/{key}.scores.csv"]
        existing = [p for p in paths if (self.project.root / p).exists()]
        subprocess.run(["git", "add", "--", *existing], cwd=self.project.root,
                       capture_output=True, check=False)  # fmt: skip

    @contextmanager
    def experiment(
        self,
        config: ExperimentConfig | BaseModel | Mapping[str, Any] | None = None,
        name: str | None = None,
        notes: str | None = None,
    ) -> Iterator[Tracker]:
        """Run an experiment for the length of a ``with`` block.

        It finishes ``completed``, or ``failed`` with ``ErrorClass: message`` when the
        block raises (the exception then propagates).
        """
        self.start_experiment(config, name=name, notes=notes)
        try:
            yield self
        except BaseException as exc:
            if self._run is not None:
                self.finish_experiment("failed", error=_describe(exc))
            raise
        if self._run is not None:
            self.finish_experiment("completed")

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        """Finish a running experiment: ``failed`` with the error if the block raised."""
        if self._run is not None:
            if exc is None:
                self.finish_experiment("completed")
            else:
                self.finish_experiment("failed", error=_describe(exc))

    # ----------------------------------------------------------------- logging

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record step metrics (``{"train/loss": 0.41}``) at ``step`` (default: last + 1).

        This only appends to a buffer: no I/O. Names and values are checked here, so a
        bad one raises at once with a one-line :class:`EvalLedgerError`.
        """
        run = self._run
        if run is None:
            raise EvalLedgerError("no experiment is running", "call start_experiment() first")
        if step is None:
            step = run.step + 1
        elif type(step) is not int:
            step = _as_step(step)
        elif step < 0:
            _as_step(step)
        values = dict(metrics)
        if not run.known.issuperset(values):
            self._register(run, values)
        for key, value in values.items():
            if type(value) is not float and type(value) is not int:
                values[key] = _as_number(key, value)
        run.buffer.append((step, values))
        run.step = step

    def _register(self, run: _Run, values: Mapping[str, Any]) -> None:
        with self._lock:
            for key in values:
                if key in run.known:
                    continue
                check_metric_name(key)
                for other in run.known:  # the summary nests on '/': a leaf is no folder
                    if other.startswith(key + "/") or key.startswith(other + "/"):
                        raise EvalLedgerError(
                            f"metric {key!r} clashes with {other!r}",
                            "a metric name cannot also be a group of other metrics",
                        )
                run.known.add(key)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (merged into the manifest's ``params``, secrets redacted)."""
        run = self._require()
        clean = redact(_plain(params, "params"))
        with self._lock:
            _merge(run.manifest.params, clean)
            run.dirty = True
            self._mirrors.call("log_params", clean)

    def log_checkpoint(
        self, path: str | Path, step: int | None = None, name: str | None = None
    ) -> ArtifactRecord:
        """Record a checkpoint by path, sha256 and size, then flush.

        Its bytes are not copied: put large files under DVC (``dvc add <path>`` and commit
        the ``.dvc`` file) so the recorded hash can be fetched back with ``dvc pull``.
        """
        record = self._artifact(path, step, name)
        with self._lock:
            run = self._require()
            run.manifest.checkpoints.append(record)
            run.dirty = True
            self._flush(run, fsync=self.fsync)  # mirrors see the steps before it
            self._mirrors.call("log_artifact", record, "checkpoint")
        return record

    def log_artifact(
        self, path: str | Path, name: str | None = None, step: int | None = None
    ) -> ArtifactRecord:
        """Record a file or folder (a dataset, a config, plots) by path, sha256 and size.

        As for checkpoints, the bytes stay where they are; ``dvc add`` large ones.
        """
        record = self._artifact(path, step, name)
        with self._lock:
            run = self._require()
            run.manifest.artifacts.append(record)
            run.dirty = True
            self._mirrors.call("log_artifact", record, "artifact")
        return record

    def _artifact(self, path: str | Path, step: int | None, name: str | None) -> ArtifactRecord:
        self._require()
        full = Path(path).expanduser().resolve()
        sha, size = _hash_path(full)
        try:
            shown = full.relative_to(self.project.root.resolve()).as_posix()
        except ValueError:
            shown = str(full)
        return ArtifactRecord(
            path=shown, sha256=sha, size=size, name=name, logged_at=utcnow(),
            step=None if step is None else _as_step(step),
        )  # fmt: skip

    def log_evaluation(self, benchmark: str, result: Any) -> dict[str, Any]:
        """Record an evaluation as the ledger cell ``<name>/<benchmark>``; return its metrics.

        ``result`` is a mapping (or an object with ``to_dict()``, a pydantic model, a
        dataclass) of metrics, or holding them under ``metrics``. Per-item scores, a list
        of dicts under ``scores`` (or ``items``, ``per_item``) with an ``id`` and any of
        ``correct``, ``score``, ``partial``, ``formatted``, ``category``, ``latency_ms``,
        ``prompt_tokens``, ``completion_tokens``, ``error``, ``cluster``, are written to
        ``.scores.csv`` for ``diff`` and ``significance``; the metrics computed from them
        (accuracy, mean_score...) take precedence over the same keys in ``metrics``.
        """
        from evalledger.cell import cell_metrics

        run = self._require()
        _check_name("benchmark name", benchmark)
        data = _plain(result, "evaluation result")
        items = None
        for key in _ITEM_KEYS:
            value = data.get(key)
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                items = data.pop(key)
                break
        given = data["metrics"] if isinstance(data.get("metrics"), dict) else data
        metrics = {k: v for k, v in given.items() if not isinstance(v, list)}
        records = None
        if items is not None:
            records = [_item_record(i, item) for i, item in enumerate(items)]
            metrics = {**metrics, **cell_metrics(records)}
        metrics = dict(redact(metrics))
        name = run.manifest.name or run.exp_id
        key = f"{name}/{benchmark}"
        metrics_dir = self.project.metrics_dir
        if records is not None:
            atomic_write(metrics_dir / f"{key}.scores.csv", _scores_csv(records))
        else:
            (metrics_dir / f"{key}.scores.csv").unlink(missing_ok=True)
        atomic_write(metrics_dir / f"{key}.json", json.dumps(metrics, indent=2) + "\n")
        declare_outputs(self.project, [f"metrics/{key}.json"])
        now = utcnow()
        n = len(records) if records is not None else 0
        errored = sum(1 for r in records or [] if r["error"])
        with self._lock:
            run.manifest.cells[key] = CellRecord(
                axes={"model": name, "benchmark": benchmark}, stage="", experiment=run.exp_id,
                config_hash=run.config_hash, status=CellStatus.COMPLETED,
                examples_completed=n - errored, examples_total=n if records else None,
                examples_errored=errored, started_at=now, finished_at=now, attempts=1,
            )  # fmt: skip
            run.dirty = True
            self._flush(run, fsync=self.fsync)
            self._mirrors.call("log_evaluation", benchmark, metrics)
        return metrics

    # ----------------------------------------------------------------- flushing

    def flush(self) -> None:
        """Write buffered metrics and a changed manifest now."""
        with self._lock:
            run = self._run
            if run is not None:
                self._flush(run, fsync=self.fsync)

    def _require(self) -> _Run:
        run = self._run
        if run is None:
            raise EvalLedgerError("no experiment is running", "call start_experiment() first")
        return run

    def _flush_loop(self, run: _Run) -> None:
        while not run.stop.wait(self.flush_interval):
            try:
                with self._lock:
                    if self._run is run:
                        self._flush(run, fsync=self.fsync)
            except Exception as exc:  # a full disk: keep training, say so once
                if not run.warned:
                    run.warned = True
                    _warn(f"flushing experiment {run.exp_id} failed: {_describe(exc)}")

    def _flush(self, run: _Run, *, fsync: bool) -> None:
        """Append the buffered rows to their series, then rewrite manifest and summary."""
        buf = run.buffer
        n = len(buf)
        if n:
            batch = buf[:n]
            del buf[:n]  # rows appended meanwhile (by the training thread) stay
            rows: dict[str, list[str]] = {}
            last = run.last
            for step, values in batch:
                for key, value in values.items():
                    lines = rows.get(key)
                    if lines is None:
                        lines = rows[key] = []
                    value = float(value)
                    lines.append(f"{step}\t{value!r}\n")
                    last[key] = value
            run.last_step = batch[-1][0]
            for key, lines in rows.items():
                append_rows(series_path(run.series_dir, key), "".join(lines), fsync=fsync)
            run.dirty = True
            if self._mirrors.active:
                for step, values in batch:
                    self._mirrors.call("log_metrics", {k: float(v) for k, v in values.items()},
                                       step)  # fmt: skip
                self._mirrors.call("flush", optional=True)  # batching mirrors send now
        if run.dirty:
            self._write_state(run, fsync=fsync)

    def _write_state(self, run: _Run, *, fsync: bool) -> None:
        if run.last_step >= 0:
            run.manifest.last_metrics = {**run.last, "step": float(run.last_step)}
            summary = {**_nested(run.last), "step": run.last_step}
            atomic_write(run.summary_path, json.dumps(summary, indent=2) + "\n", fsync=fsync)
        run.manifest.updated_at = utcnow()
        atomic_write(run.manifest_path, dump_manifest(run.manifest), fsync=fsync)
        run.dirty = False


def _item_record(index: int, item: dict[str, Any]) -> dict[str, Any]:
    """A per-item record as :func:`evalledger.cell.cell_metrics` reads them."""
    item_id = item.get("id", item.get("item_id"))
    if item_id is None or str(item_id) == "":
        raise EvalLedgerError(f"per-item score #{index} has no 'id'")
    score = item.get("score")
    correct = item.get("correct")
    if correct is None:
        correct = score is not None and float(score) >= 1.0
    correct = bool(correct)
    score = float(score if score is not None else correct)
    error = item.get("error") or None
    return {
        "id": str(item_id), "category": str(item.get("category") or ""),
        "correct": correct, "score": score, "partial": bool(item.get("partial", correct)),
        "formatted": bool(item.get("formatted", True)),
        "latency_ms": float(item.get("latency_ms") or 0.0),
        "prompt_tokens": int(item.get("prompt_tokens") or 0),
        "completion_tokens": int(item.get("completion_tokens") or 0),
        "error": str(error) if error else None,
        "error_class": str(error).split(":", 1)[0] if error else None,
        "cluster": "" if item.get("cluster") is None else str(item["cluster"]),
    }  # fmt: skip


def _scores_csv(records: list[dict[str, Any]]) -> str:
    """Per-item scores in the columns of ``evalledger.cell`` (a ``cluster`` one if any)."""
    from evalledger.cell import CLUSTER_COLUMN, SCORE_COLUMNS

    clusters = any(r["cluster"] for r in records)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*SCORE_COLUMNS, CLUSTER_COLUMN] if clusters else SCORE_COLUMNS)
    for r in records:
        row = [
            r["id"], r["category"], int(r["correct"]), r["score"], int(r["partial"]),
            int(r["formatted"]), r["latency_ms"], r["prompt_tokens"], r["completion_tokens"],
            r["error"] or "",
        ]  # fmt: skip
        if clusters:
            row.append(r["cluster"])
        writer.writerow(row)
    return buf.getvalue()


#: Trackers with a running experiment, finished as failed if the process exits first.
_ACTIVE: set[Tracker] = set()


def _finish_at_exit() -> None:
    error = EXITED_WITHOUT_FINISH
    last = getattr(sys, "last_value", None)  # set when an uncaught exception ended __main__
    if isinstance(last, BaseException):
        error = f"{EXITED_WITHOUT_FINISH} ({_describe(last)})"
    for tracker in list(_ACTIVE):
        try:
            tracker.finish_experiment("failed", error=error)
        except Exception as exc:
            _warn(f"could not record the unfinished experiment: {_describe(exc)}")


atexit.register(_finish_at_exit)
