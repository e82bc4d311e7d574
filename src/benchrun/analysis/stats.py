"""Basic interval estimates and summaries used across reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    level: float = 0.95

    @property
    def width(self) -> float:
        return self.high - self.low


def z_for(level: float) -> float:
    """Two-sided normal quantile for a confidence level (0.95 -> 1.959964)."""
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion.

    p̂ = k/n; centre = (p̂ + z²/2n) / (1 + z²/n);
    half = z·sqrt(p̂(1-p̂)/n + z²/4n²) / (1 + z²/n).
    Reference: Wilson (1927), JASA 22:209-212; Agresti & Coull (1998).
    With n = 0 the proportion is undefined: estimate NaN, interval [0, 1].
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0, level)
    z = z_for(level)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), level)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation (numpy's default); None if empty."""
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))
