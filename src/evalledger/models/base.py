"""The interface every model adapter implements."""

from __future__ import annotations

import asyncio
from abc import ABC
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import Field, field_validator

# Re-exported: plugins written against this module keep working.
from evalledger.plugin_types import AdapterSettings, Completion, validate_settings

if TYPE_CHECKING:
    from evalledger.plugin_types import Item

__all__ = [
    "AdapterSettings",
    "Completion",
    "Model",
    "ModelSettings",
    "Price",
    "validate_settings",
]


class Price(AdapterSettings):
    """Price per million tokens, in any currency you like (reported as ``cost``)."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)


class ModelSettings(AdapterSettings):
    """Settings every model adapter accepts."""

    max_concurrency: int = Field(default=1, ge=1)
    """Items of one cell in flight at once (and, for HTTP adapters, per endpoint)."""
    price: Price | None = None
    """Price table for cost metrics."""
    resources: dict[str, float] = {}
    """What one task of this model needs on a Ray cluster (``run --executor ray``):
    ``num_cpus`` (default 1), ``num_gpus``, ``memory`` (bytes) or a custom resource.
    The local executor ignores it."""

    @field_validator("resources")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if v < 0]
        if bad:
            raise ValueError(f"{bad[0]} must not be negative")
        return value


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

    def cache_identity(self) -> dict[str, Any] | None:
        """What names this model's answers in the response cache; None: never cached.

        Paid or slow adapters return e.g. ``{"adapter": "openai", "url": ..., "model":
        ...}``; a model whose answers may change between calls with the same request
        (local code, a baseline that is instant anyway) returns None.
        """
        return None

    def cache_request(self, prompt: str, decoding: dict[str, Any]) -> dict[str, Any]:
        """The exact request this model would make for ``prompt`` (the cache key's rest)."""
        return {"prompt": prompt, "decoding": decoding}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or other resources."""
