"""``evalledger revert``."""

from __future__ import annotations

import json

import click

from evalledger.cli._complete import complete_execution
from evalledger.cli._options import current_project, examples, json_option


@click.command(
    short_help="Put an execution's configuration back into params.yaml.",
    epilog=examples("evalledger revert 2026-11-22_2233 --dry-run", "evalledger revert b4b2ed5f"),
)
@click.argument("execution_id", shell_complete=complete_execution)
@click.option("--dry-run", is_flag=True, help="Show the changes without writing params.yaml.")
@json_option
@click.pass_context
def revert(ctx: click.Context, execution_id: str, dry_run: bool, as_json: bool) -> None:
    """Put an execution's configuration back into params.yaml.

    EXECUTION_ID may be a full ID or any unique part of one. Comments and formatting of
    the rest of params.yaml are kept; redacted secrets keep their current values. Then
    `evalledger run` evaluates the cells whose configuration changed.
    """
    from evalledger.execution.executions import load_execution
    from evalledger.execution.revert import MISSING, revert_params

    project = current_project(ctx)
    result = revert_params(project, load_execution(project, execution_id), dry_run=dry_run)
    exec_id = result.execution_id
    if as_json:
        changes = [{"key": c.key, "kind": c.kind, "old": None if c.old is MISSING else c.old,
                    "new": None if c.new is MISSING else c.new}
                   for c in result.changes]  # fmt: skip
        data = {"execution_id": exec_id, "dry_run": dry_run, "written": result.written,
                "changes": changes, "kept_redacted": result.kept_redacted,
                "stale_cells": result.stale_cells,
                "reusable": result.reusable}  # fmt: skip
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if not result.changes:
        click.echo(f"params.yaml already matches {exec_id}; nothing to change")
        return
    verb = "would change" if dry_run else "changed"
    click.echo(f"params.yaml: {len(result.changes)} key(s) {verb} to match {exec_id}:")
    for change in result.changes:
        click.echo(f"  {change.describe()}")
    if result.kept_redacted:
        click.echo(f"kept the current value of redacted {', '.join(result.kept_redacted)}")
    cells = [k for k in result.stale_cells if k not in result.reusable]
    shown = ", ".join(cells[:6]) + (", ..." if len(cells) > 6 else "")
    todo = f"evaluates {len(cells)} cell(s): {shown}" if cells else "has nothing to evaluate"
    if result.reusable:
        runs = sorted(set(result.reusable.values()))
        where = runs[0] if len(runs) == 1 else f"{len(runs)} earlier executions"
        todo = (f"restores {len(result.reusable)} cell(s) evaluated identically in {where}, "
                + (todo.removeprefix("has nothing to evaluate") or "evaluates none"))  # fmt: skip
    if dry_run:
        click.echo(f"dry run: params.yaml not written; after the revert `evalledger run` {todo}")
    else:
        click.echo(f"next: `evalledger run` {todo}")
