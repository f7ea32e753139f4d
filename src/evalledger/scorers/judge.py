"""LLM-as-judge: a configured model grades each output against a rubric."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import field_validator

from evalledger.plugin_types import AdapterSettings, ItemScore
from evalledger.scorers.base import Scorer

if TYPE_CHECKING:
    from evalledger.models.base import Model
    from evalledger.plugin_types import Item

__all__ = ["DEFAULT_RUBRIC", "JudgeScorer"]

DEFAULT_RUBRIC = """\
You are grading an answer to a question.
Question: {input}
Reference answer: {target}
Answer to grade: {output}
Reply with one word: CORRECT if the answer agrees with the reference, otherwise INCORRECT."""


class JudgeSettings(AdapterSettings):
    """Settings of the ``judge`` scorer."""

    model: str
    """The judge: a name under ``judges:`` (or ``models:``) in params.yaml."""
    rubric: str = DEFAULT_RUBRIC
    """The judge's prompt; ``{input}``, ``{target}`` and ``{output}`` are filled in."""
    verdict_pattern: str = r"\b(CORRECT|INCORRECT)\b"
    """Regex whose group 1 is the verdict; the verdict ``pass_value`` means correct."""
    pass_value: str = "CORRECT"
    score_pattern: str | None = None
    """Optional regex whose group 1 is a numeric score in [0, 1] (else 1/0 from verdict)."""

    @field_validator("verdict_pattern", "score_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value

    @field_validator("rubric")
    @classmethod
    def _has_output(cls, value: str) -> str:
        if "{output}" not in value:
            raise ValueError("the rubric must contain {output}, the answer to grade")
        return value


class JudgeScorer(Scorer):
    """Grades with a model (``scorer: {name: judge, model: <judge>}``)."""

    Settings = JudgeSettings
    settings: JudgeSettings
    needs_model = True

    def __init__(self, name: str, settings: JudgeSettings) -> None:  # type: ignore[override]
        super().__init__(name, settings)
        self._verdict = re.compile(settings.verdict_pattern, re.IGNORECASE)
        self._score = re.compile(settings.score_pattern) if settings.score_pattern else None
        self._model: Model | None = None

    def bind(self, model: Model) -> None:
        """Use ``model`` as the judge."""
        self._model = model

    @property
    def tag(self) -> str:
        """``judge_<model>``, part of the cell's experiment name."""
        return f"judge_{self.settings.model}"

    def prompt(self, item: Item, output: str) -> str:
        """The rubric filled in for one item."""
        return (
            self.settings.rubric.replace("{input}", item.input)
            .replace("{target}", item.target)
            .replace("{output}", output)
        )

    def score(self, item: Item, output: str) -> ItemScore:
        """Judges call a model: use ``ascore``."""
        raise TypeError("the judge scorer is async; call ascore")

    def parse(self, verdict_text: str) -> ItemScore:
        """Read the judge's reply."""
        matches = self._verdict.findall(verdict_text)
        verdict = matches[-1] if matches else None
        correct = verdict is not None and verdict.upper() == self.settings.pass_value.upper()
        score = float(correct)
        if self._score is not None:
            m = self._score.search(verdict_text)
            if m:
                score = min(1.0, max(0.0, float(m.group(1))))
        return ItemScore(
            correct=correct, score=score, extracted=verdict, partial=correct,
            formatted=verdict is not None, detail=verdict_text.strip()[:500],
        )  # fmt: skip

    async def ascore(self, item: Item, output: str) -> ItemScore:
        """Ask the judge model and parse its verdict."""
        if self._model is None:
            raise RuntimeError("judge scorer has no model bound")
        reply = await self._model.agenerate(self.prompt(item, output), item, {})
        return self.parse(reply.text)
