"""Values in metric files: nested mappings as dotted keys, and numbers among them.

Every reader of ``metrics/*.json`` (listing, diff, leaderboard, compare, mirrors...)
uses these, so a value means the same thing wherever it is shown.
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_number", "flatten"]


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                out.update(flatten(value, name))
            else:
                out[name] = value
    elif prefix:
        out[prefix] = data
    return out


def as_number(value: Any) -> float | None:
    """A metric value as a float, or None for anything that is not a number (or a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
