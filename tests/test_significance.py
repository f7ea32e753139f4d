"""Paired statistics: agreement with scipy, Monte Carlo accuracy, hand-checked formulas."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from evalledger.analysis.paired import (
    mean_ci,
    mean_ci_from_moments,
    paired_standard_error,
    standard_error,
)
from evalledger.analysis.power import minimum_detectable_effect, power, required_items
from evalledger.analysis.resampling import _bootstrap_means, paired_bootstrap, paired_permutation
from evalledger.analysis.significance import (
    BOOTSTRAP_MIN_ITEMS,
    METHODS,
    all_pairs,
    cluster_ttest,
    compare_paired,
    holm_bonferroni,
    mcnemar_exact,
    paired_ttest,
    wilcoxon_test,
)
from evalledger.errors import StatsError


def _mean_diff(x, y, axis=-1):
    return np.mean(y, axis=axis) - np.mean(x, axis=axis)


def _continuous(n, seed, shift=0.05, noise=0.3):
    rng = np.random.default_rng(seed)
    a = rng.random(n)
    return a, a + rng.normal(shift, noise, n)


def _binary(n, seed, p_a=0.6, p_b=0.65):
    rng = np.random.default_rng(seed)
    return (rng.random(n) < p_a).astype(float), (rng.random(n) < p_b).astype(float)


def _mcnemar_arrays(a_only, b_only, both=7, neither=4):
    a = [1] * a_only + [0] * b_only + [1] * both + [0] * neither
    b = [0] * a_only + [1] * b_only + [1] * both + [0] * neither
    return np.array(a, dtype=float), np.array(b, dtype=float)


# ---------------------------------------------------------------- agreement with scipy


def test_ttest_matches_scipy():
    a, b = _continuous(40, seed=1)
    result = paired_ttest(a, b, confidence=0.9)
    reference = scipy.stats.ttest_rel(b, a)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    ci = reference.confidence_interval(confidence_level=0.9)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert result.diff == pytest.approx(np.mean(b) - np.mean(a))
    assert result.details["df"] == 39


def test_ttest_and_wilcoxon_handle_identical_runs():
    a = np.array([0.2, 0.5, 0.9, 0.1])
    for test in (paired_ttest, wilcoxon_test):
        result = test(a, a.copy())
        assert (result.p_value, result.ci_low, result.ci_high) == (1.0, 0.0, 0.0)
        assert result.effect_size == 0.0


@pytest.mark.parametrize("data", ["continuous", "binary"])
def test_wilcoxon_matches_scipy(data):
    a, b = _continuous(30, seed=2) if data == "continuous" else _binary(80, seed=2)
    result = wilcoxon_test(a, b)
    assert result.p_value == pytest.approx(scipy.stats.wilcoxon(b - a).pvalue, rel=1e-12)
    # Its CI is the t interval of the mean difference.
    ci = scipy.stats.ttest_rel(b, a).confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)


@pytest.mark.parametrize(("a_only", "b_only"), [(3, 9), (5, 5), (0, 7), (12, 2), (1, 0), (40, 55)])
def test_mcnemar_matches_binomtest(a_only, b_only):
    a, b = _mcnemar_arrays(a_only, b_only)
    result = mcnemar_exact(a, b)
    expected = scipy.stats.binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert result.details == {"a_only": a_only, "b_only": b_only}
    n = len(a)
    se = math.sqrt(a_only + b_only - (b_only - a_only) ** 2 / n) / n
    assert result.se == pytest.approx(se)
    assert result.diff == pytest.approx((b_only - a_only) / n)
    assert -1.0 <= result.ci_low < result.diff < result.ci_high <= 1.0


def test_mcnemar_ci_is_newcombes_published_example():
    # Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017),
    # table 8.x (Cavo et al., 2012): 59 both, 6 first only, 16 second only, 80 neither;
    # the square-and-add interval printed there is -0.0621 (-0.1186 to -0.0046).
    a, b = _mcnemar_arrays(16, 6, both=59, neither=80)
    result = mcnemar_exact(a, b)
    assert round(result.diff, 4) == -0.0621
    assert (round(result.ci_low, 4), round(result.ci_high, 4)) == (-0.1186, -0.0046)


def test_mcnemar_ci_stays_inside_minus_one_one_at_tiny_n():
    # Every pair discordant one way: the Wald interval had zero width here, and at
    # n = 3 with mixed pairs it reached past -1.
    for a_only, b_only, both, neither in [(3, 0, 0, 0), (2, 1, 0, 0), (0, 2, 0, 0)]:
        a, b = _mcnemar_arrays(a_only, b_only, both=both, neither=neither)
        result = mcnemar_exact(a, b)
        assert -1.0 <= result.ci_low <= result.diff <= result.ci_high <= 1.0
        assert result.ci_high - result.ci_low > 0.3


def test_mcnemar_without_discordant_pairs_has_p_one():
    a, b = _mcnemar_arrays(0, 0)
    result = mcnemar_exact(a, b)
    assert result.p_value == 1.0 and result.se == 0.0
    # Agreement on 11 items does not prove the models equal: the interval keeps width.
    assert -1.0 < result.ci_low < 0.0 < result.ci_high < 1.0


def _scipy_sign_flip(d, n_resamples, seed=None):
    return scipy.stats.permutation_test(
        (d,),
        lambda x, axis=-1: np.mean(x, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    ).pvalue


def test_exact_permutation_matches_scipy():
    a, b = _continuous(11, seed=3, shift=0.15)
    result = paired_permutation(a, b, n_resamples=5_000)
    assert result.details["null"] == "exact"
    assert result.details["sign_patterns"] == 2**11
    assert result.p_value == pytest.approx(_scipy_sign_flip(b - a, np.inf), rel=1e-12)


def test_exact_permutation_ignores_zero_differences():
    # Scipy enumerates all 2**12 sign patterns; zeros only duplicate each of our 2**8.
    a = np.array([0.5, 0.2, 0.9, 0.4, 0.1, 0.7, 0.3, 0.8, 0.6, 0.6, 0.25, 0.75])
    b = np.array([0.9, 0.2, 1.0, 0.7, 0.1, 0.65, 0.8, 0.8, 0.95, 0.6, 0.5, 0.7])
    result = paired_permutation(a, b, n_resamples=1_000)
    assert result.details["sign_patterns"] == 2**8
    assert result.p_value == pytest.approx(_scipy_sign_flip(b - a, np.inf), rel=1e-12)


def test_monte_carlo_permutation_agrees_with_scipy():
    a, b = _continuous(300, seed=4, shift=0.05)
    r = 20_000
    ours = paired_permutation(a, b, n_resamples=r, seed=5).p_value
    theirs = _scipy_sign_flip(b - a, r, seed=6)
    assert 0.005 < theirs < 0.5  # a p-value where the comparison has teeth
    assert abs(ours - theirs) < 4 * math.sqrt(2 * theirs * (1 - theirs) / r) + 1e-3


def test_monte_carlo_permutation_on_binary_matches_exact_binomial():
    # d in {-1, 0, 1}: with m nonzero, T* = 2*Binomial(m, 1/2) - m, so the exact p is
    # P(|2B - m| >= |T|), a sum of binomial tail probabilities.
    a, b = _binary(400, seed=7, p_a=0.6, p_b=0.66)
    d = b - a
    m, t = int(np.count_nonzero(d)), int(d.sum())
    k = np.arange(m + 1)
    exact = float(scipy.stats.binom.pmf(k, m, 0.5)[np.abs(2 * k - m) >= abs(t)].sum())
    r = 20_000
    result = paired_permutation(a, b, n_resamples=r, seed=8)
    assert result.details["null"] == "monte-carlo"
    assert abs(result.p_value - exact) < 4 * math.sqrt(exact * (1 - exact) / r) + 1e-3


# ------------------------------------------------------------------------- bootstrap


def _assert_ci_close(ci1, ci2, boot_sd, n):
    # Each percentile endpoint has Monte Carlo sd ~0.027 boot_sd at R = 10,000; 0.2
    # boot_sd is ~5 sd of the difference of two runs, plus one lattice step of 1/n.
    tolerance = 0.2 * boot_sd + 1.0 / n
    assert ci1[0] == pytest.approx(ci2[0], abs=tolerance)
    assert ci1[1] == pytest.approx(ci2[1], abs=tolerance)


@pytest.mark.parametrize(("data", "path"), [("binary", "counts"), ("continuous", "index")])
def test_bootstrap_ci_matches_scipy(data, path):
    n, r = 1_000, 10_000
    a, b = _binary(n, seed=9) if data == "binary" else _continuous(n, seed=9)
    result = paired_bootstrap(a, b, n_resamples=r, seed=10)
    assert result.details["path"] == path
    reference = scipy.stats.bootstrap(
        (a, b),
        _mean_diff,
        paired=True,
        vectorized=True,
        n_resamples=r,
        method="percentile",
        rng=np.random.default_rng(11),
    )
    ci = reference.confidence_interval
    _assert_ci_close(
        (result.ci_low, result.ci_high), (ci.low, ci.high), reference.standard_error, n
    )
    assert result.details["bootstrap_se"] == pytest.approx(reference.standard_error, rel=0.05)
    assert result.se == pytest.approx(np.std(b - a, ddof=1) / math.sqrt(n))


@pytest.mark.parametrize("clustered", [False, True])
def test_counts_and_index_paths_agree(clustered):
    rng = np.random.default_rng(12)
    if clustered:
        # 600 clusters of 1-3 items with 0/1 differences: few distinct (sum, size) units.
        sizes = rng.integers(1, 4, 600)
        sums = rng.binomial(sizes, 0.3).astype(float)
    else:
        sums = rng.choice([-1.0, 0.0, 1.0], size=2_000, p=[0.2, 0.5, 0.3])
        sizes = np.ones(len(sums), dtype=np.int64)
    r = 20_000
    by_counts, _ = _bootstrap_means(sums, sizes, r, np.random.default_rng(1), path="counts")
    by_index, _ = _bootstrap_means(sums, sizes, r, np.random.default_rng(2), path="index")
    sd = by_index.std()
    assert by_counts.mean() == pytest.approx(sums.sum() / sizes.sum(), abs=5 * sd / math.sqrt(r))
    assert by_index.mean() == pytest.approx(sums.sum() / sizes.sum(), abs=5 * sd / math.sqrt(r))
    assert by_counts.std() == pytest.approx(sd, rel=0.05)
    for q in (0.025, 0.5, 0.975):
        assert np.quantile(by_counts, q) == pytest.approx(np.quantile(by_index, q), abs=0.15 * sd)


def test_bootstrap_is_reproducible_with_a_seed():
    a, b = _continuous(500, seed=13)
    first = paired_bootstrap(a, b, n_resamples=2_000, seed=7)
    assert paired_bootstrap(a, b, n_resamples=2_000, seed=7) == first
    other = paired_bootstrap(a, b, n_resamples=2_000, seed=8)
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)
    a, b = _binary(500, seed=13)
    assert paired_bootstrap(a, b, n_resamples=2_000, seed=7) == paired_bootstrap(
        a, b, n_resamples=2_000, seed=7
    )


def test_bootstrap_p_value_bounds():
    r = 999
    # Every difference positive: no resample reaches 0, so p is the smallest possible.
    result = paired_bootstrap(np.zeros(50), np.full(50, 0.5), n_resamples=r)
    assert result.p_value == pytest.approx(2 / (r + 1))
    assert math.isnan(result.effect_size)
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["effect_size"] is None
    result = paired_bootstrap(np.ones(50), np.ones(50), n_resamples=r)
    assert result.p_value == 1.0
    assert (result.ci_low, result.ci_high, result.effect_size) == (0.0, 0.0, 0.0)


def test_cluster_bootstrap_is_wider_for_correlated_items():
    rng = np.random.default_rng(14)
    n_clusters, size = 40, 25
    clusters = np.repeat([f"passage-{i}" for i in range(n_clusters)], size)
    # Items of a cluster share most of their difference: strong intra-cluster correlation.
    d = np.repeat(rng.normal(0.05, 0.3, n_clusters), size) + rng.normal(0, 0.05, n_clusters * size)
    a = rng.random(n_clusters * size)
    b = a + d
    plain = paired_bootstrap(a, b, n_resamples=4_000, seed=1)
    clustered = paired_bootstrap(a, b, n_resamples=4_000, seed=1, clusters=clusters)
    assert clustered.details["clusters"] == n_clusters
    assert clustered.diff == pytest.approx(plain.diff)
    plain_width = plain.ci_high - plain.ci_low
    clustered_width = clustered.ci_high - clustered.ci_low
    assert clustered_width > 3 * plain_width
    # The cluster bootstrap's spread tracks the clustered standard error.
    assert clustered.se == pytest.approx(paired_standard_error(a, b, clusters))
    assert clustered_width == pytest.approx(2 * 1.96 * clustered.se, rel=0.15)


# ---------------------------------------------------------------- SE, CIs, Holm, power


def test_clustered_standard_error_by_hand():
    x = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    clusters = ["a", "a", "b", "b", "c", "c"]
    # mean 0.5; residuals +.5 -.5 | +.5 +.5 | -.5 -.5; cluster sums 0, 1, -1;
    # CR1 with G = 3: SE_C^2 = 3/2 * (0^2 + 1^2 + (-1)^2) / 6^2 = 3 / 36.
    expected = math.sqrt(3) / 6
    assert standard_error(x, clusters) == pytest.approx(expected)
    # Plain: var(ddof=1) = 6 * 0.25 / 5 = 0.3, SE = sqrt(0.3 / 6).
    assert standard_error(x) == pytest.approx(math.sqrt(0.3 / 6))
    # Tuple labels take the hashing path and must group the same way.
    tuples = [("q", 1), ("q", 1), ("q", 2), ("q", 2), ("r", 1), ("r", 1)]
    assert standard_error(x, tuples) == pytest.approx(expected)
    # 1 and "1" are different labels (an array conversion would merge them).
    assert standard_error(x, [1, 1, "1", "1", 2.5, 2.5]) == pytest.approx(expected)
    assert standard_error(x, np.array([3, 3, 1, 1, 2, 2])) == pytest.approx(expected)
    # Paired: the SE of b - a.
    a = [0.0] * 6
    assert paired_standard_error(a, x, clusters) == pytest.approx(expected)


def test_mean_ci_and_moments():
    x = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, float("nan")]
    mean, low, high = mean_ci(x, confidence=0.95)
    half = 1.959963984540054 * math.sqrt(0.3 / 6)
    assert (mean, low, high) == pytest.approx((0.5, 0.5 - half, 0.5 + half))
    means, lows, highs = mean_ci_from_moments(
        np.array([0.5, 0.2, 0.3]), np.array([math.sqrt(0.3), 0.4, 0.1]), np.array([6, 100, 0])
    )
    assert means.tolist() == [0.5, 0.2, 0.3]
    assert lows[0] == pytest.approx(low) and highs[0] == pytest.approx(high)
    assert highs[1] - lows[1] == pytest.approx(2 * 1.959963984540054 * 0.04)
    assert math.isnan(lows[2]) and math.isnan(highs[2])


def test_holm_by_hand():
    # Sorted: 0.005 * 4 = 0.02; 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04, raised
    # to 0.06 by the running maximum. Back in input order: [0.03, 0.06, 0.06, 0.02].
    assert holm_bonferroni([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Capped at 1; ties keep equal adjusted values.
    assert holm_bonferroni([0.5, 0.4, 0.4]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm_bonferroni([0.01, 0.01]) == pytest.approx([0.02, 0.02])
    assert holm_bonferroni([]) == []


def test_power_and_minimum_detectable_effect():
    # z_{0.975} = 1.959964, z_{0.8} = 0.841621: MDE = 2.801585 * 0.5 / sqrt(100).
    mde = minimum_detectable_effect(0.5, 100)
    assert mde == pytest.approx((1.959963984540054 + 0.8416212335729143) * 0.05)
    # At the MDE the power is 0.8, up to the far tail term Phi(-2 z - z_power) ~ 1e-6.
    assert power(mde, 0.5, 100) == pytest.approx(0.8, abs=1e-5)
    assert power(-mde, 0.5, 100) == pytest.approx(0.8, abs=1e-5)
    assert power(0.0, 0.5, 100) == pytest.approx(0.05)
    assert required_items(minimum_detectable_effect(0.5, 400), 0.5) == 400
    assert required_items(mde, 0.5) == 100
    assert required_items(0.1, 0.5) == math.ceil((2.801585218 * 5) ** 2)
    # A design effect of 4 doubles the MDE and quadruples the items needed.
    assert minimum_detectable_effect(0.5, 100, design_effect=4.0) == pytest.approx(2 * mde)
    assert required_items(mde, 0.5, design_effect=4.0) == 400
    assert power(mde, 0.5, 400, design_effect=4.0) == pytest.approx(0.8, abs=1e-5)


# ------------------------------------------------------------ dispatch and all pairs


def test_all_pairs_holm_adjusts_across_pairs():
    rng = np.random.default_rng(15)
    base = rng.random(60)
    samples = {
        "old": base,
        "new": base + rng.normal(0.08, 0.2, 60),
        "mid": base + rng.normal(0.02, 0.2, 60),
    }
    pairs = all_pairs(samples, method="t-test")
    assert [(x, y) for x, y, _ in pairs] == [("old", "new"), ("old", "mid"), ("new", "mid")]
    raw = [result.p_value for _, _, result in pairs]
    assert [result.p_adjusted for _, _, result in pairs] == pytest.approx(holm_bonferroni(raw))
    first = pairs[0][2]
    assert first.diff == pytest.approx(np.mean(samples["new"]) - np.mean(samples["old"]))
    assert first.p_value == pytest.approx(scipy.stats.ttest_rel(samples["new"], base).pvalue)
    # significant() judges by the adjusted p-value once it is set.
    for _, _, result in pairs:
        assert result.significant(0.05) == (result.p_adjusted < 0.05)


def test_compare_paired_auto_and_dispatch():
    a, b = _binary(100, seed=16)
    auto = compare_paired(a, b)  # auto is the default
    assert auto.method == "mcnemar" and auto.details["auto"] == "0/1 scores"
    clustered = compare_paired(a, b, clusters=np.arange(100) // 5)
    assert clustered.method == "cluster-t" and clustered.details["clusters"] == 20
    a, b = _continuous(50, seed=16)
    assert compare_paired(a, b).method == "permutation"
    a, b = _continuous(BOOTSTRAP_MIN_ITEMS, seed=16)
    assert compare_paired(a, b).method == "bootstrap"
    assert compare_paired(a[:-1], b[:-1]).method == "permutation"
    for method in METHODS[:-1]:
        if method == "mcnemar":
            continue
        result = compare_paired(a, b, method=method, n_resamples=500, confidence=0.9)
        assert result.method == method and result.confidence == 0.9
        assert result.ci_low < result.diff < result.ci_high
        json.dumps(result.to_dict(), allow_nan=False)
    # With clusters, --method t-test is the cluster-robust t-test.
    labels = np.arange(len(a)) % 7
    assert compare_paired(a, b, method="t-test", clusters=labels) == cluster_ttest(a, b, labels)


def test_nan_pairs_are_dropped_and_counted():
    a = np.array([0.1, np.nan, 0.5, 0.7, 0.2])
    b = np.array([0.3, 0.4, np.nan, 0.9, 0.6])
    result = paired_ttest(a, b)
    assert result.n == 3
    assert result.details["dropped_nan_pairs"] == 2
    assert result.p_value == pytest.approx(
        scipy.stats.ttest_rel([0.3, 0.9, 0.6], [0.1, 0.7, 0.2]).pvalue
    )


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: paired_ttest([0.1, 0.2, 0.3], [0.1, 0.2]), "equal lengths"),
        (lambda: paired_bootstrap([0.5], [0.7]), "at least 2 paired items"),
        (lambda: paired_bootstrap([], []), "at least 2 paired items"),
        (lambda: wilcoxon_test([0.5, np.nan, 1], [0.7, 1, np.nan]), "only 1 of 3 items"),
        (lambda: mcnemar_exact([0, 1, 0.5], [1, 1, 0]), "binary (0/1)"),
        (lambda: compare_paired([0, 1], [1, 1], method="z-test"), "unknown significance method"),
        (lambda: compare_paired([0, 1], [1, 1], method="wilcoxon", clusters=[1, 2]), "t-test"),
        (lambda: standard_error([0.1, 0.2, 0.3], clusters=["a", "a", "a"]), "2 clusters"),
        (lambda: paired_bootstrap([0.1, 0.2], [0.2, 0.3], confidence=95), "confidence"),
        (lambda: required_items(0.0, 0.5), "effect"),
        (lambda: holm_bonferroni([0.2, 1.5]), "[0, 1]"),
    ],
)
def test_bad_input_raises_one_line_stats_error(call, fragment):
    with pytest.raises(StatsError) as info:
        call()
    line = info.value.one_line()
    assert fragment in line
    assert "\n" not in line
    assert info.value.hint


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(StatsError) as info:
        compare_paired([0, 1], [1, 1], method="z-test")
    assert "bootstrap, permutation, mcnemar, t-test, wilcoxon, auto" in info.value.one_line()


def test_mcnemar_error_names_the_fix():
    with pytest.raises(StatsError) as info:
        mcnemar_exact([0, 1, 1], [1, 0.5, 0])
    assert info.value.one_line() == (
        "McNemar's test needs binary (0/1) scores; B has values like 0.5; "
        "use --method bootstrap or permutation"
    )


def test_threads_never_change_the_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    import evalledger.analysis.resampling as sig

    rng = np.random.default_rng(11)
    a = rng.normal(0.5, 0.2, 4000)
    b = a + rng.normal(0.02, 0.2, 4000)
    monkeypatch.setattr(sig, "_THREADED_ELEMENTS", 1)  # thread even this small case
    results = []
    for cores in (1, 2, 3):
        monkeypatch.setattr(sig, "_cpu_count", lambda cores=cores: cores)
        results.append(sig.paired_bootstrap(a, b, n_resamples=2000, seed=4))
    assert results[0].details["path"] == "index"
    assert results[0] == results[1] == results[2]
