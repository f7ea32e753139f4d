"""Rendering for the CLI: the only code that prints tables and progress."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from evalledger.execution.plan import RunPlan
    from evalledger.manifest import CellRecord, ExecutionManifest, Provenance

__all__ = [
    "console",
    "echo_formatted",
    "make_reporter",
    "print_experiment",
    "print_provenance",
    "print_status",
    "print_table",
    "status_json",
]

_STYLE = {"completed": "green", "failed": "red", "in_progress": "yellow", "pending": "dim"}


def status_json(manifest: ExecutionManifest) -> str:
    """The manifest as indented JSON, with a per-status count."""
    data: dict[str, Any] = manifest.model_dump(mode="json")
    data["counts"] = manifest.counts()
    return json.dumps(data, indent=2)


def console() -> Any:
    """A rich console: the terminal's width, or 160 columns when piped."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def echo_formatted(result: Any, fmt: str) -> bool:
    """Print ``result`` as json, csv, md or html through its ``to_<format>`` method.

    Returns False for ``table`` (the caller draws it), True when printed.
    """
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
        return True
    method = {"csv": "to_csv", "md": "to_markdown", "html": "to_html"}.get(fmt)
    if method is None:
        return False
    click.echo(getattr(result, method)(), nl=False)
    return True


def print_table(
    columns: list[str], rows: list[list[str]], title: str | None = None,
    styles: list[str] | None = None, right: int = 0,
) -> None:  # fmt: skip
    """A plain table; ``right`` columns from the third on are right-aligned numbers."""
    from rich.table import Table

    out = console()
    if title:
        out.print(f"[bold]{title}[/]")
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for i, col in enumerate(columns):
        numeric = right and i >= 2 and i < 2 + right
        table.add_column(col, overflow="fold", justify="right" if numeric else "left")
    for i, row in enumerate(rows):
        table.add_row(*row, style=styles[i] if styles else None)
    out.print(table)


def print_experiment(m: ExecutionManifest) -> None:
    """A tracked experiment's name, notes, params, last metrics, checkpoints and error."""
    click.echo(f"name      {m.name or '-'}")
    if m.notes:
        click.echo(f"notes     {m.notes}")
    if m.error:
        click.echo(f"error     {m.error}")
    if m.params:
        click.echo("params    " + ", ".join(f"{k}={v}" for k, v in m.params.items()))
    if m.last_metrics:
        click.echo("last      " + ", ".join(f"{k}={v:g}" for k, v in m.last_metrics.items()))
    for kind, records in (("checkpoint", m.checkpoints), ("artifact", m.artifacts)):
        for rec in records:
            step = f" step {rec.step}" if rec.step is not None else ""
            click.echo(f"{kind} {rec.path}{step}  sha256 {rec.sha256[:12]}  {rec.size:,} B")


def print_provenance(p: Provenance, packages: bool = False) -> None:
    """Where an execution ran: machine, Python, accelerators, data versions, environment."""
    gib = f", {p.memory_bytes / 2**30:.1f} GiB" if p.memory_bytes else ""
    cpus = f" x{p.cpu_count}" if p.cpu_count else ""
    click.echo(f"host      {p.user or '?'}@{p.hostname or '?'}, {p.os or '?'}")
    click.echo(f"machine   {p.cpu or '?'}{cpus}{gib}; "
               f"accelerators: {', '.join(p.accelerators) or 'none'}")  # fmt: skip
    click.echo(f"python    {p.python or '?'} ({p.executable or '?'}), "
               f"{len(p.packages)} packages")  # fmt: skip
    for path, md5 in p.data.items():
        click.echo(f"data      {path} md5 {md5}")
    if p.env:
        click.echo("env       " + ", ".join(f"{k}={v}" for k, v in p.env.items()))
    if packages:
        for name, ver in p.packages.items():
            click.echo(f"  {name}=={ver}")


