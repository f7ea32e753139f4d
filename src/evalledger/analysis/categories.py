"""Category metrics (``categories.<name>.accuracy``) over their own items.

A cell's metrics hold each category's accuracy; its interval, and any test of its
change, must use the items of that category only, so that n is the category's.
"""

from __future__ import annotations

from evalledger.ledger.scores import METRIC_COLUMNS, ScoreTable

__all__ = ["category_items", "category_of"]


def category_of(metric: str) -> tuple[str, str] | None:
    """``categories.<name>.<metric>`` -> (name, its per-item column), else None."""
    parts = metric.split(".")
    if len(parts) == 3 and parts[0] == "categories" and parts[2] in METRIC_COLUMNS:
        return parts[1], METRIC_COLUMNS[parts[2]]
    return None


def category_items(table: ScoreTable, category: str) -> ScoreTable:
    """The scored items of one category (no errored ones: the table has none)."""
    rows = [i for i, c in enumerate(table.category) if c == category]
    return ScoreTable(
        [table.ids[i] for i in rows],
        {name: [values[i] for i in rows] for name, values in table.columns.items()},
        [category] * len(rows),
        [table.cluster[i] for i in rows] if table.cluster else None,
    )
