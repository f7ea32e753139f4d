"""``evalledger status``."""

from __future__ import annotations

import click

from evalledger.cli._complete import complete_execution
from evalledger.cli._options import current_project, examples
from evalledger.cli._render import print_status, status_json


@click.command(
    short_help="Show the per-cell status of an execution.",
    epilog=examples("evalledger status", "evalledger status b4b2ed5f --json"),
)
@click.argument("execution_id", required=False, shell_complete=complete_execution)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_context
def status(ctx: click.Context, execution_id: str | None, as_json: bool) -> None:
    """Show the per-cell status of an execution.

    EXECUTION_ID may be a full ID or any unique part of one (its time, its hex suffix).
    """
    project = current_project(ctx)  # first: outside a project, fail before pydantic loads
    from evalledger.execution.executions import load_execution

    manifest = load_execution(project, execution_id)
    if as_json:
        click.echo(status_json(manifest))
    else:
        print_status(manifest)
