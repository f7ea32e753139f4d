"""``evalledger cell``: evaluate one cell (the command of each dvc.yaml stage)."""

from __future__ import annotations

import json

import click

from evalledger.cli._options import current_project, examples, json_option


@click.command(
    short_help="Evaluate one cell (what `dvc repro` runs for each stage).",
    epilog=examples("evalledger cell model=solver benchmark=arith"),
)
@click.argument("axes", nargs=-1, required=True)
@json_option
@click.pass_context
def cell(ctx: click.Context, axes: tuple[str, ...], as_json: bool) -> None:
    """Evaluate one cell given as AXIS=VALUE pairs, e.g. `model=solver benchmark=arith`.

    This is what `dvc repro` runs for each stage. Items already in the cell's checkpoint
    (from an interrupted run) are not evaluated again.
    """
    from evalledger.execution.cell import execute_cell
    from evalledger.matrix import parse_cell_args

    project = current_project(ctx)
    spec = project.spec()
    target = parse_cell_args(list(axes), spec)
    result = execute_cell(project, spec, target)
    m = result.metrics
    if as_json:
        data = {"cell": target.key, "evaluated": result.evaluated, "n_items": result.n_items,
                "metrics": m}  # fmt: skip
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(
        f"{target.key}: accuracy {m['accuracy']:.3f} on {m['n']} items "
        f"({result.evaluated} evaluated, {result.n_items - result.evaluated} from checkpoint)"
    )
