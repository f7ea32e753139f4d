"""Cells read ahead (metrics, score summary, md5s as one cache row) equal the plain reads."""

from __future__ import annotations

import hashlib
import io

import pytest

import ledger_factory as lf
from evalledger.ledger.history import Ledger, _parse_metrics
from evalledger.ledger.scores import parse_scores, summarize

REVS = ("v1", "v2", "v3", "workspace")


def _memo(ledger: Ledger, rev: str) -> dict[str, dict[str, object]]:
    snap = ledger.snapshot(rev)
    snap.summaries()
    keep = set(snap.files.values())
    return {kind: {o: v for o, v in got.items() if o in keep} for kind, got in ledger.memo.items()}


@pytest.mark.parametrize("rev", REVS)
def test_cells_read_ahead_equal_each_file_read_alone(fresh: lf.Built, rev: str) -> None:
    with Ledger(fresh.project) as ledger:
        memo = _memo(ledger, rev)
        snap = ledger.snapshot(rev)
        assert memo["metrics"] and memo["summary"]
        for key, cell in snap.cells.items():
            raw = snap.raw([f"metrics/{key}.json", f"metrics/{key}.scores.csv"])
            metrics = raw[f"metrics/{key}.json"]
            assert memo["metrics"][cell.metrics_oid] == _parse_metrics(metrics)
            assert memo["md5"][cell.metrics_oid] == hashlib.md5(metrics).hexdigest()
            if cell.scores_oid is None:
                continue
            scores = raw[f"metrics/{key}.scores.csv"]
            assert memo["md5"][cell.scores_oid] == hashlib.md5(scores).hexdigest()
            table = parse_scores(scores)
            summary = memo["summary"][cell.scores_oid]
            assert isinstance(summary, dict)
            assert summary["rows"] == table.rows
            plain = summarize(table)
            assert summary["columns"].keys() == plain.keys()
            for col, entry in plain.items():
                assert summary["columns"][col] == pytest.approx(entry, rel=1e-12, abs=1e-15)
    with Ledger(fresh.project) as warm:  # one cache row a cell gives the same values
        assert _memo(warm, rev) == memo


@pytest.mark.parametrize("rev", ["v3", "workspace"])
def test_summaries_equal_one_data_frame_of_every_scores_file(built: lf.Built, rev: str) -> None:
    """As the leaderboard read them before: every file of the revision in one pandas frame."""
    import pandas as pd

    with Ledger(built.project, use_cache=False) as ledger:
        snap = ledger.snapshot(rev)
        summaries = snap.summaries()
        paths = {f"metrics/{k}.scores.csv": k for k, c in snap.cells.items() if c.scores_oid}
        raw = snap.raw(paths)
    frames = []
    for path, data in raw.items():
        frame = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""])
        frames.append(frame.assign(cell=paths[path]))
    every = pd.concat(frames)
    if "error" in every:
        every = every[every["error"].isna()]
    assert set(summaries) == set(paths.values())
    for key, group in every.groupby("cell"):
        for col in ("correct", "score", "partial", "formatted"):
            if col not in group:
                continue
            values = group[col].dropna()
            if values.empty:
                assert col not in summaries[str(key)]
                continue
            got = summaries[str(key)][col]
            assert got["n"] == len(values)
            assert got["mean"] == pytest.approx(values.mean(), rel=1e-12)
            sd = values.std(ddof=1) if len(values) > 1 else 0.0
            assert got["sd"] == pytest.approx(sd, rel=1e-12, abs=1e-15)


def test_a_damaged_scores_file_is_still_refused_after_reading_ahead(fresh: lf.Built) -> None:
    from evalledger.errors import CorruptFileError

    key = next(iter(lf.WORKSPACE))
    path = fresh.root / "metrics" / f"{key}.scores.csv"
    path.write_bytes(path.read_bytes()[:-3])  # cut mid-line
    with Ledger(fresh.project) as ledger, pytest.raises(CorruptFileError) as err:
        ledger.snapshot().summaries()
    assert f"metrics/{key}.scores.csv" in err.value.message
    assert "ends in the middle of a line" in err.value.message


def _alone(data: bytes) -> object:
    try:
        return _parse_metrics(data)
    except ValueError:
        return None


@pytest.mark.parametrize(
    "texts",
    [
        [b'{"a": 1}', b'{"b": [1, 2], "c": {"d": null}}', b' {"e": NaN}\n'],
        [b'{"a": 1}', b"[1, 2]", b'"x"', b'{"b": 2}'],  # not objects: no verdict
        [b'{"a": 1}', b'{"a": 1', b'{"b": 2}'],  # one damaged: none has a verdict
        [b'{"a":1},{"b":[0', b"0]}"],  # two halves that join into two objects
        [b'{"a":1},{"b":"}', b'{","x":1}'],
        [b'{"a": 1}', b"\xff\xfe", b'{"' + b"[" * 150 + b'": 1}'],  # not UTF-8, bracket-heavy
        [b"\xef\xbb\xbf" + b'{"a": 1}', b'{"a": 1e999, "b": -0.0}'],
    ],
)
def test_metrics_parsed_together_are_each_file_parsed_alone(texts: list[bytes]) -> None:
    from evalledger.safeload import parse_json_objects

    got = parse_json_objects(texts)
    assert len(got) == len(texts)
    for data, value in zip(texts, got, strict=True):
        if value is not None:  # a verdict is the file's own; no verdict, the file alone says
            assert value == _alone(data) or repr(value) == repr(_alone(data))
    for data, value in zip(texts, got, strict=True):
        if _alone(data) is None:
            assert value is None


def test_metrics_parsed_together_share_their_keys() -> None:
    from evalledger.safeload import parse_json_objects

    first, second = parse_json_objects([b'{"accuracy": 0.5}', b'{"accuracy": 0.7}'])
    assert first is not None and second is not None
    assert next(iter(first)) is next(iter(second))


@pytest.mark.parametrize(
    ("rows", "together"),
    [
        (['{"a":1}', "null", '"x"', "[1,2]"], [{"a": 1}, None, "x", [1, 2]]),
        (['{"a":1}', '{"a":'], None),  # one damaged row: each is decoded alone
        (['{"a":1},{"b":[0', "0]}"], None),  # two damaged halves that join
        (['{"a":1}', None], None),
    ],
)
def test_cache_rows_decoded_together_or_each_alone(rows: list[object], together: object) -> None:
    from evalledger.ledger.cache import _decode_all

    assert _decode_all(rows) == together
