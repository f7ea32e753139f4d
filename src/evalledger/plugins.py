"""Model adapters, benchmarks and scorers, registered through entry points.

Third-party packages declare ``[project.entry-points."evalledger.models"]`` (or
``evalledger.benchmarks``, ``evalledger.scorers``); evalledger's own built-ins are
registered the same way in its ``pyproject.toml``, so nothing is special-cased.
"""

from __future__ import annotations

import contextlib
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from evalledger.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.benchmarks.base import Benchmark
    from evalledger.matrix import Cell
    from evalledger.models.base import Model
    from evalledger.params import MatrixSpec
    from evalledger.scorers.base import Scorer

__all__ = [
    "BENCHMARKS_GROUP",
    "MODELS_GROUP",
    "SCORERS_GROUP",
    "build_plugins",
    "check_plugins",
    "check_registered",
    "load_benchmark",
    "load_model",
    "load_scorer",
    "registered",
]

MODELS_GROUP = "evalledger.models"
BENCHMARKS_GROUP = "evalledger.benchmarks"
SCORERS_GROUP = "evalledger.scorers"


@cache
def _group(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def registered(group: str) -> list[str]:
    """Names registered in an entry-point group, sorted."""
    return sorted(_group(group))


def check_registered(group: str, name: Any, what: str, section: str) -> None:
    """Raise a one-line error listing the known names unless ``name`` is registered."""
    eps = _group(group)
    if not isinstance(name, str) or name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise ConfigError(
            f"unknown {what} {name!r} in {section}; known: {known}",
            f"fix the name, or install the package that provides {what} {name!r}",
        )


def check_plugins(spec: MatrixSpec, cells: list[Cell]) -> None:
    """Check the adapters, loaders, scorers and judges some cells name, and their settings.

    Run before anything is evaluated, so a typo costs one line, not a failed execution.
    Prompt sets and decodings are checked too: a template must hold ``{input}``.
    """
    from evalledger.plugin_types import (
        DecodingSettings,
        PromptSetSettings,
        validate_settings,
    )

    def check(group: str, cfg: dict[str, Any], key: str, what: str, where: str) -> None:
        name = cfg.get(key)
        cls = _load(group, name, what, f"{where}.{key}")
        # `repeats` belongs to the cell (checked with params.yaml), not to the plugin
        settings = {k: v for k, v in cfg.items() if k not in (key, "scorer", "repeats")}
        validate_settings(cls.Settings, settings, where)

    models = {c.axis("model") or "" for c in cells}
    benchmarks = {c.axis("benchmark") or "" for c in cells}
    for name in sorted(models):
        check(MODELS_GROUP, spec.value_config("model", name), "adapter", "model adapter",
              f"models.{name}")  # fmt: skip
    for name in sorted(benchmarks):
        cfg = spec.value_config("benchmark", name)
        check(BENCHMARKS_GROUP, cfg, "loader", "benchmark loader", f"benchmarks.{name}")
        if cfg.get("scorer") is not None:
            # Scorers are cheap and offline to build, so build one: __init__ checks count too.
            load_scorer(cfg["scorer"], f"benchmarks.{name}.scorer")
        judge = spec.judge_name(name)
        if judge is not None:
            judge_cfg = spec.judge_config(judge, f"benchmarks.{name}.scorer.model")
            section = "judges" if judge in spec.judges else "models"
            check(MODELS_GROUP, judge_cfg, "adapter", "model adapter", f"{section}.{judge}")
    for axis, settings_cls in (("prompt_set", PromptSetSettings), ("decoding", DecodingSettings)):
        for name in sorted({v for c in cells if (v := c.axis(axis)) is not None}):
            cfg = spec.value_config(axis, name)
            validate_settings(settings_cls, cfg, f"{axis}s.{name}")


def build_plugins(spec: MatrixSpec, cells: list[Cell], root: Path | None = None) -> None:
    """Build every model, judge, benchmark and scorer that ``cells`` will use, offline.

    What only building finds is found before the first cell starts, not after others
    ran: an API-key variable that is not set, a ``python`` callable that does not import.
    Nothing is called and no data is read: a benchmark's file may be made by a DVC stage
    upstream, or pulled, before its cell runs.
    """
    import asyncio

    built: list[Model] = []
    try:
        for name in sorted({c.axis("model") or "" for c in cells}):
            built.append(load_model(name, spec.value_config("model", name)))
        for name in sorted({c.axis("benchmark") or "" for c in cells}):
            cfg = spec.value_config("benchmark", name)
            load_benchmark(name, cfg, root)  # no data read: a DVC stage may make it
            if cfg.get("scorer") is not None:
                load_scorer(cfg["scorer"], f"benchmarks.{name}.scorer")
            judge = spec.judge_name(name)
            if judge is not None:
                judge_cfg = spec.judge_config(judge, f"benchmarks.{name}.scorer.model")
                built.append(load_model(judge, judge_cfg))
    finally:
        for model in built:  # a plugin may hold a connection from its constructor
            with contextlib.suppress(Exception):
                asyncio.run(model.aclose())


def _load(group: str, name: Any, what: str, section: str) -> Any:
    check_registered(group, name, what, section)
    eps = _group(group)
    try:
        return eps[name].load()
    except Exception as exc:  # a broken plugin must not crash the CLI with a traceback
        raise ConfigError(f"{what} {name!r} failed to load: {type(exc).__name__}: {exc}") from None


def load_model(name: str, config: dict[str, Any]) -> Model:
    """Instantiate the model adapter named by ``config['adapter']``."""
    adapter = config.get("adapter")
    cls = _load(MODELS_GROUP, adapter, "model adapter", f"models.{name}.adapter")
    # `repeats` is the cell's (execution/repeats.py), not the adapter's
    settings = {k: v for k, v in config.items() if k not in ("adapter", "repeats")}
    model: Model = cls.from_config(name, settings)
    return model


def load_benchmark(name: str, config: dict[str, Any], root: Path | None = None) -> Benchmark:
    """Instantiate the benchmark named by ``config['loader']`` (its ``scorer:`` aside)."""
    loader = config.get("loader")
    cls = _load(BENCHMARKS_GROUP, loader, "benchmark loader", f"benchmarks.{name}.loader")
    settings = {k: v for k, v in config.items() if k not in ("loader", "scorer", "repeats")}
    bench: Benchmark = cls.from_config(name, settings, root)
    return bench


def load_scorer(config: Any, where: str) -> Scorer:
    """Instantiate a scorer from ``NAME`` or ``{name: NAME, <settings>}``."""
    name_at = where if isinstance(config, str) else f"{where}.name"
    if isinstance(config, str):
        config = {"name": config}
    if not isinstance(config, dict):
        raise ConfigError(f"{where} must be a scorer name or a mapping with 'name:'")
    name = config.get("name")
    cls = _load(SCORERS_GROUP, name, "scorer", name_at)
    settings = {k: v for k, v in config.items() if k != "name"}
    scorer: Scorer = cls.from_config(str(name), settings, where)
    return scorer
