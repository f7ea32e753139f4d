"""The types that model adapters, benchmarks and scorers share, below all three.

A benchmark yields :class:`Item` s, a model answers each with a :class:`Completion`, and a
scorer turns the answer into an :class:`ItemScore`. A multi-agent system's completion
may carry one :class:`AgentRecord` per agent that ran on the item. Every plugin's settings are an
:class:`AdapterSettings` model checked by :func:`validate_settings`. Living here, below
``models/``, ``benchmarks/`` and ``scorers/``, they let those packages import each other
in one direction only; each package's ``base`` module re-exports the names it used to hold.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evalledger.errors import ConfigError, EvalLedgerError
from evalledger.names import AXIS_HINT, is_name

__all__ = [
    "AGENT_FIELDS",
    "SAMPLE_SEP",
    "AdapterSettings",
    "AgentRecord",
    "AgentRecordError",
    "Completion",
    "DecodingSettings",
    "Item",
    "ItemScore",
    "PromptSetSettings",
    "SamplingSettings",
    "agent_records",
    "question_of",
    "validate_settings",
]


@dataclass(frozen=True)
class Item:
    """One benchmark item. ``id`` is stable so two runs can be paired item by item."""

    id: str
    input: str
    target: str
    category: str = ""
    choices: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


#: Sample ``s`` of a repeated item ``q`` is evaluated as the item ``q#s``.
SAMPLE_SEP = "#"


def question_of(item_id: str) -> tuple[str, int | None]:
    """``(question id, sample)`` of a sample item's id; ``(id, None)`` for a plain one."""
    head, sep, tail = item_id.rpartition(SAMPLE_SEP)
    if sep and tail.isdigit():
        return head, int(tail)
    return item_id, None


class AgentRecordError(EvalLedgerError):
    """A model returned a malformed per-agent record: its item is recorded as errored."""


#: The keys of one agent record, as a model returns it and as an item record keeps it.
AGENT_FIELDS = ("name", "success", "latency_ms", "cost", "prompt_tokens", "completion_tokens")


@dataclass(frozen=True)
class AgentRecord:
    """What one agent of a multi-agent system did for one item; checked when made."""

    name: str
    success: bool
    latency_ms: float | None = None
    cost: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def __post_init__(self) -> None:
        where = f"agent {self.name!r}" if isinstance(self.name, str) else "agent"
        if not is_name(self.name, dots=False):  # a dot would split agents.<name>.<metric>
            raise AgentRecordError(f"{where}: name is not allowed; {AXIS_HINT}")
        if not isinstance(self.success, bool):
            raise AgentRecordError(f"{where}: success must be true or false{_shown(self.success)}")
        for key in ("latency_ms", "cost"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AgentRecordError(f"{where}: {key} must be a number{_shown(value)}")
            if not 0 <= value < float("inf"):
                raise AgentRecordError(f"{where}: {key} must be 0 or more{_shown(value)}")
        for key in ("prompt_tokens", "completion_tokens"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 0):  # fmt: skip
                raise AgentRecordError(f"{where}: {key} must be an integer >= 0{_shown(value)}")

    def to_json(self) -> dict[str, Any]:
        """The record as an item record keeps it (every key of :data:`AGENT_FIELDS`)."""
        return {key: getattr(self, key) for key in AGENT_FIELDS}


def agent_records(value: Any) -> tuple[AgentRecord, ...]:
    """Per-agent records from a list of mappings (or AgentRecords), checked one by one.

    A missing name or success, an unknown key, a value of the wrong type or a negative
    one, and an agent named twice for one item are :class:`AgentRecordError` s naming
    the agent and the field.
    """
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise AgentRecordError(f"agents must be a list of records{_shown(value)}")
    out: list[AgentRecord] = []
    for i, rec in enumerate(value):
        if isinstance(rec, dict):
            unknown = [str(k) for k in rec if k not in AGENT_FIELDS]
            if unknown:
                raise AgentRecordError(f"agents[{i}]: unknown key {unknown[0]!r}; "
                                       f"known: {', '.join(AGENT_FIELDS)}")  # fmt: skip
            for key in ("name", "success"):
                if key not in rec:
                    raise AgentRecordError(f"agents[{i}]: {key} is missing")
            rec = AgentRecord(**rec)
        elif not isinstance(rec, AgentRecord):
            raise AgentRecordError(f"agents[{i}] must be a mapping{_shown(rec)}")
        if any(r.name == rec.name for r in out):
            raise AgentRecordError(f"agent {rec.name!r} is named twice for one item")
        out.append(rec)
    return tuple(out)


@dataclass(frozen=True)
class Completion:
    """What a model returned for one prompt; ``agents`` for a multi-agent system."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    agents: tuple[AgentRecord, ...] = ()


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


class PromptSetSettings(AdapterSettings):
    """An entry of ``prompt_sets:``: the template that wraps each benchmark input."""

    template: str = "{input}"
    """``{input}`` is replaced by the item's input; a template without it drops the item."""
    from_: Literal["files"] | None = Field(default=None, alias="from")
    """``files``: the prompts are ``prompts/<set>[/<condition>]/{system,user}.md``."""

    @field_validator("template")
    @classmethod
    def _has_input(cls, value: str) -> str:
        if "{input}" not in value:
            raise ValueError("the template must contain {input}")
        return value


class SamplingSettings(AdapterSettings):
    """The common sampling settings, with their ranges: a decoding's and a model's."""

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stop: list[str] | str | None = None


class DecodingSettings(SamplingSettings):
    """An entry of ``decodings:``: sampling settings passed to the model with each call.

    The common ones are checked; any other key goes to the adapter as given.
    """

    model_config = ConfigDict(extra="allow")


def validate_settings(
    cls: type[AdapterSettings], settings: dict[str, Any], where: str
) -> AdapterSettings:
    """Validate ``settings`` with a one-line error naming the key and the valid ones.

    An unknown key lists the known ones (with a did-you-mean); a bad value says what was
    expected (a type, a range such as ``less than or equal to 1``, a choice) and what came.
    """
    import difflib

    try:
        return cls.model_validate(settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            fields = list(_model_at(cls, err["loc"][:-1]).model_fields)
            close = difflib.get_close_matches(str(err["loc"][-1]), fields, n=1, cutoff=0.6)
            raise ConfigError(
                f"{where}: unknown setting {loc!r}; known: {', '.join(fields)}",
                f"did you mean {close[0]!r}?" if close else None,
            ) from None
        msg = str(err["msg"])
        if err["type"] not in ("missing", "value_error"):  # a validator's own words say it
            msg += _shown(err.get("input"))
        raise ConfigError(f"{where}{'.' + loc if loc else ''}: {msg}") from None


def _shown(value: Any) -> str:
    """``, got <value>`` for a scalar that is safe and short enough to quote; else ""."""
    from evalledger.redact import contains_secret

    if not isinstance(value, str | int | float | bool) and value is not None:
        return ""
    text = repr(value)
    if contains_secret(text):
        return ""
    return f", got {text if len(text) <= 40 else text[:37] + '...'}"


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
