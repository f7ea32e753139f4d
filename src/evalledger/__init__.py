"""evalledger: a git-native, file-based ledger of model evaluations, laid out as DVC.

The public Python API. Names load lazily, so ``import evalledger`` stays cheap::

    from evalledger import Project, RunOptions, run, load_execution

    project = Project.find(".")
    result = run(project, RunOptions(filters={"model": ["solver"]}))
    print(load_execution(project, None).summary())

    df = evalledger.load(["HEAD~1", "HEAD"])      # tidy metrics across revisions
    with evalledger.Ledger(project) as ledger:     # history straight from git objects
        print(evalledger.diff_revisions(ledger, "HEAD~1", "HEAD").to_markdown())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalledger.errors import EvalLedgerError

if TYPE_CHECKING:
    from evalledger.analysis.compare import compare_sides
    from evalledger.analysis.dataframe import load
    from evalledger.analysis.diff import LedgerDiff, diff_revisions
    from evalledger.analysis.leaderboard import Leaderboard, build_leaderboard
    from evalledger.analysis.paired import PairedResult
    from evalledger.analysis.pairing import run_significance
    from evalledger.analysis.significance import compare_paired
    from evalledger.benchmarks.base import Benchmark
    from evalledger.execution.cell import CellResult, execute_cell
    from evalledger.execution.executions import execution_ids, latest_execution_id, load_execution
    from evalledger.execution.plan import RunOptions, RunPlan, plan_run
    from evalledger.execution.runner import RunResult, run
    from evalledger.execution.scaffold import init_project
    from evalledger.ledger.history import Ledger, Snapshot
    from evalledger.manifest import CellRecord, ExecutionManifest
    from evalledger.models.base import Model
    from evalledger.plugin_types import AgentRecord, Completion, Item, ItemScore
    from evalledger.project import Project
    from evalledger.track.evaluate import evaluate
    from evalledger.track.tracker import ExperimentConfig, Tracker

__all__ = [
    "AgentRecord",
    "Benchmark",
    "CellRecord",
    "CellResult",
    "Completion",
    "EvalLedgerError",
    "ExecutionManifest",
    "ExperimentConfig",
    "Item",
    "ItemScore",
    "Leaderboard",
    "Ledger",
    "LedgerDiff",
    "Model",
    "PairedResult",
    "Project",
    "RunOptions",
    "RunPlan",
    "RunResult",
    "Snapshot",
    "Tracker",
    "__version__",
    "build_leaderboard",
    "compare_paired",
    "compare_sides",
    "diff_revisions",
    "evaluate",
    "execute_cell",
    "execution_ids",
    "init_project",
    "latest_execution_id",
    "load",
    "load_execution",
    "plan_run",
    "run",
    "run_significance",
]

__version__ = "0.1.0.dev0"

_LAZY = {
    "Project": "evalledger.project",
    "Benchmark": "evalledger.benchmarks.base",
    "Item": "evalledger.plugin_types",
    "ItemScore": "evalledger.plugin_types",
    "CellResult": "evalledger.execution.cell",
    "execute_cell": "evalledger.execution.cell",
    "execution_ids": "evalledger.execution.executions",
    "latest_execution_id": "evalledger.execution.executions",
    "load_execution": "evalledger.execution.executions",
    "CellRecord": "evalledger.manifest",
    "ExecutionManifest": "evalledger.manifest",
    "Completion": "evalledger.plugin_types",
    "AgentRecord": "evalledger.plugin_types",
    "Model": "evalledger.models.base",
    "RunOptions": "evalledger.execution.plan",
    "RunPlan": "evalledger.execution.plan",
    "RunResult": "evalledger.execution.runner",
    "plan_run": "evalledger.execution.plan",
    "run": "evalledger.execution.runner",
    "init_project": "evalledger.execution.scaffold",
    "Ledger": "evalledger.ledger.history",
    "Snapshot": "evalledger.ledger.history",
    "LedgerDiff": "evalledger.analysis.diff",
    "diff_revisions": "evalledger.analysis.diff",
    "Leaderboard": "evalledger.analysis.leaderboard",
    "build_leaderboard": "evalledger.analysis.leaderboard",
    "compare_sides": "evalledger.analysis.compare",
    "load": "evalledger.analysis.dataframe",
    "run_significance": "evalledger.analysis.pairing",
    "PairedResult": "evalledger.analysis.paired",
    "compare_paired": "evalledger.analysis.significance",
    "ExperimentConfig": "evalledger.track.tracker",
    "Tracker": "evalledger.track.tracker",
    "evaluate": "evalledger.track.evaluate",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalledger' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
