"""Pure parts of coverage: JSD, bands, floor, the cluster table, k choice, labels, refresh allocation."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from benchrun.coverage import cluster as cl
from benchrun.coverage import refresh as rf
from benchrun.coverage import sessions as ss
from benchrun.coverage.report import Bands, coverage_status, coverage_table, jensen_shannon_divergence, jsd_floor


def scipy_jsd(p: list[float] | np.ndarray, q: list[float] | np.ndarray) -> float:
    return float(jensenshannon(p, q, base=2) ** 2)


# ----------------------------------------------------------------------------- JSD


@pytest.mark.parametrize("seed", range(8))
def test_jsd_matches_scipy_on_random_vectors(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 60))
    p = rng.random(k) * (rng.random(k) > 0.3)  # some zero bins
    q = rng.random(k) * (rng.random(k) > 0.3)
    p[0] += 0.1
    q[-1] += 0.1
    assert jensen_shannon_divergence(p, q) == pytest.approx(scipy_jsd(p, q), abs=1e-12)


def test_jsd_edge_values() -> None:
    assert jensen_shannon_divergence([1, 0, 0], [1, 0, 0]) == 0.0  # all in one class, same class
    assert jensen_shannon_divergence([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint support: the maximum
    assert jensen_shannon_divergence([2, 2], [5, 5]) == pytest.approx(0.0)  # unnormalised input
    # ties / symmetric
    p, q = [0.2, 0.3, 0.5], [0.5, 0.3, 0.2]
    assert jensen_shannon_divergence(p, q) == pytest.approx(jensen_shannon_divergence(q, p))
    assert jensen_shannon_divergence(p, q) == pytest.approx(scipy_jsd(p, q), abs=1e-12)
    # half the mass disjoint: JSD = 0.5 (hand computation: M=(.5,.25,.25), KL(P||M)=.5*1=.5... exact value from scipy)
    assert jensen_shannon_divergence([1, 0, 0], [0.5, 0.5, 0]) == pytest.approx(scipy_jsd([1, 0, 0], [0.5, 0.5, 0]))


@pytest.mark.parametrize(
    ("p", "q"),
    [([], []), ([0, 0], [1, 0]), ([1, -1], [1, 1]), ([1, 2], [1, 2, 3]), ([float("nan"), 1], [1, 1])],
)
def test_jsd_rejects_undefined_inputs(p: list[float], q: list[float]) -> None:
    with pytest.raises(ValueError):
        jensen_shannon_divergence(p, q)


def test_bands_edges_and_configurable() -> None:
    b = Bands()
    assert [b.band(x) for x in (0.0, 0.0999, 0.1, 0.25, 0.2501, 1.0)] == [
        "good",
        "good",
        "watch",
        "watch",
        "refresh",
        "refresh",
    ]
    strict = Bands(good=0.02, refresh=0.05)
    assert strict.band(0.03) == "watch" and strict.band(0.06) == "refresh"
    with pytest.raises(ValueError):
        Bands(good=0.3, refresh=0.2)


def test_floor_with_one_case_equals_single_bin_divergence() -> None:
    # uniform p over k bins: any 1-case sample puts all eval mass on one bin, so every draw has the
    # same JSD, which scipy computes independently.
    k = 7
    p = np.full(k, 1 / k)
    one = np.zeros(k)
    one[3] = 1
    med, p95 = jsd_floor(p, 1, draws=50, seed=3)
    assert med == pytest.approx(scipy_jsd(p, one), abs=1e-12)
    assert p95 == pytest.approx(med)
    big_med, _ = jsd_floor(p, 100_000, draws=20)
    assert big_med < 1e-3  # a huge random sample matches production
    assert math.isnan(jsd_floor(p, 0)[0])


# ----------------------------------------------------------------------------- the cluster table


def _table(**over: object) -> dict:
    args: dict = dict(
        cluster_ids=[0, 1, 2],
        prod_labels=np.array([0] * 6 + [1] * 3 + [2] * 1),
        prod_weights=np.ones(10),
        eval_labels=np.array([1, 1, 1, 2, 0]),
        eval_outside=np.array([False, False, False, False, True]),
        eval_ids=["a", "b", "c", "d", "e"],
        eval_added=[dt.date(2024, 1, 5), None, dt.date(2024, 3, 1), None, dt.date(2025, 1, 1)],
        cluster_labels={0: "zero", 1: "one", 2: "two"},
        representatives={0: ["q0"], 1: ["q1"], 2: ["q2"]},
    )
    args.update(over)
    return coverage_table(**args)


def test_coverage_table_shares_gap_order_and_outside_bin() -> None:
    t = _table()
    by_id = {c["id"]: c for c in t["clusters"]}
    assert by_id[0]["production_share"] == pytest.approx(0.6)
    assert by_id[0]["eval_count"] == 0  # case "e" is nearest to 0 but outside production
    assert by_id[0]["status"] == "uncovered" and by_id[0]["gap"] == pytest.approx(0.6)
    assert by_id[1]["eval_share"] == pytest.approx(0.6) and by_id[1]["status"] == "covered"  # exactly 2x: not over
    assert by_id[1]["newest_eval_added"] == "2024-03-01"
    assert by_id[2]["newest_eval_added"] is None
    assert [c["id"] for c in t["clusters"]] == [0, 1, 2]  # uncovered first, then by gap, then by traffic
    assert t["outside_production"] == {"count": 1, "share": 0.2, "case_ids": ["e"]}
    assert t["uncovered"] == {"clusters": 1, "production_share": pytest.approx(0.6)}
    # the score is the JSD over clusters plus the outside bin, checked against scipy
    p = [0.6, 0.3, 0.1, 0.0]
    q = [0.0, 0.6, 0.2, 0.2]
    assert t["distributions"]["production"] == pytest.approx(p)
    assert t["distributions"]["eval"] == pytest.approx(q)
    assert t["score"]["jsd"] == pytest.approx(scipy_jsd(p, q), abs=1e-12)
    assert t["score"]["jsd_distance"] == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-12)
    assert t["score"]["band"] == "refresh"


def test_coverage_table_weights_and_perfect_match() -> None:
    # weekday-style weights change production shares; eval matching them exactly scores 0
    w = np.array([1.0] * 6 + [2.0] * 3 + [2.0])  # shares 6/14, 6/14, 2/14
    t = _table(
        prod_weights=w,
        eval_labels=np.array([0] * 3 + [1] * 3 + [2]),
        eval_outside=np.zeros(7, bool),
        eval_ids=list("abcdefg"),
        eval_added=[None] * 7,
    )
    assert t["score"]["jsd"] == pytest.approx(0.0, abs=1e-12)
    assert {c["id"]: round(c["production_share"], 6) for c in t["clusters"]} == {
        0: round(6 / 14, 6),
        1: round(6 / 14, 6),
        2: round(2 / 14, 6),
    }
    assert t["score"]["band"] == "good"


def test_coverage_table_single_cluster_and_empty_eval() -> None:
    t = _table(
        cluster_ids=[0],
        prod_labels=np.zeros(4, int),
        prod_weights=np.ones(4),
        eval_labels=np.zeros(2, int),
        eval_outside=np.zeros(2, bool),
        eval_ids=["a", "b"],
        eval_added=[None, None],
    )
    assert t["score"]["jsd"] == 0.0
    with pytest.raises(ValueError, match="no cases"):
        _table(eval_labels=np.zeros(0, int), eval_outside=np.zeros(0, bool), eval_ids=[], eval_added=[])


def test_status_rules() -> None:
    assert coverage_status(0.1, 0.0, 0) == "uncovered"
    assert coverage_status(0.1, 0.04, 2) == "thin"
    assert coverage_status(0.1, 0.1, 5) == "covered"
    assert coverage_status(0.1, 0.25, 9) == "over"


# ----------------------------------------------------------------------------- clustering helpers


@pytest.mark.parametrize(
    ("n", "k"), [(10_000, 71), (20_000, 80), (1_000, 22), (100, 20), (60, 12), (4, 1), (1, 1)]
)
def test_choose_k(n: int, k: int) -> None:
    assert cl.choose_k(n) == k


def test_choose_k_zero() -> None:
    with pytest.raises(ValueError):
        cl.choose_k(0)


def test_kmeans_recovers_separated_groups_and_outside_threshold() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4]
    x = np.vstack([c + 0.05 * rng.standard_normal((30, 8)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    c = cl.kmeans(x, 4, seed=0)
    truth = np.repeat(np.arange(4), 30)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, c.labels) == pytest.approx(1.0)
    sims = cl.production_similarities(x, c)
    thr = cl.outside_threshold(sims, 1.0)
    assert thr == pytest.approx(float(np.percentile(sims, 1.0)))
    far = np.eye(8)[7:8]  # orthogonal to every group
    near = centres[2:3]
    labels, s = cl.assign(x, c, np.vstack([far, near]).astype(np.float32))
    assert s[0] < thr <= s[1]
    assert labels[1] == c.labels[60]


def test_hdbscan_marks_noise_unclustered() -> None:
    rng = np.random.default_rng(1)
    a = np.array([1.0, 0, 0, 0]) + 0.02 * rng.standard_normal((40, 4))
    b = np.array([0, 1.0, 0, 0]) + 0.02 * rng.standard_normal((40, 4))
    noise = rng.standard_normal((6, 4))
    x = np.vstack([a, b, noise])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    c = cl.hdbscan(x, min_cluster_size=10)
    assert c.k == 2
    assert len(set(c.labels[:40])) == 1 and len(set(c.labels[40:80])) == 1
    labels, _ = cl.assign(x, c, x[:1])
    assert labels[0] == c.labels[0]


def test_ctfidf_labels_pick_distinctive_terms() -> None:
    texts = [
        "my card has not arrived",
        "card still not arrived",
        "when will my card arrive",
        "exchange rate for euros",
        "what exchange rate do you use",
        "the exchange rate was wrong",
    ]
    labels = np.array([0, 0, 0, 1, 1, 1])
    out = cl.ctfidf_labels(texts, labels, [0, 1], top=2)
    assert set(out[0].split(" / ")) == {"card", "arrived"}
    assert set(out[1].split(" / ")) == {"exchange", "rate"}
    assert cl.ctfidf_labels(["the", "a"], np.array([0, 1]), [0, 1]) == {0: "(no terms)", 1: "(no terms)"}


# ----------------------------------------------------------------------------- refresh


def _clusters(shares: list[float], eval_shares: list[float], eval_counts: list[int]) -> list[dict]:
    return [
        {"id": i, "label": f"c{i}", "production_share": p, "eval_share": e, "eval_count": n}
        for i, (p, e, n) in enumerate(zip(shares, eval_shares, eval_counts, strict=True))
    ]


def test_units_pool_small_clusters() -> None:
    cs = _clusters([0.6, 0.396, 0.002, 0.002], [0.5, 0.5, 0.0, 0.0], [5, 5, 0, 0])
    labels = np.array([0] * 5 + [1] * 4 + [2] + [3])
    units = rf.build_units(cs, labels, edge_share=0.005)
    assert [u.key for u in units] == ["cluster 0", "cluster 1", rf.EDGE_POOL]
    assert units[2].cluster_ids == [2, 3]
    assert units[2].production_share == pytest.approx(0.004)
    assert sorted(units[2].members.tolist()) == [9, 10]


def test_unit_weight_aggressive_for_uncovered_light_for_covered() -> None:
    small_uncovered = rf.unit_weight(0.01, 0.0)
    big_covered = rf.unit_weight(0.2, 1.0)
    assert small_uncovered > big_covered
    assert rf.unit_weight(0.2, 0.0) / rf.unit_weight(0.2, 1.0) == pytest.approx(11.0)


def test_select_skips_duplicates_and_near_duplicates_and_reallocates() -> None:
    # two units; unit A (uncovered) has 4 rows of which two are near-duplicates of each other and one equals an
    # existing case; unit B (covered) has 3 distinct rows.
    v = np.eye(6, dtype=np.float32)
    a_rows = np.vstack([v[0], v[0] * 0.99 + v[5] * 0.01, v[1], v[2]])
    b_rows = np.vstack([v[3], v[4], v[5]])
    x = np.vstack([a_rows, b_rows])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    texts = ["a0", "a0 again", "exists", "a3", "b0", "b1", "b2"]
    units = [
        rf.Unit("cluster 0", [0], "A", 0.5, 0.0, 0, np.arange(4)),
        rf.Unit("cluster 1", [1], "B", 0.5, 1.0, 3, np.arange(4, 7)),
    ]
    eval_vecs = np.vstack([v[1]]).astype(np.float32)
    picked = rf.select(
        units,
        10,
        prod_texts=texts,
        prod_vecs=x,
        prod_weights=np.ones(7),
        eval_texts=["EXISTS "],
        eval_vecs=eval_vecs,
        near_duplicate=0.9,
    )
    chosen = {texts[i] for i in picked}
    assert "exists" not in chosen  # exact duplicate (case/space-insensitive) of an eval case
    assert not {"a0", "a0 again"} <= chosen  # near-duplicates of each other
    assert len(picked) == len(set(picked)) == 5  # 2 left in A + all 3 of B
    assert units[0].exhausted and units[1].exhausted
    # the uncovered unit is served first
    assert texts[picked[0]].startswith("a")


def test_select_proportions_follow_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # random directions: no near-duplicates
    units = [
        rf.Unit("cluster 0", [0], "u", 0.25, 0.0, 0, np.arange(0, 200)),  # uncovered
        rf.Unit("cluster 1", [1], "c", 0.25, 0.25, 9, np.arange(200, 400)),  # covered
    ]
    rf.select(
        units,
        24,
        prod_texts=[str(i) for i in range(400)],
        prod_vecs=x,
        prod_weights=np.ones(400),
        eval_texts=[],
        eval_vecs=np.zeros((0, 64), np.float32),
    )
    # weights 0.5*1.1 and 0.5*0.1 -> Sainte-Laguë gives 22 : 2
    assert (units[0].allocated, units[1].allocated) == (22, 2)


def test_select_zero() -> None:
    units = [rf.Unit("cluster 0", [0], "u", 1.0, 0.0, 0, np.arange(2))]
    x = np.eye(2, dtype=np.float32)
    assert rf.select(units, 0, prod_texts=["a", "b"], prod_vecs=x, prod_weights=np.ones(2), eval_texts=[],
                     eval_vecs=np.zeros((0, 2), np.float32)) == []


# ----------------------------------------------------------------------------- sessions


def test_session_features_and_combination() -> None:
    s = ss.case_session(
        "c1",
        [("user", "hi"), ("assistant", "hello"), ("tool", "{}"), ("user", "thanks")],
        outcome="abandoned",
    )
    assert s.turns == ["hi", "thanks"]
    assert s.features[0] == pytest.approx(math.log1p(2))
    assert s.features[1] == pytest.approx(math.log1p(1))
    assert s.features[2] == pytest.approx(0.5)
    assert s.features[3] == pytest.approx(math.log1p(len("hi") + len("thanks") + len("hello") + len("{}")))
    assert s.features[4] == 0.0
    feats = np.array([[1.0, 0.0, 0.0, 2.0, 1.0], [3.0, 2.0, 1.0, 4.0, np.nan]])
    mean, std = ss.feature_stats(feats)
    assert mean[4] == 1.0 and std[4] == 0.0
    text = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    out = ss.combine(text, feats, mean, std, weight=1.0)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    # zero weight reduces to the text vectors
    assert np.allclose(ss.combine(text, feats, mean, std, weight=0.0)[:, :2], text)
