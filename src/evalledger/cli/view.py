"""``evalledger view``."""

from __future__ import annotations

import functools
import threading

import click

from evalledger.cli._options import current_project, examples, metric_option


@click.command(
    short_help="Serve the report on 127.0.0.1, updated as the ledger changes.",
    epilog=examples("evalledger view", "evalledger view --port 8123 -m partial_accuracy"),
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: a free one).")  # fmt: skip
@metric_option("Metric of the leaderboard and heat-map (default: accuracy).")
@click.pass_context
def view(ctx: click.Context, port: int, metric: str | None) -> None:
    """Serve the report of the workspace on 127.0.0.1 and keep it current.

    The page is rebuilt when the ledger changes (a cell finishes, a run is committed),
    during a run as well, and reloads itself. Ctrl-C stops the server.
    """
    from evalledger.report import build_report
    from evalledger.report.serve import ReportServer

    project = current_project(ctx)
    build = functools.partial(build_report, project, None, metric, live=True)
    server = ReportServer(project, build, port=port)
    server.start()
    click.echo(f"serving {server.url} (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.stop()
