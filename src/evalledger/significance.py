"""Paired statistics behind ``evalledger significance`` and ``evalledger diff``.

Every test here compares two aligned arrays of per-item scores: item ``i`` of ``a`` is
paired with item ``i`` of ``b``. The effect is always ``mean(b) - mean(a)`` (B is the
new run, A the baseline) and the per-item differences are ``d = b - a``. Pairs where
either score is NaN are dropped and the number of pairs used is reported.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.special

from evalledger.errors import StatsError
from evalledger.intervals import newcombe_paired_interval

# scipy.stats takes ~0.7 s to import (scipy.special ~0.2 s): only the t-test and
# Wilcoxon import it, so a diff of many cells with McNemar's test does not pay for it.
_NORMAL = NormalDist()

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping, Sequence

    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.float64]
    Clusters = Sequence[Hashable] | NDArray[Any]

__all__ = [
    "METHODS",
    "PairedResult",
    "all_pairs",
    "compare_paired",
    "holm_bonferroni",
    "mcnemar_exact",
    "mean_ci",
    "mean_ci_from_moments",
    "minimum_detectable_effect",
    "paired_bootstrap",
    "paired_permutation",
    "paired_standard_error",
    "paired_ttest",
    "power",
    "required_items",
    "standard_error",
    "wilcoxon_test",
]

#: Names accepted by :func:`compare_paired` (and ``--method``).
METHODS = ("bootstrap", "permutation", "mcnemar", "t-test", "wilcoxon", "auto")

# The index path holds about this many indices plus gathered floats per chunk (16 MB);
# chunks that fit in cache are faster than one huge (R x n) array, and memory stays flat.
_CHUNK_ELEMENTS = 1 << 20
# Drawing one multinomial/binomial cell costs roughly as much as drawing and summing
# ~16 resampled items, so the counts path wins when there are < n/16 distinct values.
_COUNTS_PATH_RATIO = 16
# Below this many drawn indices, starting threads costs more than it saves.
_THREADED_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class PairedResult:
    """The outcome of one paired comparison of B against A (effect = mean(b) - mean(a)).

    ``effect_size`` is Cohen's d_z = mean(d) / sd(d, ddof=1): 0.0 when every difference
    is 0 and NaN when the differences are a nonzero constant (d_z is unbounded there);
    :meth:`to_dict` writes NaN and infinities as ``None``.
    """

    method: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    effect_size: float
    se: float
    n_resamples: int | None = None
    seed: int | None = None
    details: dict[str, float | int | str] = field(default_factory=dict, hash=False)
    p_adjusted: float | None = None

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether p < alpha, using the Holm-adjusted p-value when one is set."""
        p = self.p_value if self.p_adjusted is None else self.p_adjusted
        return p < alpha

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; non-finite floats become ``None``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                out[f.name] = {key: _json_value(item) for key, item in value.items()}
            else:
                out[f.name] = _json_value(value)
        return out


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------- input


def _as_scores(x: ArrayLike, name: str) -> FloatArray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StatsError(
            f"scores {name} are not numbers ({exc})", "pass numeric per-item scores"
        ) from None
    if arr.ndim != 1:
        raise StatsError(
            f"scores {name} must be one-dimensional, got shape {arr.shape}",
            "pass one score per item",
        )
    if np.isinf(arr).any():
        raise StatsError(
            f"scores {name} contain infinite values", "use finite per-item scores (or NaN)"
        )
    return arr


def _cluster_codes(clusters: Clusters, n: int) -> NDArray[np.intp]:
    if isinstance(clusters, np.ndarray) and clusters.ndim == 1 and clusters.dtype.kind != "O":
        codes = np.unique(clusters, return_inverse=True)[1]
    else:
        # Hash other labels: numpy cannot sort tuples or mixed types, and converting a
        # list to an array would turn 1 and "1" into the same string.
        seen: dict[Hashable, int] = {}
        try:
            codes = np.fromiter(
                (seen.setdefault(label, len(seen)) for label in clusters),
                dtype=np.intp,
            )
        except TypeError as exc:
            raise StatsError(
                f"cluster labels must be hashable ({exc})", "use strings or numbers as labels"
            ) from None
    if len(codes) != n:
        raise StatsError(
            f"clusters has {len(codes)} labels for {n} items",
            "give exactly one cluster label per item",
        )
    return codes.astype(np.intp, copy=False)


