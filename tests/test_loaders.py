from __future__ import annotations

import csv
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalledger.benchmarks.base import Item
from evalledger.benchmarks.files import (
    CsvBenchmark,
    HFDiskBenchmark,
    JsonlBenchmark,
    ParquetBenchmark,
)
from evalledger.benchmarks.gsm8k import GSM8KBenchmark, gsm8k_target
from evalledger.errors import ConfigError
from evalledger.plugins import load_benchmark

ROWS: list[dict[str, Any]] = [
    {"qid": "q1", "question": "2+2?", "answer": "4", "subject": "math", "options": ["3", "4"]},
    {
        "qid": "q2",
        "question": "Capital of Peru?",
        "answer": "Lima",
        "subject": "geo",
        "options": ["Lima", "Quito", "La Paz"],
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
EXPECTED = [
    Item("q1", "2+2?", "4", "math", ("3", "4")),
    Item("q2", "Capital of Peru?", "Lima", "geo", ("Lima", "Quito", "La Paz")),
    Item("q3", "3*3?", "9", "math", ("9", "6")),
]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    return path


def _hf_feature(t: pa.DataType) -> dict[str, Any]:
    if pa.types.is_list(t):
        return {"feature": _hf_feature(t.value_type), "_type": "Sequence"}
    return {"dtype": "string" if pa.types.is_string(t) else str(t), "_type": "Value"}


def _hf_dataset(
    folder: Path,
    rows: list[dict[str, Any]],
    shards: int = 1,
    split: str | None = None,
    labels: dict[str, list[str]] | None = None,
) -> Path:
    """A folder laid out as ``datasets.Dataset.save_to_disk`` writes it."""
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    features = {f.name: _hf_feature(f.type) for f in table.schema}
    for column, names in (labels or {}).items():
        features[column] = {"names": names, "_type": "ClassLabel"}
    schema = table.schema.with_metadata(
        {"huggingface": json.dumps({"info": {"features": features}})}
    )
    table = table.replace_schema_metadata(schema.metadata)
    names = [f"data-{i:05d}-of-{shards:05d}.arrow" for i in range(shards)]
    per = -(-len(rows) // shards)
    for i, name in enumerate(names):
        with (
            pa.OSFile(str(folder / name), "wb") as sink,
            pa.ipc.new_stream(sink, table.schema) as writer,  # IPC *stream* format
        ):
            writer.write_table(table.slice(i * per, per))
    info = {
        "builder_name": None,
        "citation": "",
        "config_name": None,
        "dataset_size": None,
        "description": "",
        "download_checksums": None,
        "download_size": None,
        "features": features,
        "homepage": "",
        "license": "",
        "size_in_bytes": None,
        "splits": None,
        "supervised_keys": None,
        "version": None,
    }
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2))
    state = {
        "_data_files": [{"filename": n} for n in names],
        "_fingerprint": "0123456789abcdef",
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": split,
    }
    (folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    return folder


def _hf_dataset_dict(folder: Path, splits: dict[str, list[dict[str, Any]]]) -> Path:
    for name, rows in splits.items():
        _hf_dataset(folder / name, rows, split=name)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    return folder


def _load(tmp_path: Path, **config: Any) -> list[Item]:
    return load_benchmark("b", config, root=tmp_path).load()


def test_entry_points_name_the_loader_classes(tmp_path: Path) -> None:
    names = {ep.name for ep in entry_points(group="evalledger.benchmarks")}
    assert {"jsonl", "csv", "parquet", "hf_disk", "gsm8k"} <= names
    _jsonl(tmp_path / "d.jsonl", [{"input": "a", "target": "b"}])
    bench = load_benchmark(
        "x", {"loader": "jsonl", "path": "d.jsonl", "scorer": "exact"}, root=tmp_path
    )
    assert type(bench) is JsonlBenchmark
    assert bench.name == "x" and bench.root == tmp_path


def test_every_format_loads_the_same_items(tmp_path: Path) -> None:
    _jsonl(tmp_path / "d.jsonl", ROWS)
    _csv(tmp_path / "d.csv", ROWS)
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    _hf_dataset(tmp_path / "hf", ROWS)
    for loader, path, cls in [
        ("jsonl", "d.jsonl", JsonlBenchmark),
        ("csv", "d.csv", CsvBenchmark),
        ("parquet", "d.parquet", ParquetBenchmark),
        ("hf_disk", "hf", HFDiskBenchmark),
    ]:
        bench = load_benchmark("b", {"loader": loader, "path": path, "fields": FIELDS}, tmp_path)
        assert type(bench) is cls
        assert bench.load() == EXPECTED, loader
        # absolute paths work without a root
        absolute = load_benchmark("b", {"loader": loader, "path": str(tmp_path / path),
                                        "fields": FIELDS})  # fmt: skip
        assert absolute.load() == EXPECTED, loader


def test_default_fields_stable_ids_and_limit(tmp_path: Path) -> None:
    rows = [{"input": f"q{i}", "target": i} for i in range(5)]
    _jsonl(tmp_path / "d.jsonl", rows)
    items = _load(tmp_path, loader="jsonl", path="d.jsonl")
    assert [i.id for i in items] == [f"b-{i:05d}" for i in range(5)]
    assert items[3] == Item("b-00003", "q3", "3", "", None)
    assert _load(tmp_path, loader="jsonl", path="d.jsonl") == items  # stable across loads
    assert _load(tmp_path, loader="jsonl", path="d.jsonl", limit=2) == items[:2]
    # the id is the row's position, whatever the limit, and its own name
    named = load_benchmark("mine", {"loader": "jsonl", "path": "d.jsonl", "limit": 1}, tmp_path)
    assert [i.id for i in named.load()] == ["mine-00000"]


def test_present_id_and_category_columns_are_used_by_default(tmp_path: Path) -> None:
    rows = [
        {"id": 7, "input": "a", "target": 1.5, "category": "x", "choices": ["p", "q"]},
        {"id": "k", "input": {"msg": "hi"}, "target": "B", "category": None},
    ]
    _jsonl(tmp_path / "d.jsonl", rows)
    assert _load(tmp_path, loader="jsonl", path="d.jsonl") == [
        Item("7", "a", "1.5", "x", ("p", "q")),
        Item("k", '{"msg": "hi"}', "B", "", None),
    ]


def test_csv_choices_as_json_or_pipes_and_a_byte_order_mark(tmp_path: Path) -> None:
    text = (
        "\ufeffid,input,target,choices\n"
        '1,"Pick, one",B,"[""x"", ""y, z""]"\n'
        "2,two,a,a | b|c\n"
        "3,three,c,\n"
    )
    (tmp_path / "d.csv").write_text(text, encoding="utf-8")
    assert _load(tmp_path, loader="csv", path="d.csv") == [
        Item("1", "Pick, one", "B", "", ("x", "y, z")),
        Item("2", "two", "a", "", ("a", "b", "c")),
        Item("3", "three", "c", "", None),
    ]


def test_parquet_limit_across_row_groups_and_nulls(tmp_path: Path) -> None:
    rows = [{"input": f"q{i}", "target": i, "category": None, "big": "x" * 100} for i in range(7)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet", row_group_size=2)
    items = _load(tmp_path, loader="parquet", path="d.parquet", limit=5)
    assert [(i.id, i.input, i.target, i.category) for i in items] == [
        (f"b-{i:05d}", f"q{i}", str(i), "") for i in range(5)
    ]
    assert len(_load(tmp_path, loader="parquet", path="d.parquet")) == 7


def test_hf_disk_shards_class_labels_and_limit(tmp_path: Path) -> None:
    rows = [{"text": f"t{i}", "label": i % 3, "topic": "a" if i < 4 else "b"} for i in range(7)]
    _hf_dataset(tmp_path / "hf", rows, shards=3, labels={"label": ["neg", "neu", "pos"]})
    fields = {"input": "text", "target": "label", "category": "topic"}
    items = _load(tmp_path, loader="hf_disk", path="hf", fields=fields)
    assert [(i.id, i.input, i.target, i.category) for i in items] == [
        (f"b-{i:05d}", f"t{i}", ["neg", "neu", "pos"][i % 3], "a" if i < 4 else "b")
        for i in range(7)
    ]
    assert _load(tmp_path, loader="hf_disk", path="hf", fields=fields, limit=4) == items[:4]


def test_hf_disk_indices_mapping_of_old_datasets_versions(tmp_path: Path) -> None:
    # datasets < 2 saved a selection (select/shuffle) as an indices file beside the data
    rows = [{"input": f"q{i}", "target": str(i)} for i in range(5)]
    folder = _hf_dataset(tmp_path / "hf", rows)
    indices = pa.table({"indices": pa.array([4, 0, 2], type=pa.uint64())})
    with (
        pa.OSFile(str(folder / "indices.arrow"), "wb") as sink,
        pa.ipc.new_stream(sink, indices.schema) as writer,
    ):
        writer.write_table(indices)
    state = json.loads((folder / "state.json").read_text())
    state["_indices_data_files"] = [{"filename": "indices.arrow"}]
    (folder / "state.json").write_text(json.dumps(state))
    items = _load(tmp_path, loader="hf_disk", path="hf")
    assert [(i.id, i.input) for i in items] == [("b-00000", "q4"), ("b-00001", "q0"),
                                                ("b-00002", "q2")]  # fmt: skip
    assert _load(tmp_path, loader="hf_disk", path="hf", limit=2) == items[:2]


def test_hf_dataset_dict_splits(tmp_path: Path) -> None:
    _hf_dataset_dict(tmp_path / "dd", {"train": ROWS[:1], "test": ROWS})
    base = {"loader": "hf_disk", "path": "dd", "fields": FIELDS}
    assert _load(tmp_path, **base, split="test") == EXPECTED
    assert _load(tmp_path, **base, split="train") == EXPECTED[:1]
    # a split folder can also be named directly
    assert _load(tmp_path, **{**base, "path": "dd/test"}) == EXPECTED
    with pytest.raises(ConfigError, match=r"b\.split: 'dev' is not a split of dd; splits: train"):
        _load(tmp_path, **base, split="dev")
    with pytest.raises(ConfigError, match="dd is a DatasetDict; set split: to one of train, test"):
        _load(tmp_path, **base)
    with pytest.raises(ConfigError, match=r"b\.split: dd/test is a single dataset"):
        _load(tmp_path, **{**base, "path": "dd/test"}, split="test")


def _error(tmp_path: Path, **config: Any) -> str:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, **config)
    line = err.value.one_line()
    assert "\n" not in line
    return line


@pytest.mark.parametrize(
    ("content", "config", "message"),
    [
        (
            '{"id": 1, "input": "a", "target": "b"}\n{"id": 1, "input": "c", "target": "d"}',
            {},
            "benchmarks.b: duplicate item id '1' (d.jsonl line 1 and line 2)",
        ),
        (
            '{"input": "a", "target": "b"}\n\n{"input": "a", "target"\n',
            {},
            "benchmarks.b: d.jsonl line 3 is not valid JSON",
        ),
        ('["a", "b"]', {}, "d.jsonl line 1 is not a JSON object"),
        (
            '{"q": "a", "target": "b"}',
            {},
            "d.jsonl line 1 has no column 'input' (for input); columns: q, target; "
            "map it with fields: {input: <column>}",
        ),
        (
            '{"input": "a", "target": "b"}\n{"input": "c"}',
            {},
            "d.jsonl line 2 has no column 'target' (for target)",
        ),
        (
            '{"input": "a", "target": "b"}',
            {"fields": {"id": "qid"}},
            "has no column 'qid' (for id)",
        ),
        ('{"input": "a", "target": null}', {}, "d.jsonl line 1: target column 'target' is empty"),
        (
            '{"input": "a", "target": "b", "choices": "[1, 2"}',
            {},
            "d.jsonl line 1: choices '[1, 2' is not a JSON list",
        ),
        (
            '{"input": "a", "target": "b", "choices": 3}',
            {},
            "choices must be a list, not int",
        ),
        (
            '{"input": "a", "target": "b"}',
            {"fields": {"label": "x"}},
            "benchmarks.b.fields: Value error, unknown item field 'label'; "
            "known: id, input, target, choices, category, cluster",
        ),
        (
            '{"input": "a", "target": "b"}',
            {"path": "nope.jsonl"},
            "benchmarks.b: file nope.jsonl not found; fix benchmarks.b.path",
        ),
        (
            '{"input": "a", "target": "b"}',
            {"split": "train"},
            "benchmarks.b: unknown setting 'split'; known: path, fields, limit",
        ),
        ('{"input": "a", "target": "b"}', {"limit": 0}, "benchmarks.b.limit: Input should be"),
    ],
)
def test_jsonl_errors_are_one_line(
    tmp_path: Path, content: str, config: dict[str, Any], message: str
) -> None:
    (tmp_path / "d.jsonl").write_text(content)
    assert message in _error(tmp_path, **{"loader": "jsonl", "path": "d.jsonl", **config})


def test_other_format_errors(tmp_path: Path) -> None:
    (tmp_path / "short.csv").write_text("input,target\na,b\nc\n")
    assert "short.csv line 3: target column 'target' is empty" in _error(
        tmp_path, loader="csv", path="short.csv"
    )
    (tmp_path / "long.csv").write_text("input,target\na,b,c\n")
    assert "long.csv line 2 has more fields than the header" in _error(
        tmp_path, loader="csv", path="long.csv"
    )
    (tmp_path / "cols.csv").write_text("question,target\na,b\n")
    assert "cols.csv has no column 'input' (for input); columns: question, target" in _error(
        tmp_path, loader="csv", path="cols.csv"
    )
    (tmp_path / "bad.parquet").write_text("not parquet")
    assert "bad.parquet is not a Parquet file" in _error(
        tmp_path, loader="parquet", path="bad.parquet"
    )
    pq.write_table(pa.Table.from_pylist([{"q": "a", "target": "b"}]), tmp_path / "d.parquet")
    assert "d.parquet has no column 'input' (for input); columns: q, target" in _error(
        tmp_path, loader="parquet", path="d.parquet"
    )
    (tmp_path / "notadataset").mkdir()
    assert "notadataset is not a dataset saved with save_to_disk (no state.json)" in _error(
        tmp_path, loader="hf_disk", path="notadataset"
    )
    assert "benchmarks.b: file gone not found" in _error(tmp_path, loader="hf_disk", path="gone")
    (tmp_path / "latin1.jsonl").write_bytes('{"input": "café", "target": "b"}\n'.encode("latin-1"))
    assert "latin1.jsonl is not UTF-8 text (near line 1)" in _error(
        tmp_path, loader="jsonl", path="latin1.jsonl"
    )
    dup = [{"id": "same", "input": "a", "target": "b"}] * 2
    pq.write_table(pa.Table.from_pylist(dup), tmp_path / "dup.parquet")
    assert "duplicate item id 'same' (dup.parquet row 0 and row 1)" in _error(
        tmp_path, loader="parquet", path="dup.parquet"
    )


@pytest.mark.parametrize(
    ("cls", "config", "message"),
    [
        (JsonlBenchmark, {"path": "d.jsonl", "template": "Q: {input}"}, "'template'"),
        (CsvBenchmark, {"path": "d.csv", "sheet": 1}, "'sheet'; known: path, fields, limit"),
        (ParquetBenchmark, {"path": "d.parquet", "split": "x"}, "'split'"),
        (HFDiskBenchmark, {"path": "hf", "subset": "x"}, "known: path, fields, limit, split"),
        (GSM8KBenchmark, {"path": "g.jsonl", "fields": {}}, "'fields'; known: path, limit"),
    ],
)
def test_unknown_settings_are_errors(
    cls: type[JsonlBenchmark], config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        cls.from_config("b", config)
    assert err.value.one_line().startswith("benchmarks.b: unknown setting ")
    assert message in err.value.one_line()


def test_missing_path_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"benchmarks\.b\.path: Field required"):
        JsonlBenchmark.from_config("b", {})


def test_file_loaders_keep_the_default_numeric_check(tmp_path: Path) -> None:
    _jsonl(tmp_path / "d.jsonl", [{"input": "a", "target": "12"}])
    bench = load_benchmark("b", {"loader": "jsonl", "path": "d.jsonl"}, tmp_path)
    (item,) = bench.load()
    assert bench.check(item, "The answer is 12.").correct
    assert bench.check(item, "11").partial and not bench.check(item, "11").correct


GSM8K_LINES = [
    {
        "question": "Tom has 1,200 apples and sells 50. How many are left?",
        "answer": "He has 1,200 - 50 = <<1200-50=1150>>1,150 left.\n#### 1,150",
    },
    {"question": "Q2", "answer": "so 3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "Q3", "answer": "owes 5 - 8 = -3\n#### -3"},
]


def test_gsm8k_items(tmp_path: Path) -> None:
    _jsonl(tmp_path / "gsm.jsonl", GSM8K_LINES)
    bench = load_benchmark("gsm", {"loader": "gsm8k", "path": "gsm.jsonl"}, root=tmp_path)
    assert type(bench) is GSM8KBenchmark
    items = bench.load()
    assert items == [
        Item("gsm8k-00000", GSM8K_LINES[0]["question"], "1150"),
        Item("gsm8k-00001", "Q2", "7"),
        Item("gsm8k-00002", "Q3", "-3"),
    ]
    limited = load_benchmark("gsm", {"loader": "gsm8k", "path": "gsm.jsonl", "limit": 2}, tmp_path)
    assert limited.load() == items[:2]
    assert gsm8k_target("x\n#### $2,500\n") == "$2500"


@pytest.mark.parametrize(
    ("output", "target", "expected"),
    # (correct, partial, formatted, extracted)
    [
        ("So the total is 1,150.", "1150", (True, True, False, "1,150")),
        ("The answer is 7. Check: 3 + 4 = 7", "7", (True, True, True, "7")),
        ("The answer is 7, since 3 + 4 = 7 and not 8", "7", (True, True, True, "7")),
        ("3 + 4 = 7\n#### 7", "7", (True, True, True, "7")),
        ("<answer>7</answer>", "7", (True, True, True, "7")),
        ("It costs $1,100.", "1150", (False, True, False, "$1,100")),
        ("8", "7", (False, False, False, "8")),
        ("The debt is -3 dollars", "-3", (True, True, False, "-3")),
        ("no idea", "7", (False, False, False, None)),
    ],
)
def test_gsm8k_check(
    tmp_path: Path, output: str, target: str, expected: tuple[bool, bool, bool, str | None]
) -> None:
    bench = GSM8KBenchmark.from_config("gsm", {"path": "gsm.jsonl"}, tmp_path)
    s = bench.check(Item("gsm8k-00000", "?", target), output)
    assert (s.correct, s.partial, s.formatted, s.extracted) == expected
    assert s.score == float(s.correct)


def test_gsm8k_errors(tmp_path: Path) -> None:
    (tmp_path / "g.jsonl").write_text('{"question": "a", "answer": "4"}\n')
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, loader="gsm8k", path="g.jsonl")
    assert "benchmarks.b: g.jsonl line 1 is not a GSM8K record" in err.value.one_line()
    (tmp_path / "g.jsonl").write_text('{"question": "a", "answer": "#### 4"}\n{"question"\n')
    assert "g.jsonl line 2 is not valid JSON" in _error(tmp_path, loader="gsm8k", path="g.jsonl")
    assert _load(tmp_path, loader="gsm8k", path="g.jsonl", limit=1)[0].target == "4"
    assert "benchmarks.b: file none.jsonl not found; fix benchmarks.b.path" in _error(
        tmp_path, loader="gsm8k", path="none.jsonl"
    )


def test_a_mapped_cluster_column_goes_to_item_meta_in_every_format(tmp_path: Path) -> None:
    rows = [{**r, "passage": p} for r, p in zip(ROWS, ["p1", "p1", 7], strict=True)]
    _jsonl(tmp_path / "d.jsonl", rows)
    _csv(tmp_path / "d.csv", rows)
    pq.write_table(pa.Table.from_pylist([{**r, "passage": str(r["passage"])} for r in rows]),
                   tmp_path / "d.parquet")  # fmt: skip
    _hf_dataset(tmp_path / "hf", [{**r, "passage": str(r["passage"])} for r in rows])
    for loader, path in [("jsonl", "d.jsonl"), ("csv", "d.csv"), ("parquet", "d.parquet"),
                         ("hf_disk", "hf")]:  # fmt: skip
        fields = {**FIELDS, "cluster": "passage"}
        items = _load(tmp_path, loader=loader, path=path, fields=fields)
        assert [i.meta for i in items] == [{"cluster": "p1"}, {"cluster": "p1"},
                                           {"cluster": "7"}], loader  # fmt: skip
        # without the mapping the column is ignored, even one named "cluster"
        assert all(i.meta == {} for i in _load(tmp_path, loader=loader, path=path, fields=FIELDS))
    _jsonl(tmp_path / "c.jsonl", [{"input": "a", "target": "b", "cluster": "x"}])
    assert _load(tmp_path, loader="jsonl", path="c.jsonl")[0].meta == {}


def test_a_mapped_cluster_column_must_exist(tmp_path: Path) -> None:
    _jsonl(tmp_path / "d.jsonl", ROWS)
    with pytest.raises(ConfigError, match=r"no column 'passage' \(for cluster\)"):
        _load(tmp_path, loader="jsonl", path="d.jsonl", fields={**FIELDS, "cluster": "passage"})


def test_data_files_of_each_loader(tmp_path: Path) -> None:
    _jsonl(tmp_path / "d.jsonl", ROWS)
    _hf_dataset_dict(tmp_path / "dd", {"train": ROWS[:1], "test": ROWS})
    (tmp_path / "g.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n')
    jsonl = load_benchmark("b", {"loader": "jsonl", "path": "d.jsonl"}, tmp_path)
    assert jsonl.data_files() == [tmp_path / "d.jsonl"]
    gsm = load_benchmark("g", {"loader": "gsm8k", "path": "g.jsonl"}, tmp_path)
    assert gsm.data_files() == [tmp_path / "g.jsonl"]
    hf = load_benchmark("h", {"loader": "hf_disk", "path": "dd", "split": "test"}, tmp_path)
    assert [p.name for p in hf.data_files()] == [
        "data-00000-of-00001.arrow", "dataset_info.json", "state.json"
    ]  # fmt: skip
    assert all(p.parent == tmp_path / "dd" / "test" for p in hf.data_files())
    arith = load_benchmark("a", {"loader": "arith", "n_items": 3}, tmp_path)
    assert arith.data_files() == []
    assert arith.data_hash() is None
