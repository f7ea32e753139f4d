"""``evalledger run`` and ``evalledger resume``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from evalledger.cli._complete import complete_execution
from evalledger.cli._options import current_project, examples, filter_options, json_option
from evalledger.cli._render import make_reporter, run_json
from evalledger.errors import EXIT_CELLS_FAILED

if TYPE_CHECKING:
    from evalledger.execution.plan import RunOptions, RunPlan
    from evalledger.execution.runner import RunResult


def _execute(ctx: click.Context, options: RunOptions, as_json: bool = False) -> None:
    from evalledger.execution.runner import run as run_execution
    from evalledger.execution.shards import run_shard

    project = current_project(ctx)
    options.command = list(ctx.meta.get("evalledger.argv", ["evalledger", "run"]))
    reporter = make_reporter(err=as_json)  # with --json, progress goes to stderr
    try:
        run_fn = run_shard if options.shard is not None else run_execution
        result = run_fn(project, options, reporter)
    finally:
        close = getattr(reporter, "close", None)
        if close:
            close()
    if as_json:
        click.echo(json.dumps(run_json(result, options.dry_run), indent=2))
        _fail_unless_ok(result)
    else:
        _report(result, options)


def _fail_unless_ok(result: RunResult) -> None:
    if not result.ok and result.manifest is not None:
        shard = result.plan.shard
        again = f"--shard {shard}" if shard else f"--resume {result.manifest.execution_id}"
        click.echo(
            f"Error: some cells did not complete; rerun them with `evalledger run {again}`",
            err=True,
        )
        sys.exit(EXIT_CELLS_FAILED)


def _reused(plan: RunPlan) -> str:
    """``2 cells' outputs from exec_x (evaluated at the same configuration, ...)``."""
    n, runs = len(plan.reused), sorted(set(plan.reused.values()))
    whose = "1 cell's" if n == 1 else f"{n} cells'"
    source = runs[0] if len(runs) == 1 else f"{len(runs)} earlier executions"
    return (f"{whose} outputs from {source} (evaluated before at the same configuration, "
            "data and code)")  # fmt: skip


def _report(result: RunResult, options: RunOptions) -> None:
    plan = result.plan
    if options.dry_run:
        remaining = plan.items_remaining
        what = "resume" if plan.resume else "new run"
        if plan.shard is not None:
            what = f"shard {plan.shard} of {plan.execution_id or 'a new run'}"
        up = len(plan.up_to_date) - len(plan.reused)  # those are restored, not yet there
        click.echo(f"{what}: {len(plan.cells)} cells to evaluate, {up} up to date")
        if plan.reused:
            calls = sum(plan.restored[k] for k in plan.reused)
            click.echo(f"would restore {_reused(plan)}: {calls} model calls saved")
        for key in plan.cells:
            left = remaining[key]
            click.echo(f"  {key}: {'all' if left is None else left} items left"
                       f" ({plan.items_done.get(key, 0)} in checkpoint)")  # fmt: skip
        return
    pulled = {k: n for k, n in plan.restored.items() if k not in plan.reused}
    if pulled:
        n, calls = len(pulled), sum(pulled.values())
        whose = "1 cell's" if n == 1 else f"{n} cells'"
        click.echo(f"restored {whose} predictions from the DVC cache or remote instead of "
                   f"evaluating them: {calls} model calls saved")  # fmt: skip
    if plan.reused:
        click.echo(f"restored {_reused(plan)} instead of evaluating them: "
                   f"{sum(plan.restored[k] for k in plan.reused)} model calls saved")  # fmt: skip
    if result.message:
        click.echo(result.message)
    manifest = result.manifest
    if manifest is None:
        if result.committed:  # cells restored from an earlier execution
            click.echo(f"committed {result.committed[:10]}")
        return
    click.echo(
        f"{manifest.execution_id}: {manifest.status.value} ({manifest.summary()}) "
        f"in {result.seconds:.1f}s; {result.recorded} cells recorded in dvc.lock"
    )
    if result.cache_hits:
        click.echo(f"{result.cache_hits} model calls saved: answered from the response cache "
                   "(`run --no-cache` makes them)")  # fmt: skip
    if result.committed:
        click.echo(f"committed {result.committed[:10]}")
    _fail_unless_ok(result)


