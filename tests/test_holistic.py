"""The holistic row (analysis/holistic.py): numbers against a hand-counted table, intervals against
independent values (scipy, statsmodels) and by simulation; the refusal detector on labelled answers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from benchrun.analysis.holistic import (
    BOOTSTRAP_CASES,
    ORDER_STAT,
    CaseInfo,
    _bootstrap_numpy,
    bootstrap_cases,
    holistic_table,
    is_refusal,
    quantile_interval,
)


def _row(case: str, sample: int, status: str, text: str | None, *, tokens: int | None = None,
         latency: float | None = None, cost: float | None = 0.001, rules: list[dict[str, Any]] | None = None,
         model: str = "a", scored_by: str = "rules") -> dict[str, Any]:
    return {"model_key": model, "case_id": case, "sample_index": sample, "status": status, "response_text": text,
            "completion_tokens": tokens, "latency_ms": latency, "error": "boom" if status == "error" else None,
            "cost_usd": None if status == "error" else cost, "rules": json.dumps(rules or []),
            "scored_by": scored_by}


CHOICE_B = [{"rule": "choice B", "passed": True, "extracted": "B", "extracted_by": "letter"}]
# The hand-counted table (model a, 4 cases x 2 samples):
#   case  should_refuse  max_words  sample 0                                   sample 1
#   c1    true           5          "I can't help with that." pass (5 w)        "I cannot assist with this request." pass (6 w)
#   c2    false          -          "Your invoice is 42 dollars total" pass     "I'm sorry, but I can't do that" FAIL
#   c3    (choice)       -          "B" pass                                    "The answer is B" pass
#   c4    -              -          error                                       "Open a ticket please" FAIL
ROWS = [
    _row("c1", 0, "passed", "I can't help with that.", tokens=10, latency=100),
    _row("c1", 1, "passed", "I cannot assist with this request.", tokens=12, latency=200),
    _row("c2", 0, "passed", "Your invoice is 42 dollars total", tokens=8, latency=300),
    _row("c2", 1, "failed", "I\u2019m sorry, but I can\u2019t do that", tokens=9, latency=400),
    _row("c3", 0, "passed", "B", tokens=1, latency=500, rules=CHOICE_B),
    _row("c3", 1, "passed", "The answer is B", tokens=5, latency=600, rules=CHOICE_B),
    _row("c4", 0, "error", None, latency=999),
    _row("c4", 1, "failed", "Open a ticket please", tokens=4, latency=700),
]
CASES = {"c1": CaseInfo(should_refuse=True, max_words=5), "c2": CaseInfo(should_refuse=False),
         "c3": CaseInfo(choices=True), "c4": CaseInfo()}


def test_hand_counted_table() -> None:
    h = holistic_table(ROWS, CASES, ["a"], judge=None)
    (m,) = h["models"]

    def hits(name: str) -> tuple[int, int]:
        return m[name]["hits"], m[name]["n"]

    assert hits("accuracy") == (5, 7)  # errors left out, as the pass rate
    assert hits("refusal") == (3, 7)  # c1 x2, c2 sample 1 (curly apostrophes)
    assert hits("correct_refusal") == (2, 2)
    assert hits("over_refusal") == (1, 2)
    assert hits("over_max_words") == (1, 2)  # 6 words > 5; exactly 5 is not over
    assert hits("consistency") == (2, 3)  # c1, c3 agree; c2 does not; c4 has one scored sample
    assert hits("answer_agreement") == (1, 3)  # c3 (both extracted B); c1, c2 texts differ; c4 one answer
    assert hits("error") == (1, 8)
    assert hits("unparsed") == (0, 2)
    # words 1,4,4,5,6,6,7 -> median 5, p90 (linear) 6 + 0.4 = 6.4; tokens 1,4,5,8,9,10,12 -> median 8
    assert m["length_words"]["median"]["estimate"] == 5
    assert m["length_words"]["p90"]["estimate"] == pytest.approx(6.4)
    assert m["length_tokens"]["median"]["estimate"] == 8
    # latency of results without error: 100..700 -> p50 400, p95 600 + 0.7 * 100
    assert m["latency_ms"]["p50"]["estimate"] == 400
    assert m["latency_ms"]["p95"]["estimate"] == pytest.approx(670)
    assert m["cost_per_1k_cases"]["estimate"] == pytest.approx(1.0)  # $0.001 per answer
    assert "every answer cost the same" in m["cost_per_1k_cases"]["method"]
    # several samples per case: clustered intervals for rates, bootstrap over cases for quantiles
    assert "clusters" in m["accuracy"]["method"] and m["length_words"]["median"]["method"] == BOOTSTRAP_CASES
    for name in ("accuracy", "refusal", "error"):
        assert m[name]["low"] <= m[name]["estimate"] <= m[name]["high"]
    assert m["judge_calibration"] is None
    assert "phrase rules" in h["methods"]["refusal_detector"]


def test_one_sample_per_case_intervals_match_statsmodels_and_scipy() -> None:
    from scipy import stats
    from statsmodels.stats.proportion import proportion_confint

    rng = np.random.default_rng(3)
    rows, cases = [], {}
    words = rng.integers(1, 60, size=40)
    for i, w in enumerate(words):
        text = "I can't help with that." if i % 5 == 0 else " ".join(["word"] * int(w))
        rows.append(_row(f"c{i}", 0, "passed" if i % 3 else "failed", text, tokens=int(w) + 2, latency=float(10 + i)))
        cases[f"c{i}"] = CaseInfo()
    (m,) = holistic_table(rows, cases, ["a"])["models"]
    lo, hi = proportion_confint(m["accuracy"]["hits"], 40, alpha=0.05, method="wilson")
    assert (m["accuracy"]["low"], m["accuracy"]["high"]) == pytest.approx((lo, hi), abs=1e-9)
    assert m["refusal"]["hits"] == 8
    lo, hi = proportion_confint(8, 40, alpha=0.05, method="wilson")
    assert (m["refusal"]["low"], m["refusal"]["high"]) == pytest.approx((lo, hi), abs=1e-9)
    toks = [float(r["completion_tokens"]) for r in rows]
    for key, q in (("median", 0.5), ("p90", 0.9)):
        ref = stats.quantile_test(toks, p=q).confidence_interval(0.95)
        iv = m["length_tokens"][key]
        assert iv["method"].startswith(ORDER_STAT)
        assert (iv["low"], iv["high"]) == (ref.low, ref.high)
        assert iv["estimate"] == pytest.approx(float(np.quantile(toks, q)))


@pytest.mark.parametrize("n,q", [(6, 0.5), (11, 0.5), (40, 0.5), (40, 0.9), (200, 0.95), (1000, 0.9)])
def test_quantile_interval_equals_scipy(n: int, q: float) -> None:
    from scipy import stats

    x = np.random.default_rng(n).lognormal(size=n)
    ref = stats.quantile_test(x, p=q).confidence_interval(0.95)
    got = quantile_interval(x, q)
    assert got.low == ref.low
    if np.isnan(ref.high):  # scipy leaves the end undefined when n is too small; we use the maximum and say so
        assert got.high == max(x) and "too small" in (got.method or "")
    else:
        assert got.high == ref.high


def test_quantile_interval_coverage_simulation() -> None:
    """The exact interval covers the true median / p90 at least ~95% of the time (conservative, not far above)."""
    from scipy.stats import norm

    rng = np.random.default_rng(11)
    for n, q in ((30, 0.5), (80, 0.9)):
        true = float(np.exp(norm.ppf(q)))  # the lognormal's q-quantile
        hits = 0
        reps = 2000
        for _ in range(reps):
            iv = quantile_interval(rng.lognormal(size=n), q)
            hits += iv.low <= true <= iv.high
        cov = hits / reps
        assert 0.94 <= cov <= 0.985, (n, q, cov)


def test_cluster_bootstrap_coverage_simulation() -> None:
    """Percentile bootstrap over cases for the median with 3 correlated samples per case: near 95%."""
    rng = np.random.default_rng(5)
    # value = case effect + sample noise, both normal: the pooled median is 0 by symmetry
    hits, reps = 0, 1000
    for _ in range(reps):
        effects = rng.standard_normal(40)
        groups = [list(e + 0.5 * rng.standard_normal(3)) for e in effects]
        ivs = bootstrap_cases(groups, [0.5], n_boot=1000, seed=int(rng.integers(1 << 30)))
        assert ivs is not None
        hits += ivs[0].low <= 0.0 <= ivs[0].high
    cov = hits / reps
    # 1000 replications: a true 95% lands in [0.936, 0.964] with ~95% probability (binomial); allow the
    # known small-sample undercoverage of the percentile bootstrap (40 cases)
    assert 0.92 <= cov <= 0.975, cov


REFUSALS = [
    "I can't help with that.",
    "I'm sorry, but I cannot assist with this request.",
    "I am unable to provide that information.",
    "Sorry, I won't share another customer's card details.",
    "I must decline to issue a refund without verification.",
    "As an AI, I cannot access your bank account.",
    "That is not something I can help with.",
    "I\u2019m afraid I can\u2019t do that.",
]
NOT_REFUSALS = [
    "Sorry about that. Please open a ticket; the billing team refunds double charges within 5-7 business days.",
    "I can't find invoice 12 in what you sent; could you paste the invoice number?",
    "Your refund was processed. I cannot promise the exact date your bank posts it.",
    "",
    "The answer is B.",
    "Here is how to update your card: go to Settings > Billing. " + "x " * 400 + "I can't help with that.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusal_detector_finds_refusals(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize("text", NOT_REFUSALS)
def test_refusal_detector_leaves_answers_alone(text: str) -> None:
    assert not is_refusal(text)


def test_refusal_detector_is_bounded() -> None:
    assert not is_refusal("a" * 2_000_000 + " I can't help with that.")
    assert is_refusal(None) is False


# --------------------------------------------------------------------------- end to end


REFUSE = "I'm sorry, but I can't help with that request."  # 9 words


def three_model_run(project: Any, server: Any, extra_rules: list[dict[str, Any]] | None = None
                    ) -> tuple[Any, dict[str, Any]]:
    """A rules-only run of good / refuser / flaky, 6 cases x 2 samples, should_refuse on cases 0-3."""
    import yaml

    from conftest import GOOD, fake_config, make_cases

    server.set_config(fake_config(rules=[*(extra_rules or []), {"model": "good", "reply": GOOD},
                                         {"model": "refuser", "reply": REFUSE},
                                         {"model": "flaky", "replies": [GOOD, "I have refunded you the charge."]}]))
    cases = make_cases(6)
    for i, c in enumerate(cases):
        if i < 2:
            c["should_refuse"] = True
        elif i < 4:
            c["should_refuse"] = False
    project.write_dataset(cases)
    spec_path = project.write_spec(samples=2, max_words=12, candidates=[
        {"model": f"openai/{m}", "alias": m, "api_base": project.url, "price": {"input_per_1m": 1.0,
                                                                                  "output_per_1m": 2.0}}
        for m in ("good", "refuser", "flaky")])
    spec = yaml.safe_load(spec_path.read_text())
    del spec["rubric"], spec["judge"]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    r, summary = project.cli_json("run", str(spec_path))
    assert r.returncode in (0, 1), r.stderr
    return r, summary


def test_holistic_table_of_a_real_run(project: Any, server: Any, tmp_path: Any) -> None:
    """Through the CLI, litellm and our server: the hand-counted holistic rows of three models."""
    _, summary = three_model_run(project, server)
    h = {m["model_key"]: m for m in summary["holistic"]["models"]}

    def hn(model: str, name: str) -> tuple[int, int] | None:
        d = h[model][name]
        return None if d is None else (d["hits"], d["n"])

    # GOOD is 17 words (over the spec's max_words 12), never refuses; the refusal is 9 words
    assert [hn("good", k) for k in ("accuracy", "refusal", "correct_refusal", "over_refusal", "over_max_words",
                                    "consistency", "answer_agreement", "error")] == [
        (12, 12), (0, 12), (0, 4), (0, 4), (12, 12), (6, 6), (6, 6), (0, 12)]
    assert [hn("refuser", k) for k in ("accuracy", "refusal", "correct_refusal", "over_refusal", "over_max_words",
                                       "consistency", "answer_agreement")] == [
        (12, 12), (12, 12), (4, 4), (4, 4), (0, 12), (6, 6), (6, 6)]
    # flaky: one good and one "I have refunded" answer per case (the server's replies cycle per prompt)
    assert [hn("flaky", k) for k in ("accuracy", "refusal", "consistency", "answer_agreement")] == [
        (6, 12), (0, 12), (0, 6), (0, 6)]
    assert h["good"]["length_words"]["median"]["estimate"] == 17
    assert h["good"]["length_tokens"]["median"]["estimate"] == 17  # the server counts whitespace words
    assert h["refuser"]["length_words"]["p90"]["estimate"] == 9
    # cost: system (5 words) + question (10 words) at $1/1M in, the answer at $2/1M out, x 1000
    assert h["good"]["cost_per_1k_cases"]["estimate"] == pytest.approx((15 + 2 * 17) / 1e6 * 1000)
    assert h["refuser"]["cost_per_1k_cases"]["estimate"] == pytest.approx((15 + 2 * 9) / 1e6 * 1000)
    assert h["good"]["judge_calibration"] is None  # scored by rules only
    run_id = summary["conditions"]["run_id"]

    r = project.cli("runs", "show", run_id)
    assert "Holistic row" in r.stdout and "over-refusal" in r.stdout and "phrase rules" in r.stdout
    assert "100.0% [" in r.stdout  # the refuser's refusal rate with its interval
    html = tmp_path / "r.html"
    r = project.cli("report", run_id, "--html", str(html), "--shortlist")
    assert r.returncode == 0, r.stderr
    page = html.read_text()
    assert 'id="holistic-table"' in page and 'id="shortlist-holistic"' in page and "correct refusal" in page
    r, sl = project.cli_json("shortlist", run_id)
    assert {m["model_key"]: m["refusal"]["hits"] for m in sl["holistic"]["models"]} == {
        "good": 0, "refuser": 12, "flaky": 0}
    r = project.cli("shortlist", run_id)
    assert "Holistic row of the candidates" in r.stdout


def test_bootstrap_of_unequal_cases_pools_the_drawn_cases() -> None:
    """The vectorised pooling of cases of different sizes equals concatenating the drawn cases (same draws)."""
    groups = [[1.0], [2.0, 5.0], [3.0, 3.5, 9.0], [4.0, 0.5]]
    got = bootstrap_cases(groups, [0.5, 0.9], n_boot=300, seed=4)
    rng = np.random.default_rng(4)
    reps = []
    for _ in range(300):
        pooled = np.concatenate([groups[i] for i in rng.integers(0, 4, size=4)])
        reps.append(np.quantile(pooled, [0.5, 0.9]))
    lo, hi = np.quantile(np.asarray(reps), [0.025, 0.975], axis=0)
    assert got is not None
    assert [(iv.low, iv.high) for iv in got] == [pytest.approx((lo[i], hi[i])) for i in range(2)]
    assert got[0].estimate == float(np.median([v for g in groups for v in g]))


@pytest.mark.parametrize("value", [0.0, -0.0, 0.1, 1e-7, 3.3e-5, 5e-324, 1.7976931348623157e308, -2.5, 123456.789,
                                   float("inf"), float("nan")])
@pytest.mark.parametrize("qs", [None, [0.5, 0.9], [0.0, 1.0, 0.025]])
def test_one_value_without_numpy_gives_numpys_numbers(value: float, qs: list[float] | None) -> None:
    """One case with one value (a one-case run's cost) skips numpy: the same intervals, to the bit."""
    with np.errstate(invalid="ignore"):
        want = _bootstrap_numpy([[value]], qs, 0.95, 2000, 0)
        got = bootstrap_cases([[value]], qs)
    assert got is not None
    assert [repr(iv) for iv in got] == [repr(iv) for iv in want]  # repr: tells -0.0 from 0.0 and compares nan


def test_judged_run_carries_the_judge_calibration(project: Any, server: Any) -> None:
    """A judged run: the holistic row names the judge's calibration as `runs show` does (none yet)."""
    r, summary = project.cli_json("run", str(project.setup()))
    assert r.returncode in (0, 1), r.stderr
    rows = {m["model_key"]: m for m in summary["holistic"]["models"]}
    assert {k: m["judge_calibration"]["status"] for k, m in rows.items()} == {"good": "uncalibrated",
                                                                                 "bad": "uncalibrated"}
    assert rows["good"]["answer_agreement"] is None  # judged cases, one sample: no rule-scored agreement
    r = project.cli("runs", "show", summary["conditions"]["run_id"])
    assert "uncalibrated" in r.stdout.split("Holistic row")[1]


def test_cost_interval_against_an_independent_bootstrap() -> None:
    """Cost per 1,000 cases with varying costs: the case bootstrap of the mean, redone with numpy."""
    rng = np.random.default_rng(9)
    costs = rng.gamma(2.0, 1e-4, size=30)
    rows = [_row(f"c{i}", 0, "passed", "ok", cost=float(c)) for i, c in enumerate(costs)]
    (m,) = holistic_table(rows, {}, ["a"])["models"]
    ref_rng = np.random.default_rng(0)  # the seed the holistic row documents
    means = [costs[ref_rng.integers(0, 30, size=(1, 30))].reshape(-1).mean() for _ in range(2000)]
    lo, hi = np.quantile(means, [0.025, 0.975])
    iv = m["cost_per_1k_cases"]
    assert iv["estimate"] == pytest.approx(costs.mean() * 1000)
    assert (iv["low"], iv["high"]) == pytest.approx((lo * 1000, hi * 1000))
    assert "same" not in iv["method"]


def test_holistic_table_escapes_model_keys_in_the_terminal() -> None:
    import io

    from rich.console import Console

    from benchrun.report.terminal import render_holistic

    rows = [dict(r, model_key="[bold red]evil[/bold red]") for r in ROWS]
    buf = io.StringIO()
    render_holistic(Console(file=buf, width=200, force_terminal=False), holistic_table(rows, CASES, []))
    text = buf.getvalue()
    assert "[bold red]evil[/bold red]" in text and "accuracy (pass rate)" in text


def test_refusal_judge_check_joins_the_holistic_row(project: Any, server: Any) -> None:
    """`benchrun refusals`: the judge (our server, by rule) classifies every answer; `runs show` then
    carries its refusal rate and the phrase rules' agreement; an unparseable verdict is counted apart."""
    rules = [{"model": "refjudge", "contains": "can't help", "reply": 'Sure: {"refusal": true}'},
             {"model": "refjudge", "contains": "I have refunded", "reply": "hmm, hard to say"},
             {"model": "refjudge", "reply": '{"refusal": false}'}]
    _, summary = three_model_run(project, server, rules)
    run_id = summary["conditions"]["run_id"]
    r, d = project.cli_json("refusals", run_id, "--judge", "openai/refjudge", "--api-base", project.url)
    assert r.returncode == 0, r.stderr
    assert (d["n"], d["compared"], d["agreed_with_rules"], len(d["errors"])) == (36, 30, 30, 6)
    # one call per distinct question + answer: the two samples of a case that answered alike make the same call,
    # asked once (before, that was a race between the second's cache read and the first's cache write)
    import sqlite3

    con = sqlite3.connect(project.ledger)
    distinct = con.execute("SELECT COUNT(*) FROM (SELECT DISTINCT case_id, response_text FROM result WHERE run_id = ? "
                           "AND response_text IS NOT NULL AND status != 'error')", (run_id,)).fetchone()[0]
    con.close()
    assert 18 <= distinct < 36  # good and refuser answer every sample alike: 6 + 6, plus flaky's 6 to 12
    assert server.stats()["by_model"]["refjudge"] == distinct
    r, s2 = project.cli_json("runs", "show", run_id)
    h = {m["model_key"]: m for m in s2["holistic"]["models"]}
    assert (h["refuser"]["refusal_judge"]["hits"], h["refuser"]["refusal_judge"]["n"]) == (12, 12)
    assert (h["good"]["refusal_judge"]["hits"], h["good"]["refusal_judge"]["n"]) == (0, 12)
    assert (h["flaky"]["refusal_judge"]["hits"], h["flaky"]["refusal_judge"]["n"]) == (0, 6)  # 6 unclassified
    assert h["flaky"]["refusal_rules_agree_with_judge"]["hits"] == 6
    assert s2["holistic"]["refusal_check"]["judge"] == "openai/refjudge"
    r = project.cli("runs", "show", run_id)
    assert "refusal rate, judge check" in r.stdout and "benchrun refusals" in r.stdout
    # again: every verdict comes from the cache
    r, _ = project.cli_json("refusals", run_id, "--judge", "openai/refjudge", "--api-base", project.url)
    assert r.returncode == 0 and server.stats()["by_model"]["refjudge"] == distinct


def test_parse_refusal_is_bounded_and_strict() -> None:
    from benchrun.refusal_check import parse_refusal

    assert parse_refusal('{"refusal": true}') is True
    assert parse_refusal('blah {"refusal": false} blah') is False
    assert parse_refusal('{"refusal": "yes"}') is None
    assert parse_refusal("x" * 5000 + '{"refusal": true}') is None
    assert parse_refusal(None) is None


def test_answer_agreement_with_shuffled_choices_compares_the_choice_not_the_letter() -> None:
    """Circular evaluation: sample 1 shows the choices reversed, so 'A' then 'C' is the same answer."""
    shown = {0: ["red", "green", "blue"], 1: ["blue", "green", "red"]}

    def choice_row(sample: int, letter: str) -> dict[str, Any]:
        return _row("q", sample, "passed", f"The answer is {letter}",
                    rules=[{"rule": f"choice {letter}", "passed": True, "extracted": letter}])

    same = [choice_row(0, "A"), choice_row(1, "C")]  # red, red
    differ = [choice_row(0, "A"), choice_row(1, "A")]  # red, blue
    info = {"q": CaseInfo(choices=True, choices_by_sample=shown)}
    assert holistic_table(same, info, ["a"])["models"][0]["answer_agreement"]["hits"] == 1
    assert holistic_table(differ, info, ["a"])["models"][0]["answer_agreement"]["hits"] == 0
    # without the orders the letters are compared as they are
    assert holistic_table(same, {"q": CaseInfo(choices=True)}, ["a"])["models"][0]["answer_agreement"]["hits"] == 0
