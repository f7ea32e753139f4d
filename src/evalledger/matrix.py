"""Cells of the matrix: their names, paths, stage names and configuration hashes."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from evalledger.errors import ConfigError, UnsafePathError
from evalledger.names import NAME_HINT, is_name
from evalledger.params import MatrixSpec, axis_section, canonical_axes

__all__ = [
    "STAGE",
    "Cell",
    "cell_from_axes",
    "config_hash",
    "expand",
    "parse_cell_args",
    "stage_params",
]

#: The dvc.yaml stage that evalledger owns; each cell is ``eval@<v1>-<v2>...``.
STAGE = "eval"


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix: one value per axis, in canonical axis order."""

    axes: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        # The last guard of the path rule: a cell's values become its paths.
        for axis, value in self.axes:
            if not is_name(value):
                raise UnsafePathError(
                    f"cell {axis} {value!r} is not a valid name, so it has no path", NAME_HINT
                )

    @cached_property  # health asks each of 50,000 cells for its key and stage
    def values(self) -> tuple[str, ...]:
        """The axis values, in canonical order."""
        return tuple([v for _, v in self.axes])

    @cached_property
    def key(self) -> str:
        """The cell's path below ``metrics/`` and ``predictions/``, e.g. ``gpt4/gsm8k``."""
        return "/".join(self.values)

    @property
    def stage(self) -> str:
        """The DVC stage name that DVC's ``matrix:`` generates for this cell."""
        return f"{STAGE}@{'-'.join(self.values)}"

    @property
    def slug(self) -> str:
        """A flat file-name form of the key."""
        return "__".join(self.values)

    def axis(self, name: str) -> str | None:
        """The value of axis ``name``, or None when the matrix has no such axis."""
        return dict(self.axes).get(name)

    @property
    def metrics_path(self) -> str:
        """Cell metrics (DVC metrics file, in git)."""
        return f"metrics/{self.key}.json"

    @property
    def scores_path(self) -> str:
        """Per-item scores (small CSV, in git)."""
        return f"metrics/{self.key}.scores.csv"

    @property
    def predictions_path(self) -> str:
        """Raw predictions (DVC-cached output)."""
        return f"predictions/{self.key}.jsonl"

    def effective_config(self, spec: MatrixSpec) -> dict[str, Any]:
        """Everything that determines this cell's results (including its judge, if any)."""
        cfg: dict[str, Any] = {
            axis: {"name": v, **spec.value_config(axis, v)} for axis, v in self.axes
        }
        judge = spec.judge_name(self.values[1])
        if judge is not None:
            where = f"benchmarks.{self.values[1]}.scorer.model"
            cfg["judge"] = {"name": judge, **spec.judge_config(judge, where)}
        return cfg


def stage_params(spec: MatrixSpec, cell: Cell) -> dict[str, Any]:
    """The params.yaml values a cell's dvc.lock entry records (what ``dvc status`` compares)."""
    current = {f"{axis_section(a)}.{v}": spec.value_config(a, v) for a, v in cell.axes}
    if spec.judges:
        current["judges"] = spec.judges
    run = spec.raw.get("run")
    if isinstance(run, dict) and "repeats" in run:
        current["run.repeats"] = run["repeats"]
    return current


def config_hash(config: dict[str, Any]) -> str:
    """A canonical hash of a configuration: key order and formatting do not matter."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cell_from_axes(values: dict[str, str]) -> Cell:
    """Build a cell from an axis -> value mapping, in canonical order."""
    return Cell(tuple((a, values[a]) for a in canonical_axes(values)))


def expand(spec: MatrixSpec, filters: dict[str, list[str]] | None = None) -> list[Cell]:
    """All cells of the matrix, optionally restricted to some values per axis."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    for axis, wanted in filters.items():
        if axis not in spec.axes:
            raise ConfigError(
                f"cannot filter on axis {axis!r}: the matrix has no such axis; "
                f"axes: {', '.join(spec.axis_names)}"
            )
        known = spec.axes[axis]
        for value in wanted:
            if value not in known:
                raise ConfigError(
                    f"unknown {axis} {value!r}; known: {', '.join(known)}",
                    f"pick from axes.{axis} in params.yaml",
                )
    names = spec.axis_names
    lists = [[v for v in spec.axes[a] if a not in filters or v in filters[a]] for a in names]
    return [Cell(tuple(zip(names, combo, strict=True))) for combo in itertools.product(*lists)]


def parse_cell_args(args: list[str], spec: MatrixSpec) -> Cell:
    """Parse ``axis=value`` arguments (the ``evalledger cell`` command line) into a cell."""
    values: dict[str, str] = {}
    for arg in args:
        axis, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"bad cell argument {arg!r}", "write it as axis=value")
        if axis not in spec.axes:
            raise ConfigError(f"the matrix has no axis {axis!r}",
                              f"axes: {', '.join(spec.axis_names)}")  # fmt: skip
        values[axis] = value
    missing = [a for a in spec.axis_names if a not in values]
    if missing:
        raise ConfigError(f"cell is missing axis {missing[0]!r}", f"add {missing[0]}=<value>")
    extra = [a for a in values if a not in spec.axes]
    if extra:
        raise ConfigError(f"the matrix has no axis {extra[0]!r}")
    for axis, value in values.items():
        if value not in spec.axes[axis]:
            raise ConfigError(f"unknown {axis} {value!r}; known: {', '.join(spec.axes[axis])}")
    return cell_from_axes(values)
