"""Issue 13, "Statistics that keep their promise": each reported defect reproduced as a test.

Every number is checked against an independent computation (scipy, statsmodels, sklearn or a
direct enumeration written here), never against benchrun's own code. The seeded simulations are
small enough for CI; the full study is `benchmarks/stats_calibration.py` (docs/statistics.md).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from benchrun.analysis.bias import VerbosityItem, verbosity_report
from benchrun.analysis.breakdown import summarize
from benchrun.analysis.calibration import JudgeHumanPair, calibrate, cohen_kappa_from_table
from benchrun.analysis.compare import Outcome, breakdown_compare, cases_needed, paired_compare, power_sentence
from statref import enumerated_mcnemar_power


def _outcomes(passes: list[list[bool]], prefix: str = "c", cats: list[str] | None = None,
              sevs: list[str] | None = None) -> list[Outcome]:
    """passes[i] = the samples of case i."""
    out = []
    for i, samples in enumerate(passes):
        cat = cats[i] if cats else "general"
        sev = sevs[i] if sevs else "medium"
        out += [Outcome(f"{prefix}{i:03d}", s, p, None, cat, sev) for s, p in enumerate(samples)]
    return out


def _binomial_upper(p: float, n: int, z: float = 3.0) -> float:
    """A tolerance for a simulated rate: the target plus z binomial standard errors."""
    return p + z * math.sqrt(p * (1 - p) / n)


# ----------------------------------------------------------------------------- 1. several samples per case


def test_1_split_samples_are_evidence_not_ties() -> None:
    # A passes sample 0 and fails sample 1 of every case; B fails everything.
    a = _outcomes([[True, False]] * 10)
    b = _outcomes([[False, False]] * 10)
    res = paired_compare(a, b, n_boot=2000)
    # a sign test on the per-case mean differences (all +0.5): 10 of 10 positive
    ref = stats.binomtest(10, 10).pvalue
    assert ref == pytest.approx(2 / 2**10)
    assert res.larger_than_noise
    assert res.test is not None and res.test.p_value == pytest.approx(ref, rel=1e-12)
    assert "majority" not in res.test.method


def _power(k: int, sims: int, seed: int, n_cases: int = 40, pa: float = 0.6, pb: float = 0.5) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(sims):
        ca = rng.random((n_cases, k)) < pa
        cb = rng.random((n_cases, k)) < pb
        res = paired_compare(_outcomes(ca.tolist()), _outcomes(cb.tolist()), n_boot=200)
        hits += res.larger_than_noise
    return hits / sims


def test_1_more_samples_never_lose_power() -> None:
    # 40 cases, true pass rates 60% vs 50%: the old majority rule fired 1.3% of the time with two samples
    # per case against 12.5% with one. The verdict with several samples must be at least as powerful.
    one = _power(1, 300, seed=1)
    two = _power(2, 300, seed=1)
    four = _power(4, 300, seed=1)
    assert two >= one
    assert four >= two
    assert four > 0.25  # majority voting reached 4.8% here


# ----------------------------------------------------------------------------- 2. pass-rate interval, clustered


def _rows(per_case: list[list[bool]], key: str = "m") -> list[dict]:
    rows = []
    for i, samples in enumerate(per_case):
        for s, p in enumerate(samples):
            rows.append({
                "model_key": key, "model": "provider/m", "case_id": f"c{i:03d}", "sample_index": s,
                "status": "passed" if p else "failed", "judge_score": None, "cost_usd": 0.0, "response_text": "x",
                "judge_cost_usd": None, "judge_raw": None, "latency_ms": 10.0, "error": None, "prompt_tokens": 1,
                "completion_tokens": 1, "tokens_estimated": False, "retries": 0, "judge_retries": 0,
            })
    return rows


def test_2_identical_samples_do_not_shrink_the_interval() -> None:
    # 20 cases x 10 identical samples: 10 cases always pass, 10 never. There are 20 independent
    # observations, not 200: the interval must be at least as wide as Wilson over the 20 cases.
    rows = _rows([[True] * 10] * 10 + [[False] * 10] * 10)
    s = summarize(rows)[0]
    lo, hi = proportion_confint(10, 20, alpha=0.05, method="wilson")
    assert (lo, hi) == pytest.approx((0.299, 0.701), abs=5e-4)
    assert s.pass_rate.low <= lo + 1e-9 and s.pass_rate.high >= hi - 1e-9
    assert s.pass_rate.method is not None and "cluster" in s.pass_rate.method
    # one sample per case stays the plain Wilson interval
    one = summarize(_rows([[True]] * 10 + [[False]] * 10))[0]
    assert (one.pass_rate.low, one.pass_rate.high) == pytest.approx((lo, hi), abs=1e-12)
    assert one.pass_rate.method is not None and "Wilson" in one.pass_rate.method


# ----------------------------------------------------------------------------- 3. verbosity flag on noise


def test_3_symmetric_judge_noise_is_not_flagged() -> None:
    # A judge with symmetric +-1 noise and no length effect (scores clipped to 1-5): the old rule
    # ("any padded variant scored higher") flagged 200 of 200 such judges.
    rng = random.Random(3)
    sims, flagged = 200, 0
    for _ in range(sims):
        items = []
        for i in range(30):
            true = rng.randint(2, 4)

            def judge(t: int = true) -> float:
                return float(min(5, max(1, t + rng.choice((-1, 0, 1)))))

            items.append(VerbosityItem(f"i{i}", judge(), {v: judge() for v in ("restate", "list", "filler")}))
        flagged += verbosity_report(items).flagged
    assert flagged / sims <= _binomial_upper(0.05, sims)


# ----------------------------------------------------------------------------- 4. kappa interval


def test_4_one_more_disagreement_never_raises_the_lower_bound() -> None:
    perfect = cohen_kappa_from_table([[5, 0], [0, 15]])
    one_off = cohen_kappa_from_table([[5, 0], [1, 14]])
    assert perfect.value == pytest.approx(1.0) and one_off.value == pytest.approx(0.875)
    assert perfect.interval is not None and one_off.interval is not None
    assert perfect.interval.low >= one_off.interval.low
    assert perfect.interval.high == 1.0


def test_4_monotone_over_a_grid_of_tables() -> None:
    rng = np.random.default_rng(4)
    checked = 0
    for n in (20, 50, 120, 200):
        tables = [rng.multinomial(n, rng.dirichlet([2, 1, 1, 2])).reshape(2, 2) for _ in range(12)]
        tables += [np.array([[a, 0], [0, n - a]]) for a in (1, n // 4, n // 2)]  # perfect agreement
        for t in tables:
            base = cohen_kappa_from_table(t.tolist())
            if base.interval is None:
                continue
            for src in ((0, 0), (1, 1)):
                if t[src] == 0:
                    continue
                for dst in ((0, 1), (1, 0)):
                    u = t.copy()
                    u[src] -= 1
                    u[dst] += 1
                    worse = cohen_kappa_from_table(u.tolist())
                    if worse.interval is None:
                        continue
                    checked += 1
                    assert worse.interval.low <= base.interval.low + 1e-12, (t.tolist(), u.tolist())
    assert checked > 100


def _table(r: float, c: float, kappa: float) -> np.ndarray:
    """Cell probabilities [[00, 01], [10, 11]] (human rows, judge columns) with human pass rate r,
    judge pass rate c and Cohen's kappa `kappa`."""
    u, v = r * (1 - c), (1 - r) * c
    d = kappa * (u + v) / 2
    return np.array([(1 - r) * (1 - c) + d, v - d, u - d, r * c + d])


