"""Paired comparison statistics checked against scipy / statsmodels and direct enumeration."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from benchrun.analysis.compare import (
    Outcome,
    bootstrap_mean_interval,
    breakdown_compare,
    cases_needed,
    cluster_robust_se,
    consistency,
    flips,
    mcnemar_exact_p,
    min_detectable_difference,
    multi_sample_summary,
    paired_compare,
    paired_t_interval,
    pass_at_k,
    pass_hat_k,
    power_sentence,
)
from benchrun.errors import BadInput
from statref import enumerated_mcnemar_power


def single(results: list[bool | None], scores: list[float | None] | None = None, cats: list[str] | None = None,
           sevs: list[str] | None = None, prefix: str = "c") -> list[Outcome]:
    """One sample per case; case ids c000, c001, ..."""
    n = len(results)
    scores = scores or [None] * n
    cats = cats or ["general"] * n
    sevs = sevs or ["medium"] * n
    return [Outcome(f"{prefix}{i:03d}", 0, r, s, c, v) for i, (r, s, c, v) in enumerate(zip(results, scores, cats, sevs))]


def mcnemar_table(a: list[bool], b: list[bool]) -> np.ndarray:
    t = np.zeros((2, 2), dtype=int)
    for x, y in zip(a, b):
        t[int(not x), int(not y)] += 1  # row: A pass/fail, column: B pass/fail
    return t


# ----------------------------------------------------------------------------- McNemar


@pytest.mark.parametrize("b10,b01", [(0, 0), (0, 5), (5, 0), (5, 5), (3, 17), (12, 4), (40, 60), (430, 470), (1, 0)])
def test_mcnemar_exact_matches_statsmodels_and_binomtest(b10: int, b01: int) -> None:
    table = np.array([[10, b10], [b01, 7]])
    ours = mcnemar_exact_p(b10, b01)
    assert ours == pytest.approx(float(mcnemar(table, exact=True).pvalue), rel=1e-9, abs=1e-15)
    if b10 + b01 > 0:
        assert ours == pytest.approx(stats.binomtest(b10, b10 + b01, 0.5).pvalue, rel=1e-9, abs=1e-15)
    else:
        assert ours == 1.0


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 3)


# ----------------------------------------------------------------------------- paired comparison, one sample


def hand_pairs() -> tuple[list[bool], list[bool]]:
    # 60 cases: 30 both pass, 18 only A, 4 only B, 8 both fail
    a = [True] * 30 + [True] * 18 + [False] * 4 + [False] * 8
    b = [True] * 30 + [False] * 18 + [True] * 4 + [False] * 8
    return a, b


def test_single_sample_difference_se_and_mcnemar_against_independent_values() -> None:
    a, b = hand_pairs()
    res = paired_compare(single(a), single(b), n_boot=4000, seed=1)
    assert res.n_pairs == 60 and res.unpaired_a == 0 and res.unpaired_b == 0 and res.errored_cases == 0
    assert res.pass_rate_a == pytest.approx(np.mean(a))
    assert res.pass_rate_b == pytest.approx(np.mean(b))
    assert res.difference == pytest.approx(np.mean(a) - np.mean(b))
    # McNemar counts and p-value
    table = mcnemar_table(a, b)
    assert (res.mcnemar.a_only, res.mcnemar.b_only) == (table[0, 1], table[1, 0])
    assert res.mcnemar.p_value == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert res.mcnemar.basis == "single sample"
    # paired-difference SE interval == paired t interval on the 0/1 outcomes
    ci = stats.ttest_rel(np.array(a, float), np.array(b, float)).confidence_interval(0.95)
    assert res.se_interval.low == pytest.approx(ci.low)
    assert res.se_interval.high == pytest.approx(ci.high)
    d = np.array(a, float) - np.array(b, float)
    assert res.standard_error == pytest.approx(stats.sem(d))
    # bootstrap close to scipy's percentile bootstrap (different draws: Monte Carlo tolerance)
    sb = stats.bootstrap((d,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                         rng=np.random.default_rng(7))
    assert res.bootstrap.low == pytest.approx(sb.confidence_interval.low, abs=0.02)
    assert res.bootstrap.high == pytest.approx(sb.confidence_interval.high, abs=0.02)
    assert res.larger_than_noise
    assert res.verdict.startswith("A passes 23.3 points more than B (95% CI ")
    assert res.verdict.endswith("larger than noise")
    json.dumps(dataclasses.asdict(res), allow_nan=False)


def test_bootstrap_is_deterministic_for_a_seed_and_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    d = rng.choice([-1.0, 0.0, 0.0, 1.0, 1.0], size=80)
    one = bootstrap_mean_interval(list(d), 0.9, 20000, seed=5)
    two = bootstrap_mean_interval(list(d), 0.9, 20000, seed=5)
    assert one == two
    sb = stats.bootstrap((d,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.9,
                         rng=np.random.default_rng(11))
    assert one.low == pytest.approx(sb.confidence_interval.low, abs=0.015)
    assert one.high == pytest.approx(sb.confidence_interval.high, abs=0.015)


def test_reversed_models_mirror_the_result() -> None:
    a, b = hand_pairs()
    ab = paired_compare(single(a), single(b), n_boot=2000)
    ba = paired_compare(single(b), single(a), n_boot=2000, name_a="B", name_b="A")
    assert ba.difference == pytest.approx(-ab.difference)
    assert ba.mcnemar.p_value == ab.mcnemar.p_value
    assert ba.se_interval.low == pytest.approx(-ab.se_interval.high)
    assert "points less than" in ba.verdict


def test_small_gap_is_within_noise() -> None:
    # 50 cases, A passes 2 more cases: 3 only-A, 1 only-B
    a = [True] * 38 + [True] * 3 + [False] * 1 + [False] * 8
    b = [True] * 38 + [False] * 3 + [True] * 1 + [False] * 8
    res = paired_compare(single(a), single(b), n_boot=2000)
    assert not res.larger_than_noise
    assert res.verdict.endswith("within noise")
    assert res.mcnemar.p_value == pytest.approx(stats.binomtest(3, 4).pvalue)


def test_unpaired_and_errored_cases_are_excluded_and_counted() -> None:
    a = [*single([True, False, True, None, True]), Outcome("only-a", 0, True, None, "general", "medium")]
    b = [*single([False, False, True, True, None]), Outcome("only-b1", 0, True, None, "general", "medium"),
         Outcome("only-b2", 0, False, None, "general", "medium")]
    res = paired_compare(a, b, n_boot=500)
    assert res.n_pairs == 3
    assert (res.unpaired_a, res.unpaired_b, res.errored_cases) == (1, 2, 2)
    assert res.difference == pytest.approx((1 + 0 + 0) / 3)
    assert any("left out" in n for n in res.notes)


# ----------------------------------------------------------------------------- edge cases


def test_no_discordant_pairs() -> None:
    a = [True] * 7 + [False] * 3
    res = paired_compare(single(a), single(a), n_boot=500)
    assert res.difference == 0
    assert res.mcnemar.n_discordant == 0 and res.mcnemar.p_value == 1.0
    # no case differs: the intervals do not collapse to the point 0 (issue 13, item 7); |A - B| is at most
    # the share of cases that differ, bounded by the Wilson upper limit of 0 of 10
    _, upper = proportion_confint(0, 10, alpha=0.05, method="wilson")
    assert (res.bootstrap.low, res.bootstrap.high) == pytest.approx((-upper, upper))
    assert res.se_interval == res.bootstrap
    assert res.standard_error == 0
    assert not res.larger_than_noise
    assert res.verdict.startswith("A and B pass the same share of cases")
    assert any("no discordant" in n for n in res.notes)


def test_all_pass() -> None:
    res = paired_compare(single([True] * 12), single([True] * 12), n_boot=500)
    assert res.pass_rate_a == res.pass_rate_b == 1.0
    assert res.difference == 0 and not res.larger_than_noise


def test_zero_pairs() -> None:
    res = paired_compare(single([True, False], prefix="x"), single([True], prefix="y"), n_boot=500)
    assert res.n_pairs == 0 and res.difference is None and res.bootstrap is None and res.mcnemar is None
    assert (res.unpaired_a, res.unpaired_b) == (2, 1)
    assert "nothing to compare" in res.verdict
    json.dumps(dataclasses.asdict(res), allow_nan=False)
    empty = paired_compare([], [])
    assert empty.n_pairs == 0 and not empty.larger_than_noise


def test_all_errors() -> None:
    res = paired_compare(single([None, None, None]), single([True, False, None]), n_boot=500)
    assert res.n_pairs == 0 and res.errored_cases == 3
    assert "nothing to compare" in res.verdict


def test_one_pair_is_too_few() -> None:
    res = paired_compare(single([True]), single([False]), n_boot=200)
    assert res.n_pairs == 1 and res.standard_error is None and res.se_interval is None
    assert not res.larger_than_noise and "too few" in res.verdict


def test_bad_input_names_the_case() -> None:
    dup = [Outcome("q1", 0, True, None, "g", "low"), Outcome("q1", 0, False, None, "g", "low")]
    with pytest.raises(BadInput, match=r"q1.*sample 0 appears twice"):
        paired_compare(dup, dup)
    with pytest.raises(BadInput, match=r"q2.*passed"):
        paired_compare([Outcome("q2", 0, "yes", None, "g", "low")], [])  # type: ignore[arg-type]
    with pytest.raises(BadInput, match=r"q3.*score"):
        paired_compare([Outcome("q3", 0, True, float("nan"), "g", "low")], [])
    with pytest.raises(BadInput, match=r"q4.*category/severity"):
        paired_compare([Outcome("q4", 0, True, None, "g", "low"), Outcome("q4", 1, True, None, "g", "high")], [])


# ----------------------------------------------------------------------------- several samples


def multi_data(seed: int, n_cases: int, unbalanced: bool) -> tuple[list[Outcome], list[Outcome]]:
    rng = np.random.default_rng(seed)
    a: list[Outcome] = []
    b: list[Outcome] = []
    for i in range(n_cases):
        difficulty = rng.uniform(0.1, 0.95)
        for model, out, shift in (("a", a, 0.1), ("b", b, 0.0)):
            k = int(rng.integers(1, 6)) if unbalanced else 4
            for s in range(k):
                r = rng.uniform()
                passed: bool | None = None if (unbalanced and r < 0.08) else bool(rng.uniform() < min(1, difficulty + shift))
                out.append(Outcome(f"case{i}", s, passed, None, "g", "medium"))
            _ = model
    return a, b


def statsmodels_cluster_se(a: list[Outcome], b: list[Outcome], weighted: bool, correction: bool) -> tuple[float, float]:
    import statsmodels.api as sm

    # same pairing rule as paired_compare: both models have at least one non-error sample on the case
    ids = sorted({o.case_id for o in a if o.passed is not None} & {o.case_id for o in b if o.passed is not None})
    rows_y, rows_x, rows_w, groups = [], [], [], []
    for gi, cid in enumerate(ids):
        for is_a, outs in ((1.0, a), (0.0, b)):
            ok = [o for o in outs if o.case_id == cid and o.passed is not None]
            for o in ok:
                rows_y.append(float(o.passed))
                rows_x.append([1.0, is_a])
                rows_w.append(1.0 / len(ok))
                groups.append(gi)
    y, x = np.array(rows_y), np.array(rows_x)
    model = sm.WLS(y, x, weights=np.array(rows_w)) if weighted else sm.OLS(y, x)
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": np.array(groups), "use_correction": correction})
    return float(fit.params[1]), float(fit.bse[1])


def test_cluster_robust_se_matches_statsmodels_ols_balanced() -> None:
    a, b = multi_data(seed=2, n_cases=40, unbalanced=False)
    res = paired_compare(a, b, n_boot=500)
    beta, bse0 = statsmodels_cluster_se(a, b, weighted=False, correction=False)
    g = res.n_pairs
    assert res.difference == pytest.approx(beta)
    assert res.standard_error == pytest.approx(bse0 * math.sqrt(g / (g - 1)))  # CR1 = CR0 · √(G/(G-1))
    assert "cluster-robust" in res.se_method
    # statsmodels' default correction also multiplies by (N-1)/(N-K)
    _, bse_sm = statsmodels_cluster_se(a, b, weighted=False, correction=True)
    n_obs = len(a) + len(b)
    assert res.standard_error * math.sqrt((n_obs - 1) / (n_obs - 2)) == pytest.approx(bse_sm)


def test_cluster_robust_se_matches_statsmodels_wls_unbalanced_with_errors() -> None:
    a, b = multi_data(seed=9, n_cases=35, unbalanced=True)
    res = paired_compare(a, b, n_boot=500)
    beta, bse0 = statsmodels_cluster_se(a, b, weighted=True, correction=False)
    g = res.n_pairs
    assert res.difference == pytest.approx(beta)
    assert res.standard_error == pytest.approx(bse0 * math.sqrt(g / (g - 1)))
    half = stats.t.ppf(0.975, g - 1) * res.standard_error
    assert res.se_interval.low == pytest.approx(beta - half)
    assert res.error_samples_a + res.error_samples_b > 0
    assert res.errored_cases > 0  # the data include cases a model errored on entirely


def test_cluster_robust_se_helper_edges() -> None:
    assert cluster_robust_se([]) is None
    assert cluster_robust_se([0.5]) is None
    assert cluster_robust_se([0.2, 0.2, 0.2]) == 0


def test_several_samples_use_the_sign_flip_test_on_per_case_rates() -> None:
    def case(cid: str, results: list[bool]) -> list[Outcome]:
        return [Outcome(cid, s, r, None, "g", "high") for s, r in enumerate(results)]

    a = case("x", [True, True, False]) + case("y", [True, False]) + case("z", [False, False, True]) + case("w", [True] * 3)
    b = case("x", [False, False, True]) + case("y", [True, True]) + case("z", [True, True, True]) + case("w", [True] * 3)
    res = paired_compare(a, b, n_boot=300)
    d = np.array([2 / 3 - 1 / 3, 0.5 - 1, 1 / 3 - 1, 0])
    assert res.difference == pytest.approx(d.mean())
    # no majority vote: McNemar is not used, the y case (A split 50/50) counts
    assert res.mcnemar is None
    assert res.test is not None and "sign-flip" in res.test.method and "exact" in res.test.method
    assert (res.test.a_better, res.test.b_better, res.test.n_cases) == (1, 2, 4)
    ref = stats.permutation_test((d,), np.sum, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided").pvalue
    assert res.test.p_value == pytest.approx(ref, rel=1e-9)
    assert any("sign-flip" in n for n in res.notes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sign_flip_test_matches_scipy_permutation_test(seed: int) -> None:
    from benchrun.analysis.compare import sign_flip_test

    rng = np.random.default_rng(seed)
    ks = rng.integers(1, 6, size=(13, 2))  # samples per case for A and B, 1-5 (unequal, as with errors)
    ca = rng.binomial(ks[:, 0], 0.6)
    cb = rng.binomial(ks[:, 1], 0.4)
    d = ca / ks[:, 0] - cb / ks[:, 1]
    ours, method = sign_flip_test(d.tolist())
    assert "exact" in method
    ref = stats.permutation_test((d,), np.sum, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided").pvalue
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # with unit differences it is McNemar's exact test
    assert sign_flip_test([1] * 7 + [-1] * 2 + [0] * 5)[0] == pytest.approx(stats.binomtest(7, 9).pvalue)
    # Monte Carlo when exact enumeration is too large: close to the exact value
    mc, mc_method = sign_flip_test(d.tolist(), max_exact_work=1, n_mc=40_000)
    assert "Monte Carlo" in mc_method
    assert mc == pytest.approx(ref, abs=4 * math.sqrt(ref * (1 - ref) / 40_000) + 1e-4)


# ----------------------------------------------------------------------------- judge score


def test_score_difference_is_paired_t_interval() -> None:
    rng = np.random.default_rng(4)
    sa = rng.integers(1, 6, size=30).astype(float)
    sb = np.clip(sa - rng.integers(-1, 3, size=30), 1, 5).astype(float)
    res = paired_compare(single([True] * 30, list(sa)), single([True] * 30, list(sb)), n_boot=300)
    t = stats.ttest_rel(sa, sb)
    ci = t.confidence_interval(0.95)
    assert res.score.n_pairs == 30
    assert res.score.difference == pytest.approx(sa.mean() - sb.mean())
    assert res.score.interval.low == pytest.approx(ci.low)
    assert res.score.interval.high == pytest.approx(ci.high)
    assert res.score.p_value == pytest.approx(t.pvalue)
    # level other than 95%
    iv, _ = paired_t_interval(list(sa), list(sb), level=0.9)
    ci90 = t.confidence_interval(0.9)
    assert (iv.low, iv.high) == (pytest.approx(ci90.low), pytest.approx(ci90.high))


def test_score_edges() -> None:
    res = paired_compare(single([True, False]), single([True, True]), n_boot=100)
    assert res.score is None
    iv, p = paired_t_interval([3.0, 4.0], [2.0, 3.0])
    assert iv.low == iv.high == 1.0 and p is None
    assert paired_t_interval([1.0], [2.0]) == (None, None)


# ----------------------------------------------------------------------------- breakdown and flips


def test_breakdown_groups_equal_manual_subsets() -> None:
    a_res, b_res = hand_pairs()
    cats = ["billing" if i % 3 == 0 else "search" for i in range(60)]
    sevs = ["high" if i < 6 else ("low" if i % 2 else "medium") for i in range(60)]
    a, b = single(a_res, cats=cats, sevs=sevs), single(b_res, cats=cats, sevs=sevs)
    groups = breakdown_compare(a, b, n_boot=500, min_pairs=10)
    assert [(g.dimension, g.group) for g in groups] == [
        ("category", "billing"), ("category", "search"), ("severity", "high"), ("severity", "medium"),
        ("severity", "low")]
    for g in groups:
        attr = "category" if g.dimension == "category" else "severity"
        manual = paired_compare([o for o in a if getattr(o, attr) == g.group],
                                [o for o in b if getattr(o, attr) == g.group], n_boot=500)
        assert g.comparison == manual
        assert g.too_few_pairs == (manual.n_pairs < 10)
    high = next(g for g in groups if g.group == "high")
    assert high.comparison.n_pairs == 6 and high.too_few_pairs


def test_flips_sorted_by_severity_then_id() -> None:
    a = single([True, False, True, True, False, None], sevs=["low", "high", "medium", "high", "low", "high"])
    b = single([False, True, True, False, True, False], sevs=["low", "high", "medium", "high", "low", "high"])
    out = flips(a, b)
    assert [(f.case_id, f.severity, f.a_passed, f.b_passed) for f in out] == [
        ("c001", "high", False, True), ("c003", "high", True, False),
        ("c000", "low", True, False), ("c004", "low", False, True)]
    assert flips(single([True]), single([True])) == []


# ----------------------------------------------------------------------------- power


@pytest.mark.parametrize("n,pa,pb,psi", [(30, 0.7, 0.5, None), (60, 0.8, 0.7, 0.2), (12, 0.9, 0.4, None),
                                         (5, 1.0, 0.0, None), (45, 0.5, 0.5, 0.3)])
def test_mcnemar_power_matches_enumeration(n: int, pa: float, pb: float, psi: float | None) -> None:
    from benchrun.analysis.compare import default_discordance, mcnemar_power

    s = default_discordance(pa, pb) if psi is None else psi
    p10, p01 = (s + pa - pb) / 2, (s - pa + pb) / 2
    assert mcnemar_power(n, pa, pb, discordance=psi) == pytest.approx(enumerated_mcnemar_power(n, p10, p01), abs=1e-9)


@pytest.mark.parametrize("n,p", [(50, 0.8), (200, 0.5), (30, 0.3)])
def test_min_detectable_difference_is_where_the_exact_test_reaches_80_percent(n: int, p: float) -> None:
    from benchrun.analysis.compare import default_discordance

    for direction, sign in (("up", 1), ("down", -1)):
        delta = min_detectable_difference(n, p, direction=direction)
        assert 0 < delta < 1
        pa = p + sign * delta
        s = default_discordance(pa, p)
        assert enumerated_mcnemar_power(n, (s + pa - p) / 2, (s - pa + p) / 2) >= 0.8 - 1e-9
        pa2 = p + sign * (delta - 0.01)
        s2 = default_discordance(pa2, p)
        assert enumerated_mcnemar_power(n, (s2 + pa2 - p) / 2, (s2 - pa2 + p) / 2) < 0.8
    assert min_detectable_difference(n, p) == min(min_detectable_difference(n, p, direction="up"),
                                                  min_detectable_difference(n, p, direction="down"))


def test_min_detectable_difference_with_known_discordance_by_simulation() -> None:
    n, psi = 300, 0.2
    delta = min_detectable_difference(n, 0.7, discordance=psi)
    assert 0 < delta < psi
    # simulate paired outcomes: P(A only) = (ψ+δ)/2, P(B only) = (ψ-δ)/2; exact McNemar p from the binomial cdf
    rng = np.random.default_rng(123)
    reps = 20000
    counts = rng.multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=reps)
    b, c = counts[:, 0], counts[:, 1]
    p = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(b, c), b + c, 0.5))
    power = np.mean(p < 0.05)
    assert power == pytest.approx(0.8, abs=0.015)


def test_min_detectable_difference_behaviour() -> None:
    assert min_detectable_difference(100, 0.8) > min_detectable_difference(400, 0.8)
    assert min_detectable_difference(0, 0.5) == math.inf
    assert min_detectable_difference(5, 1.0, direction="up") == math.inf
    assert min_detectable_difference(3, 0.5, discordance=0.05) == math.inf
    with pytest.raises(ValueError):
        min_detectable_difference(10, 1.5)


def test_power_sentence() -> None:
    s = power_sentence(50, 0.82, 0.80)
    assert s.startswith("50 cases cannot tell 82% from 80%")
    need = cases_needed(0.82, 0.80)
    assert f"about {math.ceil(need):,} cases would be needed" in s
    assert power_sentence(2000, 0.90, 0.70).startswith("2000 cases can tell 90% from 70%")
    assert "nothing to detect" in power_sentence(10, 0.5, 0.5)


def test_cases_needed_is_the_first_n_with_enough_exact_power() -> None:
    n = int(cases_needed(0.6, 0.5))
    p10, p01 = 0.6 * 0.5, 0.5 * 0.4
    assert enumerated_mcnemar_power(n, p10, p01) >= 0.8 > enumerated_mcnemar_power(n - 1, p10, p01)
    assert cases_needed(0.5, 0.5) == math.inf
    # 100% vs 0%: every case is discordant, and 6 is the fewest with which p < 0.05 is possible
    assert cases_needed(1.0, 0.0) == 6


# ----------------------------------------------------------------------------- pass@k, pass^k


def enumerate_k(n: int, c: int, k: int) -> tuple[float, float]:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    any_pass = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    all_pass = sum(all(samples[i] for i in s) for s in subsets) / len(subsets)
    return any_pass, all_pass


@pytest.mark.parametrize("n", [1, 2, 5, 7])
def test_pass_at_k_and_pass_hat_k_against_enumeration(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            any_pass, all_pass = enumerate_k(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(any_pass, abs=1e-12)
            assert pass_hat_k(n, c, k) == pytest.approx(all_pass, abs=1e-12)


def test_pass_at_k_rejects_bad_arguments() -> None:
    for args in [(3, 4, 1), (3, 1, 0), (3, 1, 4), (0, 0, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(*args)


def test_multi_sample_summary() -> None:
    def case(cid: str, results: list[bool | None]) -> list[Outcome]:
        return [Outcome(cid, s, r, None, "g", "medium") for s, r in enumerate(results)]

    outs = (case("a", [True] * 5) + case("b", [True, False, True, False, False]) + case("c", [False] * 5)
            + case("d", [True, None, True]) + case("e", [None, None]))
    s = multi_sample_summary(outs, ks=(1, 3, 5))
    assert (s.n_cases, s.errored_cases, s.error_samples) == (4, 1, 3)
    assert (s.min_samples, s.max_samples) == (2, 5)
    assert s.cases_used == {1: 4, 3: 3, 5: 3}
    assert s.pass_at_k[1] == pytest.approx(np.mean([1, 2 / 5, 0, 1]))
    assert s.pass_at_k[3] == pytest.approx(np.mean([1, enumerate_k(5, 2, 3)[0], 0]))
    assert s.pass_hat_k[3] == pytest.approx(np.mean([1, 0, 0]))
    assert s.pass_at_k[5] == pytest.approx(np.mean([1, 1, 0]))
    assert s.mean_consistency == pytest.approx(np.mean([1, 3 / 5, 1, 1]))
    assert s.inconsistent_cases == 1
    assert consistency(4, 2) == 0.5
    json.dumps(dataclasses.asdict(s), allow_nan=False)
    empty = multi_sample_summary(case("z", [None]), ks=(1,))
    assert empty.pass_at_k == {1: None} and empty.mean_consistency is None


def test_methods_disagreeing_is_borderline_not_larger_than_noise() -> None:
    # 40 cases, 5 only-A wins, no only-B wins: both intervals exclude 0 but exact McNemar p = 2/2^5 = 0.0625
    a = [True] * 5 + [True] * 25 + [False] * 10
    b = [False] * 5 + [True] * 25 + [False] * 10
    res = paired_compare(single(a), single(b), n_boot=4000)
    assert res.mcnemar.p_value == pytest.approx(stats.binomtest(5, 5).pvalue)
    assert res.se_interval.low > 0 and res.bootstrap.low > 0
    assert not res.larger_than_noise
    assert "borderline" in res.verdict and "not by McNemar" in res.verdict
