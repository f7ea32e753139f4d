"""The configuration of a tracked experiment: typed fields plus free-form sections."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator

from evalledger.errors import ConfigError
from evalledger.project import Project

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ExperimentConfig"]


class ExperimentConfig(BaseModel):
    """An experiment's configuration: typed fields of a subclass, plus free-form sections.

    Subclass it for typed, validated hyperparameters, or pass any nested sections
    (``agents``, ``workflow``, ``tasks``, ``dataset``...) as keyword arguments::

        class GRPOConfig(ExperimentConfig):
            learning_rate: float = 5e-5
            lora_rank: int = 8

        GRPOConfig(learning_rate=1e-4, dataset={"name": "gsm8k", "train_size": 8000})

    It is written to the manifest (secret-looking values redacted) and hashed into the
    ``config_hash`` of the experiment's evaluation cells.

    ``strict=True`` (``GRPOConfig(strict=True, lr=1e-4)``), or ``strict_keys = True`` in a
    subclass, refuses keys that are not fields with a did-you-mean hint, so a typo such
    as ``learnig_rate`` is not stored silently beside the default it meant to change.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    strict_keys: ClassVar[bool] = False
    """Refuse keys that are not declared fields (for every instance of the class)."""

    def __init__(self, /, strict: bool = False, **data: Any) -> None:
        if strict and not self.strict_keys:
            _check_keys(type(self), data)
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if cls.strict_keys and isinstance(data, dict):
            _check_keys(cls, data)
        return data

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: declared fields and extra sections."""
        return self.model_dump(mode="json")

    @classmethod
    def from_experiment(cls, ref: str, project: Project | Path | str | None = None) -> Self:
        """The configuration an earlier experiment ran with, to run it again.

        ``ref`` is its ID or any unique part of one, found anywhere in the history of
        HEAD or in the working tree. Values that were redacted when it was recorded
        (secrets) stay ``<redacted>``: set them again before use.
        """
        from evalledger.ledger.history import Ledger

        proj = project if isinstance(project, Project) else Project.find(project)
        with Ledger(proj) as ledger:
            info = ledger.find_execution(ref)
            manifest = ledger.manifest(info)
        if manifest.kind != "experiment":
            raise ConfigError(
                f"{info.execution_id} is an evaluation matrix, not a tracked experiment",
                f"use `evalledger revert {info.execution_id}` to restore its params.yaml",
            )
        return cls.model_validate(manifest.config)


def _check_keys(cls: type[ExperimentConfig], data: dict[str, Any]) -> None:
    """A :class:`ConfigError` for the first key of ``data`` that is not a field of ``cls``."""
    fields = list(cls.model_fields)
    for key in data:
        if key not in cls.model_fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"known keys: {', '.join(fields)}" if fields else "declare it as a field"
            )  # fmt: skip
            raise ConfigError(f"unknown config key {key!r} for {cls.__name__}", hint)
