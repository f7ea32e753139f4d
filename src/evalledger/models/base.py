"""The interface every model adapter implements."""

from __future__ import annotations

import asyncio
import typing
from abc import ABC
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalledger.errors import ConfigError

if TYPE_CHECKING:
    from evalledger.benchmarks.base import Item

__all__ = [
    "AdapterSettings",
    "Completion",
    "Model",
    "ModelSettings",
    "Price",
    "validate_settings",
]


@dataclass(frozen=True)
class Completion:
    """What a model returned for one prompt."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class AdapterSettings(BaseModel):
    """Base of plugin settings: unknown keys in params.yaml are errors, not silence."""

    model_config = ConfigDict(extra="forbid")


class Price(AdapterSettings):
    """Price per million tokens, in any currency you like (reported as ``cost``)."""

    input: float = 0.0
    output: float = 0.0


class ModelSettings(AdapterSettings):
    """Settings every model adapter accepts."""

    max_concurrency: int = Field(default=1, ge=1)
    """Items of one cell in flight at once (and, for HTTP adapters, per endpoint)."""
    price: Price | None = None
    """Price table for cost metrics."""


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
            known = ", ".join(_model_at(cls, err["loc"][:-1]).model_fields)
            raise ConfigError(f"{where}: unknown setting {loc!r}; known: {known}") from None
        raise ConfigError(f"{where}{'.' + loc if loc else ''}: {err['msg']}") from None


def _model_at(cls: type[BaseModel], path: tuple[int | str, ...]) -> type[BaseModel]:
    """The (nested) settings model that a validation error's location points into."""
    model = cls
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            break
        candidates = typing.get_args(field.annotation) or (field.annotation,)
        nested = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if nested is None:
            break
        model = nested
    return model


class Model(ABC):
    """A model that answers prompts. Subclasses are registered under ``evalledger.models``.

    Implement ``agenerate`` (async, preferred) or ``generate`` (sync; it then runs in a
    worker thread so it does not block other cells).
    """

    Settings: ClassVar[type[ModelSettings]] = ModelSettings
    settings: ModelSettings

    def __init__(self, name: str, settings: ModelSettings) -> None:
        self.name = name
        self.settings = settings

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any]) -> Self:
        """Build the adapter from its params.yaml entry (without ``adapter:``)."""
        settings = validate_settings(cls.Settings, config, f"models.{name}")
        assert isinstance(settings, ModelSettings)
        return cls(name, settings)

    @property
    def max_concurrency(self) -> int:
        """How many items of a cell may be in flight at once."""
        return self.settings.max_concurrency

    def generate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """Answer one prompt synchronously. ``decoding`` comes from the decoding axis."""
        name = type(self).__name__
        raise NotImplementedError(f"{name} implements neither generate nor agenerate")

    async def agenerate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """Answer one prompt; by default runs ``generate`` in a worker thread."""
        return await asyncio.to_thread(self.generate, prompt, item, decoding)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or other resources."""
