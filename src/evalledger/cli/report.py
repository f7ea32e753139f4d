"""``evalledger report``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evalledger.cli._complete import complete_revision
from evalledger.cli._options import current_project, examples, metric_option


@click.command(
    short_help="Write the ledger as one self-contained HTML page.",
    epilog=examples(
        "evalledger report",
        "evalledger report HEAD~1 -o old.html",
        "evalledger report main v1.0 v0.9",
        "evalledger report --base origin/main -o report.html",
        "evalledger report -m partial_accuracy --json",
    ),
)
@click.argument("revs", nargs=-1, metavar="[REV]...", shell_complete=complete_revision)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option(
    "--base",
    default=None,
    metavar="REV",
    shell_complete=complete_revision,
    help="Add a Diff view against REV: paired tests and the items that flipped.",
)
@metric_option("Metric of the leaderboard and heat-map (default: accuracy).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def report(ctx: click.Context, revs: tuple[str, ...], output: Path, base: str | None,
           metric: str | None, as_json: bool) -> None:  # fmt: skip
    """Write the ledger at the first REV (default: the workspace) as one HTML page.

    The page works from file:// with no network (a Content-Security-Policy forbids any
    fetch): Overview (leaderboard with intervals, model x benchmark heat-map with
    markers), History (every metric over the commits), Breakdown (categories, errors,
    latency, cost, agents), Items (searchable prompts, outputs and scores), Side by side
    (any two models at the REVs and --base, items one got right and the other wrong
    first) and, with --base, Diff (the paired tests of `diff`, and per cell the items
    that flipped, linked into Items).
    """
    from evalledger.report import write_report

    rev, compare = (revs[0], revs[1:]) if revs else (None, ())
    size = write_report(current_project(ctx), output, rev, metric, base, compare)
    if as_json:
        click.echo(json.dumps({"path": str(output), "bytes": size}))
        return
    click.echo(f"wrote {output} ({size / 1024:.0f} KiB); open it in a browser")
