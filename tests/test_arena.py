"""Bradley-Terry arena ratings (`benchrun.analysis.arena`, `benchrun arena --battles`).

Independent checks: scikit-learn's LogisticRegression on the battle design matrix (as Chatbot
Arena's notebook), statsmodels' Wilson interval, and seeded simulations from known ratings for
the bootstrap's coverage, the tie rule's false positives and the length-controlled win rate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from arenasim import simulate
from benchrun.analysis.arena import ELO_SCALE, Battle, rate
from benchrun.battles import load_battles
from benchrun.errors import BadInput
from conftest import Project


def _sklearn_ratings(battles: list[Battle], models: list[str], c: float | None) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    idx = {m: i for i, m in enumerate(models)}
    rows, ys, ws = [], [], []
    for bt in battles:
        x = np.zeros(len(models))
        x[idx[bt.model_a]], x[idx[bt.model_b]] = 1.0, -1.0
        if bt.winner == "tie":  # half a win each: two rows of weight 1/2
            rows += [x, x]
            ys += [1, 0]
            ws += [0.5, 0.5]
        else:
            rows.append(x)
            ys.append(1 if bt.winner == "model_a" else 0)
            ws.append(1.0)
    lr = LogisticRegression(C=np.inf if c is None else c, fit_intercept=False, tol=1e-12, max_iter=10_000)
    lr.fit(np.array(rows), np.array(ys), sample_weight=np.array(ws))
    coef = lr.coef_[0] - lr.coef_[0].mean()
    return {m: 1000 + ELO_SCALE * coef[i] for m, i in idx.items()}


@pytest.mark.parametrize("ridge", [0.0, 1e-4, 0.5])
def test_bradley_terry_matches_sklearn_logistic_regression(ridge: float) -> None:
    theta = np.array([0.8, 0.3, 0.0, -0.2, -0.9])
    battles = simulate(theta, 150, 4, seed=3, tie=0.5)
    res = rate(battles, n_boot=20, ridge=ridge, by_category=False)
    models = sorted({b.model_a for b in battles} | {b.model_b for b in battles})
    ref = _sklearn_ratings(battles, models, None if ridge == 0 else 1 / ridge)
    ours = {r.model: r.rating for r in res.ratings}
    for m in models:
        assert ours[m] == pytest.approx(ref[m], abs=0.01), (m, ours[m], ref[m])
    assert abs(sum(ours.values()) / len(ours) - 1000) < 1e-6
    # the order follows the true strengths here (well separated at 600 battles)
    assert [r.model for r in res.ratings][:1] == ["m0"] and res.ratings[-1].model == "m4"


def test_ties_are_half_a_win_and_anchor_sets_1000() -> None:
    won_lost = [Battle("a", "b", "model_a", "1"), Battle("a", "b", "model_b", "2"), Battle("b", "c", "model_a", "3")]
    tied = [Battle("a", "b", "tie", "1"), Battle("a", "b", "tie", "2"), Battle("b", "c", "model_a", "3")]
    r1 = {r.model: r for r in rate(won_lost, n_boot=20, by_category=False).ratings}
    r2 = {r.model: r for r in rate(tied, n_boot=20, by_category=False).ratings}
    for m in "abc":
        assert r1[m].rating == pytest.approx(r2[m].rating, abs=1e-6)
    assert r2["a"].win_rate == 0.5 and r2["a"].ties == 2 and r2["b"].win_rate == pytest.approx(2 / 3)
    mean = rate(simulate(np.array([0.5, 0, -0.5]), 60, 3, 1), n_boot=50, by_category=False)
    anch = rate(simulate(np.array([0.5, 0, -0.5]), 60, 3, 1), anchor="m1", n_boot=50, by_category=False)
    rm = {r.model: r.rating for r in mean.ratings}
    ra = {r.model: r for r in anch.ratings}
    assert ra["m1"].rating == 1000.0 and ra["m1"].interval.low == ra["m1"].interval.high == 1000.0
    for m in ("m0", "m2"):
        assert ra[m].rating - 1000 == pytest.approx(rm[m] - rm["m1"], abs=1e-6)


def test_bootstrap_resamples_cases_not_battles() -> None:
    """Ten copies of each battle on the same case carry no more information than one: the interval must not
    shrink. Bootstrapping battles would shrink it by about √10."""
    base = simulate(np.array([0.4, 0.0, -0.4]), 80, 1, seed=5, tie=0.0)
    copies = [bt for bt in base for _ in range(10)]
    own_case = [Battle(bt.model_a, bt.model_b, bt.winner, case_id=None) for bt in copies]
    w = {name: {r.model: r.interval.width for r in rate(bs, n_boot=400, by_category=False).ratings}
         for name, bs in (("base", base), ("copies", copies), ("own", own_case))}
    for m in w["base"]:
        assert w["copies"][m] == pytest.approx(w["base"][m], rel=0.25)
        assert w["own"][m] < 0.6 * w["base"][m]


def test_bootstrap_coverage_by_simulation() -> None:
    """CI-sized coverage study (benchmarks/arena_coverage.py runs the full 8 models × 200 cases): 8 models,
    40 simulated datasets of 120 cases (2 pairs per case, each judged in both orders, correlated). 320 intervals, but those of one
    dataset are correlated, so the tolerance is binomial on the 40 datasets (3 sd: 0.95 ± 0.10)."""
    theta = np.linspace(-1.0, 1.0, 8)
    truth = 1000 + ELO_SCALE * (theta - theta.mean())
    covered = total = 0
    reps = 40
    for rep in range(reps):
        res = rate(simulate(theta, 120, 2, seed=100 + rep), n_boot=200, seed=rep, by_category=False)
        for r in res.ratings:
            covered += r.interval.low <= truth[int(r.model[1:])] <= r.interval.high
            total += 1
    cov = covered / total
    tol = 3 * math.sqrt(0.95 * 0.05 / reps)
    assert 0.95 - tol <= cov <= min(1.0, 0.95 + tol), cov


def test_equal_models_are_tied_and_distinct_ones_are_not() -> None:
    """The tie rule (Holm over all pairs) stays quiet on equal models: over 30 datasets of 6 equal models the
    share with any untied pair is at most 5% + 3 binomial sd; a clearly weaker model is untied from the rest."""
    any_untied = 0
    reps = 30
    for rep in range(reps):
        res = rate(simulate(np.zeros(6), 80, 4, seed=500 + rep), n_boot=200, seed=rep, by_category=False)
        any_untied += any(not t.tied for t in res.tests)
        assert res.tests and all(t.p_adjusted is not None for t in res.tests)
    assert any_untied <= 0.05 * reps + 3 * math.sqrt(0.05 * 0.95 * reps)
    res = rate(simulate(np.array([0.0, 0.0, -2.0]), 200, 3, seed=9), n_boot=300, by_category=False)
    by = {r.model: r for r in res.ratings}
    assert by["m2"].rank == 3 and "m2" not in by["m0"].tied_with and by["m0"].rank == by["m1"].rank == 1
    assert by["m2"].rank_interval == (3, 3)


def test_win_matrix_counts_and_wilson_match_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    battles = simulate(np.array([0.6, 0.0, -0.6]), 90, 3, seed=2, tie=0.0)
    res = rate(battles, n_boot=20, by_category=False)
    for c in res.matrix:
        met = [bt for bt in battles if {bt.model_a, bt.model_b} == {c.a, c.b}]
        wins = sum(1 for bt in met if (bt.winner == "model_a") == (bt.model_a == c.a))
        assert c.battles == len(met) and c.win_rate == pytest.approx(wins / len(met))
        lo, hi = proportion_confint(wins, len(met), alpha=0.05, method="wilson")
        assert (c.interval.low, c.interval.high) == pytest.approx((lo, hi), abs=1e-9)
    assert len(res.matrix) == 6


def _lc_battles(seed: int, effect: float, n: int = 400, a: float = 0.0) -> list[Battle]:
    """Model 'long' vs 'base': its answers are ~200 units longer on average; the judge's log-odds are
    a + effect·Δ/150 (Δ = length difference), so the effect-free win rate is σ(a)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(n):
        d = rng.normal(200, 150)
        p = 1 / (1 + math.exp(-(a + effect * d / 150)))
        win = rng.random() < p
        la, lb = 500 + d, 500.0
        if c % 2:  # the model sits in either position
            out.append(Battle("long", "base", "model_a" if win else "model_b", f"q{c}", len_a=max(la, 0), len_b=lb))
        else:
            out.append(Battle("base", "long", "model_b" if win else "model_a", f"q{c}", len_a=lb, len_b=max(la, 0)))
    return out


