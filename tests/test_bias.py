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
    position_bias_report,
    same_family,
    verbosity_report,
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


def test_verbosity_report_rates_and_intervals() -> None:
    rng = random.Random(11)
    items = []
    for i in range(50):
        orig = rng.randint(1, 5)
        padded = {k: min(5, orig + (1 if rng.random() < 0.2 else 0)) for k in ("restate", "list", "filler")}
        items.append(VerbosityItem(f"i{i}", float(orig), padded, human_score=float(orig), original_words=rng.randint(20, 200)))
    rep = verbosity_report(items)
    fails = sum(1 for it in items if any(s > it.original_score for s in it.padded_scores.values()))
    assert rep.n == 50
    assert rep.failure_rate.estimate == pytest.approx(fails / 50)
    assert (rep.failure_rate.low, rep.failure_rate.high) == pytest.approx(_wilson(fails, 50))
    k_list = sum(1 for it in items if it.padded_scores["list"] > it.original_score)
    assert rep.per_variant["list"].estimate == pytest.approx(k_list / 50)
    deltas = np.array([np.mean([s - it.original_score for s in it.padded_scores.values()]) for it in items])
    lo, hi = stats.t.interval(0.95, len(deltas) - 1, loc=deltas.mean(), scale=stats.sem(deltas))
    assert rep.inflation is not None
    assert rep.inflation.estimate == pytest.approx(deltas.mean())
    assert (rep.inflation.low, rep.inflation.high) == pytest.approx((lo, hi))
    assert rep.flagged is (fails / 50 > 0.10)
    assert rep.length_partial is not None and rep.length_partial.n == 50
    json.dumps(rep.to_dict(), allow_nan=False)


def test_verbosity_report_not_flagged_for_robust_judge() -> None:
    items = [VerbosityItem(f"i{i}", 4.0, {"restate": 4.0, "list": 3.0, "filler": 4.0}) for i in range(30)]
    rep = verbosity_report(items)
    assert rep.failure_rate.estimate == 0.0 and not rep.flagged
    assert rep.mean_inflation == pytest.approx(-1 / 3)
    assert rep.length_partial is None
    with pytest.raises(ValueError):
        verbosity_report([])


def test_verbosity_flag_threshold_is_strictly_above_ten_percent() -> None:
    items = [VerbosityItem(f"i{i}", 3.0, {"list": 4.0 if i < 3 else 3.0}) for i in range(30)]  # exactly 10%
    assert verbosity_report(items).flagged is False
    items[3] = VerbosityItem("i3", 3.0, {"list": 5.0})  # 4/30
    assert verbosity_report(items).flagged is True


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
        ("my-custom-7b", "my-custom-13b", True),
        ("foo-7b", "bar-7b", False),
    ],
)
def test_same_family(judge: str, cand: str, same: bool) -> None:
    assert same_family(judge, cand) is same
    assert same_family(cand, judge) is same


def test_model_family_names() -> None:
    assert model_family("openai/gpt-4o-mini") == "openai"
    assert model_family("local/smollm2-135m") == "smollm"
    names = ["gpt-4o", "claude-3-haiku", "llama3", "qwen2.5", "gemini-pro", "mistral-small", "smollm2"]
    fams = {model_family(n) for n in names}
    assert len(fams) == len(names)  # all distinct
    for a, b in itertools.combinations(names, 2):
        assert not same_family(a, b)
