"""``evalledger diff``."""

from __future__ import annotations

import click

from evalledger.analysis.diff import LedgerDiff, diff_revisions, format_p, format_value
from evalledger.cli._options import alpha_option, format_options, open_ledger, stats_options
from evalledger.cli._render import echo_formatted, print_table
from evalledger.errors import RegressionError


@click.command()
@click.argument("a_rev", required=False)
@click.argument("b_rev", required=False)
@click.option(
    "-m",
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="Metrics to compare (repeatable; dotted paths like latency_ms.p50). "
    "Default: accuracy, mean_score, partial/format accuracy, error rate, cost.",
)
@click.option("--all", "all_metrics", is_flag=True, help="Compare every numeric metric.")
@format_options("table", "md", "json", "csv")
@stats_options
@alpha_option()
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 5 if a gated metric got worse by more than --threshold and the "
    "change is significant at --alpha (for CI gates).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Smallest drop that counts as a regression (absolute).",
)
@click.pass_context
def diff(
    ctx: click.Context, a_rev: str | None, b_rev: str | None, metrics: tuple[str, ...],
    all_metrics: bool, fmt: str, method: str | None, confidence: float, n_resamples: int,
    seed: int, cluster: str | None, alpha: float, fail_on_regression: bool, threshold: float,
) -> None:  # fmt: skip
    """Show how cell metrics changed between two revisions (default: HEAD and the workspace).

    A and B are commits, branches, tags, HEAD~N, DVC experiment names or `workspace`.
    Where both revisions have per-item scores, each change gets a paired test on the
    shared items (--method auto: McNemar's exact test for 0/1 scores, else a paired
    t-test) and a confidence interval. --md prints a pull-request comment.
    """
    result = diff_revisions(
        open_ledger(ctx), a_rev, b_rev, metrics=list(metrics) or None,
        all_metrics=all_metrics, method=method or "auto", alpha=alpha, confidence=confidence,
        n_resamples=n_resamples, seed=seed, cluster=cluster,
    )  # fmt: skip
    regressions = result.regressions(list(metrics) or None, threshold) if fail_on_regression else []
    if not echo_formatted(result, fmt):
        _print(result)
    if regressions:
        worst = min(regressions, key=lambda c: c.change or 0.0)
        raise RegressionError(
            f"{len(regressions)} regression(s) from {result.a} to {result.b}, e.g. "
            f"{worst.cell} {worst.metric} {format_value(worst.old)} -> "
            f"{format_value(worst.new)}",
            f"threshold {threshold:g}, alpha {alpha:g}",
        )


def _print(result: LedgerDiff) -> None:
    click.echo(f"{result.a} -> {result.b}: {result.summary()}")
    if result.changes:
        conf = f"{result.confidence:.0%} CI"
        rows, styles = [], []
        for c in result.ordered():
            t = c.test
            ci = f"[{format_value(t.ci_low, True)}, {format_value(t.ci_high, True)}]" if t else "-"
            rows.append([c.cell, c.metric, format_value(c.old), format_value(c.new),
                         format_value(c.change, True), ci, format_p(t.p_value if t else None),
                         c.verdict if c.verdict != "changed" else ""])  # fmt: skip
            styles.append({"improvement": "green", "regression": "red"}.get(c.verdict, ""))
        print_table(["cell", "metric", "old", "new", "change", conf, "p", ""], rows,
                    styles=styles, right=5)  # fmt: skip
    for key in result.added:
        click.echo(f"added   {key}")
    for key in result.removed:
        click.echo(f"removed {key}")
    if result.params:
        print_table(["param", "old", "new"],
                    [[p.key, str(p.old), str(p.new)] for p in result.params])  # fmt: skip
    for note in result.notes:
        click.echo(f"note: {note}")
