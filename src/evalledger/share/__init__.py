"""Sharing and re-running the ledger elsewhere: remotes, reproduce in a worktree, sweeps.

``remote`` pushes and pulls git and DVC together, ``reproduce`` re-runs a commit's cells
in a temporary worktree (``verdicts`` judges each against the original), ``sweep``
queues ``-S`` grids as DVC experiments.
May import the core, ``ledger/``, ``analysis/`` and ``execution/``.
"""