def _drop_nan(
    arrays: list[FloatArray], codes: NDArray[np.intp] | None
) -> tuple[list[FloatArray], NDArray[np.intp] | None, int]:
    keep = ~np.any([np.isnan(arr) for arr in arrays], axis=0)
    dropped = int(keep.size - np.count_nonzero(keep))
    if dropped:
        arrays = [arr[keep] for arr in arrays]
        if codes is not None:
            codes = codes[keep]
    if codes is not None:
        # Renumber so that clusters emptied by dropped pairs do not count.
        codes = np.unique(codes, return_inverse=True)[1].astype(np.intp, copy=False)
    n = len(arrays[0])
    if n < 2:
        if dropped:
            raise StatsError(
                f"only {n} of {n + dropped} items have no NaN score",
                "need at least 2 items scored (on both sides, when paired)",
            )
        raise StatsError(
            f"need at least 2 paired items, got {n}", "evaluate more items before comparing"
        )
    return arrays, codes, dropped


def _prepare(
    a: ArrayLike, b: ArrayLike, clusters: Clusters | None = None
) -> tuple[FloatArray, FloatArray, NDArray[np.intp] | None, int]:
    """Validate a pair of score arrays; drop NaN pairs; factorise cluster labels."""
    a_arr = _as_scores(a, "A")
    b_arr = _as_scores(b, "B")
    if len(a_arr) != len(b_arr):
        raise StatsError(
            f"paired scores need equal lengths, got {len(a_arr)} (A) and {len(b_arr)} (B)",
            "align both runs on the same item ids",
        )
    codes = None if clusters is None else _cluster_codes(clusters, len(a_arr))
    (a_arr, b_arr), codes, dropped = _drop_nan([a_arr, b_arr], codes)
    return a_arr, b_arr, codes, dropped


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must be between 0 and 1, got {confidence}", "use e.g. 0.95")
    return float(confidence)


def _check_resamples(n_resamples: int) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer):
        raise StatsError(f"n_resamples must be an integer, got {n_resamples!r}", "use e.g. 10000")
    if n_resamples < 1:
        raise StatsError(f"n_resamples must be at least 1, got {n_resamples}", "use e.g. 10000")
    return int(n_resamples)


def _is_binary(x: FloatArray) -> bool:
    return bool(np.all((x == 0.0) | (x == 1.0)))


def _z(confidence: float) -> float:
    return _NORMAL.inv_cdf(0.5 + confidence / 2.0)


def _cohen_dz(d: FloatArray) -> float:
    mean = float(np.mean(d))
    # A constant array can get a tiny nonzero sd from rounding in the mean; ptp is exact.
    if np.ptp(d) == 0.0:
        return 0.0 if mean == 0.0 else math.nan
    return mean / float(np.std(d, ddof=1))


def _base(
    method: str, a: FloatArray, b: FloatArray, dropped: int, confidence: float
) -> dict[str, Any]:
    """Fields every result shares; ``details`` records the dropped NaN pairs."""
    d = b - a
    details: dict[str, float | int | str] = {"dropped_nan_pairs": dropped} if dropped else {}
    return {
        "method": method,
        "n": len(d),
        "mean_a": float(np.mean(a)),
        "mean_b": float(np.mean(b)),
        "diff": float(np.mean(b) - np.mean(a)),
        "confidence": confidence,
        "effect_size": _cohen_dz(d),
        "details": details,
    }


# ---------------------------------------------------------------- standard errors, CIs


def _standard_error_codes(x: FloatArray, codes: NDArray[np.intp] | None) -> float:
    n = len(x)
    if codes is None:
        if np.ptp(x) == 0.0:
            return 0.0
        return float(np.std(x, ddof=1)) / math.sqrt(n)
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        raise StatsError(
            "clustered standard errors need at least 2 clusters, got 1",
            "check the cluster column, or leave clusters out",
        )
    cluster_sums = np.bincount(codes, weights=x - np.mean(x), minlength=n_clusters)
    return math.sqrt(float(np.sum(cluster_sums**2))) / n


def standard_error(x: ArrayLike, clusters: Clusters | None = None) -> float:
    """Standard error of the mean of ``x``; NaN items are dropped.

    Plain: ``sd(x, ddof=1) / sqrt(n)``. With ``clusters`` (one label per item), the
    clustered SE of Miller (2024), "Adding Error Bars to Evals":
    ``SE_C^2 = (1/n^2) * sum_c (sum_{i in c} (x_i - mean(x)))^2``, with no
    finite-cluster correction.
    """
    arr = _as_scores(x, "x")
    codes = None if clusters is None else _cluster_codes(clusters, len(arr))
    (arr,), codes, _ = _drop_nan([arr], codes)
    return _standard_error_codes(arr, codes)


