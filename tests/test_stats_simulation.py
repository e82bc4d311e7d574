"""Seeded simulations, small enough for CI: intervals cover about 95%, flags stay quiet on noise.

Each check uses a few hundred draws and a binomial tolerance of two standard errors around the
target (coverage 0.93-0.97; false-positive rate <= 5%). The full study with every size and the
replaced methods side by side is `benchmarks/stats_calibration.py` (docs/statistics.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from benchrun.analysis.bias import VerbosityItem, verbosity_report
from benchrun.analysis.calibration import cohen_kappa_from_table
from benchrun.analysis.compare import Outcome, paired_compare, paired_test
from benchrun.analysis.shortlist import Candidate, shortlist
from benchrun.analysis.stats import SignificanceTest, clustered_wilson_interval


def _tol(p: float, reps: int) -> float:
    return 2 * math.sqrt(p * (1 - p) / reps)


def _coverage_ok(cov: float, reps: int) -> bool:
    return 0.93 - _tol(0.95, reps) <= cov <= 0.97 + _tol(0.95, reps)


def _cases(rng: np.random.Generator, g: int, k: int, mus: list[float]) -> list[np.ndarray]:
    """Samples (g, k) per model; case difficulty u_i ~ N(0,1) shared by the models; mean pass rate mu."""
    u = rng.normal(size=g)
    return [rng.random((g, k)) < norm.cdf(norm.ppf(mu) * math.sqrt(2) + u)[:, None] for mu in mus]


def _outcomes(x: np.ndarray) -> list[Outcome]:
    return [Outcome(f"c{i:03d}", s, bool(p), None, "g", "medium") for i, row in enumerate(x) for s, p in enumerate(row)]


@pytest.mark.parametrize("k", [3, 10])
def test_clustered_pass_rate_interval_covers(k: int) -> None:
    rng = np.random.default_rng(100 + k)
    reps, mu, hit = 300, 0.7, 0
    for _ in range(reps):
        (x,) = _cases(rng, 50, k, [mu])
        iv = clustered_wilson_interval(x.sum(axis=1).tolist(), [k] * 50).interval
        hit += iv.low <= mu <= iv.high
    assert _coverage_ok(hit / reps, reps), hit / reps


def test_paired_difference_intervals_cover() -> None:
    rng = np.random.default_rng(7)
    reps, hb, hs = 300, 0, 0
    for _ in range(reps):
        a, b = _cases(rng, 50, 1, [0.75, 0.65])
        res = paired_compare(_outcomes(a), _outcomes(b), n_boot=500, seed=int(rng.integers(1 << 30)))
        assert res.bootstrap is not None and res.se_interval is not None
        hb += res.bootstrap.low <= 0.10 <= res.bootstrap.high
        hs += res.se_interval.low <= 0.10 <= res.se_interval.high
    assert _coverage_ok(hb / reps, reps), hb / reps
    assert _coverage_ok(hs / reps, reps), hs / reps


def _kappa_cells(r: float, c: float, kappa: float) -> np.ndarray:
    u, v = r * (1 - c), (1 - r) * c
    d = kappa * (u + v) / 2
    return np.array([(1 - r) * (1 - c) + d, v - d, u - d, r * c + d])


def test_kappa_interval_covers_and_trust_stays_rare_at_the_threshold() -> None:
    rng = np.random.default_rng(11)
    reps, hit, trusted = 300, 0, 0
    for counts in rng.multinomial(50, _kappa_cells(0.6, 0.65, 0.6), size=reps):
        k = cohen_kappa_from_table(counts.reshape(2, 2).tolist(), draws=4000)  # fewer posterior draws than the default
        assert k.interval is not None
        hit += k.interval.low <= 0.6 <= k.interval.high
        trusted += k.interval.low >= 0.6
    assert _coverage_ok(hit / reps, reps), hit / reps
    # a judge exactly at the threshold may be trusted at most 2.5% of the time (one-sided)
    assert trusted / reps <= 0.025 + _tol(0.025, reps)


def test_multi_sample_verdict_false_positive_rate() -> None:
    rng = np.random.default_rng(13)
    reps, hits = 400, 0
    for _ in range(reps):
        a, b = _cases(rng, 50, 3, [0.7, 0.7])
        t = paired_test(_outcomes(a), _outcomes(b))
        hits += t is not None and t.p_value < 0.05
    assert hits / reps <= 0.05 + _tol(0.05, reps)


def _judge(rng: np.random.Generator, t: int, bias: int = 0) -> float:
    return float(min(5, max(1, t + bias + int(rng.integers(-1, 2)))))


def _verbosity(rng: np.random.Generator, n: int, bias: float) -> list[VerbosityItem]:
    out = []
    for i in range(n):
        t = int(rng.integers(2, 5))
        out.append(VerbosityItem(f"i{i}", _judge(rng, t),
                                 {v: _judge(rng, t, int(rng.random() < bias)) for v in ("restate", "list", "filler")},
                                 rejudged_scores=(_judge(rng, t),)))
    return out


def test_verbosity_flag_quiet_on_noise_and_fires_on_bias() -> None:
    rng = np.random.default_rng(17)
    reps = 300
    noise = sum(verbosity_report(_verbosity(rng, 30, 0.0)).flagged for _ in range(reps)) / reps
    assert noise <= 0.05 + _tol(0.05, reps)
    power = sum(verbosity_report(_verbosity(rng, 50, 0.5)).flagged for _ in range(100)) / 100
    assert power >= 0.75  # the benchmark measures about 0.9 here


def test_shortlist_of_equal_candidates_keeps_one_rank() -> None:
    rng = np.random.default_rng(19)
    reps, split = 200, 0
    for _ in range(reps):
        arrays = _cases(rng, 50, 1, [0.7] * 6)
        outs = {f"m{i}": _outcomes(x) for i, x in enumerate(arrays)}
        cands = []
        for i, x in enumerate(arrays):
            cl = clustered_wilson_interval(x.sum(axis=1).tolist(), [1] * 50)
            cands.append(Candidate(f"m{i}", f"m{i}", cl.interval, cost_per_1k_cases=float(i), n_effective=cl.n_effective))

        def fn(x: Candidate, y: Candidate, outs: dict[str, list[Outcome]] = outs) -> SignificanceTest | None:
            t = paired_test(outs[x.key], outs[y.key])
            return None if t is None else SignificanceTest(t.p_value, t.method)

        res = shortlist(cands, pair_test=fn)
        split += len({r.rank for r in res.ranked}) > 1
    assert split / reps <= 0.05 + _tol(0.05, reps)