def test_length_controlled_win_rate_recovers_the_effect_free_rate() -> None:
    res = rate(_lc_battles(1, effect=1.0), baseline="base", n_boot=400, by_category=False)
    (lc,) = res.length_controlled
    assert lc.lc_win_rate is not None and lc.length_coef is not None
    assert lc.lc_win_rate.low <= 0.5 <= lc.lc_win_rate.high, lc
    assert lc.raw_win_rate.low > 0.6, lc  # the verbosity bias is visible in the raw rate
    assert lc.length_coef > 0.5
    # across seeds the LC interval covers the effect-free rate σ(0.4) (binomial tolerance on 20 datasets)
    truth = 1 / (1 + math.exp(-0.4))
    hits = 0
    for s in range(20):
        (x,) = rate(_lc_battles(50 + s, 1.0, n=300, a=0.4), baseline="base", n_boot=200, seed=s,
                    by_category=False).length_controlled
        assert x.lc_win_rate is not None
        hits += x.lc_win_rate.low <= truth <= x.lc_win_rate.high
    assert hits >= 16  # P(X <= 15 | 20, 0.95) = 0.016
    # no length effect: LC and raw agree
    (z,) = rate(_lc_battles(2, effect=0.0), baseline="base", n_boot=200, by_category=False).length_controlled
    assert z.lc_win_rate is not None and abs(z.lc_win_rate.estimate - z.raw_win_rate.estimate) < 0.06


