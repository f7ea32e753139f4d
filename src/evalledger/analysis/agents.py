"""Agent metrics (``agents.<name>.success_rate``) of multi-agent systems, for rankings.

A cell's metrics hold, per agent, figures over the items that agent ran on: the interval
of its success rate must use that agent's n, not the cell's, as a category's uses the
category's. A model none of whose cells has the agent cannot be ranked on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalledger.analysis.cellfilter import matches
from evalledger.errors import ConfigError
from evalledger.metrics import AGENT_METRICS, agent_metric

if TYPE_CHECKING:
    from evalledger.analysis.cellfilter import CellFilter
    from evalledger.ledger.history import Snapshot

__all__ = ["agent_counts", "check_agent_metric"]


def agent_counts(data: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """The ``agents.<name>`` block (with its ``n``) behind an agent metric, else None."""
    agent = agent_metric(metric)
    agents = data.get("agents") if agent else None
    block = agents.get(agent[0]) if agent and isinstance(agents, dict) else None
    return block if isinstance(block, dict) else None


def check_agent_metric(snaps: list[Snapshot], metric: str, filters: CellFilter | None) -> None:
    """ConfigError when ``metric`` names an agent that some model's cells do not have.

    The message lists the agents (and agent metrics) that the cells do have.
    """
    parts = metric.split(".")
    if len(parts) != 3 or parts[0] != "agents":
        return
    name, field = parts[1], parts[2]
    if field not in AGENT_METRICS:
        raise ConfigError(f"unknown agent metric {metric!r}; known: "
                          + ", ".join(f"agents.{name}.{m}" for m in AGENT_METRICS))  # fmt: skip
    seen: dict[str, set[str]] = {}
    for snap in snaps:
        keys = [k for k, c in snap.cells.items() if matches(c.axes, filters)]
        for key, data in snap.metrics(keys).items():
            axes = snap.cells[key].axes
            system = "/".join(v for a, v in axes.items() if a != "benchmark")
            agents = data.get("agents")
            seen.setdefault(system, set()).update(agents if isinstance(agents, dict) else ())
    missing = sorted(s for s, names in seen.items() if name not in names)
    if missing:
        known = sorted(set().union(*seen.values()))
        raise ConfigError(
            f"{missing[0]} has no agent {name!r} in its cells; agents: "
            f"{', '.join(known) or 'none'}; agent metrics: {', '.join(AGENT_METRICS)}",
            "rank only the models that have it (--models A,B), or pick another agent",
        )