def test_4_a_mediocre_judge_is_rarely_trusted_on_20_items() -> None:
    # true kappa 0.55, threshold 0.6: "lower bound of the 95% interval >= 0.6" may trust it at most
    # 2.5% of the time; the Wald interval trusted it 4.2% of the time.
    p = _table(0.5, 0.5, 0.55)
    rng = np.random.default_rng(44)
    sims, trusted = 1000, 0
    for counts in rng.multinomial(20, p, size=sims):
        k = cohen_kappa_from_table(counts.reshape(2, 2).tolist())
        trusted += k.interval is not None and k.interval.low >= 0.6
    assert trusted / sims <= _binomial_upper(0.025, sims, z=2.0)


# ----------------------------------------------------------------------------- 5. power statements


def test_5_five_cases_cannot_separate_anything() -> None:
    assert stats.binomtest(5, 5).pvalue == pytest.approx(0.0625)  # the smallest exact p with 5 discordant cases
    s = power_sentence(5, 1.0, 0.0)
    assert s.startswith("5 cases cannot tell 100% from 0%"), s
    assert "no gap reachable" not in s


@pytest.mark.parametrize(("pa", "pb"), [(0.7, 0.5), (0.6, 0.3), (0.9, 0.7)])
def test_5_cases_needed_reaches_the_promised_power(pa: float, pb: float) -> None:
    n = cases_needed(pa, pb)
    assert math.isfinite(n)
    n = int(n)
    # default discordance: the models fail independently (conservative when they fail the same cases)
    p10, p01 = pa * (1 - pb), pb * (1 - pa)
    assert enumerated_mcnemar_power(n, p10, p01) >= 0.8
    assert enumerated_mcnemar_power(n - 1, p10, p01) < 0.8 or n <= 1


def test_5_power_docstring_matches_the_code() -> None:
    doc = power_sentence.__doc__ or ""
    assert "24 points" not in doc


# ----------------------------------------------------------------------------- 6. multiple comparisons


def test_6_breakdown_flags_stay_quiet_for_equal_models() -> None:
    # two equally good models, 13 groups: unadjusted, some group looked "larger than noise" 23% of the time
    rng = np.random.default_rng(6)
    cats = [f"cat{i % 10}" for i in range(200)]
    sevs = ["high", "medium", "low"] * 66 + ["low", "low"]
    sims, any_flag = 120, 0
    for _ in range(sims):
        a = (rng.random((200, 1)) < 0.7).tolist()
        b = (rng.random((200, 1)) < 0.7).tolist()
        groups = breakdown_compare(_outcomes(a, cats=cats, sevs=sevs), _outcomes(b, cats=cats, sevs=sevs), n_boot=200)
        assert len(groups) == 13
        any_flag += any(g.flagged for g in groups)
    assert any_flag / sims <= _binomial_upper(0.05, sims, z=2.0)


