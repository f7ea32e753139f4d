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
- ``metrics/_series/<name>/<metric>.tsv``: one step series per metric, in DVC's plots
  format, ``metrics/_experiments/<name>.json``: the latest values (DVC metrics), and
  ``metrics/_params/<name>.yaml``: config and params (DVC params), all declared in dvc.yaml
  and keyed by name (``train`` without one) so DVC compares revisions (:mod:`.series`);
- ``metrics/<name>/<benchmark>.json`` (+ ``.scores.csv``): one ledger cell per
  :meth:`Tracker.log_evaluation`, so ``evalledger leaderboard``, ``diff`` and
  ``significance`` treat the experiment like any model.

Logging costs almost nothing in the training loop: :meth:`Tracker.log_metrics` only
appends to a buffer. A background thread writes the buffer every ``flush_interval``
seconds, and :meth:`Tracker.flush` runs at every checkpoint, evaluation and at the finish.
A buffer of :data:`MAX_BUFFERED_STEPS` steps is written at once by the logging call, so
memory stays bounded however fast a loop logs.
Series files only grow by whole lines (one ``write`` per file per flush); the manifest and
summary are replaced atomically. A killed process loses at most the last interval, and
leaves every file readable.
"""

from __future__ import annotations

import atexit
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write
from evalledger.errors import EvalLedgerError, describe, notice
from evalledger.manifest import (
    ArtifactRecord,
    CellRecord,
    CellStatus,
    ExecutionStatus,
    dump_manifest,
    new_experiment_id,
    utcnow,
)
from evalledger.mirrors import MirrorGroup
from evalledger.project import Project
from evalledger.redact import redact
from evalledger.track import heartbeat
from evalledger.track.config import ExperimentConfig
from evalledger.track.evaluate import tracker_evaluate
from evalledger.track.experiment import new_experiment_manifest, stage_for_dvc_experiment
from evalledger.track.records import (
    block_outcome,
    check_name,
    dump_json,
    evaluation_records,
    hash_path,
    logged_directions,
    logged_number,
    logged_step,
    merge_into,
    nest,
    plain_mapping,
    scores_csv,
)
from evalledger.track.resume import resume_experiment
from evalledger.track.runstate import ACTIVE as _ACTIVE
from evalledger.track.runstate import Run as _Run
from evalledger.track.series import (
    DEFAULT_NAME,
    append_rows,
    declare_outputs,
    experiment_paths,
    nonfinite_notice,
    register_metrics,
    series_path,
    series_rows,
    write_params,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import TracebackType

    from pydantic import BaseModel

    from evalledger.mirrors import Mirror

__all__ = ["ExperimentConfig", "Tracker"]

#: How an experiment that never called finish_experiment is recorded at exit.
EXITED_WITHOUT_FINISH = "process exited without finish_experiment"
#: Steps the buffer holds before a log call writes them itself (about 8 MB).
MAX_BUFFERED_STEPS = 20_000
_FINAL = {s.value: s for s in ExecutionStatus if s is not ExecutionStatus.IN_PROGRESS}


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
        self._mirrors = MirrorGroup.load(mirrors or [])

    # ----------------------------------------------------------------- lifecycle

    @property
    def experiment_id(self) -> str | None:
        """The running experiment's ID, or None."""
        run = self._run
        return run.exp_id if run else None

    @property
    def last_step(self) -> int:
        """The running experiment's last logged step (-1 before any); resume from + 1."""
        run = self._run
        return run.step if run else -1

    @property
    def last_checkpoint(self) -> Path | None:
        """The file of the running experiment's last logged checkpoint, or None."""
        run = self._run
        if run is None or not run.manifest.checkpoints:
            return None
        return self.project.root / run.manifest.checkpoints[-1].path

    def start_experiment(
        self,
        config: ExperimentConfig | BaseModel | Mapping[str, Any] | None = None,
        name: str | None = None,
        notes: str | None = None,
    ) -> str:
        """Create an experiment and return its ID (``exp_YYYY-MM-DD_HHMMSS_<8 hex>``).

        ``name`` (default: the ID) is how its evaluations appear in the ledger, as the
        model of cells ``metrics/<name>/<benchmark>.json``, and (default: ``train``) the
        key of its series, summary and params files: a later run of a name replaces them.
        """
        from evalledger.matrix import config_hash

        with self._lock:
            if self._run is not None:
                msg = f"experiment {self._run.exp_id} is still running"
                raise EvalLedgerError(msg, "call finish_experiment() first, or use another Tracker")
            exp_id = new_experiment_id()
            key = DEFAULT_NAME if name is None else check_name("experiment name", name)
            cfg = redact(plain_mapping(config, "config"))
            manifest = new_experiment_manifest(self.project, exp_id, name or exp_id, notes, cfg)
            manifest.outputs = key
            paths = experiment_paths(self.project, manifest)
            paths.reset()  # a new run of the same name replaces the last one's files
            declare_outputs(self.project)
            run = _Run(
                exp_id=exp_id,
                manifest=manifest,
                manifest_path=self.project.runs_dir / exp_id / "manifest.yaml",
                paths=paths,
                config_hash=config_hash(cfg),
            )
            paths.series_dir.mkdir(parents=True, exist_ok=True)
            write_params(paths, cfg, {})
            self._write_state(run, fsync=True)
            self._run = run
            self._mirrors.call("start", manifest)
            run.thread = threading.Thread(
                target=self._flush_loop, args=(run,), name=f"evalledger-{exp_id}", daemon=True
            )
            run.thread.start()
            heartbeat.start(self.project, exp_id, until=run.stop)  # removed at finish
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
                stage_for_dvc_experiment(self.project, run.manifest)
            finally:
                self._run = None
                _ACTIVE.discard(self)
                self._mirrors.call("finish", final.value)

    @contextmanager
    def experiment(
        self,
        config: ExperimentConfig | BaseModel | Mapping[str, Any] | None = None,
        name: str | None = None,
        notes: str | None = None,
    ) -> Iterator[Tracker]:
        """Run an experiment for the length of a ``with`` block.

        It finishes ``completed`` (``sys.exit(0)`` too), or ``failed`` with ``ErrorClass:
        message`` when the block raises (the exception then propagates).
        """
        self.start_experiment(config, name=name, notes=notes)
        try:
            yield self
        except BaseException as exc:
            if self._run is not None:
                self.finish_experiment(*block_outcome(exc))
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
            self.finish_experiment(*block_outcome(exc))

    # ----------------------------------------------------------------- logging

    def log_metrics(
        self, metrics: Mapping[str, Any], step: int | None = None, *,
        direction: str | Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        """Record step metrics (``{"train/loss": 0.41}``) at ``step`` (default: last + 1).

        ``direction`` (``"lower"`` or ``"higher"``, for every metric of the call, or a
        mapping of names or globs to one) says which way is better where the name does
        not; diff, leaderboard and compare read it from the manifest, after params.yaml's
        ``metrics:``. This only appends to a buffer: no I/O. Names and values are checked
        here, so a bad one raises at once with a one-line :class:`EvalLedgerError`.
        """
        run = self._run
        if run is None:
            raise EvalLedgerError("no experiment is running", "call start_experiment() first")
        if direction is not None:
            self._set_directions(run, metrics, direction)
        if step is None:
            step = run.step + 1
        elif type(step) is not int or step < run.step or step < 0 or step <= run.floor:
            step = logged_step(step, run.step, after=run.floor)  # raises: bad or decreasing
        values = dict(metrics)
        if not run.known.issuperset(values):
            self._register(run, values)
        for key, value in values.items():
            if type(value) is not float and type(value) is not int:
                values[key] = logged_number(key, value)
        run.buffer.append((step, values))
        run.step = step
        if len(run.buffer) >= MAX_BUFFERED_STEPS:  # logging outpaces the interval
            with self._lock:
                if self._run is run:
                    self._flush(run, fsync=self.fsync)

    def _set_directions(
        self, run: _Run, metrics: Mapping[str, Any], direction: str | Mapping[str, str]
    ) -> None:
        given = logged_directions(metrics, direction)
        with self._lock:
            if any(run.manifest.directions.get(k) != v for k, v in given.items()):
                run.manifest.directions.update(given)
                run.dirty = True

    def _register(self, run: _Run, values: Mapping[str, Any]) -> None:
        with self._lock:
            register_metrics(run.known, values)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (merged into the manifest's ``params``, secrets redacted)."""
        run = self._require()
        clean = redact(plain_mapping(params, "params"))
        with self._lock:
            merge_into(run.manifest.params, clean)
            write_params(run.paths, run.manifest.config, run.manifest.params)
            run.dirty = True
            self._mirrors.call("log_params", clean)

    def log_checkpoint(
        self, path: str | Path, step: int | None = None, name: str | None = None
    ) -> ArtifactRecord:
        """Record a checkpoint by path, sha256 and size, then flush.

        A relative ``path`` is the file you just wrote: relative to the current
        directory, as for ``open()``; it is recorded relative to the project root.

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
        sha, size = hash_path(full)
        try:
            shown = full.relative_to(self.project.root.resolve()).as_posix()
        except ValueError:
            shown = str(full)
        return ArtifactRecord(
            path=shown, sha256=sha, size=size, name=name, logged_at=utcnow(),
            step=None if step is None else logged_step(step),
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
        run = self._require()
        check_name("benchmark name", benchmark)
        metrics, records = evaluation_records(result)
        name = run.manifest.name or run.exp_id
        key = f"{name}/{benchmark}"
        scores_path = self.project.path(f"metrics/{key}.scores.csv")
        if records is not None:
            atomic_write(scores_path, scores_csv(records))
        else:
            scores_path.unlink(missing_ok=True)
        text, nulled = dump_json(metrics)
        if nulled:
            notice(f"{nulled} non-finite metric(s) of {key} (NaN or inf) are written as null")
        atomic_write(self.project.path(f"metrics/{key}.json"), text)
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
                    notice(f"flushing experiment {run.exp_id} failed: {describe(exc)}")

    def _flush(self, run: _Run, *, fsync: bool) -> None:
        """Append the buffered rows to their series, then rewrite manifest and summary."""
        buf = run.buffer
        n = len(buf)
        if n:
            batch = buf[:n]
            del buf[:n]  # rows appended meanwhile (by the training thread) stay
            rows, bad = series_rows(batch, run.last)
            if bad:
                if not run.nonfinite:
                    notice(nonfinite_notice(*bad[0]))
                run.nonfinite += len(bad)
            run.last_step = batch[-1][0]
            for key, lines in rows.items():
                append_rows(series_path(run.paths.series_dir, key), "".join(lines), fsync=fsync)
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
            summary: dict[str, Any] = {**nest(run.last), "step": run.last_step}
            if run.nonfinite and "nonfinite" not in summary:
                summary["nonfinite"] = run.nonfinite  # how many values are null or empty
            atomic_write(run.paths.summary_path, dump_json(summary)[0], fsync=fsync)
        run.manifest.updated_at = utcnow()
        atomic_write(run.manifest_path, dump_manifest(run.manifest), fsync=fsync)
        run.dirty = False

    evaluate = tracker_evaluate  # evaluate(model, benchmark, n=None, **options)
    resume = resume_experiment  # resume(exp_id): reattach a crashed run (see .resume)


def _finish_at_exit() -> None:
    error = EXITED_WITHOUT_FINISH
    last = getattr(sys, "last_value", None)  # set when an uncaught exception ended __main__
    if isinstance(last, BaseException):
        error = f"{EXITED_WITHOUT_FINISH} ({describe(last)})"
    for tracker in list(_ACTIVE):
        try:
            tracker.finish_experiment("failed", error=error)
        except Exception as exc:
            notice(f"could not record the unfinished experiment: {describe(exc)}")


atexit.register(_finish_at_exit)
