"""Multiple-choice scoring: find the chosen letter and map it to an option."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from evalledger.plugin_types import AdapterSettings, ItemScore
from evalledger.scorers.base import Scorer
from evalledger.scorers.match import normalize

if TYPE_CHECKING:
    from evalledger.plugin_types import Item

__all__ = ["ChoiceSettings", "MultipleChoice"]

_WORD = "[\\w'\u2019]"  # a letter inside a word, or before an apostrophe ("I'm", "A's")


class ChoiceSettings(AdapterSettings):
    """Settings of the ``choice`` scorer."""

    letters: str = Field(default="ABCDEFGHIJ", min_length=1)
    """The option labels, in order (case-insensitive)."""

    @field_validator("letters")
    @classmethod
    def _distinct(cls, value: str) -> str:
        value = value.upper()
        if not value.isalnum() or len(set(value)) != len(value):
            raise ValueError("letters must be distinct letters or digits, e.g. ABCD")
        return value


@dataclass(frozen=True)
class _Patterns:
    """The ways an output names one of a set of letters, strongest first."""

    answer: re.Pattern[str]  # "Answer: B", "the answer is (B)", "answer is option B"
    answer_lower: re.Pattern[str]  # "answer: (b)", "the answer is b." (not "is a good")
    lead: re.Pattern[str]  # "B. Paris", "(B) Paris", "B) Paris", "B: Paris" at the start
    paren: re.Pattern[str]  # "(B)" anywhere
    option: re.Pattern[str]  # "option B", "choice B"
    alone: re.Pattern[str]  # a capital letter standing alone
    ending: re.Pattern[str]  # ... followed by punctuation or the end ("I pick C.")

    @classmethod
    def build(cls, letters: str) -> _Patterns:
        c = f"[{re.escape(letters)}]"
        low = f"[{re.escape(letters.lower())}]"
        alone = rf"(?<!{_WORD})({c})(?!{_WORD})"
        return cls(
            answer=re.compile(
                rf"(?i:\banswer\b(?:\s+is)?(?:\s+(?:option|choice))?)\s*[:=\-]?\s*[*_]*"
                rf"\s*[(\[]?({c})(?!{_WORD})"
            ),
            answer_lower=re.compile(
                rf"(?i:\banswer\b(?:\s+is)?)\s*[:=\-]?\s*\(?({low})(?:\)|(?=[.!]?\s*$))"
            ),
            lead=re.compile(rf"[\s*_]*[(\[]?({c})(?:[.):\]]|\s*$)"),
            paren=re.compile(rf"\(({c})\)"),
            option=re.compile(rf"(?i:\b(?:option|choice))\s+({c})(?!{_WORD})"),
            alone=re.compile(alone),
            ending=re.compile(rf"{alone}(?=[.,;:!?)\]*]|\s*$)"),
        )


class MultipleChoice(Scorer):
    """The output names the right option (``scorer: choice``).

    The target may be a letter (``B``), a 0-based index (``1``) or the option's text; the
    output may say ``B``, ``(B)``, ``Answer: B``, ``B. Paris`` or the option's text.
    Only letters that name an option count (``I pick C`` with four options is ``C``).
    ``extracted`` is the chosen letter; ``formatted`` is whether the output named a letter.
    """

    Settings = ChoiceSettings
    settings: ChoiceSettings

    def __init__(self, name: str, settings: AdapterSettings) -> None:
        super().__init__(name, settings)
        letters = self.settings.letters
        self._patterns = [_Patterns.build(letters[:n]) for n in range(1, len(letters) + 1)]

    def _target_index(self, item: Item) -> int | None:
        letters, choices = self.settings.letters, item.choices
        n = len(choices) if choices else len(letters)
        t = item.target.strip()
        if len(t) == 1 and t.upper() in letters:
            i = letters.index(t.upper())
            return i if i < n else None
        if t.isdigit():
            return int(t) if int(t) < n else None
        folded = normalize(t)
        for i, choice in enumerate(choices or ()):
            if normalize(choice) == folded:
                return i
        return None

    def _chosen(self, item: Item, output: str) -> tuple[int | None, bool]:
        """(option index, whether a letter named it)."""
        letters = self.settings.letters
        n = min(len(item.choices), len(letters)) if item.choices else len(letters)
        p = self._patterns[n - 1] if n else self._patterns[-1]
        found = p.answer.findall(output) or p.answer_lower.findall(output)
        if found:
            return letters.index(found[-1].upper()), True
        said = normalize(output)
        if len(said) == 1 and said.upper() in letters[:n]:
            return letters.index(said.upper()), True
        choices = [normalize(c) for c in item.choices or ()]
        if said and said in choices:
            return choices.index(said), False
        m = p.lead.match(output)
        if m is not None:
            return letters.index(m.group(1)), True
        for pattern in (p.paren, p.option):
            found = pattern.findall(output)
            if found:
                return letters.index(found[-1]), True
        for pattern in (p.alone, p.ending):
            distinct = set(pattern.findall(output))
            if len(distinct) == 1:
                return letters.index(distinct.pop()), True
        named = [i for i, c in enumerate(choices) if c and _contains(said, c)]
        if len(named) == 1:
            return named[0], False
        return None, False

    def score(self, item: Item, output: str) -> ItemScore:
        """Correct when the chosen option is the target option."""
        want = self._target_index(item)
        got, formatted = self._chosen(item, output)
        letter = self.settings.letters[got] if got is not None else None
        ok = got is not None and got == want
        note = None if want is not None else "target matches no option"
        return ItemScore(ok, float(ok), letter, ok, formatted, note)


def _contains(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as whole words."""
    start = text.find(phrase)
    while start >= 0:
        end = start + len(phrase)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not before.isalnum() and not after.isalnum():
            return True
        start = text.find(phrase, start + 1)
    return False
