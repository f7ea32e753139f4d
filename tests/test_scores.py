"""Per-item score tables: the vectorised summaries equal the plain ones, on every shape."""

from __future__ import annotations

import random

import pytest

from evalledger.ledger.scores import parse_scores, summarize, summarize_many

HEADER = (
    "id,category,correct,score,partial,formatted,latency_ms,prompt_tokens,completion_tokens,error"
)


def _csv(rng: random.Random, n: int, *, cluster: bool = False, errors: bool = False,
         quoted: bool = False, blank_score: bool = False) -> bytes:  # fmt: skip
    head = HEADER + (",cluster" if cluster else "")
    lines = [head]
    for i in range(n):
        correct = int(rng.random() < 0.6)
        score = "" if blank_score and i == 3 else repr(rng.random() if i % 3 else correct)
        error = ""
        if errors and i % 7 == 0:
            error = '"ValueError: bad, very bad"' if quoted else "TimeoutError: slow"
        row = [f"q{i:04d}", "cat", str(correct), score, str(int(rng.random() < 0.7)),
               str(int(rng.random() < 0.9)), "1.5", "10", "5", error]  # fmt: skip
        if cluster:
            row.append(f"c{i // 4}")
        lines.append(",".join(row))
    return ("\n".join(lines) + "\n").encode()


def _close(a: dict, b: dict) -> None:  # type: ignore[type-arg]
    assert a.keys() == b.keys()
    for col in a:
        assert a[col].keys() == b[col].keys(), col
        for key in a[col]:
            assert a[col][key] == pytest.approx(b[col][key], rel=1e-12, abs=1e-15), (col, key)


@pytest.mark.parametrize(
    "shape",
    [
        {}, {"cluster": True}, {"errors": True}, {"errors": True, "quoted": True},
        {"cluster": True, "errors": True}, {"blank_score": True},
    ],
)  # fmt: skip
def test_summarize_many_equals_summarize(shape: dict) -> None:  # type: ignore[type-arg]
    rng = random.Random(7)
    blobs = {f"oid{i}": _csv(rng, n, **shape) for i, n in enumerate([1, 2, 30, 200, 57])}
    blobs["empty"] = (HEADER + "\n").encode()
    many = summarize_many(blobs)
    assert many.keys() == blobs.keys()
    for oid, data in blobs.items():
        _close(many[oid], summarize(parse_scores(data)))
    assert many["empty"] == {}
    if shape.get("errors"):  # the one-item cell's item errored: nothing scored
        assert many["oid0"] == {}
    else:
        assert many["oid0"]["correct"]["sd"] == 0.0  # one item: no spread


def test_errored_items_are_left_out_of_the_summary() -> None:
    data = (HEADER + "\na,c,1,1.0,1,1,1,1,1,\nb,c,0,0.0,0,1,1,1,1,TimeoutError: slow\n").encode()
    summary = summarize_many({"x": data})["x"]
    assert summary["correct"] == {"n": 1.0, "mean": 1.0, "sd": 0.0}
    assert parse_scores(data).errored == 1
