"""The interface every benchmark implements: load items, build prompts, check answers."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from evalledger.models.base import AdapterSettings, validate_settings

__all__ = ["DEFAULT_TEMPLATE", "Benchmark", "Item", "ItemScore"]

DEFAULT_TEMPLATE = "{input}"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ANSWER_IS = re.compile(r"answer is\s*:?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    """One benchmark item. ``id`` is stable so two runs can be paired item by item."""

    id: str
    input: str
    target: str
    category: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemScore:
    """How one answer scored."""

    correct: bool
    score: float
    extracted: str | None = None
    partial: bool = False
    formatted: bool = False


class Benchmark(ABC):
    """A benchmark. Subclasses are registered under ``evalledger.benchmarks``."""

    Settings: ClassVar[type[AdapterSettings]] = AdapterSettings

    def __init__(self, name: str, settings: AdapterSettings) -> None:
        self.name = name
        self.settings = settings

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any]) -> Self:
        """Build the benchmark from its params.yaml entry (without ``loader:``)."""
        return cls(name, validate_settings(cls.Settings, config, f"benchmarks.{name}"))

    @abstractmethod
    def load(self) -> list[Item]:
        """All items, in a stable order."""

    def prompt(self, item: Item, template: str | None = None) -> str:
        """The prompt for ``item``; ``template`` comes from the prompt_set axis."""
        return (template or DEFAULT_TEMPLATE).replace("{input}", item.input)

    def extract(self, text: str) -> tuple[str | None, bool]:
        """The answer in ``text`` and whether it was in the expected format."""
        m = _ANSWER_IS.search(text)
        if m:
            return m.group(1), True
        numbers = _NUMBER.findall(text)
        return (numbers[-1] if numbers else None), False

    def check(self, item: Item, text: str) -> ItemScore:
        """Score one answer: exact numeric match, and within 10% for partial credit."""
        extracted, formatted = self.extract(text)
        if extracted is None:
            return ItemScore(correct=False, score=0.0, formatted=formatted)
        try:
            got, want = float(extracted), float(item.target)
        except ValueError:
            ok = extracted.strip() == item.target.strip()
            return ItemScore(ok, float(ok), extracted, partial=ok, formatted=formatted)
        correct = got == want
        partial = correct or abs(got - want) <= 0.1 * abs(want)
        return ItemScore(correct, float(correct), extracted, partial=partial, formatted=formatted)
