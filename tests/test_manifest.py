from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evalledger.errors import ConfigError, CorruptFileError
from evalledger.manifest import (
    END_MARKER,
    SCHEMA_VERSION,
    CellStatus,
    ExecutionManifest,
    cell_fingerprint,
    dump_manifest,
    load_manifest,
    read_manifest,
)

GOLDEN_V1 = Path(__file__).parent / "data" / "manifest_v1.yaml"
GOLDEN_V2 = Path(__file__).parent / "data" / "manifest_v2.yaml"
GOLDEN_V3 = Path(__file__).parent / "data" / "manifest_v3.yaml"
GOLDEN_V4 = Path(__file__).parent / "data" / "manifest_v4.yaml"
GOLDEN_V5 = Path(__file__).parent / "data" / "manifest_v5.yaml"
GOLDEN_V5_JSON = Path(__file__).parent / "data" / "manifest_v5_json.yaml"


def test_golden_schema_v1_loads_and_upgrades() -> None:
    m = read_manifest(GOLDEN_V1)
    assert m.schema_version == SCHEMA_VERSION == 5
    assert all(rec.examples_errored == 0 for rec in m.cells.values())
    assert m.git.code_hash is None
    assert all(rec.data_hash is None for rec in m.cells.values())
    assert m.execution_id == "exec_2026-11-22_223300_b4b2ed5f"
    assert m.status.value == "partial"
    hard = m.cells["solver/arith_hard"]
    assert hard.status is CellStatus.FAILED
    assert hard.error == "ValueError: boom (item hard-2-0007)"
    assert (hard.examples_completed, hard.examples_total) == (7, 200)
    assert m.summary() == "1/2 cells completed, 1 failed"


def test_v1_and_v2_goldens_describe_the_same_execution() -> None:
    assert read_manifest(GOLDEN_V1) == read_manifest(GOLDEN_V2)


def test_v3_golden_adds_only_the_fingerprint_fields() -> None:
    v3 = read_manifest(GOLDEN_V3)
    assert v3.git.code_hash == "3f1c9a0d7be24e58"
    assert [rec.data_hash for rec in v3.cells.values()] == [None, None]
    v3.git.code_hash = None
    assert v3 == read_manifest(GOLDEN_V2)


@pytest.mark.parametrize(
    ("path", "field"),
    [(("git",), "git.code_hash"), (("cells", "solver/arith"), "cells.solver/arith.data_hash")],
)
def test_v2_file_with_a_v3_field_is_rejected(path: tuple[str, ...], field: str) -> None:
    data = yaml.safe_load(GOLDEN_V2.read_text())
    node = data
    for key in path:
        node = node[key]
    node[field.rsplit(".", 1)[1]] = None
    with pytest.raises(ConfigError) as err:
        load_manifest(data, source="m.yaml")
    assert str(err.value) == f"m.yaml: {field} is not a schema 2 field"


def test_fingerprint_is_the_hash_of_config_data_and_code() -> None:
    rec = read_manifest(GOLDEN_V3).cells["solver/arith"]
    fp = rec.fingerprint("c0de")
    assert fp == cell_fingerprint(rec.config_hash, None, "c0de")
    assert len(fp) == 16
    assert fp == rec.fingerprint("c0de")
    others = {
        rec.fingerprint("other"),
        rec.fingerprint(None),
        cell_fingerprint(rec.config_hash, "da7a", "c0de"),
        cell_fingerprint("0" * 16, None, "c0de"),
    }
    assert fp not in others
    assert len(others) == 4


def test_v1_file_with_a_v2_field_is_rejected() -> None:
    data = yaml.safe_load(GOLDEN_V1.read_text())
    data["cells"]["solver/arith"]["examples_errored"] = 0
    with pytest.raises(ConfigError, match="is not a schema 1 field"):
        load_manifest(data, source="m.yaml")


def test_v3_golden_loads_as_a_matrix_execution_without_provenance() -> None:
    v3 = read_manifest(GOLDEN_V3)
    assert (v3.kind, v3.name, v3.provenance, v3.git.diff_hash) == ("matrix", None, None, None)
    assert (v3.params, v3.last_metrics, v3.checkpoints, v3.artifacts) == ({}, {}, [], [])


