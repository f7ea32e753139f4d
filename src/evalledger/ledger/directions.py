"""Which way each metric is better at a revision: params.yaml, then tracked experiments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalledger.ledger.views import manifest_views
from evalledger.metrics import Directions

if TYPE_CHECKING:
    from evalledger.ledger.history import Snapshot

__all__ = ["directions_at"]


def directions_at(snap: Snapshot) -> Directions:
    """params.yaml's ``metrics:`` first, then what ``log_metrics(direction=...)`` recorded.

    Among experiments the newest says last. A damaged manifest is left out with a warning
    (its directions with it), as every reader of a revision does.
    """
    chosen = dict(Directions.from_params(snap.params).overrides)
    recorded: dict[str, str] = {}
    for _, manifest in sorted(manifest_views(snap).items()):
        recorded.update(manifest.directions)
    for name, way in recorded.items():
        chosen.setdefault(name, way)
    return Directions(chosen)
