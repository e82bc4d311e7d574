"""Basic interval estimates, tests and multiple-comparison adjustments used across reports.

Every interval carries the name of the method that produced it (`Interval.method`) so that a
report can say which formula each number uses. Formulas and references are in the docstrings
and in docs/statistics.md, which also lists the coverage each method reaches in simulation
(`benchmarks/stats_calibration.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WILSON = "Wilson score"
WILSON_CLUSTERED = "Wilson score with the design effect of cases as clusters (Korn-Graubard effective n)"


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    level: float = 0.95
    method: str | None = None

    @property
    def width(self) -> float:
        return self.high - self.low


def z_for(level: float) -> float:
    """Two-sided normal quantile for a confidence level (0.95 -> 1.959964).

    The standard library's `statistics.NormalDist.inv_cdf` (Wichura's AS241, as scipy's ``norm.ppf`` to
    ~1e-15): a run's summary then needs no scipy, whose import takes seconds.
    """
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def t_for(level: float, df: float) -> float:
    """Two-sided Student-t quantile for a confidence level and ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def _wilson(p: float, n: float, level: float) -> tuple[float, float]:
    z = z_for(level)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z * z / (4 * n * n))) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion.

    p̂ = k/n; centre = (p̂ + z²/2n) / (1 + z²/n);
    half = z·sqrt(p̂(1-p̂)/n + z²/4n²) / (1 + z²/n).
    Reference: Wilson (1927), JASA 22:209-212; Agresti & Coull (1998); Brown, Cai & DasGupta
    (2001), Stat. Sci. 16:101-133 (recommended for its coverage at small n).
    With n = 0 the proportion is undefined: estimate NaN, interval [0, 1].
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0, level, WILSON)
    lo, hi = _wilson(successes / n, n, level)
    return Interval(successes / n, lo, hi, level, WILSON)


@dataclass(frozen=True)
class ClusteredProportion:
    """A pass rate over cases with several samples each (see `clustered_wilson_interval`).

    ``design_effect`` = the cluster-robust variance of the pass rate divided by the variance it
    would have if all samples were independent; ``n_effective`` = samples / design effect, the
    number of independent samples the data are worth (between the number of cases and the
    number of samples when samples of a case are positively correlated).
    """

    interval: Interval
    cases: int
    samples: int
    design_effect: float | None
    n_effective: float


def clustered_wilson_interval(successes: Sequence[int], trials: Sequence[int], level: float = 0.95
                              ) -> ClusteredProportion:
    """Pass rate with cases as clusters: Wilson with a design-effect-adjusted sample size.

    Case i contributed c_i passes out of n_i samples; p̂ = Σc_i / Σn_i = C/N. Samples of one case
    are correlated (same question), so the variance of p̂ is the cluster-robust (linearisation)
    variance of a ratio estimator with G cases as clusters,

        v̂ = G/(G-1) · Σ_i (c_i − p̂·n_i)² / N²,

    the design effect is d = v̂ / (p̂(1−p̂)/N), and the effective sample size is
    n* = min(N, p̂(1−p̂)/v̂) · (z_{α/2} / t_{G−1, α/2})² (Korn & Graubard 1998, Survey
    Methodology 24:193-201, with their degrees-of-freedom factor). The interval is Wilson's
    with n* in place of n (Dean & Pagano 2015, J. Survey Stat. Methodol. 3:484-503, found this
    among the best for clustered binary data). When p̂ is 0 or 1 the variance estimate is 0 and
    says nothing, so n* falls back to G (as if every case had one sample).

    With at most one sample per case this is the plain Wilson interval over the cases.
    Cases with zero samples are ignored.
    """
    if len(successes) != len(trials):
        raise ValueError("successes and trials need one entry per case")
    pairs = [(int(c), int(n)) for c, n in zip(successes, trials, strict=True) if n > 0]
    if any(c < 0 or c > n for c, n in pairs):
        raise ValueError("need 0 <= successes <= trials for every case")
    g = len(pairs)
    total = sum(n for _, n in pairs)
    passed = sum(c for c, _ in pairs)
    if g == 0:
        return ClusteredProportion(wilson_interval(0, 0, level), 0, 0, None, 0.0)
    if max(n for _, n in pairs) == 1:
        return ClusteredProportion(wilson_interval(passed, total, level), g, total, 1.0, float(total))
    p = passed / total
    if g < 2:
        lo, hi = _wilson(p, 1.0, level)
        return ClusteredProportion(Interval(p, lo, hi, level, WILSON_CLUSTERED), g, total, None, 1.0)
    var = g / (g - 1) * math.fsum((c - p * n) ** 2 for c, n in pairs) / total**2
    if p in (0.0, 1.0) or var <= 0:
        deff = None
        n_eff = float(g)
    else:
        deff = var / (p * (1 - p) / total)
        n_eff = min(float(total), p * (1 - p) / var)
    n_star = n_eff * (z_for(level) / t_for(level, g - 1)) ** 2
    lo, hi = _wilson(p, n_star, level)
    return ClusteredProportion(Interval(p, lo, hi, level, WILSON_CLUSTERED), g, total, deff, n_eff)