def paired_standard_error(a: ArrayLike, b: ArrayLike, clusters: Clusters | None = None) -> float:
    """Standard error of ``mean(b) - mean(a)``: :func:`standard_error` of ``b - a``."""
    a_arr, b_arr, codes, _ = _prepare(a, b, clusters)
    return _standard_error_codes(b_arr - a_arr, codes)


def mean_ci(
    x: ArrayLike, *, confidence: float = 0.95, clusters: Clusters | None = None
) -> tuple[float, float, float]:
    """``(mean, low, high)`` with the normal approximation ``mean +- z * SE``.

    SE is :func:`standard_error` (clustered when ``clusters`` is given).
    """
    confidence = _check_confidence(confidence)
    arr = _as_scores(x, "x")
    codes = None if clusters is None else _cluster_codes(clusters, len(arr))
    (arr,), codes, _ = _drop_nan([arr], codes)
    mean = float(np.mean(arr))
    half = _z(confidence) * _standard_error_codes(arr, codes)
    return mean, mean - half, mean + half


def mean_ci_from_moments(
    mean: ArrayLike, sd: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Vectorised :func:`mean_ci`: ``(mean, low, high)`` arrays for many cells at once.

    ``mean +- z * sd / sqrt(n)``; ``mean``, ``sd`` (ddof=1) and ``n`` broadcast
    against each other, and cells with ``n < 1`` get NaN bounds.
    """
    confidence = _check_confidence(confidence)
    mean_arr, sd_arr, n_arr = np.broadcast_arrays(
        np.asarray(mean, dtype=np.float64),
        np.asarray(sd, dtype=np.float64),
        np.asarray(n, dtype=np.float64),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(n_arr >= 1, sd_arr / np.sqrt(np.maximum(n_arr, 1.0)), np.nan)
    half = _z(confidence) * se
    return mean_arr.copy(), mean_arr - half, mean_arr + half


def _t_interval(d: FloatArray, confidence: float) -> tuple[float, float]:
    """The t-distribution CI (n - 1 df) of mean(d)."""
    mean = float(np.mean(d))
    se = _standard_error_codes(d, None)
    half = float(scipy.special.stdtrit(len(d) - 1, 0.5 + confidence / 2.0)) * se
    return mean - half, mean + half


# ------------------------------------------------------------------------- bootstrap


def _bootstrap_means(
    sums: FloatArray,
    sizes: NDArray[np.int64],
    n_resamples: int,
    rng: np.random.Generator,
    path: str | None = None,
) -> tuple[FloatArray, str]:
    """Bootstrap distribution of ``sum(sums) / sum(sizes)`` over resampled units.

    A unit is an item (size 1) or a whole cluster. Returns the ``n_resamples`` means
    and the path used: ``"counts"`` or ``"index"`` (``path`` forces one; for tests).

    The counts path is exact, not an approximation: a resample's mean depends only on
    how often each distinct unit (value, size) is drawn, and those draw counts are
    multinomial, so a resample costs O(k) for k distinct units instead of O(n).
    """
    n_units = len(sums)
    plain = bool(np.all(sizes == 1))
    if plain:
        values, freq = np.unique(sums, return_counts=True)
        unit_sizes = np.ones_like(values)
    else:
        table, freq = np.unique(
            np.column_stack([sums, sizes.astype(np.float64)]), axis=0, return_counts=True
        )
        values, unit_sizes = table[:, 0], table[:, 1]
    if path is None:
        path = "counts" if len(values) * _COUNTS_PATH_RATIO <= n_units else "index"
    if path == "counts":
        counts = rng.multinomial(n_units, freq / n_units, size=n_resamples).astype(np.float64)
        totals = counts @ values
        denominators = float(n_units) if plain else counts @ unit_sizes
        return np.asarray(totals / denominators, dtype=np.float64), path
    means = np.empty(n_resamples, dtype=np.float64)
    rows = max(1, _CHUNK_ELEMENTS // n_units)
    size_floats = sizes.astype(np.float64)
    spans = [(s, min(s + rows, n_resamples)) for s in range(0, n_resamples, rows)]
    # One child generator per chunk: the draws depend on the seed and the chunk plan,
    # never on how many threads run the chunks.
    children = rng.spawn(len(spans))

    def chunk(i: int) -> None:
        start, stop = spans[i]
        # intp indices: numpy would convert narrower ones to intp before every gather.
        idx = children[i].integers(0, n_units, size=(stop - start, n_units), dtype=np.intp)
        totals = sums.take(idx).sum(axis=1)
        means[start:stop] = totals / (n_units if plain else size_floats.take(idx).sum(axis=1))

    workers = min(len(spans), _cpu_count())
    if workers < 2 or n_resamples * n_units < _THREADED_ELEMENTS:
        for i in range(len(spans)):
            chunk(i)
    else:
        # numpy releases the GIL while it draws and gathers: chunks run on every core.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(chunk, range(len(spans))))
    return means, path


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _units(d: FloatArray, codes: NDArray[np.intp] | None) -> tuple[FloatArray, NDArray[np.int64]]:
    if codes is None:
        return d, np.ones(len(d), dtype=np.int64)
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        raise StatsError(
            "the cluster bootstrap needs at least 2 clusters, got 1",
            "check the cluster column, or leave clusters out",
        )
    sums = np.bincount(codes, weights=d, minlength=n_clusters).astype(np.float64)
    sizes = np.bincount(codes, minlength=n_clusters).astype(np.int64)
    return sums, sizes


def paired_bootstrap(
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int | None = 0,
    clusters: Clusters | None = None,
) -> PairedResult:
    """Paired bootstrap of mean(b) - mean(a): percentile CI and a two-sided p-value.

    p = min(1, 2 * min(#(boot <= 0) + 1, #(boot >= 0) + 1) / (R + 1)): twice the
    smaller tail of the bootstrap distribution at 0, with the +1 correction so a
    finite R never reports p = 0. With ``clusters`` (one hashable label per item)
    whole clusters are resampled (the mean is the sum of resampled cluster sums over
    the sum of their sizes) and ``se`` is the clustered SE of :func:`standard_error`.
    The same ``seed`` gives the same result; ``None`` draws fresh entropy.
    """
    n_resamples = _check_resamples(n_resamples)
    confidence = _check_confidence(confidence)
    a_arr, b_arr, codes, dropped = _prepare(a, b, clusters)
    d = b_arr - a_arr
    sums, sizes = _units(d, codes)
    boot, path = _bootstrap_means(sums, sizes, n_resamples, np.random.default_rng(seed))
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    below = int(np.count_nonzero(boot <= 0.0))
    above = int(np.count_nonzero(boot >= 0.0))
    p = min(1.0, 2.0 * (min(below, above) + 1) / (n_resamples + 1))
    base = _base("bootstrap", a_arr, b_arr, dropped, confidence)
    base["details"]["path"] = path
    base["details"]["bootstrap_se"] = float(np.std(boot, ddof=1)) if n_resamples > 1 else 0.0
    if codes is not None:
        base["details"]["clusters"] = len(sums)
    return PairedResult(
        **base,
        ci_low=float(low),
        ci_high=float(high),
        p_value=p,
        se=_standard_error_codes(d, codes),
        n_resamples=n_resamples,
        seed=seed,
    )


# ----------------------------------------------------------------------- permutation


def _sign_flip_null(nonzero: FloatArray, n_resamples: int, rng: np.random.Generator) -> FloatArray:
    """``n_resamples`` Monte Carlo draws of sum(s_i * |d_i|) with random signs s_i."""
    magnitudes = np.abs(nonzero)
    values, counts = np.unique(magnitudes, return_counts=True)
    m = len(magnitudes)
    if len(values) * _COUNTS_PATH_RATIO <= m:
        # Of the c items with magnitude v, Binomial(c, 1/2) are positive: v * (2B - c).
        positives = rng.binomial(counts, 0.5, size=(n_resamples, len(values)))
        return np.asarray((2 * positives - counts).astype(np.float64) @ values)
    null = np.empty(n_resamples, dtype=np.float64)
    total = float(magnitudes.sum())
    rows = max(1, _CHUNK_ELEMENTS // m)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        # One random byte gives 8 signs; sum(s|d|) = 2 * sum(|d| where s = +1) - sum|d|.
        packed = rng.integers(0, 256, size=(stop - start, (m + 7) // 8), dtype=np.uint8)
        bits = np.unpackbits(packed, axis=1, count=m)
        null[start:stop] = 2.0 * (bits.astype(np.float64) @ magnitudes) - total
    return null


def _enumerate_sign_flips(nonzero: FloatArray) -> FloatArray:
    """All 2**m values of sum(s_i * d_i) over sign vectors s (m = len(nonzero))."""
    null = np.zeros(1, dtype=np.float64)
    for value in nonzero:
        null = np.concatenate([null + value, null - value])
    return null


def paired_permutation(
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> PairedResult:
    """Sign-flip permutation test of mean(b - a) = 0; two-sided p-value.

    Zero differences never change the statistic, so when 2**(number of nonzero d)
    <= ``n_resamples`` every sign pattern is enumerated and p is exact (the share of
    patterns with |T*| >= |T|, equal to scipy's exact two-sided p for a symmetric
    null). Otherwise p = (#(|T*| >= |T|) + 1) / (R + 1) over R random sign patterns.
    A tiny tolerance (1e-9 * sum|d|) counts rounding-level ties as ties. The CI is
    the bootstrap percentile CI of :func:`paired_bootstrap` with the same R and seed;
    a sign-flip test has no interval of its own.
    """
    n_resamples = _check_resamples(n_resamples)
    confidence = _check_confidence(confidence)
    a_arr, b_arr, _, dropped = _prepare(a, b)
    d = b_arr - a_arr
    nonzero = d[d != 0.0]
    m = len(nonzero)
    observed = float(nonzero.sum())
    tolerance = 1e-9 * float(np.abs(nonzero).sum())
    if m < n_resamples.bit_length():  # 2**m <= n_resamples
        null = _enumerate_sign_flips(nonzero)
        p = float(np.count_nonzero(np.abs(null) >= abs(observed) - tolerance)) / len(null)
        kind, patterns = "exact", len(null)
    else:
        null = _sign_flip_null(nonzero, n_resamples, np.random.default_rng(seed))
        extreme = int(np.count_nonzero(np.abs(null) >= abs(observed) - tolerance))
        p = (extreme + 1) / (n_resamples + 1)
        kind, patterns = "monte-carlo", n_resamples
    boot = paired_bootstrap(a_arr, b_arr, n_resamples=n_resamples, confidence=confidence, seed=seed)
    base = _base("permutation", a_arr, b_arr, dropped, boot.confidence)
    base["details"].update({"null": kind, "sign_patterns": patterns, "ci": "bootstrap"})
    return PairedResult(
        **base,
        ci_low=boot.ci_low,
        ci_high=boot.ci_high,
        p_value=min(1.0, p),
        se=boot.se,
        n_resamples=n_resamples,
        seed=seed,
    )


# ------------------------------------------------------------------ closed-form tests


def mcnemar_exact(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> PairedResult:
    """Exact McNemar test of binary (0/1) paired scores.

    With b10 = #(a=1, b=0) and b01 = #(a=0, b=1), p = min(1, 2 * BinomCDF(min(b10,
    b01); b10 + b01, 1/2)), and 1 when no pair is discordant. The CI is Newcombe's
    square-and-add score interval of the paired difference (it stays inside [-1, 1]);
    ``se`` is the usual sqrt(b10 + b01 - (b01 - b10)**2 / n) / n.
    """
    confidence = _check_confidence(confidence)
    a_arr, b_arr, _, dropped = _prepare(a, b)
    for name, arr in (("A", a_arr), ("B", b_arr)):
        if not _is_binary(arr):
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
    base = _base("mcnemar", a_arr, b_arr, dropped, confidence)
    base["details"].update({"a_only": a_only, "b_only": b_only})
    both = int(np.count_nonzero((a_arr == 1.0) & (b_arr == 1.0)))
    low, high = newcombe_paired_interval(
        both, b_only, a_only, n - both - discordant, _z(confidence)
    )
    return PairedResult(**base, ci_low=low, ci_high=high, p_value=p, se=se)


def _with_t_interval(
    base: dict[str, Any], d: FloatArray, confidence: float, result: Any
) -> PairedResult:
    """A scipy test's statistic and p-value, with the t CI and SE of the mean difference."""
    low, high = _t_interval(d, confidence)
    base["details"]["statistic"] = float(result.statistic)
    se = _standard_error_codes(d, None)
    return PairedResult(**base, ci_low=low, ci_high=high, p_value=float(result.pvalue), se=se)


def paired_ttest(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> PairedResult:
    """Paired t-test (``scipy.stats.ttest_rel(b, a)``) with a t CI on n - 1 df.

    Constant differences have no variance, where scipy returns NaN: all-zero
    differences give p = 1 and CI [0, 0]; a nonzero constant gives p = 0 and a
    zero-width CI at the difference.
    """
    confidence = _check_confidence(confidence)
    a_arr, b_arr, _, dropped = _prepare(a, b)
    d = b_arr - a_arr
    base = _base("t-test", a_arr, b_arr, dropped, confidence)
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
    confidence = _check_confidence(confidence)
    a_arr, b_arr, _, dropped = _prepare(a, b)
    d = b_arr - a_arr
    base = _base("wilcoxon", a_arr, b_arr, dropped, confidence)
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
            a_arr, b_arr, _, _ = _prepare(a, b)
            method = "mcnemar" if _is_binary(a_arr) and _is_binary(b_arr) else "t-test"
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


# ----------------------------------------------------------------------------- power


def _check_power_inputs(sd_diff: float, alpha: float, design_effect: float) -> float:
    """Validate and return the two-sided critical value z_{1 - alpha/2}."""
    if not sd_diff > 0.0 or not math.isfinite(sd_diff):
        raise StatsError(
            f"sd_diff must be a positive number, got {sd_diff}",
            "estimate it as the sd of per-item differences",
        )
    if not 0.0 < alpha < 1.0:
        raise StatsError(f"alpha must be between 0 and 1, got {alpha}", "use e.g. 0.05")
    if not design_effect > 0.0:
        raise StatsError(
            f"design_effect must be positive, got {design_effect}",
            "use 1.0 for independent items, (SE_clustered / SE_plain)**2 for clusters",
        )
    return _NORMAL.inv_cdf(1.0 - alpha / 2.0)


def _check_power_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise StatsError(f"power must be between 0 and 1, got {level}", "use e.g. 0.8")
    return _NORMAL.inv_cdf(level)


def power(
    effect: float,
    sd_diff: float,
    n: float,
    *,
    alpha: float = 0.05,
    design_effect: float = 1.0,
) -> float:
    """Power of a two-sided paired test to detect ``effect`` with ``n`` items.

    Normal approximation: Phi(|e| sqrt(n) / s - z) + Phi(-|e| sqrt(n) / s - z) with
    z = z_{1 - alpha/2} and s = sd_diff * sqrt(design_effect); ``design_effect``
    multiplies the variance, e.g. (SE_clustered / SE_plain)**2 for clustered items.
    """
    z = _check_power_inputs(sd_diff, alpha, design_effect)
    if not n > 0:
        raise StatsError(f"n must be positive, got {n}", "pass the number of items")
    shift = abs(effect) * math.sqrt(n) / (sd_diff * math.sqrt(design_effect))
    return _NORMAL.cdf(shift - z) + _NORMAL.cdf(-shift - z)


def minimum_detectable_effect(
    sd_diff: float,
    n: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    design_effect: float = 1.0,
) -> float:
    """Smallest effect detected with probability ``power``: (z_{1-a/2} + z_power) s / sqrt(n).

    s = sd_diff * sqrt(design_effect), as in :func:`power`.
    """
    z = _check_power_inputs(sd_diff, alpha, design_effect)
    z_power = _check_power_level(power)
    if not n > 0:
        raise StatsError(f"n must be positive, got {n}", "pass the number of items")
    return (z + z_power) * sd_diff * math.sqrt(design_effect) / math.sqrt(n)


def required_items(
    effect: float,
    sd_diff: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    design_effect: float = 1.0,
) -> int:
    """Items needed to detect ``effect`` with probability ``power`` (rounded up).

    The inverse of :func:`minimum_detectable_effect`: ((z_{1-a/2} + z_power) s / e)**2
    with s = sd_diff * sqrt(design_effect).
    """
    z = _check_power_inputs(sd_diff, alpha, design_effect)
    z_power = _check_power_level(power)
    if effect == 0.0 or not math.isfinite(effect):
        raise StatsError(
            f"effect must be a nonzero number, got {effect}",
            "give the smallest effect that matters",
        )
    exact = ((z + z_power) * sd_diff * math.sqrt(design_effect) / abs(effect)) ** 2
    # Rounding in the z-values must not turn an exact n (e.g. n -> MDE -> n) into n + 1.
    return max(1, math.ceil(exact - 1e-9))
