"""The one root error of evalledger and its subclasses.

Library code raises these; only the CLI root turns them into a one-line message and an
exit code, so a user never sees a traceback for an expected failure.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CELLS_FAILED",
    "EXIT_CODES",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_NOTHING_TO_RESUME",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "EXIT_USAGE",
    "CellError",
    "ConfigError",
    "CorruptFileError",
    "EvalLedgerError",
    "InterruptedRun",
    "NotAProjectError",
    "NothingToResumeError",
    "RegressionError",
    "RunLockedError",
    "StatsError",
    "UnknownExecutionError",
    "UnknownRevisionError",
    "UnsafePathError",
    "describe",
    "notice",
]

EXIT_OK = 0
#: Cells failed (or a git or DVC step did); also any error without a code of its own.
EXIT_CELLS_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_TO_RESUME = 3
EXIT_LOCKED = 4
#: `evalledger diff --fail-on-regression` found a regression (a CI gate).
EXIT_REGRESSION = 5
#: An unexpected error: a bug, reported as one line (EVALLEDGER_DEBUG=1 shows the traceback).
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

#: The one table of exit codes: code -> meaning, as the README's "Exit codes" table shows
#: it (a test checks the two are the same, and runs each case).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: 'success (including "everything already completed" on resume)',
    EXIT_CELLS_FAILED: "the run finished but some cells failed; `evalledger run --resume` "
    "re-runs them (also: a git or DVC step failed)",
    EXIT_USAGE: "bad input: params.yaml, dvc.yaml, an option or an unknown execution ID",
    EXIT_NOTHING_TO_RESUME: "nothing to resume: no execution exists yet",
    EXIT_LOCKED: "another `evalledger run` holds the project's run lock",
    EXIT_REGRESSION: "`evalledger diff --fail-on-regression` failed: a regression, or a "
    "problem at B (a failed, stale or incomplete cell, an error-rate rise, a changed n, a "
    "damaged file)",
    EXIT_INTERNAL: "internal error (a bug): rerun with `EVALLEDGER_DEBUG=1` for the "
    "traceback and report it",
    EXIT_INTERRUPTED: "interrupted; resume with `evalledger run --resume`",
}


class EvalLedgerError(Exception):
    """Base of every expected evalledger failure: a message and a hint naming the fix."""

    exit_code = EXIT_CELLS_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        assert message
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and its hint on a single line."""
        text = " ".join(self.message.split())
        if self.hint:
            text += "; " + " ".join(self.hint.split())
        return text


class ConfigError(EvalLedgerError):
    """params.yaml, dvc.yaml or a command-line option is invalid."""

    exit_code = EXIT_USAGE


class CorruptFileError(EvalLedgerError):
    """A ledger or project file is damaged, truncated, too large or not what it should be.

    The message names the file; the hint names the fix (restore it from git, delete a
    cache, re-run the cell).
    """

    exit_code = EXIT_USAGE


class UnsafePathError(EvalLedgerError):
    """A path that a manifest, an import or a link would take outside the project."""

    exit_code = EXIT_USAGE


class NotAProjectError(EvalLedgerError):
    """The current directory is not inside an evalledger project."""

    exit_code = EXIT_USAGE


class UnknownExecutionError(EvalLedgerError):
    """No execution has the given ID."""

    exit_code = EXIT_USAGE


class NothingToResumeError(EvalLedgerError):
    """There is no execution to resume."""

    exit_code = EXIT_NOTHING_TO_RESUME


class RunLockedError(EvalLedgerError):
    """Another evalledger run holds the project's run lock."""

    exit_code = EXIT_LOCKED


class CellError(EvalLedgerError):
    """A cell could not be evaluated."""


class InterruptedRun(EvalLedgerError):
    """The run was interrupted before every cell finished."""

    exit_code = EXIT_INTERRUPTED


class UnknownRevisionError(EvalLedgerError):
    """A git revision (commit, branch, tag, experiment) does not exist."""

    exit_code = EXIT_USAGE


class StatsError(EvalLedgerError):
    """The data cannot support the requested statistic (e.g. McNemar on non-binary scores)."""

    exit_code = EXIT_USAGE


class RegressionError(EvalLedgerError):
    """A metric got significantly worse; raised for ``diff --fail-on-regression``."""

    exit_code = EXIT_REGRESSION


def describe(exc: BaseException) -> str:
    """An exception as one line, ``Type: message`` (whitespace folded)."""
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def notice(text: str) -> None:
    """Print one ``evalledger: ...`` line on stderr, for what must be said but is no error.

    For library code that carries on (a mirror dropped, a lock rebuilt, checkpoint
    lines dropped): the CLI's errors and warnings have their own paths.
    """
    import sys

    sys.stderr.write(f"evalledger: {text}\n")
    sys.stderr.flush()
