"""Side-by-side comparison of executions or revisions: config, performance, cost, winner.

Each side is an execution (its own results, read where it was committed) or a revision
(every cell there). Only the configuration keys that differ are shown. Performance is
per benchmark and metric with the best value marked.

The verdict is about what changed. The winner, its margins and the cost totals are
computed over the cells that every side evaluated, leaving out cells that only some
sides have and, between revisions, cells untouched on every side (the same execution's
results everywhere: averaging them in would dilute the margin towards zero). What was
left out is stated (:attr:`SideBySide.scope`).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalledger.analysis.cellfilter import CellFilter, check_filter, matches, merge_filter
from evalledger.errors import (
    ConfigError,
    StatsError,
    UnknownExecutionError,
    UnknownRevisionError,
)
from evalledger.ledger.directions import directions_at
from evalledger.metrics import Directions, as_number, flatten
from evalledger.params import axis_section

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evalledger.ledger.history import Ledger

__all__ = ["COMPARED_METRICS", "Side", "SideBySide", "compare_sides"]

#: The metrics shown when none are asked for; the winner is decided on accuracy.
COMPARED_METRICS = ("accuracy", "partial_accuracy", "format_accuracy", "mean_score")
_COSTS = ("cost", "prompt_tokens", "completion_tokens", "errors", "wall_time_s")
#: Why a unit is left out of the verdict: the keys of :attr:`SideBySide.left_out`.
LEFT_OUT = ("unchanged", "not_on_every_side", "without_metric")
_NAMED = 4  # scopes of at most this many cells name them


@dataclass
class Side:
    """One column of the comparison."""

    ref: str
    label: str
    kind: str
    """``execution``, ``revision`` or ``slice`` (``AXIS=VALUE``)."""
    config: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    """Unit (cell key, or benchmark when every side is one model) -> metrics."""
    sources: dict[str, str] = field(default_factory=dict)
    """Unit -> what produced its results: the owning execution's ID, else ``blob:<id>``."""


@dataclass
class SideBySide:
    """Several executions or revisions side by side."""

    sides: list[Side]
    config_diff: dict[str, list[Any]]
    performance: list[tuple[str, str, list[float | None], int | None]]
    """(unit, metric, value per side, index of the best side)."""
    costs: dict[str, list[float | None]]
    """Cost name -> total per side over :attr:`compared` (the same cells on every side)."""
    primary: str
    means: list[float | None]
    """Each side's mean of the primary metric over :attr:`compared`."""
    winner: int | None
    margin: float | None
    """Winner's mean minus the runner-up's."""
    vs_others: float | None
    """Winner's mean minus the average of the other sides' means."""
    common_units: int
    """Units every side has results for (changed or not)."""
    metrics: list[str] = field(default_factory=list)
    """The metrics shown; the first is :attr:`primary`."""
    benchmarks: list[str] | None = None
    """The ``-b`` filter, or None for every benchmark."""
    compared: list[str] = field(default_factory=list)
    """The units the winner, margins and costs are computed over."""
    left_out: dict[str, list[str]] = field(default_factory=dict)
    """Why units are not compared (keys of :data:`LEFT_OUT`) -> those units."""
    scope: str = ""
    """What the verdict is over, and what it leaves out, as a phrase."""
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> dict[str, str]:
        """Unit -> ``changed`` (compared) or the reason it is left out."""
        out = {u: "changed" for u in self.compared}
        for reason, units in self.left_out.items():
            out.update(dict.fromkeys(units, reason))
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        labels = [s.label for s in self.sides]
        status = self.status
        return {
            "sides": [{"ref": s.ref, "label": s.label, "kind": s.kind} for s in self.sides],
            "config_differences": {k: dict(zip(labels, v, strict=True))
                                   for k, v in self.config_diff.items()},
            "metrics": self.metrics,
            "benchmarks": self.benchmarks,
            "performance": [{"unit": u, "metric": m, "values": dict(zip(labels, v, strict=True)),
                             "best": labels[b] if b is not None else None,
                             "status": status.get(u)}
                            for u, m, v, b in self.performance],
            "costs": {k: dict(zip(labels, v, strict=True)) for k, v in self.costs.items()},
            "costs_over": self.compared,
            "primary_metric": self.primary,
            "means": dict(zip(labels, self.means, strict=True)),
            "winner": labels[self.winner] if self.winner is not None else None,
            "margin": self.margin, "vs_others": self.vs_others,
            "common_units": self.common_units,
            "changed_units": self.compared,
            "left_out": self.left_out,
            "scope": self.scope,
        }  # fmt: skip


