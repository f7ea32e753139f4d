"""The resampling tests: the paired (and cluster) bootstrap and the sign-flip permutation test."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from evalledger.analysis.paired import (
    PairedResult,
    base_fields,
    check_confidence,
    check_resamples,
    prepare,
    standard_error_codes,
    t_interval,
)
from evalledger.errors import StatsError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from evalledger.analysis.paired import Clusters, FloatArray

__all__ = ["EXACT_SIGN_FLIPS", "paired_bootstrap", "paired_permutation"]

#: Up to this many nonzero differences, the sign-flip test enumerates all 2**m sign
#: patterns (65,536 at most, a few ms) whatever ``n_resamples`` is: its p is exact.
EXACT_SIGN_FLIPS = 16

# The index path holds about this many indices plus gathered floats per chunk (16 MB);
# chunks that fit in cache are faster than one huge (R x n) array, and memory stays flat.
_CHUNK_ELEMENTS = 1 << 20
# Drawing one multinomial/binomial cell costs roughly as much as drawing and summing
# ~16 resampled items, so the counts path wins when there are < n/16 distinct values.
_COUNTS_PATH_RATIO = 16
# Below this many drawn indices, starting threads costs more than it saves.
_THREADED_ELEMENTS = 1 << 23


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
    n_resamples = check_resamples(n_resamples)
    confidence = check_confidence(confidence)
    a_arr, b_arr, codes, dropped = prepare(a, b, clusters)
    d = b_arr - a_arr
    sums, sizes = _units(d, codes)
    boot, path = _bootstrap_means(sums, sizes, n_resamples, np.random.default_rng(seed))
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    below = int(np.count_nonzero(boot <= 0.0))
    above = int(np.count_nonzero(boot >= 0.0))
    p = min(1.0, 2.0 * (min(below, above) + 1) / (n_resamples + 1))
    base = base_fields("bootstrap", a_arr, b_arr, dropped, confidence)
    base["details"]["path"] = path
    base["details"]["bootstrap_se"] = float(np.std(boot, ddof=1)) if n_resamples > 1 else 0.0
    if codes is not None:
        base["details"]["clusters"] = len(sums)
    return PairedResult(
        **base,
        ci_low=float(low),
        ci_high=float(high),
        p_value=p,
        se=standard_error_codes(d, codes),
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

    Zero differences never change the statistic, so when there are at most
    :data:`EXACT_SIGN_FLIPS` nonzero differences, or 2**m <= ``n_resamples``, every
    sign pattern is enumerated and p is exact (the share of patterns with |T*| >= |T|,
    equal to scipy's exact two-sided p for a symmetric null): k differences all of one
    sign give p = 2**(1 - k). Otherwise p = (#(|T*| >= |T|) + 1) / (R + 1) over R
    random sign patterns, which is valid (never below the exact p in expectation). A
    tiny tolerance (1e-9 * sum|d|) counts rounding-level ties as ties. The CI is the
    t interval of the mean difference on n - 1 df: a sign-flip test has no interval
    of its own, and the percentile bootstrap's is too narrow at small n.
    """
    n_resamples = check_resamples(n_resamples)
    confidence = check_confidence(confidence)
    a_arr, b_arr, _, dropped = prepare(a, b)
    d = b_arr - a_arr
    nonzero = d[d != 0.0]
    m = len(nonzero)
    observed = float(nonzero.sum())
    tolerance = 1e-9 * float(np.abs(nonzero).sum())
    if m <= EXACT_SIGN_FLIPS or m < n_resamples.bit_length():  # or 2**m <= n_resamples
        null = _enumerate_sign_flips(nonzero)
        p = float(np.count_nonzero(np.abs(null) >= abs(observed) - tolerance)) / len(null)
        kind, patterns = "exact", len(null)
    else:
        null = _sign_flip_null(nonzero, n_resamples, np.random.default_rng(seed))
        extreme = int(np.count_nonzero(np.abs(null) >= abs(observed) - tolerance))
        p = (extreme + 1) / (n_resamples + 1)
        kind, patterns = "monte-carlo", n_resamples
    low, high = t_interval(d, confidence)
    base = base_fields("permutation", a_arr, b_arr, dropped, confidence)
    base["details"].update({"null": kind, "sign_patterns": patterns, "ci": "t"})
    return PairedResult(
        **base,
        ci_low=low,
        ci_high=high,
        p_value=min(1.0, p),
        se=standard_error_codes(d, None),
        n_resamples=n_resamples if kind == "monte-carlo" else None,
        seed=seed if kind == "monte-carlo" else None,
    )
