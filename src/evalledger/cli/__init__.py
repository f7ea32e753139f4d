"""The ``evalledger`` command line: a root group whose subcommands load on demand.

Importing this module must stay cheap: it imports click and nothing heavy (no pydantic,
pandas, scipy, dvc or git), which tests/test_startup.py checks. Each subcommand lives in
``cli/<verb>.py`` and is imported only when it runs; ``--help`` lists them from
:data:`SHORT_HELP` without importing any.
"""

from __future__ import annotations

import difflib
import errno
import importlib
import os
import sys
import warnings
from typing import Any

import click

from evalledger import __version__
from evalledger.errors import (
    EXIT_CELLS_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EvalLedgerError,
)

__all__ = ["COMMANDS", "SHORT_HELP", "cli", "main"]

COMMANDS: dict[str, str] = {
    "init": "evalledger.cli.init:init",
    "run": "evalledger.cli.run:run",
    "resume": "evalledger.cli.run:resume",
    "status": "evalledger.cli.status:status",
    "cell": "evalledger.cli.cell:cell",
    "list": "evalledger.cli.list:list_executions_cmd",
    "show": "evalledger.cli.show:show",
    "stats": "evalledger.cli.stats:stats",
    "items": "evalledger.cli.items:items",
    "report": "evalledger.cli.report:report",
    "view": "evalledger.cli.view:view",
    "delete": "evalledger.cli.delete:delete",
    "export": "evalledger.cli.export:export",
    "import": "evalledger.cli.export:import_",
    "diff": "evalledger.cli.diff:diff",
    "compare": "evalledger.cli.compare:compare",
    "leaderboard": "evalledger.cli.leaderboard:leaderboard",
    "significance": "evalledger.cli.significance:significance",
    "revert": "evalledger.cli.revert:revert",
    "sweep": "evalledger.cli.sweep:sweep",
    "reproduce": "evalledger.cli.reproduce:reproduce",
    "push": "evalledger.cli.share:push",
    "pull": "evalledger.cli.share:pull",
    "archive": "evalledger.cli.share:archive",
    "cache": "evalledger.cli.cache:cache",
}

