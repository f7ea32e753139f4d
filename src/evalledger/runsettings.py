"""The ``run:`` section of params.yaml: how ``evalledger run`` runs, not what.

``jobs``, ``repeats``, the response cache's ``cache`` and ``cache_expiry``, and where
cells run: ``executor`` (``local`` or ``ray``) and ``ray_address``. Only
``run.repeats`` changes results (a stage parameter in dvc.yaml); the rest are knobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from evalledger.errors import ConfigError
from evalledger.names import did_you_mean

__all__ = ["DEFAULT_CACHE_EXPIRY_S", "EXECUTORS", "RUN_KEYS", "RunSettings", "parse_expiry",
           "parse_run_settings"]  # fmt: skip

#: Where ``evalledger run`` evaluates cells: this process, or a Ray cluster.
EXECUTORS = ("local", "ray")

#: How long a cached model answer is used (``run.cache_expiry``): 14 days.
DEFAULT_CACHE_EXPIRY_S = 14 * 86400.0
_EXPIRY_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class RunSettings:
    """Knobs of ``evalledger run`` read from the ``run:`` section."""

    jobs: int = 4
    cache: bool = True
    """Whether paid model calls go through the response cache (``run.cache``)."""
    cache_expiry_s: float | None = DEFAULT_CACHE_EXPIRY_S
    """Seconds a cached answer is used; None: for ever (``run.cache_expiry: never``)."""
    executor: str = "local"
    """``local`` (this process) or ``ray`` (``run.executor``; ``run --executor``)."""
    ray_address: str | None = None
    """The Ray cluster to join (``run.ray_address``); None: a local Ray is started."""


def parse_expiry(value: Any) -> float | None:
    """``run.cache_expiry`` in seconds (None: ``never``).

    A duration such as ``14d``, ``12h``, ``30m`` or ``90s``, or a number of seconds.
    """
    if value is None:
        return DEFAULT_CACHE_EXPIRY_S
    if value == "never":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(value))
    if not match:
        raise ConfigError(
            f"run.cache_expiry must be a duration such as 14d, 12h or 30m, not {value!r}",
            "units: s, m, h, d, w; or never",
        )
    return float(match.group(1)) * _EXPIRY_UNITS[match.group(2)]


#: The settings the ``run:`` section knows.
RUN_KEYS = ["jobs", "repeats", "cache", "cache_expiry", "executor", "ray_address"]


def parse_run_settings(run: Any, sections: dict[str, dict[str, dict[str, Any]]]) -> RunSettings:
    """The validated ``run:`` section; ``repeats`` is checked on models and benchmarks too."""
    run_raw = run or {}
    if not isinstance(run_raw, dict):
        raise ConfigError("'run:' in params.yaml must be a mapping")
    unknown_run = sorted(set(run_raw) - set(RUN_KEYS))
    if unknown_run:
        raise ConfigError(
            f"unknown run setting {unknown_run[0]!r} (run.{unknown_run[0]})",
            f"{did_you_mean(str(unknown_run[0]), RUN_KEYS)}known: {', '.join(RUN_KEYS)}",
        )
    for section in ("models", "benchmarks", "run"):
        entries = {"": run_raw} if section == "run" else sections[section]
        for name, cfg in entries.items():
            k = cfg.get("repeats", 1)
            if type(k) is not int or not 1 <= k <= 1000:
                where = f"{section}.{name}.repeats" if name else "run.repeats"
                raise ConfigError(f"{where} must be an integer from 1 to 1000, not {k!r}",
                                  "the samples of each item, e.g. repeats: 5")  # fmt: skip
    jobs = run_raw.get("jobs", 4)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"run.jobs must be a positive integer, got {jobs!r}")
    cache = run_raw.get("cache", True)
    if not isinstance(cache, bool):
        raise ConfigError(f"run.cache must be true or false, not {cache!r}")
    executor = run_raw.get("executor", "local")
    if executor not in EXECUTORS:
        raise ConfigError(f"run.executor must be one of {', '.join(EXECUTORS)}, not {executor!r}",
                          "ray needs the extra: pip install 'evalledger[ray]'")  # fmt: skip
    address = run_raw.get("ray_address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ConfigError(f"run.ray_address must be an address such as 10.0.0.5:6379 or auto, "
                          f"not {address!r}")  # fmt: skip
    return RunSettings(jobs, cache, parse_expiry(run_raw.get("cache_expiry")), executor, address)
