"""``evalledger init``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evalledger.cli._options import examples
from evalledger.errors import EvalLedgerError


@click.command(
    short_help="Scaffold an evaluation project (git, DVC, a demo matrix).",
    epilog=examples("evalledger init evals", "evalledger init . --no-commit --json"),
)
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing params.yaml and dvc.yaml.")
@click.option("--no-commit", is_flag=True, help="Leave the new files uncommitted.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def init(directory: str, force: bool, no_commit: bool, as_json: bool) -> None:
    r"""Scaffold an evaluation project in DIRECTORY (default: here).

    Creates params.yaml (a runnable demo matrix), dvc.yaml, runs/, metrics/ and
    .gitignore, runs `git init` / `dvc init` where they are missing, and commits those
    files (only those: whatever else is staged stays staged). dvc.yaml's stages run
    `sh .evalledger.sh cell ...`, a launcher that finds this interpreter's evalledger,
    so `.venv/bin/dvc repro` works without an activated virtualenv.
    """
    from evalledger.execution.scaffold import commit_scaffold, init_project, scaffold_paths

    project, created = init_project(Path(directory), force=force)
    root = project.root
    paths = scaffold_paths(root)
    commit: str | None = None
    note: str | None = None
    if no_commit:
        note = "not committed (--no-commit)"
    else:
        try:
            commit = commit_scaffold(root)
        except EvalLedgerError as exc:  # no git identity, a hook: the scaffold stands
            note = f"not committed: {exc.one_line()}"
    todo = None if commit or not note else f"git add {' '.join(paths)} && git commit"
    if as_json:
        click.echo(json.dumps({"root": str(root), "created": created, "commit": commit,
                               "not_committed": note, "commit_with": todo}, indent=2))  # fmt: skip
        return
    click.echo(f"Initialised evalledger project in {root}")
    for path in created:
        click.echo(f"  created {path}")
    if commit:
        click.echo(f"committed the scaffold as {commit[:10]}")
    elif note:
        click.echo(f"{note}; commit it with `{todo}`")
    click.echo("Next: `evalledger run` evaluates the matrix; `dvc repro` does too.")
