"""The one rule for names that become paths: axis values, experiment and benchmark names.

A name starts with a letter or digit, then letters, digits, ``_``, ``+`` or ``-``; the
whole text must match (no trailing newline). Names become folders and files below
``metrics/`` and ``predictions/``, DVC stage names and code spans in Markdown, so this
rule keeps out path separators, ``.``/``..``, control characters and backticks wherever a
name enters: params.yaml, the Tracker, manifests from git, and imports.
"""

from __future__ import annotations

import re
from typing import Any

from evalledger.errors import ConfigError, EvalLedgerError

__all__ = ["NAME_HINT", "check_name", "is_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")
#: What a valid name looks like, for error hints.
NAME_HINT = "start with a letter or digit; then letters, digits, '_', '+' or '-'"


def is_name(value: object) -> bool:
    """Whether ``value`` is a string that is a valid name."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(
    kind: str, value: Any, error: type[EvalLedgerError] = ConfigError, *, numbers: bool = False
) -> str:
    """``value`` as a name, or ``error`` naming ``kind`` (e.g. "model name").

    With ``numbers``, an int (a YAML value such as ``axes: {seed: [1, 2]}``) is taken as
    its text.
    """
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise error(f"{kind} {value!r} must be a string", NAME_HINT)
    if not is_name(value):
        raise error(f"{kind} {value!r} is not allowed", NAME_HINT)
    return value
