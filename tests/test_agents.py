"""Per-agent results of multi-agent systems: records, metrics, show, leaderboard, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from statsmodels.stats.proportion import proportion_confint

from conftest import dvc, invoke, make_project
from evalledger.execution.cell import SCORE_COLUMNS
from evalledger.execution.checkpoint import valid_record
from evalledger.execution.executions import load_execution
from evalledger.metrics import Directions, is_timing_metric
from evalledger.models.python import _completion
from evalledger.plugin_types import AgentRecord, AgentRecordError, Completion, agent_records
from evalledger.project import Project

N_ITEMS = 30

AGENT_MODEL = '''\
"""A two-agent system whose agents succeed on a seeded, known pattern of items."""
import os
import time
from pathlib import Path


def generate(prompt, item, seed=0, every=4, bad=-1, gate_at=-1, flags="."):
    index = int(item.id.rsplit("-", 1)[1])
    flags = Path(flags)
    if index == gate_at and (flags / "gate_on").exists():
        (flags / "blocked").touch()
        time.sleep(3600)
    fd = os.open(flags / "calls.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (item.id + "\\n").encode())
    os.close(fd)
    agents = [{"name": "planner", "success": (index + seed) % 5 != 0, "latency_ms": 10.0 + index,
               "cost": 0.001, "prompt_tokens": 10, "completion_tokens": 5}]
    if index % 3 != 0:
        agents.append({"name": "extractor", "success": (7 * index + seed) % every != 0,
                       "latency_ms": 2.5 * index, "cost": 0.0005 * index,
                       "prompt_tokens": index, "completion_tokens": 2})
    if index == bad:
        agents[-1]["success"] = "yes"
    return {"text": f"The answer is {item.target}.", "agents": agents}


def plain(prompt, item):
    return f"The answer is {item.target}."
'''


def _params(flags: Path, models: dict[str, dict[str, Any]], plain: bool = False) -> str:
    entries: dict[str, Any] = {
        name: {"adapter": "python", "callable": "agent_model:generate", "path": str(flags),
               "options": {"flags": str(flags), **options}}
        for name, options in models.items()
    }  # fmt: skip
    if plain:
        entries["plain"] = {"adapter": "python", "callable": "agent_model:plain",
                            "path": str(flags)}  # fmt: skip
    return yaml.safe_dump({
        "axes": {"model": list(entries), "benchmark": ["arith"]},
        "models": entries,
        "benchmarks": {"arith": {"loader": "arith", "n_items": N_ITEMS, "seed": 1,
                                 "difficulty": "easy"}},
        "run": {"jobs": 2},
    }, sort_keys=False)  # fmt: skip


def _project(tmp_path: Path, models: dict[str, dict[str, Any]], plain: bool = False) -> Project:
    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "agent_model.py").write_text(AGENT_MODEL)
    return make_project(tmp_path / "proj", _params(flags, models, plain))


def _expected(seed: int = 0, every: int = 4, skip: int = -1) -> dict[str, dict[str, Any]]:
    """The agents block, counted here from the model's rule, item by item."""
    planner = [i for i in range(N_ITEMS) if i != skip]
    extractor = [i for i in planner if i % 3 != 0]
    return {
        "extractor": {
            "success_rate": round(sum((7 * i + seed) % every != 0 for i in extractor)
                                  / len(extractor), 6),
            "n": len(extractor),
            "successes": sum((7 * i + seed) % every != 0 for i in extractor),
            "mean_latency_ms": round(sum(2.5 * i for i in extractor) / len(extractor), 3),
            "cost": round(sum(0.0005 * i for i in extractor), 6),
            "prompt_tokens": sum(extractor),
            "completion_tokens": 2 * len(extractor),
        },
        "planner": {
            "success_rate": round(sum((i + seed) % 5 != 0 for i in planner) / len(planner), 6),
            "n": len(planner),
            "successes": sum((i + seed) % 5 != 0 for i in planner),
            "mean_latency_ms": round(sum(10.0 + i for i in planner) / len(planner), 3),
            "cost": round(0.001 * len(planner), 6),
            "prompt_tokens": 10 * len(planner),
            "completion_tokens": 5 * len(planner),
        },
    }  # fmt: skip


