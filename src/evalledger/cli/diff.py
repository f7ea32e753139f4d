"""``evalledger diff``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from evalledger.cli._complete import complete_revision
from evalledger.cli._options import (
    alpha_option,
    examples,
    filter_options,
    format_options,
    metric_option,
    open_ledger,
    stats_options,
)
from evalledger.cli._render import echo_formatted, plain_value, print_table
from evalledger.errors import RegressionError

if TYPE_CHECKING:
    from evalledger.analysis.diff import LedgerDiff


@click.command(
    short_help="Show how cell metrics changed between two revisions.",
    epilog=examples(
        "evalledger diff                      # HEAD against the workspace",
        "evalledger diff main HEAD --md       # a pull-request comment",
        "evalledger diff origin/main HEAD --fail-on-regression --threshold 0.01",
        "evalledger diff HEAD~1 --models solver -b arith -m accuracy",
    ),
)
@click.argument("a_rev", required=False, shell_complete=complete_revision)
@click.argument("b_rev", required=False, shell_complete=complete_revision)
@filter_options
@metric_option(
    "Metrics to compare (repeatable; dotted paths like latency_ms.p50). "
    "Default: accuracy, mean_score, partial/format accuracy, error rate, cost.",
    multiple=True,
)
@click.option("--all", "all_metrics", is_flag=True, help="Compare every numeric metric.")
@click.option(
    "--timings",
    is_flag=True,
    help="List timing changes (latency, wall time), which are otherwise one summary line.",
)
@format_options("table", "md", "json", "csv")
@stats_options
@alpha_option()
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 5 if a gated metric got worse by more than --threshold and the change is "
    "significant at --alpha, or B has a problem: a cell failed, stale or incomplete, its "
    "error rate up by more than --max-error-rise, its n changed, or its metrics damaged.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Smallest drop that counts as a regression (absolute).",
)
@click.option(
    "--max-error-rise",
    type=click.FloatRange(min=0, max=1),
    default=0.0,
    show_default=True,
    help="How much a cell's error rate (errored share of items) may rise under the gate.",
)
@click.pass_context
def diff(
    ctx: click.Context, a_rev: str | None, b_rev: str | None, filters: dict[str, list[str]],
    metrics: tuple[str, ...],
    all_metrics: bool, fmt: str, method: str | None, confidence: float, n_resamples: int,
    seed: int, cluster: str | None, alpha: float, fail_on_regression: bool, threshold: float,
    max_error_rise: float, timings: bool,
) -> None:  # fmt: skip
    """Show how cell metrics changed between two revisions (default: HEAD and the workspace).

    A and B are commits, branches, tags, HEAD~N, DVC experiment names or `workspace`.
    Where both revisions have per-item scores, each change gets a paired test on the
    shared items and a confidence interval. --method auto picks McNemar's exact test for
    0/1 scores, a sign-flip permutation test below 200 items, the bootstrap from 200, and
    a cluster-robust t-test for clustered items (see `evalledger significance --help`).
    Timing changes (latency, wall time) are one line unless --timings. --md prints a
    pull-request comment.

    Problems at B are listed whatever changed: failed, stale (params.yaml changed since
    the cell ran) or incomplete cells, error-rate rises, changed item counts and damaged
    files. The gate fails on them as on regressions. --models, --benchmarks (-b) and the
    other filters keep the matching cells on both sides.
    """
    from evalledger.analysis.diff import diff_revisions
    from evalledger.ledger.resolve import revision_of

    ledger = open_ledger(ctx)  # a run (ID, name, DVC experiment) stands for its revision
    a_rev, b_rev = (revision_of(ledger, r) if r else r for r in (a_rev, b_rev))
    result = diff_revisions(
        ledger, a_rev, b_rev, metrics=list(metrics) or None,
        all_metrics=all_metrics, method=method or "auto", alpha=alpha, confidence=confidence,
        n_resamples=n_resamples, seed=seed, cluster=cluster, max_error_rise=max_error_rise,
        filters=filters,
    )  # fmt: skip
    failures = result.gate(list(metrics) or None, threshold) if fail_on_regression else []
    if not echo_formatted(result, fmt):
        _print(result, timings)
    if failures:
        kinds = dict.fromkeys(f.reason for f in failures)
        counts = ", ".join(f"{sum(f.reason == k for f in failures)} {k}" for k in kinds)
        first = failures[0]
        hint = f"threshold {threshold:g}, alpha {alpha:g}"
        if set(kinds) - {"regression"}:
            hint += ("; re-run failed, stale or incomplete cells with `evalledger run`, or "
                     "allow some errors with --max-error-rise")  # fmt: skip
        raise RegressionError(
            f"the gate fails from {result.a} to {result.b} ({counts}), e.g. {first.cell} "
            f"{first.detail}",
            hint,
        )


def _print(result: LedgerDiff, timings: bool) -> None:
    from rich.markup import escape

    from evalledger.analysis.diff import format_p, format_value

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
                    [[p.key, escape(plain_value(p.old)), escape(plain_value(p.new))]
                     for p in result.params])  # fmt: skip
    for exp in result.experiments:
        name = f" ({exp.name})" if exp.name else ""
        click.echo(
            f"experiment {exp.id}{name}"
            + "".join(f"\n  checkpoint {c.path} sha256 {c.sha256}" for c in exp.checkpoints)
        )
    if timings and result.timings:
        print_table(["cell", "timing", "old", "new", "change"],
                    [[c.cell, c.metric, format_value(c.old), format_value(c.new),
                      format_value(c.change, True)] for c in result.timings],
                    title="Timing changes", right=3)  # fmt: skip
    if result.problems:
        print_table(["cell", "problem", "detail"],
                    [[p.cell, p.reason, p.detail] for p in result.problems],
                    title="Problems", styles=["red"] * len(result.problems))  # fmt: skip
    for note in result.notes:
        click.echo(f"note: {note}")
