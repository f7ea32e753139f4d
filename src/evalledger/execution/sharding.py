"""Which items a shard (``evalledger run --shard i/N``) evaluates, and where it keeps them.

An item belongs to shard ``1 + int(sha256(item id), 16) % N``: the assignment depends
on the item's id alone, not on the order of the items, and adding items never moves
another one to a different shard.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalledger.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = ["Shard", "parse_shard", "shard_checkpoint", "shard_of"]

_SHARD_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, item_id: str) -> bool:
        """Whether the item with this id is this shard's."""
        return shard_of(item_id, self.count) == self.index

    def select(self, ids: Iterable[str]) -> list[str]:
        """The ids (in their order) that are this shard's."""
        return [i for i in ids if self.owns(i)]

    def split(self) -> list[Shard]:
        """Every shard of the same split, this one included, in order."""
        return [Shard(i, self.count) for i in range(1, self.count + 1)]


def shard_of(item_id: str, count: int) -> int:
    """The shard (1..count) that item ``item_id`` belongs to."""
    return 1 + int(hashlib.sha256(item_id.encode("utf-8")).hexdigest(), 16) % count


def parse_shard(text: str) -> Shard:
    """``"i/N"`` with 1 <= i <= N as a Shard; ConfigError otherwise."""
    match = _SHARD_RE.fullmatch(text)
    hint = "give --shard as I/N with 1 <= I <= N, e.g. --shard 1/3"
    if match is None:
        raise ConfigError(f"--shard {text!r} is not of the form I/N", hint)
    index, count = int(match[1]), int(match[2])
    if not 1 <= index <= count:
        raise ConfigError(f"--shard {text!r}: I must be between 1 and N", hint)
    return Shard(index, count)


def shard_checkpoint(base: Path, shard: Shard) -> Path:
    """The shard's own item checkpoint beside the cell's (``NAME.shard-I-of-N.jsonl``)."""
    return base.with_name(f"{base.stem}.shard-{shard.index}-of-{shard.count}{base.suffix}")