def test_categories_are_rated_separately() -> None:
    rng = np.random.default_rng(4)
    battles = []
    for c in range(120):
        cat = "code" if c % 2 else "chat"
        p_x = 0.8 if cat == "code" else 0.2
        battles.append(Battle("x", "y", "model_a" if rng.random() < p_x else "model_b", f"c{c}", category=cat))
        battles.append(Battle("y", "z", "model_a" if rng.random() < 0.5 else "model_b", f"c{c}", category=cat))
    res = rate(battles, n_boot=100)
    cats = {c.category: {r.model: r for r in c.ratings} for c in res.categories}
    assert cats["code"]["x"].rating > cats["code"]["y"].rating + 100
    assert cats["chat"]["x"].rating < cats["chat"]["y"].rating - 100
    assert sum(r.battles for r in cats["code"].values()) == 2 * 120


def test_groups_that_never_meet_and_unknown_anchor_are_bad_input() -> None:
    with pytest.raises(BadInput, match="never meet"):
        rate([Battle("a", "b", "tie"), Battle("c", "d", "tie")], n_boot=10)
    with pytest.raises(BadInput, match="--anchor"):
        rate([Battle("a", "b", "tie")], anchor="zz", n_boot=10)


# ----------------------------------------------------------------------------- the file and the command


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


GOOD_ROW = {"model_a": "a", "model_b": "b", "winner": "tie"}