def print_status(manifest: ExecutionManifest) -> None:
    """A header and the per-cell table of an execution."""
    from rich.table import Table

    out = console()
    git = manifest.git
    commit = (git.commit or "no commit")[:10] + (" (dirty)" if git.dirty else "")
    out.print(f"[bold]{manifest.execution_id}[/]  {manifest.status.value}  "
                  f"{manifest.summary()}")  # fmt: skip
    out.print(f"created {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC  "
                  f"git {commit} on {git.branch or 'detached HEAD'}")  # fmt: skip
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for col in ("cell", "status", "examples", "experiment", "error"):
        table.add_column(col, overflow="fold")
    for key, rec in manifest.cells.items():
        total = "?" if rec.examples_total is None else str(rec.examples_total)
        errored = f" ({rec.examples_errored} errored)" if rec.examples_errored else ""
        style = _STYLE.get(rec.status.value, "")
        examples = f"{rec.examples_completed}/{total}{errored}"
        status = f"[{style}]{rec.status.value}[/]"
        table.add_row(key, status, examples, rec.experiment, rec.error or "")
    out.print(table)


def warn_duplicates(plan: RunPlan) -> None:
    """Warn about cells already evaluated at the same configuration, data and code."""
    if not plan.duplicates:
        return
    keys = list(plan.duplicates)
    example = f"{keys[0]} in {plan.duplicates[keys[0]][-1]}"
    click.echo(
        f"Warning: {len(keys)} cell(s) were already evaluated with the same configuration, "
        f"data and code (e.g. {example}); see `evalledger list --duplicates`",
        err=True,
    )


class _LineReporter:
    """Plain lines, for logs and pipes."""

    def __init__(self) -> None:
        self.total = 0
        self.finished = 0
        self.lock = threading.Lock()

    def plan(self, plan: RunPlan) -> None:
        self.total = len(plan.cells)
        verb = "resuming" if plan.resume else "running"
        skipped = f", {len(plan.up_to_date)} up to date" if plan.up_to_date else ""
        click.echo(f"{verb} {plan.execution_id}: {self.total} cells{skipped}, "
                   f"{plan.jobs} at once")  # fmt: skip
        warn_duplicates(plan)

    def cell_started(self, key: str, done: int, total: int) -> None:
        if done:
            click.echo(f"  {key}: continuing from item {done}/{total}")

    def cell_progress(self, key: str, done: int, total: int, errors: int) -> None:
        pass

    def cell_finished(self, key: str, record: CellRecord) -> None:
        with self.lock:
            self.finished += 1
            detail = f"{record.examples_completed}/{record.examples_total}"
            if record.error:
                detail += f" - {record.error}"
            click.echo(f"  [{self.finished}/{self.total}] {key} {record.status.value} {detail}")


class _RichReporter(_LineReporter):
    """A live progress bar per running cell and one for the whole run."""

    def __init__(self) -> None:
        super().__init__()
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[errors]} errors"), TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(), transient=False,
        )  # fmt: skip
        self.started: dict[str, tuple[float, int]] = {}
        self.tasks: dict[str, Any] = {}
        self.overall: Any = None

    def plan(self, plan: RunPlan) -> None:
        super().plan(plan)
        self.progress.start()
        self.overall = self.progress.add_task("cells", total=self.total, errors=0, rate="")

    def cell_started(self, key: str, done: int, total: int) -> None:
        with self.lock:
            self.started[key] = (time.monotonic(), done)
            self.tasks[key] = self.progress.add_task(
                f"  {key}", total=total, completed=done, errors=0, rate=""
            )

    def cell_progress(self, key: str, done: int, total: int, errors: int) -> None:
        task = self.tasks.get(key)
        if task is not None:
            t0, first = self.started[key]
            rate = (done - first) / max(time.monotonic() - t0, 1e-6)
            self.progress.update(task, completed=done, errors=errors, rate=f"{rate:.1f} it/s")

    def cell_finished(self, key: str, record: CellRecord) -> None:
        with self.lock:
            self.finished += 1
            task = self.tasks.pop(key, None)
            if task is not None:
                self.progress.remove_task(task)
            self.progress.advance(self.overall)
            if record.error:
                self.progress.console.print(f"[red]{key} failed[/]: {record.error}")

    def close(self) -> None:
        self.progress.stop()


def make_reporter() -> _LineReporter:
    """Live bars on a terminal, plain lines otherwise."""
    return _RichReporter() if sys.stdout.isatty() else _LineReporter()
