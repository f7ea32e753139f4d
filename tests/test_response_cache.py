"""The response cache over real HTTP: a paid call is made once per exact request.

Against the reference OpenAI-compatible server on 127.0.0.1, counting the requests it
receives: a run after ``revert`` makes none, ``--no-cache`` makes them all, repeated
samples are cached per sample and seed, expired answers are asked again, and a fresh
clone that pulled the results makes no call and says why.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import dvc, git, invoke, make_project
from evalledger.execution.response_cache import cache_path
from evalledger.project import Project
from evalledger.testing.openai_server import ReferenceServer, ServerConfig

N = 12


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(ServerConfig()) as srv:
        yield srv


def _params(base_url: str, model: str = "", run: str = "") -> str:
    return (
        "axes:\n  model: [ref]\n  benchmark: [arith]\n"
        f"models:\n  ref: {{adapter: openai, base_url: '{base_url}', model: reference, "
        f"timeout: 5, price: {{input: 2, output: 8}}{model}}}\n"
        f"benchmarks:\n  arith: {{loader: arith, n_items: {N}, seed: 4, difficulty: easy}}\n"
        + (f"run: {{{run}}}\n" if run else "")
    )


def _run(project: Project, *args: str) -> str:
    result = invoke(project, "run", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def _metrics(project: Project) -> dict:  # type: ignore[type-arg]
    return json.loads((project.root / "metrics/ref/arith.json").read_text())


def _requests(server: ReferenceServer) -> int:
    return int(server.stats()["requests"])


def test_a_run_after_revert_makes_no_request_and_no_cost(
    tmp_path: Path, server: ReferenceServer
) -> None:
    project = make_project(tmp_path / "p", _params(server.base_url))
    out = _run(project, "--commit")
    first_id = next(line for line in out.splitlines() if line.startswith("exec_")).split(":")[0]
    first = _metrics(project)
    assert _requests(server) == N and first["cost"] > 0 and "cache_hits" not in first
    scores = (project.root / "metrics/ref/arith.scores.csv").read_text()

    # another configuration, evaluated: its requests differ, so they are all made
    project.params_path.write_text(_params(server.base_url, ", temperature: 0.5"))
    _run(project, "--commit")
    assert _requests(server) == 2 * N

    result = invoke(project, "revert", first_id)
    assert result.exit_code == 0, result.output
    out = _run(project)  # the first commit's outputs come back (execution/reuse.py)
    assert _requests(server) == 2 * N  # not one call more
    assert f"restored 1 cell's outputs from {first_id}" in out
    assert _metrics(project) == first
    out = _run(project, "--force")  # evaluated again: the response cache answers
    assert _requests(server) == 2 * N
    assert f"{N} model calls saved: answered from the response cache" in out
    again = _metrics(project)
    assert again["cache_hits"] == N and again["cost"] == 0.0
    assert again["cached_cost"] == first["cost"]
    assert again["accuracy"] == first["accuracy"]
    assert (project.root / "metrics/ref/arith.scores.csv").read_text() == scores
    assert again["latency_ms"] == first["latency_ms"]  # the calls' latency, not the cache's

    # --no-cache makes every call
    _run(project, "--force", "--no-cache")
    assert _requests(server) == 3 * N
    assert "cache_hits" not in _metrics(project)

    stats = json.loads(invoke(project, "cache", "stats", "--json").stdout)
    assert stats["entries"] == 2 * N and stats["models"] == {"openai:reference": 2 * N}
    assert invoke(project, "cache", "stats").stdout.startswith(f"{2 * N} answers, 0 expired")


def test_samples_are_cached_by_sample_and_seed_and_expired_answers_are_asked_again(
    tmp_path: Path, server: ReferenceServer
) -> None:
    project = make_project(
        tmp_path / "p",
        _params(server.base_url, ", temperature: 0.7, seed: 11, repeats: 3", "cache_expiry: 1h"),
    )
    _run(project)
    assert _requests(server) == 3 * N
    with sqlite3.connect(cache_path(project)) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 3 * N
    _run(project, "--force")
    assert _requests(server) == 3 * N
    assert _metrics(project)["cache_hits"] == 3 * N

    with sqlite3.connect(cache_path(project)) as db:  # a third of them older than an hour
        db.execute("UPDATE responses SET created = created - 7200 WHERE rowid % 3 = 0")
    expired = json.loads(invoke(project, "cache", "stats", "--json").stdout)["expired"]
    assert 0 < expired < 3 * N
    _run(project, "--force")
    assert _requests(server) == 3 * N + expired
    assert _metrics(project)["cache_hits"] == 3 * N - expired

    with sqlite3.connect(cache_path(project)) as db:
        db.execute("UPDATE responses SET created = created - 7200 WHERE rowid % 2 = 0")
    gone = json.loads(invoke(project, "cache", "clear", "--expired", "--json").stdout)
    assert gone["deleted"] > 0
    left = json.loads(invoke(project, "cache", "stats", "--json").stdout)
    assert left["entries"] == 3 * N - gone["deleted"] and left["expired"] == 0
    assert invoke(project, "cache", "clear").stdout == f"deleted {left['entries']} cached answers\n"
    assert json.loads(invoke(project, "cache", "stats", "--json").stdout)["entries"] == 0


def test_run_cache_false_in_params_makes_every_call(
    tmp_path: Path, server: ReferenceServer
) -> None:
    project = make_project(tmp_path / "p", _params(server.base_url, run="cache: false"))
    _run(project)
    _run(project, "--force")
    assert _requests(server) == 2 * N
    assert not cache_path(project).exists()
    project.params_path.write_text(_params(server.base_url, run="cache: maybe"))
    bad = invoke(project, "run")
    assert bad.exit_code == 2 and "run.cache must be true or false" in bad.stderr


def test_a_fresh_clone_that_pulled_makes_no_request_and_says_why(
    tmp_path: Path, server: ReferenceServer
) -> None:
    project = make_project(tmp_path / "p", _params(server.base_url))
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(project.root, "remote", "add", "origin", str(bare))
    store = tmp_path / "store"
    store.mkdir()
    dvc(project.root, "remote", "add", "-d", "store", str(store))
    git(project.root, "commit", "-qm", "DVC remote", "--", ".dvc/config")
    _run(project, "--commit")
    assert invoke(project, "push").exit_code == 0
    assert _requests(server) == N

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True)
    assert invoke(clone, "pull").exit_code == 0
    result = invoke(clone, "run")
    assert result.exit_code == 0, result.output
    assert _requests(server) == N  # nothing asked again: the results came with pull
    assert "all 1 selected cells are up to date (dvc.lock matches params and outputs)" in (
        result.stdout
    )
    # without the pull, run restores the predictions from the remote itself
    bare_clone = tmp_path / "clone2"
    subprocess.run(["git", "clone", "-q", str(bare), str(bare_clone)], check=True)
    result = invoke(bare_clone, "run")
    assert result.exit_code == 0, result.output
    assert _requests(server) == N
    assert result.stdout.startswith(
        f"restored 1 cell's predictions from the DVC cache or remote instead of evaluating "
        f"them: {N} model calls saved\n"
    )


def test_a_damaged_cache_fails_before_any_call_and_clear_deletes_it(
    tmp_path: Path, server: ReferenceServer
) -> None:
    from evalledger.execution.executions import load_execution

    project = make_project(tmp_path / "p", _params(server.base_url))
    path = cache_path(project)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database, " * 64)
    stats = invoke(project, "cache", "stats")
    assert stats.exit_code == 2 and stats.stderr.count("\n") == 1
    assert "is damaged" in stats.stderr and "`evalledger cache clear` deletes it" in stats.stderr
    failed = invoke(project, "run")
    assert failed.exit_code == 1 and _requests(server) == 0  # no call made past a bad cache
    rec = load_execution(project, None).cells["ref/arith"]
    assert rec.status.value == "failed" and rec.error is not None and "is damaged" in rec.error
    assert invoke(project, "cache", "clear").stdout == "deleted 0 cached answers\n"
    assert not path.exists()
    _run(project)
    assert _requests(server) == N
