"""One cell's answers item by item: ``evalledger items``.

For each question: its target, how many answers it got (K with ``repeats: K``), how many
were right, and its distinct answers with their counts, most common first. The answers
come from the cell's predictions file (``predictions/<cell>.jsonl``, a DVC output: after
``evalledger run`` or ``dvc pull``) and their correctness from its scores file.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalledger.errors import ConfigError
from evalledger.plugin_types import question_of

if TYPE_CHECKING:
    from evalledger.project import Project

__all__ = ["ItemAnswers", "item_answers"]


@dataclass
class ItemAnswers:
    """One question's answers."""

    id: str
    target: str | None
    samples: int = 0
    correct: int = 0
    errors: int = 0
    answers: list[tuple[str | None, int]] = field(default_factory=list)
    """(extracted answer, how many times), most common first; None when none was found."""

    @property
    def distinct(self) -> int:
        """How many different answers it got."""
        return len(self.answers)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"id": self.id, "target": self.target, "samples": self.samples,
                "correct": self.correct, "errors": self.errors, "distinct": self.distinct,
                "answers": [{"answer": a, "count": n} for a, n in self.answers]}  # fmt: skip


def item_answers(project: Project, key: str) -> list[ItemAnswers]:
    """The cell ``key``'s questions in benchmark order, with their grouped answers."""
    predictions = project.root / "predictions" / f"{key}.jsonl"
    scores = project.root / "metrics" / f"{key}.scores.csv"
    if not scores.is_file():
        raise ConfigError(f"no cell {key!r} in the workspace (no metrics/{key}.scores.csv)",
                          "see `evalledger status` for the cells, e.g. solver/arith")  # fmt: skip
    if not predictions.is_file():
        raise ConfigError(f"predictions/{key}.jsonl is not in the workspace",
                          "run `dvc pull` (or `evalledger run`) to fetch it")  # fmt: skip
    correct: dict[tuple[str, int | None], bool] = {}
    with scores.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            sample = int(row["sample"]) if row.get("sample") not in (None, "") else None
            correct[(row["id"], sample)] = row.get("correct") == "1" and not row.get("error")
    found: dict[str, ItemAnswers] = {}
    counts: dict[str, Counter[str | None]] = {}
    with predictions.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            question, sample = question_of(str(rec["id"]))
            if sample is not None and (question, sample) not in correct:
                question, sample = str(rec["id"]), None  # an id that only looks like q#s
            entry = found.setdefault(question, ItemAnswers(question, rec.get("target")))
            entry.samples += 1
            if rec.get("error"):
                entry.errors += 1
                continue
            entry.correct += correct.get((question, sample), False)
            counts.setdefault(question, Counter())[rec.get("extracted")] += 1
    for question, entry in found.items():
        entry.answers = counts.get(question, Counter()).most_common()
    return list(found.values())
