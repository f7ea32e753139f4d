"""The openai adapter over real HTTP against the reference server on 127.0.0.1."""

from __future__ import annotations

import collections
import csv
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import dvc, invoke, make_project
from evalledger.execution.executions import load_execution
from evalledger.project import Project
from evalledger.testing.openai_server import ReferenceServer, ServerConfig


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(ServerConfig()) as srv:
        yield srv


def _params(
    base_url: str,
    *,
    n_items: int = 30,
    bench_extra: str = "",
    difficulty: str = "easy",
    **model: object,
) -> str:
    settings = {"max_concurrency": 8, "timeout": 5, **model}
    extra = "".join(f", {k}: {json.dumps(v)}" for k, v in settings.items())
    return (
        "axes:\n  model: [ref]\n  benchmark: [arith]\n"
        f"models:\n  ref: {{adapter: openai, base_url: '{base_url}', model: reference{extra}}}\n"
        f"benchmarks:\n  arith: {{loader: arith, n_items: {n_items}, seed: 4, "
        f"difficulty: {difficulty}{bench_extra}}}\n"
    )


def _metrics(project: Project, key: str = "ref/arith") -> dict:  # type: ignore[type-arg]
    return json.loads((project.root / f"metrics/{key}.json").read_text())


def test_answers_over_http_are_scored(tmp_path: Path, server: ReferenceServer) -> None:
    project = make_project(
        tmp_path / "p",
        _params(server.base_url, difficulty="hard", price={"input": 2, "output": 8}),
    )
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    m = _metrics(project)
    # The server solves every category but multi-step problems (1 in 6 of the hard set).
    assert m["n"] == m["scored"] == 30 and m["errors"] == 0
    assert m["accuracy"] == pytest.approx(25 / 30, abs=1e-6)
    assert m["categories"]["multi_step"]["accuracy"] == 0.0
    assert m["categories"]["addition"]["accuracy"] == 1.0
    assert m["prompt_tokens"] > 0 and m["completion_tokens"] == 25 * 4 + 5 * 3  # "I don't know."
    expected_cost = (m["prompt_tokens"] * 2 + m["completion_tokens"] * 8) / 1e6
    assert m["cost"] == pytest.approx(expected_cost)
    assert server.stats()["requests"] == 30
    assert server.stats()["max_concurrency"] <= 8
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


def test_twenty_percent_faults_every_item_scored_or_errored_and_resume_retries_errors(
    tmp_path: Path, server: ReferenceServer
) -> None:
    cfg = server.config
    cfg.fault_rate, cfg.retry_after, cfg.timeout_delay, cfg.seed = 0.2, 0.01, 3.0, 7
    project = make_project(
        tmp_path / "p",
        _params(
            server.base_url,
            n_items=200,
            timeout=0.4,
            max_retries=1,
            backoff=0.01,
            max_concurrency=16,
        ),
    )
    result = invoke(project, "run")
    stats = server.stats()
    assert set(stats["faults"]) == {"429", "500", "timeout", "malformed", "drop"}
    m = _metrics(project)
    assert m["n"] == 200 and m["scored"] + m["errors"] == 200
    assert m["errors"] >= 1 and m["accuracy"] == 1.0  # errors are never scored as wrong
    assert set(m["error_patterns"]) <= {
        "RateLimitError",
        "ServerError",
        "APITimeoutError",
        "MalformedResponseError",
        "APIConnectionError",
    }
    assert sum(m["error_patterns"].values()) == m["errors"]
    # the policy: a faulted attempt is retried once (max_retries: 1), never more
    attempts = stats["prompts"]
    assert max(attempts.values()) == 2 and all(1 <= a <= 2 for a in attempts.values())
    assert result.exit_code == 1
    rec = load_execution(project, None).cells["ref/arith"]
    assert rec.status.value == "completed" and rec.examples_errored == m["errors"]
    errored = {line.split(",")[0] for line in
               (project.root / "metrics/ref/arith.scores.csv").read_text().splitlines()[1:]
               if line.rsplit(",", 1)[1]}  # fmt: skip
    assert len(errored) == m["errors"]

    cfg.fault_rate = 0.0
    before = collections.Counter(server.stats()["prompts"])
    resumed = invoke(project, "run", "--resume")
    assert resumed.exit_code == 0, resumed.output
    after = collections.Counter(server.stats()["prompts"])
    retried = after - before
    assert sum(retried.values()) == m["errors"]  # only the errored items were asked again
    m2 = _metrics(project)
    assert (m2["scored"], m2["errors"], m2["accuracy"]) == (200, 0, 1.0)
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


