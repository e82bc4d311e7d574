"""The methods introduced for issue 13, each checked against an independent computation
(statsmodels, scipy, or a direct Monte Carlo written here), never against benchrun's own code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from benchrun.analysis.calibration import cohen_kappa_from_table, kappa_interval
from benchrun.analysis.stats import (
    bh_adjust,
    bounded_mean_interval,
    clustered_wilson_interval,
    holm_adjust,
    two_proportion_test,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustered_wilson_matches_statsmodels_cluster_robust_variance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = 40
    sizes = rng.integers(2, 7, g)  # unequal samples per case, as after errors
    rates = rng.beta(2, 1, g)
    passes = rng.binomial(sizes, rates)
    y = np.concatenate([[1.0] * c + [0.0] * (n - c) for c, n in zip(passes, sizes, strict=True)])
    groups = np.repeat(np.arange(g), sizes)
    fit = sm.OLS(y, np.ones((y.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups})
    p = y.mean()
    var = float(fit.bse[0]) ** 2  # CR1: G/(G-1) · (N-1)/(N-K) with K = 1
    n_eff = min(y.size, p * (1 - p) / var)
    n_star = n_eff * (stats.norm.ppf(0.975) / stats.t.ppf(0.975, g - 1)) ** 2
    lo, hi = proportion_confint(p * n_star, n_star, alpha=0.05, method="wilson")
    ours = clustered_wilson_interval(passes.tolist(), sizes.tolist())
    assert ours.interval.estimate == pytest.approx(p)
    assert (ours.interval.low, ours.interval.high) == pytest.approx((lo, hi), abs=1e-10)
    assert ours.n_effective == pytest.approx(n_eff)
    assert ours.design_effect == pytest.approx(var / (p * (1 - p) / y.size))
    assert ours.cases == g and ours.samples == y.size


def test_clustered_wilson_edges() -> None:
    # one sample per case: plain Wilson over cases
    one = clustered_wilson_interval([1] * 7 + [0] * 3, [1] * 10)
    assert (one.interval.low, one.interval.high) == pytest.approx(proportion_confint(7, 10, method="wilson"))
    # all samples pass: the variance estimate is 0, so the interval is Wilson over the cases, never a point
    allpass = clustered_wilson_interval([5] * 20, [5] * 20)
    lo, _ = proportion_confint(20, 20, method="wilson")
    assert allpass.interval.high == 1.0 and allpass.interval.low < 1.0
    assert allpass.interval.low <= lo + 1e-12
    assert clustered_wilson_interval([], []).cases == 0


def test_holm_and_bh_match_statsmodels() -> None:
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(0, 0.05, 5), rng.uniform(0, 1, 15), [0.01, 0.01]])  # with ties
    for method, ours in (("holm", holm_adjust), ("fdr_bh", bh_adjust)):
        _, ref, _, _ = multipletests(p, alpha=0.05, method=method)
        assert ours(p.tolist()) == pytest.approx(ref.tolist(), abs=1e-12)
    assert holm_adjust([]) == [] and bh_adjust([]) == []


@pytest.mark.parametrize(("k1", "n1", "k2", "n2"), [(93, 100, 80, 100), (5, 20, 9, 25), (0, 10, 3, 10)])
def test_two_proportion_test_matches_statsmodels(k1: int, n1: int, k2: int, n2: int) -> None:
    _, ref = proportions_ztest([k1, k2], [n1, n2])
    assert two_proportion_test(k1 / n1, n1, k2 / n2, n2).p_value == pytest.approx(ref, rel=1e-9)
    assert two_proportion_test(1.0, 10, 1.0, 12).p_value == 1.0


def test_bounded_mean_interval_is_wilson_on_the_unit_scale() -> None:
    iv = bounded_mean_interval([1.0] * 12, -1.0, 1.0)
    lo, hi = proportion_confint(12, 12, method="wilson")
    assert (iv.low, iv.high) == pytest.approx((2 * lo - 1, 2 * hi - 1))
    assert iv.width > 0


def _kappa_of(p: np.ndarray) -> np.ndarray:
    """Cohen's kappa of 2x2 probability tables p[:, 4] = (00, 01, 10, 11), written out by hand."""
    po = p[:, 0] + p[:, 3]
    r1, c1 = p[:, 2] + p[:, 3], p[:, 1] + p[:, 3]
    pe = r1 * c1 + (1 - r1) * (1 - c1)
    return (po - pe) / (1 - pe)


@pytest.mark.parametrize("table", [[[8, 1], [2, 9]], [[5, 0], [0, 15]], [[31, 12], [4, 58]], [[3, 4], [6, 27]]])
def test_kappa_interval_is_the_jeffreys_posterior_interval(table: list[list[int]]) -> None:
    # independent Monte Carlo: 400,000 draws from scipy's Dirichlet(n + 1/2)
    counts = np.asarray(table, dtype=float).ravel() + 0.5
    draws = stats.dirichlet.rvs(counts, size=400_000, random_state=np.random.default_rng(99))
    k = _kappa_of(draws)
    lo, hi = np.quantile(k, [0.025, 0.975])
    ours = kappa_interval(table)
    assert ours is not None
    perfect = table[0][1] == table[1][0] == 0
    assert ours.low == pytest.approx(lo, abs=0.01)
    assert ours.high == (1.0 if perfect else pytest.approx(hi, abs=0.01))
    assert ours.method is not None and "Jeffreys" in ours.method
    assert cohen_kappa_from_table(table).interval == ours


def test_kappa_interval_is_deterministic_and_contains_the_estimate() -> None:
    t = [[12, 3], [1, 4]]
    a, b = kappa_interval(t), kappa_interval(t)
    assert a == b
    k = cohen_kappa_from_table(t).value
    assert a is not None and k is not None and a.low <= k <= a.high
    assert math.isfinite(a.width) and a.width > 0


def test_normal_quantile_and_percentile_equal_scipy_and_numpy_without_importing_them() -> None:
    """z_for and percentile are pure Python (a run's summary imports neither scipy nor numpy: see
    tests/test_transports.py); they must give scipy's and numpy's numbers."""
    import random

    import numpy as np
    from scipy.stats import norm

    from benchrun.analysis.stats import percentile, z_for

    for level in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999):
        assert abs(z_for(level) - norm.ppf(0.5 + level / 2)) <= 1e-14 * norm.ppf(0.5 + level / 2)
    rng = random.Random(7)
    for _ in range(2000):
        xs = [rng.uniform(-1e3, 1e3) for _ in range(rng.randint(1, 40))]
        q = rng.choice([0.0, 50.0, 90.0, 95.0, 99.0, 100.0, rng.uniform(0, 100)])
        assert percentile(xs, q) == float(np.percentile(xs, q)), (xs, q)
    assert percentile([], 50) is None
