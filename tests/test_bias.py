"""Position bias, verbosity bias and self-preference checks."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from benchrun.analysis.bias import (
    PairVerdict,
    VerbosityItem,
    both_orders_verdict,
    flip,
    load_pair_verdicts,
    model_family,
    pad_variants,
    parse_verdict,
    partial_correlation,
    partial_spearman,
    position_bias_report,
    same_family,
    verbosity_report,
    verbosity_sign_test,
)
from benchrun.errors import BadInput

# ----------------------------------------------------------------------------- position bias


def test_flip_and_both_orders_rule() -> None:
    assert flip("A>B") == "B>A" and flip("B>A") == "A>B" and flip("tie") == "tie"
    with pytest.raises(ValueError):
        flip("A")  # type: ignore[arg-type]
    # ba_raw is in displayed positions: "A>B" there means B (shown first) won
    expected = {
        ("A>B", "B>A"): "A>B",  # A wins in both orders
        ("B>A", "A>B"): "B>A",  # B wins in both orders
        ("A>B", "A>B"): "tie",  # first position always wins: inconsistent
        ("B>A", "B>A"): "tie",  # second position always wins: inconsistent
        ("tie", "tie"): "tie",
        ("A>B", "tie"): "tie",  # MT-Bench: a win needs both orders
        ("tie", "A>B"): "tie",
    }
    for (ab, ba), want in expected.items():
        assert both_orders_verdict(ab, ba) == want, (ab, ba)


def _wilson(k: int, n: int) -> tuple[float, float]:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return float(lo), float(hi)


def test_position_bias_report_counts_and_intervals() -> None:
    rng = random.Random(7)
    verdicts = ["A>B", "B>A", "tie"]
    pairs = [
        PairVerdict(f"p{i}", rng.choice([*verdicts, None]), rng.choice(verdicts), rng.choice(verdicts))
        for i in range(200)
    ]
    rep = position_bias_report(pairs)
    consistent = sum(1 for p in pairs if p.verdict_ab == flip(p.verdict_ba_raw))
    assert rep.n == 200
    assert rep.consistency.estimate == pytest.approx(consistent / 200)
    assert (rep.consistency.low, rep.consistency.high) == pytest.approx(_wilson(consistent, 200))
    shown = [v for p in pairs for v in (p.verdict_ab, p.verdict_ba_raw)]
    decisive = [v for v in shown if v != "tie"]
    first = decisive.count("A>B")
    assert rep.decisive_verdicts == len(decisive)
    assert rep.first_position_win_rate is not None
    assert rep.first_position_win_rate.estimate == pytest.approx(first / len(decisive))
    assert (rep.first_position_win_rate.low, rep.first_position_win_rate.high) == pytest.approx(
        _wilson(first, len(decisive)))
    assert rep.biased_first == pytest.approx(
        sum(1 for p in pairs if (p.verdict_ab, p.verdict_ba_raw) == ("A>B", "A>B")) / 200)
    labelled = [p for p in pairs if p.label is not None]
    k2 = sum(1 for p in labelled if both_orders_verdict(p.verdict_ab, p.verdict_ba_raw) == p.label)
    assert rep.labelled == len(labelled)
    assert rep.accuracy_both_orders is not None
    assert rep.accuracy_both_orders.estimate == pytest.approx(k2 / len(labelled))
    json.dumps(rep.to_dict(), allow_nan=False)


def test_position_biased_judge_is_exposed() -> None:
    # a judge that always prefers the first answer: zero consistency, all ties under the rule
    pairs = [PairVerdict(f"p{i}", "A>B" if i % 2 else "B>A", "A>B", "A>B") for i in range(40)]
    rep = position_bias_report(pairs)
    assert rep.consistency.estimate == 0.0
    assert rep.biased_first == 1.0 and rep.biased_second == 0.0
    assert rep.first_position_win_rate is not None and rep.first_position_win_rate.estimate == 1.0
    assert rep.accuracy_first_order is not None and rep.accuracy_first_order.estimate == pytest.approx(0.5)
    assert rep.accuracy_both_orders is not None and rep.accuracy_both_orders.estimate == 0.0


def test_position_bias_edge_cases() -> None:
    with pytest.raises(ValueError):
        position_bias_report([])
    rep = position_bias_report([PairVerdict("p", None, "tie", "tie")])
    assert rep.consistency.estimate == 1.0
    assert rep.decisive_verdicts == 0 and rep.accuracy_first_order is None
    assert rep.first_position_win_rate is None  # no decisive verdict: undefined, not 0.5
    json.dumps(rep.to_dict(), allow_nan=False)
    with pytest.raises(ValueError, match="unknown verdict"):
        position_bias_report([PairVerdict("p", None, "A>B", "first")])  # type: ignore[arg-type]


def test_parse_verdict_aliases() -> None:
    assert parse_verdict("a") == "A>B" and parse_verdict(" B > A ") == "B>A"
    assert parse_verdict("TIE") == "tie" and parse_verdict("=") == "tie"
    assert parse_verdict("") is None and parse_verdict(None) is None
    with pytest.raises(ValueError):
        parse_verdict("A>>B")


def test_load_pair_verdicts_jsonl_and_csv(tmp_path: Path) -> None:
    j = tmp_path / "pairs.jsonl"
    j.write_text(
        '{"pair_id": "q1", "verdict_ab": "A>B", "verdict_ba_raw": "B>A", "label": "A>B"}\n'
        "\n"
        '{"pair_id": 2, "verdict_ab": "tie", "verdict_ba_raw": "A"}\n',
        encoding="utf-8",
    )
    c = tmp_path / "pairs.csv"
    c.write_text("pair_id,verdict_ab,verdict_ba_raw,label\nq1,A>B,B>A,A>B\n2,tie,A,\n", encoding="utf-8")
    want = [PairVerdict("q1", "A>B", "A>B", "B>A"), PairVerdict("2", None, "tie", "A>B")]
    assert load_pair_verdicts(j) == want
    assert load_pair_verdicts(c) == want


@pytest.mark.parametrize(
    ("name", "text", "where", "what"),
    [
        ("bad.jsonl", '{"pair_id": "a", "verdict_ab": "A>B", "verdict_ba_raw": "B>A"}\n'
                      '{"pair_id": "b", "verdict_ab": "maybe", "verdict_ba_raw": "B>A"}\n', "line 2 pair b", "verdict_ab"),
        ("dup.jsonl", '{"pair_id": "a", "verdict_ab": "A>B", "verdict_ba_raw": "B>A"}\n'
                      '{"pair_id": "a", "verdict_ab": "A>B", "verdict_ba_raw": "B>A"}\n', "line 2 pair a", "duplicate"),
        ("miss.jsonl", '{"pair_id": "a", "verdict_ab": "A>B"}\n', "line 1 pair a", "verdict_ba_raw"),
        ("extra.jsonl", '{"pair_id": "a", "verdict_ab": "A>B", "verdict_ba_raw": "B>A", "x": 1}\n', "line 1", "unknown"),
        ("noid.csv", "pair_id,verdict_ab,verdict_ba_raw\n,A>B,B>A\n", "line 2", "pair_id"),
        ("nocol.csv", "pair_id,verdict_ab\na,A>B\n", "line 1", "verdict_ba_raw"),
        ("empty.jsonl", "\n\n", "", "empty"),
        ("broken.jsonl", '{"pair_id": "a",\n', "line 1", "invalid JSON"),
        ("pairs.txt", "x", "", "unknown format"),
    ],
)
def test_load_pair_verdicts_bad_rows(tmp_path: Path, name: str, text: str, where: str, what: str) -> None:
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput) as exc:
        load_pair_verdicts(f)
    msg = str(exc.value)
    assert name in msg and where in msg and what in msg
    assert "\n" not in msg


# ----------------------------------------------------------------------------- verbosity


def test_pad_variants_add_length_but_no_information() -> None:
    q = "How long do refunds take?"
    a = "Refunds take 5-7 business days. Open a ticket first."
    v = pad_variants(q, a)
    assert set(v) == {"restate", "list", "filler"}
    assert v == pad_variants(q, a)  # deterministic
    for text in v.values():
        assert a in text and len(text) > len(a)
    # the repeated list holds only the answer's own sentences
    bullets = [ln[2:] for ln in v["list"].splitlines() if ln.startswith("- ")]
    assert bullets == ["Refunds take 5-7 business days.", "Open a ticket first."]
    assert q in v["restate"]
    # no new digits or facts are introduced anywhere
    for text in v.values():
        assert set(filter(str.isdigit, text)) <= set(filter(str.isdigit, q + a))


def _manual_partial(x, y, z) -> float:
    r = np.corrcoef(np.vstack([x, y, z]))
    rxy, rxz, ryz = r[0, 1], r[0, 2], r[1, 2]
    return float((rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_partial_correlation_matches_statsmodels_residuals_and_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    human = rng.integers(1, 6, n).astype(float)
    length = 50 + 20 * human + rng.normal(0, 30, n)
    judge = np.clip(np.round(human + 0.01 * length + rng.normal(0, 0.7, n)), 1, 5)
    ours = partial_correlation(length.tolist(), judge.tolist(), human.tolist())
    zc = sm.add_constant(human)
    rx = sm.OLS(length, zc).fit().resid
    ry = sm.OLS(judge, zc).fit().resid
    ref = float(np.corrcoef(rx, ry)[0, 1])
    assert ours.value == pytest.approx(ref, abs=1e-10)
    assert ours.value == pytest.approx(_manual_partial(length, judge, human), abs=1e-10)
    # p-value: t test with n - 3 degrees of freedom
    t = ref * np.sqrt((n - 3) / (1 - ref**2))
    assert ours.p_value == pytest.approx(2 * stats.t.sf(abs(t), n - 3), rel=1e-9)


def test_partial_correlation_edge_cases() -> None:
    assert partial_correlation([1, 2, 3], [1, 2, 3], [1, 2, 3]).value is None  # n < 4
    # judge score fully explained by human score: nothing left to correlate
    r = partial_correlation([10, 20, 35, 41, 50], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert r.value is None and r.note is not None


def test_partial_spearman_is_the_partial_formula_on_spearman_coefficients() -> None:
    rng = np.random.default_rng(5)
    n = 50
    human = rng.integers(1, 6, n).astype(float)
    length = np.exp(rng.normal(4, 1, n)) + 10 * human  # heavy right tail
    judge = np.clip(np.round(human + rng.normal(0, 0.8, n)), 1, 5)
    rho = stats.spearmanr(np.column_stack([length, judge, human])).statistic
    rxy, rxz, ryz = rho[0, 1], rho[0, 2], rho[1, 2]
    expected = (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))
    ours = partial_spearman(length.tolist(), judge.tolist(), human.tolist())
    assert ours.value == pytest.approx(expected, abs=1e-10)
    t = expected * np.sqrt((n - 3) / (1 - expected**2))
    assert ours.p_value == pytest.approx(2 * stats.t.sf(abs(t), n - 3), rel=1e-9)


def _brute_force_p(items: list[VerbosityItem]) -> float:
    """P(S >= s_obs) by enumerating every relabelling of every item's judgements (independent of benchrun)."""
    def sign(x: float) -> int:
        return int(x > 1e-12) - int(x < -1e-12)

    per_item = []
    s_obs = 0
    for it in items:
        unp = [it.original_score, *it.rejudged_scores]
        pad = list(it.padded_scores.values())
        pooled = unp + pad
        s_obs += sign(np.mean(pad) - np.mean(unp))
        opts = []
        for idx in itertools.combinations(range(len(pooled)), len(unp)):
            u = [pooled[k] for k in idx]
            p = [pooled[k] for k in range(len(pooled)) if k not in idx]
            opts.append(sign(np.mean(p) - np.mean(u)))
        per_item.append(opts)
    hits = total = 0
    for combo in itertools.product(*per_item):
        total += 1
        hits += sum(combo) >= s_obs
    return hits / total


