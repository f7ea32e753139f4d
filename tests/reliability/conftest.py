"""The reliability suite: kills, corruptions, hostile files and echoed secrets.

Each trial reports its outcome through the ``reliability`` fixture, and the run ends
with one summary line of the figures (kills survived, corruption cases handled, secrets
found), which the closing notes quote::

    reliability: kills survived 14/14; corruption cases handled 96/96; secrets found 0 in 5 scans

A trial records its outcome before it asserts, so a failing trial still counts as one.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

#: kind -> (trials, passed); "secret" counts scans and the secrets found in them.
_TALLY: dict[str, Counter[str]] = {}
_LABELS = {
    "kill": "kills survived",
    "corruption": "corruption cases handled",
    "traversal": "traversal attempts refused",
}


def record(kind: str, ok: bool, found: int = 0) -> None:
    """Count one trial of ``kind``; for ``secret`` scans, ``found`` is the secrets seen."""
    tally = _TALLY.setdefault(kind, Counter())
    tally["trials"] += 1
    tally["passed"] += int(ok)
    tally["found"] += found


@pytest.fixture
def reliability() -> Callable[..., None]:
    """``reliability(kind, ok, found=0)``: count a trial in the suite's summary line."""
    return record


def summary_line() -> str | None:
    """The figures of this run, or None when no reliability trial ran."""
    if not _TALLY:
        return None
    parts = []
    for kind, label in _LABELS.items():
        if kind in _TALLY:
            t = _TALLY[kind]
            parts.append(f"{label} {t['passed']}/{t['trials']}")
    if "secret" in _TALLY:
        t = _TALLY["secret"]
        parts.append(f"secrets found {t['found']} in {t['trials']} scans")
    return "reliability: " + "; ".join(parts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = summary_line()
    if line is not None:
        terminalreporter.write_line(line)
