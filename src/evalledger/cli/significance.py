"""``evalledger significance``."""

from __future__ import annotations

import json

import click

from evalledger.cli._complete import complete_operand
from evalledger.cli._options import (
    alpha_option,
    current_project,
    examples,
    filter_options,
    json_option,
    metric_option,
    open_ledger,
    rev_option,
    stats_options,
)
from evalledger.cli._render import print_table


@click.command(
    short_help="Test whether differences between models are real.",
    epilog=examples(
        "evalledger significance solver noisy",
        "evalledger significance HEAD~1 HEAD -b arith",
        "evalledger significance solver@HEAD~1 solver --method permutation --json",
    ),
)
@click.argument("operands", nargs=-1, required=True, shell_complete=complete_operand)
@filter_options
@metric_option(
    "Metric to test: accuracy, mean_score, partial_accuracy, format_accuracy, or "
    "categories.<name>.accuracy (on that category's items).",
    default="accuracy",
)
@stats_options
@alpha_option("Significance level (after Holm).")
@rev_option("Revision to read models at (default: workspace).")
@click.option(
    "--items",
    "items",
    multiple=True,
    type=click.IntRange(min=2),
    metavar="N",
    help="Also show the minimum detectable effect with N items (repeatable).",
)
@click.option(
    "--unpaired",
    is_flag=True,
    help="Test all items of each side as independent samples (Fisher's exact test for "
    "0/1 scores, else Welch's t-test) instead of pairing the shared items.",
)
@click.option("--save", is_flag=True, help="Write the results as JSON to metrics/_significance/.")
@json_option
@click.pass_context
def significance(
    ctx: click.Context, operands: tuple[str, ...], filters: dict[str, list[str]], metric: str,
    method: str | None, confidence: float, n_resamples: int, seed: int, cluster: str | None,
    alpha: float, rev: str | None, items: tuple[int, ...], unpaired: bool, save: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Test whether differences are real, on paired per-item scores.

    OPERANDS are models (paired on each benchmark), cells (model/benchmark, e.g.
    `solver/arith noisy/arith`), execution IDs or revisions (the same cells paired
    across them, e.g. `HEAD~1 HEAD -b arith`); NAME@REV reads one at a revision, e.g.
    `solver@HEAD~1 solver`. Items are paired by id; items only one side scored are
    left out and the output says how many (--unpaired tests all of them). With three
    or more operands every pair is tested and p-values are Holm-Bonferroni adjusted.

    \b
    The default method (--method auto) is sound at every n:
      clustered items     cluster-robust t-test: CR1 SE, t on G-1 df (G clusters)
      0/1 scores          McNemar's exact test (k discordant pairs all one way:
                          p = 2^(1-k)), Newcombe's score interval
      other, n < 200      sign-flip permutation test, exact up to 16 nonzero
                          differences, else Monte Carlo; t interval
      other, n >= 200     percentile bootstrap (paired)
    --unpaired: Fisher's exact test for 0/1 scores, else Welch's t-test.
    """  # noqa: D301 - click's \b marks the method table as preformatted
    from evalledger.analysis.diff import format_p, format_value
    from evalledger.analysis.pairing import run_significance

    report = run_significance(
        open_ledger(ctx), list(operands), rev=rev, filters=filters,
        metric=metric, method=method or "auto", alpha=alpha, confidence=confidence,
        n_resamples=n_resamples, seed=seed, cluster=cluster, items=list(items),
        unpaired=unpaired,
    )  # fmt: skip
    saved = report.save(current_project(ctx).metrics_dir) if save else None
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        conf = f"{confidence:.0%} CI"
        rows, styles = [], []
        for c in report.comparisons:
            r = c.result
            sig = r.significant(alpha)
            rows.append([f"{c.a} vs {c.b}", c.unit, r.method, str(r.n), format_value(r.mean_a),
                         format_value(r.mean_b), format_value(r.diff, True),
                         f"[{format_value(r.ci_low, True)}, {format_value(r.ci_high, True)}]",
                         format_p(r.p_value), format_p(r.p_adjusted),
                         format_value(r.effect_size, True), format_value(c.mde),
                         "yes" if sig else "no"])  # fmt: skip
            styles.append("bold" if sig else "")
        cols = ["comparison", "benchmark", "method", "n", "A", "B", "B - A", conf, "p",
                "p (Holm)", "d" if unpaired else "d_z", "MDE", "significant"]  # fmt: skip
        kind = "unpaired" if unpaired else "paired"
        print_table(cols, rows, title=f"{metric}: {kind} tests, alpha {alpha:g}",
                    styles=styles)  # fmt: skip
        for c in report.comparisons:
            if (note := c.note()) is not None:
                more = "" if unpaired else " (--unpaired tests all items)"
                click.echo(f"{c.a} vs {c.b} on {c.unit}: {note}{more}")
        for c in report.comparisons:
            for n, mde in c.mde_at.items():
                click.echo(f"{c.a} vs {c.b} on {c.unit}: with {n} items the minimum "
                           f"detectable effect is {format_value(mde)} (power 0.8)")  # fmt: skip
        for note in report.skipped:
            click.echo(f"skipped {note}")
    if saved is not None:
        click.echo(f"saved {saved.relative_to(current_project(ctx).root)}", err=as_json)
