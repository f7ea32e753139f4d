"""``evalledger leaderboard``."""

from __future__ import annotations

import click

from evalledger.cli._options import (
    confidence_option,
    examples,
    filter_options,
    format_options,
    metric_option,
    open_ledger,
    rev_option,
)
from evalledger.cli._render import echo_formatted, print_table

#: More benchmark columns than this do not fit a terminal table.
_PIVOT_LIMIT = 8


@click.command(
    short_help="Rank models or cells on a metric, with confidence intervals.",
    epilog=examples(
        "evalledger leaderboard -b arith --strict",
        "evalledger leaderboard --models solver,noisy -m partial_accuracy --md",
        "evalledger leaderboard -r main -r HEAD --by cell",
        "evalledger leaderboard --all-experiments -m val_acc",
    ),
)
@filter_options
@metric_option("Metric to rank by (default: accuracy; dotted paths allowed).")
@click.option("-k", "--top", type=click.IntRange(min=1), default=None, help="Show the top K.")
@click.option(
    "--by",
    type=click.Choice(["model", "cell"]),
    default="model",
    show_default=True,
    help="Rank models (mean over benchmarks) or single cells.",
)
@rev_option("Revision(s) to rank (repeatable; default: the workspace).", multiple=True)
@click.option(
    "--all-experiments",
    is_flag=True,
    help="Rank every DVC experiment (each experiment's commit as a revision), with any --rev.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Leave out cells with errored items, failed, stale or incomplete ones, and models "
    "that then miss a benchmark.",
)
@confidence_option
@format_options("table", "md", "csv", "json", "html")
@click.pass_context
def leaderboard(
    ctx: click.Context, filters: dict[str, list[str]], metric: str | None, top: int | None,
    by: str, revs: tuple[str, ...], all_experiments: bool, strict: bool, confidence: float,
    fmt: str,
) -> None:  # fmt: skip
    """Rank models (or cells) on a metric with confidence intervals.

    By model, a model's value is its mean over the benchmarks, shown beside the value on
    each benchmark. Intervals come from per-item scores (clustered when items share a
    cluster); a model's combines its cells' (never collapsing at 0 or 1). With several
    --rev, each model appears once per revision. A --rev may also be a run ID, a tracked
    run's name or a DVC experiment name; --all-experiments adds every DVC experiment.

    The errored column is the share of items whose model call failed (accuracy is over
    the others); flags mark failed cells (a later attempt failed), stale ones (params.yaml
    changed since they ran, as `dvc status` says) and incomplete ones (an attempt
    interrupted, or a model missing benchmarks).
    """
    from evalledger.ledger.cellread import paused_gc

    with paused_gc():  # what is read lives until the command ends, and holds no cycle
        _leaderboard(ctx, filters, metric, top, by, revs, all_experiments, strict, confidence,
                     fmt)  # fmt: skip


def _leaderboard(
    ctx: click.Context, filters: dict[str, list[str]], metric: str | None, top: int | None,
    by: str, revs: tuple[str, ...], all_experiments: bool, strict: bool, confidence: float,
    fmt: str,
) -> None:  # fmt: skip
    from evalledger.analysis.leaderboard import build_leaderboard
    from evalledger.ledger.resolve import experiment_revisions, revision_of

    ledger = open_ledger(ctx)
    chosen = [revision_of(ledger, r) for r in revs]
    if all_experiments:
        chosen += [r for r in experiment_revisions(ledger) if r not in chosen]
    board = build_leaderboard(
        ledger, chosen or None, metric=metric, filters=filters, by=by, top=top,
        confidence=confidence, strict=strict,
    )  # fmt: skip
    if not echo_formatted(board, fmt):
        columns = board.columns(_PIVOT_LIMIT)
        print_table(columns, board.rows(_PIVOT_LIMIT), title=board.title(), right=len(columns) - 2)
        if len(board.pivot()) > len(board.pivot(_PIVOT_LIMIT)):
            click.echo(
                f"({len(board.benchmarks)} benchmarks: per-benchmark columns left out; "
                "see --format csv or md, or pick some with --benchmark)"
            )
    for note in board.notes:  # on stderr: csv and json on stdout stay clean
        click.echo(f"note: {note}", err=True)
