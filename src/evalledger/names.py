"""The one rule for names that become paths: axis values, experiment and benchmark names.

A name starts with a letter or digit, then letters, digits, ``_``, ``+``, ``-`` or ``.``,
where a ``.`` is never doubled nor last (``gpt-4.1``, ``v1.2-rc``); the whole text must
match (no trailing newline). That is DVC's rule for experiment names (and git's for a
ref's part), plus ``+``. Names become folders and files below ``metrics/`` and
``predictions/``, DVC stage names and code spans in Markdown, so this rule keeps out path
separators, ``.``/``..`` and hidden names, control characters and backticks wherever a
name enters: params.yaml, the Tracker, manifests from git, and imports.

Axis values in params.yaml are stricter (``check_name(..., dots=False)``, the default):
dvc.yaml declares each cell's params as ``models.<name>``, and DVC reads a dot in a
params key as one more level.
"""

from __future__ import annotations

import re
from typing import Any

from evalledger.errors import ConfigError, EvalLedgerError

__all__ = ["AXIS_HINT", "NAME_HINT", "check_name", "did_you_mean", "is_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")
_DOTTED = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_+-]|\.(?=[A-Za-z0-9_+-]))*")
#: What a valid name looks like, for error hints.
NAME_HINT = (
    "start with a letter or digit; then letters, digits, '_', '+', '-' or '.' "
    "(no '..', not ending in '.')"
)
#: What a valid name of params.yaml (an axis value, no dots) looks like.
AXIS_HINT = "start with a letter or digit; then letters, digits, '_', '+' or '-' (no '.')"


def is_name(value: object, *, dots: bool = True) -> bool:
    """Whether ``value`` is a string that is a valid name (with ``dots``, dotted ones too).

    Readers (manifests, cells) take dotted names, which the Tracker may write.
    """
    pattern = _DOTTED if dots else _NAME
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def check_name(
    kind: str,
    value: Any,
    error: type[EvalLedgerError] = ConfigError,
    *,
    numbers: bool = False,
    dots: bool = False,
) -> str:
    """``value`` as a name, or ``error`` naming ``kind`` (e.g. "model name").

    With ``numbers``, an int (a YAML value such as ``axes: {seed: [1, 2]}``) is taken as
    its text. With ``dots``, single dots are allowed (experiment and benchmark names).
    """
    hint = NAME_HINT if dots else AXIS_HINT
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise error(f"{kind} {value!r} must be a string", hint)
    if not is_name(value, dots=dots):
        raise error(f"{kind} {value!r} is not allowed", hint)
    return value


def did_you_mean(name: str, known: list[str]) -> str:
    """``did you mean 'x'? `` for the closest of ``known`` to ``name``, else nothing."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""