def _slice_side(
    ledger: Ledger, ref: str
) -> tuple[Side, dict[str, dict[str, str]], Directions] | None:
    """``AXIS=VALUE[@REV]``: that axis value's cells, keyed by the rest of their key.

    ``compare condition=control condition=treatment`` then sets each model's (and
    benchmark's...) cells side by side across the conditions. None when ``ref`` is not
    of that form or names no axis at the revision.
    """
    name, _, at = ref.partition("@")
    axis, sep, value = name.partition("=")
    if not sep:
        return None
    snap = ledger.snapshot(at or None)
    keys = [k for k, c in snap.cells.items() if c.axes.get(axis) == value]
    if not keys:
        known = sorted({c.axes[axis] for c in snap.cells.values() if axis in c.axes})
        raise StatsError(f"no cells with {axis}={value!r} at {snap.label}",
                         f"{axis}: {', '.join(known)}" if known else
                         f"axes: {', '.join(snap.axis_names)}")  # fmt: skip
    metrics = snap.metrics(keys)

    def unit(k: str) -> str:
        return "/".join(v for a, v in snap.cells[k].axes.items() if a != axis)

    axes = {unit(k): {a: v for a, v in snap.cells[k].axes.items() if a != axis} for k in metrics}
    sources = {unit(k): f"blob:{snap.cells[k].metrics_oid}" for k in metrics}
    section = (snap.params.get(axis_section(axis)) or {}).get(value)
    config = {axis: {"name": value, **(section if isinstance(section, dict) else {})}}
    side = Side(ref, f"{name} at {snap.label}", "slice", config,
                {unit(k): v for k, v in metrics.items()}, sources)  # fmt: skip
    return side, axes, directions_at(snap)


def _side(ledger: Ledger, ref: str) -> tuple[Side, dict[str, dict[str, str]], Directions]:
    """A side, the axes of each of its cells, and the metric directions it sets."""
    if (sliced := _slice_side(ledger, ref)) is not None:
        return sliced
    try:
        info = ledger.find_execution(ref)
    except UnknownExecutionError as exec_err:
        try:
            snap = ledger.snapshot(ref)
        except UnknownRevisionError as rev_err:
            raise UnknownRevisionError(
                f"{ref!r} is neither an execution nor a revision",
                f"{exec_err.hint}; {rev_err.hint}",
            ) from None
        metrics = snap.metrics()
        axes = {k: snap.cells[k].axes for k in metrics}
        owners = snap.owners(skip_damaged=True)
        sources = {k: owners.get(k) or f"blob:{snap.cells[k].metrics_oid}" for k in metrics}
        # Tracked experiments keep their directions in their config; params.yaml has the
        # last word on the matrix's.
        manifests = snap.manifests(skip_damaged=True)
        experiments = [manifests[i].config for i in dict.fromkeys(owners.values())
                       if i in manifests and manifests[i].kind == "experiment"]  # fmt: skip
        directions = _merge([*map(_experiment_directions, experiments),
                             directions_at(snap)])  # fmt: skip
        side = Side(ref, snap.label, "revision", snap.params, metrics, sources)
        return side, axes, directions
    manifest = ledger.manifest(info)
    results = {k: v for k, v in ledger.results(info).items() if v is not None}
    axes = {k: manifest.cells[k].axes for k in results}
    if manifest.kind == "experiment":  # log_metrics(direction=...) over its config's
        directions = _merge([_experiment_directions(manifest.config),
                             Directions(manifest.directions)])  # fmt: skip
    else:
        directions = Directions.from_params(manifest.config)
    sources = dict.fromkeys(results, info.execution_id)
    side = Side(ref, info.execution_id, "execution", manifest.config, results, sources)
    return side, axes, directions


def _experiment_directions(config: dict[str, Any]) -> Directions:
    """The ``metrics:`` directions of an experiment's config.

    Free-form sections may use the name ``metrics`` for something else: that sets none.
    """
    try:
        return Directions.from_params(config)
    except ConfigError:
        return Directions()


def _merge(directions: list[Directions]) -> Directions:
    """One Directions; a later one overrides an earlier one's names."""
    overrides: dict[str, str] = {}
    for d in directions:
        overrides.update(d.overrides)
    return Directions(overrides)


