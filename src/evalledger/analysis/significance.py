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

from evalledger.analysis.intervals import newcombe_paired_interval, wilson_interval
from evalledger.analysis.paired import (
    PairedResult,
    base_fields,
    check_confidence,
    cluster_count,
    is_binary,
    prepare,
    prepare_unpaired,
    standard_error_codes,
    t_critical,
    t_interval,
    z_critical,
)
from evalledger.analysis.resampling import paired_bootstrap, paired_permutation
from evalledger.errors import StatsError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import ArrayLike

    from evalledger.analysis.paired import Clusters, FloatArray

__all__ = [
    "BOOTSTRAP_MIN_ITEMS",
    "METHODS",
    "all_pairs",
    "choose_method",
    "cluster_ttest",
    "compare_paired",
    "compare_unpaired",
    "holm_bonferroni",
    "mcnemar_exact",
    "paired_ttest",
    "wilcoxon_test",
]

#: Names accepted by :func:`compare_paired` (and ``--method``).
METHODS = ("bootstrap", "permutation", "mcnemar", "t-test", "wilcoxon", "auto")

#: ``auto`` uses the percentile bootstrap for continuous scores from this many pairs on.
#: Its interval is about the z-interval with sd(ddof=0), so its coverage is roughly
#: P(|t_{n-1}| < 1.96 * sqrt((n-1)/n)): 0.90 at n = 10, 0.936 at 30, 0.948 at 200.
#: Below it the exact (or Monte Carlo) sign-flip test is used, valid at every n.
BOOTSTRAP_MIN_ITEMS = 200


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


def _with_t_interval(
    base: dict[str, Any], d: FloatArray, confidence: float, result: Any
) -> PairedResult:
    """A scipy test's statistic and p-value, with the t CI and SE of the mean difference."""
    low, high = t_interval(d, confidence)
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


def cluster_ttest(
    a: ArrayLike, b: ArrayLike, clusters: Clusters, *, confidence: float = 0.95
) -> PairedResult:
    """Cluster-robust paired t-test: CR1 standard error, t on G - 1 df (G clusters).

    t = mean(d) / SE_CR1 with ``SE_CR1^2 = G/(G-1) * sum_c (sum_{i in c} (d_i -
    mean d))^2 / n^2`` (statsmodels' ``OLS(d, 1).fit(cov_type="cluster")``); p and
    the CI use Student's t on G - 1 df, which keeps coverage near nominal with few
    clusters where z and the uncorrected SE do not (0.89 at G = 10). With equal-size
    clusters this is exactly the one-sample t-test of the G cluster means.
    """
    confidence = check_confidence(confidence)
    a_arr, b_arr, codes, dropped = prepare(a, b, clusters)
    if codes is None:  # pragma: no cover - clusters is required
        raise StatsError("the clustered t-test needs cluster labels", "pass clusters")
    d = b_arr - a_arr
    g = cluster_count(codes)
    base = base_fields("cluster-t", a_arr, b_arr, dropped, confidence)
    base["details"].update({"clusters": g, "df": g - 1, "se": "CR1"})
    mean = float(np.mean(d))
    se = 0.0 if np.ptp(d) == 0.0 else standard_error_codes(d, codes)
    if se == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
        return PairedResult(**base, ci_low=mean, ci_high=mean, p_value=p, se=0.0)
    p = float(2.0 * scipy.special.stdtr(g - 1, -abs(mean / se)))
    half = t_critical(g - 1, confidence) * se
    return PairedResult(**base, ci_low=mean - half, ci_high=mean + half, p_value=p, se=se)


# -------------------------------------------------------------------------- unpaired