@pytest.mark.parametrize(("row", "message"), [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"model_a": "a", "winner": "tie"}, "'model_b' is missing"),
    ({"model_a": "a", "model_b": "a", "winner": "tie"}, "two different models"),
    ({"model_a": "a", "model_b": "b", "winner": "A"}, "winner must be one of"),
    ({"model_a": "a", "model_b": "b", "winner": "tie", "winer": 1}, "unknown field"),
    ({"model_a": "a", "model_b": 3, "winner": "tie"}, "'model_b' must be a non-empty string"),
    ({"model_a": "a", "model_b": "b", "winner": "tie", "len_a": -1, "len_b": 2}, "'len_a' must be a non-negative"),
    ({"model_a": "a", "model_b": "b", "winner": "tie", "len_a": 1}, "both len_a and len_b"),
    ({"model_a": "a" * 201, "model_b": "b", "winner": "tie"}, "over the 200 limit"),
])
def test_malformed_battle_lines_name_file_and_line(tmp_path: Path, row: object, message: str) -> None:
    p = _write(tmp_path / "b.jsonl", [GOOD_ROW, GOOD_ROW, row])
    with pytest.raises(BadInput) as e:
        load_battles(p)
    assert str(e.value).startswith(f"{p}:line 3: ") and message in str(e.value), str(e.value)
    proj = Project(tmp_path, "http://127.0.0.1:9")
    r = proj.cli("arena", "--battles", str(p))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "line 3" in r.stderr and "Traceback" not in r.stderr


def test_arena_cli_json_and_terminal_escape_names(tmp_path: Path) -> None:
    battles = simulate(np.array([0.7, 0.0, -0.7]), 60, 3, seed=8)
    rename = {"m0": "[bold red]evil[/bold red]", "m1": "plain", "m2": "third"}
    rows = [{"model_a": rename[b.model_a], "model_b": rename[b.model_b], "winner": b.winner, "case_id": b.case_id,
             "len_a": 10, "len_b": 12, "category": "c1"} for b in battles]
    p = _write(tmp_path / "battles.jsonl", rows)
    proj = Project(tmp_path, "http://127.0.0.1:9")
    r, data = proj.cli_json("arena", "--battles", str(p), "--baseline", "plain", "--draws", "100")
    assert r.returncode == 0, r.stderr
    recs = {m["model"]: m for m in data["models"]}
    assert set(recs) == set(rename.values())
    ev = recs["[bold red]evil[/bold red]"]
    assert ev["interval"]["low"] <= ev["rating"] <= ev["interval"]["high"]
    assert ev["rank_interval"][0] <= ev["rank"] <= ev["rank_interval"][1] or ev["tied_with"]
    total = sum(1 for b in rows if ev["model"] in (b["model_a"], b["model_b"]))
    wins = sum(1 for b in rows if (b["winner"] == "model_a" and b["model_a"] == ev["model"])
               or (b["winner"] == "model_b" and b["model_b"] == ev["model"]))
    ties = sum(1 for b in rows if b["winner"] == "tie" and ev["model"] in (b["model_a"], b["model_b"]))
    assert ev["battles"] == total and ev["win_rate"] == pytest.approx((wins + ties / 2) / total)
    assert {x["model"] for x in data["length_controlled"]} == {"[bold red]evil[/bold red]", "third"}
    assert data["categories"][0]["category"] == "c1"
    t = proj.cli("arena", "--battles", str(p), "--anchor", "plain", "--draws", "100")
    assert t.returncode == 0, t.stderr
    assert "[bold red]evil[/bold red]" in t.stdout and "anchor plain = 1000" in t.stdout
    bad = proj.cli("arena", "--battles", str(p), "--anchor", "nobody", "--draws", "100")
    assert bad.returncode == 2 and "nobody" in bad.stderr and str(p) in bad.stderr


def test_unbounded_or_thin_pairs_are_not_tested_and_count_as_tied() -> None:
    """A model that never lost has no maximum-likelihood rating: its gap to the others is set by the ridge, and a
    bootstrap over 2-4 cases cannot estimate a spread. Such pairs are untested (tied, with a note), not 'significant'."""
    battles = [Battle("a", "b", "model_a", "1"), Battle("b", "a", "model_b", "1"), Battle("a", "c", "model_a", "2"),
               Battle("b", "c", "tie", "3"), Battle("c", "b", "model_a", "4")]
    res = rate(battles, n_boot=200, by_category=False)
    assert all(t.tied and t.p_value is None for t in res.tests)
    assert {r.rank for r in res.ratings} == {1}
    assert any("do not exist" in n for n in res.notes) and any("not tested" in n for n in res.notes)
