"""Shortlist candidate models: exclude by hard limits, rank the rest, mark the quality/cost frontier.

Pure functions over `Candidate` records (built by the caller from the ledger). Results are
frozen dataclasses that `dataclasses.asdict` turns into JSON-ready dicts.

Ranking and ties (details in `shortlist`, docs/compare.md and docs/statistics.md):

* Exclusion: each hard limit a candidate breaks (or cannot be checked against because the
  number is unknown) is listed as a reason.
* Default order is lexicographic: quality (pass rate), then cost per 1k cases, then p95
  latency. Quality differences within noise do not count: every pair of candidates is tested
  (a paired test when the caller supplies one, else a two-proportion test on effective sample
  sizes), the p-values are Holm-adjusted over all pairs, and two candidates are *tied* unless
  the adjusted p < 1 - level. A candidate's rank is 1 + the number of candidates whose quality
  is higher *and not tied* with it (the rule Chatbot Arena uses for its rank column; Chiang
  et al. 2024, arXiv:2403.04132). Candidates with the same rank are ordered by cost, then latency.
* With ``weights`` the order is a weighted sum of min-max normalised quality, cost and latency.
* The Pareto frontier of quality (higher better) vs cost (lower better) is marked; a candidate
  with unknown cost is never on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from benchrun.analysis.stats import Interval, SignificanceTest, holm_adjust, two_proportion_test
from benchrun.errors import BadInput

WEIGHT_KEYS = ("quality", "cost", "latency")


@dataclass(frozen=True)
class Candidate:
    """One model (with its settings) evaluated on a dataset.

    ``pass_rate`` is usually the interval from `benchrun.analysis.breakdown.summarize` (Wilson, or
    clustered Wilson with several samples per case); ``n_effective`` is the number of independent
    samples behind it (the scored samples divided by the design effect; the number of cases with
    one sample each), used by the default tie test; None when unknown.
    ``cost_per_1k_cases`` is None when the price is unknown (0.0 for a free local model);
    latencies are in milliseconds; prices are per 1M tokens.
    """

    key: str
    model: str
    pass_rate: Interval
    high_severity_failures: int = 0
    failure_modes: dict[str, int] = field(default_factory=dict)
    mean_judge_score: float | None = None
    judge_calibration: str | None = None
    cost_per_1k_cases: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    context_window: int | None = None
    input_price_per_1m: float | None = None
    output_price_per_1m: float | None = None
    local: bool = False
    coverage_note: str | None = None
    n_effective: float | None = None


@dataclass(frozen=True)
class Excluded:
    candidate: Candidate
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Ranked:
    """A shortlisted candidate. ``score`` is the weighted score (None in lexicographic mode);
    ``tied_with`` lists the keys whose quality is within noise of this one."""

    rank: int
    candidate: Candidate
    score: float | None
    pareto: bool
    tied_with: tuple[str, ...]


@dataclass(frozen=True)
class QualityTest:
    """The quality test between two shortlisted candidates.

    ``p_value`` from the pair test (None: no test was possible, so they count as tied),
    ``p_adjusted`` Holm-adjusted over every tested pair, ``tied`` unless p_adjusted < 1 - level.
    """

    a: str
    b: str
    p_value: float | None
    p_adjusted: float | None
    method: str
    tied: bool


@dataclass(frozen=True)
class ShortlistResult:
    ranked: tuple[Ranked, ...]
    excluded: tuple[Excluded, ...]
    method: str
    notes: tuple[str, ...] = ()
    comparisons: tuple[QualityTest, ...] = ()
    tie_rule: str = ""


PairTestFn = Callable[[Candidate, Candidate], SignificanceTest | None]


def unpaired_pair_test(x: Candidate, y: Candidate) -> SignificanceTest | None:
    """Default pair test: two-sided two-proportion z-test on the pass-rate estimates with each
    candidate's effective sample size (`benchrun.analysis.stats.two_proportion_test`; Rao &
    Scott 1992 for several samples per case). None when either ``n_effective`` is unknown or a
    pass rate is undefined. It ignores pairing: when both candidates ran on the same cases,
    pass a paired test instead (`benchrun.analysis.compare.paired_test`), which is more sensitive.
    """
    if x.n_effective is None or y.n_effective is None or x.n_effective <= 0 or y.n_effective <= 0:
        return None
    px, py = x.pass_rate.estimate, y.pass_rate.estimate
    if math.isnan(px) or math.isnan(py):
        return None
    return two_proportion_test(px, x.n_effective, py, y.n_effective)


def _quality(c: Candidate) -> float:
    q = c.pass_rate.estimate
    return -math.inf if q is None or math.isnan(q) else q


def _exclusion_reasons(c: Candidate, max_cost_per_1k: float | None, max_p95_ms: float | None,
                       max_high_severity: int | None, min_pass_rate: float | None) -> list[str]:
    reasons: list[str] = []
    if math.isnan(c.pass_rate.estimate):
        reasons.append("no scored cases (pass rate undefined)")
    elif min_pass_rate is not None and c.pass_rate.estimate < min_pass_rate:
        reasons.append(f"pass rate {c.pass_rate.estimate:.1%} below the minimum {min_pass_rate:.1%}")
    if max_high_severity is not None and c.high_severity_failures > max_high_severity:
        reasons.append(f"{c.high_severity_failures} high-severity failure(s), more than the allowed {max_high_severity}")
    if max_cost_per_1k is not None:
        if c.cost_per_1k_cases is None:
            reasons.append(f"cost unknown, so the limit of ${max_cost_per_1k:g} per 1k cases cannot be checked")
        elif c.cost_per_1k_cases > max_cost_per_1k:
            reasons.append(f"cost ${c.cost_per_1k_cases:.2f} per 1k cases, over the limit of ${max_cost_per_1k:g}")
    if max_p95_ms is not None:
        if c.latency_p95_ms is None:
            reasons.append(f"p95 latency unknown, so the limit of {max_p95_ms:g} ms cannot be checked")
        elif c.latency_p95_ms > max_p95_ms:
            reasons.append(f"p95 latency {c.latency_p95_ms:.0f} ms, over the limit of {max_p95_ms:g} ms")
    return reasons


def pareto_frontier(cands: Sequence[Candidate]) -> set[str]:
    """Keys of candidates not dominated on (quality ↑, cost ↓).

    B dominates A when B's pass-rate estimate >= A's and B's cost <= A's with at least one
    strict. Only candidates with known cost take part: a candidate with unknown cost is never
    on the frontier and never dominates another. Uses point estimates, so a frontier member
    may be tied in quality (within noise) with a cheaper candidate.
    """
    known = [c for c in cands if c.cost_per_1k_cases is not None and not math.isinf(_quality(c))]
    front: set[str] = set()
    for c in known:
        dominated = any(
            _quality(o) >= _quality(c) and o.cost_per_1k_cases <= c.cost_per_1k_cases  # type: ignore[operator]
            and (_quality(o) > _quality(c) or o.cost_per_1k_cases < c.cost_per_1k_cases)  # type: ignore[operator]
            for o in known if o is not c
        )
        if not dominated:
            front.add(c.key)
    return front


def _minmax(values: list[float | None], higher_is_better: bool) -> list[float]:
    """Min-max normalise to [0, 1] with 1 = best; unknown values get 0 (worst); all equal -> 1."""
    known = [v for v in values if v is not None]
    if not known:
        return [0.0] * len(values)
    lo, hi = min(known), max(known)
    out: list[float] = []
    for v in values:
        if v is None:
            out.append(0.0)
        elif hi == lo:
            out.append(1.0)
        else:
            out.append((v - lo) / (hi - lo) if higher_is_better else (hi - v) / (hi - lo))
    return out


def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = set(weights) - set(WEIGHT_KEYS)
    if unknown:
        raise BadInput(None, "weights", f"unknown weight(s) {sorted(unknown)}; use {', '.join(WEIGHT_KEYS)}")
    w = {k: float(weights.get(k, 0.0)) for k in WEIGHT_KEYS}
    if any(v < 0 or math.isnan(v) for v in w.values()) or sum(w.values()) <= 0:
        raise BadInput(None, "weights", "weights must be >= 0 and not all zero, e.g. quality=0.6,cost=0.3,latency=0.1")
    return w


def _sort_key(c: Candidate) -> tuple[float, float, float, str]:
    cost = c.cost_per_1k_cases if c.cost_per_1k_cases is not None else math.inf
    lat = c.latency_p95_ms if c.latency_p95_ms is not None else math.inf
    return (cost, lat, -_quality(c), c.key)


def shortlist(
    cands: Sequence[Candidate],
    max_cost_per_1k: float | None = None,
    max_p95_ms: float | None = None,
    max_high_severity: int | None = None,
    min_pass_rate: float | None = None,
    weights: Mapping[str, float] | None = None,
    pair_test: PairTestFn | None = None,
    level: float = 0.95,
) -> ShortlistResult:
    """Exclude, rank and mark the frontier.

    Exclusion: a candidate breaking any given limit is excluded with every reason listed.
    Unknown cost (or p95 latency) cannot be checked against a limit and excludes the
    candidate when that limit is set. ``min_pass_rate`` compares the point estimate. A
    candidate with no scored cases is always excluded.

    Ties: ``pair_test(x, y)`` returns a two-sided test of "x and y have the same pass rate"
    (a `SignificanceTest`, or None when it cannot be tested); the default is
    `unpaired_pair_test`. Every pair of shortlisted candidates is tested, the p-values are
    adjusted with Holm's method over all tested pairs (`holm_adjust`, family-wise error rate
    <= 1 - level under any dependence), and a pair is tied unless its adjusted p < 1 - level.
    So with several equally good candidates, the chance that any two get different ranks is
    at most 1 - level (unadjusted pairwise tests reached 26% with 6 candidates).

    Lexicographic (default): rank = 1 + #{candidates with a higher pass rate that are not tied
    with it}; equal ranks are ordered by cost per 1k cases, then p95 latency (unknown last),
    then pass rate, then key.

    Weighted (``weights`` over "quality", "cost", "latency", any non-negative numbers):
    each criterion is min-max normalised over the shortlisted candidates to [0, 1] with 1 =
    best (pass-rate estimate: higher is better; cost and p95 latency: lower is better; an
    unknown value scores 0; a criterion where all candidates are equal scores 1);
    score = Σ w_k · norm_k / Σ w_k. Rank by score (equal scores share a rank). Min-max is
    linear, so one very expensive candidate compresses the differences among cheap ones;
    normalisation is relative to the candidates present, so adding one changes the others'
    scores. ``tied_with`` still reports quality ties.

    Pareto: see `pareto_frontier`, computed over the shortlisted (non-excluded) candidates.
    """
    keys = [c.key for c in cands]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise BadInput(None, f"candidate {dup[0]}", "appears more than once; give each candidate a unique key")
    test_fn = pair_test or unpaired_pair_test
    excluded: list[Excluded] = []
    kept: list[Candidate] = []
    for c in cands:
        reasons = _exclusion_reasons(c, max_cost_per_1k, max_p95_ms, max_high_severity, min_pass_rate)
        if reasons:
            excluded.append(Excluded(c, tuple(reasons)))
        else:
            kept.append(c)

    pairs = [(x, y) for i, x in enumerate(kept) for y in kept[i + 1 :]]
    raw = [test_fn(x, y) for x, y in pairs]
    tested = [i for i, t in enumerate(raw) if t is not None]
    adjusted = dict(zip(tested, holm_adjust([raw[i].p_value for i in tested]), strict=True))  # type: ignore[union-attr]
    alpha = 1 - level
    comparisons: list[QualityTest] = []
    tied_pairs: set[frozenset[str]] = set()
    for i, (x, y) in enumerate(pairs):
        t = raw[i]
        p_adj = adjusted.get(i)
        is_tied = p_adj is None or p_adj >= alpha
        if is_tied:
            tied_pairs.add(frozenset((x.key, y.key)))
        comparisons.append(QualityTest(x.key, y.key, None if t is None else t.p_value, p_adj,
                                       "no test possible" if t is None else t.method, is_tied))
    tied: dict[str, tuple[str, ...]] = {
        c.key: tuple(sorted(o.key for o in kept if o is not c and frozenset((c.key, o.key)) in tied_pairs))
        for c in kept
    }
    front = pareto_frontier(kept)
    notes: list[str] = []
    unknown_cost = [c.key for c in kept if c.cost_per_1k_cases is None]
    if unknown_cost:
        notes.append(f"cost unknown for {', '.join(unknown_cost)}: never on the Pareto frontier and ranked "
                     "last among equals on cost.")
    untested = [f"{x.key}/{y.key}" for i, (x, y) in enumerate(pairs) if raw[i] is None]
    if untested:
        notes.append(f"no quality test possible for {', '.join(untested[:6])}{' …' if len(untested) > 6 else ''} "
                     "(effective sample size unknown): counted as tied.")
    tie_rule = f"tied unless the pairwise test's Holm-adjusted p < {alpha:g} ({len(tested)} pair(s) tested)"

    ranked: list[Ranked] = []
    if weights is None:
        method = "lexicographic: pass rate (ties within noise share a rank), then cost per 1k cases, then p95 latency"
        ranks: dict[str, int] = {}
        for c in kept:
            better = sum(1 for o in kept if _quality(o) > _quality(c) and o.key not in tied[c.key])
            ranks[c.key] = 1 + better
        for c in sorted(kept, key=lambda c: (ranks[c.key], *_sort_key(c))):
            ranked.append(Ranked(ranks[c.key], c, None, c.key in front, tied[c.key]))
    else:
        w = _check_weights(weights)
        total = sum(w.values())
        qn = _minmax([None if math.isinf(_quality(c)) else _quality(c) for c in kept], True)
        cn = _minmax([c.cost_per_1k_cases for c in kept], False)
        ln = _minmax([c.latency_p95_ms for c in kept], False)
        scores = {c.key: round((w["quality"] * q + w["cost"] * co + w["latency"] * la) / total, 12)
                  for c, q, co, la in zip(kept, qn, cn, ln, strict=True)}
        method = ("weighted: " + ", ".join(f"{k} {w[k] / total:.2f}" for k in WEIGHT_KEYS)
                  + " of min-max normalised values (1 = best among the shortlisted)")
        order = sorted(kept, key=lambda c: (-scores[c.key], *_sort_key(c)))
        for c in order:
            rank = 1 + sum(1 for o in kept if scores[o.key] > scores[c.key])
            ranked.append(Ranked(rank, c, scores[c.key], c.key in front, tied[c.key]))
    return ShortlistResult(tuple(ranked), tuple(excluded), method, tuple(notes), tuple(comparisons), tie_rule)