@pytest.mark.parametrize("http_date", [False, True])
def test_retry_after_is_honoured(tmp_path: Path, server: ReferenceServer, http_date: bool):
    cfg = server.config
    cfg.fail_first, cfg.faults = 1, ("429",)
    cfg.retry_after, cfg.retry_after_http_date = (2.0 if http_date else 0.6), http_date
    project = make_project(tmp_path / "p", _params(server.base_url, n_items=4, backoff=0.0))
    assert invoke(project, "run").exit_code == 0
    times = collections.defaultdict(list)
    for req in server.state.requests:
        times[req["prompt"]].append(req["t"])
    assert len(times) == 4
    # an HTTP date has one-second resolution, so it may round down by up to a second
    floor = 0.95 if http_date else 0.55
    for stamps in times.values():
        assert len(stamps) == 2 and stamps[1] - stamps[0] >= floor
    assert _metrics(project)["errors"] == 0


def test_retry_after_past_max_backoff_errors_the_item_at_once_and_resume_scores_it(
    tmp_path: Path, server: ReferenceServer
) -> None:
    # Seed 6 draws three 429s among the six first attempts; each says Retry-After: 3600.
    cfg = server.config
    cfg.fault_rate, cfg.faults, cfg.seed, cfg.retry_after = 0.5, ("429",), 6, 3600.0
    project = make_project(tmp_path / "p", _params(server.base_url, n_items=6, backoff=0.0))
    started = time.monotonic()
    result = invoke(project, "run")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output  # errored items: exit 1, as any error
    assert elapsed < 30, f"the run waited {elapsed:.0f} s"  # not 3600 s, not even 60 s
    assert server.stats()["faults"] == {"429": 3}
    assert set(server.stats()["prompts"].values()) == {1}  # no retry: the item errors now
    m = _metrics(project)
    assert (m["scored"], m["errors"], m["error_patterns"]) == (3, 3, {"RateLimitError": 3})
    with open(project.root / "metrics/ref/arith.scores.csv", newline="") as fh:
        errors = [row["error"] for row in csv.DictReader(fh) if row["error"]]
    assert errors == ["RateLimitError: Retry-After 3600 s exceeds max_backoff 60 s"] * 3

    cfg.fault_rate = 0.0
    resumed = invoke(project, "run", "--resume")
    assert resumed.exit_code == 0, resumed.output
    m2 = _metrics(project)
    assert (m2["scored"], m2["errors"], m2["accuracy"]) == (6, 0, 1.0)
    assert sum(server.stats()["prompts"].values()) == 9  # the three errored items, once more


def test_retries_follow_max_retries_exactly(tmp_path: Path, server: ReferenceServer) -> None:
    cfg = server.config
    cfg.fail_first, cfg.faults = 2, ("500", "malformed")
    project = make_project(
        tmp_path / "p",
        _params(server.base_url, n_items=5, max_retries=2, backoff=0.01),
    )
    assert invoke(project, "run").exit_code == 0
    assert set(server.stats()["prompts"].values()) == {3}
    assert _metrics(project)["accuracy"] == 1.0

    server.state.attempts.clear()
    text = project.params_path.read_text().replace("max_retries: 2", "max_retries: 1")
    project.params_path.write_text(text)
    result = invoke(project, "run", "--no-cache")  # the cache holds the first run's answers
    assert result.exit_code == 1
    rec = load_execution(project, None).cells["ref/arith"]
    assert rec.status.value == "failed"
    assert rec.error is not None and rec.error.startswith("all 5 items errored; first: ")
    assert "MalformedResponseError" in rec.error


def test_api_key_is_sent_but_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: ReferenceServer
) -> None:
    secret = "sk-test-" + "9f3Kq2LmZx7" * 3
    monkeypatch.setenv("EVALLEDGER_TEST_KEY", secret)
    server.config.require_api_key = secret
    project = make_project(
        tmp_path / "p", _params(server.base_url, api_key_env="EVALLEDGER_TEST_KEY")
    )
    assert invoke(project, "run", "--commit").exit_code == 0
    assert server.stats()["authorization"] == [f"Bearer {secret}"]
    leaks = [p for p in project.root.rglob("*") if p.is_file()
             and secret.encode() in p.read_bytes()]  # fmt: skip
    assert leaks == []
    manifest = load_execution(project, None)
    assert manifest.config["models"]["ref"]["api_key_env"] == "EVALLEDGER_TEST_KEY"


def test_wrong_key_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: ReferenceServer
) -> None:
    monkeypatch.setenv("EVALLEDGER_TEST_KEY", "wrong")
    server.config.require_api_key = "right"
    project = make_project(
        tmp_path / "p",
        _params(server.base_url, n_items=3, api_key_env="EVALLEDGER_TEST_KEY"),
    )
    assert invoke(project, "run").exit_code == 1
    assert server.stats()["requests"] == 3  # one attempt per item: a 401 is not retried
    rec = load_execution(project, None).cells["ref/arith"]
    assert rec.error is not None and "AuthenticationError: 401" in rec.error


