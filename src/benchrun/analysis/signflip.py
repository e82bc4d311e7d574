"""The paired sign-flip permutation test (Fisher 1935; Pitman 1937): exact by convolution, else a normal
approximation or Monte Carlo. Used by `benchrun.analysis.compare` (several samples per case) and
`benchrun.analysis.passk` (per-problem pass@k). Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

SIGN_FLIP_EXACT = "paired sign-flip permutation test on per-case mean differences (exact)"
SIGN_FLIP_MC = "paired sign-flip permutation test on per-case mean differences (Monte Carlo, {n:,} draws)"
SIGN_FLIP_NORMAL = ("paired sign-flip permutation test on per-case mean differences (normal approximation to the "
                    "permutation distribution)")
_NORMAL_FROM = 300  # cases; below, Monte Carlo when exact enumeration is too large


def _as_fraction(x: Fraction | int | float) -> Fraction | None:
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    f = Fraction(x).limit_denominator(10_000)
    return f if abs(float(f) - x) <= 1e-12 else None


def sign_flip_test(differences: Sequence[Fraction | int | float], seed: int = 0, n_mc: int = 100_000,
                   max_exact_work: float = 1e9) -> tuple[float, str]:
    """Two-sided paired sign-flip permutation test of "the per-case differences are symmetric about 0".

    Statistic S = Σ_i d_i. Under H0 (A and B interchangeable on every case) each d_i is as
    likely to be +|d_i| as −|d_i|, so S is distributed as Σ_i ε_i |d_i| with independent fair
    signs ε_i; p = P(|S| ≥ |s_obs|) (Fisher 1935, ch. 21; Pitman 1937, JRSS Suppl. 4:119-130;
    Good 2005, *Permutation, Parametric and Bootstrap Tests of Hypotheses*, §3.6). Exact:
    the |d_i| are rationals (pass counts over sample counts), scaled to integers over their
    common denominator, and the distribution of S is built by convolution over all 2^G sign
    vectors at once (no enumeration). When G × range(S) exceeds ``max_exact_work`` (many cases
    with unequal sample counts, e.g. after errors): with 300 or more non-zero cases the
    permutation distribution's normal approximation, S / sqrt(Σ d_i²) ~ N(0, 1) (its exact mean
    and variance; Hoeffding 1952, Ann. Math. Statist. 23:169-192); with fewer, ``n_mc`` random
    sign vectors (seeded), p = (1 + #{|S*| ≥ |s|}) / (1 + n_mc) (Phipson & Smyth 2010, Stat.
    Appl. Genet. Mol. Biol. 9:39). ``method`` says which was used.

    With one sample per case (d_i ∈ {−1, 0, 1}) this is exactly McNemar's exact test.
    Returns (p, method).
    """
    import numpy as np

    fr = [_as_fraction(d) for d in differences]
    nonzero = [f for f in fr if f is None or f != 0]
    if not nonzero:
        return 1.0, SIGN_FLIP_EXACT
    if all(f is not None for f in nonzero):
        den = 1
        for f in nonzero:
            den = den * f.denominator // math.gcd(den, f.denominator)  # type: ignore[union-attr]
        w = [abs(int(f * den)) for f in nonzero]  # type: ignore[operator]
        signed = sum(int(f * den) for f in nonzero)  # type: ignore[operator]
        g = 0
        for x in w:
            g = math.gcd(g, x)
        w = [x // g for x in w]
        s_obs = abs(signed) // g
        total = sum(w)
        if len(w) * (2 * total + 1) <= max_exact_work and total <= 10_000_000:
            dist = np.zeros(2 * total + 1)
            dist[total] = 1.0
            lo_edge = hi_edge = total  # support of the current distribution
            for x in sorted(w):
                new = np.zeros_like(dist)
                new[lo_edge + x : hi_edge + x + 1] += dist[lo_edge : hi_edge + 1]
                new[lo_edge - x : hi_edge - x + 1] += dist[lo_edge : hi_edge + 1]
                dist = new * 0.5
                lo_edge, hi_edge = lo_edge - x, hi_edge + x
            idx = np.abs(np.arange(-total, total + 1))
            return float(min(1.0, dist[idx >= s_obs].sum())), SIGN_FLIP_EXACT
    vals = np.asarray([float(d) for d in differences if float(d) != 0.0])
    s = abs(float(vals.sum()))
    if len(vals) >= _NORMAL_FROM:
        from scipy.stats import norm

        return float(min(1.0, 2 * norm.sf(s / math.sqrt(float(vals @ vals))))), SIGN_FLIP_NORMAL
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, 2_000_000 // len(vals))
    done = 0
    while done < n_mc:
        m = min(chunk, n_mc - done)
        signs = rng.integers(0, 2, size=(m, len(vals))) * 2 - 1
        hits += int(np.sum(np.abs(signs @ vals) >= s - 1e-9 * max(1.0, s)))
        done += m
    return (1 + hits) / (1 + n_mc), SIGN_FLIP_MC.format(n=n_mc)