#: Each command's one line in ``evalledger --help``, so that listing them imports none of
#: them (a test keeps each equal to its command's own short help).
SHORT_HELP: dict[str, str] = {
    "init": "Scaffold an evaluation project (git, DVC, a demo matrix).",
    "run": "Evaluate the matrix: the selected cells not up to date.",
    "resume": "Continue an interrupted execution; same as `run --resume`.",
    "status": "Show the per-cell status of an execution.",
    "cell": "Evaluate one cell (what `dvc repro` runs for each stage).",
    "list": "List executions across history and the workspace.",
    "show": "Show an execution: provenance, configuration, metrics.",
    "stats": "Show ledger statistics: executions, cells, items, sizes.",
    "items": "Show one cell's items: answers, right or wrong, repeated samples grouped.",
    "report": "Write the ledger as one self-contained HTML page.",
    "view": "Serve the report on 127.0.0.1, updated as the ledger changes.",
    "delete": "Delete an execution's manifest and results from the workspace.",
    "export": "Export executions, metrics and per-item scores as JSON.",
    "import": "Import executions that `evalledger export` wrote.",
    "diff": "Show how cell metrics changed between two revisions.",
    "compare": "Compare executions or revisions side by side.",
    "leaderboard": "Rank models or cells on a metric, with confidence intervals.",
    "significance": "Test whether differences between models are real.",
    "revert": "Put an execution's configuration back into params.yaml.",
    "sweep": "Queue (and run) a sweep of overrides as DVC experiments.",
    "reproduce": "Re-run a revision's cells in a worktree and check them.",
    "push": "Share the ledger: git push, then dvc push of the predictions.",
    "pull": "Get others' results: git pull --ff-only, then dvc pull.",
    "archive": "Tag the commit holding an execution as run/<id>.",
    "cache": "Show or clear the response cache of paid model calls.",
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        if command.short_help is None and command.help:  # a whole line, never cut with "..."
            command.short_help = command.help.strip().splitlines()[0]
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own asks every command for its short help, importing all of them.
        rows = [(name, SHORT_HELP[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            # sorted(), not list(): the `list` submodule shadows the builtin in this package
            close = difflib.get_close_matches(name, sorted(COMMANDS), n=2, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else "."
            ctx.fail(f"No such command {name!r}{hint}")
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept for the manifest's `command:` field, whatever process called us.
        ctx.meta["evalledger.argv"] = ["evalledger", *args]
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # e.g. `evalledger --nope`
            _usage_error(ctx, exc)
            raise  # not reached: ctx.exit raises

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            _show_skipped_files()
            try:
                return super().invoke(ctx)
            except EvalLedgerError as exc:
                click.echo(f"Error: {exc.one_line()}", err=True)
                ctx.exit(exc.exit_code)
            except click.UsageError as exc:
                _usage_error(ctx, exc)
            except KeyboardInterrupt:
                click.echo("Aborted.", err=True)
                ctx.exit(EXIT_INTERRUPTED)
            except OSError as exc:
                if exc.errno not in _DISK_FULL:
                    raise
                where = f" writing {exc.filename}" if exc.filename else ""
                click.echo(
                    f"Error: the disk is full ({os.strerror(exc.errno)}{where}); free some "
                    "space and run the command again (`evalledger run --resume` continues "
                    "an interrupted run)",
                    err=True,
                )
                ctx.exit(EXIT_CELLS_FAILED)


def _usage_error(ctx: click.Context, exc: click.UsageError) -> None:
    """Bad input is one line, as every other error: click's message and where help is."""
    where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
    message = exc.format_message().rstrip(".")
    sep = " " if message.endswith("?") else "; "
    click.echo(f"Error: {message}{sep}see `{where} --help`", err=True)
    ctx.exit(exc.exit_code)


#: A write failed for want of space: one line, never "internal error".
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def _show_skipped_files() -> None:
    """Print each damaged file a reader skipped as one ``Warning:`` line, once.

    Library code warns with :class:`~evalledger.safeload.CorruptFileWarning`; the
    caller's ``warnings.catch_warnings()`` puts the previous handler back.
    """
    from evalledger.safeload import CorruptFileWarning

    shown: set[str] = set()
    previous = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
        if not issubclass(category, CorruptFileWarning):
            previous(message, category, *args, **kw)
            return
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            click.echo(f"Warning: {text}", err=True)

    warnings.simplefilter("always", CorruptFileWarning)
    warnings.showwarning = show


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project", "-C", "project_dir", type=click.Path(file_okay=False), default=None,
    help="Project folder (default: the current one or the nearest parent).",
)  # fmt: skip
@click.version_option(version=__version__)  # not importlib.metadata: 10 ms
@click.pass_context
def cli(ctx: click.Context, project_dir: str | None) -> None:
    """evalledger: a git-native ledger of model evaluations, laid out as a DVC project."""
    ctx.obj = {"project_dir": project_dir}


def main() -> None:
    """Console entry point."""
    try:
        cli.main(prog_name="evalledger")
    except Exception as exc:  # an unexpected bug: one line unless asked for the traceback
        if os.environ.get("EVALLEDGER_DEBUG"):
            raise
        click.echo(
            f"Error: internal error: {type(exc).__name__}: {exc}; "
            "rerun with EVALLEDGER_DEBUG=1 for the traceback and report it",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    finally:
        _drop_colorama_reset()


def _drop_colorama_reset() -> None:
    """Skip the ``ESC[0m`` that colorama (loaded by DVC) writes to a terminal at exit.

    It would follow our last line as a stray ``[0m``; rich resets its own styles.
    """
    import atexit

    initialise = sys.modules.get("colorama.initialise")
    if initialise is not None:
        atexit.unregister(initialise.reset_all)
