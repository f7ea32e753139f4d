"""Helpers shared by commands: the project from --project, and shared option bundles."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from evalledger.project import Project

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger

__all__ = [
    "METHOD_NAMES",
    "alpha_option",
    "benchmarks_option",
    "confidence_option",
    "current_project",
    "format_options",
    "open_ledger",
    "stats_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The paired tests of evalledger.analysis.significance (a test keeps the two lists equal); kept
#: here so that building the CLI imports no numpy or scipy.
METHOD_NAMES = ("auto", "bootstrap", "permutation", "mcnemar", "t-test", "wilcoxon")


def current_project(ctx: click.Context) -> Project:
    """The project named by ``--project``, or the one containing the current folder."""
    obj = ctx.find_root().obj or {}
    return Project.find(obj.get("project_dir"))


def open_ledger(ctx: click.Context) -> Ledger:
    """The project's ledger reader, closed (its cache written) when the command ends."""
    from evalledger.ledger.history import Ledger

    ledger = Ledger(current_project(ctx))
    ctx.call_on_close(ledger.close)
    return ledger


def format_options(*formats: str) -> Callable[[F], F]:
    """``--format`` plus a shortcut flag per format (``--md``, ``--json``, ...)."""

    def decorate(fn: F) -> F:
        for name in reversed(formats[1:]):
            fn = click.option(f"--{name}", "fmt", flag_value=name,
                              help=f"Same as --format {name}.")(fn)  # fmt: skip
        return click.option(
            "--format", "fmt", type=click.Choice(formats), default=formats[0],
            show_default=True, help="Output format.",
        )(fn)  # fmt: skip

    return decorate


def stats_options(fn: F) -> F:
    """The options of paired tests: method, confidence, resamples, seed, clusters."""
    for option in reversed([
        click.option("--method", type=click.Choice(METHOD_NAMES), default=None,
                     help="Paired test (default: auto, see the command's help)."),
        confidence_option,
        click.option("--n-resamples", type=click.IntRange(min=100), default=10_000,
                     show_default=True, help="Resamples for bootstrap and permutation."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Random seed for resampling methods."),
        click.option("--cluster", default=None, metavar="COLUMN",
                     help="Cluster items by this per-item column (cluster, category) for "
                          "clustered standard errors; default: `cluster` when present."),
    ]):  # fmt: skip
        fn = option(fn)
    return fn


#: ``-b/--benchmark``, repeatable, into ``benchmarks``.
benchmarks_option = click.option(
    "-b", "--benchmark", "benchmarks", multiple=True, metavar="NAME",
    help="Only these benchmarks (repeatable).",
)  # fmt: skip


def alpha_option(help: str = "Significance level.") -> Callable[[F], F]:
    """``--alpha``, the significance level, strictly between 0 and 1."""
    option: Callable[[F], F] = click.option(
        "--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
        show_default=True, help=help,
    )  # fmt: skip
    return option


#: ``--confidence``, the level of confidence intervals.
confidence_option = click.option(
    "--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True,
    help="Confidence level of the intervals.",
)  # fmt: skip
