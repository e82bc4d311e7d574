"""Shortlisting hand-made candidates: exclusion, ranking with ties, Pareto frontier, weights."""

from __future__ import annotations

import dataclasses
import json

import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from benchrun.analysis.compare import Outcome, paired_test
from benchrun.analysis.shortlist import Candidate, pareto_frontier, shortlist
from benchrun.analysis.stats import Interval, SignificanceTest, wilson_interval
from benchrun.errors import BadInput


def cand(key: str, passes: int, n: int = 200, cost: float | None = 1.0, p95: float | None = 1000.0,
         high: int = 0, local: bool = False) -> Candidate:
    return Candidate(key=key, model=f"provider/{key}", pass_rate=wilson_interval(passes, n),
                     high_severity_failures=high, failure_modes={"hallucination": n - passes},
                     mean_judge_score=None, judge_calibration=None, cost_per_1k_cases=cost,
                     latency_p50_ms=None if p95 is None else p95 / 2, latency_p95_ms=p95, local=local,
                     n_effective=n)


def pool() -> list[Candidate]:
    return [
        cand("big", 180, cost=20.0, p95=3000),      # 90%
        cand("mid", 176, cost=4.0, p95=1500),       # 88%
        cand("small", 150, cost=0.5, p95=800),      # 75%
        cand("local", 148, cost=0.0, p95=5000, local=True),  # 74%
    ]


def by_key(res, key):  # type: ignore[no-untyped-def]
    return next(r for r in res.ranked if r.candidate.key == key)


def test_default_ranking_ties_by_holm_adjusted_tests_and_orders_ties_by_cost() -> None:
    counts = {"big": 180, "mid": 176, "small": 150, "local": 148}
    keys = list(counts)
    pairs = [(x, y) for i, x in enumerate(keys) for y in keys[i + 1:]]
    raw = [proportions_ztest([counts[x], counts[y]], [200, 200])[1] for x, y in pairs]
    _, holm, _, _ = multipletests(raw, alpha=0.05, method="holm")
    separated = {frozenset(p) for p, adj in zip(pairs, holm) if adj < 0.05}
    # premises the expected ranks rely on (independent of benchrun): only the two close pairs stay tied
    assert separated == {frozenset(p) for p in pairs} - {frozenset(("big", "mid")), frozenset(("small", "local"))}
    res = shortlist(pool())
    assert [(r.candidate.key, r.rank) for r in res.ranked] == [("mid", 1), ("big", 1), ("local", 3), ("small", 3)]
    assert by_key(res, "big").tied_with == ("mid",)
    assert by_key(res, "local").tied_with == ("small",)
    got = {frozenset((t.a, t.b)): t for t in res.comparisons}
    for (x, y), p, adj in zip(pairs, raw, holm):
        t = got[frozenset((x, y))]
        assert t.p_value == pytest.approx(p, rel=1e-9) and t.p_adjusted == pytest.approx(adj, rel=1e-9)
        assert t.tied is bool(adj >= 0.05)
    assert res.excluded == ()
    assert all(r.score is None for r in res.ranked)
    assert "lexicographic" in res.method and "Holm" in res.tie_rule
    json.dumps(dataclasses.asdict(res), allow_nan=False)


def test_non_transitive_ties_use_count_of_clearly_better() -> None:
    # x ~ y, y ~ z, but x clearly beats z (Holm over the 3 pairs): ranks 1, 1, 2
    x = Candidate("x", "m/x", wilson_interval(180, 200), cost_per_1k_cases=3.0, n_effective=200)
    y = Candidate("y", "m/y", wilson_interval(170, 200), cost_per_1k_cases=2.0, n_effective=200)
    z = Candidate("z", "m/z", wilson_interval(156, 200), cost_per_1k_cases=1.0, n_effective=200)
    _, holm, _, _ = multipletests([proportions_ztest([a, b], [200, 200])[1] for a, b in ((180, 170), (180, 156), (170, 156))],
                                  method="holm")
    assert holm[0] >= 0.05 and holm[1] < 0.05 and holm[2] >= 0.05
    res = shortlist([z, y, x])
    assert [(r.candidate.key, r.rank) for r in res.ranked] == [("y", 1), ("x", 1), ("z", 2)]


def test_unknown_effective_sample_size_counts_as_tied_and_says_so() -> None:
    a = Candidate("a", "m/a", Interval(0.9, 0.85, 0.95), cost_per_1k_cases=1.0)
    b = Candidate("b", "m/b", Interval(0.5, 0.45, 0.55), cost_per_1k_cases=1.0)
    res = shortlist([a, b])
    assert [r.rank for r in res.ranked] == [1, 1]
    assert res.comparisons[0].p_value is None and res.comparisons[0].tied
    assert any("no quality test possible" in n for n in res.notes)


def test_custom_pair_test_never_tied_ranks_by_quality_then_cost() -> None:
    cands = [*pool(), cand("twin", 176, cost=2.0, p95=1500)]  # same pass rate as mid, cheaper
    res = shortlist(cands, pair_test=lambda a, b: SignificanceTest(0.0, "always different"))
    assert [(r.candidate.key, r.rank) for r in res.ranked] == [
        ("big", 1), ("twin", 2), ("mid", 2), ("small", 4), ("local", 5)]
    assert all(r.tied_with == () for r in res.ranked)


