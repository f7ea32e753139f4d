"""The CI gate of ``evalledger diff --fail-on-regression``: every reason a change is unsafe.

A regression of a gated metric is one reason. The others are what makes metrics lie
without moving: more items errored than before (accuracy is over the items that did
not), a cell whose latest attempt failed or was interrupted (its metrics are an older
run's), a stale cell (params.yaml changed and it was not re-run), a cell whose number of
items changed (the two values are not over the same items), and a metrics file that
could not be read. Each is one :class:`Problem` row with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalledger.metrics import as_number

if TYPE_CHECKING:
    from evalledger.ledger.health import CellHealth

__all__ = ["REASONS", "Problem", "find_problems"]

#: Every reason the gate fails, in the order rows are shown.
REASONS = ("regression", "failed", "stale", "incomplete", "error rate", "n changed", "unreadable")


@dataclass(frozen=True)
class Problem:
    """One reason the gate fails, for one cell."""

    cell: str
    reason: str
    """One of :data:`REASONS`."""
    detail: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"cell": self.cell, "reason": self.reason, "detail": self.detail}


def find_problems(
    health: dict[str, CellHealth],
    old: dict[str, dict[str, Any]],
    new: dict[str, dict[str, Any]],
    unreadable: list[str],
    *,
    max_error_rise: float = 0.0,
) -> list[Problem]:
    """The problems at the new revision, besides regressions (see the module docstring).

    ``old`` and ``new`` are the metrics of cells at both revisions (``old`` lacks the
    cells the new revision added); ``health`` is the new revision's.
    """
    found: list[Problem] = []
    for key, h in health.items():
        if key in unreadable:
            continue  # its damaged file is the problem, reported below
        if h.failed:
            found.append(Problem(key, "failed", _failure(h)))
        if h.stale:
            found.append(Problem(key, "stale", h.stale))
        if h.incomplete and not h.failed:
            found.append(Problem(key, "incomplete", h.incomplete))
    for key, data in new.items():
        before = old.get(key)
        rise = _error_rise(before, data)
        if rise is not None and rise[1] - rise[0] > max_error_rise:
            was, now = rise
            text = (f"{_pct(was)} -> {_pct(now)} of items errored" if before is not None
                    else f"{_pct(now)} of items errored in a new cell")  # fmt: skip
            if max_error_rise:
                text += f" (allowed rise {_pct(max_error_rise)})"
            found.append(Problem(key, "error rate", text))
        n_old = as_number(before.get("n")) if before else None
        n_new = as_number(data.get("n"))
        if n_old is not None and n_new is not None and n_old != n_new:
            found.append(Problem(key, "n changed", f"{n_old:g} -> {n_new:g} items: the values "
                                 "are not over the same items"))  # fmt: skip
    for key in unreadable:
        found.append(Problem(key, "unreadable", "a metrics file is damaged: restore it from git"))
    order = {r: i for i, r in enumerate(REASONS)}
    return sorted(found, key=lambda p: (order[p.reason], p.cell))


def _failure(h: CellHealth) -> str:
    first = (h.failed or "").splitlines()[0][:200] if h.failed else ""
    if not h.has_results:
        return f"no results: {first}"
    return f"latest attempt failed, metrics are an older run's: {first}"


def _error_rise(before: dict[str, Any] | None, after: dict[str, Any]) -> tuple[float, float] | None:
    now = as_number(after.get("error_rate"))
    if now is None:
        return None
    was = as_number(before.get("error_rate")) if before is not None else 0.0
    return (was or 0.0, now)


def _pct(x: float) -> str:
    return f"{x:.1%}"
