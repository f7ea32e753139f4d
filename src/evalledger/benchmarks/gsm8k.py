"""GSM8K from a local JSONL file in its original format."""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

from pydantic import Field

from evalledger.benchmarks.base import Benchmark
from evalledger.benchmarks.files import data_file, iter_jsonl
from evalledger.errors import ConfigError
from evalledger.plugin_types import AdapterSettings, Item, ItemScore
from evalledger.scorers.match import answer_is, compare_numeric, has_answer_tag, numbers

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["GSM8KBenchmark", "GSM8KSettings", "gsm8k_target"]

_FINAL = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)


def gsm8k_target(answer: str) -> str:
    """The final answer after ``####``, without thousands separators."""
    found = _FINAL.findall(answer)
    if not found:
        raise ValueError("no '#### <answer>' line")
    return str(found[-1]).replace(",", "").strip()


class GSM8KSettings(AdapterSettings):
    """Settings of the ``gsm8k`` loader."""

    path: str = Field(min_length=1)
    """The JSONL file (``{"question": ..., "answer": "...\\n#### 72"}`` per line)."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N items."""


class GSM8KBenchmark(Benchmark):
    """``{"question": ..., "answer": "...#### 72"}`` lines (``loader: gsm8k``)."""

    Settings = GSM8KSettings
    settings: GSM8KSettings

    def data_files(self) -> list[Path]:
        """The JSONL file."""
        return [data_file(self, self.settings.path)]

    def load(self) -> list[Item]:
        """Questions as inputs, the number after ``####`` as targets."""
        where = f"benchmarks.{self.name}"
        path = data_file(self, self.settings.path)
        items: list[Item] = []
        for n, row in itertools.islice(iter_jsonl(path, where), self.settings.limit):
            try:
                target = gsm8k_target(row["answer"])
                question = row["question"]
                if not isinstance(question, str):
                    raise TypeError("question is not a string")
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"{where}: {path.name} line {n} is not a GSM8K record "
                    f"({type(exc).__name__}: {exc})",
                    'each line is {"question": "...", "answer": "...\\n#### <number>"}',
                ) from None
            items.append(Item(id=f"gsm8k-{len(items):05d}", input=question, target=target))
        return items

    def check(self, item: Item, text: str) -> ItemScore:
        """Numeric match, as the default ``check``, with "1,234" and "$5" understood.

        The answer is the number after ``answer is`` or ``####`` if the output says one,
        else its last number; formatted when it says one or has an ``<answer>`` tag.
        Correct when equal; partial within 10%.
        """
        said = answer_is(text)
        if said is None:
            final = _FINAL.findall(text)
            said = numbers(final[-1])[0] if final and numbers(final[-1]) else None
        formatted = said is not None or has_answer_tag(text)
        found = numbers(text)
        extracted = said if said is not None else (found[-1] if found else None)
        if extracted is None:
            return ItemScore(correct=False, score=0.0, formatted=formatted)
        correct, partial, note = compare_numeric(extracted, item.target)
        return ItemScore(correct, float(correct), extracted, partial, formatted, note)
