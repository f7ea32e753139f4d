"""``evalledger export`` and ``evalledger import``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evalledger.cli._complete import complete_execution
from evalledger.cli._options import current_project, examples, json_option, open_ledger


@click.command(
    short_help="Export executions, metrics and per-item scores as JSON.",
    epilog=examples("evalledger export --all -o ledger.json", "evalledger export b4b2ed5f"),
)
@click.argument("execution_ids", nargs=-1, shell_complete=complete_execution)
@click.option("--all", "export_all", is_flag=True, help="Export every execution in history.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file (default: standard output).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only format; the default).")
@click.pass_context
def export(ctx: click.Context, execution_ids: tuple[str, ...], export_all: bool,
           output: str | None, as_json: bool) -> None:  # fmt: skip
    """Export executions, metrics and per-item scores as JSON.

    Give execution IDs (or unique parts of them), or --all. `evalledger import` reads
    the file back into any project.
    """
    from evalledger.atomic import atomic_write
    from evalledger.ledger.export import export_executions

    if bool(execution_ids) == export_all:
        raise click.UsageError("give execution IDs or --all (not both)")
    data = export_executions(open_ledger(ctx), None if export_all else list(execution_ids))
    text = json.dumps(data, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write(Path(output), text)
        click.echo(f"exported {len(data['executions'])} execution(s) to {output}", err=True)


@click.command(
    name="import",
    short_help="Import executions that `evalledger export` wrote.",
    epilog=examples("evalledger import ledger.json", "evalledger import ledger.json --force"),
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-f", "--force", is_flag=True, help="Overwrite executions and cell files that already exist."
)
@json_option
@click.pass_context
def import_(ctx: click.Context, file: Path, force: bool, as_json: bool) -> None:
    """Import executions from a file written by `evalledger export`.

    The whole file is checked before anything is written. Existing cell files are kept
    unless --force.
    """
    from evalledger.ledger.export import import_executions

    result = import_executions(current_project(ctx), file, force=force)
    if as_json:
        data = {"executions": result.executions, "written": result.written, "kept": result.kept}
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"imported {', '.join(result.executions) or 'nothing'}: "
               f"{len(result.written)} files written")  # fmt: skip
    if result.kept:
        click.echo(f"kept {len(result.kept)} existing cell files (use --force to overwrite)")
    if result.written:
        click.echo("Next: commit them, e.g. `git add runs metrics && git commit -m 'Import'`")
