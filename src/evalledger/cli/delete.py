"""``evalledger delete``."""

from __future__ import annotations

import click

from evalledger.cli._options import open_ledger
from evalledger.ledger.delete import apply_delete, plan_delete


@click.command()
@click.argument("execution_id")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, execution_id: str, yes: bool) -> None:
    """Delete an execution from the workspace: its manifest and the results it owns.

    Cells whose current metrics a later execution wrote are not touched. History keeps
    everything; commit the deletion to record it.
    """
    ledger = open_ledger(ctx)
    plan = plan_delete(ledger, execution_id)
    click.echo(f"{plan.execution_id}: will remove")
    for rel in plan.paths:
        click.echo(f"  {rel}")
    if not yes:
        click.confirm("Delete these files?", abort=True)
    apply_delete(ledger, plan)
    click.echo(f"deleted {plan.execution_id}; commit it with: {plan.commit_hint()}")
    if plan.cells and plan.kind == "matrix":
        click.echo("dvc.lock still records those cells; `evalledger run` evaluates them again")
