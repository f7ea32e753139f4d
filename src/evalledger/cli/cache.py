"""``evalledger cache stats`` and ``evalledger cache clear``: the response cache."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from evalledger.cli._options import current_project, examples, json_option


@click.group(
    short_help="Show or clear the response cache of paid model calls.",
    epilog=examples("evalledger cache stats", "evalledger cache clear --expired"),
)
def cache() -> None:
    """The response cache: each paid model call's answer, by model and exact request.

    `run` answers a call from it when the same model got the same request before
    (within run.cache_expiry, default 14d); `run --no-cache` or `run.cache: false` in
    params.yaml makes every call. It lives in .evalledger/cache/responses/ (untracked).
    """


@cache.command(
    short_help="Entries per model, expired ones and the cache's size.",
    epilog=examples("evalledger cache stats", "evalledger cache stats --json"),
)
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Show how many answers the cache holds, per model, and how many expired."""
    from evalledger.execution.response_cache import cache_stats

    project = current_project(ctx)
    found = cache_stats(project, project.spec().run.cache_expiry_s)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
        return
    if not found.entries:
        click.echo(f"the response cache is empty ({found.path})")
        return

    def when(ts: float | None) -> str:
        return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")

    click.echo(f"{found.entries} answers, {found.expired} expired, "
               f"{found.bytes / 2**20:.1f} MiB in {found.path}")  # fmt: skip
    click.echo(f"from {when(found.oldest)} to {when(found.newest)} UTC")
    for model, count in found.models.items():
        click.echo(f"  {model}: {count}")


@cache.command(
    short_help="Delete cached answers: all, the expired ones, or one model's.",
    epilog=examples(
        "evalledger cache clear",
        "evalledger cache clear --expired",
        "evalledger cache clear --model openai:gpt-4o-mini",
    ),
)
@click.option("--expired", is_flag=True, help="Only answers older than run.cache_expiry.")
@click.option("--model", default=None, metavar="ADAPTER:MODEL",
              help="Only this model's answers, as `cache stats` names them.")  # fmt: skip
@json_option
@click.pass_context
def clear(ctx: click.Context, expired: bool, model: str | None, as_json: bool) -> None:
    """Delete answers from the response cache; the next run makes those calls again."""
    from evalledger.execution.response_cache import clear_cache

    project = current_project(ctx)
    gone = clear_cache(project, expired_only=expired, model=model,
                       expiry_s=project.spec().run.cache_expiry_s)  # fmt: skip
    if as_json:
        click.echo(json.dumps({"deleted": gone}))
    else:
        click.echo(f"deleted {gone} cached answers")
