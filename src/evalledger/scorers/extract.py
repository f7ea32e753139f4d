"""Scorers that pull the answer out with a regex or an ``<answer>`` tag, then compare it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from evalledger.plugin_types import AdapterSettings, ItemScore
from evalledger.scorers.base import Scorer
from evalledger.scorers.match import compare_exact, compare_numeric

if TYPE_CHECKING:
    from evalledger.plugin_types import Item

__all__ = ["RegexScorer", "RegexSettings", "TagScorer", "TagSettings", "ThenSettings"]

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


class ThenSettings(AdapterSettings):
    """How an extracted answer is compared with the target."""

    then: Literal["exact", "numeric"] = "exact"
    """``exact``: normalised text equality; ``numeric``: the number in it, as ``numeric``."""
    rel_tol: float = Field(default=0.1, ge=0)
    """With ``then: numeric``: relative tolerance for partial credit."""
    abs_tol: float = Field(default=0.0, ge=0)
    """With ``then: numeric``: absolute tolerance for exact credit."""


def compare_then(extracted: str | None, item: Item, s: ThenSettings) -> ItemScore:
    """Score an extracted answer; None (nothing extracted) is a format failure."""
    if extracted is None:
        return ItemScore(correct=False, score=0.0, formatted=False)
    extracted = extracted.strip()
    if s.then == "numeric":
        correct, partial, note = compare_numeric(extracted, item.target, s.rel_tol, s.abs_tol)
        return ItemScore(correct, float(correct), extracted, partial, True, note)
    ok, _ = compare_exact(extracted, item.target)
    return ItemScore(correct=ok, score=float(ok), extracted=extracted, partial=ok, formatted=True)


class RegexSettings(ThenSettings):
    """Settings of the ``regex`` scorer."""

    pattern: str
    """Group 1 (or the whole match) is the answer; the last match counts."""
    flags: str = ""
    """Any of ``i`` (ignore case), ``m`` (multiline), ``s`` (dot matches newline)."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, value: str) -> str:
        for flag in value:
            if flag not in _FLAGS:
                raise ValueError(f"unknown regex flag {flag!r}; known: {', '.join(_FLAGS)}")
        return value


class RegexScorer(Scorer):
    """Extract with a regex, then compare (``scorer: {name: regex, pattern: ...}``).

    Formatted when the pattern matches; no match scores 0.
    """

    Settings = RegexSettings
    settings: RegexSettings

    def __init__(self, name: str, settings: AdapterSettings) -> None:
        super().__init__(name, settings)
        flags = 0
        for flag in self.settings.flags:
            flags |= _FLAGS[flag]
        self._re = re.compile(self.settings.pattern, flags)

    def score(self, item: Item, output: str) -> ItemScore:
        """Compare the last match (its group 1, or all of it) with the target."""
        last = None
        for last in self._re.finditer(output):  # noqa: B007 - only the last one is used
            pass
        if last is None:
            return compare_then(None, item, self.settings)
        answer = last.group(1) if self._re.groups else last.group(0)
        return compare_then(answer or "", item, self.settings)


class TagSettings(ThenSettings):
    """Settings of the ``tag`` scorer."""

    tag: str = Field(default="answer", pattern=r"^[A-Za-z_][\w.:-]*$")
    """The tag's name: ``answer`` reads ``<answer>...</answer>``."""


class TagScorer(Scorer):
    """Extract ``<answer>...</answer>`` (the last one), then compare (``scorer: tag``).

    Case-insensitive, across lines; formatted when the tag is present.
    """

    Settings = TagSettings
    settings: TagSettings

    def __init__(self, name: str, settings: AdapterSettings) -> None:
        super().__init__(name, settings)
        tag = re.escape(self.settings.tag)
        self._re = re.compile(rf"<{tag}(?:\s[^>]*)?>(.*?)</{tag}\s*>", re.IGNORECASE | re.DOTALL)

    def score(self, item: Item, output: str) -> ItemScore:
        """Score the content of the last tag; no tag is a format failure."""
        found = self._re.findall(output)
        return compare_then(found[-1] if found else None, item, self.settings)