def bounded_mean_interval(values: Sequence[float], lower: float, upper: float, level: float = 0.95) -> Interval:
    """Interval for the mean of values known to lie in [lower, upper] that never has zero width.

    Map y = (x − lower)/(upper − lower) into [0, 1]; a variable in [0, 1] with mean μ has
    variance at most μ(1 − μ), so Wilson's score interval for ȳ with n = number of values is
    conservative for any such distribution; map back. Used when every value is the same (the
    bootstrap and t intervals then collapse to a point, which would claim certainty).
    """
    n = len(values)
    if n == 0:
        raise ValueError("need at least one value")
    if not upper > lower:
        raise ValueError("need upper > lower")
    span = upper - lower
    y = min(1.0, max(0.0, (math.fsum(values) / n - lower) / span))
    lo, hi = _wilson(y, n, level)
    return Interval(math.fsum(values) / n, lower + span * lo, lower + span * hi, level,
                    f"Wilson bound for a mean in [{lower:g}, {upper:g}] (all values equal)")


def all_equal_difference_interval(d: Sequence[float], level: float = 0.95) -> Interval:
    """An interval for the mean of paired differences in [−1, 1] when every difference is the same value c.

    c = 0 (no case differs): |δ| ≤ P(a case differs), bounded by the Wilson upper limit of 0
    differing cases out of n, so the interval is [−u, u]. Otherwise the Wilson bound for a mean
    of values in [−1, 1] (`bounded_mean_interval`). Both are conservative; neither is a point.
    """
    if d[0] == 0:
        hi = wilson_interval(0, len(d), level).high
        return Interval(0.0, -hi, hi, level, "Wilson bound on the share of cases that differ (none differs)")
    return bounded_mean_interval(d, -1.0, 1.0, level)


@dataclass(frozen=True)
class SignificanceTest:
    """A hypothesis test: its p-value and the method that produced it."""

    p_value: float
    method: str
    statistic: float | None = None


def two_proportion_test(p1: float, n1: float, p2: float, n2: float) -> SignificanceTest:
    """Two-sided pooled two-proportion z-test on (effective) sample sizes.

    z = (p̂1 − p̂2) / sqrt(p̄(1 − p̄)(1/n1 + 1/n2)), p̄ = (p̂1 n1 + p̂2 n2)/(n1 + n2) (the score test,
    as statsmodels ``proportions_ztest``). With several samples per case pass n = the effective
    sample size N/d of `clustered_wilson_interval`: Rao & Scott (1992), "A simple method for the
    analysis of clustered binary data", Biometrics 48:577-585. p = 1 when p̄ is 0 or 1.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("sample sizes must be positive")
    pbar = (p1 * n1 + p2 * n2) / (n1 + n2)
    method = "two-proportion z-test (pooled; Rao-Scott effective n)"
    if pbar <= 0 or pbar >= 1:
        return SignificanceTest(1.0, method, 0.0)
    from scipy.stats import norm

    z = (p1 - p2) / math.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n2))
    return SignificanceTest(float(min(1.0, 2 * norm.sf(abs(z)))), method, z)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate under any dependence).

    Sort p ascending: p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)). Reject H_(i) when p̃_(i) < α.
    Holm (1979), Scand. J. Statist. 6:65-70; as statsmodels ``multipletests(method="holm")``.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def bh_adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (controls the false-discovery rate; under the complete
    null also the chance of any false flag). p̃_(i) = min_{j ≥ i} min(1, m·p_(j)/j).
    Benjamini & Hochberg (1995), JRSS B 57:289-300; as statsmodels ``multipletests(method="fdr_bh")``.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, min(1.0, m * p_values[i] / (rank + 1)))
        out[i] = running
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, computed as numpy's default; None if empty.

    Index h = (q/100)·(n − 1) into the sorted values, interpolated between its neighbours the way
    numpy's ``_lerp`` does (from the nearer end), in pure Python so a summary imports no numpy.
    """
    if not values:
        return None
    xs = sorted(float(v) for v in values)
    h = (q / 100) * (len(xs) - 1)
    lo = min(max(math.floor(h), 0), len(xs) - 1)
    hi = min(lo + 1, len(xs) - 1)
    a, b, t = xs[lo], xs[hi], h - lo
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t
