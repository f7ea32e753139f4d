"""Score intervals: Wilson, Newcombe's paired difference, MOVER for a mean.

Wilson is for one proportion, Newcombe's for a paired difference of two, and MOVER for
the mean of independent estimates.

Pure ``math`` so the leaderboard can use them without importing numpy or scipy.
"""

from __future__ import annotations

import math

__all__ = ["mover_mean_interval", "newcombe_paired_interval", "wilson_interval"]


def wilson_interval(p: float, n: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` of ``n`` items."""
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 the bound is exactly 0 or 1; the arithmetic misses it by rounding.
    low = 0.0 if p <= 0.0 else max(0.0, center - half)
    high = 1.0 if p >= 1.0 else min(1.0, center + half)
    return low, high


def newcombe_paired_interval(
    both: int, first_only: int, second_only: int, neither: int, z: float
) -> tuple[float, float]:
    """Newcombe's square-and-add interval for p(first) - p(second) on paired 0/1 data.

    Method 10 of Newcombe (1998, Stat. Med. 17:2635), the one Fagerland, Lydersen
    and Laake (2014) recommend: Wilson intervals of the two marginal proportions,
    combined with their continuity-corrected correlation. Unlike the Wald interval
    it stays inside [-1, 1] and does not collapse to a point when every pair agrees.
    """
    n = both + first_only + second_only + neither
    if n <= 0:
        raise ValueError("a paired interval needs at least one pair")
    first, second = both + first_only, both + second_only
    p1, p2 = first / n, second / n
    l1, u1 = wilson_interval(p1, n, z)
    l2, u2 = wilson_interval(p2, n, z)
    phi = 0.0
    if 0 < first < n and 0 < second < n:
        cross: float = both * neither - first_only * second_only
        if cross > n / 2:
            cross -= n / 2
        elif cross >= 0:
            cross = 0
        phi = cross / math.sqrt(first * (n - first) * second * (n - second))
    down_1, up_2 = p1 - l1, u2 - p2
    down_2, up_1 = p2 - l2, u1 - p1
    # max() guards rounding-level negatives when phi is close to 1.
    low = p1 - p2 - math.sqrt(max(0.0, down_1**2 + up_2**2 - 2 * phi * down_1 * up_2))
    high = p1 - p2 + math.sqrt(max(0.0, down_2**2 + up_1**2 - 2 * phi * down_2 * up_1))
    return max(-1.0, low), min(1.0, high)


def mover_mean_interval(
    values: list[float], intervals: list[tuple[float, float]]
) -> tuple[float, float]:
    """The interval of the mean of independent estimates, from each one's interval.

    MOVER (Zou & Donner 2008, Stat. Med. 27:1693): the distance from the mean to each
    bound is sqrt(sum of the estimates' squared distances to theirs) / k. From symmetric
    intervals it is mean +- z sqrt(sum SE^2) / k; from Wilson intervals it keeps their
    asymmetry, so the mean of 300/300 and 300/300 is not [1, 1].
    """
    k = len(values)
    if k == 0 or len(intervals) != k:
        raise ValueError("a mean interval needs one interval per value")
    mean = math.fsum(values) / k
    down = math.sqrt(
        math.fsum((v - low) ** 2 for v, (low, _) in zip(values, intervals, strict=True))
    )
    up = math.sqrt(
        math.fsum((high - v) ** 2 for v, (_, high) in zip(values, intervals, strict=True))
    )
    # Both bounds lie within the cells' own (sqrt(sum d^2) <= sum d); min/max only undo
    # rounding, so 1.0000000000000002 stays 1.
    lows, highs = [low for low, _ in intervals], [high for _, high in intervals]
    return max(min(lows), mean - down / k), min(max(highs), mean + up / k)
