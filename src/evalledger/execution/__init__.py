"""Running the matrix: plan an execution, evaluate its cells in parallel, record dvc.lock.

Also the item checkpoints that make a killed run resumable, project scaffolding, and
``revert`` (params.yaml back to an old execution's configuration).
May import the core, the plugin registry and packages, and ``ledger/`` (duplicate warnings).
Named ``execution`` rather than ``run``, which would shadow the public ``evalledger.run``.
"""
