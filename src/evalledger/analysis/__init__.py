"""Judging what the ledger holds: diffs, comparisons, leaderboards and paired significance tests.

Pure functions over :mod:`evalledger.ledger` snapshots; pandas and scipy load inside them.
May import the core and ``ledger/``.
"""