def compare_sides(
    ledger: Ledger,
    refs: list[str],
    metrics: str | Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    filters: CellFilter | None = None,
) -> SideBySide:
    """Compare executions or revisions (at least two).

    ``metrics`` are the metrics shown (dotted paths allowed); the first decides the
    winner. Default: :data:`COMPARED_METRICS`, the winner on accuracy. ``benchmarks``
    keeps the cells of those benchmarks only, ``filters`` (axis -> values) the cells they
    match. An unknown benchmark or metric is a :class:`~evalledger.errors.ConfigError`
    listing the known ones.
    """
    if len(refs) < 2:
        raise StatsError(
            "compare needs at least two executions or revisions",
            "e.g. `evalledger compare HEAD~1 HEAD`, or two IDs from `evalledger list`",
        )
    built = [_side(ledger, r) for r in refs]
    sides = [s for s, _, _ in built]
    filters = merge_filter(filters, benchmarks)
    benchmarks = filters.get("benchmark")
    if filters:
        _filter_cells(built, filters)
    # Sides that are one model each (as in a hyperparameter sweep) compare per benchmark.
    systems = [{_system(a) for a in axes.values()} for _, axes, _ in built]
    if all(len(s) == 1 for s in systems) and len({next(iter(s)) for s in systems}) > 1:
        for side, axes, _ in built:
            side.metrics = {axes[k].get("benchmark", k): v for k, v in side.metrics.items()}
            side.sources = {axes[k].get("benchmark", k): v for k, v in side.sources.items()}
    directions = _merge([d for _, _, d in built])
    flat = [{u: flatten(m) for u, m in s.metrics.items()} for s in sides]
    shown = _metrics(flat, metrics)
    primary = shown[0]

    flat_cfg = [flatten(s.config) for s in sides]
    keys = list(dict.fromkeys(k for f in flat_cfg for k in f))
    config_diff = {k: [f.get(k) for f in flat_cfg] for k in keys
                   if any(f.get(k) != flat_cfg[0].get(k) for f in flat_cfg)}  # fmt: skip
    units = list(dict.fromkeys(u for s in sides for u in s.metrics))
    performance = []
    for unit in units:
        for metric in shown:
            values = [as_number(f.get(unit, {}).get(metric)) for f in flat]
            if all(v is None for v in values):
                continue
            performance.append(
                (unit, metric, values, _best(values, directions.lower_is_better(metric)))
            )

    shared = [u for u in units if all(u in s.metrics for s in sides)]
    left_out: dict[str, list[str]] = {
        "unchanged": [u for u in shared if _untouched(sides, u)],
        "not_on_every_side": [u for u in units if u not in shared],
    }
    changed = [u for u in shared if u not in left_out["unchanged"]]
    compared = [u for u in changed if all(as_number(f[u].get(primary)) is not None
                                          for f in flat)]  # fmt: skip
    left_out["without_metric"] = [u for u in changed if u not in compared]
    notes: list[str] = []
    costs = _costs(flat, compared, notes)
    means = [math.fsum(as_number(f[u].get(primary)) or 0.0 for u in compared) / len(compared)
             if compared else None for f in flat]  # fmt: skip
    lower = directions.lower_is_better(primary)
    winner = _best(means, lower)
    margin = vs_others = None
    if winner is not None:
        others = [m for i, m in enumerate(means) if i != winner and m is not None]
        best_other = min(others) if lower else max(others)
        margin = means[winner] - best_other  # type: ignore[operator]
        vs_others = means[winner] - math.fsum(others) / len(others)  # type: ignore[operator]
    revisions = any(s.kind == "revision" for s in sides) or bool(left_out["unchanged"])
    scope = _scope(compared, left_out, len(sides), primary, changed=revisions)
    if note := directions.note():
        notes.insert(0, note)
    return SideBySide(
        sides, config_diff, performance, costs, primary, means, winner, margin, vs_others,
        len(shared), metrics=shown, benchmarks=list(benchmarks) if benchmarks else None,
        compared=compared, left_out={k: v for k, v in left_out.items() if v}, scope=scope,
        notes=notes,
    )  # fmt: skip


def _filter_cells(
    built: list[tuple[Side, dict[str, dict[str, str]], Directions]], filters: CellFilter
) -> None:
    """Keep the cells ``filters`` matches; an unknown value is refused with the known ones."""
    check_filter(filters, [a for _, axes, _ in built for a in axes.values()])
    for side, axes, _ in built:
        keep = [k for k in side.metrics if matches(axes[k], filters)]
        side.metrics = {k: side.metrics[k] for k in keep}
        side.sources = {k: side.sources[k] for k in keep if k in side.sources}


