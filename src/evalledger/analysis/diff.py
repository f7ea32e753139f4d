"""What changed between two revisions of the ledger, and whether the change is real.

For every cell whose metrics differ, each metric's old and new value and the change;
where both revisions hold per-item scores for the metric's column, a paired test on the
items the two share, with a confidence interval of the change. Also the cells added or
removed and the params.yaml keys that changed, with tracked experiments' config keys
(``metrics/_params/<name>.yaml``), their final training metrics and the runs new at B
(:mod:`evalledger.analysis.training_diff`). Defaults mirror ``dvc metrics diff``: HEAD against the
working tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalledger.analysis.categories import category_items, category_of
from evalledger.analysis.cellfilter import CellFilter, check_filter, matches
from evalledger.analysis.changes import LedgerDiff, MetricChange, ParamChange, lower_is_better
from evalledger.analysis.formatting import format_p, format_value, md_code, md_text
from evalledger.analysis.gate import find_problems
from evalledger.errors import ConfigError
from evalledger.gitinfo import no_commits_error
from evalledger.ledger.directions import directions_at
from evalledger.ledger.gitobjects import WORKSPACE
from evalledger.ledger.scores import column_for
from evalledger.metrics import as_number, flatten, is_timing_metric

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger, Snapshot

__all__ = [
    "DEFAULT_METRICS",
    "LedgerDiff",
    "MetricChange",
    "ParamChange",
    "diff_revisions",
    "format_p",
    "format_value",
    "lower_is_better",
    "md_code",
    "md_text",
]

#: Metrics shown by default (those a cell has); ``--metric`` or ``--all`` choose others.
DEFAULT_METRICS = ("accuracy", "mean_score", "partial_accuracy", "format_accuracy",
                   "error_rate", "cost")  # fmt: skip


def _pick_metrics(flat_old: dict[str, Any], flat_new: dict[str, Any],
                  metrics: list[str] | None, all_metrics: bool) -> list[str]:  # fmt: skip
    keys = list(dict.fromkeys([*flat_old, *flat_new]))
    if all_metrics:
        return [k for k in keys if as_number(flat_old.get(k)) is not None
                or as_number(flat_new.get(k)) is not None]  # fmt: skip
    wanted = metrics or list(DEFAULT_METRICS)
    return [m for m in wanted if m in flat_old or m in flat_new]


def _check_metrics(metrics: list[str], snaps: list[Snapshot]) -> None:
    """ConfigError for a ``-m`` that no cell or training summary of either revision has."""
    from evalledger.analysis.training_diff import summary_metric_names

    known: set[str] = set()
    for snap in snaps:
        known |= summary_metric_names(snap)
        for data in snap.metrics().values():
            known.update(k for k, v in flatten(data).items() if as_number(v) is not None)
    for name in metrics:
        if name not in known and known:
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            shown = sorted(known, key=lambda k: (k.count("."), k))
            more = f" and {len(shown) - 15} more" if len(shown) > 15 else ""
            raise ConfigError(f"unknown metric {name!r} for -m/--metric",
                              f"{guess}known: {', '.join(shown[:15])}{more}")  # fmt: skip


def diff_revisions(
    ledger: Ledger,
    a_rev: str | None = None,
    b_rev: str | None = None,
    *,
    metrics: list[str] | None = None,
    all_metrics: bool = False,
    method: str = "auto",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    cluster: str | None = None,
    max_error_rise: float = 0.0,
    filters: CellFilter | None = None,
) -> LedgerDiff:
    """Compare the ledger at ``a_rev`` (default HEAD) with ``b_rev`` (default the workspace).

    ``max_error_rise`` is how much a cell's error rate may rise before it is a problem;
    ``filters`` (axis -> values) keeps the cells that match, on both sides.
    """
    a_rev = a_rev or "HEAD"
    b_rev = b_rev or WORKSPACE
    if "HEAD" in (a_rev, b_rev) and not ledger.git.has_commits:
        raise no_commits_error("no HEAD to compare with")
    a, b = ledger.snapshot(a_rev), ledger.snapshot(b_rev)
    if metrics:
        _check_metrics(metrics, [a, b])
    directions = directions_at(b if b.params else a)  # the newer side's say
    check_filter(filters, [c.axes for s in (a, b) for c in s.cells.values()])
    a_keys = [k for k, c in a.cells.items() if matches(c.axes, filters)]
    b_keys = [k for k, c in b.cells.items() if matches(c.axes, filters)]
    common = [k for k in b_keys if k in a.cells]
    changed = [k for k in common if a.cells[k].metrics_oid != b.cells[k].metrics_oid
               or a.cells[k].scores_oid != b.cells[k].scores_oid]  # fmt: skip
    old_m, new_m = a.metrics(changed), b.metrics(changed)
    # A metrics file that could not be read (warned about already) is no change to report.
    unreadable = [k for k in changed if k not in old_m or k not in new_m]
    changed = [k for k in changed if k not in unreadable]
    tested: list[tuple[str, str, str, str | None]] = []
    changes: list[MetricChange] = []
    timings: list[MetricChange] = []
    asked = set(metrics or [])
    for key in changed:
        flat_old, flat_new = flatten(old_m.get(key, {})), flatten(new_m.get(key, {}))
        picked = _pick_metrics(flat_old, flat_new, metrics, all_metrics)
        timing = [m for m in dict.fromkeys([*flat_old, *flat_new])
                  if is_timing_metric(m) and m not in asked]  # fmt: skip
        for metric in dict.fromkeys([*picked, *timing]):
            old, new = as_number(flat_old.get(metric)), as_number(flat_new.get(metric))
            if old == new:
                continue
            change = MetricChange(key, metric, old, new, lower=directions.lower_is_better(metric))
            if metric in timing:  # the clock, not the answers: listed apart
                timings.append(change)
                continue
            changes.append(change)
            category = category_of(metric)
            col = category[1] if category else column_for(metric)
            both = old is not None and new is not None
            if both and col and a.cells[key].scores_oid and b.cells[key].scores_oid:
                tested.append((key, metric, col, category[0] if category else None))
    from evalledger.analysis.training_diff import new_experiments, summary_changes

    trained, trained_timings = summary_changes(a, b, directions, metrics, all_metrics)
    _test_changes(a, b, changes, tested, method=method, alpha=alpha, confidence=confidence,
                  n_resamples=n_resamples, seed=seed, cluster=cluster)  # fmt: skip
    moved = {c.cell for c in changes} | {c.cell for c in timings}
    other = len([k for k in changed if k not in moved])
    from evalledger.ledger.health import cell_health

    added = [k for k in b_keys if k not in a.cells]
    problems = find_problems(cell_health(b), old_m, {**new_m, **b.metrics(added)}, unreadable,
                             max_error_rise=max_error_rise)  # fmt: skip
    problems = [
        p
        for p in problems
        if matches(dict(zip(b.axis_names, p.cell.split("/"), strict=False)), filters)
    ]
    old_p, new_p = {**a.params, **_tracked_params(a)}, {**b.params, **_tracked_params(b)}
    params = [ParamChange(k, old, new) for k, (old, new) in _param_changes(old_p, new_p).items()]
    return LedgerDiff(
        a=a.label, b=b.label, a_commit=a.commit, b_commit=b.commit,
        changes=changes + trained, added=added, experiments=new_experiments(a, b),
        removed=[k for k in a_keys if k not in b.cells],
        params=params, unchanged=len(common) - len(changed) - len(unreadable), alpha=alpha,
        confidence=confidence, method=method, other_changes=other,
        unreadable=unreadable, problems=problems,
        timings=timings + trained_timings,
        notes=[note] if (note := directions.note()) else [],
    )  # fmt: skip


def _tracked_params(snap: Snapshot) -> dict[str, Any]:
    """Tracked experiments' config and params, ``metrics/_params/<name>.yaml:<key>`` -> value.

    The keys are DVC's own (``dvc params diff``); a damaged file is left out with a warning.
    """
    from functools import partial

    from evalledger.project import PARAMS_DIR
    from evalledger.safeload import MAX_PARAMS_BYTES, parse_yaml

    folder = f"metrics/{PARAMS_DIR}/"
    paths = [p for p in snap.files if p.startswith(folder) and p.endswith(".yaml")]
    parse = partial(parse_yaml, max_bytes=MAX_PARAMS_BYTES)
    found = snap.read("params", paths, parse, skip_damaged=True)
    return {f"{path}:{key}": value for path, data in sorted(found.items())
            if isinstance(data, dict) for key, value in flatten(data).items()}  # fmt: skip


def _param_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    fo, fn = flatten(old), flatten(new)
    return {k: (fo.get(k), fn.get(k)) for k in dict.fromkeys([*fo, *fn])
            if fo.get(k) != fn.get(k)}  # fmt: skip


def _test_changes(
    a: Snapshot, b: Snapshot, changes: list[MetricChange],
    tested: list[tuple[str, str, str, str | None]], **options: Any,
) -> None:  # fmt: skip
    if not tested:
        return
    from evalledger.analysis.pairing import paired_arrays
    from evalledger.analysis.significance import compare_paired

    keys = list(dict.fromkeys(k for k, _, _, _ in tested))
    old_t, new_t = a.score_tables(keys), b.score_tables(keys)
    by_id = {(c.cell, c.metric): c for c in changes}
    cluster = options.pop("cluster")
    alpha = options.pop("alpha")
    for key, metric, col, category in tested:
        if key not in old_t or key not in new_t:
            continue
        old, new = old_t[key], new_t[key]
        if category is not None:  # a category's change is tested on its own items
            old, new = category_items(old, category), category_items(new, category)
        pair = paired_arrays(old, new, col, cluster)
        if pair is None:
            continue
        x, y, clusters = pair
        result = compare_paired(x, y, clusters=clusters, **options)
        change = by_id[(key, metric)]
        change.test = result
        change.significant = bool(result.p_value < alpha)
