"""The tracked runs new at a diff's B side, with their checkpoints, and how they render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evalledger.analysis.formatting import md_code, md_text

__all__ = ["CheckpointRef", "ExperimentRef", "markdown_lines"]


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint a run recorded: path, content hash, and the step it was logged at."""

    path: str
    sha256: str
    size: int
    step: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "step": self.step}


@dataclass(frozen=True)
class ExperimentRef:
    """A tracked run whose manifest is new at B."""

    id: str
    name: str | None
    checkpoints: list[CheckpointRef] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"id": self.id, "name": self.name,
                "checkpoints": [c.to_json() for c in self.checkpoints]}  # fmt: skip


def markdown_lines(experiments: list[ExperimentRef]) -> list[str]:
    """The pull-request comment's "Experiments" section (nothing when there are none)."""
    if not experiments:
        return []
    lines = ["#### Experiments", "", "| experiment | name | checkpoint | sha256 |",
             "|---|---|---|---|"]  # fmt: skip
    for exp in experiments:
        name = md_text(exp.name) if exp.name else "-"
        if not exp.checkpoints:
            lines.append(f"| {md_code(exp.id)} | {name} | - | - |")
        else:  # the last one made the result; --json lists every one
            ckpt, earlier = exp.checkpoints[-1], len(exp.checkpoints) - 1
            step = f" (step {ckpt.step})" if ckpt.step is not None else ""
            more = f", {earlier} earlier" if earlier else ""
            lines.append(f"| {md_code(exp.id)} | {name} | {md_code(ckpt.path)}{step}{more} | "
                         f"{md_code(ckpt.sha256)} |")  # fmt: skip
    return [*lines, ""]
