"""An execution's aggregate report in Markdown: ``evalledger show ID --md``.

Seed 002's ``aggregate_report.md``: the execution (command, git, when), one row per
trial (cell) with its n, accuracy and 95% interval, errors, cost and latency, the
totals, the agents of multi-agent cells, and, when its cells have a ``condition`` axis,
the treatment effect of each condition against the first one per model (paired tests
on per-item scores, Holm-adjusted together).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from evalledger.analysis.formatting import format_p, format_value, md_code, md_text
from evalledger.analysis.intervals import wilson_interval
from evalledger.errors import StatsError
from evalledger.params import canonical_axes

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger, Snapshot
    from evalledger.ledger.listing import ExecutionView

__all__ = ["CONDITION_AXIS", "execution_markdown"]

#: The axis whose values are compared against its first one.
CONDITION_AXIS = "condition"
_Z = 1.959963984540054


def _interval(snap: Snapshot, key: str, metrics: dict[str, Any]) -> tuple[float, float] | None:
    """95% interval of the cell's accuracy: Wilson for 0/1 items, else over item means."""
    from evalledger.ledger.scores import summarize

    table = snap.scores(key) if key in snap.cells else None
    summary = summarize(table).get("correct") if table is not None else None
    if summary and summary["n"] >= 1:
        n, mean, sd = int(summary["n"]), summary["mean"], summary["sd"]
        if math.isclose(sd * sd, n * mean * (1 - mean) / (n - 1) if n > 1 else 0.0,
                        abs_tol=1e-12):  # fmt: skip
            return wilson_interval(mean, n, _Z)
        se = sd / math.sqrt(n)
        return max(0.0, mean - _Z * se), min(1.0, mean + _Z * se)
    scored = metrics.get("scored", metrics.get("n"))
    acc = metrics.get("accuracy")
    if isinstance(scored, int) and scored > 0 and isinstance(acc, int | float):
        return wilson_interval(float(acc), scored, _Z)
    return None


def _trials(view: ExecutionView, snap: Snapshot) -> tuple[list[str], dict[str, float]]:
    recs = view.manifest.cells
    axes = canonical_axes(a for rec in recs.values() for a in rec.axes)
    lines = ["### Trials", "",
             "| " + " | ".join([*axes, "status", "n", "accuracy", "95% CI", "errors", "cost",
                                "p50 latency (ms)"]) + " |",
             "|" + "---|" * len(axes) + "---|---:|---:|---|---:|---:|---:|"]  # fmt: skip
    totals = {"cost": 0.0, "prompt_tokens": 0.0, "completion_tokens": 0.0, "items": 0.0}
    for key, rec in recs.items():
        metrics = view.results.get(key) or {}
        ci = _interval(snap, key, metrics) if metrics else None
        ci_text = f"[{format_value(ci[0])}, {format_value(ci[1])}]" if ci else "-"
        latency = (metrics.get("latency_ms") or {}).get("p50")
        cells = [md_text(rec.axes.get(a, "")) for a in axes]
        lines.append("| " + " | ".join([
            *cells, rec.status.value, str(metrics.get("n", "-")),
            format_value(metrics.get("accuracy")), ci_text, str(metrics.get("errors", "-")),
            format_value(metrics.get("cost")), format_value(latency),
        ]) + " |")  # fmt: skip
        for name in ("cost", "prompt_tokens", "completion_tokens"):
            value = metrics.get(name)
            if isinstance(value, int | float):
                totals[name] += float(value)
        totals["items"] += float(metrics.get("n") or 0)
    return [*lines, ""], totals


def _agents(view: ExecutionView) -> list[str]:
    rows = [(key, name, a) for key, m in view.results.items() if m
            for name, a in (m.get("agents") or {}).items()]  # fmt: skip
    if not rows:
        return []
    lines = ["### Agents", "", "| cell | agent | success rate | n | mean latency (ms) | cost |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {md_code(k)} | {md_text(n)} | {format_value(a.get('success_rate'))} | "
              f"{a.get('n')} | {format_value(a.get('mean_latency_ms'))} | "
              f"{format_value(a.get('cost'))} |" for k, n, a in rows]  # fmt: skip
    return [*lines, ""]


def _conditions(ledger: Ledger, view: ExecutionView) -> list[str]:
    from evalledger.analysis.pairing import run_significance

    values = list(dict.fromkeys(rec.axes[CONDITION_AXIS] for rec in view.manifest.cells.values()
                                if CONDITION_AXIS in rec.axes))  # fmt: skip
    if len(values) < 2:
        return []
    models = sorted({rec.axes.get("model", "") for rec in view.manifest.cells.values()})
    operands = [f"{CONDITION_AXIS}={v}" for v in values]
    try:
        rev = None if view.revision == "workspace" else view.revision
        report = run_significance(ledger, operands, rev=rev, filters={"model": models})
    except StatsError as exc:
        return ["### Conditions", "", f"No test: {md_text(exc.message)}", ""]
    control = operands[0]
    lines = ["### Conditions", "",
             f"Treatment effect on accuracy against `{control}`, paired on per-item scores; "
             f"p-values Holm-adjusted across all {len(report.comparisons)} tests.", "",
             "| condition | trial | control | treatment | change | 95% CI | p | p (Holm) | |",
             "|---|---|---:|---:|---:|---|---:|---:|---|"]  # fmt: skip
    for c in report.comparisons:
        if c.a != control:
            continue
        r = c.result
        mark = "significant" if r.significant(report.alpha) else ""
        lines.append(
            f"| {md_code(c.b)} | {md_code(c.unit)} | {format_value(r.mean_a)} | "
            f"{format_value(r.mean_b)} | {format_value(r.diff, True)} | "
            f"[{format_value(r.ci_low, True)}, {format_value(r.ci_high, True)}] | "
            f"{format_p(r.p_value)} | {format_p(r.p_adjusted)} | {mark} |"
        )
    return [*lines, ""]


def execution_markdown(ledger: Ledger, view: ExecutionView) -> str:
    """The aggregate report of one execution (see the module docstring)."""
    m, git = view.manifest, view.manifest.git
    snap = ledger.snapshot(None if view.revision == "workspace" else view.revision)
    lines = [f"## {m.execution_id}", "",
             f"**{view.status}**: {md_text(m.summary())}", "",
             f"- created {m.created_at:%Y-%m-%d %H:%M:%S} UTC",
             f"- command `{' '.join(m.command) or '-'}`",
             f"- git {md_code((git.commit or 'no commit')[:10])} on "
             f"{md_text(git.branch or 'detached HEAD')}{' (dirty)' if git.dirty else ''}",
             f"- results read at {md_code(view.revision)}", ""]  # fmt: skip
    if m.overrides:
        lines.insert(-1, f"- overrides `{' '.join(m.overrides)}`")
    trials, totals = _trials(view, snap)
    lines += trials
    lines += ["### Totals", "",
              f"- items: {int(totals['items'])}",
              f"- cost: {format_value(totals['cost'])}",
              f"- tokens: {int(totals['prompt_tokens'])} prompt, "
              f"{int(totals['completion_tokens'])} completion", ""]  # fmt: skip
    lines += _agents(view)
    lines += _conditions(ledger, view)
    return "\n".join(lines)
