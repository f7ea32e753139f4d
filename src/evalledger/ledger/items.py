"""One cell's answers item by item (``evalledger items``), at any revision, and flips.

For each question: its category, target, how many answers it got (K with ``repeats:
K``), how many were right or errored, and its distinct answers with their counts, most
common first. Correctness comes from the cell's scores file at the revision (git
objects, or the working tree). Texts come from its predictions: the workspace file, or
at another revision the DVC cache object whose md5 that revision's dvc.lock records.
When neither is there, the rows have no texts and :attr:`ItemView.note` says to run
``evalledger pull``.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalledger.errors import ConfigError
from evalledger.plugin_types import question_of

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger, Snapshot
    from evalledger.project import Project

__all__ = ["ItemAnswers", "ItemView", "find_flips", "item_answers", "item_view", "predictions_at"]


@dataclass
class ItemAnswers:
    """One question's answers."""

    id: str
    target: str | None
    category: str = ""
    samples: int = 0
    correct: int = 0
    errors: int = 0
    answers: list[tuple[str | None, int]] = field(default_factory=list)
    """(extracted answer, how many times), most common first; None when none was found."""
    prompt: str | None = None
    output: str | None = None
    """The first answer's full output."""
    error: str | None = None

    @property
    def distinct(self) -> int:
        """How many different answers it got."""
        return len(self.answers)

    @property
    def right(self) -> bool:
        """Every answer was scored and right."""
        return self.samples > 0 and self.correct == self.samples

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"id": self.id, "category": self.category, "target": self.target,
                "samples": self.samples, "correct": self.correct, "errors": self.errors,
                "distinct": self.distinct,
                "answers": [{"answer": a, "count": n} for a, n in self.answers],
                "prompt": self.prompt, "output": self.output, "error": self.error}  # fmt: skip


@dataclass
class ItemView:
    """A cell's items at a revision, and why texts are missing (if they are)."""

    cell: str
    revision: str
    items: list[ItemAnswers]
    note: str | None = None


def predictions_at(snap: Snapshot, key: str) -> bytes | None:
    """The predictions file of the cell as the revision recorded it, if it is here."""
    import hashlib

    from evalledger.ledger.health import lock_entries

    rel = f"predictions/{key}.jsonl"
    path = snap.ledger.project.root / rel
    local = path.read_bytes() if path.is_file() else None
    if snap.commit is None:
        return local
    md5 = None
    for entry in (lock_entries(snap) or {}).values():  # stage -> {"outs": {path: md5}}
        outs = entry.get("outs") if isinstance(entry, dict) else None
        if isinstance(outs, dict) and rel in outs:
            md5 = outs[rel]
    if not isinstance(md5, str) or len(md5) != 32:
        return None
    if local is not None and hashlib.md5(local).hexdigest() == md5:
        return local
    cached = snap.ledger.project.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return cached.read_bytes() if cached.is_file() else None


def item_view(ledger: Ledger, key: str, rev: str | None = None) -> ItemView:
    """The cell ``key``'s questions at ``rev`` (default: the workspace), in file order."""
    snap = ledger.snapshot(rev)
    scores = snap.raw([f"metrics/{key}.scores.csv"]).get(f"metrics/{key}.scores.csv")
    if scores is None:
        known = ", ".join(list(snap.cells)[:5]) or "none"
        raise ConfigError(f"no cell {key!r} at {snap.label} (no metrics/{key}.scores.csv)",
                          f"cells: {known}")  # fmt: skip
    found: dict[str, ItemAnswers] = {}
    correct: dict[tuple[str, int | None], bool] = {}
    for row in csv.DictReader(io.StringIO(scores.decode("utf-8", errors="replace"))):
        sample = int(row["sample"]) if row.get("sample") not in (None, "") else None
        entry = found.setdefault(row["id"], ItemAnswers(row["id"], None, row.get("category", "")))
        entry.samples += 1
        if row.get("error"):
            entry.errors += 1
            entry.error = entry.error or row["error"]
        else:
            entry.correct += row.get("correct") == "1"
        correct[(row["id"], sample)] = row.get("correct") == "1"
    preds = predictions_at(snap, key)
    counts: dict[str, Counter[str | None]] = {}
    for line in (preds or b"").decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        question, sample = question_of(str(rec["id"]))
        if sample is not None and (question, sample) not in correct:
            question = str(rec["id"])  # an id that only looks like q#s
        got = found.get(question)
        if got is None:
            continue
        entry = got
        entry.target = rec.get("target")
        if entry.prompt is None:
            entry.prompt, entry.output = rec.get("prompt"), rec.get("output")
        if not rec.get("error"):
            counts.setdefault(question, Counter())[rec.get("extracted")] += 1
    for question, entry in found.items():
        entry.answers = counts.get(question, Counter()).most_common()
    note = None
    if preds is None:
        note = (f"predictions/{key}.jsonl of {snap.label} is not here, so items have no "
                "texts: run `evalledger pull`")  # fmt: skip
    return ItemView(key, snap.label, list(found.values()), note)


def item_answers(project: Project, key: str) -> list[ItemAnswers]:
    """The cell ``key``'s questions in the workspace (see :func:`item_view`)."""
    from evalledger.ledger.history import Ledger

    with Ledger(project) as ledger:
        return item_view(ledger, key).items


def find_flips(
    ledger: Ledger, a: str, b: str, rev: str | None = None
) -> list[tuple[str, ItemAnswers, ItemAnswers]]:
    """(benchmark, A's item, B's item) where one of A and B is right and the other not.

    ``a`` and ``b`` are what a leaderboard ranks: a cell key without its benchmark
    (``solver``, or ``solver/cot/treatment``), at ``rev``, or at another revision as
    ``solver@HEAD~1``; items are paired on each benchmark both have. Errored items are
    left out.
    """
    sides = [_side(ledger, name, rev) for name in (a, b)]
    out = []
    (left_rev, left_cells), (right_rev, right_cells) = sides
    for bench in sorted(set(left_cells) & set(right_cells)):
        left = {i.id: i for i in item_view(ledger, left_cells[bench], left_rev).items}
        right = {i.id: i for i in item_view(ledger, right_cells[bench], right_rev).items}
        for item_id, x in left.items():
            y = right.get(item_id)
            if y is None or x.errors or y.errors:
                continue
            if x.right != y.right:
                out.append((bench, x, y))
    out.sort(key=lambda f: (not f[1].right, f[0], f[1].id))  # A right, B wrong first
    return out


def _side(ledger: Ledger, name: str, rev: str | None) -> tuple[str | None, dict[str, str]]:
    """``model`` or ``model@REV``: the revision, and benchmark -> that model's cell key."""
    system, at, other = name.partition("@")
    side_rev = other if at else rev
    snap = ledger.snapshot(side_rev)
    systems: dict[str, dict[str, str]] = {}
    for key, cell in snap.cells.items():
        found = "/".join(v for axis, v in cell.axes.items() if axis != "benchmark")
        systems.setdefault(found, {})[cell.axes.get("benchmark", "")] = key
    if system not in systems:
        raise ConfigError(f"no model {system!r} at {snap.label}",
                          f"models: {', '.join(sorted(systems)) or 'none'}; "
                          "name another revision as MODEL@REV")  # fmt: skip
    return side_rev, systems[system]
