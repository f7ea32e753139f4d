"""Cells too large to hold: items read again on each pass, records read back by offset.

A cell of more than :data:`STREAM_ABOVE` items is not loaded into memory.
:func:`scan_items` reads the benchmark once (:meth:`Benchmark.iter_items`) to count
its items, check their ids and keep each id's 64-bit hash; the evaluation and the
writing of outputs each read the items again, in order. The checkpoint keeps an index
of where each record is instead of the records (``Checkpoint(keep_records=False)``).
So memory does not grow with the items but for 8 bytes an item and 24 a record.
Smaller cells are held in a list, as ever: the same files either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalledger.errors import CellError
from evalledger.execution.itemindex import id_hash

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import numpy as np

    from evalledger.execution.checkpoint import Checkpoint
    from evalledger.plugin_types import Item

__all__ = ["STREAM_ABOVE", "StreamedItems", "pending_items", "scan_items", "stored_records"]

#: Cells with more items than this are streamed; at or below, their items are held.
STREAM_ABOVE = 50_000
#: Items hashed and looked up at a time.
_BATCH = 4096


@dataclass(frozen=True)
class StreamedItems:
    """A cell's items, read from ``source`` on each pass; their id hashes, in order."""

    source: Callable[[], Iterator[Item]]
    hashes: np.ndarray
    has_clusters: bool

    def __iter__(self) -> Iterator[Item]:
        return self.source()

    def __len__(self) -> int:
        return len(self.hashes)


def scan_items(
    source: Callable[[], Iterator[Item]], what: str, limit: int | None = None
) -> list[Item] | StreamedItems:
    """The items: a list when there are at most ``limit``, else a stream of them.

    ``limit`` defaults to :data:`STREAM_ABOVE`. CellError when there are none, or two
    share an id (checked exactly: a hash collision is confirmed on the ids themselves
    before it is called a duplicate).
    """
    limit = STREAM_ABOVE if limit is None else limit
    held: list[Item] | None = []
    hashes: list[int] = []  # filled once the items are too many to hold
    clusters = False
    for item in source():
        clusters = clusters or "cluster" in item.meta
        if held is None:
            hashes.append(id_hash(item.id))
            continue
        held.append(item)
        if len(held) > limit:
            hashes = [id_hash(it.id) for it in held]
            held = None
    if held is not None:
        if not held:
            raise CellError(f"{what} has no items")
        if len({it.id for it in held}) != len(held):
            raise CellError(f"{what} has duplicate item ids")
        return held
    import numpy as np  # only for a streamed cell: a run of small cells never loads it

    in_order = np.array(hashes, dtype=np.int64)
    del hashes
    ordered = np.sort(in_order)
    twice = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if twice:
        seen: set[str] = set()
        for item in source():
            if id_hash(item.id) in twice:
                if item.id in seen:
                    raise CellError(f"{what} has duplicate item ids")
                seen.add(item.id)
    return StreamedItems(source, in_order, clusters)


def pending_items(ck: Checkpoint, items: list[Item] | StreamedItems) -> tuple[Iterator[Item], int]:
    """The items ``ck`` holds no scored record of, and how many they are."""
    if not isinstance(items, StreamedItems):
        scored = ck.scored
        todo = [it for it in items if it.id not in scored]
        return iter(todo), len(todo)
    _, _, done = ck.index.locate(items.hashes)

    def todo_stream() -> Iterator[Item]:
        for item, is_done in zip(items, done.tolist(), strict=True):
            if not is_done:
                yield item

    return todo_stream(), int(len(done) - done.sum())


def stored_records(
    ck: Checkpoint, items: StreamedItems, start: int = 0
) -> Iterator[dict[str, object]]:
    """Each item's record from the checkpoint, in item order from ``start`` (all there)."""
    offsets, lengths, _ = ck.index.locate(items.hashes[start:])
    if (offsets < 0).any():
        raise CellError(f"{int((offsets < 0).sum())} items have no record in the checkpoint")
    for at in range(0, len(offsets), _BATCH):
        yield from ck.read(offsets[at : at + _BATCH].tolist(),
                           lengths[at : at + _BATCH].tolist())  # fmt: skip