def test_missing_key_variable_is_a_clear_error(tmp_path: Path, server: ReferenceServer) -> None:
    os.environ.pop("EVALLEDGER_NO_SUCH_KEY", None)
    project = make_project(
        tmp_path / "p",
        _params(server.base_url, api_key_env="EVALLEDGER_NO_SUCH_KEY"),
    )
    result = invoke(project, "run")
    # Found before the first cell starts: one line, exit 2, no execution recorded.
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: models.ref.api_key_env names EVALLEDGER_NO_SUCH_KEY, which is not set; "
        "export EVALLEDGER_NO_SUCH_KEY=<key> before running\n"
    )
    assert not [p for p in project.runs_dir.iterdir() if p.name != ".gitkeep"]
    assert server.stats()["requests"] == 0


def test_judge_grades_over_http_and_names_the_experiment(
    tmp_path: Path, server: ReferenceServer
) -> None:
    params = _params(
        server.base_url,
        n_items=12,
        difficulty="hard",
        bench_extra=", scorer: {name: judge, model: grader}",
    )
    params += (
        f"judges:\n  grader: {{adapter: openai, base_url: '{server.base_url}', "
        "model: judge, max_concurrency: 4}\n"
    )
    project = make_project(tmp_path / "p", params)
    assert invoke(project, "run").exit_code == 0
    m = _metrics(project)
    assert m["accuracy"] == pytest.approx(10 / 12)  # the two multi-step answers are graded wrong
    rec = load_execution(project, None).cells["ref/arith"]
    assert rec.experiment.startswith("ref-arith-judge_grader-")
    preds = [
        json.loads(x)
        for x in (project.root / "predictions/ref/arith.jsonl").read_text().splitlines()
    ]
    assert {p["judge"] for p in preds} == {"CORRECT", "INCORRECT"}
    assert server.stats()["requests"] == 24  # 12 answers + 12 gradings
    stage = (project.root / "dvc.yaml").read_text()
    assert "- judges" in stage
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}


SCORER_BENCHES = {
    # benchmark: (scorer, [(reply, target, choices)], accuracy, partial, format)
    "b_exact": ("exact", [("Paris.", "paris", None), ("Rome", "Lima", None)], 0.5, 0.5, 1.0),
    "b_numeric": (
        "numeric",
        [("about 1,000 apples", "1000", None), ("95", "100", None)],
        0.5,
        1.0,
        0.0,
    ),
    "b_regex": (
        {"name": "regex", "pattern": r"FINAL=(\w+)"},
        [("FINAL=yes", "yes", None), ("yes", "yes", None)],
        0.5,
        0.5,
        0.5,
    ),
    "b_tag": ("tag", [("<answer>42</answer>", "42", None), ("42", "42", None)], 0.5, 0.5, 0.5),
    "b_choice": (
        "choice",
        [("Answer: B", "B", ["x", "y", "z"]), ("A", "C", ["x", "y", "z"])],
        0.5,
        0.5,
        1.0,
    ),
}


def test_each_scorer_over_http(tmp_path: Path, server: ReferenceServer) -> None:
    lines = [
        "axes:",
        "  model: [ref]",
        f"  benchmark: [{', '.join(SCORER_BENCHES)}]",
        "models:",
        f"  ref: {{adapter: openai, base_url: '{server.base_url}', "
        "model: reference, max_concurrency: 4}",
        "benchmarks:",
    ]
    data = tmp_path / "p" / "data"
    data.mkdir(parents=True)
    for name, (scorer, rows, *_rest) in SCORER_BENCHES.items():
        with (data / f"{name}.jsonl").open("w") as fh:
            for i, (reply, target, choices) in enumerate(rows):
                row = {"id": f"{name}-{i}", "input": f"REPLY: {reply}", "target": target}
                if choices:
                    row["choices"] = choices
                fh.write(json.dumps(row) + "\n")
        lines.append(
            f"  {name}: {{loader: jsonl, path: data/{name}.jsonl, scorer: {json.dumps(scorer)}}}"
        )
    project = make_project(tmp_path / "p", "\n".join(lines) + "\n")
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    for name, (_, _, acc, partial, fmt) in SCORER_BENCHES.items():
        m = _metrics(project, f"ref/{name}")
        got = (m["accuracy"], m["partial_accuracy"], m["format_accuracy"])
        assert got == (acc, partial, fmt), name


def test_requests_per_minute_limit_spreads_calls(tmp_path: Path, server: ReferenceServer):
    project = make_project(
        tmp_path / "p", _params(server.base_url, n_items=30, rpm=600, max_concurrency=16)
    )
    assert invoke(project, "run").exit_code == 0
    stamps = sorted(r["t"] for r in server.state.requests)
    # 600/min is 10 a second after a burst of 10: the other 20 need about two seconds
    assert stamps[-1] - stamps[0] >= 1.7
    busiest = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert busiest <= 21  # the burst plus one second's refill, never the whole minute's 600
