"""The light manifest reader: the same fields as the model, and never a file it refuses.

:func:`evalledger.manifestview.light_view` lets readers skip pydantic. It must give the
same kind, times, directions and cell states as :func:`evalledger.manifest.load_manifest`
on every manifest it reads, and must read none that the model would refuse (those go to
the model, which says why).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import invoke, make_project
from evalledger.ledger.views import view_of
from evalledger.manifest import (
    ArtifactRecord,
    CellRecord,
    ExecutionManifest,
    GitState,
    Provenance,
    load_manifest,
)
from evalledger.manifestview import (
    CELL_FIELDS,
    MANIFEST_FIELDS,
    light_view,
    load_view,
    parse_manifest_file,
)

DATA = Path(__file__).parent / "data"


def _v5(name: str = "manifest_v5_json.yaml") -> dict[str, Any]:
    data = parse_manifest_file((DATA / name).read_bytes())
    assert isinstance(data, dict)
    return data


def _matrix() -> dict[str, Any]:
    """A matrix manifest with cells in every state, written by the model itself."""
    from evalledger.manifest import dump_manifest

    data = _v5()
    data.update(kind="matrix", name=None, execution_id="exec_2026-11-24_093000_5eed0004")
    cell = data["cells"].pop("lr-sweep-1e-4/gsm8k")
    for i, status in enumerate(["completed", "failed", "in_progress", "pending"]):
        rec = {**copy.deepcopy(cell), "axes": {"model": f"m{i}", "benchmark": "b"}}
        rec.update(status=status, attempts=i, error="E: x" if status == "failed" else None)
        if status == "pending":
            rec.update(started_at=None, finished_at=None)
        data["cells"][f"m{i}/b"] = rec
    data["directions"] = {"loss": "lower"}
    text = dump_manifest(load_manifest(data))
    parsed = parse_manifest_file(text)
    assert isinstance(parsed, dict)
    return parsed


def test_the_fields_checked_are_the_models_fields() -> None:
    assert set(MANIFEST_FIELDS) == set(ExecutionManifest.model_fields)
    assert set(CELL_FIELDS) == set(CellRecord.model_fields)
    data = _matrix()
    for model, where in ((GitState, "git"), (Provenance, "provenance")):
        for field in model.model_fields:  # every sub-field may be set without falling back
            sub = copy.deepcopy(data)
            sub[where] = {**(sub[where] or {}), field: data[where].get(field)}
            assert light_view(sub) is not None or field == "captured_at", (where, field)
    assert set(ArtifactRecord.model_fields) == {"path", "sha256", "size", "step", "name",
                                                "logged_at"}  # fmt: skip


@pytest.mark.parametrize("data", [_v5(), _matrix()], ids=["experiment", "matrix"])
def test_the_view_equals_the_models(data: dict[str, Any]) -> None:
    light = light_view(data)
    assert light is not None
    assert load_view(light) == load_view(view_of(load_manifest(copy.deepcopy(data))))


def _mutations(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Variants of a valid manifest: odd types, unknown keys, bad names, other schemas."""
    odd: list[Any] = [None, True, 3, 2.5, "x", "3", [], {}, ["x"], {"x": "y"}, {"x": 1}, {3: "y"},
                      "2026-11-24", "2026-11-24T09:30:00", "2026-11-24T09:30:00+0100", "..",
                      "lower", "completed", "1e-4"]  # fmt: skip
    out = []
    key = next(iter(data["cells"]))
    for field in [*MANIFEST_FIELDS, "unknown"]:
        for value in odd:
            out.append((f"{field}={value!r}", {**data, field: value}))
        if field in data and field != "schema_version":
            out.append((f"no {field}", {k: v for k, v in data.items() if k != field}))
    for field in [*CELL_FIELDS, "unknown"]:
        for value in odd:
            cells = {**data["cells"], key: {**data["cells"][key], field: value}}
            out.append((f"cell {field}={value!r}", {**data, "cells": cells}))
        cells = {**data["cells"], key: {k: v for k, v in data["cells"][key].items() if k != field}}
        out.append((f"cell without {field}", {**data, "cells": cells}))
    for sub, fields in (("git", GitState.model_fields), ("provenance", Provenance.model_fields)):
        for field in [*fields, "unknown"]:
            for value in odd:
                out.append((f"{sub}.{field}={value!r}",
                            {**data, sub: {**(data[sub] or {}), field: value}}))  # fmt: skip
    art = {"path": "a", "sha256": "f" * 64, "size": 1, "logged_at": data["created_at"]}
    for field in [*ArtifactRecord.model_fields, "unknown"]:
        for value in odd:
            bad = [{**art, field: value}]
            out.append((f"artifact {field}={value!r}", {**data, "artifacts": bad}))
    renamed = {f"{key}x": data["cells"][key]}
    out.append(("key not its axes", {**data, "cells": renamed}))
    for version in (1, 4, 6):
        out.append((f"schema {version}", {**data, "schema_version": version}))
    return out


