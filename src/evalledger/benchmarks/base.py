"""The interface every benchmark implements: load items, build prompts, check answers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

from evalledger.models.base import AdapterSettings, validate_settings
from evalledger.scorers.base import ItemScore

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DEFAULT_TEMPLATE", "Benchmark", "Item", "ItemScore"]

DEFAULT_TEMPLATE = "{input}"


@dataclass(frozen=True)
class Item:
    """One benchmark item. ``id`` is stable so two runs can be paired item by item."""

    id: str
    input: str
    target: str
    category: str = ""
    choices: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Benchmark(ABC):
    """A benchmark. Subclasses are registered under ``evalledger.benchmarks``."""

    Settings: ClassVar[type[AdapterSettings]] = AdapterSettings

    def __init__(self, name: str, settings: AdapterSettings, root: Path | None = None) -> None:
        self.name = name
        self.settings = settings
        self.root = root
        """The project root; relative data paths resolve against it."""

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any], root: Path | None = None) -> Self:
        """Build the benchmark from its params.yaml entry (without ``loader:``/``scorer:``)."""
        return cls(name, validate_settings(cls.Settings, config, f"benchmarks.{name}"), root)

    def resolve(self, path: str) -> Path:
        """A data path from params.yaml, relative to the project root."""
        from pathlib import Path

        p = Path(path).expanduser()
        return p if p.is_absolute() or self.root is None else self.root / p

    @abstractmethod
    def load(self) -> list[Item]:
        """All items, in a stable order."""

    def prompt(self, item: Item, template: str | None = None) -> str:
        """The prompt for ``item``; ``template`` comes from the prompt_set axis."""
        return (template or DEFAULT_TEMPLATE).replace("{input}", item.input)

    def extract(self, text: str) -> tuple[str | None, bool]:
        """The answer in ``text`` and whether it was in the expected format.

        The answer is the number after ``answer is``, else the last number; the format
        is ``answer is N`` or an ``<answer>`` tag.
        """
        from evalledger.scorers.match import answer_is, has_answer_tag, numbers

        said = answer_is(text)
        if said is not None:
            return said, True
        found = numbers(text)
        return (found[-1] if found else None), has_answer_tag(text)

    def check(self, item: Item, text: str) -> ItemScore:
        """Score one answer when params.yaml names no scorer.

        The default: exact numeric match, within 10% for partial credit (text targets
        compare as normalised text). Custom benchmarks override ``extract`` and ``check``,
        or name a scorer in params.yaml.
        """
        from evalledger.scorers.match import compare_exact, compare_numeric, number

        extracted, formatted = self.extract(text)
        if extracted is None:
            return ItemScore(correct=False, score=0.0, formatted=formatted)
        if number(item.target) is None:
            ok, _ = compare_exact(extracted, item.target)
            return ItemScore(ok, float(ok), extracted, partial=ok, formatted=formatted)
        correct, partial, note = compare_numeric(extracted, item.target)
        return ItemScore(correct, float(correct), extracted, partial, formatted, note)
