"""Pairing per-item scores of two score tables by item id, for paired statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from evalledger.errors import StatsError

if TYPE_CHECKING:
    from evalledger.scores import ScoreTable

__all__ = ["paired_arrays"]


def paired_arrays(
    a: ScoreTable, b: ScoreTable, column: str, cluster: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Values of ``column`` for the items both tables scored, in one order, and clusters.

    ``cluster`` names the label column to cluster on (``cluster`` or ``category``); by
    default the ``cluster`` column is used when the tables have one. Returns None when
    the tables share fewer than two items.
    """
    if column not in a.columns or column not in b.columns:
        known = ", ".join(sorted(set(a.columns) & set(b.columns))) or "none"
        raise StatsError(f"no per-item column {column!r} to compare; known: {known}")
    va, vb = a.values(column), b.values(column)
    ids = [i for i in va if i in vb]
    if len(ids) < 2:
        return None
    x = np.fromiter((va[i] for i in ids), dtype=float, count=len(ids))
    y = np.fromiter((vb[i] for i in ids), dtype=float, count=len(ids))
    labels = None
    if cluster is not None or b.cluster or a.cluster:
        name = cluster or "cluster"
        found = b.clusters(name) or a.clusters(name)
        if found is None:
            raise StatsError(
                f"no {name!r} labels in the per-item scores to cluster on",
                "use --cluster category, or add a cluster field to the benchmark",
            )
        labels = np.array([found.get(i, i) for i in ids], dtype=object)
    return x, y, labels
