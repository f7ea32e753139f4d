"""``evalledger compare``."""

from __future__ import annotations

import json
from typing import Any

import click

from evalledger.analysis.compare import compare_sides
from evalledger.analysis.diff import format_value
from evalledger.cli._options import open_ledger
from evalledger.cli._render import print_table


def _cfg(value: Any) -> str:
    return "-" if value is None else json.dumps(value) if not isinstance(value, str) else value


@click.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "-m",
    "--metric",
    "primary",
    default="accuracy",
    show_default=True,
    help="Primary metric that decides the winner.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def compare(ctx: click.Context, refs: tuple[str, ...], primary: str, as_json: bool) -> None:
    """Compare executions or revisions side by side: config, performance, cost, winner.

    Each REF is an execution ID (or a unique part of one) or a git revision. Only the
    configuration keys that differ are shown; the best value of each metric is starred.
    """
    result = compare_sides(open_ledger(ctx), list(refs), primary)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    labels = [s.label for s in result.sides]
    for i, s in enumerate(result.sides, 1):
        click.echo(f"[{i}] {s.label} ({s.kind})")
    heads = [f"[{i}]" for i in range(1, len(labels) + 1)]
    if result.config_diff:
        rows = [[k, *[_cfg(v) for v in vals]] for k, vals in result.config_diff.items()]
        print_table(["parameter", *heads], rows, title="\nConfiguration differences")
    else:
        click.echo("\nConfiguration: identical")
    rows = []
    for unit, metric, values, best in result.performance:
        cells = [format_value(v) + (" *" if i == best else "") for i, v in enumerate(values)]
        rows.append([unit, metric, *cells])
    print_table(["cell", "metric", *heads], rows, title="\nPerformance (* best)",
                right=len(heads))  # fmt: skip
    if result.costs:
        rows = [[name, *[format_value(v) for v in vals]] for name, vals in result.costs.items()]
        print_table(["total", *heads], rows, title="\nCosts")
    click.echo("")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.winner is None:
        click.echo(f"No winner: the sides tie on mean {result.primary}.")
        return
    scope = (f"over the {result.common_units} cells all sides have" if result.common_units
             else "over each side's own cells (no cell is shared)")  # fmt: skip
    click.echo(f"Winner: [{result.winner + 1}] {labels[result.winner]}, mean {result.primary} "
               f"{format_value(result.means[result.winner])} {scope}")  # fmt: skip
    margin, others = format_value(result.margin, True), format_value(result.vs_others, True)
    click.echo(f"Margin: {margin} over the runner-up, {others} over the average of the others")
