"""Resuming a crashed tracked experiment: :meth:`Tracker.resume` (W&B's ``resume="allow"``).

::

    tracker = Tracker()
    with tracker.resume("exp_2025-01-02_030405_ab12cd34", from_checkpoint=True) as run:
        model = load(run.last_checkpoint)  # the file of the last logged checkpoint
        for step in range(run.last_step + 1, steps):
            run.log_metrics({"train/loss": loss}, step=step)

Only an ``in_progress`` experiment whose process is gone (``crashed`` in ``evalledger
list``) resumes: a ``running`` or ``stale`` one still has (or may have) a live process
writing it, and a finished one (completed, failed, partial) is refused with a hint to
start a new experiment. Resuming reattaches the same manifest, series, summary and params
files: the last step is the highest step in the series files, so ``log_metrics`` without
``step`` continues at last + 1 and a step at or before it is refused. A line a crash cut
short at the end of a series file is dropped first. With ``from_checkpoint``, the series
are also cut back to the last logged checkpoint's step (all of them without one), and
that step is the last one, so the curves continue from the weights that are loaded, not
from steps whose weights were lost with the process. Log a step's metrics before its
checkpoint: :meth:`Tracker.log_checkpoint` flushes them, so the two stay together.
Without a ``with`` block, finish with :meth:`Tracker.finish_experiment` as after
:meth:`Tracker.start_experiment`.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from evalledger.atomic import atomic_write
from evalledger.errors import EvalLedgerError
from evalledger.heartbeat_state import liveness
from evalledger.manifest import ExecutionStatus, read_manifest
from evalledger.project import experiment_paths
from evalledger.track import heartbeat
from evalledger.track.runstate import ACTIVE, Run
from evalledger.track.series import declare_outputs, read_series_dir

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.project import Project

__all__ = ["find_experiment", "resume_experiment"]

T = TypeVar("T")


def find_experiment(project: Project, ref: str) -> str:
    """The ID of the workspace experiment ``ref`` (an ID or any unique part of one)."""
    runs = project.runs_dir
    if ref and (runs / ref / "manifest.yaml").is_file() and ref.startswith("exp_"):
        return ref
    found = sorted(
        p.name for p in (runs.iterdir() if runs.is_dir() else ())
        if ref and ref in p.name and p.name.startswith("exp_") and (p / "manifest.yaml").is_file()
    )  # fmt: skip
    if len(found) == 1:
        return found[0]
    if found:
        shown = ", ".join(found[:5]) + (f" (+{len(found) - 5} more)" if len(found) > 5 else "")
        raise EvalLedgerError(f"experiment {ref!r} is ambiguous: it matches {shown}",
                              "give the full experiment ID")  # fmt: skip
    raise EvalLedgerError(f"no tracked experiment {ref!r} in {runs}", "see `evalledger list`")


def _drop_partial_lines(folder: Path) -> None:
    """Cut the line a crash left unfinished at the end of each series file (atomically)."""
    if not folder.is_dir():
        return
    for path in folder.rglob("*.tsv"):
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            atomic_write(path, data[: data.rfind(b"\n") + 1])


def _cut_after(folder: Path, step: int) -> None:
    """Drop the rows after ``step`` from each series file (atomically)."""
    if not folder.is_dir():
        return
    for path in folder.rglob("*.tsv"):
        header, *rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [row for row in rows if int(row.partition("\t")[0]) <= step]
        if len(kept) < len(rows):
            atomic_write(path, "".join([header, *kept]).encode())


def resume_experiment(tracker: T, exp_id: str, *, from_checkpoint: bool = False) -> T:
    """Reattach the crashed experiment ``exp_id`` (or a unique part); return the tracker.

    ``from_checkpoint`` cuts its series back to the last logged checkpoint's step, where
    :attr:`Tracker.last_step` and :attr:`Tracker.last_checkpoint` then point.

    Use it as ``with tracker.resume(exp_id) as run:`` (finished ``completed``, or
    ``failed`` when the block raises) or call :meth:`finish_experiment` yourself. A
    running, stale or finished experiment is refused with a one-line error.
    """
    from evalledger.matrix import config_hash

    self: Any = tracker
    project = self.project
    with self._lock:
        if self._run is not None:
            msg = f"experiment {self._run.exp_id} is still running"
            raise EvalLedgerError(msg, "call finish_experiment() first, or use another Tracker")
        exp_id = find_experiment(project, exp_id)
        manifest_path = project.runs_dir / exp_id / "manifest.yaml"
        manifest = read_manifest(manifest_path)
        if manifest.kind != "experiment":
            hint = "resume an evalledger run with `evalledger run --resume`"
            raise EvalLedgerError(f"{exp_id} is not a tracked experiment", hint)
        state = liveness(project, manifest)
        if state in ("running", "stale"):
            where = "here" if state == "running" else "on another host or unknown"
            raise EvalLedgerError(
                f"exp {exp_id} is {state}: a live process ({where}) owns it",
                "wait for it to end or kill it; only a crashed experiment resumes",
            )
        if state != "crashed":
            raise EvalLedgerError(f"exp {exp_id} is {state}; start a new experiment")
        paths = experiment_paths(project, manifest)
        _drop_partial_lines(paths.series_dir)
        checkpoint_step = max((c.step for c in manifest.checkpoints if c.step is not None),
                              default=-1)  # fmt: skip
        if from_checkpoint:
            _cut_after(paths.series_dir, checkpoint_step)
        series = read_series_dir(paths.series_dir) if paths.series_dir.is_dir() else {}
        last_step = max((s for rows in series.values() for s, _ in rows), default=-1)
        if from_checkpoint:  # the weights' step, even if its metrics were never written
            last_step = checkpoint_step
        manifest.status = ExecutionStatus.IN_PROGRESS
        manifest.error = None
        run = Run(
            exp_id=exp_id,
            manifest=manifest,
            manifest_path=manifest_path,
            paths=paths,
            config_hash=config_hash(manifest.config),
            known=set(series),
            last={key: rows[-1][1] for key, rows in series.items() if rows},
            last_step=last_step,
            step=last_step,
            floor=last_step,
            nonfinite=sum(math.isnan(v) for rows in series.values() for _, v in rows),
        )
        paths.series_dir.mkdir(parents=True, exist_ok=True)
        declare_outputs(project)
        self._write_state(run, fsync=True)
        self._run = run
        self._mirrors.call("start", manifest)
        run.thread = threading.Thread(
            target=self._flush_loop, args=(run,), name=f"evalledger-{exp_id}", daemon=True
        )
        run.thread.start()
        heartbeat.start(project, exp_id, until=run.stop)  # replaces the dead process's
        ACTIVE.add(self)
        return tracker
