"""The configuration of a tracked experiment: typed fields plus free-form sections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict

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
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

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