def _metrics(project: Project, key: str) -> dict[str, Any]:
    return json.loads((project.root / f"metrics/{key}.json").read_text())


def _predictions(project: Project, key: str) -> list[dict[str, Any]]:
    text = (project.root / f"predictions/{key}.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_run_writes_each_agents_figures_over_the_items_it_ran_on(tmp_path: Path) -> None:
    project = _project(tmp_path, {"sys": {"seed": 0}}, plain=True)
    result = invoke(project, "run")
    assert result.exit_code == 0, result.output
    metrics = _metrics(project, "sys/arith")
    expected = _expected()
    assert metrics["agents"] == expected
    # 20 of the 30 items ran the extractor; 15 of them succeeded (7i % 4 != 0 for i % 4 != 0)
    assert (expected["extractor"]["n"], expected["extractor"]["successes"]) == (20, 15)
    assert (expected["planner"]["n"], expected["planner"]["successes"]) == (30, 24)
    assert list(metrics)[-2:] == ["agents", "error_patterns"]
    preds = _predictions(project, "sys/arith")
    assert len(preds) == N_ITEMS
    first = next(p for p in preds if p["id"].endswith("-0001"))
    assert first["agents"] == [
        {"name": "planner", "success": True, "latency_ms": 11.0, "cost": 0.001,
         "prompt_tokens": 10, "completion_tokens": 5},
        {"name": "extractor", "success": True, "latency_ms": 2.5, "cost": 0.0005,
         "prompt_tokens": 1, "completion_tokens": 2},
    ]  # fmt: skip
    # A model without agents writes no agents anywhere; the scores CSV has no new column.
    assert "agents" not in _metrics(project, "plain/arith")
    assert all("agents" not in p for p in _predictions(project, "plain/arith"))
    header = (project.root / "metrics/sys/arith.scores.csv").read_text().splitlines()[0]
    assert header == ",".join(SCORE_COLUMNS)
    assert json.loads(dvc(project.root, "status", "--json").stdout) == {}

    execution = load_execution(project, None).execution_id
    shown = invoke(project, "show", execution)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    head = lines.index(next(line for line in lines if line.strip() == "agents"))
    assert lines[head + 1].split() == ["cell", "agent", "success_rate", "n", "mean_latency_ms",
                                       "cost"]  # fmt: skip
    rows = [line.split() for line in lines[head + 2 :] if line.strip()]
    assert rows == [
        ["sys/arith", "extractor", "0.75", "20", "37.5", "0.15"],
        ["sys/arith", "planner", "0.8", "30", "24.5", "0.03"],
    ]
    as_json = json.loads(invoke(project, "show", execution, "--json").output)
    assert as_json["results"]["sys/arith"]["agents"] == expected
    assert "agents" not in as_json["results"]["plain/arith"]
    exported = invoke(project, "export", "--all")
    assert exported.exit_code == 0, exported.output
    assert f'"agents": {json.dumps(expected)}' in json.dumps(json.loads(exported.output))


def test_leaderboard_ranks_on_an_agents_success_rate_with_its_own_n(tmp_path: Path) -> None:
    project = _project(tmp_path, {"good": {"seed": 0}, "weak": {"seed": 1, "every": 2}}, True)
    assert invoke(project, "run").exit_code == 0
    out = invoke(project, "leaderboard", "-m", "agents.extractor.success_rate",
                 "--models", "good,weak", "--json")  # fmt: skip
    assert out.exit_code == 0, out.output
    board = json.loads(out.output)
    good, weak = _expected(0)["extractor"], _expected(1, 2)["extractor"]
    assert good["success_rate"] > weak["success_rate"]
    assert [e["name"] for e in board["entries"]] == ["good", "weak"]
    # no "direction not known" note: success_rate is higher-is-better
    assert board["notes"] == []
    for entry, agent in zip(board["entries"], (good, weak), strict=True):
        assert entry["value"] == agent["success_rate"]
        assert entry["n_items"] == agent["n"] == 20  # the extractor's n, not the cell's 30
        low, high = proportion_confint(agent["successes"], agent["n"], 0.05, method="wilson")
        # by hand too: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
        p, n, z = agent["success_rate"], agent["n"], 1.959963984540054
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        assert entry["ci_low"] == pytest.approx(low, abs=1e-9) == pytest.approx(centre - half)
        assert entry["ci_high"] == pytest.approx(high, abs=1e-9) == pytest.approx(centre + half)
    # Latency of the agent ranks lower first.
    lat = json.loads(invoke(project, "leaderboard", "-m", "agents.extractor.mean_latency_ms",
                            "--models", "good,weak", "--json").output)  # fmt: skip
    assert lat["entries"][0]["value"] == good["mean_latency_ms"] == 37.5

    missing = invoke(project, "leaderboard", "-m", "agents.extractor.success_rate")
    assert missing.exit_code == 2
    assert "plain has no agent 'extractor' in its cells; agents: extractor, planner" in (
        missing.output
    )
    assert "Traceback" not in missing.output and len(missing.output.strip().splitlines()) == 1
    unknown = invoke(project, "leaderboard", "-m", "agents.judge.success_rate", "--models", "good")
    assert unknown.exit_code == 2
    assert "good has no agent 'judge' in its cells; agents: extractor, planner" in unknown.output
    field = invoke(project, "leaderboard", "-m", "agents.planner.speed")
    assert field.exit_code == 2
    assert "unknown agent metric 'agents.planner.speed'; known: agents.planner.success_rate" in (
        field.output
    )


def test_a_malformed_agent_record_errors_its_item_only(tmp_path: Path) -> None:
    project = _project(tmp_path, {"sys": {"bad": 7}})
    result = invoke(project, "run")
    assert result.exit_code == 1  # some items errored: the run says to resume them
    metrics = _metrics(project, "sys/arith")
    assert (metrics["n"], metrics["scored"], metrics["errors"]) == (30, 29, 1)
    assert metrics["error_patterns"] == {"AgentRecordError": 1}
    assert metrics["agents"] == _expected(skip=7)
    row = next(p for p in _predictions(project, "sys/arith") if p["id"].endswith("-0007"))
    assert row["error"] == (
        "AgentRecordError: agent 'extractor': success must be true or false, got 'yes'"
    )
    assert "agents" not in row


def test_a_killed_run_resumes_with_the_same_agents_block(tmp_path: Path) -> None:
    project = _project(tmp_path, {"sys": {"gate_at": 12}})
    flags = tmp_path / "flags"
    (flags / "gate_on").touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalledger", "run"], cwd=project.root, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while not (flags / "blocked").exists():
        assert time.time() < deadline and proc.poll() is None, "the run never reached item 12"
        time.sleep(0.02)
    checkpoints = list((project.root / ".evalledger/checkpoints").glob("*.jsonl"))
    lines = [json.loads(line) for line in checkpoints[0].read_text().splitlines()]
    assert len(lines) == 12 and all(valid_record(rec) and rec["agents"] for rec in lines)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (flags / "gate_on").unlink()
    resumed = invoke(project, "run", "--resume")
    assert resumed.exit_code == 0, resumed.output
    log = (flags / "calls.log").read_text().split()
    assert len(log) == len(set(log)) == N_ITEMS  # the 12 checkpointed items did not run again
    assert _metrics(project, "sys/arith")["agents"] == _expected()
    assert all(p["agents"] for p in _predictions(project, "sys/arith"))


@pytest.mark.parametrize(
    ("agents", "message"),
    [
        ([{"success": True}], "agents[0]: name is missing"),
        ([{"name": "a"}], "agents[0]: success is missing"),
        ([{"name": "a", "success": 1}], "agent 'a': success must be true or false, got 1"),
        ([{"name": "a", "success": True, "cost": -0.5}], "agent 'a': cost must be 0 or more"),
        ([{"name": "a", "success": True, "latency_ms": "fast"}],
         "agent 'a': latency_ms must be a number, got 'fast'"),
        ([{"name": "a", "success": True, "prompt_tokens": 2.5}],
         "agent 'a': prompt_tokens must be an integer >= 0, got 2.5"),
        ([{"name": "a", "success": True, "tokens": 3}], "agents[0]: unknown key 'tokens'; known:"),
        ([{"name": "x/y", "success": True}], "agent 'x/y': name is not allowed"),
        ([{"name": "a.b", "success": True}], "agent 'a.b': name is not allowed"),
        ([{"name": "a", "success": True}, {"name": "a", "success": False}],
         "agent 'a' is named twice for one item"),
        ("planner", "agents must be a list of records, got 'planner'"),
    ],
)  # fmt: skip
def test_malformed_agent_records_name_the_field(agents: Any, message: str) -> None:
    with pytest.raises(AgentRecordError) as err:
        _completion({"text": "4", "agents": agents})
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_the_python_adapter_takes_completions_and_mappings_with_agents() -> None:
    rec = AgentRecord("planner", True, 1.5, 0.25, 3, 4)
    assert _completion(Completion("4", agents=(rec,))).agents == (rec,)
    # a list given where a tuple belongs is made one, and checked
    assert _completion(Completion("4", agents=[rec])).agents == (rec,)  # type: ignore[arg-type]
    mapped = _completion({"text": "4", "prompt_tokens": 7, "agents": [rec.to_json()]})
    assert (mapped.text, mapped.prompt_tokens, mapped.agents) == ("4", 7, (rec,))
    assert _completion("4") == Completion("4")  # plain text: no agents, as before
    assert agent_records(None) == ()
    # positional fields keep their places: adapters written before agents still work
    assert Completion("4", 1, 2) == Completion(text="4", prompt_tokens=1, completion_tokens=2)


def test_checkpoint_lines_with_broken_agent_records_are_not_valid() -> None:
    base = {"id": "x-1", "category": "", "correct": True, "partial": False, "formatted": True,
            "score": 1.0, "latency_ms": 3.0, "prompt_tokens": None, "completion_tokens": None,
            "output": "4", "error": None}  # fmt: skip
    good = {**base, "agents": [AgentRecord("planner", True).to_json()]}
    assert valid_record(base) and valid_record(good)
    assert not valid_record({**base, "agents": {"planner": True}})
    assert not valid_record({**base, "agents": [{"name": "planner", "success": "yes"}]})
    assert not valid_record({**base, "agents": [{"name": "planner"}]})


def test_agent_metrics_have_fixed_directions_whatever_the_agent_is_called() -> None:
    d = Directions()
    assert d.direction("agents.error_checker.success_rate") == "higher"
    assert d.direction("agents.extractor.successes") == "higher"
    assert d.direction("agents.accuracy_bot.cost") == "lower"
    assert d.direction("agents.scorer.mean_latency_ms") == "lower"
    assert d.direction("agents.planner.prompt_tokens") == "lower"
    assert d.assumed == set() and d.note() is None
    # params.yaml still has the last word
    assert Directions({"agents.*.cost": "higher"}).direction("agents.a.cost") == "higher"
    assert is_timing_metric("agents.planner.mean_latency_ms")
    assert not is_timing_metric("agents.time-keeper.success_rate")


def test_agent_records_of_any_adapter_are_checked_when_the_item_is_recorded() -> None:
    from evalledger.execution.cell import _record
    from evalledger.plugin_types import Item, ItemScore

    item, score = Item("x-1", "2+2", "4"), ItemScore(correct=True, score=1.0)
    twice = Completion("4", agents=(AgentRecord("a", True), AgentRecord("a", False)))
    with pytest.raises(AgentRecordError, match="agent 'a' is named twice for one item"):
        _record(item, 1.0, twice, score)
    rec = _record(item, 1.0, Completion("4", agents=(AgentRecord("a", True, cost=0.5),)), score)
    assert rec["agents"] == [{"name": "a", "success": True, "latency_ms": None, "cost": 0.5,
                              "prompt_tokens": None, "completion_tokens": None}]  # fmt: skip
    assert "agents" not in _record(item, 1.0, Completion("4"), score)
