"""The interface every scorer implements. Scorers register under ``evalledger.scorers``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Self

# ItemScore is re-exported: plugins written against this module keep working.
from evalledger.plugin_types import AdapterSettings, ItemScore, validate_settings

if TYPE_CHECKING:
    from evalledger.models.base import Model
    from evalledger.plugin_types import Item

__all__ = ["ItemScore", "Scorer"]


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
