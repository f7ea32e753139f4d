"""Numbers and text for tables: compact values, p-values, Markdown that cannot break out."""

from __future__ import annotations

import math
import re

__all__ = ["format_p", "format_value", "md_code", "md_text"]


def format_value(value: float | None, signed: bool = False) -> str:
    """A compact number for tables: 4 significant decimals, ``-`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == int(value) and abs(value) >= 1000:
        text = f"{value:+,.0f}" if signed else f"{value:,.0f}"
    else:
        text = f"{value:+.4g}" if signed else f"{value:.4g}"
    return text


def md_code(text: object) -> str:
    """``text`` as a Markdown code span that no backtick in it can close, safe in tables.

    The fence is one backtick longer than the longest run inside (CommonMark), ``|`` is
    escaped for GitHub tables, and line breaks become spaces.
    """
    body = " ".join(str(text).splitlines()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def md_text(text: object) -> str:
    """``text`` as Markdown table-cell text: backslash, backtick, ``* | < > [ ]`` escaped.

    ``_`` is left alone: GitHub Markdown does not emphasise inside words.
    """
    body = " ".join(str(text).splitlines())
    return re.sub(r"([\\`*|<>\[\]])", r"\\\1", body)


def format_p(p: float | None) -> str:
    """A p-value for tables."""
    if p is None or math.isnan(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"
