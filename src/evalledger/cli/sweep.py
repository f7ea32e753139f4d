"""``evalledger sweep``: queue a grid or list of ``-S`` overrides as DVC experiments."""

from __future__ import annotations

import json
from typing import Any

import click

from evalledger.cli._options import (
    current_project,
    examples,
    json_option,
    metric_option,
    open_ledger,
)
from evalledger.cli._render import print_table
from evalledger.errors import EvalLedgerError


@click.command(
    short_help="Queue (and run) a sweep of overrides as DVC experiments.",
    epilog=examples(
        "evalledger sweep -S models.noisy.error_rate=0.1,0.3 --dry-run",
        "evalledger sweep -S 'models.noisy.seed=range(1,4)' --name seeds --run -j 2",
    ),
)
@click.option("-S", "--set-param", "overrides", multiple=True, required=True,
              metavar="KEY=V1,V2,...",
              help="A params.yaml key and the values to sweep (repeatable; DVC's -S syntax: "
                   "range(1,4), quoted commas, +key to add one).")  # fmt: skip
@click.option("--grid/--list", "grid", default=True,
              help="Every combination of the -S values (default), or their i-th values "
                   "together (the lists must have one length).")  # fmt: skip
@click.option("--name", "prefix", default="sweep", show_default=True,
              help="Name experiments PREFIX-1, PREFIX-2, ... (after any in use).")  # fmt: skip
@click.option("--run", is_flag=True,
              help="Start DVC's queue workers (they also run anything queued before) and "
                   "wait for the sweep.")  # fmt: skip
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Queue workers (experiments at once) with --run.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --run, stop waiting after this many seconds.")  # fmt: skip
@metric_option("Metric of the summary leaderboard.")
@click.option("--dry-run", is_flag=True, help="Print the combinations; queue nothing.")
@json_option
@click.pass_context
def sweep(
    ctx: click.Context, overrides: tuple[str, ...], grid: bool, prefix: str, run: bool,
    jobs: int, timeout: float | None, metric: str | None, dry_run: bool, as_json: bool,
) -> None:  # fmt: skip
    """Queue a sweep of params.yaml overrides as DVC experiments, and optionally run it.

    Each -S KEY=V1,V2,... gives values to sweep. Every combination is checked against
    params.yaml before anything is queued. Each is queued as `dvc exp run --queue -S ...
    -n PREFIX-I`; with --run, `dvc queue start -j N` runs them and a leaderboard of the
    finished experiments is printed. Experiment names are revisions: see `evalledger
    list`, `leaderboard --rev NAME` and `diff NAME1 NAME2`.
    """
    from evalledger.share.sweep import experiment_names, override_args, plan_sweep, queue_sweep

    project = current_project(ctx)
    combos = plan_sweep(project, list(overrides), "grid" if grid else "list")
    if dry_run:
        names = experiment_names(project, prefix, len(combos))
        rows = [[n, " ".join(override_args(c))] for n, c in zip(names, combos, strict=True)]
        if as_json:
            click.echo(json.dumps(_sweep_json(rows, queued=False), indent=2))
            return
        print_table(["experiment", "overrides"], rows,
                    title=f"{len(combos)} experiment(s) would be queued")  # fmt: skip
        return
    points = queue_sweep(project, combos, prefix)
    names = [p.name for p in points]
    rows = [[p.name, " ".join(override_args(p.params))] for p in points]
    if as_json:  # JSON has no summary leaderboard: `evalledger leaderboard --json` makes one
        data = _sweep_json(rows, queued=True)
        if run:
            data["results"] = _run_queue(ctx, names, jobs, timeout)
            data["errors"] = _failures(ctx, data["results"])
        click.echo(json.dumps(data, indent=2))
        _raise_if_failed(names, data.get("results", {}))
        return
    print_table(["experiment", "overrides"], rows, title=f"Queued {len(points)} experiment(s)")
    revs = " ".join(f"--rev {n}" for n in names)
    if not run:
        click.echo(f"Run them with `dvc queue start -j {jobs}`, then compare with "
                   f"`evalledger leaderboard {revs}`.")  # fmt: skip
        return
    _run_and_summarize(ctx, names, jobs, timeout, metric)


def _sweep_json(rows: list[list[str]], queued: bool) -> dict[str, Any]:
    return {"queued": queued, "experiments": [{"name": n, "overrides": o} for n, o in rows]}


def _run_queue(
    ctx: click.Context, names: list[str], jobs: int, timeout: float | None
) -> dict[str, str]:
    from evalledger.share.sweep import run_queue

    def report(name: str, status: str) -> None:
        click.echo(f"{name}: {status.lower()}", err=True)

    return dict(run_queue(current_project(ctx), names, jobs=jobs, timeout=timeout,
                          on_update=report))  # fmt: skip


def _failures(ctx: click.Context, results: dict[str, str]) -> dict[str, str]:
    """Name -> why, for each failed experiment (from its queue log)."""
    from evalledger.share.sweep import failure_reasons

    failed = [n for n, s in results.items() if s != "Success"]
    return failure_reasons(current_project(ctx), failed) if failed else {}


def _raise_if_failed(names: list[str], results: dict[str, str]) -> None:
    from evalledger.share.sweep import SweepFailedError

    failed = [n for n, s in results.items() if s != "Success"]
    if failed:
        raise SweepFailedError(
            f"{len(failed)} of {len(names)} experiment(s) failed: {', '.join(failed)}",
            f"see `dvc queue logs {failed[0]}`",
        )


def _run_and_summarize(
    ctx: click.Context, names: list[str], jobs: int, timeout: float | None, metric: str | None
) -> None:
    from evalledger.analysis.leaderboard import build_leaderboard

    results = _run_queue(ctx, names, jobs, timeout)
    for name, reason in _failures(ctx, results).items():
        click.echo(f"{name} failed: {reason}", err=True)
    done = [n for n, s in results.items() if s == "Success"]
    if done:
        try:
            board = build_leaderboard(open_ledger(ctx), done, metric=metric)
        except EvalLedgerError as exc:
            click.echo(f"No leaderboard: {exc.one_line()}", err=True)
        else:
            click.echo()
            print_table(board.columns(), board.rows(), title=board.title(),
                        right=len(board.columns()) - 2)  # fmt: skip
    _raise_if_failed(names, results)
