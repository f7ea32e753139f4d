"""``evalledger show``."""

from __future__ import annotations

import json

import click

from evalledger.cli._complete import complete_execution
from evalledger.cli._options import examples, open_ledger
from evalledger.cli._render import print_experiment, print_provenance, print_table

_COLUMNS = ("accuracy", "mean_score", "partial_accuracy", "format_accuracy", "errors", "cost",
            "latency_ms.p50")  # fmt: skip
#: Per agent, for cells of multi-agent systems (their metrics' ``agents`` block).
_AGENT_COLUMNS = ("success_rate", "n", "mean_latency_ms", "cost")
#: What a tracked run's liveness means, after its status in `show`.
_LIVENESS = {"crashed": "crashed (in_progress, but its process is gone)",
             "stale": "stale (in_progress; no recent heartbeat from its host)"}  # fmt: skip


@click.command(
    short_help="Show an execution: provenance, configuration, metrics.",
    epilog=examples(
        "evalledger show b4b2ed5f",
        "evalledger show 2026-11-22_2233 --packages",
        "evalledger show b4b2ed5f --md > aggregate_report.md",
    ),
)
@click.argument("execution_id", shell_complete=complete_execution)
@click.option("--packages", is_flag=True, help="List every installed package version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--md",
    "as_md",
    is_flag=True,
    help="Print the aggregate report in Markdown: trials, totals, conditions.",
)
@click.pass_context
def show(ctx: click.Context, execution_id: str, packages: bool, as_json: bool,
         as_md: bool) -> None:  # fmt: skip
    """Show an execution: provenance, configuration, metrics.

    EXECUTION_ID may be any unique part of an ID. Metrics are read at the commit that
    last changed the execution (or the workspace); a cell a later execution re-ran
    shows as superseded. Cells of multi-agent systems also get a table per agent.
    --md prints the aggregate report: a row per trial (cell) with its interval, totals,
    agents, and each condition's paired effect against the first one.
    """
    import yaml

    from evalledger.analysis.diff import format_value
    from evalledger.ledger.listing import show_execution
    from evalledger.metrics import flatten

    ledger = open_ledger(ctx)
    view = show_execution(ledger, execution_id)
    if as_json:
        click.echo(json.dumps(view.to_json(), indent=2))
        return
    if as_md:
        from evalledger.analysis.execution_report import execution_markdown

        click.echo(execution_markdown(ledger, view))
        return
    m, git = view.manifest, view.manifest.git
    click.echo(f"{m.execution_id}  {_status(view.status)}  {m.summary()}")
    click.echo(f"created   {m.created_at:%Y-%m-%d %H:%M:%S} UTC, updated "
               f"{m.updated_at:%Y-%m-%d %H:%M:%S} UTC")  # fmt: skip
    click.echo(f"command   {' '.join(m.command) or '-'}")
    if m.overrides:
        click.echo(f"overrides {' '.join(m.overrides)}")
    if m.filters:
        click.echo("filters   " + "; ".join(f"{k}={','.join(v)}" for k, v in m.filters.items()))
    click.echo(f"git       {(git.commit or 'no commit')[:10]} on {git.branch or 'detached HEAD'}"
               f"{' (dirty)' if git.dirty else ''}")  # fmt: skip
    if git.code_hash or git.diff_hash:
        click.echo(f"code      {git.code_hash or '-'}" +
                   (f", uncommitted diff {git.diff_hash}" if git.diff_hash else ""))  # fmt: skip
    click.echo(f"results   read at {view.revision}")
    if m.kind == "experiment":
        print_experiment(m)
    if m.provenance is not None:
        print_provenance(m.provenance, packages)
    click.echo("config:")
    click.echo("  " + yaml.safe_dump(m.config, sort_keys=False).rstrip().replace("\n", "\n  "))
    if not m.cells:
        return
    rows = []
    for key, rec in m.cells.items():
        metrics = view.results.get(key)
        flat = flatten(metrics) if metrics else {}
        values = [format_value(flat.get(c)) if metrics else "" for c in _COLUMNS]
        status = rec.status.value if metrics or rec.status.value != "completed" else "superseded"
        rows.append([key, status, f"{rec.examples_completed}/{rec.examples_total or '?'}",
                     *values])  # fmt: skip
    print_table(["cell", "status", "items", *_COLUMNS], rows, right=len(_COLUMNS) + 1)
    agents = view.agent_rows()
    if agents:
        click.echo("")
        rows = [[key, name, *(format_value(m.get(c)) for c in _AGENT_COLUMNS)]
                for key, name, m in agents]  # fmt: skip
        print_table(["cell", "agent", *_AGENT_COLUMNS], rows, title="agents",
                    right=len(_AGENT_COLUMNS))  # fmt: skip


def _status(status: str) -> str:
    return _LIVENESS.get(status, status)
