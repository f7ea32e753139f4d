"""Rendering for the CLI: the only code that prints tables and progress."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from evalledger.execution.plan import RunPlan
    from evalledger.execution.runner import RunResult
    from evalledger.manifest import CellRecord, ExecutionManifest, Provenance

__all__ = [
    "console",
    "echo_formatted",
    "make_reporter",
    "plain_value",
    "print_experiment",
    "print_provenance",
    "print_status",
    "print_table",
    "run_json",
    "status_json",
]

_STYLE = {"completed": "green", "failed": "red", "in_progress": "yellow", "pending": "dim"}


def status_json(manifest: ExecutionManifest) -> str:
    """The manifest as indented JSON, with a per-status count."""
    data: dict[str, Any] = manifest.model_dump(mode="json")
    data["counts"] = manifest.counts()
    return json.dumps(data, indent=2)


def console() -> Any:
    """A rich console: $COLUMNS or the terminal's width, else 160 columns when piped."""
    from rich.console import Console

    width = _env_width() or (None if sys.stdout.isatty() else 160)
    return Console(highlight=False, soft_wrap=False, width=width)


def _env_width() -> int | None:
    try:
        return max(20, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return None


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
    """A plain table; ``right`` columns from the third on are right-aligned numbers.

    No word (a number, a name) is ever split: columns are at least as wide as their
    longest word and wrap at spaces; a table that cannot fit so is printed as one block
    of ``column  value`` lines per row. Cells may hold rich markup.
    """
    from rich.table import Table

    out = console()
    if title:
        out.print(f"[bold]{title}[/]")
    widths = _fit_widths(columns, rows, out.width)
    if widths is None:
        _print_records(out, columns, rows, styles)
        return
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for i, col in enumerate(columns):
        numeric = right and i >= 2 and i < 2 + right
        table.add_column(col, overflow="fold", justify="right" if numeric else "left",
                         width=widths[i])  # fmt: skip
    for i, row in enumerate(rows):
        table.add_row(*row, style=styles[i] if styles else None)
    out.print(table)


def _plain(cell: str) -> str:
    from rich.text import Text

    return Text.from_markup(cell).plain


def _fit_widths(columns: list[str], rows: list[list[str]], width: int) -> list[int] | None:
    """Column widths that keep every word whole within ``width``, or None when none do.

    Each column gets its longest word, then what is left goes to the columns whose
    longest cell is wider, in proportion to how much wider.
    """
    from rich.cells import cell_len

    texts = [[_plain(c) for c in col] for col in zip(columns, *rows, strict=True)]
    most = [max(cell_len(t) for t in col) for col in texts]
    least = [max([cell_len(w) for t in col for w in t.split()] or [1]) for col in texts]
    room = width - 2 * (len(columns) - 1)
    if sum(least) > room:
        return None
    if sum(most) <= room:
        return most
    spare, wants = room - sum(least), [m - n for m, n in zip(most, least, strict=True)]
    total = sum(wants)
    extra = [spare * w // total for w in wants]
    return [n + e for n, e in zip(least, extra, strict=True)]


def _print_records(
    out: Any, columns: list[str], rows: list[list[str]], styles: list[str] | None
) -> None:
    """A table too wide for the terminal: each row as ``column  value`` lines."""
    from rich.table import Table

    label = max(len(c) for c in columns)
    for i, row in enumerate(rows):
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="bold", width=label)
        grid.add_column(overflow="fold")
        for col, cell in zip(columns, row, strict=True):
            if cell:
                grid.add_row(col, cell, style=styles[i] if styles else None)
        if i:
            out.print()
        out.print(grid)


def plain_value(value: Any) -> str:
    """A config value as text: ``-`` for none, lists and mappings inline as YAML writes them."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(plain_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {plain_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def print_experiment(m: ExecutionManifest) -> None:
    """A tracked experiment's name, notes, params, last metrics, checkpoints and error."""
    click.echo(f"name      {m.name or '-'}")
    if m.notes:
        click.echo(f"notes     {m.notes}")
    if m.error:
        click.echo(f"error     {m.error}")
    if m.params:
        click.echo("params    " + ", ".join(f"{k}={plain_value(v)}" for k, v in m.params.items()))
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
    from rich.markup import escape

    out = console()
    git = manifest.git
    commit = (git.commit or "no commit")[:10] + (" (dirty)" if git.dirty else "")
    out.print(f"[bold]{manifest.execution_id}[/]  {manifest.status.value}  "
                  f"{manifest.summary()}")  # fmt: skip
    out.print(f"created {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC  "
                  f"git {commit} on {git.branch or 'detached HEAD'}")  # fmt: skip
    rows = []
    for key, rec in manifest.cells.items():
        total = "?" if rec.examples_total is None else str(rec.examples_total)
        errored = f" ({rec.examples_errored} errored)" if rec.examples_errored else ""
        style = _STYLE.get(rec.status.value, "")
        examples = f"{rec.examples_completed}/{total}{errored}"
        status = f"[{style}]{rec.status.value}[/]"
        rows.append([key, status, examples, rec.experiment, escape(rec.error or "")])
    print_table(["cell", "status", "examples", "experiment", "error"], rows)


def warn_duplicates(plan: RunPlan) -> None:
    """Warn about cells already evaluated at the same configuration, data and code."""
    if not plan.duplicates:
        return
    keys = list(plan.duplicates)
    example = f"{keys[0]} in {plan.duplicates[keys[0]][-1]}"
    why = "see `evalledger list --duplicates`"
    if plan.not_reused:  # committed, but their outputs could not be restored
        n = len(plan.not_reused)
        why = (f"{n} of them run again because no DVC cache or remote holds "
               f"{'its' if n == 1 else 'their'} predictions (`dvc push` keeps them)")  # fmt: skip
    click.echo(
        f"Warning: {len(keys)} cell(s) were already evaluated with the same configuration, "
        f"data and code (e.g. {example}); {why}",
        err=True,
    )


class _LineReporter:
    """Plain lines, for logs and pipes (on stderr with ``err``, as under ``--json``)."""

    def __init__(self, err: bool = False) -> None:
        self.total = 0
        self.finished = 0
        self.lock = threading.Lock()
        self.err = err

    def plan(self, plan: RunPlan) -> None:
        self.total = len(plan.cells)
        verb = "resuming" if plan.resume else "running"
        skipped = f", {len(plan.up_to_date)} up to date" if plan.up_to_date else ""
        click.echo(f"{verb} {plan.execution_id}: {self.total} cells{skipped}, "
                   f"{plan.jobs} at once", err=self.err)  # fmt: skip
        warn_duplicates(plan)

    def cell_started(self, key: str, done: int, total: int) -> None:
        if done:
            click.echo(f"  {key}: continuing from item {done}/{total}", err=self.err)

    def cell_progress(self, key: str, done: int, total: int, errors: int) -> None:
        pass

    def cell_finished(self, key: str, record: CellRecord) -> None:
        with self.lock:
            self.finished += 1
            detail = f"{record.examples_completed}/{record.examples_total}"
            if record.error:
                detail += f" - {record.error}"
            line = f"  [{self.finished}/{self.total}] {key} {record.status.value} {detail}"
            click.echo(line, err=self.err)


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


def make_reporter(err: bool = False) -> _LineReporter:
    """Live bars on a terminal, plain lines otherwise (always lines on stderr with ``err``)."""
    if err:
        return _LineReporter(err=True)
    return _RichReporter() if sys.stdout.isatty() else _LineReporter()


def run_json(result: RunResult, dry_run: bool) -> dict[str, Any]:
    """What ``run --json`` prints: the plan of a dry run, else the execution's outcome."""
    plan = result.plan
    data: dict[str, Any] = {
        "execution_id": plan.execution_id, "resume": plan.resume, "dry_run": dry_run,
        "cells": list(plan.cells), "up_to_date": list(plan.up_to_date),
    }  # fmt: skip
    if plan.shard is not None:
        data["shard"] = str(plan.shard)
    if plan.reused:  # outputs restored from an identical earlier evaluation
        data["reused"] = {k: {"execution_id": e, "items": plan.restored.get(k, 0)}
                          for k, e in plan.reused.items()}  # fmt: skip
    if dry_run:
        data["items_left"] = plan.items_remaining
        return data
    if plan.shard is not None:
        data["waiting"] = list(result.waiting)
    manifest = result.manifest
    data.update(ok=result.ok, message=result.message, seconds=round(result.seconds, 3),
                recorded=result.recorded, committed=result.committed,
                cache_hits=result.cache_hits)  # fmt: skip
    if manifest is not None:
        data["status"] = manifest.status.value
        data["counts"] = manifest.counts()
        data["results"] = {key: {"status": rec.status.value, "examples": rec.examples_completed,
                                 "total": rec.examples_total, "error": rec.error}
                           for key, rec in manifest.cells.items()}  # fmt: skip
    return data
