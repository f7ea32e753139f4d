"""Scorers that pull the answer out with a regex or an ``<answer>`` tag, then compare it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalledger.models.base import AdapterSettings
from evalledger.scorers.base import ItemScore, Scorer
from evalledger.scorers.match import compare_exact, compare_numeric

if TYPE_CHECKING:
    from evalledger.benchmarks.base import Item

__all__ = ["RegexScorer", "TagScorer"]

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


class _ThenSettings(AdapterSettings):
    then: Literal["exact", "numeric"] = "exact"
    """How the extracted answer is compared with the target."""
    rel_tol: float = Field(default=0.1, ge=0)
    """With ``then: numeric``: relative tolerance for partial credit."""


def _compare(extracted: str | None, item: Item, s: _ThenSettings) -> ItemScore:
    """Format accuracy counts a match; correctness compares what was matched."""
    if extracted is None:
        return ItemScore(correct=False, score=0.0, formatted=False)
    extracted = extracted.strip()
    if s.then == "numeric":
        correct, partial, note = compare_numeric(extracted, item.target, s.rel_tol)
        return ItemScore(correct, float(correct), extracted, partial, True, note)
    ok, _ = compare_exact(extracted, item.target)
    return ItemScore(correct=ok, score=float(ok), extracted=extracted, partial=ok, formatted=True)


class RegexSettings(_ThenSettings):
    """Settings of the ``regex`` scorer."""

    pattern: str
    """Group 1 (or the whole match) is the answer; the last match counts."""
    flags: str = ""
    """Any of ``i`` (ignore case), ``m`` (multiline), ``s`` (dot matches newline)."""


class RegexScorer(Scorer):
    """Extract with a regex, then compare (``scorer: {name: regex, pattern: ...}``)."""

    Settings = RegexSettings
    settings: RegexSettings

    def __init__(self, name: str, settings: RegexSettings) -> None:  # type: ignore[override]
        super().__init__(name, settings)
        flags = 0
        for flag in settings.flags:
            if flag not in _FLAGS:
                from evalledger.errors import ConfigError

                raise ConfigError(f"unknown regex flag {flag!r}; known: i, m, s")
            flags |= _FLAGS[flag]
        try:
            self._re = re.compile(settings.pattern, flags)
        except re.error as exc:
            from evalledger.errors import ConfigError

            raise ConfigError(f"invalid scorer pattern {settings.pattern!r}: {exc}") from None

    def score(self, item: Item, output: str) -> ItemScore:
        """Use the last match."""
        matches = list(self._re.finditer(output))
        if not matches:
            return _compare(None, item, self.settings)
        m = matches[-1]
        return _compare(m.group(1) if m.groups() else m.group(0), item, self.settings)


class TagSettings(_ThenSettings):
    """Settings of the ``tag`` scorer."""

    tag: str = "answer"


class TagScorer(Scorer):
    """Extract ``<answer>...</answer>`` (the last one), then compare (``scorer: tag``)."""

    Settings = TagSettings
    settings: TagSettings

    def __init__(self, name: str, settings: TagSettings) -> None:  # type: ignore[override]
        super().__init__(name, settings)
        tag = re.escape(settings.tag)
        self._re = re.compile(rf"<{tag}>(.*?)</{tag}>", re.IGNORECASE | re.DOTALL)

    def score(self, item: Item, output: str) -> ItemScore:
        """Score the content of the last tag; no tag is a format failure."""
        found = self._re.findall(output)
        return _compare(found[-1] if found else None, item, self.settings)
