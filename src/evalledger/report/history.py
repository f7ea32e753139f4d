"""The report's History view: every cell's metric over the git history.

One ``git log`` walk over ``metrics/`` (first parent from the revision) finds each
version of every cell's metrics file; the blobs are read in one batch. A point holds
the value, its 95% Wilson interval (for proportions with an ``n``), and the commit, its
author and its subject, shown on hover.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evalledger.analysis.intervals import wilson_interval
from evalledger.metrics import as_number, flatten

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger

__all__ = ["HISTORY_CAP", "history_points"]

#: The most points the page embeds (the newest are kept).
HISTORY_CAP = 10_000
_Z = 1.959963984540054


def _cell_key(path: str) -> str | None:
    if not path.startswith("metrics/") or not path.endswith(".json"):
        return None
    key = path[len("metrics/") : -len(".json")]
    parts = key.split("/")
    if parts[0].startswith("_") or len(parts) < 2:
        return None
    return key


def history_points(ledger: Ledger, rev: str | None, metric: str) -> list[dict[str, Any]]:
    """Points of ``metric`` for every committed version of every cell, oldest first."""
    git = ledger.git
    if not git.has_commits:
        return []
    start = git.resolve(rev) if rev else "HEAD"
    changes = [c for c in git.log_changes(["metrics"], [start])
               if c.new is not None and _cell_key(c.path)]  # fmt: skip
    changes = changes[:HISTORY_CAP]
    blobs = git.read_blobs({c.new for c in changes if c.new})
    details = git.commit_details({c.commit for c in changes})
    points = []
    for c in reversed(changes):
        key = _cell_key(c.path)
        try:
            data = json.loads(blobs.get(c.new or "", b"null"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if key is None or not isinstance(data, dict):
            continue
        value = as_number(flatten(data).get(metric))
        if value is None:
            continue
        n = data.get("scored", data.get("n"))
        low = high = None
        if isinstance(n, int) and n > 0 and 0 <= value <= 1 and "repeats" not in data:
            low, high = wilson_interval(value, n, _Z)
        when, author, subject = details.get(c.commit, (c.time, "", ""))
        parts = key.split("/")
        points.append({
            "cell": key, "benchmark": parts[1],
            "system": "/".join(p for i, p in enumerate(parts) if i != 1),
            "commit": c.commit[:10], "author": author[:40], "subject": subject[:80],
            "time": datetime.fromtimestamp(when, UTC).isoformat(),
            "value": value, "low": low, "high": high, "n": n,
        })  # fmt: skip
    return points
