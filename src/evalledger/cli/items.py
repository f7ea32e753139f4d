"""``evalledger items``."""

from __future__ import annotations

import json

import click

from evalledger.cli._options import current_project, examples
from evalledger.cli._render import print_table
from evalledger.ledger.items import item_answers


@click.command(
    short_help="Show one cell's answers item by item, repeated samples grouped.",
    epilog=examples(
        "evalledger items noisy/arith",
        "evalledger items noisy/arith --disagree -n 10",
        "evalledger items noisy/arith --json",
    ),
)
@click.argument("cell")
@click.option("--disagree", is_flag=True, help="Only items whose answers differ.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=None,
              help="Show the first N items.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def items(ctx: click.Context, cell: str, disagree: bool, limit: int | None,
          as_json: bool) -> None:  # fmt: skip
    """Show the answers of CELL (model/benchmark/...) item by item.

    With `repeats: K`, an item's K answers are grouped: how many were right and each
    distinct answer with its count, most common first.
    """
    found = item_answers(current_project(ctx), cell)
    if disagree:
        found = [a for a in found if a.distinct > 1]
    found = found[:limit]
    if as_json:
        click.echo(json.dumps([a.to_json() for a in found], indent=2))
        return
    rows = [[a.id, str(a.target), f"{a.correct}/{a.samples}", str(a.distinct),
             ", ".join(f"{ans} x{n}" for ans, n in a.answers) or "-"]
            for a in found]  # fmt: skip
    print_table(["item", "target", "right", "distinct", "answers"], rows)
