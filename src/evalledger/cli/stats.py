"""``evalledger stats``."""

from __future__ import annotations

import json

import click

from evalledger.cli._options import examples, open_ledger


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


@click.command(
    short_help="Show ledger statistics: executions, cells, items, sizes.",
    epilog=examples("evalledger stats", "evalledger stats --json"),
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Show ledger statistics: executions, cells, items, sizes on disk, ledger commits."""
    from evalledger.ledger.listing import ledger_stats

    data = ledger_stats(open_ledger(ctx))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    by = ", ".join(f"{v} {k}" for k, v in data["executions_by_status"].items()) or "none"
    click.echo(f"executions      {data['executions']} ({by})")
    cells = ", ".join(f"{v} {k}" for k, v in data["cell_runs_by_status"].items()) or "none"
    click.echo(f"cell runs       {data['cell_runs']} ({cells})")
    click.echo(f"items scored    {data['items_scored']:,} ({data['items_errored']:,} errored)")
    click.echo(f"workspace       {data['cells_in_workspace']} cells: {data['models']} models x "
               f"{data['benchmarks']} benchmarks")  # fmt: skip
    click.echo(f"ledger commits  {data['ledger_commits']}")
    for name, s in data["sizes"].items():
        click.echo(f"{name + '/':<20}{s['files']:,} files, {_size(s['bytes'])}")
