"""``evalledger push``, ``pull`` and ``archive``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from evalledger.cli._options import current_project, examples

if TYPE_CHECKING:
    from evalledger.share.remote import ShareResult

__all__ = ["archive", "pull", "push"]

F = TypeVar("F", bound=Callable[..., Any])


def _transfer_options(fn: F) -> F:
    for option in reversed([
        click.option("--remote", default=None, metavar="NAME",
                     help="git remote (default: the branch's upstream, else origin)."),
        click.option("--dvc-remote", default=None, metavar="NAME",
                     help="DVC remote (default: the default DVC remote)."),
        click.option("--git-only", is_flag=True, help="Only git: skip DVC."),
        click.option("--dvc-only", is_flag=True, help="Only DVC: skip git."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON object."),
    ]):  # fmt: skip
        fn = option(fn)
    return fn


def _which(git_only: bool, dvc_only: bool) -> tuple[bool, bool]:
    if git_only and dvc_only:
        raise click.UsageError("--git-only and --dvc-only exclude each other")
    return not dvc_only, not git_only


@click.command(
    short_help="Share the ledger: git push, then dvc push of the predictions.",
    epilog=examples("evalledger push", "evalledger push --tags --dvc-remote store",
                    "evalledger push --git-only --json"),
)  # fmt: skip
@_transfer_options
@click.option("--tags", is_flag=True, help="Also push the run/* tags made by `archive`.")
@click.pass_context
def push(
    ctx: click.Context, remote: str | None, dvc_remote: str | None, git_only: bool,
    dvc_only: bool, tags: bool, as_json: bool,
) -> None:  # fmt: skip
    """Share the ledger: `git push` the branch, then `dvc push` the cached predictions."""
    from evalledger.share.remote import push_ledger

    git, dvc = _which(git_only, dvc_only)
    result = push_ledger(current_project(ctx), remote=remote, dvc_remote=dvc_remote,
                         tags=tags, git=git, dvc=dvc)  # fmt: skip
    _print(result, as_json)


@click.command(
    short_help="Get others' results: git pull --ff-only, then dvc pull.",
    epilog=examples("evalledger pull", "evalledger pull --dvc-only --dvc-remote store"),
)
@_transfer_options
@click.pass_context
def pull(
    ctx: click.Context, remote: str | None, dvc_remote: str | None, git_only: bool,
    dvc_only: bool, as_json: bool,
) -> None:  # fmt: skip
    """Get others' results: `git pull --ff-only`, then `dvc pull` the predictions."""
    from evalledger.share.remote import pull_ledger

    git, dvc = _which(git_only, dvc_only)
    result = pull_ledger(current_project(ctx), remote=remote, dvc_remote=dvc_remote,
                         git=git, dvc=dvc)  # fmt: skip
    _print(result, as_json)


def _print(result: ShareResult, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    for line in result.lines:
        click.echo(line)


@click.command(
    short_help="Tag the commit holding an execution as run/<id>.",
    epilog=examples("evalledger archive 2026-11-22_2233", "evalledger archive b4b2ed5f --force"),
)
@click.argument("execution_id")
@click.option("-f", "--force", is_flag=True, help="Move the tag if it already exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def archive(ctx: click.Context, execution_id: str, force: bool, as_json: bool) -> None:
    """Tag the commit holding EXECUTION_ID (any unique part) as run/<id>, to share it."""
    from evalledger.share.remote import archive_execution

    result = archive_execution(current_project(ctx), execution_id, force=force)
    if as_json:
        data = {"tag": result.tag, "commit": result.commit, "message": result.message,
                "replaced": result.replaced}  # fmt: skip
        click.echo(json.dumps(data, indent=2))
        return
    verb = "moved" if result.replaced else "tagged"
    click.echo(f"{verb} {result.tag} -> {result.commit[:10]}: {result.message}")
    click.echo("share it with `evalledger push --tags`")
