"""The interface every scorer implements. Scorers register under ``evalledger.scorers``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from evalledger.models.base import AdapterSettings, validate_settings

if TYPE_CHECKING:
    from evalledger.benchmarks.base import Item
    from evalledger.models.base import Model

__all__ = ["ItemScore", "Scorer"]


@dataclass(frozen=True)
class ItemScore:
    """How one answer scored."""

    correct: bool
    """Whether the answer counts as right (accuracy)."""
    score: float
    """A score in [0, 1]; 1.0/0.0 for binary scorers."""
    extracted: str | None = None
    """The answer pulled out of the output, if any."""
    partial: bool = False
    """Right within tolerance (partial accuracy), e.g. a number within 10%."""
    formatted: bool = False
    """The output had the expected format, e.g. ``<answer>...</answer>`` (format accuracy)."""
    detail: str | None = None
    """Free text from the scorer, e.g. an LLM judge's verdict."""


class Scorer(ABC):
    """Scores one output against its item.

    A params.yaml benchmark entry selects a scorer with ``scorer: NAME`` or
    ``scorer: {name: NAME, <settings>}``. ``name`` is the entry-point name.
    """

    Settings: ClassVar[type[AdapterSettings]] = AdapterSettings
    #: Set on scorers that call a model (LLM-as-judge); the engine binds it via ``bind``.
    needs_model: ClassVar[bool] = False

    def __init__(self, name: str, settings: AdapterSettings) -> None:
        self.name = name
        self.settings = settings

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any], where: str = "scorer") -> Self:
        """Build the scorer from its settings (without ``name:``)."""
        return cls(name, validate_settings(cls.Settings, config, where))

    @abstractmethod
    def score(self, item: Item, output: str) -> ItemScore:
        """Score ``output`` for ``item``."""

    async def ascore(self, item: Item, output: str) -> ItemScore:
        """Async scoring; scorers that call models override this."""
        return self.score(item, output)

    def bind(self, model: Model) -> None:  # noqa: B027 - only judges need it
        """Give a model-calling scorer its model."""

    @property
    def tag(self) -> str | None:
        """A short label for experiment names (the judge's model name), or None."""
        return None
