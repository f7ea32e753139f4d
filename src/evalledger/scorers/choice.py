"""Multiple-choice scoring: find the chosen letter and map it to a choice."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from evalledger.models.base import AdapterSettings
from evalledger.scorers.base import ItemScore, Scorer
from evalledger.scorers.match import normalize

if TYPE_CHECKING:
    from evalledger.benchmarks.base import Item

__all__ = ["MultipleChoice"]


class ChoiceSettings(AdapterSettings):
    """Settings of the ``choice`` scorer."""

    letters: str = "ABCDEFGHIJ"


class MultipleChoice(Scorer):
    """The output names the right option (``scorer: choice``).

    The target may be a letter (``B``), a 0-based index (``1``) or the option's text; the
    output may say ``B``, ``(B)``, ``Answer: B``, ``B. Paris`` or the option's text.
    """

    Settings = ChoiceSettings
    settings: ChoiceSettings

    @functools.cache  # noqa: B019 - a few letter sets per scorer, kept for its lifetime
    def _patterns(self, letters: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
        cls = re.escape(letters)
        return (
            re.compile(rf"answer\s*(?:is)?\s*[:\-]?\s*\(?([{cls}])\)?\b", re.I),
            re.compile(rf"(?:^|[\s(\[])([{cls}])(?:[)\].:,]|\s|$)"),
        )

    def _target_index(self, item: Item) -> int | None:
        choices = item.choices or ()
        t = item.target.strip()
        if len(t) == 1 and t.upper() in self.settings.letters:
            return self.settings.letters.index(t.upper())
        if t.isdigit() and int(t) < len(choices):
            return int(t)
        folded = [normalize(c) for c in choices]
        return folded.index(normalize(t)) if normalize(t) in folded else None

    def _chosen(self, item: Item, output: str) -> int | None:
        # Only letters that name an option count: "I pick C" must not read as option I.
        letters = self.settings.letters[: len(item.choices)] if item.choices else ""
        letters = letters or self.settings.letters
        answer, alone = self._patterns(letters)
        m = answer.search(output)
        if m is None:
            m = alone.search(output.strip())
        if m is not None:
            return letters.index(m.group(1).upper())
        said = normalize(output)
        for i, choice in enumerate(item.choices or ()):
            if normalize(choice) == said:
                return i
        return None

    def score(self, item: Item, output: str) -> ItemScore:
        """Correct when the chosen option is the target option."""
        want = self._target_index(item)
        got = self._chosen(item, output)
        letter = self.settings.letters[got] if got is not None else None
        ok = got is not None and got == want
        note = None if want is not None else "target matches no option"
        return ItemScore(correct=ok, score=float(ok), extracted=letter, partial=ok,
                         formatted=got is not None, detail=note)  # fmt: skip
