"""A streamed cell's predictions and scores, written in item order while it runs.

Records come in the order items finish. :class:`PartialOutputs` holds the few that
arrive early and writes each one, in item order, as soon as every item before it is
written: the outputs of a cell of a million items are not a second pass at the end.

What is written so far (a prefix of the items) outlives a kill. Its two files, the
float64 latencies and the metrics tally (:class:`~evalledger.execution.cellmetrics.
MetricsTally`) sit beside the checkpoint in ``<checkpoint>.parts/``, and ``state.json``,
replaced atomically every :data:`SAVE_EVERY` items, says how many bytes of each belong
to the prefix. A resume keeps that prefix: it neither evaluates nor rewrites it, so a
half-done cell costs about half a run. A prefix never takes in an errored item (a resume
tries those again), and records that wait for an earlier item are bounded
(:data:`MAX_WAITING`): past either, the files still grow but the prefix stays where it
was. :meth:`PartialOutputs.finish` writes what is left from the checkpoint (items done
out of order, by a Ray worker, or before the prefix stopped) and renames the files
into place. Repeated samples and per-agent records take the one-pass writer instead
(:func:`~evalledger.execution.cellfiles.write_outputs`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from array import array
from itertools import islice
from typing import TYPE_CHECKING, Any

from evalledger.atomic import AtomicLines, atomic_write, fsync_dir
from evalledger.errors import CellError
from evalledger.execution.cellfiles import ScoresCsv, prediction_line
from evalledger.execution.cellmetrics import MetricsTally
from evalledger.execution.checkpoint import parts_dir
from evalledger.execution.streaming import StreamedItems, stored_records
from evalledger.redact import scrub_text

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from evalledger.execution.cellfiles import CellOutputs
    from evalledger.execution.checkpoint import Checkpoint
    from evalledger.plugin_types import Item
    from evalledger.project import Project

__all__ = ["MAX_WAITING", "SAVE_EVERY", "PartialOutputs"]

#: Items written between two saves of ``state.json`` (a kill loses at most these).
SAVE_EVERY = 8192
#: Records held while they wait for an earlier item; past it the prefix stops growing.
MAX_WAITING = 20_000
_STATE_VERSION = 1
_LINES_PER_WRITE = 512


class _Part:
    """An append-only file of lines; each batch passes the redaction point."""

    def __init__(self, path: Path, size: int) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.ftruncate(self.fd, size)
        os.lseek(self.fd, size, os.SEEK_SET)
        self.size = size
        self._batch: list[str] = []

    def write(self, line: str) -> None:
        self._batch.append(line)
        if len(self._batch) >= _LINES_PER_WRITE:
            self.flush()

    def flush(self) -> None:
        if self._batch:
            data = scrub_text("".join(self._batch)).encode("utf-8")
            self._batch.clear()
            os.write(self.fd, data)
            self.size += len(data)

    def close(self, *, sync: bool = False) -> None:
        self.flush()
        if sync:
            os.fsync(self.fd)
        os.close(self.fd)


class PartialOutputs:
    """A streamed cell's outputs, written in item order as records come; use as a context.

    Feed it with :meth:`pending` (the items to evaluate) and :meth:`accept` (each record
    once it is in the checkpoint); :meth:`finish` writes the rest and the metrics.
    """

    def __init__(self, project: Project, prepared: CellOutputs, ck: Checkpoint) -> None:
        assert isinstance(prepared.items, StreamedItems) and prepared.repeats == 1
        self.project, self.prepared, self.ck = project, prepared, ck
        self.items: StreamedItems = prepared.items
        self.dir = parts_dir(ck.path)
        self.next = 0  # the position of the first item not yet written
        self.kept = 0  # items in the saved prefix
        self.tally = MetricsTally()
        self.first_error: str | None = None
        self._csv = ScoresCsv(self.items.has_clusters, samples=False)
        self._waiting: dict[int, tuple[Item, dict[str, Any]]] = {}
        self._position: dict[str, int] = {}  # in flight: item id -> position
        self._writing = True  # records are written as they come (else by finish)
        self._saving = True  # the saved prefix may still grow
        self._since_save = 0
        self._latencies_saved = 0
        self._files: tuple[_Part, _Part] | None = None  # predictions, scores

    # -- opening and closing ----------------------------------------------------------

    def __enter__(self) -> PartialOutputs:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = self._saved_state()
        if state is None:
            self._start(0, 0, 0, MetricsTally())
            self._parts[1].write(self._csv.header())
        else:
            latencies = array("d")
            with open(self.dir / "latencies.f64", "rb") as f:
                latencies.fromfile(f, state["latencies"])
            tally = MetricsTally.from_state(state["tally"], latencies)
            self._start(state["items"], state["predictions"], state["scores"], tally)
        return self

    def _start(self, items: int, predictions: int, scores: int, tally: MetricsTally) -> None:
        self.next = self.kept = items
        self.tally = tally
        self._latencies_saved = len(tally.latencies)
        self._files = (_Part(self.dir / "predictions.jsonl", predictions),
                       _Part(self.dir / "scores.csv", scores))  # fmt: skip
        with open(self.dir / "latencies.f64", "ab") as f:
            f.truncate(8 * self._latencies_saved)

    def _saved_state(self) -> dict[str, Any] | None:
        """The saved prefix, when its files and the checkpoint still hold all of it."""
        try:
            state = json.loads((self.dir / "state.json").read_bytes())
            n = int(state["items"])
            sizes = {"predictions.jsonl": state["predictions"], "scores.csv": state["scores"],
                     "latencies.f64": 8 * state["latencies"]}  # fmt: skip
            fits = all((self.dir / name).stat().st_size >= size for name, size in sizes.items())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if state.get("version") != _STATE_VERSION or not fits or not 0 < n <= len(self.items):
            return None
        if state.get("last_hash") != int(self.items.hashes[n - 1]):
            return None  # other items than those written
        _, _, done = self.ck.index.locate(self.items.hashes[:n])
        return state if bool(done.all()) else None

    @property
    def _parts(self) -> tuple[_Part, _Part]:
        assert self._files is not None, "used inside its with block"
        return self._files

    def __exit__(self, *exc: object) -> None:
        if self._files is None:
            return
        try:
            self.save()  # an interruption keeps what was written
        finally:
            for part in self._files:
                part.close()
            self._files = None

    # -- feeding ----------------------------------------------------------------------

    def pending(self) -> tuple[Iterator[Item], int]:
        """The items to evaluate (not scored in the checkpoint), and how many they are.

        Items of the saved prefix are skipped; scored ones after it are written from the
        checkpoint as the stream passes them.
        """
        offsets, lengths, done = self.ck.index.locate(self.items.hashes)
        n_todo = int(len(done) - done.sum())
        start = self.next

        def stream() -> Iterator[Item]:
            items = islice(iter(self.items), start, None)  # the prefix is only read past
            for block in range(start, len(done), 4096):
                flags = done[block : block + 4096].tolist()
                for offset, (is_done, item) in enumerate(zip(flags, items, strict=False)):
                    at = block + offset
                    if not is_done:
                        self._position[item.id] = at
                        yield item
                    elif self._writing:
                        rec = next(self.ck.read([int(offsets[at])], [int(lengths[at])]))
                        self._offer(at, item, rec)

        return stream(), n_todo

    def accept(self, item: Item, rec: dict[str, Any]) -> None:
        """``item``'s record, now in the checkpoint: written once every earlier one is."""
        at = self._position.pop(item.id)
        if self._writing:
            self._offer(at, item, rec)

    def _offer(self, at: int, item: Item, rec: dict[str, Any]) -> None:
        if at != self.next:
            self._waiting[at] = (item, rec)
            if len(self._waiting) > MAX_WAITING:  # an item stuck long: finish() does the rest
                self._stop_writing()
            return
        self._write(item, rec)
        while self._writing and self.next in self._waiting:
            self._write(*self._waiting.pop(self.next))
        if self._since_save >= SAVE_EVERY:
            self.save()

    def _write(self, item: Item, rec: dict[str, Any]) -> None:
        if rec.get("agents"):  # their records are not kept in a saved tally
            self._stop_writing()
            return
        if rec.get("error") and self._saving:
            self.save()  # the prefix ends before it: a resume evaluates it again
            self._saving = False
        self._emit(item, rec)

    def _emit(self, item: Item, rec: dict[str, Any]) -> None:
        predictions, scores = self._parts
        predictions.write(prediction_line(self.prepared, item, rec))
        scores.write(self._csv.row(item, rec))
        self.tally.add(rec)
        if rec.get("error") and self.first_error is None:
            self.first_error = str(rec["error"])
        self.next += 1
        self._since_save += 1

    def _stop_writing(self) -> None:
        """From here on :meth:`finish` writes, from the checkpoint; the prefix is saved."""
        self.save()
        self._writing = self._saving = False
        self._waiting.clear()

    def save(self) -> None:
        """Make what is written so far the prefix a resume keeps."""
        if not self._saving or self._files is None or self.next == self.kept:
            return
        predictions, scores = self._parts
        predictions.flush()
        scores.flush()
        with open(self.dir / "latencies.f64", "r+b") as f:
            f.seek(8 * self._latencies_saved)
            self.tally.latencies[self._latencies_saved :].tofile(f)
        state = {
            "version": _STATE_VERSION, "items": self.next,
            "last_hash": int(self.items.hashes[self.next - 1]),
            "predictions": predictions.size, "scores": scores.size,
            "latencies": len(self.tally.latencies), "tally": self.tally.state(),
        }  # fmt: skip
        # Not fsynced: like the checkpoint's lines, a prefix outlives a killed process;
        # after a power cut a resume that finds less than it says starts again.
        atomic_write(self.dir / "state.json", json.dumps(state), fsync=False)
        self._latencies_saved = len(self.tally.latencies)
        self.kept = self.next
        self._since_save = 0

    # -- finishing --------------------------------------------------------------------

    def finish(self, wall_time_s: float) -> tuple[dict[str, Any], int]:
        """Write the items from :attr:`next` on from the checkpoint; rename into place.

        Returns the metrics and how many items errored; CellError when every item
        errored (the cell's old files stay).
        """
        self._waiting.clear()
        self._writing = self._saving = False
        if self.next < len(self.items):
            items = islice(iter(self.items), self.next, None)
            for item, rec in zip(items, stored_records(self.ck, self.items, self.next),
                                 strict=True):  # fmt: skip
                if rec["id"] != item.id:
                    raise CellError(
                        f"the checkpoint's record for {item.id} is {rec['id']}'s",
                        "evaluate the cell again with `evalledger run --force`",
                    )
                self._emit(item, rec)
        tally = self.tally
        errored = tally.n - tally.ns
        if errored == tally.n:
            raise CellError(f"all {tally.n} items errored; first: {self.first_error}")
        metrics = tally.metrics(self.prepared.price, wall_time_s)
        cell = self.prepared.cell
        files, self._files = self._parts, None
        for part in files:
            part.close(sync=True)
        for name, target in (("predictions.jsonl", cell.predictions_path),
                             ("scores.csv", cell.scores_path)):  # fmt: skip
            _move_into(self.dir / name, self.project.path(target))
        atomic_write(self.project.path(cell.metrics_path), json.dumps(metrics, indent=2) + "\n")
        shutil.rmtree(self.dir, ignore_errors=True)
        return metrics, errored


def _move_into(source: Path, target: Path) -> None:
    """Rename ``source`` onto ``target``; copied atomically when on two file systems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with AtomicLines(target) as out, open(source, "rb") as f:
            while chunk := f.read(1 << 20):
                out.write_bytes(chunk)  # passed the redaction point when written here
            out.commit()
        source.unlink()
        return
    fsync_dir(target.parent)
