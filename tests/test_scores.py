"""Per-item score tables: the vectorised summaries equal the plain ones, on every shape."""

from __future__ import annotations

import io
import random

import pytest

from evalledger.ledger.scores import parse_scores, summarize, summarize_many

#: The columns files had before per-item latency moved to the predictions file.
HEADER = (
    "id,category,correct,score,partial,formatted,latency_ms,prompt_tokens,completion_tokens,error"
)


def _csv(rng: random.Random, n: int, *, cluster: bool = False, errors: bool = False,
         quoted: bool = False, blank_score: bool = False, timed: bool = True) -> bytes:  # fmt: skip
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
    if not timed:  # the columns evalledger run writes now
        lines = [",".join(c for j, c in enumerate(line.split(",")) if j != 6) for line in lines]
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
        {"timed": False}, {"timed": False, "cluster": True, "errors": True},
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


# --- damaged score files (issue 10, findings 8 and 12): refused, never read in part ---

GOOD = (HEADER + "\na,c,1,1.0,1,1,1,1,1,\nb,c,0,0.0,0,1,1,1,1,TimeoutError: slow\n").encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "is empty"),
        (GOOD[:-5], "ends in the middle of a line"),
        (GOOD.replace(b"b,c,0,0.0,0,1,1,1,1,", b"b,c,0"), "line 3 has 3 fields where the header"),
        (GOOD.replace(b"a,c,1,1.0", b"a,c,yes,1.0"), "line 2: 'yes' in column 'correct' is not a"),
        (GOOD.replace(b"a,c,1", b"a,\xff,1"), "is not UTF-8 text (bad byte at offset 95)"),
        (b"\x00garbage, not a csv\n", "has no score columns"),
        (GOOD.replace(b",error\n", b',error\n"q",'), "line 2 has 11 fields"),
    ],
    ids=["empty", "cut", "short row", "not a number", "not utf-8", "garbage", "quoted"],
)  # fmt: skip
def test_a_damaged_scores_file_is_refused_with_the_reason(data: bytes, reason: str) -> None:
    from evalledger.safeload import DamagedData

    with pytest.raises(DamagedData) as err:
        parse_scores(data)
    assert reason in err.value.describe("s.csv")
    assert isinstance(summarize_many({"x": data})["x"], DamagedData)


def test_rows_count_errored_items_and_blank_values_are_missing() -> None:
    from evalledger.ledger.scores import check_scores, summarize_files

    table = parse_scores(GOOD)
    assert (table.rows, table.errored, len(table.ids)) == (2, 1, 1)
    assert check_scores(GOOD) == 2
    blank = GOOD.replace(b"a,c,1,1.0", b"a,c,1,")  # an empty score is missing, not wrong
    assert parse_scores(blank).columns["score"][0] != parse_scores(blank).columns["score"][0]
    found = summarize_files({"good": GOOD, "cut": GOOD[:-3]})
    assert found["good"] == {"rows": 2, "columns": summarize(parse_scores(GOOD))}
    assert "ends in the middle of a line" in found["cut"].describe("s.csv")


def test_one_damaged_file_among_many_does_not_spoil_the_others() -> None:
    from evalledger.safeload import DamagedData

    rng = random.Random(3)
    blobs = {f"oid{i}": _csv(rng, 40) for i in range(5)}
    bad = blobs["oid2"].decode().splitlines()
    bad[9] = bad[9].split(",", 3)[0] + ",cat,maybe," + bad[9].split(",", 3)[3]
    blobs["oid2"] = ("\n".join(bad) + "\n").encode()
    many = summarize_many(blobs)
    assert isinstance(many["oid2"], DamagedData)
    assert "line 10: 'maybe' in column 'correct'" in many["oid2"].describe("s.csv")
    for oid in ("oid0", "oid1", "oid3", "oid4"):
        _close(many[oid], summarize(parse_scores(blobs[oid])))


def test_files_with_and_without_latency_summarise_alike() -> None:
    """Old score files (a latency_ms column) and new ones read side by side, one answer."""
    timed = _csv(random.Random(5), 60, cluster=True, errors=True)
    plain = _csv(random.Random(5), 60, cluster=True, errors=True, timed=False)
    assert b"latency_ms" in timed and b"latency_ms" not in plain
    old, new = parse_scores(timed), parse_scores(plain)
    assert old.columns.pop("latency_ms") == [1.5] * len(old.ids)
    assert (old.ids, old.columns, old.cluster, old.errored) == (
        new.ids, new.columns, new.cluster, new.errored,
    )  # fmt: skip
    many = summarize_many({"old": timed, "new": plain})
    _close(many["old"], many["new"])
    _close(many["new"], summarize(new))


def test_streamed_summaries_equal_a_data_frame_of_every_file() -> None:
    """Each file reduced on its own equals the one data frame of all of them (pandas)."""
    import pandas as pd

    from evalledger.ledger.scores import summarize_files

    rng = random.Random(11)
    blobs = {f"oid{i}": _csv(rng, n, errors=i % 2 == 0, blank_score=i % 3 == 0, timed=i % 4 != 0)
             for i, n in enumerate([5, 200, 1, 33, 80, 12])}  # fmt: skip
    found = summarize_files(blobs)
    for oid, data in blobs.items():
        frame = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""])
        frame = frame[frame["error"].isna()]
        assert found[oid]["rows"] == data.count(b"\n") - 1
        for col in ("correct", "score", "partial", "formatted"):
            values = frame[col].dropna()
            if values.empty:
                assert col not in found[oid]["columns"]
                continue
            got = found[oid]["columns"][col]
            assert got["n"] == len(values)
            assert got["mean"] == pytest.approx(values.mean(), rel=1e-12)
            sd = values.std(ddof=1) if len(values) > 1 else 0.0
            assert got["sd"] == pytest.approx(sd, rel=1e-12, abs=1e-15)


def test_a_file_with_compensating_rows_is_refused_not_misread() -> None:
    """A short row and a long one keep the comma count: the file is still refused."""
    from evalledger.ledger.scores import summarize_files
    from evalledger.safeload import DamagedData

    bad = GOOD.replace(b"a,c,1,1.0,1,1,1,1,1,", b"a,c,1,1.0,1,1,1,1,1,,").replace(
        b"b,c,0,0.0,0,1,1,1,1,T", b"b,c,0,0.0,0,1,1,1,1T"
    )
    assert bad.count(b",") == GOOD.count(b",")
    found = summarize_files({"x": bad})["x"]
    assert isinstance(found, DamagedData)
    assert "line 2 has 11 fields" in found.describe("s.csv")
