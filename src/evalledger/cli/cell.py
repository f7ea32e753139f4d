"""``evalledger cell``: evaluate one cell (the command of each dvc.yaml stage)."""

from __future__ import annotations

import click

from evalledger.cli._options import current_project
from evalledger.execution.cell import execute_cell
from evalledger.matrix import parse_cell_args


@click.command()
@click.argument("axes", nargs=-1, required=True)
@click.pass_context
def cell(ctx: click.Context, axes: tuple[str, ...]) -> None:
    """Evaluate one cell given as AXIS=VALUE pairs, e.g. `model=solver benchmark=arith`.

    This is what `dvc repro` runs for each stage. Items already in the cell's checkpoint
    (from an interrupted run) are not evaluated again.
    """
    project = current_project(ctx)
    spec = project.spec()
    target = parse_cell_args(list(axes), spec)
    result = execute_cell(project, spec, target)
    m = result.metrics
    click.echo(
        f"{target.key}: accuracy {m['accuracy']:.3f} on {m['n']} items "
        f"({result.evaluated} evaluated, {result.n_items - result.evaluated} from checkpoint)"
    )
