"""The bundled benchmark: generated arithmetic word problems with categories.

Items are generated from a seed using only ``random.Random.random()``, whose sequence
Python guarantees across versions, so item IDs and texts are stable everywhere.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from evalledger.benchmarks.base import Benchmark
from evalledger.plugin_types import AdapterSettings, Item

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ArithBenchmark", "generate"]

_NAMES = ["Ada", "Bo", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun"]
_THINGS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards"]
_EASY = ["addition", "subtraction", "multiplication", "division", "two_step"]
_HARD = ["addition", "subtraction", "multiplication", "division", "two_step", "multi_step"]


def _int(rng: random.Random, lo: int, hi: int) -> int:
    return lo + int(rng.random() * (hi - lo + 1))


def _pick(rng: random.Random, seq: list[str]) -> str:
    return seq[int(rng.random() * len(seq))]


def _problem(rng: random.Random, category: str, big: int) -> tuple[str, int]:
    name, thing = _pick(rng, _NAMES), _pick(rng, _THINGS)
    a, b = _int(rng, 2, big), _int(rng, 2, max(3, big // 2))
    if category == "addition":
        return f"{name} has {a} {thing}. {name} buys {b} more. How many {thing} now?", a + b
    if category == "subtraction":
        a += b
        return f"{name} has {a} {thing} and gives away {b}. How many {thing} are left?", a - b
    if category == "multiplication":
        b = _int(rng, 2, 12)
        return (
            f"{name} buys {a} boxes with {b} {thing} in each box. How many {thing} in total?",
            a * b,
        )
    if category == "division":
        b = _int(rng, 2, 12)
        return (
            f"{name} shares {a * b} {thing} equally among {b} friends. "
            f"How many {thing} does each friend get?",
            a,
        )
    if category == "two_step":
        c = _int(rng, 1, a + b - 1)
        return (
            f"{name} has {a} {thing}, buys {b} more and then gives away {c}. "
            f"How many {thing} are left?",
            a + b - c,
        )
    c, k = _int(rng, 1, big), _int(rng, 2, 9)
    return (
        f"{name} buys {k} packs of {a} {thing} and already owned {c}. "
        f"How many {thing} does {name} own now?",
        k * a + c,
    )


def generate(n_items: int, seed: int, difficulty: str = "easy") -> list[Item]:
    """Generate ``n_items`` problems; the same arguments give the same items."""
    return list(iter_generate(n_items, seed, difficulty))


def iter_generate(n_items: int, seed: int, difficulty: str = "easy") -> Iterator[Item]:
    """The problems of :func:`generate`, one at a time (a million need not be held)."""
    rng = random.Random(seed)
    cats = _EASY if difficulty == "easy" else _HARD
    big = 50 if difficulty == "easy" else 900
    for i in range(n_items):
        category = cats[i % len(cats)]
        text, answer = _problem(rng, category, big)
        yield Item(
            id=f"{difficulty}-{seed}-{i:04d}", input=text, target=str(answer), category=category
        )


class ArithSettings(AdapterSettings):
    """Settings of the ``arith`` benchmark."""

    n_items: int = Field(default=300, ge=1)
    """How many problems to generate (at least 1)."""
    seed: int = 0
    difficulty: Literal["easy", "hard"] = "easy"
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N items."""


class ArithBenchmark(Benchmark):
    """Generated arithmetic word problems (``loader: arith``)."""

    Settings = ArithSettings
    settings: ArithSettings

    def load(self) -> list[Item]:
        """The generated items, cut to ``limit`` if set."""
        return list(self.iter_items())

    def iter_items(self) -> Iterator[Item]:
        """The generated items one at a time, cut to ``limit`` if set."""
        s = self.settings
        n = min(s.n_items, s.limit) if s.limit else s.n_items
        # The same random draws as generating all n_items: an item does not depend on limit.
        return iter_generate(n, s.seed, s.difficulty)
