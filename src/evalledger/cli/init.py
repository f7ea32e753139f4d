"""``evalledger init``."""

from __future__ import annotations

from pathlib import Path

import click

from evalledger.execution.scaffold import init_project


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing params.yaml and dvc.yaml.")
def init(directory: str, force: bool) -> None:
    """Scaffold an evaluation project in DIRECTORY (default: here).

    Creates params.yaml (a runnable demo matrix), dvc.yaml, runs/, metrics/ and
    .gitignore, and runs `git init` / `dvc init` where they are missing.
    """
    project, created = init_project(Path(directory), force=force)
    click.echo(f"Initialised evalledger project in {project.root}")
    for path in created:
        click.echo(f"  created {path}")
    click.echo("Next: `evalledger run` evaluates the matrix; `dvc repro` does too.")
