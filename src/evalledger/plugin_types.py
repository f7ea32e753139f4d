"""The types that model adapters, benchmarks and scorers share, below all three.

A benchmark yields :class:`Item` s, a model answers each with a :class:`Completion`, and a
scorer turns the answer into an :class:`ItemScore`. Every plugin's settings are an
:class:`AdapterSettings` model checked by :func:`validate_settings`. Living here, below
``models/``, ``benchmarks/`` and ``scorers/``, they let those packages import each other
in one direction only; each package's ``base`` module re-exports the names it used to hold.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from evalledger.errors import ConfigError

__all__ = ["AdapterSettings", "Completion", "Item", "ItemScore", "validate_settings"]


@dataclass(frozen=True)
class Item:
    """One benchmark item. ``id`` is stable so two runs can be paired item by item."""

    id: str
    input: str
    target: str
    category: str = ""
    choices: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """What a model returned for one prompt."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


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


class AdapterSettings(BaseModel):
    """Base of plugin settings: unknown keys in params.yaml are errors, not silence."""

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
