"""``evalledger reproduce``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from evalledger.cli._complete import complete_revision
from evalledger.cli._options import (
    alpha_option,
    confidence_option,
    current_project,
    examples,
    filter_options,
    format_options,
)
from evalledger.cli._render import echo_formatted, print_table
from evalledger.errors import EXIT_CELLS_FAILED

if TYPE_CHECKING:
    from evalledger.share.verdicts import ReproduceReport

__all__ = ["reproduce"]

_STYLE = {"match": "green", "consistent": "green", "differs": "red", "failed": "red",
          "missing": "yellow"}  # fmt: skip


@click.command(
    short_help="Re-run a revision's cells in a worktree and check them.",
    epilog=examples(
        "evalledger reproduce                   # HEAD's cells",
        "evalledger reproduce HEAD~1 --models solver -b arith --json",
        "evalledger reproduce HEAD --stages train  # only the train stage of dvc.yaml",
    ),
)
@click.argument("rev", required=False, default="HEAD", shell_complete=complete_revision)
@click.option(
    "--cells",
    "cells",
    multiple=True,
    metavar="MODEL/BENCH",
    help="Only these cells (repeatable; default: every cell with metrics at REV).",
)
@filter_options
@click.option(
    "--stages",
    "stages",
    multiple=True,
    metavar="STAGE",
    help="Only these dvc.yaml stages of yours (repeatable; default: every stage).",
)
@click.option(
    "--rtol",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help="A stage's differing metrics within this relative tolerance are `consistent`.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Cells evaluated at once (default: run.jobs in REV's params.yaml).",
)
@confidence_option
@alpha_option("A differing cell is within noise when its paired test has p >= alpha.")
@format_options("table", "json")
@click.option("-q", "--quiet", is_flag=True, help="Do not show the runs' progress.")
@click.pass_context
def reproduce(
    ctx: click.Context, rev: str, cells: tuple[str, ...], filters: dict[str, list[str]],
    stages: tuple[str, ...], rtol: float, jobs: int | None, confidence: float,
    alpha: float, fmt: str, quiet: bool,
) -> None:  # fmt: skip
    """Re-run REV's cells and stages (default: HEAD) in a temporary worktree and check them.

    The cells, and every other DVC stage of dvc.yaml (training), run with REV's
    params.yaml and code in a throwaway checkout; your working tree is not touched. A
    stage is judged by the metrics and plots files it declares: `match` (equal),
    `consistent` (within --rtol) or `differs`, with the numbers. Each cell is `match`
    (metrics equal), `consistent` (different, but a paired test on the items finds no
    significant change: sampling noise), `differs`, `failed` (it did not run) or
    `missing` (no recorded metrics). Latency and timing metrics are not compared.
    Exits 1 unless every cell and stage matches or is consistent.
    """
    from evalledger.share.reproduce import reproduce as reproduce_rev

    def log(line: str) -> None:
        click.echo(f"  | {line}", err=True)

    report = reproduce_rev(
        current_project(ctx), rev, cells=list(cells),
        filters=filters, stages=list(stages), rtol=rtol,
        alpha=alpha, confidence=confidence, jobs=jobs, log=None if quiet else log,
    )  # fmt: skip
    if not echo_formatted(report, fmt):
        _print(report)
    if not report.ok:
        sys.exit(EXIT_CELLS_FAILED)


def _print(report: ReproduceReport) -> None:
    from evalledger.analysis.diff import format_p, format_value

    click.echo(report.summary())
    rows, styles = [], []
    for c in report.checks:
        t = c.test
        metric = f" ({c.metric})" if c.metric and c.metric != "accuracy" else ""
        note = c.note or ""
        if (
            c.verdict == "differs"
            and c.differing
            and c.kind == "cell"
            and not note.startswith("n ")
        ):
            note = f"{', '.join(c.differing[:4])}{'...' if len(c.differing) > 4 else ''}; {note}"
        if c.kind == "stage":
            metric = f" (stage: {c.metric})" if c.metric else " (stage)"
        rows.append([c.cell + metric, c.verdict, format_value(c.recorded),
                     format_value(c.reproduced), format_value(c.change, True),
                     format_p(t.p_value if t else None), note.strip("; ")])  # fmt: skip
        styles.append(_STYLE.get(c.verdict, ""))
    print_table(["cell", "verdict", "recorded", "reproduced", "change", "p", "note"], rows,
                styles=styles, right=4)  # fmt: skip
    if report.ignored:
        click.echo(f"not compared (vary run to run): {', '.join(report.ignored)}")
    for note in report.notes:
        click.echo(note)
