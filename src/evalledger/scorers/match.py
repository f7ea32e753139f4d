"""Exact and numeric matching, and the comparisons the extracting scorers reuse."""

from __future__ import annotations

import re
import string
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalledger.models.base import AdapterSettings
from evalledger.scorers.base import ItemScore, Scorer

if TYPE_CHECKING:
    from evalledger.benchmarks.base import Item

__all__ = ["ExactMatch", "NumericMatch", "compare_exact", "compare_numeric", "normalize", "number"]

_SPACE = re.compile(r"\s+")
_NUM = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+")
_ANSWER_IS = re.compile(r"answer is\s*:?\s*(-?\$?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_TAG = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_STRIP = string.punctuation + string.whitespace + "\u201c\u201d\u2018\u2019"  # curly quotes


def normalize(text: str, prefixes: tuple[str, ...] = ()) -> str:
    """Casefold, collapse whitespace, strip surrounding punctuation and given prefixes."""
    out = _SPACE.sub(" ", text.casefold()).strip(_STRIP)
    for prefix in prefixes:
        if out.startswith(prefix.casefold()):
            out = out[len(prefix) :].strip(_STRIP)
    return out


def number(text: str) -> float | None:
    """A number written like ``-1,234.5`` or ``$7``; None if ``text`` is not one."""
    cleaned = text.strip().replace(",", "").replace("$", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def compare_exact(extracted: str, target: str, *, fold: bool = True) -> tuple[bool, str]:
    """Whether ``extracted`` equals ``target`` (normalised when ``fold``); the compared form."""
    got = normalize(extracted) if fold else extracted.strip()
    want = normalize(target) if fold else target.strip()
    return got == want, got


def compare_numeric(
    extracted: str, target: str, rel_tol: float = 0.1, abs_tol: float = 0.0
) -> tuple[bool, bool, str | None]:
    """(correct, within ``rel_tol``, note): exact within ``abs_tol``; partial within 10%."""
    want = number(target)
    if want is None:
        return False, False, "target is not a number"
    got = number(extracted)
    if got is None:
        return False, False, None
    correct = abs(got - want) <= abs_tol
    partial = correct or abs(got - want) <= rel_tol * abs(want)
    return correct, partial, None


class ExactSettings(AdapterSettings):
    """Settings of the ``exact`` scorer."""

    normalize: bool = True
    strip_prefixes: list[str] = []


class ExactMatch(Scorer):
    """The whole output equals the target (``scorer: exact``)."""

    Settings = ExactSettings
    settings: ExactSettings

    def score(self, item: Item, output: str) -> ItemScore:
        """Compare the (normalised) output with the target."""
        s = self.settings
        got = normalize(output, tuple(s.strip_prefixes)) if s.normalize else output.strip()
        want = normalize(item.target) if s.normalize else item.target.strip()
        ok = got == want
        return ItemScore(correct=ok, score=float(ok), extracted=got, partial=ok, formatted=True)


class NumericSettings(AdapterSettings):
    """Settings of the ``numeric`` scorer."""

    rel_tol: float = Field(default=0.1, ge=0)
    """Relative tolerance for partial credit."""
    abs_tol: float = Field(default=0.0, ge=0)
    """Absolute tolerance for exact credit."""
    extract: Literal["last", "first", "answer_is"] = "last"
    """Which number in the output is the answer."""


class NumericMatch(Scorer):
    """A number in the output equals the target (``scorer: numeric``)."""

    Settings = NumericSettings
    settings: NumericSettings

    def score(self, item: Item, output: str) -> ItemScore:
        """Extract a number and compare it with the target."""
        s = self.settings
        said = _ANSWER_IS.search(output)
        tagged = _TAG.search(output)
        formatted = bool(said or tagged)
        if s.extract == "answer_is":
            extracted = said.group(1) if said else None
        else:
            found = _NUM.findall(output)
            extracted = (found[0] if s.extract == "first" else found[-1]) if found else None
        if extracted is None:
            return ItemScore(correct=False, score=0.0, formatted=formatted)
        correct, partial, note = compare_numeric(extracted, item.target, s.rel_tol, s.abs_tol)
        return ItemScore(correct=correct, score=float(correct), extracted=extracted,
                         partial=partial, formatted=formatted, detail=note)  # fmt: skip
