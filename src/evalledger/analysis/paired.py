"""What every paired test shares: ``PairedResult``, input checks, standard errors, mean CIs.

The scores of both runs are validated, their NaN pairs dropped and cluster labels
factorised here (:func:`prepare`); the tests themselves live in
:mod:`evalledger.analysis.resampling` (bootstrap, permutation) and
:mod:`evalledger.analysis.significance` (closed-form tests and the dispatcher).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from evalledger.errors import StatsError

_NORMAL = NormalDist()

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.float64]
    Clusters = Sequence[Hashable] | NDArray[Any]

__all__ = [
    "PairedResult",
    "base_fields",
    "check_confidence",
    "check_resamples",
    "cluster_count",
    "is_binary",
    "mean_ci",
    "mean_ci_from_moments",
    "paired_standard_error",
    "prepare",
    "prepare_unpaired",
    "standard_error",
    "standard_error_codes",
    "t_critical",
    "t_interval",
    "z_critical",
]


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


def prepare(
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


def prepare_unpaired(a: ArrayLike, b: ArrayLike) -> tuple[FloatArray, FloatArray, int, int]:
    """Validate two independent samples; drop each one's NaN scores (and count them)."""
    out: list[FloatArray] = []
    dropped: list[int] = []
    for name, x in (("A", a), ("B", b)):
        arr = _as_scores(x, name)
        kept = arr[~np.isnan(arr)]
        if len(kept) < 2:
            raise StatsError(
                f"an unpaired test needs at least 2 scored items on each side, {name} has "
                f"{len(kept)}",
                "evaluate more items before comparing",
            )
        out.append(kept)
        dropped.append(len(arr) - len(kept))
    return out[0], out[1], dropped[0], dropped[1]


def check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must be between 0 and 1, got {confidence}", "use e.g. 0.95")
    return float(confidence)


def check_resamples(n_resamples: int) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer):
        raise StatsError(f"n_resamples must be an integer, got {n_resamples!r}", "use e.g. 10000")
    if n_resamples < 1:
        raise StatsError(f"n_resamples must be at least 1, got {n_resamples}", "use e.g. 10000")
    return int(n_resamples)


def is_binary(x: FloatArray) -> bool:
    return bool(np.all((x == 0.0) | (x == 1.0)))


def z_critical(confidence: float) -> float:
    return _NORMAL.inv_cdf(0.5 + confidence / 2.0)


def t_critical(df: int, confidence: float) -> float:
    """The two-sided critical value of Student's t on ``df`` degrees of freedom."""
    import scipy.special

    return float(scipy.special.stdtrit(df, 0.5 + confidence / 2.0))


def cluster_count(codes: NDArray[np.intp]) -> int:
    """The number of clusters G of renumbered codes; StatsError when G < 2."""
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        raise StatsError(
            "clustered standard errors need at least 2 clusters, got 1",
            "check the cluster column, or leave clusters out",
        )
    return n_clusters


def _cohen_dz(d: FloatArray) -> float:
    mean = float(np.mean(d))
    # A constant array can get a tiny nonzero sd from rounding in the mean; ptp is exact.
    if np.ptp(d) == 0.0:
        return 0.0 if mean == 0.0 else math.nan
    return mean / float(np.std(d, ddof=1))


def base_fields(
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


def standard_error_codes(x: FloatArray, codes: NDArray[np.intp] | None) -> float:
    n = len(x)
    if codes is None:
        if np.ptp(x) == 0.0:
            return 0.0
        return float(np.std(x, ddof=1)) / math.sqrt(n)
    n_clusters = cluster_count(codes)
    cluster_sums = np.bincount(codes, weights=x - np.mean(x), minlength=n_clusters)
    # CR1: the G / (G - 1) small-sample factor (the regression's (n-1)/(n-k) is 1 here).
    correction = n_clusters / (n_clusters - 1)
    return math.sqrt(correction * float(np.sum(cluster_sums**2))) / n


def standard_error(x: ArrayLike, clusters: Clusters | None = None) -> float:
    """Standard error of the mean of ``x``; NaN items are dropped.

    Plain: ``sd(x, ddof=1) / sqrt(n)``. With ``clusters`` (one label per item), the
    clustered SE of Miller (2024), "Adding Error Bars to Evals", with the CR1
    small-sample correction for G clusters:
    ``SE_C^2 = G / (G - 1) * (1/n^2) * sum_c (sum_{i in c} (x_i - mean(x)))^2``,
    which is statsmodels' ``OLS(x, 1).fit(cov_type="cluster")`` SE. Without the
    factor the SE is too small with few clusters (coverage 0.89 at G = 10).
    """
    arr = _as_scores(x, "x")
    codes = None if clusters is None else _cluster_codes(clusters, len(arr))
    (arr,), codes, _ = _drop_nan([arr], codes)
    return standard_error_codes(arr, codes)


def paired_standard_error(a: ArrayLike, b: ArrayLike, clusters: Clusters | None = None) -> float:
    """Standard error of ``mean(b) - mean(a)``: :func:`standard_error` of ``b - a``."""
    a_arr, b_arr, codes, _ = prepare(a, b, clusters)
    return standard_error_codes(b_arr - a_arr, codes)


def mean_ci(
    x: ArrayLike, *, confidence: float = 0.95, clusters: Clusters | None = None
) -> tuple[float, float, float]:
    """``(mean, low, high)``: ``mean +- z * SE``, or ``mean +- t(G-1) * SE`` when clustered.

    SE is :func:`standard_error`: plain, or CR1-clustered when ``clusters`` is given,
    where the critical value is Student's t on G - 1 degrees of freedom (G clusters),
    as in a cluster-robust t-test, since the normal one is too narrow with few clusters.
    """
    confidence = check_confidence(confidence)
    arr = _as_scores(x, "x")
    codes = None if clusters is None else _cluster_codes(clusters, len(arr))
    (arr,), codes, _ = _drop_nan([arr], codes)
    mean = float(np.mean(arr))
    if codes is None:
        critical = z_critical(confidence)
    else:
        critical = t_critical(cluster_count(codes) - 1, confidence)
    half = critical * standard_error_codes(arr, codes)
    return mean, mean - half, mean + half


def t_interval(d: FloatArray, confidence: float) -> tuple[float, float]:
    """The t-distribution CI (n - 1 df) of mean(d); zero width when d is constant."""
    mean = float(np.mean(d))
    half = t_critical(len(d) - 1, confidence) * standard_error_codes(d, None)
    return mean - half, mean + half


def mean_ci_from_moments(
    mean: ArrayLike, sd: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Vectorised :func:`mean_ci`: ``(mean, low, high)`` arrays for many cells at once.

    ``mean +- z * sd / sqrt(n)``; ``mean``, ``sd`` (ddof=1) and ``n`` broadcast
    against each other, and cells with ``n < 1`` get NaN bounds.
    """
    confidence = check_confidence(confidence)
    mean_arr, sd_arr, n_arr = np.broadcast_arrays(
        np.asarray(mean, dtype=np.float64),
        np.asarray(sd, dtype=np.float64),
        np.asarray(n, dtype=np.float64),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(n_arr >= 1, sd_arr / np.sqrt(np.maximum(n_arr, 1.0)), np.nan)
    half = z_critical(confidence) * se
    return mean_arr.copy(), mean_arr - half, mean_arr + half
