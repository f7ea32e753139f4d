"""The interface every model adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from evalledger.errors import ConfigError

if TYPE_CHECKING:
    from evalledger.benchmarks.base import Item

__all__ = ["AdapterSettings", "Completion", "Model", "validate_settings"]


@dataclass(frozen=True)
class Completion:
    """What a model returned for one prompt."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class AdapterSettings(BaseModel):
    """Base of adapter settings: unknown keys in params.yaml are errors, not silence."""

    model_config = ConfigDict(extra="forbid")


def validate_settings(
    cls: type[AdapterSettings], settings: dict[str, Any], where: str
) -> AdapterSettings:
    """Validate ``settings`` with a one-line error naming the key and the valid ones."""
    try:
        return cls.model_validate(settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = ", ".join(cls.model_fields)
            raise ConfigError(f"{where}: unknown setting {loc!r}; known: {known}") from None
        raise ConfigError(f"{where}.{loc}: {err['msg']}") from None


class Model(ABC):
    """A model that answers prompts. Subclasses are registered under ``evalledger.models``."""

    Settings: ClassVar[type[AdapterSettings]] = AdapterSettings

    def __init__(self, name: str, settings: AdapterSettings) -> None:
        self.name = name
        self.settings = settings

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any]) -> Self:
        """Build the adapter from its params.yaml entry (without ``adapter:``)."""
        return cls(name, validate_settings(cls.Settings, config, f"models.{name}"))

    @abstractmethod
    def generate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """Answer one prompt. ``item`` is the benchmark item; ``decoding`` its settings."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or other resources."""
