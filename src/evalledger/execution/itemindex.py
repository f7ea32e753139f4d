"""Item ids as 64-bit hashes, and where each item's record sits in a checkpoint.

A cell of a million items is streamed (:mod:`evalledger.execution.streaming`): its items
are read again on each pass rather than held, and its checkpoint records are read back
by offset. What stays in memory is 8 bytes an item (its id's hash, in item order) and
24 bytes a record (hash, offset, length), in numpy arrays.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    import numpy as np

__all__ = ["RecordIndex", "id_hash", "id_hashes"]

#: The arrays of a RecordIndex, each saved to its own file (``index._hashes`` ...).
_ARRAYS = ("_hashes", "_offsets", "_lengths", "_scored")


def id_hash(item_id: str) -> int:
    """A stable signed 64-bit hash of an item id (the same in every process)."""
    digest = hashlib.blake2b(item_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def id_hashes(ids: Iterable[str]) -> np.ndarray:
    """:func:`id_hash` of each id, as an int64 array in the same order."""
    import numpy as np

    return np.frombuffer(array("q", map(id_hash, ids)), dtype=np.int64)


class RecordIndex:
    """Where the last record of each item is in a checkpoint file, and whether it scored.

    Records are added in file order; a later record of an item replaces the earlier one,
    as when the checkpoint is read whole.
    """

    def __init__(self) -> None:
        self._hashes = array("q")
        self._offsets = array("q")
        self._lengths = array("q")
        self._scored = array("b")
        self._sorted: tuple[np.ndarray, ...] | None = None

    def add(self, item_id: str, offset: int, length: int, scored: bool) -> None:
        """Note a record of ``item_id`` at ``offset`` (``length`` bytes, newline excluded)."""
        self._hashes.append(id_hash(item_id))
        self._offsets.append(offset)
        self._lengths.append(length)
        self._scored.append(scored)
        self._sorted = None

    def __len__(self) -> int:
        return len(self._hashes)

    def span(self, i: int) -> tuple[int, int]:
        """The offset and length of the ``i``-th record added."""
        return self._offsets[i], self._lengths[i]

    def save(self, folder: Path, start: int) -> None:
        """Write the records from ``start`` on after the first ``start`` in ``folder``.

        Four files of fixed-size values, one per array; what lies past ``start`` in them
        (a save that a kill cut short) is overwritten.
        """
        for name in _ARRAYS:
            values: array[int] = getattr(self, name)
            with open(folder / f"index{name}", "ab") as f:
                f.truncate(start * values.itemsize)
                values[start:].tofile(f)

    @classmethod
    def load(cls, folder: Path, n: int) -> RecordIndex:
        """The first ``n`` records :meth:`save` wrote to ``folder``; OSError or EOFError."""
        index = cls()
        for name in _ARRAYS:
            with open(folder / f"index{name}", "rb") as f:
                getattr(index, name).fromfile(f, n)
        return index

    def copy(self) -> RecordIndex:
        """An index of the same records that adds to its own arrays."""
        other = RecordIndex()
        other._hashes, other._offsets = array("q", self._hashes), array("q", self._offsets)
        other._lengths, other._scored = array("q", self._lengths), array("b", self._scored)
        return other

    def _last_per_item(self) -> tuple[np.ndarray, ...]:
        """Sorted unique hashes with the offset, length and scored flag of the last record."""
        if self._sorted is None:
            import numpy as np

            hashes = np.frombuffer(self._hashes, dtype=np.int64)
            order = np.lexsort((np.arange(len(hashes)), hashes))  # by hash, then file order
            ordered = hashes[order]
            last = np.ones(len(ordered), dtype=bool)
            last[:-1] = ordered[1:] != ordered[:-1]
            keep = order[last]
            self._sorted = (
                hashes[keep],
                np.frombuffer(self._offsets, dtype=np.int64)[keep],
                np.frombuffer(self._lengths, dtype=np.int64)[keep],
                np.frombuffer(self._scored, dtype=np.int8)[keep].astype(bool),
            )
        return self._sorted

    def scored_count(self) -> int:
        """Items whose last record scored."""
        return int(self._last_per_item()[3].sum()) if len(self) else 0

    def locate(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each hash: the offset and length of its record (-1 if none), and if scored."""
        import numpy as np

        known, offsets, lengths, scored = self._last_per_item()
        if not len(known):
            missing = np.full(len(hashes), -1, dtype=np.int64)
            return missing, missing.copy(), np.zeros(len(hashes), dtype=bool)
        pos = np.searchsorted(known, hashes).clip(0, len(known) - 1)
        found = known[pos] == hashes
        return (
            np.where(found, offsets[pos], -1),
            np.where(found, lengths[pos], -1),
            found & scored[pos],
        )