def test_6_default_shortlist_tie_rule_is_a_test_not_interval_overlap() -> None:
    from statsmodels.stats.proportion import proportions_ztest

    from benchrun.analysis.shortlist import Candidate, shortlist
    from benchrun.analysis.stats import wilson_interval

    _z, p = proportions_ztest([93, 80], [100, 100])
    assert p < 0.01  # 93/100 vs 80/100 differ
    c93 = Candidate("a", "m/a", wilson_interval(93, 100), n_effective=100)
    c80 = Candidate("b", "m/b", wilson_interval(80, 100), n_effective=100)
    res = shortlist([c93, c80])
    assert [r.rank for r in res.ranked] == [1, 2]
    (cmp,) = res.comparisons
    assert cmp.p_value == pytest.approx(p, rel=1e-9)


# ----------------------------------------------------------------------------- 7. smaller


def test_7_no_zero_width_interval_when_all_cases_differ_alike() -> None:
    a = _outcomes([[True]] * 20)
    b = _outcomes([[False]] * 20)
    res = paired_compare(a, b, n_boot=2000)
    assert res.difference == 1.0
    assert res.bootstrap is not None and res.bootstrap.width > 0
    assert res.se_interval is not None and res.se_interval.width > 0
    assert res.bootstrap.high == 1.0


def test_7_se_interval_stays_inside_minus_one_one() -> None:
    a = _outcomes([[True], [True], [False]])
    b = _outcomes([[False], [False], [True]])
    res = paired_compare(a, b, n_boot=2000)
    assert res.se_interval is not None
    assert -1.0 <= res.se_interval.low and res.se_interval.high <= 1.0
    assert any("clipped" in n for n in res.notes)


def _pairs(human: list[bool], judge: list[bool], modes_h: list[str | None] | None = None,
           modes_j: list[str | None] | None = None) -> list[JudgeHumanPair]:
    return [JudgeHumanPair(f"i{i}", 5 if j else 1, j, modes_j[i] if modes_j else None, 5 if h else 1, h,
                           modes_h[i] if modes_h else None)
            for i, (h, j) in enumerate(zip(human, judge, strict=True))]


def test_7_constant_humans_make_kappa_undefined_not_zero_wide() -> None:
    rep = calibrate(_pairs([True] * 30, [True] * 20 + [False] * 10))
    assert rep.kappa.value is None
    assert rep.kappa.note is not None and "human" in rep.kappa.note
    assert rep.trusted is False
    assert not any("0.00 wide" in w for w in rep.warnings)


def test_7_perfect_disagreement_is_not_called_perfect_agreement() -> None:
    k = cohen_kappa_from_table([[0, 10], [10, 0]])
    assert k.value == pytest.approx(-1.0)
    assert k.note is None or "perfect agreement" not in k.note


def test_7_failure_mode_recall_counts_the_judges_omissions() -> None:
    from sklearn.metrics import precision_recall_fscore_support

    human = [False] * 20 + [True] * 10
    modes_h: list[str | None] = ["hallucination"] * 10 + ["refusal"] * 10 + ["none"] * 10
    # the judge names hallucination on 5 of the 10, nothing on the other 5; refusal right; one false alarm
    modes_j: list[str | None] = ["hallucination"] * 5 + [None] * 5 + ["refusal"] * 10 + ["hallucination"] + [None] * 9
    rep = calibrate(_pairs(human, [False] * 20 + [True] * 10, modes_h, modes_j))
    fm = {m.mode: m for m in rep.failure_modes}
    y_true = [m or "none" for m in modes_h]
    y_pred = [m or "none" for m in modes_j]
    labels = ["hallucination", "refusal"]
    p, r, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    assert fm["hallucination"].recall == pytest.approx(r[0]) == pytest.approx(0.5)
    assert fm["hallucination"].precision == pytest.approx(p[0])
    assert fm["refusal"].recall == pytest.approx(r[1])


def test_7_length_correlation_is_rank_based() -> None:
    rng = np.random.default_rng(7)
    n = 40
    human = rng.integers(1, 6, n).astype(float)
    judge = np.clip(human + rng.integers(-1, 2, n), 1, 5)
    words = rng.integers(20, 200, n).astype(float)
    words[0] = 50_000.0  # one huge answer: Pearson on raw counts is dominated by it, ranks are not
    items = [VerbosityItem(f"i{i}", float(judge[i]), {"list": float(judge[i])}, float(human[i]), int(words[i]))
             for i in range(n)]
    rep = verbosity_report(items)
    rho = stats.spearmanr(np.column_stack([words, judge, human])).statistic
    r_xy, r_xz, r_yz = rho[0, 1], rho[0, 2], rho[1, 2]
    expected = (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    assert rep.length_partial is not None and rep.length_partial.value == pytest.approx(expected, abs=1e-9)
