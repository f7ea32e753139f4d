"""What a cell's model, benchmark, scorer and judge are made from, as plain data.

:func:`plugin_configs` reads them from params.yaml; :meth:`PluginConfigs.load` builds the
objects. The configs pickle, so a Ray worker (:mod:`evalledger.execution.ray_executor`)
builds the same plugins as the driver from the same params, without the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalledger.errors import ConfigError
from evalledger.plugins import load_benchmark, load_model, load_scorer

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.benchmarks.base import Benchmark
    from evalledger.matrix import Cell
    from evalledger.models.base import Model
    from evalledger.params import MatrixSpec
    from evalledger.scorers.base import Scorer

__all__ = ["CellPlugins", "PluginConfigs", "plugin_configs"]


@dataclass(frozen=True)
class CellPlugins:
    """A cell's loaded plugins; the judge, if any, is already bound to the scorer."""

    model: Model
    benchmark: Benchmark
    scorer: Scorer | None
    judge: Model | None


@dataclass(frozen=True)
class PluginConfigs:
    """The params.yaml entries a cell's plugins are built from."""

    model: tuple[str, dict[str, Any]]
    benchmark: tuple[str, dict[str, Any]]
    scorer: Any = None
    """The benchmark's ``scorer:`` entry (a name or a mapping); None: the benchmark checks."""
    judge: tuple[str, dict[str, Any]] | None = None

    def load(self, root: Path | None) -> CellPlugins:
        """Build the plugins (``root`` resolves the benchmark's relative paths)."""
        model = load_model(*self.model)
        bench_name, bench_cfg = self.benchmark
        benchmark = load_benchmark(bench_name, bench_cfg, root)
        scorer = judge = None
        if self.scorer is not None:
            scorer = load_scorer(self.scorer, f"benchmarks.{bench_name}.scorer")
            if scorer.needs_model:
                if self.judge is None:
                    raise ConfigError(
                        f"benchmarks.{bench_name}.scorer needs a judge model",
                        "name one with `model:` in the scorer's settings",
                    )
                judge = load_model(*self.judge)
                scorer.bind(judge)
        return CellPlugins(model, benchmark, scorer, judge)


def plugin_configs(spec: MatrixSpec, cell: Cell, cfg: dict[str, Any]) -> PluginConfigs:
    """The plugin configs of ``cell`` (``cfg``: its effective configuration)."""
    model_name = cell.axis("model") or ""
    bench_name = cell.axis("benchmark") or ""
    bench_cfg = spec.value_config("benchmark", bench_name)
    judge = None
    if bench_cfg.get("scorer") is not None and "judge" in cfg:
        judge_name = cfg["judge"]["name"]
        judge = (judge_name, spec.judge_config(judge_name, "scorer"))
    return PluginConfigs(
        model=(model_name, spec.value_config("model", model_name)),
        benchmark=(bench_name, bench_cfg),
        scorer=bench_cfg.get("scorer"),
        judge=judge,
    )
