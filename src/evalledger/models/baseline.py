"""Deterministic baseline models for the bundled arithmetic benchmark.

They need no network and no key, and they differ enough to make comparisons meaningful:
``solver`` parses one-step problems exactly but fumbles multi-step ones, ``error_rate``
adds seeded mistakes (some within 10%, for partial credit), and ``adder`` adds up every
number it sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from evalledger.models.base import Model, ModelSettings
from evalledger.plugin_types import Completion

if TYPE_CHECKING:
    from evalledger.plugin_types import Item

__all__ = ["BaselineModel", "solve"]

_NUM = re.compile(r"-?\d+")
_RULES: list[tuple[re.Pattern[str], Any]] = [
    (
        re.compile(r"has (\d+) \w+, buys (\d+) more and then gives away (\d+)"),
        lambda a, b, c: a + b - c,
    ),
    (re.compile(r"has (\d+) \w+\. \w+ buys (\d+) more"), lambda a, b: a + b),
    (re.compile(r"has (\d+) \w+ and gives away (\d+)"), lambda a, b: a - b),
    (re.compile(r"buys (\d+) boxes with (\d+) \w+ in each"), lambda a, b: a * b),
    (re.compile(r"shares (\d+) \w+ equally among (\d+)"), lambda a, b: a // b),
]


def solve(text: str) -> int | None:
    """Answer a one-step problem by pattern; None when no pattern fits."""
    for pattern, op in _RULES:
        m = pattern.search(text)
        if m:
            return int(op(*map(int, m.groups())))
    return None


class BaselineSettings(ModelSettings):
    """Settings of the ``baseline`` adapter."""

    max_concurrency: int = Field(default=8, ge=1)
    strategy: Literal["solver", "adder"] = "solver"
    error_rate: float = Field(default=0.0, ge=0, le=1)
    """The share of items answered wrong on purpose, in [0, 1]."""
    seed: int = 0
    latency_ms: float = Field(default=0.0, ge=0)
    system_error_rates: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}
    """Phrase -> the error rate when the system prompt contains it (the first that
    matches): a stand-in for a model that follows instructions, for demos and tests."""


class BaselineModel(Model):
    """A deterministic arithmetic baseline (``adapter: baseline``)."""

    Settings = BaselineSettings
    settings: BaselineSettings

    def _unit(self, item_id: str) -> float:
        digest = hashlib.sha256(f"{self.settings.seed}:{item_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def generate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """Answer by strategy, then perturb with the seeded error rate."""
        if self.settings.latency_ms:
            time.sleep(self.settings.latency_ms / 1000)
        return self._answer(prompt, item, decoding.get("system"))

    async def agenerate(self, prompt: str, item: Item, decoding: dict[str, Any]) -> Completion:
        """As ``generate``, without a thread: the baseline is pure computation."""
        if self.settings.latency_ms:
            await asyncio.sleep(self.settings.latency_ms / 1000)
        return self._answer(prompt, item, decoding.get("system"))

    def _error_rate(self, system: str | None) -> float:
        for phrase, rate in self.settings.system_error_rates.items():
            if system and phrase.lower() in system.lower():
                return rate
        return self.settings.error_rate

    def _answer(self, prompt: str, item: Item, system: str | None = None) -> Completion:
        s = self.settings
        error_rate = self._error_rate(system)
        numbers = [int(n) for n in _NUM.findall(item.input)]
        solved = solve(item.input) if s.strategy == "solver" else None
        # The adder's only move, and the solver's fallback on problems it cannot parse.
        answer = sum(numbers) if solved is None else solved
        u = self._unit(item.id)
        if u < error_rate:
            # Seeded mistakes of 1-4 steps of ~5%: the small ones still earn partial credit.
            steps = 1 + int(u / error_rate * 4)
            sign = 1 if self._unit(item.id + ":sign") < 0.5 else -1
            answer += sign * steps * max(1, abs(answer) // 20)
        text = f"Let me work it out. The answer is {answer}."
        return Completion(
            text=text, prompt_tokens=len(prompt.split()), completion_tokens=len(text.split())
        )
