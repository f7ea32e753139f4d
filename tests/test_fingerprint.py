"""Fingerprints of cells: the code hash, the data hash, and both in a run's manifest."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import git, invoke, make_project
from evalledger.benchmarks.base import hash_data_files
from evalledger.execution.cell import DATA_HASH_CACHE, benchmark_data_hash
from evalledger.execution.executions import load_execution
from evalledger.gitinfo import code_hash
from evalledger.manifest import SCHEMA_VERSION
from evalledger.project import Project

JSONL_PARAMS = """\
axes:
  model: [solver]
  benchmark: [qa, arith]
models:
  solver: {adapter: baseline, strategy: solver}
benchmarks:
  qa: {loader: jsonl, path: data/qa.jsonl, fields: {cluster: passage}}
  arith: {loader: arith, n_items: 10, seed: 1}
"""


def _qa_rows(n: int = 6) -> str:
    rows = [{"input": f"What is {i} + 1?", "target": str(i + 1), "passage": f"p{i // 2}"}
            for i in range(n)]  # fmt: skip
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture
def qa_project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "qa.jsonl").write_text(_qa_rows())
    old = time.time() - 60  # not just written, so its hash may be cached
    os.utime(root / "data" / "qa.jsonl", (old, old))
    return make_project(root, JSONL_PARAMS)


def test_code_hash_ignores_ledger_files_and_committed_results(project: Project) -> None:
    root = project.root
    before = code_hash(root)
    assert before is not None and len(before) == 16
    project.params_path.write_text(project.params_path.read_text() + "# a comment\n")
    (root / "runs" / "note.txt").write_text("x")
    (root / "metrics" / "extra.json").write_text("{}")
    (root / ".evalledger").mkdir(exist_ok=True)
    (root / ".evalledger" / "junk").write_text("x")
    assert code_hash(root) == before
    assert invoke(project, "run", "--commit").exit_code == 0
    # --commit takes the execution's own files, and leaves a stray one alone.
    assert git(root, "status", "--porcelain", "--", "metrics", "dvc.lock") == (
        "?? metrics/extra.json\n"
    )
    assert code_hash(root) == before
    git(root, "add", "params.yaml", "runs/note.txt")
    git(root, "commit", "-qm", "params and notes")
    assert code_hash(root) == before


def test_code_hash_follows_code_committed_or_not(project: Project) -> None:
    root = project.root
    (root / "src").mkdir()
    (root / "src" / "agent.py").write_text("def answer():\n    return 1\n")
    untracked = code_hash(root)
    git(root, "add", "src/agent.py")
    git(root, "commit", "-qm", "agent")
    clean = code_hash(root)
    assert clean == untracked  # the same code hashes the same, committed or not
    (root / "src" / "agent.py").write_text("def answer():\n    return 2\n")
    edited = code_hash(root)
    assert edited != clean
    git(root, "commit", "-qam", "agent v2")
    assert code_hash(root) == edited
    (root / "src" / "helper.py").write_text("X = 1\n")  # a new, untracked code file
    assert code_hash(root) != edited
    (root / "src" / "helper.py").unlink()
    assert code_hash(root) == edited
    (root / "src" / "agent.py").unlink()  # an uncommitted removal
    assert code_hash(root) not in {edited, clean}
    (root / "src" / "agent.py").write_text("def answer():\n    return 2\n")
    assert code_hash(root) == edited
    (root / ".gitignore").write_text((root / ".gitignore").read_text() + "*.log\n")
    git(root, "commit", "-qam", "ignore logs")
    ignored = code_hash(root)
    (root / "debug.log").write_text("noise")  # ignored files are not code
    assert code_hash(root) == ignored


def test_code_hash_outside_git_is_none(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    env = os.environ.get("GIT_CEILING_DIRECTORIES")
    os.environ["GIT_CEILING_DIRECTORIES"] = str(tmp_path.parent)
    try:
        assert code_hash(tmp_path) is None
    finally:
        if env is None:
            del os.environ["GIT_CEILING_DIRECTORIES"]
        else:
            os.environ["GIT_CEILING_DIRECTORIES"] = env


def test_code_hash_of_a_project_in_a_subfolder(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    project = make_project(repo / "evals")
    (repo / "evals" / "tool.py").write_text("x = 1\n")
    before = code_hash(project.root)
    (repo / "README").write_text("outside the project")  # not the project's code
    assert code_hash(project.root) == before
    (repo / "evals" / "tool.py").write_text("x = 2\n")
    assert code_hash(project.root) != before


def test_data_hash_follows_the_file_and_is_none_for_generated(qa_project: Project) -> None:
    spec = qa_project.spec()
    first = benchmark_data_hash(qa_project, spec, "qa")
    assert first is not None and len(first) == 16
    assert benchmark_data_hash(qa_project, spec, "qa") == first
    assert benchmark_data_hash(qa_project, spec, "arith") is None
    data = qa_project.root / "data" / "qa.jsonl"
    data.write_text(_qa_rows().replace("What is 0", "What is zero"))
    assert benchmark_data_hash(qa_project, spec, "qa") != first
    data.write_text(_qa_rows())
    assert benchmark_data_hash(qa_project, spec, "qa") == first
    data.unlink()  # missing data: the cell will fail with the loader's message
    assert benchmark_data_hash(qa_project, spec, "qa") is None


def test_data_hash_cache_skips_unchanged_files(tmp_path: Path) -> None:
    data, cache = tmp_path / "d.jsonl", tmp_path / "cache.json"
    data.write_text("one\n")
    old = time.time() - 60
    os.utime(data, (old, old))
    first = hash_data_files([data], tmp_path, cache)
    entry = json.loads(cache.read_text())[str(data.resolve())]
    assert entry["size"] == 4
    # the cache answers for an unchanged (path, size, mtime): prove it with a fake digest
    entry["sha256"] = "0" * 64
    cache.write_text(json.dumps({str(data.resolve()): entry}))
    assert hash_data_files([data], tmp_path, cache) != first
    data.write_text("two\n")  # a new mtime: read again, and not cached while racy
    os.utime(data, (old, old + 1))
    second = hash_data_files([data], tmp_path, cache)
    assert second != first
    cache.unlink()  # safe to delete
    assert hash_data_files([data], tmp_path, cache) == second
    cache.write_text("{not json")  # a damaged cache is ignored and rewritten
    assert hash_data_files([data], tmp_path, cache) == second
    assert json.loads(cache.read_text())[str(data.resolve())]["size"] == 4
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_text("new\n")  # just written: may change again within its mtime tick
    hash_data_files([fresh], tmp_path, cache)
    assert str(fresh.resolve()) not in json.loads(cache.read_text())


def test_run_writes_code_and_data_hashes_into_the_manifest(qa_project: Project) -> None:
    result = invoke(qa_project, "run")
    assert result.exit_code == 0, result.output
    manifest = load_execution(qa_project, None)
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.git.code_hash == code_hash(qa_project.root)
    qa, arith = manifest.cells["solver/qa"], manifest.cells["solver/arith"]
    spec = qa_project.spec()
    assert qa.data_hash is not None
    assert qa.data_hash == benchmark_data_hash(qa_project, spec, "qa")
    assert arith.data_hash is None
    cache = json.loads((qa_project.state_dir / DATA_HASH_CACHE).read_text())
    assert list(cache) == [str((qa_project.root / "data" / "qa.jsonl").resolve())]
    # the same cell again at the same code and data has the same fingerprint
    forced = invoke(qa_project, "run", "--force")
    assert forced.exit_code == 0, forced.output
    again = load_execution(qa_project, None)
    assert again.execution_id != manifest.execution_id
    code = manifest.git.code_hash
    assert again.cells["solver/qa"].fingerprint(again.git.code_hash) == qa.fingerprint(code)
    # changed data: not a duplicate
    (qa_project.root / "data" / "qa.jsonl").write_text(_qa_rows(4))
    assert invoke(qa_project, "run", "--force", "--benchmarks", "qa").exit_code == 0
    third = load_execution(qa_project, None)
    assert third.cells["solver/qa"].fingerprint(third.git.code_hash) != qa.fingerprint(code)


def test_scores_get_a_cluster_column_only_when_items_have_clusters(
    qa_project: Project,
) -> None:
    assert invoke(qa_project, "run").exit_code == 0
    qa = (qa_project.root / "metrics/solver/qa.scores.csv").read_text().splitlines()
    assert qa[0].endswith(",error,cluster")
    assert [row.rsplit(",", 1)[1] for row in qa[1:]] == ["p0", "p0", "p1", "p1", "p2", "p2"]
    arith = (qa_project.root / "metrics/solver/arith.scores.csv").read_text().splitlines()
    assert arith[0] == (
        "id,category,correct,score,partial,formatted,prompt_tokens,completion_tokens,error"
    )