def _metrics(
    flat: list[dict[str, dict[str, Any]]], wanted: str | Sequence[str] | None
) -> list[str]:
    """The metrics to show, checked against the numeric metrics of the cells."""
    known = list(dict.fromkeys(k for f in flat for m in f.values() for k, v in m.items()
                               if as_number(v) is not None))  # fmt: skip
    if wanted is None or not wanted:
        shown = [m for m in COMPARED_METRICS if m in known]
        if "accuracy" not in shown and shown:  # the winner on the first one there
            return shown
        return ["accuracy", *[m for m in shown if m != "accuracy"]]
    names = list(dict.fromkeys([wanted] if isinstance(wanted, str) else wanted))
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more"
                                               if len(known) > 20 else "")  # fmt: skip
            raise ConfigError(
                f"unknown metric {name!r} for -m/--metric",
                f"{hint}known: {listed or 'none (no cell has a numeric metric)'}",
            )
    return names


def _untouched(sides: list[Side], unit: str) -> bool:
    """Whether every side holds the same results of ``unit``, untouched.

    The same execution's (or, where no execution is known, the same file) with the
    same values. A cell re-evaluated by another execution counts as changed even when
    its values came out equal: leaving it out would pick cells by their outcome.
    """
    source, values = sides[0].sources.get(unit), sides[0].metrics[unit]
    if source is None:
        return False
    return all(s.sources.get(unit) == source and s.metrics[unit] == values for s in sides[1:])


def _costs(
    flat: list[dict[str, dict[str, Any]]], compared: list[str], notes: list[str]
) -> dict[str, list[float | None]]:
    """Cost name -> total per side over the compared units that every side reports it for."""
    costs: dict[str, list[float | None]] = {}
    for name in _COSTS:
        covered = [u for u in compared if all(as_number(f[u].get(name)) is not None for f in flat)]
        if not covered:
            continue
        costs[name] = [math.fsum(as_number(f[u].get(name)) or 0.0 for u in covered) for f in flat]
        if len(covered) < len(compared):
            notes.append(f"{name} totals cover {_cells(len(covered))} of the {len(compared)} "
                         "compared: not every side reports it on the others")  # fmt: skip
    return costs


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"


def _scope(
    compared: list[str], left_out: dict[str, list[str]], n_sides: int, primary: str,
    *, changed: bool,
) -> str:  # fmt: skip
    """What the verdict is over and what it leaves out, or why there is nothing to compare.

    E.g. ``over the 1 cell that changed (noisy/arith; 5 unchanged cells and 2 cells
    only one side has are left out)``.
    """
    every = "both sides" if n_sides == 2 else "every side"
    reasons = {
        "unchanged": "unchanged",
        "not_on_every_side": "only one side has" if n_sides == 2 else "only some sides have",
        "without_metric": f"without {primary} on {every}",
    }
    parts = []
    for key, text in reasons.items():
        n = len(left_out[key])
        if n:
            parts.append(f"{n} {text} cell{'s' * (n != 1)}" if key == "unchanged"
                         else f"{_cells(n)} {text}")  # fmt: skip
    gone = ""
    if parts:
        listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
        single = len(parts) == 1 and sum(len(v) for v in left_out.values()) == 1
        gone = f"{listed} {'is' if single else 'are'} left out"
    if compared:
        what = "that changed" if changed else f"{every} evaluated"
        head = f"over the {_cells(len(compared))} {what}"
        names = ", ".join(compared) if len(compared) <= _NAMED else ""
        inner = "; ".join(p for p in (names, gone) if p)
        return f"{head} ({inner})" if inner else head
    if left_out["unchanged"] and not left_out["without_metric"]:
        n = len(left_out["unchanged"])
        they = "both sides hold" if n_sides == 2 else "every side holds"
        head = f"nothing changed: {they} the same results in {'the' if n == 1 else 'all'} "
        head += f"{_cells(n)} they share"
        partial = [p for p in parts if "unchanged" not in p]
        return head + (f" ({partial[0]} {'is' if partial[0].startswith('1 ') else 'are'} "
                       "left out)" if partial else "")  # fmt: skip
    if left_out["without_metric"]:
        return f"no cell that changed has {primary} on {every} ({gone})"
    return f"no cell is evaluated by {every}" + (f" ({gone})" if gone else "")


def _system(axes: dict[str, str]) -> str:
    return "/".join(v for a, v in axes.items() if a != "benchmark")


def _best(values: list[float | None], lower: bool) -> int | None:
    present = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(present) < 2 or len({v for v, _ in present}) == 1:
        return None
    pick = min if lower else max
    return pick(present, key=lambda p: p[0])[1]
