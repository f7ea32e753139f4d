"""``evalledger export`` and ``evalledger import``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evalledger.atomic import atomic_write
from evalledger.cli._options import current_project, open_ledger
from evalledger.ledger.export import export_executions, import_executions


@click.command()
@click.argument("execution_ids", nargs=-1)
@click.option("--all", "export_all", is_flag=True, help="Export every execution in history.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file (default: standard output).",
)
@click.pass_context
def export(ctx: click.Context, execution_ids: tuple[str, ...], export_all: bool,
           output: str | None) -> None:  # fmt: skip
    """Export executions with their metrics and per-item scores as JSON.

    Give execution IDs (or unique parts of them), or --all. `evalledger import` reads
    the file back into any project.
    """
    if bool(execution_ids) == export_all:
        raise click.UsageError("give execution IDs or --all (not both)")
    data = export_executions(open_ledger(ctx), None if export_all else list(execution_ids))
    text = json.dumps(data, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write(Path(output), text)
        click.echo(f"exported {len(data['executions'])} execution(s) to {output}", err=True)


@click.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--force", is_flag=True, help="Overwrite executions and cell files that already exist."
)
@click.pass_context
def import_(ctx: click.Context, file: Path, force: bool) -> None:
    """Import executions from a file written by `evalledger export`.

    The whole file is checked before anything is written. Existing cell files are kept
    unless --force.
    """
    result = import_executions(current_project(ctx), file, force=force)
    click.echo(f"imported {', '.join(result.executions) or 'nothing'}: "
               f"{len(result.written)} files written")  # fmt: skip
    if result.kept:
        click.echo(f"kept {len(result.kept)} existing cell files (use --force to overwrite)")
    if result.written:
        click.echo("Next: commit them, e.g. `git add runs metrics && git commit -m 'Import'`")
