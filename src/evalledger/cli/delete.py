"""``evalledger delete``."""

from __future__ import annotations

import json

import click

from evalledger.cli._complete import complete_execution
from evalledger.cli._options import examples, json_option, open_ledger


@click.command(
    short_help="Delete an execution's manifest and results from the workspace.",
    epilog=examples("evalledger delete 2026-11-22_2233", "evalledger delete b4b2ed5f -y --json"),
)
@click.argument("execution_id", shell_complete=complete_execution)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def delete(ctx: click.Context, execution_id: str, yes: bool, as_json: bool) -> None:
    """Delete an execution from the workspace: its manifest and the results it owns.

    Cells whose current metrics a later execution wrote are not touched. History keeps
    everything; commit the deletion to record it.
    """
    from evalledger.ledger.delete import apply_delete, plan_delete

    ledger = open_ledger(ctx)
    plan = plan_delete(ledger, execution_id)
    click.echo(f"{plan.execution_id}: will remove", err=as_json)  # stdout stays JSON
    for rel in plan.paths:
        click.echo(f"  {rel}", err=as_json)
    if not yes:
        click.confirm("Delete these files?", abort=True, err=as_json)
    apply_delete(ledger, plan)
    if as_json:
        data = {"execution_id": plan.execution_id, "deleted": plan.paths, "cells": plan.cells,
                "commit_hint": plan.commit_hint()}  # fmt: skip
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"deleted {plan.execution_id}; commit it with: {plan.commit_hint()}")
    if plan.cells and plan.kind == "matrix":
        click.echo("dvc.lock still records those cells; `evalledger run` evaluates them again")
