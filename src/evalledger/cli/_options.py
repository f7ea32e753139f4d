"""Helpers shared by commands: the project from --project, and shared option bundles."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from evalledger.cli._complete import complete_axis, complete_metric, complete_revision

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger
    from evalledger.project import Project

__all__ = [
    "FILTER_AXES",
    "METHOD_NAMES",
    "alpha_option",
    "benchmarks_option",
    "confidence_option",
    "current_project",
    "examples",
    "filter_options",
    "format_options",
    "json_option",
    "metric_option",
    "open_ledger",
    "rev_option",
    "split_values",
    "stats_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The paired tests of evalledger.analysis.significance (a test keeps the two lists equal); kept
#: here so that building the CLI imports no numpy or scipy.
METHOD_NAMES = ("auto", "bootstrap", "permutation", "mcnemar", "t-test", "wilcoxon")


def examples(*lines: str) -> str:
    r"""A command's ``Examples:`` epilog: command lines kept as written (click's ``\b``)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def current_project(ctx: click.Context) -> Project:
    """The project named by ``--project``, or the one containing the current folder."""
    from evalledger.project import Project

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


#: Filter option (its keyword) -> the axis it filters; the command gets one ``filters``.
FILTER_AXES = {"models": "model", "benchmarks": "benchmark", "prompt_sets": "prompt_set",
               "decodings": "decoding"}  # fmt: skip


def split_values(values: tuple[str, ...]) -> list[str]:
    """Comma-separated and repeated option values as one list (``a,b -x c`` -> a, b, c)."""
    return list(dict.fromkeys(v.strip() for chunk in values for v in chunk.split(",") if v.strip()))


def _filter_option(keyword: str) -> Callable[[F], F]:
    flag = "--" + keyword.replace("_", "-")
    names = [flag, "-b", "--benchmark"] if keyword == "benchmarks" else [flag]
    option: Callable[[F], F] = click.option(
        *names, keyword, multiple=True, metavar="A,B",
        shell_complete=complete_axis(FILTER_AXES[keyword]),
        help=f"Only cells of these {keyword.replace('_', ' ')} (comma-separated, repeatable).",
    )  # fmt: skip
    return option


def filter_options(fn: F) -> F:
    """The one cell filter: --models, --benchmarks (-b), --prompt-sets, --decodings, --only.

    Each is comma-separated and repeatable (``--models a,b --models c``). The command
    receives them as one ``filters`` argument: axis -> values, empty axes left out.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {axis: split_values(kwargs.pop(kw)) for kw, axis in FILTER_AXES.items()}
        for text in kwargs.pop("only"):
            axis, sep, values = text.partition("=")
            if not sep or not axis.strip() or not values.strip():
                raise click.BadParameter(f"{text!r} is not AXIS=VALUE[,VALUE]",
                                         param_hint="--only")  # fmt: skip
            axis = axis.strip()
            given[axis] = list(dict.fromkeys([*given.get(axis, []), *split_values((values,))]))
        return fn(*args, filters={a: v for a, v in given.items() if v}, **kwargs)

    decorated: Any = wrapper
    decorated = click.option(
        "--only", "only", multiple=True, metavar="AXIS=A,B",
        help="Only cells with these values of any axis, e.g. condition=treatment (repeatable).",
    )(decorated)  # fmt: skip
    for keyword in reversed(FILTER_AXES):
        decorated = _filter_option(keyword)(decorated)
    return cast(F, decorated)


#: ``-b/--benchmark`` alone, repeatable, into ``benchmarks`` (for commands without cells
#: of other axes to filter).
benchmarks_option = click.option(
    "--benchmarks", "-b", "--benchmark", "benchmarks", multiple=True, metavar="A,B",
    shell_complete=complete_axis("benchmark"),
    help="Only these benchmarks (comma-separated, repeatable).",
)  # fmt: skip

#: ``--json``: the output as JSON, on every command.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def metric_option(
    help: str, *, multiple: bool = False, default: str | None = None
) -> Callable[[F], F]:
    """``-m/--metric``, with completion of the workspace's metric names."""
    option: Callable[[F], F] = click.option(
        "-m", "--metric", "metrics" if multiple else "metric", multiple=multiple,
        default=() if multiple else default, show_default=default is not None,
        metavar="NAME", shell_complete=complete_metric, help=help,
    )  # fmt: skip
    return option


def rev_option(help: str, *, multiple: bool = False) -> Callable[[F], F]:
    """``-r/--rev``: a revision (commit, branch, tag, experiment, ``workspace``)."""
    option: Callable[[F], F] = click.option(
        "-r", "--rev", "revs" if multiple else "rev", multiple=multiple, default=None,
        metavar="REV", shell_complete=complete_revision, help=help,
    )  # fmt: skip
    return option


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