@pytest.mark.parametrize("field", ["kind", "provenance", "last_metrics", "checkpoints"])
def test_v3_file_with_a_v4_field_is_rejected(field: str) -> None:
    data = yaml.safe_load(GOLDEN_V3.read_text())
    data[field] = None
    with pytest.raises(ConfigError) as err:
        load_manifest(data, source="m.yaml")
    assert str(err.value) == f"m.yaml: {field} is not a schema 3 field"


def test_v4_golden_is_a_tracked_experiment_with_provenance() -> None:
    m = read_manifest(GOLDEN_V4)
    assert (m.kind, m.name, m.status.value) == ("experiment", "lr-sweep-1e-4", "completed")
    assert m.execution_id.startswith("exp_")
    assert m.provenance is not None and m.provenance.accelerators == ["NVIDIA A100-SXM4-80GB"]
    assert m.provenance.env["HF_TOKEN"] == "<redacted>"
    assert m.checkpoints[0].step == 500 and m.last_metrics["train/loss"] == 0.4125
    assert m.git.diff_hash == "9b1e77f0a2c4d6e8"


@pytest.mark.parametrize("golden", [GOLDEN_V3, GOLDEN_V4, GOLDEN_V5, GOLDEN_V5_JSON])
def test_golden_file_is_byte_stable_through_a_round_trip(golden: Path) -> None:
    if golden is not GOLDEN_V5_JSON:  # older files are written as v5 in JSON's syntax
        text = dump_manifest(read_manifest(golden))
        assert text.startswith('{\n  "schema_version": 5,\n')
    else:
        text = golden.read_text()
    m = load_manifest(yaml.safe_load(text))
    assert dump_manifest(m) == text
    again = load_manifest(yaml.safe_load(dump_manifest(m)))
    assert again == m
    assert ExecutionManifest.model_validate(m.model_dump()) == m


def test_block_yaml_and_json_syntax_are_the_same_manifest() -> None:
    # v5 was written as block YAML before; both spellings load to one manifest.
    assert read_manifest(GOLDEN_V5) == read_manifest(GOLDEN_V5_JSON)
    assert GOLDEN_V5_JSON.read_text() == dump_manifest(read_manifest(GOLDEN_V5))


TRICKY = [
    "line\u2028separator",
    "next\x85line",
    "del\x7f and c1 \x9b",
    "tab\tand\nnewline",
    "key: value # not a comment",
    "Infinity",
    "NaN",
    "ends with 1e-05",
    "émoji 🙂 and 中文",
    "- a list? no",
]


@pytest.mark.parametrize("value", [1e-05, 1e16, -2.5e-07, 0.1, 3, float("inf"), -float("inf")])
def test_json_syntax_reads_the_same_through_pyyaml_and_json(value: float) -> None:
    from evalledger.manifest import parse_manifest_file

    m = load_manifest(yaml.safe_load(GOLDEN_V5_JSON.read_text()))
    m.last_metrics = {"loss": value, "count": 7}
    m.config = {"notes": TRICKY, "lr": value}
    text = dump_manifest(m)
    via_yaml, via_json = yaml.safe_load(text), parse_manifest_file(text)
    assert via_yaml == via_json
    assert via_json["last_metrics"] == {"loss": value, "count": 7}
    # pydantic's JSON mode writes a non-finite float in free-form config as null
    lr = value if abs(value) != float("inf") else None
    assert via_json["config"] == {"notes": TRICKY, "lr": lr}
    assert load_manifest(via_json).last_metrics == m.last_metrics


def test_a_nan_metric_survives_both_readers() -> None:
    import math

    from evalledger.manifest import parse_manifest_file

    m = load_manifest(yaml.safe_load(GOLDEN_V5_JSON.read_text()))
    m.last_metrics = {"loss": float("nan")}
    text = dump_manifest(m)
    assert math.isnan(yaml.safe_load(text)["last_metrics"]["loss"])
    assert math.isnan(parse_manifest_file(text)["last_metrics"]["loss"])


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ((), "surprise: Extra inputs are not permitted"),
        (("cells", "solver/arith"), "cells.solver/arith.surprise: Extra inputs are not permitted"),
        (("git",), "git.surprise: Extra inputs are not permitted"),
    ],
)
def test_unknown_fields_are_rejected(path: tuple[str, ...], message: str) -> None:
    data = yaml.safe_load(GOLDEN_V3.read_text())
    node = data
    for key in path:
        node = node[key]
    node["surprise"] = 1
    with pytest.raises(ConfigError) as err:
        load_manifest(data, source="m.yaml")
    assert str(err.value) == f"m.yaml: {message}"


