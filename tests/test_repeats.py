"""Repeated samples: ``repeats: 5`` on a seeded noisy model, checked by hand.

Each of 30 questions is answered 5 times (distinct seeded mistakes per sample). The
cell's pass@k is the unbiased estimator computed here from the scores file, the
majority and first-sample reducers are recomputed from the answers, the leaderboard's
interval and the significance test are taken over the 30 per-question means (Miller
2024), and ``evalledger items`` groups each question's 5 answers.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from pathlib import Path

import pytest
from scipy.stats import norm

from conftest import dvc, invoke, make_project
from evalledger.execution.repeats import pass_at_k, sample_decoding
from evalledger.plugin_types import Item
from evalledger.project import Project

K, N = 5, 30
PARAMS = f"""\
axes:
  model: [noisy, solver]
  benchmark: [arith]
models:
  noisy: {{adapter: baseline, strategy: solver, error_rate: 0.4, seed: 3, repeats: {K}}}
  solver: {{adapter: baseline, strategy: solver}}
benchmarks:
  arith: {{loader: arith, n_items: {N}, seed: 1, difficulty: easy}}
run:
  jobs: 2
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = make_project(tmp_path_factory.mktemp("rep") / "proj", PARAMS)
    result = invoke(project, "run", "--commit")
    assert result.exit_code == 0, result.output
    return project


def _answers(project: Project) -> dict[str, list[tuple[bool, str | None]]]:
    """Question -> (correct, extracted answer) per sample, in sample order."""
    with (project.root / "metrics/noisy/arith.scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    with (project.root / "predictions/noisy/arith.jsonl").open() as fh:
        preds = {p["id"]: p for p in map(json.loads, fh)}
    out: dict[str, list[tuple[bool, str | None]]] = {}
    for row in rows:
        pred = preds[f"{row['id']}#{row['sample']}"]
        out.setdefault(row["id"], []).append((row["correct"] == "1", pred["extracted"]))
    return out


def test_every_answer_is_recorded_and_the_metrics_count_questions(ran: Project) -> None:
    answers = _answers(ran)
    assert len(answers) == N and all(len(a) == K for a in answers.values())
    assert len({tuple(c for c, _ in a) for a in answers.values()}) > 1  # samples differ
    metrics = json.loads((ran.root / "metrics/noisy/arith.json").read_text())
    assert metrics["n"] == N and metrics["scored"] == N
    assert metrics["repeats"]["k"] == K and metrics["repeats"]["samples"] == N * K
    per_question = [sum(c for c, _ in a) / K for a in answers.values()]
    assert metrics["accuracy"] == pytest.approx(statistics.fmean(per_question), abs=1e-6)
    assert json.loads(dvc(ran.root, "status", "--json").stdout) == {}


def test_pass_at_k_is_the_unbiased_estimator(ran: Project) -> None:
    answers = _answers(ran)
    reducers = json.loads((ran.root / "metrics/noisy/arith.json").read_text())["repeats"]
    assert sorted(reducers["pass_at"], key=int) == ["1", "2", "4", "5"]
    for k in (1, 2, 4, 5):
        by_hand = statistics.fmean(
            1 - math.comb(K - c, k) / math.comb(K, k) if K - c >= k else 1.0
            for c in (sum(ok for ok, _ in a) for a in answers.values())
        )
        assert reducers["pass_at"][str(k)] == pytest.approx(by_hand, abs=1e-6), k
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # C(3,2)/C(5,2)
    assert 0 < reducers["pass_at"]["1"] < reducers["pass_at"]["5"] <= 1

    def majority(a: list[tuple[bool, str | None]]) -> bool:
        counts = Counter(x for _, x in a)
        top = max(counts.values())
        return next(ok for ok, x in a if counts[x] == top)

    assert reducers["majority"] == pytest.approx(
        statistics.fmean(majority(a) for a in answers.values()), abs=1e-6
    )
    assert reducers["first"] == pytest.approx(
        statistics.fmean(a[0][0] for a in answers.values()), abs=1e-6
    )


def test_intervals_and_tests_are_over_per_question_means(ran: Project) -> None:
    per_question = [sum(c for c, _ in a) / K for a in _answers(ran).values()]
    mean = statistics.fmean(per_question)
    se = statistics.stdev(per_question) / math.sqrt(N)  # not over the 150 answers
    z = norm.ppf(0.975)
    board = json.loads(invoke(ran, "leaderboard", "--json").stdout)
    (noisy,) = [e for e in board["entries"] if e["name"] == "noisy"]
    assert noisy["n_items"] == N
    assert noisy["ci_low"] == pytest.approx(mean - z * se, abs=1e-6)
    assert noisy["ci_high"] == pytest.approx(mean + z * se, abs=1e-6)
    out = invoke(ran, "significance", "noisy", "solver", "--json")
    assert out.exit_code == 0, out.output
    (comparison,) = json.loads(out.stdout)["comparisons"]
    assert comparison["n"] == N and comparison["mean_a"] == pytest.approx(mean)
    assert comparison["method"] != "mcnemar"  # per-question means are not 0/1


def test_items_groups_each_questions_answers(ran: Project) -> None:
    answers = _answers(ran)
    out = invoke(ran, "items", "noisy/arith", "--json")
    assert out.exit_code == 0, out.output
    items = json.loads(out.stdout)["items"]
    assert [i["id"] for i in items] == list(answers)
    for item in items:
        mine = answers[item["id"]]
        assert item["samples"] == K and item["correct"] == sum(c for c, _ in mine)
        counts = Counter(x for _, x in mine)
        assert item["distinct"] == len(counts)
        assert {a["answer"]: a["count"] for a in item["answers"]} == dict(counts)
    table = invoke(ran, "items", "noisy/arith", "--disagree", "-n", "3")
    assert table.exit_code == 0 and len(table.stdout.strip().splitlines()) == 4
    missing = invoke(ran, "items", "noisy/gsm8k")
    assert missing.exit_code == 2 and "no cell 'noisy/gsm8k'" in missing.output


def test_each_sample_gets_its_own_seed() -> None:
    item = Item("q", "1 + 1", "2", meta={"sample": 3})
    assert sample_decoding({"seed": 7, "temperature": 1.0}, item) == {
        "seed": 10, "temperature": 1.0, "sample": 3,
    }  # fmt: skip
    plain = Item("q", "1 + 1", "2")
    assert sample_decoding({"seed": 7}, plain) == {"seed": 7}


@pytest.mark.parametrize("value", ["0", "1.5", "x", "1001"])
def test_a_bad_repeats_is_one_line(tmp_path: Path, value: str) -> None:
    project = make_project(tmp_path / "p", PARAMS)
    (project.root / "params.yaml").write_text(PARAMS.replace(f"repeats: {K}", f"repeats: {value}"))
    out = invoke(project, "run", "--dry-run")
    assert out.exit_code == 2, out.output
    assert "models.noisy.repeats must be an integer from 1 to 1000" in out.output
    assert len(out.output.strip().splitlines()) == 1
