"""The ledger as a tidy pandas DataFrame, for notebooks: one row per cell, metric, revision."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalledger.ledger.history import Ledger
from evalledger.metrics import as_number, flatten
from evalledger.params import canonical_axes
from evalledger.project import Project

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

__all__ = ["load"]


def load(
    revs: list[str] | str | None = None,
    *,
    metrics: list[str] | None = None,
    project: Project | Path | str | None = None,
) -> pd.DataFrame:
    """Cell metrics at one or more revisions as a tidy DataFrame.

    Columns: ``rev``, ``commit`` (missing, NaN, for the workspace), ``cell``, one column per axis
    (``model``, ``benchmark``, ...), ``metric`` (dotted for nested metrics, e.g.
    ``latency_ms.p50``) and ``value``. ``revs`` defaults to the workspace; ``metrics``
    keeps only those metrics. Pivot it as you like, e.g.
    ``df.pivot_table(index="model", columns="benchmark", values="value")``.
    """
    import pandas as pd

    proj = project if isinstance(project, Project) else Project.find(project)
    wanted = [revs] if isinstance(revs, str) else (revs or [None])  # type: ignore[list-item]
    rows: list[dict[str, object]] = []
    axis_names: list[str] = []
    with Ledger(proj) as ledger:
        for rev in wanted:
            snap = ledger.snapshot(rev)
            for key, data in snap.metrics().items():
                axes = snap.cells[key].axes
                axis_names += [a for a in axes if a not in axis_names]
                for metric, raw in flatten(data).items():
                    value = as_number(raw)
                    if value is None or (metrics and metric not in metrics):
                        continue
                    rows.append({"rev": snap.label, "commit": snap.commit, "cell": key, **axes,
                                 "metric": metric, "value": value})  # fmt: skip
    axis_cols = canonical_axes(axis_names)
    columns = ["rev", "commit", "cell", *axis_cols, "metric", "value"]
    return pd.DataFrame(rows, columns=columns)