@pytest.mark.parametrize("base", ["experiment", "matrix"])
def test_no_manifest_the_model_refuses_is_read(base: str) -> None:
    """Whatever light_view reads, the model reads alike; the rest it hands to the model."""
    data = _v5() if base == "experiment" else _matrix()
    read = 0
    for what, variant in _mutations(data):
        light = light_view(copy.deepcopy(variant))
        if light is None:
            continue
        read += 1
        try:
            manifest = load_manifest(copy.deepcopy(variant))
        except Exception as exc:  # pragma: no cover - the failure this test is for
            pytest.fail(f"{what}: read lightly, refused by the model ({exc})")
        assert load_view(light) == load_view(view_of(manifest)), what
    assert read > 50  # the valid variants are read, not all handed on


def test_a_leaderboard_reads_manifests_without_pydantic_and_warm_without_yaml(
    tmp_path: Path,
) -> None:
    import shutil

    project = make_project(tmp_path)
    assert invoke(project, "run", "--commit").exit_code == 0
    expected = invoke(project, "leaderboard", "--format", "json").output
    shutil.rmtree(project.state_dir / "cache")

    import os

    import evalledger

    # this checkout's evalledger, wherever the test runs from
    env = {**os.environ, "PYTHONPATH": str(Path(evalledger.__file__).parents[1])}

    def imported() -> set[str]:
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "evalledger", "leaderboard",
             "--format", "json"],
            cwd=tmp_path, capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("import time:")]
        assert proc.stdout == expected
        return {ln.rsplit("|", 1)[1].strip().split(".")[0] for ln in lines[1:]}

    heavy = {"pydantic", "pandas", "numpy", "rich", "scipy"}
    assert imported() & heavy == set()  # cold: every manifest read without the model
    assert imported() & {*heavy, "yaml"} == set()  # warm: params.yaml and dvc.lock from the cache


@pytest.mark.parametrize("where", ["config", "cell axes"])
def test_a_view_refuses_a_manifest_nested_too_deep_as_parsing_does(where: str) -> None:
    """The view checks the nesting of what it does not vouch for: the same refusal."""
    import json

    from evalledger.errors import CorruptFileError
    from evalledger.ledger.views import _view

    data = _matrix()
    deep = json.loads("[" * 150 + "]" * 150)
    if where == "config":
        data["config"] = {"x": deep}
    else:
        key = next(iter(data["cells"]))
        data["cells"][key]["axes"]["model"] = deep
    text = (json.dumps(data, indent=1) + "\n# end of manifest\n").encode()
    with pytest.raises(ValueError, match="nests deeper"):
        parse_manifest_file(text)

    class Snap:
        commit = None

        def source(self, path: str) -> str:
            return path

    with pytest.raises(CorruptFileError, match="nests deeper"):
        _view(Snap(), "runs/x/manifest.yaml", text, skip_damaged=False)  # type: ignore[arg-type]
