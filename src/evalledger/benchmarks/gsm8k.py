"""GSM8K from a local JSONL file in its original format."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field

from evalledger.benchmarks.base import Benchmark, Item
from evalledger.benchmarks.files import read_jsonl
from evalledger.errors import ConfigError
from evalledger.models.base import AdapterSettings

if TYPE_CHECKING:
    from evalledger.scorers.base import ItemScore

__all__ = ["GSM8KBenchmark", "gsm8k_target"]

_FINAL = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)


def gsm8k_target(answer: str) -> str:
    """The final answer after ``####``, without thousands separators."""
    m = _FINAL.search(answer)
    if m is None:
        raise ValueError("no '#### <answer>' line")
    return m.group(1).replace(",", "").strip()


class GSM8KSettings(AdapterSettings):
    """Settings of the ``gsm8k`` loader."""

    path: str
    limit: int | None = Field(default=None, ge=1)


class GSM8KBenchmark(Benchmark):
    """``{"question": ..., "answer": "...#### 72"}`` lines (``loader: gsm8k``)."""

    Settings = GSM8KSettings
    settings: GSM8KSettings

    def load(self) -> list[Item]:
        """Questions as inputs, the number after ``####`` as targets."""
        path = self.resolve(self.settings.path)
        if not path.exists():
            raise ConfigError(f"benchmarks.{self.name}: file {self.settings.path} not found")
        where = f"benchmarks.{self.name}"
        items: list[Item] = []
        for n, row in enumerate(read_jsonl(path, where), 1):
            try:
                target = gsm8k_target(row["answer"])
                question = str(row["question"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"{where}: {path.name} record {n} is not a GSM8K record "
                    f"({type(exc).__name__}: {exc})"
                ) from None
            items.append(Item(id=f"gsm8k-{n - 1:05d}", input=question, target=target))
            if self.settings.limit and len(items) >= self.settings.limit:
                break
        return items

    def check(self, item: Item, text: str) -> ItemScore:
        """Numeric match of the last number (or ``answer is N``) against the target."""
        from evalledger.scorers.match import NumericMatch, NumericSettings

        return NumericMatch("numeric", NumericSettings()).score(item, text)
