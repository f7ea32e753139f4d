"""``evalledger list``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from evalledger.cli._options import examples, open_ledger
from evalledger.cli._render import print_table

if TYPE_CHECKING:
    from evalledger.ledger.listing import ExecutionRow, ExperimentRow


@click.command(
    name="list",
    short_help="List executions across history and the workspace.",
    epilog=examples(
        "evalledger list -n 5 -v",
        "evalledger list --all-branches --json",
        "evalledger list --duplicates",
    ),
)
@click.option(
    "-n", "--limit", type=click.IntRange(min=1), default=None, help="Show the newest N executions."
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Also show the command, overrides, models and benchmarks."
)
@click.option("--duplicates", is_flag=True,
              help="List cells completed more than once with the same configuration, data "
                   "and code.")  # fmt: skip
@click.option("-a", "--all-branches", "all_refs", is_flag=True,
              help="Also list executions committed only on other branches, tags or "
                   "remote-tracking branches (after `git fetch`).")  # fmt: skip
@click.option("-e/-E", "--experiments/--no-experiments", default=True, show_default=True,
              help="Also list DVC experiments (refs/exps: `dvc exp run`, `evalledger sweep`) "
                   "with the params each changed.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_executions_cmd(ctx: click.Context, limit: int | None, verbose: bool, duplicates: bool,
                        all_refs: bool, experiments: bool, as_json: bool) -> None:  # fmt: skip
    """List executions across history and the workspace.

    DVC experiments (`dvc exp run`, `evalledger sweep`) follow in a section of their own,
    with the params each changed and the runs its commit added (`show ID` opens one);
    --no-experiments leaves them out.

    COMMIT is the commit that last changed the execution's manifest, `workspace` when
    its newest version is uncommitted, `(deleted)` when HEAD no longer has it, and
    `(on BRANCH)` for one that only another branch or tag holds (--all-branches). An
    experiment's name is a revision for `leaderboard --rev`, `diff` and `compare`.
    """
    from evalledger.ledger.listing import list_executions, list_experiments

    if duplicates:
        _print_duplicates(ctx, as_json)
        return
    ledger = open_ledger(ctx)
    rows = list_executions(ledger, limit, all_refs=all_refs)
    if as_json:
        data = [r.to_json() for r in rows]
        if experiments:
            data += [e.to_json() for e in list_experiments(ledger, limit)]
        click.echo(json.dumps(data, indent=2))
        return
    exps = list_experiments(ledger, limit) if experiments else []
    if not rows and not exps:
        click.echo("no executions yet; start one with `evalledger run`")
        return
    if rows:
        _print_executions(rows, verbose)
    if exps:
        if rows:
            click.echo()
        _print_experiments(exps)


def _print_executions(rows: list[ExecutionRow], verbose: bool) -> None:
    columns = ["execution", "created (UTC)", "status", "done", "failed", "commit"]
    if verbose:
        columns += ["models", "benchmarks", "command"]
    table = []
    for r in rows:
        m, counts = r.manifest, r.manifest.counts()
        done = f"{counts['completed']}/{len(m.cells)}"
        created = f"{m.created_at:%Y-%m-%d %H:%M:%S}"
        row = [m.execution_id, created, r.status, done, str(counts["failed"]), r.info.where]
        if verbose:
            axes = [rec.axes for rec in m.cells.values()]
            row += [", ".join(dict.fromkeys(a.get("model", "") for a in axes)),
                    ", ".join(dict.fromkeys(a.get("benchmark", "") for a in axes)),
                    " ".join(m.command)]  # fmt: skip
        table.append(row)
    print_table(columns, table)


def _print_experiments(exps: list[ExperimentRow]) -> None:
    from rich.markup import escape

    table = [
        [e.exp.name, e.exp.baseline[:7], f"{e.created_at:%Y-%m-%d %H:%M:%S}", str(e.cells),
         escape(e.changed_text()), "\n".join(e.executions) or "-"]
        for e in exps
    ]  # fmt: skip
    columns = ["experiment", "baseline", "created (UTC)", "cells", "changed params", "runs"]
    print_table(columns, table, title="DVC experiments")


def _print_duplicates(ctx: click.Context, as_json: bool) -> None:
    from evalledger.ledger.duplicates import find_duplicates

    groups = find_duplicates(open_ledger(ctx))
    if as_json:
        data = [{"cell": g.cell, "fingerprint": g.fingerprint, "config_hash": g.config_hash,
                 "executions": g.runs} for g in groups]  # fmt: skip
        click.echo(json.dumps(data, indent=2))
        return
    if not groups:
        click.echo("no duplicates: every completed cell ran at a distinct configuration, "
                   "data and code")  # fmt: skip
        return
    rows = [[g.cell, g.fingerprint, str(len(g.runs)), ", ".join(g.runs)] for g in groups]
    title = "Cells evaluated more than once with the same configuration, data and code"
    print_table(["cell", "fingerprint", "runs", "executions (oldest first)"], rows, title=title)
