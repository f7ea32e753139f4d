"""Values in metric files: dotted keys, numbers, and which way each metric is better.

Every reader of ``metrics/*.json`` (listing, diff, leaderboard, compare, mirrors...)
uses these, so a value means the same thing, and ranks the same way, wherever it is
shown.
"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING, Any

from evalledger.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "AGENT_METRICS",
    "DIRECTIONS",
    "TIMING_METRICS",
    "Directions",
    "agent_metric",
    "as_number",
    "flatten",
    "is_timing_metric",
]

#: The values a ``metrics:`` entry of params.yaml may take.
DIRECTIONS = ("lower", "higher")
# Words of a metric's name that settle its direction when params.yaml does not.
_LOWER_WORDS = frozenset({"loss", "perplexity", "ppl", "error", "errors", "latency", "time",
                          "cost", "tokens", "wer", "cer"})  # fmt: skip
_HIGHER_WORDS = frozenset({"accuracy", "score", "f1", "precision", "recall", "bleu", "rouge",
                           "reward", "auc", "pass", "match", "throughput", "n"})  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")
#: The timing metrics a cell's metrics file holds (``latency_ms`` is a mapping of
#: ``mean``/``p50``/``p95``). They measure the clock, not the answers: a re-run of a
#: deterministic model changes them and nothing else.
TIMING_METRICS = ("latency_ms", "total_time_s", "wall_time_s")
# Words that make any other metric (a Tracker's, say) a timing one.
_TIMING_WORDS = frozenset({"latency", "time", "duration", "elapsed", "throughput"})
#: What a cell's ``agents.<name>`` block holds, each with its direction. The agent's
#: name is the user's (``error_checker``), so its words must not settle the direction.
AGENT_METRICS = {"success_rate": "higher", "n": "higher", "successes": "higher",
                 "mean_latency_ms": "lower", "cost": "lower", "prompt_tokens": "lower",
                 "completion_tokens": "lower"}  # fmt: skip


def agent_metric(name: str) -> tuple[str, str] | None:
    """``agents.<agent>.<metric>`` (a metric of :data:`AGENT_METRICS`) -> both; else None."""
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "agents" and parts[2] in AGENT_METRICS:
        return parts[1], parts[2]
    return None


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                out.update(flatten(value, name))
            else:
                out[name] = value
    elif prefix:
        out[prefix] = data
    return out


def is_timing_metric(name: str) -> bool:
    """Whether metric ``name`` (a dotted path such as ``latency_ms.p50``) is a timing.

    The :data:`TIMING_METRICS` and their parts, and any name with one of the words
    ``latency``, ``time``, ``duration``, ``elapsed`` or ``throughput`` (words are split at
    anything but letters and digits): ``train/epoch_time`` and ``time_to_first_token_ms``
    are timings, ``timeout_rate`` and ``runtime_errors`` are not. Of an agent's metrics,
    only ``agents.<name>.mean_latency_ms`` is.
    """
    if name.split(".", 1)[0] in TIMING_METRICS:
        return True
    if agent := agent_metric(name):
        return agent[1] == "mean_latency_ms"
    return not _TIMING_WORDS.isdisjoint(_WORD.findall(name.lower()))


def as_number(value: Any) -> float | None:
    """A metric value as a float, or None for anything that is not a number (or a bool)."""
    cls = type(value)  # the two usual types first: a leaderboard asks a few times a cell
    if cls is float:
        return value  # type: ignore[no-any-return]
    if cls is int:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class Directions:
    """Which way each metric is better: params.yaml's ``metrics:`` first, then its name.

    ``metrics: {val_loss: lower, "train/*": lower, bleu: higher}`` sets directions by
    exact name or glob (first match wins). Otherwise a name with a word such as ``loss``,
    ``perplexity``, ``error_rate``, ``errors``, ``latency``, ``time``, ``cost`` or
    ``tokens`` is lower-is-better, one with ``accuracy``, ``score``, ``f1``... higher.
    Anything else is taken as higher-is-better, and :attr:`assumed` collects those names
    so the output can say so once. An agent's metrics (``agents.<name>.success_rate``...)
    have the directions of :data:`AGENT_METRICS`, whatever the agent is called.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.assumed: set[str] = set()

    @classmethod
    def from_params(cls, params: Any) -> Directions:
        """The directions a params.yaml document sets (its ``metrics:`` section), checked."""
        section = params.get("metrics") if isinstance(params, dict) else None
        if section is None:
            return cls()
        if not isinstance(section, dict):
            raise ConfigError(
                "params.yaml: metrics must map metric names (or globs) to lower or higher",
                "e.g. metrics: {val_loss: lower}",
            )
        for name, value in section.items():
            if not isinstance(name, str) or value not in DIRECTIONS:
                raise ConfigError(
                    f"params.yaml: metrics.{name} is {value!r}; use lower or higher",
                    "lower: smaller is better (loss, cost); higher: larger is better",
                )
        return cls(section)

    def lower_is_better(self, metric: str) -> bool:
        """Whether a smaller value of ``metric`` is an improvement."""
        return self.direction(metric) == "lower"

    def direction(self, metric: str) -> str:
        """``lower`` or ``higher`` for ``metric``."""
        found = self.overrides.get(metric)
        if found is None:
            found = next((d for pattern, d in self.overrides.items()
                          if fnmatch.fnmatchcase(metric, pattern)), None)  # fmt: skip
        if found is not None:
            return found
        if agent := agent_metric(metric):
            return AGENT_METRICS[agent[1]]
        name = metric.lower()
        words = set(_WORD.findall(name))
        if words & _HIGHER_WORDS:
            return "higher"
        if words & _LOWER_WORDS:
            return "lower"
        # Compounds such as runtime_s or val_errors_total: the stems inside the words.
        if any(stem in name for stem in ("accuracy", "score")):
            return "higher"
        if any(stem in name for stem in ("loss", "error", "latency", "time", "cost", "token")):
            return "lower"
        self.assumed.add(metric)
        return "higher"

    def note(self) -> str | None:
        """One line naming the metrics whose direction was assumed, or None."""
        if not self.assumed:
            return None
        names = ", ".join(sorted(self.assumed))
        return (f"direction of {names} not known: taken as higher-is-better; set it under "
                "`metrics:` in params.yaml, e.g. `metrics: {name: lower}`")  # fmt: skip