def test_verbosity_sign_test_is_the_sign_test_with_one_judgement_each() -> None:
    rng = random.Random(2)
    items = []
    for i in range(40):
        o = rng.randint(1, 5)
        items.append(VerbosityItem(f"i{i}", float(o), {"list": float(min(5, max(1, o + rng.choice((-1, 0, 1, 1)))))}))
    higher = sum(1 for it in items if it.padded_scores["list"] > it.original_score)
    lower = sum(1 for it in items if it.padded_scores["list"] < it.original_score)
    p, s = verbosity_sign_test(items)
    assert s == higher - lower
    assert p == pytest.approx(stats.binomtest(higher, higher + lower, 0.5, alternative="greater").pvalue, rel=1e-9)


def test_verbosity_sign_test_matches_brute_force_with_ties_and_rejudgements() -> None:
    rng = random.Random(9)
    items = []
    for i in range(7):
        o = float(rng.randint(3, 5))
        items.append(VerbosityItem(f"i{i}", o, {v: float(min(5, o + rng.choice((0, 1)))) for v in ("restate", "list")},
                                   rejudged_scores=(float(max(1, o - rng.choice((0, 1)))),)))
    p, _ = verbosity_sign_test(items)
    assert p == pytest.approx(_brute_force_p(items), abs=1e-12)