def compare_unpaired(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> PairedResult:
    """Two independent samples: Fisher's exact test for 0/1 scores, else Welch's t-test.

    0/1 scores: p is ``scipy.stats.fisher_exact``'s two-sided p and the CI is
    Newcombe's hybrid score interval (method 10 of Newcombe 1998) of p_B - p_A, from
    the two Wilson intervals; ``se`` is the Wald SE. Otherwise ``scipy.stats.ttest_ind(b,
    a, equal_var=False)`` with its Welch CI. ``n`` counts both sides (``n_a``, ``n_b``
    in ``details``) and ``effect_size`` is Cohen's d on the pooled sd.
    """
    import scipy.stats

    confidence = check_confidence(confidence)
    a_arr, b_arr, dropped_a, dropped_b = prepare_unpaired(a, b)
    na, nb = len(a_arr), len(b_arr)
    mean_a, mean_b = float(np.mean(a_arr)), float(np.mean(b_arr))
    diff = mean_b - mean_a
    va, vb = float(np.var(a_arr, ddof=1)), float(np.var(b_arr, ddof=1))
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    details: dict[str, float | int | str] = {"n_a": na, "n_b": nb}
    if dropped_a or dropped_b:
        details.update({"dropped_nan_a": dropped_a, "dropped_nan_b": dropped_b})
    fields: dict[str, Any] = {"n": na + nb, "mean_a": mean_a, "mean_b": mean_b,
                              "diff": diff, "confidence": confidence, "details": details,
                              "effect_size": (diff / pooled if pooled > 0 else
                                              (0.0 if diff == 0 else math.nan))}  # fmt: skip
    if is_binary(a_arr) and is_binary(b_arr):
        sa, sb = int(a_arr.sum()), int(b_arr.sum())
        p = float(scipy.stats.fisher_exact([[sb, nb - sb], [sa, na - sa]]).pvalue)
        z = z_critical(confidence)
        la, ua = wilson_interval(mean_a, na, z)
        lb, ub = wilson_interval(mean_b, nb, z)
        low = diff - math.sqrt((mean_b - lb) ** 2 + (ua - mean_a) ** 2)
        high = diff + math.sqrt((ub - mean_b) ** 2 + (mean_a - la) ** 2)
        se = math.sqrt(mean_a * (1 - mean_a) / na + mean_b * (1 - mean_b) / nb)
        return PairedResult(method="fisher", **fields, ci_low=max(-1.0, low),
                            ci_high=min(1.0, high), p_value=min(1.0, p), se=se)  # fmt: skip
    se = math.sqrt(va / na + vb / nb)
    if se == 0.0:  # both sides constant
        return PairedResult(method="welch", **fields, ci_low=diff, ci_high=diff,
                            p_value=1.0 if diff == 0 else 0.0, se=0.0)  # fmt: skip
    result = scipy.stats.ttest_ind(b_arr, a_arr, equal_var=False)
    ci = result.confidence_interval(confidence_level=confidence)
    details.update({"statistic": float(result.statistic), "df": float(result.df)})
    return PairedResult(method="welch", **fields, ci_low=float(ci.low), ci_high=float(ci.high),
                        p_value=float(result.pvalue), se=se)  # fmt: skip


# -------------------------------------------------------------------------- dispatch


def choose_method(a: FloatArray, b: FloatArray, clustered: bool) -> tuple[str, str]:
    """The test ``auto`` runs on prepared (NaN-free) scores, and why, in a few words.

    Clustered items: the cluster-robust t-test (CR1, t on G - 1 df). Paired 0/1
    scores: McNemar's exact test. Other scores: the sign-flip permutation test (exact
    up to 2**16 patterns, else Monte Carlo) below :data:`BOOTSTRAP_MIN_ITEMS` pairs,
    the percentile bootstrap from there on.
    """
    if clustered:
        return "cluster-t", "clustered items"
    if is_binary(a) and is_binary(b):
        return "mcnemar", "0/1 scores"
    if len(a) < BOOTSTRAP_MIN_ITEMS:
        return "permutation", f"n < {BOOTSTRAP_MIN_ITEMS}"
    return "bootstrap", f"n >= {BOOTSTRAP_MIN_ITEMS}"


def compare_paired(
    a: ArrayLike,
    b: ArrayLike,
    *,
    method: str = "auto",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int | None = 0,
    clusters: Clusters | None = None,
) -> PairedResult:
    """Run the paired comparison named by ``method`` (one of :data:`METHODS`).

    ``"auto"``, the default, runs :func:`choose_method`'s test and records why in
    ``details["auto"]``. With ``clusters``, ``"t-test"`` is :func:`cluster_ttest` and
    ``"bootstrap"`` resamples whole clusters; the other methods refuse clusters.
    """
    if method not in METHODS:
        raise StatsError(
            f"unknown significance method {method!r}", "use one of: " + ", ".join(METHODS)
        )
    reason = None
    if method == "auto":
        a_arr, b_arr, _, _ = prepare(a, b, clusters)
        method, reason = choose_method(a_arr, b_arr, clusters is not None)
    elif clusters is not None and method not in ("t-test", "bootstrap"):
        raise StatsError(
            f"clustered items are supported by auto, t-test and bootstrap, not {method}",
            "use --method t-test (cluster-robust) or bootstrap, or leave clusters out",
        )
    result = _run(method, a, b, n_resamples, confidence, seed, clusters)
    if reason is not None:
        result.details["auto"] = reason
    return result


def _run(
    method: str, a: ArrayLike, b: ArrayLike, n_resamples: int, confidence: float,
    seed: int | None, clusters: Clusters | None,
) -> PairedResult:  # fmt: skip
    if method == "bootstrap":
        return paired_bootstrap(
            a, b, n_resamples=n_resamples, confidence=confidence, seed=seed, clusters=clusters
        )
    if clusters is not None:  # t-test or cluster-t: the cluster-robust t-test
        return cluster_ttest(a, b, clusters, confidence=confidence)
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
    samples: Mapping[str, ArrayLike], *, method: str = "auto", **kwargs: Any
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
