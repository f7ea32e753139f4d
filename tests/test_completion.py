"""Shell completion: execution IDs, models, benchmarks, metrics and revisions, cheaply."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from tests.test_startup import _heavy, _loaded_after

from conftest import git, invoke
from evalledger.cli import cli
from evalledger.cli._complete import (
    complete_axis,
    complete_execution,
    complete_metric,
    complete_revision,
)
from evalledger.project import Project


@pytest.fixture
def ran(project: Project) -> Project:
    assert invoke(project, "run", "--commit").exit_code == 0
    git(project.root, "tag", "v1")
    return project


def _ctx(project: Project) -> click.Context:
    ctx = click.Context(cli)
    ctx.params = {"project_dir": str(project.root)}
    return ctx


def _param() -> click.Parameter:
    return click.Option(["--x"])


def test_models_and_benchmarks_complete_after_commas(ran: Project) -> None:
    ctx = _ctx(ran)
    assert complete_axis("model")(ctx, _param(), "") == ["solver", "noisy", "adder"]
    assert complete_axis("model")(ctx, _param(), "no") == ["noisy"]
    assert complete_axis("model")(ctx, _param(), "solver,") == ["solver,noisy", "solver,adder"]
    assert complete_axis("benchmark")(ctx, _param(), "arith_") == ["arith_hard"]


def test_execution_ids_metrics_and_revisions(ran: Project) -> None:
    ctx = _ctx(ran)
    ids = complete_execution(ctx, _param(), "exec_")
    assert len(ids) == 1 and ids[0].startswith("exec_")
    assert complete_execution(ctx, _param(), ids[0][-8:]) == ids  # any part, as the CLI takes
    metrics = complete_metric(ctx, _param(), "")
    assert {"accuracy", "latency_ms.p50", "categories.addition.accuracy"} <= set(metrics)
    assert complete_metric(ctx, _param(), "partial") == ["partial_accuracy"]
    revs = complete_revision(ctx, _param(), "")
    assert {"HEAD", "workspace", "v1"} <= set(revs)
    assert complete_revision(ctx, _param(), "v") == ["v1"]


def test_outside_a_project_nothing_completes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = click.Context(cli)
    ctx.params = {"project_dir": str(tmp_path)}
    assert complete_execution(ctx, _param(), "") == []
    assert complete_axis("model")(ctx, _param(), "") == []


def test_the_shell_gets_the_candidates(ran: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ran.root)
    env = {"_EVALLEDGER_COMPLETE": "bash_complete", "COMP_WORDS": "evalledger diff --models so",
           "COMP_CWORD": "3"}  # fmt: skip
    result = CliRunner().invoke(cli, [], env=env, prog_name="evalledger")
    assert "plain,solver" in result.output.split()
    env["COMP_WORDS"], env["COMP_CWORD"] = "evalledger show ", "2"
    result = CliRunner().invoke(cli, [], env=env, prog_name="evalledger")
    assert "plain,exec_" in result.output


def test_completion_imports_nothing_heavy() -> None:
    loaded = _heavy(_loaded_after(
        "import click, evalledger.cli._complete as c\n"
        "ctx = click.Context(c.click.Command('x'))\n"
        "c.complete_metric(ctx, click.Option(['--m']), '')\n"
        "c.complete_revision(ctx, click.Option(['--m']), '')\n"
    ))  # fmt: skip
    assert not set(loaded) & {"pandas", "scipy", "dvc", "numpy", "git"}, loaded
