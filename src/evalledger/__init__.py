"""evalledger: a git-native, file-based ledger of model evaluations, laid out as DVC.

The public Python API. Heavy modules load only when a function that needs them runs.
"""

from __future__ import annotations

from evalledger.errors import EvalLedgerError
from evalledger.project import Project

__all__ = ["EvalLedgerError", "Project", "__version__"]

__version__ = "0.1.0.dev0"
