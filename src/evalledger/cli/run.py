"""``evalledger run`` and ``evalledger resume``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from evalledger.cli._options import current_project
from evalledger.cli._render import make_reporter
from evalledger.errors import EXIT_CELLS_FAILED
from evalledger.execution.plan import RunOptions
from evalledger.execution.runner import RunResult
from evalledger.execution.runner import run as run_execution

F = TypeVar("F", bound=Callable[..., Any])

_AXIS_OPTIONS = {"models": "model", "benchmarks": "benchmark",
                 "prompt_sets": "prompt_set", "decodings": "decoding"}  # fmt: skip


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for chunk in values for v in chunk.split(",") if v.strip()]


def _execute(ctx: click.Context, options: RunOptions) -> None:
    project = current_project(ctx)
    options.command = list(ctx.meta.get("evalledger.argv", ["evalledger", "run"]))
    reporter = make_reporter()
    try:
        result = run_execution(project, options, reporter)
    finally:
        close = getattr(reporter, "close", None)
        if close:
            close()
    _report(result, options)


def _report(result: RunResult, options: RunOptions) -> None:
    plan = result.plan
    if options.dry_run:
        remaining = plan.items_remaining
        click.echo(f"{'resume' if plan.resume else 'new run'}: {len(plan.cells)} cells to "
                   f"evaluate, {len(plan.up_to_date)} up to date")  # fmt: skip
        for key in plan.cells:
            left = remaining[key]
            click.echo(f"  {key}: {'all' if left is None else left} items left"
                       f" ({plan.items_done.get(key, 0)} in checkpoint)")  # fmt: skip
        return
    if result.message:
        click.echo(result.message)
    manifest = result.manifest
    if manifest is None:
        return
    click.echo(
        f"{manifest.execution_id}: {manifest.status.value} ({manifest.summary()}) "
        f"in {result.seconds:.1f}s; {result.recorded} cells recorded in dvc.lock"
    )
    if result.committed:
        click.echo(f"committed {result.committed[:10]}")
    if not result.ok:
        click.echo(
            f"Error: some cells did not complete; rerun them with "
            f"`evalledger run --resume {manifest.execution_id}`",
            err=True,
        )
        sys.exit(EXIT_CELLS_FAILED)


def _axis_option(name: str) -> Callable[[F], F]:
    flag = "--" + name.replace("_", "-")
    option: Callable[[F], F] = click.option(
        flag, name, multiple=True, metavar="A,B",
        help=f"Only these {name.replace('_', ' ')} (comma-separated).",
    )  # fmt: skip
    return option


_JOBS = click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=None,
    help="Cells evaluated at once (default: run.jobs in params.yaml).",
)  # fmt: skip
_COMMIT = click.option("--commit", is_flag=True,
                       help="Commit the execution's results to git at the end.")  # fmt: skip


@click.command()
@click.argument("execution_id", required=False)
@click.option("--resume", is_flag=True,
              help="Continue an execution (EXECUTION_ID, default: the latest).")  # fmt: skip
@_axis_option("models")
@_axis_option("benchmarks")
@_axis_option("prompt_sets")
@_axis_option("decodings")
@click.option(
    "-S",
    "--set-param",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a value in params.yaml before running, like `dvc exp run -S`.",
)
@_JOBS
@click.option("-f", "--force", is_flag=True,
              help="Evaluate cells even if dvc.lock says they are up to date.")  # fmt: skip
@_COMMIT
@click.option("--dry-run", is_flag=True, help="Show which cells and items would run; run none.")
@click.pass_context
def run(
    ctx: click.Context, execution_id: str | None, resume: bool, models: tuple[str, ...],
    benchmarks: tuple[str, ...], prompt_sets: tuple[str, ...], decodings: tuple[str, ...],
    overrides: tuple[str, ...], jobs: int | None, force: bool, commit: bool, dry_run: bool,
) -> None:  # fmt: skip
    """Evaluate the matrix: a new execution of the selected cells, several at once.

    Cells whose results in dvc.lock match params.yaml are skipped (like `dvc repro`)
    unless --force. With --resume, continue an interrupted execution: completed cells are
    skipped, failed and unfinished ones continue from their item checkpoints.
    """
    if execution_id and not resume:
        raise click.UsageError("EXECUTION_ID is only used with --resume")
    given = {"models": models, "benchmarks": benchmarks, "prompt_sets": prompt_sets,
             "decodings": decodings}  # fmt: skip
    filters = {axis: _split(given[opt]) for opt, axis in _AXIS_OPTIONS.items()}
    options = RunOptions(
        resume=resume, execution_id=execution_id, filters=filters, overrides=list(overrides),
        jobs=jobs, force=force, commit=commit, dry_run=dry_run,
    )  # fmt: skip
    _execute(ctx, options)


@click.command()
@click.argument("execution_id", required=False)
@_JOBS
@_COMMIT
@click.option("--dry-run", is_flag=True, help="Show which cells and items remain; run none.")
@click.pass_context
def resume(
    ctx: click.Context, execution_id: str | None, jobs: int | None, commit: bool, dry_run: bool
) -> None:
    """Continue an interrupted execution (default: the latest); same as `run --resume`."""
    _execute(ctx, RunOptions(resume=True, execution_id=execution_id, jobs=jobs,
                             commit=commit, dry_run=dry_run))  # fmt: skip