def test_verbosity_report_shares_noise_floor_and_intervals() -> None:
    rng = random.Random(11)
    items = []
    for i in range(50):
        orig = rng.randint(1, 5)
        rejudge = min(5, max(1, orig + rng.choice((-1, 0, 0, 1))))
        padded = {k: min(5, orig + (1 if rng.random() < 0.4 else 0)) for k in ("restate", "list", "filler")}
        items.append(VerbosityItem(f"i{i}", float(orig), padded, human_score=float(orig),
                                   original_words=rng.randint(20, 200), rejudged_scores=(float(rejudge),)))
    rep = verbosity_report(items)
    deltas = np.array([np.mean(list(it.padded_scores.values())) - np.mean([it.original_score, *it.rejudged_scores])
                       for it in items])
    higher, lower = int(np.sum(deltas > 0)), int(np.sum(deltas < 0))
    assert rep.n == 50
    assert rep.padded.higher.estimate == pytest.approx(higher / 50)
    assert rep.padded.lower.estimate == pytest.approx(lower / 50)
    assert (rep.padded.higher.low, rep.padded.higher.high) == pytest.approx(_wilson(higher, 50))
    assert rep.net_rate == pytest.approx((higher - lower) / 50)
    noise_up = sum(1 for it in items if it.rejudged_scores[0] > it.original_score)
    assert rep.noise_floor is not None and rep.noise_floor.higher.estimate == pytest.approx(noise_up / 50)
    k_list = sum(1 for it in items if it.padded_scores["list"] > it.original_score)
    assert rep.repetitive_list_rate is not None and rep.repetitive_list_rate.estimate == pytest.approx(k_list / 50)
    lo, hi = stats.t.interval(0.95, len(deltas) - 1, loc=deltas.mean(), scale=stats.sem(deltas))
    assert rep.inflation is not None
    assert rep.inflation.estimate == pytest.approx(deltas.mean())
    assert (rep.inflation.low, rep.inflation.high) == pytest.approx((lo, hi))
    assert rep.flagged is (rep.p_value < 0.05 and rep.net_rate > 0.10)
    assert rep.flagged  # 40% of padded variants gain a point: a real length effect
    assert rep.length_partial is not None and rep.length_partial.n == 50
    json.dumps(rep.to_dict(), allow_nan=False)


