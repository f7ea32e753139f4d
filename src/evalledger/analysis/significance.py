"""Paired statistics behind ``evalledger significance`` and ``evalledger diff``.

Every test here compares two aligned arrays of per-item scores: item ``i`` of ``a`` is
paired with item ``i`` of ``b``. The effect is always ``mean(b) - mean(a)`` (B is the
new run, A the baseline) and the per-item differences are ``d = b - a``. Pairs where
either score is NaN are dropped and the number of pairs used is reported.

This module holds the closed-form tests (McNemar, paired t, Wilcoxon), the
:func:`compare_paired` dispatcher and Holm's correction across pairs. ``PairedResult``
and the shared input handling are in :mod:`evalledger.analysis.paired`, the bootstrap
and permutation test in :mod:`evalledger.analysis.resampling`, and power and sample
sizes in :mod:`evalledger.analysis.power`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

# scipy.stats takes ~0.7 s to import (scipy.special ~0.2 s): only the t-test and
# Wilcoxon import it, so a diff of many cells with McNemar's test does not pay for it.
import scipy.special

from evalledger.analysis.intervals import newcombe_paired_interval
from evalledger.analysis.paired import (
    PairedResult,
    base_fields,
    check_confidence,
    is_binary,
    prepare,
    standard_error_codes,
    z_critical,
)
from evalledger.analysis.resampling import paired_bootstrap, paired_permutation
from evalledger.errors import StatsError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import ArrayLike

    from evalledger.analysis.paired import Clusters, FloatArray

__all__ = [
    "METHODS",
    "all_pairs",
    "compare_paired",
    "holm_bonferroni",
    "mcnemar_exact",
    "paired_ttest",
    "wilcoxon_test",
]

#: Names accepted by :func:`compare_paired` (and ``--method``).
METHODS = ("bootstrap", "permutation", "mcnemar", "t-test", "wilcoxon", "auto")


# ------------------------------------------------------------------ closed-form tests


def mcnemar_exact(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> PairedResult:
    """Exact McNemar test of binary (0/1) paired scores.

    With b10 = #(a=1, b=0) and b01 = #(a=0, b=1), p = min(1, 2 * BinomCDF(min(b10,
    b01); b10 + b01, 1/2)), and 1 when no pair is discordant. The CI is Newcombe's
    square-and-add score interval of the paired difference (it stays inside [-1, 1]);
    ``se`` is the usual sqrt(b10 + b01 - (b01 - b10)**2 / n) / n.
    """
    confidence = check_confidence(confidence)
    a_arr, b_arr, _, dropped = prepare(a, b)
    for name, arr in (("A", a_arr), ("B", b_arr)):
        if not is_binary(arr):
            example = arr[(arr != 0.0) & (arr != 1.0)][0]
            raise StatsError(
                f"McNemar's test needs binary (0/1) scores; {name} has values like {example:g}",
                "use --method bootstrap or permutation",
            )
    n = len(a_arr)
    a_only = int(np.count_nonzero((a_arr == 1.0) & (b_arr == 0.0)))
    b_only = int(np.count_nonzero((a_arr == 0.0) & (b_arr == 1.0)))
    discordant = a_only + b_only
    if discordant == 0:
        p = 1.0
    else:
        p = min(1.0, 2.0 * float(scipy.special.bdtr(min(a_only, b_only), discordant, 0.5)))
    # max() guards a rounding-level negative variance when every pair is discordant one way.
    se = math.sqrt(max(0.0, discordant - (b_only - a_only) ** 2 / n)) / n
    base = base_fields("mcnemar", a_arr, b_arr, dropped, confidence)
    base["details"].update({"a_only": a_only, "b_only": b_only})
    both = int(np.count_nonzero((a_arr == 1.0) & (b_arr == 1.0)))
    low, high = newcombe_paired_interval(
        both, b_only, a_only, n - both - discordant, z_critical(confidence)
    )
    return PairedResult(**base, ci_low=low, ci_high=high, p_value=p, se=se)


def _t_interval(d: FloatArray, confidence: float) -> tuple[float, float]:
    """The t-distribution CI (n - 1 df) of mean(d)."""
    mean = float(np.mean(d))
    se = standard_error_codes(d, None)
    half = float(scipy.special.stdtrit(len(d) - 1, 0.5 + confidence / 2.0)) * se
    return mean - half, mean + half


def _with_t_interval(
    base: dict[str, Any], d: FloatArray, confidence: float, result: Any
) -> PairedResult:
    """A scipy test's statistic and p-value, with the t CI and SE of the mean difference."""
    low, high = _t_interval(d, confidence)
    base["details"]["statistic"] = float(result.statistic)
    se = standard_error_codes(d, None)
    return PairedResult(**base, ci_low=low, ci_high=high, p_value=float(result.pvalue), se=se)


