"""``evalledger compare``."""

from __future__ import annotations

import json
from typing import Any

import click

from evalledger.cli._complete import complete_rev_or_execution
from evalledger.cli._options import (
    examples,
    filter_options,
    format_options,
    metric_option,
    open_ledger,
)
from evalledger.cli._render import echo_formatted, print_table

#: Units of the verdict that the cost title names (more are counted).
_NAMED = 4
#: Unchanged cells listed by name (more are counted).
_LISTED = 8


def _cfg(value: Any) -> str:
    return "-" if value is None else json.dumps(value) if not isinstance(value, str) else value


@click.command(
    short_help="Compare executions or revisions side by side.",
    epilog=examples(
        "evalledger compare HEAD~1 HEAD -b arith -m partial_accuracy -m accuracy",
        "evalledger compare main my-experiment --models solver --json",
        "evalledger compare condition=control condition=treatment",
    ),
)
@click.argument("refs", nargs=-1, required=True, shell_complete=complete_rev_or_execution)
@filter_options
@metric_option(
    "Metrics to show (repeatable; dotted paths like categories.two_step.accuracy); "
    "the first decides the winner. Default: accuracy, partial/format accuracy and "
    "mean_score, the winner on accuracy.",
    multiple=True,
)
@format_options("table", "json")
@click.pass_context
def compare(
    ctx: click.Context, refs: tuple[str, ...], filters: dict[str, list[str]],
    metrics: tuple[str, ...], fmt: str,
) -> None:  # fmt: skip
    """Compare executions or revisions side by side: config, performance, cost, winner.

    Each REF is an execution ID (or a unique part of one), a git revision, or an axis
    value AXIS=VALUE[@REV] (its cells, set side by side on the rest of their keys, e.g.
    condition=control condition=treatment). Only the configuration keys that differ are
    shown; the best value of each metric is starred.

    The winner, its margins and the cost totals are computed over what changed: the
    cells every side evaluated, leaving out cells only some sides have and cells whose
    results are the same execution's on every side. The output says what was left out.
    Lower-is-better metrics (loss, error_rate, cost...) win when smaller.
    """
    from evalledger.analysis.compare import compare_sides
    from evalledger.analysis.diff import format_value

    result = compare_sides(open_ledger(ctx), list(refs), list(metrics) or None, filters=filters)
    if echo_formatted(result, fmt):
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
    unchanged = set(result.left_out.get("unchanged", []))
    rows = []
    for unit, metric, values, best in result.performance:
        if unit in unchanged:
            continue
        cells = [format_value(v) + (" *" if i == best else "") for i, v in enumerate(values)]
        rows.append([unit, metric, *cells])
    if rows:
        print_table(["cell", "metric", *heads], rows, title="\nPerformance (* best)",
                    right=len(heads))  # fmt: skip
    if unchanged:
        names = result.left_out["unchanged"]
        more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
        click.echo(f"\nUnchanged on every side: {', '.join(names[:_LISTED])}{more}")
    if result.costs:
        over = result.compared
        named = ", ".join(over) if len(over) <= _NAMED else f"{len(over)} cells"
        rows = [[name, *[format_value(v) for v in vals]] for name, vals in result.costs.items()]
        print_table(["total", *heads], rows, title=f"\nCosts (over {named}, on every side)")
    click.echo("")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if not result.compared:  # nothing changed, or nothing shared: no verdict
        click.echo(f"{result.scope[:1].upper()}{result.scope[1:]}; no winner.")
        return
    if result.winner is None:
        click.echo(f"No winner: the sides tie on mean {result.primary} {result.scope}.")
        return
    click.echo(f"Winner: [{result.winner + 1}] {labels[result.winner]}, mean {result.primary} "
               f"{format_value(result.means[result.winner])} {result.scope}")  # fmt: skip
    margin, others = format_value(result.margin, True), format_value(result.vs_others, True)
    click.echo(f"Margin: {margin} over the runner-up, {others} over the average of the others")
