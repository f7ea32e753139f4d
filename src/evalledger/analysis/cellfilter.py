"""Cell filters: the ``--models a,b --benchmarks x`` selection every command shares.

A filter maps an axis (``model``, ``benchmark``, ``prompt_set``, ``decoding``) to the
values to keep; a cell matches when each filtered axis has one of its values. An axis
with no values filters nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from evalledger.errors import ConfigError, EvalLedgerError

__all__ = ["CellFilter", "check_filter", "matches", "merge_filter"]

#: Axis -> the values to keep.
CellFilter = Mapping[str, Sequence[str]]


def merge_filter(
    filters: CellFilter | None, benchmarks: Sequence[str] | None
) -> dict[str, list[str]]:
    """``filters`` with the older ``benchmarks`` argument folded in; empty axes dropped."""
    merged = {axis: list(values) for axis, values in (filters or {}).items() if values}
    if benchmarks:
        merged["benchmark"] = list(dict.fromkeys([*merged.get("benchmark", []), *benchmarks]))
    return merged


def matches(axes: Mapping[str, str], filters: CellFilter | None) -> bool:
    """Whether a cell with these axis values is kept by ``filters``."""
    return all(axes.get(axis) in values for axis, values in (filters or {}).items() if values)


def check_filter(
    filters: CellFilter | None,
    cells: Iterable[Mapping[str, str]],
    error: type[EvalLedgerError] = ConfigError,
) -> None:
    """Refuse a filter value that no cell has, with a close match and the known values.

    ``cells`` are the axis values of every cell the command could select. With no cells
    at all nothing is refused: the command says there is nothing to show.
    """
    known: dict[str, set[str]] = {}
    for axes in cells:
        for axis, value in axes.items():
            known.setdefault(axis, set()).add(value)
    if not known:
        return
    for axis, values in (filters or {}).items():
        names = sorted(known.get(axis, ()))
        for value in values:
            if value in names:
                continue
            close = difflib.get_close_matches(value, names, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise error(
                f"unknown {axis.replace('_', ' ')} {value!r}",
                f"{hint}known: {', '.join(names) or f'none (no cell has a {axis})'}",
            )