def paired_ttest(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> PairedResult:
    """Paired t-test (``scipy.stats.ttest_rel(b, a)``) with a t CI on n - 1 df.

    Constant differences have no variance, where scipy returns NaN: all-zero
    differences give p = 1 and CI [0, 0]; a nonzero constant gives p = 0 and a
    zero-width CI at the difference.
    """
    confidence = check_confidence(confidence)
    a_arr, b_arr, _, dropped = prepare(a, b)
    d = b_arr - a_arr
    base = base_fields("t-test", a_arr, b_arr, dropped, confidence)
    base["details"]["df"] = len(d) - 1
    if np.ptp(d) == 0.0:
        p = 1.0 if d[0] == 0.0 else 0.0
        return PairedResult(**base, ci_low=float(d[0]), ci_high=float(d[0]), p_value=p, se=0.0)
    import scipy.stats

    return _with_t_interval(base, d, confidence, scipy.stats.ttest_rel(b_arr, a_arr))


def wilcoxon_test(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> PairedResult:
    """Wilcoxon signed-rank test (``scipy.stats.wilcoxon(b - a)``, zeros dropped).

    All-zero differences give p = 1. The CI is the t CI of the mean difference (as in
    :func:`paired_ttest`): the signed-rank test has no interval for the mean.
    """
    confidence = check_confidence(confidence)
    a_arr, b_arr, _, dropped = prepare(a, b)
    d = b_arr - a_arr
    base = base_fields("wilcoxon", a_arr, b_arr, dropped, confidence)
    base["details"]["ci"] = "t"
    if not np.any(d != 0.0):
        return PairedResult(**base, ci_low=0.0, ci_high=0.0, p_value=1.0, se=0.0)
    import scipy.stats

    return _with_t_interval(base, d, confidence, scipy.stats.wilcoxon(d))


# -------------------------------------------------------------------------- dispatch


def compare_paired(
    a: ArrayLike,
    b: ArrayLike,
    *,
    method: str = "bootstrap",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int | None = 0,
    clusters: Clusters | None = None,
) -> PairedResult:
    """Run the paired comparison named by ``method`` (one of :data:`METHODS`).

    ``"auto"`` picks McNemar when both arrays are binary and the t-test otherwise;
    with ``clusters`` it picks the bootstrap, the only method that accounts for them.
    """
    if method not in METHODS:
        raise StatsError(
            f"unknown significance method {method!r}", "use one of: " + ", ".join(METHODS)
        )
    if method == "auto":
        if clusters is not None:
            method = "bootstrap"
        else:
            a_arr, b_arr, _, _ = prepare(a, b)
            method = "mcnemar" if is_binary(a_arr) and is_binary(b_arr) else "t-test"
    if clusters is not None and method != "bootstrap":
        raise StatsError(
            f"clustered items are only supported by the bootstrap, not {method}",
            "use --method bootstrap, or leave clusters out",
        )
    if method == "bootstrap":
        return paired_bootstrap(
            a, b, n_resamples=n_resamples, confidence=confidence, seed=seed, clusters=clusters
        )
    if method == "permutation":
        return paired_permutation(a, b, n_resamples=n_resamples, seed=seed, confidence=confidence)
    if method == "mcnemar":
        return mcnemar_exact(a, b, confidence=confidence)
    if method == "t-test":
        return paired_ttest(a, b, confidence=confidence)
    return wilcoxon_test(a, b, confidence=confidence)


def holm_bonferroni(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order.

    Sorted ascending, the i-th smallest (0-based) becomes ``(m - i) * p``, made
    non-decreasing by a running maximum and capped at 1.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise StatsError("p-values must be a flat list of numbers", "pass one p-value per test")
    if np.any(np.isnan(p)) or np.any((p < 0.0) | (p > 1.0)):
        raise StatsError(
            "p-values must lie in [0, 1] (found NaN or out-of-range values)",
            "check the tests that produced them",
        )
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(x) for x in adjusted]


def all_pairs(
    samples: Mapping[str, ArrayLike], *, method: str = "bootstrap", **kwargs: Any
) -> list[tuple[str, str, PairedResult]]:
    """Compare every unordered pair of samples, Holm-adjusting p across all pairs.

    Pairs come in the mapping's order, ``(names[i], names[j])`` for i < j, with
    ``names[i]`` as A and ``names[j]`` as B. ``kwargs`` go to :func:`compare_paired`.
    """
    names = list(samples)
    if len(names) < 2:
        raise StatsError(
            f"comparing pairs needs at least 2 samples, got {len(names)}",
            "select two or more runs or models",
        )
    raw = [
        (
            names[i],
            names[j],
            compare_paired(samples[names[i]], samples[names[j]], method=method, **kwargs),
        )
        for i in range(len(names))
        for j in range(i + 1, len(names))
    ]
    adjusted = holm_bonferroni([result.p_value for _, _, result in raw])
    return [
        (first, second, replace(result, p_adjusted=p))
        for (first, second, result), p in zip(raw, adjusted, strict=True)
    ]