def test_verbosity_report_not_flagged_for_robust_judge() -> None:
    items = [VerbosityItem(f"i{i}", 4.0, {"restate": 4.0, "list": 3.0, "filler": 4.0}) for i in range(30)]
    rep = verbosity_report(items)
    assert rep.padded.higher.estimate == 0.0 and not rep.flagged
    assert rep.mean_inflation == pytest.approx(-1 / 3)
    assert rep.length_partial is None and rep.noise_floor is None
    with pytest.raises(ValueError):
        verbosity_report([])


def test_verbosity_flag_needs_significance_and_a_net_rate_above_ten_percent() -> None:
    # 6 of 30 items padded higher, none lower: p = 2^-6, net 20% -> flagged
    items = [VerbosityItem(f"i{i}", 3.0, {"list": 4.0 if i < 6 else 3.0}) for i in range(30)]
    rep = verbosity_report(items)
    assert rep.p_value == pytest.approx(stats.binomtest(6, 6, alternative="greater").pvalue)
    assert rep.flagged is True
    # 4 of 30 higher: net 13% but p = 1/16, not significant -> not flagged (the old rule flagged it)
    few = [VerbosityItem(f"i{i}", 3.0, {"list": 4.0 if i < 4 else 3.0}) for i in range(30)]
    assert verbosity_report(few).flagged is False
    # significant but small: 18 of 200 higher, none lower, net 9% -> not flagged
    small = [VerbosityItem(f"i{i}", 3.0, {"list": 4.0 if i < 18 else 3.0}) for i in range(200)]
    rep_small = verbosity_report(small)
    assert rep_small.p_value < 1e-4 and rep_small.flagged is False
    # as many lower as higher: pure noise, not flagged however many are higher
    noisy = [VerbosityItem(f"i{i}", 3.0, {"list": 4.0 if i % 2 else 2.0}) for i in range(30)]
    rep_noisy = verbosity_report(noisy)
    assert rep_noisy.padded.higher.estimate == 0.5 and not rep_noisy.flagged


