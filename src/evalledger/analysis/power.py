"""Power and sample size of a two-sided paired test, from the normal approximation."""

from __future__ import annotations

import math
from statistics import NormalDist

from evalledger.errors import StatsError

_NORMAL = NormalDist()

__all__ = ["minimum_detectable_effect", "power", "required_items"]


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
