"""Tracking training runs into the ledger: the Tracker, its step series and its config type.

May import the core, the plugin packages (mirrors), ``ledger/`` and ``execution/`` (an
evaluation logged from training becomes a cell like any other).
"""
