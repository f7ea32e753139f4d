"""``evalledger items``."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

import click

from evalledger.cli._options import examples, open_ledger, rev_option
from evalledger.cli._render import print_table

if TYPE_CHECKING:
    from evalledger.ledger.items import ItemAnswers

_CSV = ["id", "category", "target", "samples", "correct", "errors", "distinct", "answers",
        "output", "error"]  # fmt: skip


@click.command(
    short_help="Show one cell's items: answers, right or wrong, repeated samples grouped.",
    epilog=examples(
        "evalledger items noisy/arith --wrong -n 10",
        "evalledger items noisy/arith --grep 'twice' --category two_step",
        "evalledger items --flips solver noisy --rev HEAD~1",
        "evalledger items --flips noisy@main noisy",
        "evalledger items noisy/arith --csv > items.csv",
    ),
)
@click.argument("cell", required=False)
@click.option("--flips", nargs=2, metavar="A B", default=None,
              help="The items model A got right and B wrong, and the reverse; "
                   "MODEL@REV names another revision.")  # fmt: skip
@click.option("--wrong", is_flag=True, help="Only items not answered right.")
@click.option("--errored", is_flag=True, help="Only items with an errored answer.")
@click.option("--category", default=None, help="Only items of this category.")
@click.option("--grep", "pattern", default=None, metavar="TEXT",
              help="Only items whose id, prompt, output, answer or target has TEXT.")  # fmt: skip
@click.option("--disagree", is_flag=True, help="Only items whose answers differ (repeats).")
@rev_option("Revision to read (default: the workspace).")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=None,
              help="Show the first N items.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@click.pass_context
def items(ctx: click.Context, cell: str | None, flips: tuple[str, str] | None, wrong: bool,
          errored: bool, category: str | None, pattern: str | None, disagree: bool,
          rev: str | None, limit: int | None, as_json: bool, as_csv: bool) -> None:  # fmt: skip
    """Show the items of CELL (model/benchmark/...) at a revision.

    Each row is a question: right out of its answers (K with `repeats: K`), its
    distinct answers with their counts, and the first answer's output. Texts come from
    the predictions; when they are not here (`evalledger pull` fetches them) the rows
    have none and a note says so. --flips A B lists instead the items one model got
    right and the other wrong, on every benchmark both ran; `noisy@main noisy` pairs a
    model with itself at another revision.
    """
    from evalledger.ledger.items import find_flips, item_view

    ledger = open_ledger(ctx)
    if flips:
        _print_flips(find_flips(ledger, flips[0], flips[1], rev)[:limit], flips, as_json)
        return
    if cell is None:
        raise click.UsageError("give a CELL (e.g. noisy/arith) or --flips A B")
    view = item_view(ledger, cell, rev)
    found = [a for a in view.items if _keep(a, wrong, errored, category, pattern, disagree)]
    found = found[:limit]
    if view.note and not as_json:
        click.echo(view.note, err=True)
    if as_json:
        click.echo(json.dumps({"cell": cell, "revision": view.revision, "note": view.note,
                               "items": [a.to_json() for a in found]}, indent=2))  # fmt: skip
    elif as_csv:
        click.echo(_csv(found), nl=False)
    else:
        rows = [[a.id, a.category, str(a.target), f"{a.correct}/{a.samples}", str(a.distinct),
                 _answers(a)] for a in found]  # fmt: skip
        print_table(["item", "category", "target", "right", "distinct", "answers"], rows)


def _keep(a: ItemAnswers, wrong: bool, errored: bool, category: str | None,
          pattern: str | None, disagree: bool) -> bool:  # fmt: skip
    if wrong and a.right:
        return False
    if errored and not a.errors:
        return False
    if category is not None and a.category != category:
        return False
    if disagree and a.distinct < 2:
        return False
    if pattern is not None:
        texts = [a.id, a.prompt, a.output, a.target, a.error, *(x for x, _ in a.answers)]
        return any(pattern.lower() in str(t).lower() for t in texts if t is not None)
    return True


def _answers(a: ItemAnswers) -> str:
    return ", ".join(f"{ans} x{n}" for ans, n in a.answers) or "-"


def _csv(found: list[ItemAnswers]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_CSV)
    for a in found:
        writer.writerow([a.id, a.category, a.target, a.samples, a.correct, a.errors,
                         a.distinct, _answers(a), a.output, a.error])  # fmt: skip
    return buf.getvalue()


def _print_flips(found: list[Any], names: tuple[str, str], as_json: bool) -> None:
    a, b = names
    if as_json:
        click.echo(json.dumps([{"benchmark": bench, "id": x.id, a: x.right, b: y.right,
                                "target": x.target, "outputs": {a: x.output, b: y.output}}
                               for bench, x, y in found], indent=2))  # fmt: skip
        return
    rows = [[bench, x.id, "right" if x.right else "wrong", "right" if y.right else "wrong",
             str(x.target)] for bench, x, y in found]  # fmt: skip
    print_table(["benchmark", "item", a, b, "target"], rows)
