"""Independent references shared by the statistics tests (scipy only; never benchrun's own code)."""

from __future__ import annotations

import numpy as np


def enumerated_mcnemar_power(n: int, p10: float, p01: float, alpha: float = 0.05) -> float:
    """Exact McNemar power by enumerating every (A-only, B-only) outcome on a 2-D grid: multinomial
    probabilities from log-gamma, exact p-values from the binomial cdf (scipy)."""
    from scipy import stats
    from scipy.special import gammaln

    a, b = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    ok = a + b <= n
    rest = np.where(ok, n - a - b, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = (gammaln(n + 1) - gammaln(a + 1) - gammaln(b + 1) - gammaln(rest + 1)
                + np.where(a > 0, a * np.log(p10) if p10 > 0 else -np.inf, 0.0)
                + np.where(b > 0, b * np.log(p01) if p01 > 0 else -np.inf, 0.0)
                + np.where(rest > 0, rest * np.log1p(-(p10 + p01)) if p10 + p01 < 1 else -np.inf, 0.0))
    prob = np.where(ok, np.exp(logp), 0.0)
    pval = np.where(a + b > 0, np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(a, b), a + b, 0.5)), 1.0)
    return float(np.sum(prob[ok & (pval < alpha)]))
