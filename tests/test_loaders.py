from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalledger.errors import ConfigError
from evalledger.plugins import load_benchmark

ROWS = [
    {"qid": "q1", "question": "2+2?", "answer": "4", "subject": "math", "options": ["3", "4", "5"]},
    {
        "qid": "q2",
        "question": "Capital of Peru?",
        "answer": "Lima",
        "subject": "geo",
        "options": ["Lima", "Quito"],
    },
    {"qid": "q3", "question": "3*3?", "answer": "9", "subject": "math", "options": ["9", "6"]},
]
FIELDS = {
    "id": "qid",
    "input": "question",
    "target": "answer",
    "category": "subject",
    "choices": "options",
}


def _check(items) -> None:  # type: ignore[no-untyped-def]
    assert [i.id for i in items] == ["q1", "q2", "q3"]
    assert items[1].input == "Capital of Peru?" and items[1].target == "Lima"
    assert items[1].category == "geo" and items[1].choices == ("Lima", "Quito")


def _hf_folder(folder: Path, rows: list[dict]) -> None:  # type: ignore[type-arg]
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    with (
        pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink,
        pa.ipc.new_stream(sink, table.schema) as writer,
    ):
        writer.write_table(table)
    (folder / "dataset_info.json").write_text(json.dumps({"features": {}}))
    (folder / "state.json").write_text(
        json.dumps(
            {
                "_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                "_fingerprint": "x",
                "_format_columns": None,
                "_format_kwargs": {},
                "_format_type": None,
                "_output_all_columns": False,
                "_split": None,
            }
        )
    )


def test_jsonl_csv_parquet_and_hf_disk_load_the_same_items(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    with (tmp_path / "d.csv").open("w") as fh:
        fh.write("qid,question,answer,subject,options\n")
        for r in ROWS:
            fh.write(
                f'{r["qid"]},"{r["question"]}",{r["answer"]},{r["subject"]},'
                f'"{json.dumps(r["options"]).replace(chr(34), chr(34) * 2)}"\n'
            )
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    _hf_folder(tmp_path / "hf", ROWS)
    for loader, path in [
        ("jsonl", "d.jsonl"),
        ("csv", "d.csv"),
        ("parquet", "d.parquet"),
        ("hf_disk", "hf"),
    ]:
        bench = load_benchmark(
            "b",
            {"loader": loader, "path": path, "fields": FIELDS, "scorer": "exact"},
            root=tmp_path,
        )
        assert type(bench).__name__.lower().startswith(loader.split("_")[0]), loader
        _check(bench.load())


def test_hf_dataset_dict_split(tmp_path: Path) -> None:
    _hf_folder(tmp_path / "dd" / "train", ROWS[:1])
    _hf_folder(tmp_path / "dd" / "test", ROWS)
    (tmp_path / "dd" / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    bench = load_benchmark(
        "b", {"loader": "hf_disk", "path": "dd", "split": "test", "fields": FIELDS}, root=tmp_path
    )
    _check(bench.load())
    bad = load_benchmark(
        "b", {"loader": "hf_disk", "path": "dd", "split": "dev", "fields": FIELDS}, root=tmp_path
    )
    with pytest.raises(ConfigError, match="'dev' is not a split of dd; splits: train, test"):
        bad.load()


def test_default_fields_stable_ids_and_limit(tmp_path: Path) -> None:
    rows = [{"input": f"q{i}", "target": str(i)} for i in range(5)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    items = load_benchmark(
        "mine", {"loader": "jsonl", "path": "d.jsonl", "limit": 3}, root=tmp_path
    ).load()
    assert [i.id for i in items] == ["mine-00000", "mine-00001", "mine-00002"]
    assert items[0].choices is None and items[0].category == ""


@pytest.mark.parametrize(
    ("content", "config", "message"),
    [
        (
            '{"id": 1, "input": "a", "target": "b"}\n{"id": 1, "input": "c", "target": "d"}',
            {},
            "duplicate item id '1'",
        ),
        (
            '{"input": "a", "target": "b"}\n{"input": "a", "target"\n',
            {},
            "d.jsonl line 2 is not valid JSON",
        ),
        ('{"q": "a", "target": "b"}', {}, "column 'input' (for input) is not in the data"),
        ('{"input": "a", "target": "b"}', {"fields": {"label": "x"}}, "unknown item field 'label'"),
        (
            '{"input": "a", "target": "b"}',
            {"path": "nope.jsonl"},
            "benchmarks.b: file nope.jsonl not found",
        ),
        (
            '{"input": "a", "target": "b"}',
            {"sheet": 1},
            "benchmarks.b: unknown setting 'sheet'; known: path, fields, limit",
        ),
    ],
)
def test_bad_files_and_settings_are_one_line_errors(
    tmp_path: Path, content: str, config: dict, message: str
) -> None:  # type: ignore[type-arg]
    (tmp_path / "d.jsonl").write_text(content)
    with pytest.raises(ConfigError) as err:
        load_benchmark("b", {"loader": "jsonl", "path": "d.jsonl", **config}, root=tmp_path).load()
    assert message in err.value.one_line() and "\n" not in err.value.one_line()


def test_gsm8k_format(tmp_path: Path) -> None:
    lines = [
        {"question": "Tom has 1,200 apples...", "answer": "He sells...\n#### 1,150"},
        {"question": "Q2", "answer": "so 3 + 4 = <<3+4=7>>7\n#### 7"},
    ]
    (tmp_path / "gsm.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    bench = load_benchmark("gsm", {"loader": "gsm8k", "path": "gsm.jsonl"}, root=tmp_path)
    items = bench.load()
    assert [(i.id, i.target) for i in items] == [("gsm8k-00000", "1150"), ("gsm8k-00001", "7")]
    assert bench.check(items[0], "So the total is 1,150.").correct
    assert bench.check(items[1], "The answer is 7").formatted
    assert not bench.check(items[1], "8").correct