def test_pair_test_built_from_the_paired_test() -> None:
    # strong passes 45/50, weak passes 30/50 on the same cases; close passes 44/50
    def outcomes(passed_ids: set[int]) -> list[Outcome]:
        return [Outcome(f"q{i}", 0, i in passed_ids, None, "g", "medium") for i in range(50)]

    runs = {"strong": outcomes(set(range(45))), "close": outcomes(set(range(44))), "weak": outcomes(set(range(30)))}
    cands = [Candidate(k, k, wilson_interval(sum(o.passed for o in v), 50), cost_per_1k_cases=1.0)
             for k, v in runs.items()]

    def test(a: Candidate, b: Candidate) -> SignificanceTest | None:
        t = paired_test(runs[a.key], runs[b.key])
        return None if t is None else SignificanceTest(t.p_value, t.method)

    res = shortlist(cands, pair_test=test)
    assert [(r.candidate.key, r.rank) for r in res.ranked] == [("strong", 1), ("close", 1), ("weak", 3)]
    assert all("McNemar" in t.method for t in res.comparisons)


def test_exclusions_list_every_reason() -> None:
    cands = [*pool(), cand("risky", 184, cost=30.0, p95=9000, high=4), cand("mystery", 170, cost=None, p95=None),
             Candidate("empty", "m/empty", wilson_interval(0, 0))]
    res = shortlist(cands, max_cost_per_1k=15, max_p95_ms=4000, max_high_severity=2, min_pass_rate=0.745)
    reasons = {e.candidate.key: e.reasons for e in res.excluded}
    assert set(reasons) == {"big", "local", "risky", "mystery", "empty"}
    assert len(reasons["risky"]) == 3
    assert any("4 high-severity" in r for r in reasons["risky"])
    assert any("over the limit of $15" in r for r in reasons["big"])
    assert any("p95 latency 5000 ms" in r for r in reasons["local"])
    assert any("below the minimum" in r for r in reasons["local"])
    assert any("cost unknown" in r for r in reasons["mystery"])
    assert any("latency unknown" in r for r in reasons["mystery"])
    assert reasons["empty"][0] == "no scored cases (pass rate undefined)"
    assert len(reasons["empty"]) == 3  # its cost and latency are unknown too
    assert [r.candidate.key for r in res.ranked] == ["mid", "small"]


def test_pareto_frontier_quality_vs_cost() -> None:
    cands = [*pool(), cand("dominated", 160, cost=6.0), cand("mystery", 195, cost=None)]
    assert pareto_frontier(cands) == {"big", "mid", "small", "local"}
    res = shortlist(cands)
    assert {r.candidate.key for r in res.ranked if r.pareto} == {"big", "mid", "small", "local"}
    assert not by_key(res, "mystery").pareto and not by_key(res, "dominated").pareto
    assert any("mystery" in n and "Pareto" in n for n in res.notes)
    # equal quality and cost: neither dominates the other
    assert pareto_frontier([cand("p", 100, cost=1.0), cand("q", 100, cost=1.0)]) == {"p", "q"}


def test_weighted_scores_by_hand() -> None:
    a = Candidate("a", "m/a", Interval(0.9, 0.85, 0.95), cost_per_1k_cases=10.0, latency_p95_ms=100.0)
    b = Candidate("b", "m/b", Interval(0.8, 0.75, 0.85), cost_per_1k_cases=5.0, latency_p95_ms=200.0)
    c = Candidate("c", "m/c", Interval(0.7, 0.65, 0.75), cost_per_1k_cases=0.0, latency_p95_ms=300.0)
    # normalised: quality 1, .5, 0; cost 0, .5, 1; latency 1, .5, 0
    res = shortlist([c, b, a], weights={"quality": 2, "cost": 1, "latency": 1})
    assert [(r.candidate.key, r.score) for r in res.ranked] == [
        ("a", pytest.approx(0.75)), ("b", pytest.approx(0.5)), ("c", pytest.approx(0.25))]
    assert [r.rank for r in res.ranked] == [1, 2, 3]
    assert "weighted" in res.method
    # quality and cost equally weighted: all three score 0.5 and share rank 1
    even = shortlist([c, b, a], weights={"quality": 1, "cost": 1})
    assert [r.rank for r in even.ranked] == [1, 1, 1]
    assert all(r.score == pytest.approx(0.5) for r in even.ranked)
    # unknown cost scores 0 on cost; a criterion where all are equal scores 1
    d = Candidate("d", "m/d", Interval(0.7, 0.65, 0.75), cost_per_1k_cases=None, latency_p95_ms=300.0)
    only_cost = shortlist([c, d], weights={"cost": 1})
    assert [(r.candidate.key, r.score) for r in only_cost.ranked] == [("c", 1.0), ("d", 0.0)]


def test_bad_weights_and_duplicate_keys() -> None:
    with pytest.raises(BadInput, match="unknown weight"):
        shortlist(pool(), weights={"vibes": 1})
    with pytest.raises(BadInput, match="not all zero"):
        shortlist(pool(), weights={"quality": 0})
    with pytest.raises(BadInput, match="more than once"):
        shortlist([*pool(), cand("big", 10)])


def test_empty_input() -> None:
    res = shortlist([])
    assert res.ranked == () and res.excluded == ()