def test_unknown_schema_version_names_the_fix() -> None:
    data = yaml.safe_load(GOLDEN_V1.read_text())
    data["schema_version"] = 99
    with pytest.raises(ConfigError) as err:
        load_manifest(data, source="m.yaml")
    assert err.value.one_line() == (
        "m.yaml has schema_version 99; this evalledger reads 1, 2, 3, 4, 5; upgrade evalledger"
    )


def test_bad_status_value_is_rejected() -> None:
    data = yaml.safe_load(GOLDEN_V1.read_text())
    data["cells"]["solver/arith"]["status"] = "done"
    with pytest.raises(ConfigError, match=r"cells\.solver/arith\.status"):
        load_manifest(data)


# --- damaged manifest files (issue 10): one error naming the file, at once ---

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (BOMB + GOLDEN_V4.read_text(), "uses a YAML alias (of the node at line 1)"),
        ("config: " + "[" * 300 + "]" * 300 + "\n", "nests deeper than 100 levels"),
        (GOLDEN_V4.read_text()[:500], "invalid YAML in"),
        ("- a\n- b\n", "is not a manifest (a mapping): it holds a list"),
        ("", "is not a manifest (a mapping): it holds nothing"),
        (GOLDEN_V4.read_text().replace("jobs: 1", "jobs: many"), "jobs: Input should be"),
    ],
    ids=["alias bomb", "deep", "truncated", "a list", "empty", "wrong type"],
)
def test_a_damaged_manifest_is_one_error_naming_it(tmp_path: Path, text: str, reason: str) -> None:
    import time

    from evalledger.errors import CorruptFileError

    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(CorruptFileError) as err:
        read_manifest(path)
    assert time.perf_counter() - started < 1.0
    assert str(path) in err.value.message and reason in err.value.message
    assert (
        err.value.hint
        == f"restore the manifest from git (`git checkout -- {path}`) or fix it by hand"
    )
    assert isinstance(err.value, ConfigError)  # as a bad manifest always was


def test_an_oversized_or_non_utf8_manifest_is_refused_unparsed(tmp_path: Path) -> None:
    from evalledger.errors import CorruptFileError
    from evalledger.safeload import MAX_MANIFEST_BYTES

    path = tmp_path / "manifest.yaml"
    path.write_bytes(GOLDEN_V4.read_bytes() + b"# " + b"x" * MAX_MANIFEST_BYTES + b"\n")
    with pytest.raises(CorruptFileError, match=r"is 64\.0 MiB, over the 64 MiB"):
        read_manifest(path)
    # block YAML reads far slower than JSON: its bound is lower
    path.write_bytes(GOLDEN_V4.read_bytes() + b"# " + b"x" * (20 * 2**20) + b"\n")
    with pytest.raises(CorruptFileError, match=r"is 20\.0 MiB, over the 16 MiB"):
        read_manifest(path)
    big = GOLDEN_V5_JSON.read_text().replace('"cells": {', '"cells": {' + " " * (20 * 2**20), 1)
    path.write_text(big)
    assert read_manifest(path) == read_manifest(GOLDEN_V5_JSON)  # JSON of 20 MiB is read
    path.write_bytes(GOLDEN_V4.read_bytes().replace(b"lr-sweep", b"lr-\xffsweep"))
    with pytest.raises(CorruptFileError, match=r"is not UTF-8 text \(bad byte at offset \d+\)"):
        read_manifest(path)


def test_a_v5_manifest_cut_where_it_still_parses_is_refused(tmp_path: Path) -> None:
    # Cut inside provenance: valid YAML and a valid manifest, but not the whole file.
    text = GOLDEN_V5.read_text()
    cut = text[: text.index("  packages:")]
    assert load_manifest(yaml.safe_load(cut)).provenance is not None  # it would load
    path = tmp_path / "manifest.yaml"
    path.write_text(cut)
    with pytest.raises(CorruptFileError, match="is cut short"):
        read_manifest(path)
    path.write_text(text)
    assert read_manifest(path) == read_manifest(GOLDEN_V4)  # whole, it loads


def test_older_manifests_have_no_end_marker_and_still_load() -> None:
    assert END_MARKER not in GOLDEN_V4.read_text()
    assert GOLDEN_V5.read_text().endswith(f"{END_MARKER}\n")
    assert read_manifest(GOLDEN_V4).schema_version == 5
