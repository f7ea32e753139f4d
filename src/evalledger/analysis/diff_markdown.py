"""``evalledger diff --md``: the diff as a pull-request comment."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from evalledger.analysis.formatting import format_p, format_value, md_code, md_text

if TYPE_CHECKING:
    from evalledger.analysis.diff import LedgerDiff, MetricChange

__all__ = ["diff_markdown"]


def diff_markdown(d: LedgerDiff) -> str:
    """A pull-request comment: a summary line, significant changes first, marked."""
    conf = f"{d.confidence:.0%}"
    lines = [f"### evalledger diff: {md_code(d.a)} → {md_code(d.b)}", "",
             f"**{d.summary()}**", ""]  # fmt: skip
    significant = [c for c in d.ordered() if c.verdict != "changed"]
    other = [c for c in d.ordered() if c.verdict == "changed"]
    head = f"| | cell | metric | old | new | change | {conf} CI | p | n |"
    rule = "|---|---|---|---:|---:|---:|---|---:|---:|"
    for title, rows in (("Significant changes", significant), ("Other changes", other)):
        if not rows:
            continue
        lines += [f"#### {title}", "", head, rule]
        for c in rows:
            lines.append(_md_row(c))
        lines.append("")
    if d.problems:
        lines += ["#### Problems", "", "| | cell | reason | detail |", "|---|---|---|---|"]
        lines += [f"| ⚠️ | {md_code(p.cell)} | {p.reason} | {md_text(p.detail)} |"
                  for p in d.problems]  # fmt: skip
        lines.append("")
    if d.timings:  # collapsed: a re-run moves them and nothing else
        lines += [f"<details><summary>Timing changes in {len(d.timing_cells)} cells"
                  "</summary>", "", "| cell | metric | old | new | change |",
                  "|---|---|---:|---:|---:|"]  # fmt: skip
        lines += [f"| {md_code(c.cell)} | {md_text(c.metric)} | {format_value(c.old)} | "
                  f"{format_value(c.new)} | {format_value(c.change, True)} |"
                  for c in d.timings]  # fmt: skip
        lines += ["", "</details>", ""]
    if d.added or d.removed:
        lines += ["#### Cells added or removed", ""]
        lines += [f"- added {md_code(k)}" for k in d.added]
        lines += [f"- removed {md_code(k)}" for k in d.removed]
        lines.append("")
    if d.params:
        lines += ["#### Parameters", "", "| param | old | new |", "|---|---|---|"]
        for p in d.params:
            lines.append(f"| {md_code(p.key)} | {_md_param(p.old)} | {_md_param(p.new)} |")
        lines.append("")
    used = sorted({c.test.method for c in d.changes if c.test is not None})
    tests = f"paired {' / '.join(used)} tests on per-item scores" if used else "no tests"
    cells = f"{d.unchanged} cell{'s' if d.unchanged != 1 else ''} unchanged"
    lines.append(
        f"<sub>{tests}, alpha {d.alpha:g}; {cells}. 🟢 significant improvement, "
        "🔴 significant regression.</sub>"
    )
    for note in d.notes:
        lines.append(f"<sub>{note}</sub>")
    return "\n".join(lines) + "\n"


_MARK = {"improvement": "🟢", "regression": "🔴", "changed": ""}


def _md_row(c: MetricChange) -> str:
    t = c.test
    ci = f"[{format_value(t.ci_low, True)}, {format_value(t.ci_high, True)}]" if t else "-"
    return (
        f"| {_MARK[c.verdict]} | {md_code(c.cell)} | {md_text(c.metric)} | {format_value(c.old)} | "
        f"{format_value(c.new)} | {format_value(c.change, True)} | {ci} | "
        f"{format_p(t.p_value if t else None)} | {t.n if t else '-'} |"
    )


def _md_param(value: Any) -> str:
    if value is None:
        return "-"
    return md_code(json.dumps(value) if not isinstance(value, str) else value)