_JOBS = click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=None,
    help="Cells evaluated at once (default: run.jobs in params.yaml).",
)  # fmt: skip
_EXECUTOR = click.option(
    "--executor", type=click.Choice(["local", "ray"]), default=None,
    help="Evaluate items in this process or as Ray tasks (default: run.executor, local).",
)  # fmt: skip
_ADDRESS = click.option(
    "--address", metavar="HOST:PORT", default=None,
    help="The Ray cluster to join with --executor ray (default: run.ray_address, or a "
    "local Ray).",
)  # fmt: skip
_COMMIT = click.option("--commit", is_flag=True,
                       help="Commit the execution's results to git at the end.")  # fmt: skip


@click.command(
    short_help="Evaluate the matrix: the selected cells not up to date.",
    epilog=examples(
        "evalledger run                          # every stale cell",
        "evalledger run --models solver,noisy -b arith -j 4",
        "evalledger run -S models.noisy.error_rate=0.1 --commit",
        "evalledger run --resume                 # continue the latest execution",
        "evalledger run --shard 2/4              # this process's quarter of the items",
        "evalledger run --executor ray --address 10.0.0.5:6379   # on a Ray cluster",
    ),
)
@click.argument("execution_id", required=False, shell_complete=complete_execution)
@click.option("--resume", is_flag=True,
              help="Continue an execution (EXECUTION_ID, default: the latest).")  # fmt: skip
@filter_options
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
@click.option("--no-cache", is_flag=True,
              help="Make every model call: neither read nor write the response cache.")  # fmt: skip
@click.option(
    "--shard", "shard", metavar="I/N", default=None,
    help="Evaluate only shard I of N of every cell's items; N such runs share one execution.",
)  # fmt: skip
@_EXECUTOR
@_ADDRESS
@json_option
@click.pass_context
def run(
    ctx: click.Context, execution_id: str | None, resume: bool, filters: dict[str, list[str]],
    overrides: tuple[str, ...], jobs: int | None, force: bool, commit: bool, dry_run: bool,
    no_cache: bool, shard: str | None, executor: str | None, address: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Evaluate the matrix: a new execution of the selected cells, several at once.

    Cells whose results in dvc.lock match params.yaml are skipped (like `dvc repro`)
    unless --force. With --resume, continue an interrupted execution: completed cells are
    skipped, failed and unfinished ones continue from their item checkpoints.
    """
    from evalledger.execution.plan import RunOptions
    from evalledger.execution.sharding import parse_shard

    if execution_id and not resume:
        raise click.UsageError("EXECUTION_ID is only used with --resume")
    _check_executor(executor, address)
    options = RunOptions(
        resume=resume, execution_id=execution_id, filters=filters, overrides=list(overrides),
        jobs=jobs, force=force, commit=commit, dry_run=dry_run, no_cache=no_cache,
        shard=None if shard is None else parse_shard(shard), executor=executor,
        address=address,
    )  # fmt: skip
    _execute(ctx, options, as_json)


def _check_executor(executor: str | None, address: str | None) -> None:
    if address is not None and executor != "ray":
        raise click.UsageError("--address names a Ray cluster: use it with --executor ray")


@click.command(
    short_help="Continue an interrupted execution; same as `run --resume`.",
    epilog=examples("evalledger resume", "evalledger resume 2026-11-22_2233 --dry-run"),
)
@click.argument("execution_id", required=False, shell_complete=complete_execution)
@_JOBS
@_COMMIT
@click.option("--dry-run", is_flag=True, help="Show which cells and items remain; run none.")
@_EXECUTOR
@_ADDRESS
@json_option
@click.pass_context
def resume(
    ctx: click.Context, execution_id: str | None, jobs: int | None, commit: bool, dry_run: bool,
    executor: str | None, address: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Continue an interrupted execution (default: the latest); same as `run --resume`."""
    from evalledger.execution.plan import RunOptions

    _check_executor(executor, address)
    options = RunOptions(resume=True, execution_id=execution_id, jobs=jobs, commit=commit,
                         dry_run=dry_run, executor=executor, address=address)  # fmt: skip
    _execute(ctx, options, as_json)