# ----------------------------------------------------------------------------- self-preference


@pytest.mark.parametrize(
    ("judge", "cand", "same"),
    [
        ("gpt-4o", "gpt-4o-mini", True),
        ("openai/gpt-4o", "gpt-4.1-nano", True),
        ("openai/o3-mini", "gpt-4o", True),
        ("anthropic/claude-3-5-sonnet-20241022", "claude-3-haiku-20240307", True),
        ("bedrock/anthropic.claude-3-sonnet-20240229-v1:0", "claude-sonnet-4", True),
        ("ollama/llama3.1:8b", "groq/llama-3.3-70b-versatile", True),
        ("together_ai/meta-llama/Llama-3-8b-chat-hf", "ollama/llama3.2", True),
        ("ollama/qwen2.5:7b", "Qwen/Qwen2.5-72B-Instruct", True),
        ("gemini/gemini-1.5-pro", "vertex_ai/gemini-2.0-flash", True),
        ("mistral/mistral-large-latest", "ollama/mixtral:8x7b", True),
        ("local/smollm2-135m", "ollama/smollm:360m", True),
        ("gpt-4o", "claude-3-5-sonnet", False),
        ("ollama/llama3.1", "ollama/qwen2.5", False),
        ("local/smollm2-135m", "ollama/llama3.2", False),
        ("gemini-1.5-pro", "mistral-small", False),
        ("deepseek/deepseek-chat", "ollama/deepseek-r1:7b", True),
        # unknown families never match: a shared prefix is a team's naming, not a model family (issue 14, item 11)
        ("my-custom-7b", "my-custom-13b", False),
        ("openai/hr-judge", "openai/hr-good", False),
        ("foo-7b", "bar-7b", False),
    ],
)
def test_same_family(judge: str, cand: str, same: bool) -> None:
    assert same_family(judge, cand) is same
    assert same_family(cand, judge) is same


def test_model_family_names() -> None:
    assert model_family("openai/gpt-4o-mini") == "openai"
    assert model_family("local/smollm2-135m") == "smollm"
    assert model_family("openai/hr-good") == "unknown"
    names = ["gpt-4o", "claude-3-haiku", "llama3", "qwen2.5", "gemini-pro", "mistral-small", "smollm2"]
    fams = {model_family(n) for n in names}
    assert len(fams) == len(names)  # all distinct
    for a, b in itertools.combinations(names, 2):
        assert not same_family(a, b)
