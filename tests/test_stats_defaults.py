"""The default method (``auto``) is sound at every n; clustered SEs carry CR1 and t(G-1).

Checked three ways: exact small cases worked out by hand, agreement with scipy and
statsmodels, and seeded simulations of false-positive rates and coverage.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import statsmodels.api as sm
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep

from evalledger.analysis.paired import mean_ci, standard_error
from evalledger.analysis.resampling import EXACT_SIGN_FLIPS, paired_bootstrap, paired_permutation
from evalledger.analysis.significance import (
    BOOTSTRAP_MIN_ITEMS,
    choose_method,
    cluster_ttest,
    compare_paired,
    compare_unpaired,
)
from evalledger.errors import StatsError


def _mc_bound(rate: float, trials: int) -> float:
    """Three Monte Carlo standard errors of a rate estimated from ``trials`` draws."""
    return 3 * math.sqrt(rate * (1 - rate) / trials)


# ------------------------------------------------------------------- tiny samples


def test_three_items_all_wrong_vs_all_right_default_p_is_exact():
    result = compare_paired([0, 0, 0], [1, 1, 1])
    assert result.method == "mcnemar"
    assert result.p_value >= 0.25
    assert result.p_value == pytest.approx(scipy.stats.binomtest(3, 3, 0.5).pvalue)
    # The percentile bootstrap calls the same data "significant": why it is not the default.
    assert paired_bootstrap([0, 0, 0], [1, 1, 1]).p_value < 0.001


def test_three_continuous_items_all_better_default_p_is_exact():
    result = compare_paired([0.1, 0.2, 0.3], [0.9, 0.8, 0.95])
    assert result.method == "permutation" and result.details["null"] == "exact"
    assert result.p_value == pytest.approx(0.25)  # 2 of the 8 sign patterns are as extreme
    reference = scipy.stats.ttest_rel([0.9, 0.8, 0.95], [0.1, 0.2, 0.3])
    ci = reference.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high))


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 12])
@pytest.mark.parametrize("agree", [2, 40])
def test_k_discordant_pairs_all_one_way_give_two_to_the_one_minus_k(k, agree):
    a = np.array([0.0] * k + [1.0] * agree)
    b = np.array([1.0] * k + [1.0] * agree)
    result = compare_paired(a, b)
    assert result.p_value == pytest.approx(min(1.0, 2.0 ** (1 - k)), rel=1e-12)
    assert result.p_value == pytest.approx(scipy.stats.binomtest(k, k, 0.5).pvalue, rel=1e-12)
    table = [[agree, 0], [k, 0]]  # rows a = 1/0, columns b = 1/0
    assert result.p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-12)


def test_choose_method_thresholds():
    binary = np.array([0.0, 1.0] * 300)
    assert choose_method(binary, binary[::-1].copy(), clustered=False)[0] == "mcnemar"
    assert choose_method(binary, binary, clustered=True)[0] == "cluster-t"
    small = np.linspace(0, 1, BOOTSTRAP_MIN_ITEMS - 1)
    assert choose_method(small, small, clustered=False)[0] == "permutation"
    large = np.linspace(0, 1, BOOTSTRAP_MIN_ITEMS)
    assert choose_method(large, large, clustered=False)[0] == "bootstrap"


def test_exact_sign_flip_up_to_the_limit_matches_scipy():
    rng = np.random.default_rng(3)
    a = rng.random(EXACT_SIGN_FLIPS)
    b = a + rng.normal(0.1, 0.3, EXACT_SIGN_FLIPS)
    # Exact even though 2**16 patterns outnumber the resamples asked for.
    result = paired_permutation(a, b, n_resamples=1_000)
    assert result.details["null"] == "exact"
    assert result.details["sign_patterns"] == 2**EXACT_SIGN_FLIPS
    reference = scipy.stats.permutation_test(
        (b - a,), lambda x, axis=-1: np.mean(x, axis=axis), permutation_type="samples",
        vectorized=True, n_resamples=np.inf,
    )  # fmt: skip
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    more = paired_permutation(np.append(a, 0.3), np.append(b, 0.9), n_resamples=1_000, seed=2)
    assert more.details["null"] == "monte-carlo" and more.n_resamples == 1_000


# ---------------------------------------------------------- simulations under the null


def _null_pairs(rng: np.random.Generator, n: int, shift: float = 0.0):
    """Items of varied difficulty; both runs add iid skewed noise (exchangeable under H0)."""
    difficulty = rng.random(n)
    a = difficulty + rng.exponential(0.2, n)
    b = difficulty + shift + rng.exponential(0.2, n)
    return a, b


def test_default_false_positive_rate_at_n10_is_nominal():
    rng = np.random.default_rng(2024)
    trials = 600
    default_hits = bootstrap_hits = covered = 0
    for _ in range(trials):
        a, b = _null_pairs(rng, 10)
        result = compare_paired(a, b)
        assert result.method == "permutation" and result.details["null"] == "exact"
        default_hits += result.p_value < 0.05
        covered += result.ci_low <= 0.0 <= result.ci_high
        bootstrap_hits += paired_bootstrap(a, b, n_resamples=1_000, seed=None).p_value < 0.05
    fpr = default_hits / trials
    # The exact test's size is 50/1024 = 0.0488 (p moves in steps of 2/1024).
    assert abs(fpr - 0.05) <= _mc_bound(0.05, trials), fpr
    assert covered / trials >= 0.95 - _mc_bound(0.05, trials)
    # The percentile bootstrap, the old default, rejects about twice as often.
    assert bootstrap_hits / trials > 0.05 + _mc_bound(0.05, trials), bootstrap_hits / trials


def test_default_at_n10_has_power_under_an_alternative():
    # Not a test that never rejects: a real shift is found most of the time.
    rng = np.random.default_rng(7)
    hits = sum(compare_paired(*_null_pairs(rng, 10, shift=0.25)).p_value < 0.05
               for _ in range(200))  # fmt: skip
    assert hits / 200 > 0.6


# ---------------------------------------------------------------------- clustered SE


def _clustered(rng: np.random.Generator, clusters: int, size: int, shift: float):
    """Paired scores whose differences share a cluster effect (passages, templates)."""
    labels = np.repeat(np.arange(clusters), size)
    a = rng.random(clusters * size)
    effect = np.repeat(rng.normal(0.0, 0.15, clusters), size)
    b = a + shift + effect + rng.normal(0.0, 0.3, clusters * size)
    return a, b, labels


def test_clustered_coverage_with_10_clusters_of_20_items():
    rng = np.random.default_rng(11)
    trials, shift = 1_000, 0.05
    covered = naive = 0
    for _ in range(trials):
        a, b, labels = _clustered(rng, 10, 20, shift)
        result = compare_paired(a, b, clusters=labels)
        assert result.method == "cluster-t" and result.details["df"] == 9
        covered += result.ci_low <= shift <= result.ci_high
        # Without CR1 and with z instead of t(9): the interval the ledger used to give.
        half = 1.959963984540054 * result.se * math.sqrt(9 / 10)
        naive += abs(result.diff - shift) <= half
    assert covered / trials >= 0.93, covered / trials
    assert naive / trials < covered / trials - 0.02, (naive / trials, covered / trials)


def test_clustered_binary_coverage_with_10_clusters_of_20_items():
    rng = np.random.default_rng(12)

    def draw(clusters: int):
        labels = np.repeat(np.arange(clusters), 20)
        ease = np.repeat(rng.normal(0.0, 1.0, clusters), 20)
        gain = np.repeat(rng.normal(0.4, 0.6, clusters), 20)
        p_a = 1 / (1 + np.exp(-ease))
        p_b = 1 / (1 + np.exp(-(ease + gain)))
        u = rng.random(clusters * 20)  # one uniform per item: correlated a and b
        return (u < p_a).astype(float), (u < p_b).astype(float), labels

    big_a, big_b, _ = draw(200_000)
    truth = float(np.mean(big_b - big_a))
    trials = 1_000
    covered = 0
    for _ in range(trials):
        a, b, labels = draw(10)
        result = compare_paired(a, b, clusters=labels)
        covered += result.ci_low <= truth <= result.ci_high
    assert covered / trials >= 0.93, covered / trials


def test_cluster_ttest_matches_statsmodels_cluster_robust_ols():
    rng = np.random.default_rng(5)
    sizes = [3, 5, 2, 8, 4, 6, 2]
    labels = np.repeat([f"c{i}" for i in range(len(sizes))], sizes)
    n = len(labels)
    a = rng.random(n)
    b = a + rng.normal(0.1, 0.3, n) + np.repeat(rng.normal(0, 0.2, len(sizes)), sizes)
    groups = np.unique(labels, return_inverse=True)[1]
    fit = sm.OLS(b - a, np.ones(n)).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    result = cluster_ttest(a, b, labels, confidence=0.9)
    assert result.se == pytest.approx(fit.bse[0], rel=1e-10)
    assert result.p_value == pytest.approx(fit.pvalues[0], rel=1e-8)
    low, high = fit.conf_int(alpha=0.1)[0]
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-10)
    assert standard_error(b - a, labels) == pytest.approx(fit.bse[0], rel=1e-10)
    mean, mlow, mhigh = mean_ci(b - a, confidence=0.9, clusters=labels)
    assert mean == pytest.approx(fit.params[0])
    assert (mlow, mhigh) == pytest.approx((low, high), rel=1e-10)


def test_cluster_ttest_with_equal_clusters_is_the_t_test_of_cluster_means():
    rng = np.random.default_rng(6)
    a, b, labels = _clustered(rng, 6, 5, 0.1)
    means = (b - a).reshape(6, 5).mean(axis=1)
    reference = scipy.stats.ttest_1samp(means, 0.0)
    result = cluster_ttest(a, b, labels)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    ci = reference.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_cluster_ttest_edge_cases():
    same = cluster_ttest([0.2, 0.4, 0.6, 0.8], [0.2, 0.4, 0.6, 0.8], ["x", "x", "y", "y"])
    assert (same.p_value, same.ci_low, same.ci_high, same.se) == (1.0, 0.0, 0.0, 0.0)
    with pytest.raises(StatsError, match="at least 2 clusters"):
        cluster_ttest([0.1, 0.2, 0.3], [0.3, 0.2, 0.5], ["x", "x", "x"])


# -------------------------------------------------------------------------- unpaired


def test_unpaired_binary_is_fisher_with_newcombes_interval():
    a = np.array([1.0] * 56 + [0.0] * 14)  # 56 / 70
    b = np.array([1.0] * 48 + [0.0] * 32)  # 48 / 80
    result = compare_unpaired(a, b)
    assert result.method == "fisher"
    assert result.details == {"n_a": 70, "n_b": 80}
    assert result.diff == pytest.approx(0.6 - 0.8)
    fisher = scipy.stats.fisher_exact([[48, 32], [56, 14]])
    assert result.p_value == pytest.approx(fisher.pvalue, rel=1e-12)
    low, high = confint_proportions_2indep(48, 80, 56, 70, method="newcomb", compare="diff")
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-10)


def test_unpaired_continuous_is_welch():
    rng = np.random.default_rng(8)
    a, b = rng.normal(0.5, 0.1, 25), rng.normal(0.6, 0.3, 40)
    a[3] = np.nan
    result = compare_unpaired(a, b, confidence=0.9)
    kept = a[~np.isnan(a)]
    reference = scipy.stats.ttest_ind(b, kept, equal_var=False)
    assert result.method == "welch"
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    ci = reference.confidence_interval(0.9)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert result.details["dropped_nan_a"] == 1 and result.n == 24 + 40
    pooled = math.sqrt((23 * np.var(kept, ddof=1) + 39 * np.var(b, ddof=1)) / 62)
    assert result.effect_size == pytest.approx((np.mean(b) - np.mean(kept)) / pooled)


def test_unpaired_needs_two_items_a_side():
    with pytest.raises(StatsError, match="at least 2 scored items on each side") as info:
        compare_unpaired([0.5, np.nan], [0.1, 0.2, 0.3])
    assert info.value.hint
