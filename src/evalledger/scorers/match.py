"""Exact and numeric matching, and the comparisons the extracting scorers reuse."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalledger.plugin_types import AdapterSettings, ItemScore
from evalledger.scorers.base import Scorer

if TYPE_CHECKING:
    from evalledger.plugin_types import Item

__all__ = [
    "ExactMatch",
    "ExactSettings",
    "NumericMatch",
    "NumericSettings",
    "answer_is",
    "compare_exact",
    "compare_numeric",
    "has_answer_tag",
    "normalize",
    "number",
    "numbers",
]

_SPACE = re.compile(r"\s+")
# Punctuation that only frames an answer: sentence ends, quotes, brackets, markdown.
# Signs, %, $, # and + are kept: "-5" is not "5" and "C++" is not "C".
_FRAME = " \t\r\n\f\v.,;:!?\"'`*_()[]{}\u00ab\u00bb\u201c\u201d\u2018\u2019\u201e"
_MINUS = "-\u2212"  # ASCII hyphen-minus and the Unicode minus sign
_BODY = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
# A number in running text: "1,234", "-7", "$2.50", "-$3", ".5". A sign right after a
# word or a number is a hyphen ("2024-05", "3-4"), and a number never starts inside a
# word or another number.
_NUM = re.compile(rf"(?:(?<![\w.)\]])[{_MINUS}+])?\$?(?<![\w.])(?:{_BODY})")
_WHOLE = re.compile(rf"\s*([{_MINUS}+])?\s*\$?\s*([{_MINUS}+])?({_BODY})\s*")
_ANSWER_IS = re.compile(
    rf"answer\s+is\s*[:=]?\s*(?:\*\*|\\boxed\{{|\\\(|\$(?=\s*\\))*\s*({_NUM.pattern})",
    re.IGNORECASE,
)
_TAG = re.compile(r"<answer(?:\s[^>]*)?>.*?</answer\s*>", re.IGNORECASE | re.DOTALL)


def normalize(text: str) -> str:
    """Casefold, collapse whitespace, and strip framing punctuation and quotes at the ends."""
    return _SPACE.sub(" ", text.casefold()).strip(_FRAME)


def number(text: str) -> float | None:
    """The value of ``text`` if it is one number (``-1,234.5``, ``$7``), else None."""
    m = _WHOLE.fullmatch(text)
    if m is None or (m.group(1) and m.group(2)):
        return None
    sign = -1.0 if (m.group(1) or m.group(2) or "+") in _MINUS else 1.0
    return sign * float(m.group(3).replace(",", ""))


def numbers(text: str) -> list[str]:
    """The numbers written in ``text``, in order, as written (``$1,234``)."""
    return _NUM.findall(text)


def answer_is(text: str) -> str | None:
    """The number after the last ``answer is`` in ``text``, as written, or None."""
    found = _ANSWER_IS.findall(text)
    return found[-1] if found else None


def has_answer_tag(text: str) -> bool:
    """Whether ``text`` has an ``<answer>...</answer>`` tag."""
    return _TAG.search(text) is not None


def compare_exact(extracted: str, target: str, *, fold: bool = True) -> tuple[bool, str]:
    """Whether ``extracted`` equals ``target`` (normalised when ``fold``); the compared form."""
    got = normalize(extracted) if fold else extracted.strip()
    want = normalize(target) if fold else target.strip()
    return got == want, got


def compare_numeric(
    extracted: str, target: str, rel_tol: float = 0.1, abs_tol: float = 0.0
) -> tuple[bool, bool, str | None]:
    """(correct, partial, note) for a number against the target.

    ``extracted`` is a number, or text whose last number counts. Correct within
    ``abs_tol``; partial (correct, or within ``rel_tol`` of the target).
    """
    want = number(target)
    if want is None:
        return False, False, "target is not a number"
    got = number(extracted)
    if got is None:
        found = numbers(extracted)
        got = number(found[-1]) if found else None
    if got is None:
        return False, False, None
    correct = abs(got - want) <= abs_tol
    partial = correct or abs(got - want) <= rel_tol * abs(want)
    return correct, partial, None


class ExactSettings(AdapterSettings):
    """Settings of the ``exact`` scorer."""

    normalize: bool = True
    """Casefold, collapse whitespace, strip framing punctuation and quotes."""
    strip_prefixes: list[str] = []
    """Prefixes such as ``"answer:"`` removed (case-insensitively) before comparing."""


class ExactMatch(Scorer):
    """The whole output equals the target (``scorer: exact``)."""

    Settings = ExactSettings
    settings: ExactSettings

    def __init__(self, name: str, settings: AdapterSettings) -> None:
        super().__init__(name, settings)
        prefixes = sorted({p.strip() for p in self.settings.strip_prefixes} - {""}, key=len)
        alts = "|".join(r"\s+".join(map(re.escape, p.split())) for p in reversed(prefixes))
        # With normalisation, markdown or quotes may come before the prefix (**Answer:**).
        lead = r"[\W_]*?" if self.settings.normalize else r"\s*"
        self._prefix = re.compile(rf"{lead}(?:{alts})", re.IGNORECASE) if alts else None

    def score(self, item: Item, output: str) -> ItemScore:
        """Compare the (normalised) output with the target."""
        text = output
        if self._prefix is not None:
            m = self._prefix.match(text)
            if m is not None:
                text = text[m.end() :]
        ok, got = compare_exact(text, item.target, fold=self.settings.normalize)
        return ItemScore(correct=ok, score=float(ok), extracted=got, partial=ok, formatted=True)


class NumericSettings(AdapterSettings):
    """Settings of the ``numeric`` scorer."""

    rel_tol: float = Field(default=0.1, ge=0)
    """Relative tolerance for partial credit."""
    abs_tol: float = Field(default=0.0, ge=0)
    """Absolute tolerance for exact credit."""
    extract: Literal["last", "first", "answer_is"] = "last"
    """Which number is the answer: the last, the first, or the one after ``answer is``."""


class NumericMatch(Scorer):
    """A number in the output equals the target (``scorer: numeric``).

    Formatted when the output says ``answer is N`` or has an ``<answer>`` tag.
    """

    Settings = NumericSettings
    settings: NumericSettings

    def score(self, item: Item, output: str) -> ItemScore:
        """Extract a number and compare it with the target."""
        s = self.settings
        said = answer_is(output)
        formatted = said is not None or has_answer_tag(output)
        if s.extract == "answer_is":
            extracted = said
        else:
            found = numbers(output)
            extracted = (found[0] if s.extract == "first" else found[-1]) if found else None
        if number(item.target) is None:
            return ItemScore(False, 0.0, extracted, False, formatted, "target is not a number")
        if extracted is None:
            return ItemScore(correct=False, score=0.0, formatted=formatted)
        correct, partial, note = compare_numeric(extracted, item.target, s.rel_tol, s.abs_tol)
        return ItemScore(correct, float(correct), extracted, partial, formatted, note)
