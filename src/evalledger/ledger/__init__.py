"""Reading the ledger: executions, metrics and per-item scores at any revision, from git objects.

Also the few edits of the ledger itself (delete, export/import) and duplicate detection.
May import the core (the top-level modules) only.
"""
