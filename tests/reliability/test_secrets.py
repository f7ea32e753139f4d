"""Echoed secrets: an endpoint quoting the key in its errors, tokens in notes and item errors.

A real ``evalledger run --commit`` (a subprocess, so no key is registered in this one)
evaluates three models against the reference server, which quotes each request's
``Authorization`` header in its 401 and 500 bodies: ``good`` has the right key (a
``sk-...`` token) and gets some 500s; ``short`` (nine characters, no token pattern, under
a harmless variable name) and ``tiny`` (six) get a 401 for every item. Then every file of
the working tree (``.evalledger/`` checkpoints and the DVC cache included), ``git log -p
--all`` and the commit messages are scanned: no key appears. A Tracker experiment with a
token in its notes and in item errors, and an MLflow mirror of one, are scanned the same
way. Each scan is counted with ``reliability("secret", ok, found=occurrences)``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import git, make_project
from evalledger.project import Project
from evalledger.redact import REDACTED
from evalledger.testing.openai_server import ReferenceServer, ServerConfig

LONG_KEY = "sk-test-" + "R3liab1lityK3y" * 2
SHORT_KEY = "q7Rt2xZw9"
TINY_KEY = "Zx81kq"
KEYS = {"EVAL_KEY": LONG_KEY, "EVAL_ACCESS": SHORT_KEY, "EVAL_PIN_VALUE": TINY_KEY}
N_ITEMS = 12

Record = Callable[..., None]


@pytest.fixture
def echoing_server() -> Iterator[ReferenceServer]:
    # Seed 1 gives 6 of good's 12 first attempts a 500 (401s draw no fault).
    config = ServerConfig(require_api_key=LONG_KEY, echo_authorization=True,
                          fault_rate=0.3, faults=("500",), seed=1)  # fmt: skip
    with ReferenceServer(config) as server:
        yield server


def _params(base_url: str) -> str:
    envs = {"good": "EVAL_KEY", "short": "EVAL_ACCESS", "tiny": "EVAL_PIN_VALUE"}
    models = "\n".join(
        f"  {name}: {{adapter: openai, base_url: '{base_url}', model: reference, "
        f"api_key_env: {env}, max_retries: 0, max_concurrency: 4, timeout: 5}}"
        for name, env in envs.items()
    )
    return textwrap.dedent("""\
        axes:
          model: [good, short, tiny]
          benchmark: [arith]
        models:
        {models}
        benchmarks:
          arith: {{loader: arith, n_items: {n}, seed: 4, difficulty: easy}}
        run:
          jobs: 3
        """).format(models=models, n=N_ITEMS)


def _tree_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts]


def _occurrences(data: bytes, secrets: list[str]) -> int:
    return sum(data.count(s.encode()) for s in secrets)


def _scan_tree(root: Path, secrets: list[str]) -> tuple[int, list[str]]:
    found, where = 0, []
    for path in _tree_files(root):
        n = _occurrences(path.read_bytes(), secrets)
        if n:
            found += n
            where.append(f"{path.relative_to(root)} ({n})")
    return found, where


def _git_out(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def test_an_echoed_key_reaches_no_file_history_or_commit_message(
    tmp_path: Path, echoing_server: ReferenceServer, reliability: Record
) -> None:
    project = make_project(tmp_path / "proj", _params(echoing_server.base_url))
    root = project.root
    env = {**os.environ, **KEYS}
    proc = subprocess.run(["evalledger", "-C", str(root), "run", "--commit"], env=env,
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    # short and tiny fail (every item a 401), good completes with its 500s errored.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    stats = echoing_server.stats()
    assert stats["statuses"] == {"200": N_ITEMS - 6, "401": 2 * N_ITEMS, "500": 6}
    assert sorted(stats["authorization"]) == sorted(f"Bearer {k}" for k in KEYS.values())
    secrets = list(KEYS.values())

    # Every file of the working tree: ledger files, checkpoints, the DVC cache.
    names = {p.relative_to(root).as_posix() for p in _tree_files(root)}
    assert any(n.startswith(".dvc/cache/") for n in names)
    assert any(n.startswith(".evalledger/checkpoints/") for n in names)  # good's errors
    found, where = _scan_tree(root, secrets)
    reliability("secret", found == 0, found=found)
    assert where == []

    history = _git_out(root, "log", "-p", "--all")
    found = _occurrences(history.encode(), secrets)
    reliability("secret", found == 0, found=found)
    assert found == 0

    messages = _git_out(root, "log", "--all", "--format=%B")
    found = _occurrences(messages.encode(), secrets)
    reliability("secret", found == 0, found=found)
    assert found == 0
    assert _occurrences((proc.stdout + proc.stderr).encode(), secrets) == 0

    # Not vacuous: the echoed texts did reach every sink, redacted.
    assert _git_out(root, "status", "--porcelain", "--untracked-files=no") == ""
    # The literal rule leaves "Bearer <redacted>", the header rule "<redacted>" (tiny).
    echoed = re.compile(rf"Received Authorization: (Bearer )?{REDACTED}")
    assert len(echoed.findall(messages)) == 2  # the failed cells' first errors
    run_dir = next(p for p in (root / "runs").iterdir() if p.is_dir())
    cells = yaml.safe_load((run_dir / "manifest.yaml").read_text())["cells"]
    for key in ("short/arith", "tiny/arith"):
        assert cells[key]["status"] == "failed"
        assert echoed.search(cells[key]["error"])
    with open(root / "metrics/good/arith.scores.csv", newline="") as fh:
        errors = [row["error"] for row in csv.DictReader(fh) if row["error"]]
    assert len(errors) == 6
    assert all(e.endswith(f"Received Authorization: Bearer {REDACTED}") for e in errors), errors
    predictions = (root / "predictions/good/arith.jsonl").read_text().splitlines()
    assert sum(REDACTED in line for line in predictions) == 6
    assert all(json.loads(line) for line in predictions)  # still JSON lines


TRACKER_LITERAL = "tracker-literal-9f8e7d"  # the value of a secret-named variable
NOTE_TOKEN = "ghp_" + "N0teT0ken" * 4
ERROR_TOKEN = "sk-" + "ErrT0ken" * 3


def test_tracker_notes_and_item_errors_are_redacted_everywhere(
    project: Project, monkeypatch: pytest.MonkeyPatch, reliability: Record
) -> None:
    from evalledger.track.tracker import Tracker

    monkeypatch.setenv("MY_SERVICE_TOKEN", TRACKER_LITERAL)
    notes = f"tried {NOTE_TOKEN} and Authorization: Bearer {SHORT_KEY} ({TRACKER_LITERAL})"
    items = [
        {"id": "a", "correct": True},
        {"id": "b", "error": f"AuthenticationError: 401: Authorization: Bearer {TINY_KEY}"},
        {"id": "c", "error": ERROR_TOKEN},  # no colon: the whole text is its error class
        {"id": "d", "error": f"ServerError: echoed {TRACKER_LITERAL}"},
    ]
    tracker = Tracker(project)
    with tracker.experiment({"lr": 0.1}, name="leaky", notes=notes) as run:
        run.log_metrics({"loss": 1.0}, step=0)
        run.log_evaluation("arith", {"scores": items})
        exp_id = run.experiment_id
    secrets = [NOTE_TOKEN, SHORT_KEY, TINY_KEY, ERROR_TOKEN, TRACKER_LITERAL]
    found, where = _scan_tree(project.root, secrets)
    reliability("secret", found == 0, found=found)
    assert where == []

    manifest = (project.runs_dir / exp_id / "manifest.yaml").read_text()
    assert f"tried {REDACTED} and Authorization: {REDACTED} ({REDACTED})" in manifest
    metrics = json.loads((project.metrics_dir / "leaky/arith.json").read_text())
    assert metrics["error_patterns"] == {REDACTED: 1, "AuthenticationError": 1, "ServerError": 1}
    with open(project.metrics_dir / "leaky/arith.scores.csv", newline="") as fh:
        errors = {row["id"]: row["error"] for row in csv.DictReader(fh)}
    assert errors == {"a": "", "b": f"AuthenticationError: 401: Authorization: {REDACTED}",
                      "c": REDACTED, "d": f"ServerError: echoed {REDACTED}"}  # fmt: skip
    assert git(project.root, "status", "--porcelain", "--untracked-files=no") != ""


def test_a_mirror_receives_the_notes_and_params_redacted(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reliability: Record
) -> None:
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    from mlflow.tracking import MlflowClient

    from evalledger.track.tracker import Tracker

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    tracker = Tracker(project, mirrors=["mlflow"])
    exp_id = tracker.start_experiment({"lr": 0.1}, name="mirrored",
                                      notes=f"the endpoint said Bearer {SHORT_KEY}")  # fmt: skip
    tracker.log_params({"endpoint": f"https://h.example/v1?api_key={TINY_KEY}&page=2",
                        f"Cookie: id={TINY_KEY}": 1})  # fmt: skip
    tracker.finish_experiment("completed")

    raw = b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file())
    found = _occurrences(raw, [SHORT_KEY, TINY_KEY])
    reliability("secret", found == 0, found=found)
    assert found == 0
    client = MlflowClient(tracking_uri=store.as_uri())
    (mirrored,) = client.search_runs(
        [client.get_experiment_by_name("evalledger").experiment_id],
        filter_string=f"tags.`evalledger.execution_id` = '{exp_id}'",
    )
    assert mirrored.data.tags["mlflow.note.content"] == f"the endpoint said {REDACTED}"
    assert mirrored.data.params["endpoint"] == REDACTED  # a value holding a secret goes whole
    assert mirrored.data.params["Cookie_ _redacted_"] == "1"  # the key was scrubbed too


ADAPTER_KEY = "sk-" + "StraddleK3y" * 4


def test_a_key_across_the_error_cut_is_redacted_whole(tmp_path: Path, reliability: Record) -> None:
    # An item error is cut to 500 characters; a key starting just before the cut must go
    # whole, not leave a fragment too short to look like a token any more.
    module = tmp_path / "leaky.py"
    module.write_text(f"def answer(prompt):\n    raise ValueError('x' * 476 + ' {ADAPTER_KEY}')\n")
    params = textwrap.dedent(f"""\
        axes:
          model: [leaky]
          benchmark: [arith]
        models:
          leaky: {{adapter: python, callable: 'leaky:answer', path: '{tmp_path}'}}
        benchmarks:
          arith: {{loader: arith, n_items: 3, seed: 1}}
        """)
    project = make_project(tmp_path / "proj", params)
    result = subprocess.run(["evalledger", "-C", str(project.root), "run"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr  # every item errored
    fragment = ADAPTER_KEY[:11]  # what a cut at character 500 would keep
    found, where = _scan_tree(project.root, [fragment])
    reliability("secret", found == 0, found=found)
    assert found == 0, where
