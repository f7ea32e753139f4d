"""Repeated samples: each item answered K times, recorded answer by answer.

``repeats: K`` on a model (``models.<m>.repeats``), a benchmark (``benchmarks.<b>.
repeats``) or the run (``run.repeats``; the most specific wins) samples every item of
the cell K times. Sample ``s`` of item ``q`` is evaluated as the item ``q#s`` (so the
item checkpoint, resume and the predictions keep each answer), with ``sample: s`` in the
call's decoding and, when the decoding has a ``seed``, the seed ``seed + s``.

The scores file keeps one row per answer: the question's ``id`` and a ``sample``
column. Readers (:func:`evalledger.ledger.scores.parse_scores`) average a question's
samples, so the per-question mean is the unit that significance tests pair and that
standard errors are taken over (Miller 2024, arXiv 2411.00640). The cell metrics say
so too: ``n`` counts questions, ``accuracy`` is the mean of per-question means, and
``repeats`` holds the reducers:

- ``mean``: the mean of per-question accuracies (= ``accuracy``);
- ``majority``: the accuracy of each question's most common answer (ties: the earliest);
- ``first``: the accuracy of sample 0 alone;
- ``pass_at``: the unbiased pass@k estimator, ``1 - C(n - c, k) / C(n, k)`` averaged over
  questions (Chen et al. 2021), for k = 1, 2, 4, ... and K.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from evalledger.errors import ConfigError
from evalledger.plugin_types import SAMPLE_SEP, question_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from evalledger.matrix import Cell
    from evalledger.params import MatrixSpec
    from evalledger.plugin_types import Item

__all__ = [
    "MAX_REPEATS",
    "expand_samples",
    "iter_samples",
    "pass_at_k",
    "repeats_for",
    "repeats_metrics",
    "sample_decoding",
    "with_repeats",
]

MAX_REPEATS = 1000


def _check(value: Any, where: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_REPEATS:
        raise ConfigError(f"{where} must be an integer from 1 to {MAX_REPEATS}, not {value!r}",
                          "the number of samples of each item, e.g. repeats: 5")  # fmt: skip
    return value


def repeats_for(spec: MatrixSpec, cell: Cell) -> int:
    """K for a cell: the model's ``repeats``, else the benchmark's, else ``run.repeats``."""
    model, bench = cell.axis("model") or "", cell.axis("benchmark") or ""
    for where, cfg in ((f"models.{model}", spec.value_config("model", model)),
                       (f"benchmarks.{bench}", spec.value_config("benchmark", bench))):  # fmt: skip
        if "repeats" in cfg:
            return _check(cfg["repeats"], f"{where}.repeats")
    run = spec.raw.get("run") or {}
    return _check(run.get("repeats", 1), "run.repeats")


def expand_samples(items: list[Item], k: int) -> list[Item]:
    """Each item K times, as ``<id>#<s>`` with ``meta["sample"] = s``; as given when K=1."""
    return items if k == 1 else list(iter_samples(items, k))


def iter_samples(items: Iterable[Item], k: int) -> Iterator[Item]:
    """:func:`expand_samples` one item at a time."""
    if k == 1:
        yield from items
        return
    for it in items:
        for s in range(k):
            yield dataclasses.replace(it, id=f"{it.id}{SAMPLE_SEP}{s}",
                                      meta={**it.meta, "sample": s, "question": it.id})  # fmt: skip


def sample_decoding(decoding: dict[str, Any], item: Item) -> dict[str, Any]:
    """The decoding of one call: ``sample`` and a distinct ``seed`` for a repeated item."""
    sample = item.meta.get("sample")
    if sample is None:
        return decoding
    out = {**decoding, "sample": sample}
    if isinstance(decoding.get("seed"), int):
        out["seed"] = decoding["seed"] + sample
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of pass@k from n samples with c correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _ks(k: int) -> list[int]:
    out, p = [], 1
    while p < k:
        out.append(p)
        p *= 2
    return [*out, k]


def _pass(questions: list[list[dict[str, Any]]], k: int) -> list[float]:
    """pass@k of each question with at least k scored samples."""
    return [pass_at_k(len(rs), sum(bool(r["correct"]) for r in rs), k)
            for rs in questions if len(rs) >= k]  # fmt: skip


def repeats_metrics(records: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """The reducers over the scored samples of a cell, by question (see the module)."""
    by_q: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if not r.get("error"):
            by_q.setdefault(question_of(r["id"])[0], []).append(r)
    questions = list(by_q.values())
    nq = len(questions)

    def mean(values: list[float]) -> float:
        return round(math.fsum(values) / len(values), 6) if values else 0.0

    def majority(rs: list[dict[str, Any]]) -> bool:
        counts: dict[Any, int] = {}
        for r in rs:
            counts[r.get("extracted")] = counts.get(r.get("extracted"), 0) + 1
        top = max(counts.values())
        winner = next(r for r in rs if counts[r.get("extracted")] == top)  # earliest of ties
        return bool(winner["correct"])

    firsts = [bool(rs[0]["correct"]) for rs in questions if question_of(rs[0]["id"])[1] == 0]
    return {
        "k": k,
        "questions": nq,
        "samples": sum(len(rs) for rs in questions),
        "mean": mean([sum(bool(r["correct"]) for r in rs) / len(rs) for rs in questions]),
        "majority": mean([float(majority(rs)) for rs in questions]),
        "first": mean([float(f) for f in firsts]),
        "pass_at": {str(j): mean(_pass(questions, j)) for j in _ks(k)},
    }


#: Cell metrics that become means of per-question means, and their per-answer fields.
_PER_QUESTION = {"accuracy": "correct", "partial_accuracy": "partial",
                 "format_accuracy": "formatted", "mean_score": "score"}  # fmt: skip


def with_repeats(metrics: dict[str, Any], records: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """A repeated cell's metrics: by question (``n``, ``scored``, the accuracies) + reducers.

    ``correct``, ``errors`` and ``error_rate`` still count answers.
    """
    by_q: dict[str, list[dict[str, Any]]] = {}
    questions: set[str] = set()
    for r in records:
        q = question_of(r["id"])[0]
        questions.add(q)
        if not r.get("error"):
            by_q.setdefault(q, []).append(r)
    out = dict(metrics)
    for metric, field in _PER_QUESTION.items():
        means = [math.fsum(float(r[field]) for r in rs) / len(rs) for rs in by_q.values()]
        out[metric] = round(math.fsum(means) / len(means), 6) if means else 0.0
    out["n"], out["scored"] = len(questions), len(by_q)
    out["repeats"] = repeats_metrics(records, k)
    return out
