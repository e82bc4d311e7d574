"""Tool-call scoring (scoring/tools.py) and tool metrics (analysis/tools.py) on hand-made inputs, with the F1
interval checked against sklearn and by simulation."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from benchrun.analysis.tools import bootstrap_f1, f1, tool_metrics
from benchrun.scoring.tools import MAX_ARG_CHARS, parse_arguments, score_calls
from benchrun.spec import Case
from benchrun.spec_tools import Tool

TOOLS = [Tool(name="lookup_invoice", parameters={"type": "object", "properties": {"invoice_id": {"type": "string"}},
                                                 "required": ["invoice_id"]}),
         Tool(name="issue_refund", parameters={"type": "object", "properties": {"amount": {"type": "number"}}})]


def call(name: str, args: Any) -> dict[str, Any]:
    return {"id": "x", "name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}


def case(**kw: Any) -> Case:
    return Case.model_validate({"id": "c", "input": "hi", **kw})


def test_arguments_are_parsed_with_bounds() -> None:
    assert parse_arguments('{"a": 1}') == ({"a": 1}, None)
    assert parse_arguments("")[0] == {}
    assert "not valid JSON" in (parse_arguments('{"a": ')[1] or "")
    assert "not an object" in (parse_arguments("[1, 2]")[1] or "")
    assert "deeper" in (parse_arguments("[" * 5000 + "]" * 5000)[1] or "")
    assert "deeper" in (parse_arguments('{"a": ' + "[" * 150 + "]" * 150 + "}")[1] or "")  # parses, too deep
    assert parse_arguments('{"a": ' + "[" * 50 + "]" * 50 + "}")[0] is not None
    assert "limit" in (parse_arguments('{"a": "' + "x" * MAX_ARG_CHARS + '"}')[1] or "")
    assert parse_arguments('{"s": "[[[[' + "[" * 200 + '"}')[0] is not None  # brackets inside strings do not count


@pytest.mark.parametrize(("calls", "kw", "mode"), [
    ([call("lookup_invoice", {"invoice_id": "A"})], {"expected_tool_calls": [{"name": "lookup_invoice"}]}, "none"),
    ([], {"expected_tool_calls": [{"name": "lookup_invoice"}]}, "missing_tool_call"),
    ([call("nope", {})], {"expected_tool_calls": [{"name": "lookup_invoice"}]}, "wrong_tool"),
    ([call("lookup_invoice", {"invoice_id": 3})], {"expected_tool_calls": [{"name": "lookup_invoice"}]},
     "invalid_tool_arguments"),
    ([call("lookup_invoice", {"invoice_id": "A", "x": 1})],
     {"expected_tool_calls": [{"name": "lookup_invoice", "arguments": {"invoice_id": "A"}, "match": "exact"}]},
     "wrong_tool_arguments"),
    ([call("lookup_invoice", {"invoice_id": "A", "x": 1})],
     {"expected_tool_calls": [{"name": "lookup_invoice", "arguments": {"invoice_id": "A"}}]}, "none"),
    ([call("issue_refund", {"amount": 10.004})],
     {"expected_tool_calls": [{"name": "issue_refund", "argument_checks": {
         "amount": [{"type": "numeric", "value": 10, "tolerance": 0.01}]}}]}, "none"),
    ([call("issue_refund", {"amount": 10.5})],
     {"expected_tool_calls": [{"name": "issue_refund", "argument_checks": {
         "amount": {"type": "numeric", "value": 10, "tolerance": 0.01}}}]}, "wrong_tool_arguments"),
    ([call("lookup_invoice", {"invoice_id": "B"})],
     {"expected_tool_calls": [{"name": "lookup_invoice", "argument_checks": {
         "invoice_id": {"type": "equals_any", "values": ["A", "b"]}}}]}, "none"),
    ([call("issue_refund", {"amount": 1}), call("lookup_invoice", {"invoice_id": "A"})],
     {"expected_tool_calls": [{"name": "lookup_invoice"}], "forbidden_tools": ["issue_refund"]}, "forbidden_tool_call"),
    ([call("lookup_invoice", {"invoice_id": "A"})], {"no_tool_call": True}, "unexpected_tool_call"),
    ([], {"no_tool_call": True}, "none"),
])
def test_failure_modes(calls: list[dict[str, Any]], kw: dict[str, Any], mode: str) -> None:
    s = score_calls(case(**kw), TOOLS, calls)
    assert s["failure_mode"] == mode, s
    assert s["passed"] == (mode == "none")


def test_matching_in_order_and_in_any_order() -> None:
    # expected A(any args) then A(invoice B); calls: A(B), A(C), A(B): both matched in order, one call extra
    c = case(expected_tool_calls=[{"name": "lookup_invoice"},
                                  {"name": "lookup_invoice", "arguments": {"invoice_id": "B"}}])
    calls = [call("lookup_invoice", {"invoice_id": x}) for x in ("B", "C", "B")]
    s = score_calls(c, TOOLS, calls)
    assert (s["tp"], s["fp"], s["fn"], s["failure_mode"]) == (2, 1, 0, "none")
    # in any order, the matching must not give the only call that fits the second expectation to the first
    # (a greedy first-fit would pair A(any) with A(B) and leave A(B) unmatched)
    c2 = case(order="any", expected_tool_calls=[{"name": "lookup_invoice"},
                                                {"name": "lookup_invoice", "arguments": {"invoice_id": "B"}}])
    s2 = score_calls(c2, TOOLS, [call("lookup_invoice", {"invoice_id": "B"}), call("lookup_invoice", {"invoice_id": "C"})])
    assert (s2["tp"], s2["failure_mode"]) == (2, "none")


def test_f1_matches_sklearn_and_its_interval_covers_by_simulation() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(7)
    per_case = [(int(rng.integers(0, 3)), int(rng.integers(0, 2)), int(rng.integers(0, 2))) for _ in range(40)]
    tp, fp, fn = (sum(c[i] for c in per_case) for i in range(3))
    y_true = [1] * tp + [0] * fp + [1] * fn
    y_pred = [1] * tp + [1] * fp + [0] * fn
    assert f1(tp, fp, fn) == pytest.approx(f1_score(y_true, y_pred))
    assert bootstrap_f1(per_case).estimate == pytest.approx(f1_score(y_true, y_pred))

    # Population: per case tp ~ Bin(3, 0.6), fp ~ Bin(2, 0.3), fn = 3 - tp. True micro F1 = 2E[tp]/(2E[tp]+E[fp]+E[fn]).
    e_tp, e_fp, e_fn = 1.8, 0.6, 1.2
    truth = 2 * e_tp / (2 * e_tp + e_fp + e_fn)
    reps, covered = 300, 0
    for _ in range(reps):
        tps = rng.binomial(3, 0.6, size=50)
        fps = rng.binomial(2, 0.3, size=50)
        sample = [(int(a), int(b), int(3 - a)) for a, b in zip(tps, fps, strict=True)]
        iv = bootstrap_f1(sample, resamples=400, seed=int(rng.integers(1 << 30)))
        covered += iv.low <= truth <= iv.high
    assert 0.90 <= covered / reps <= 0.985, covered / reps


def _simulated_cases(rng: np.random.Generator, p: float, cases: int, samples: int) -> list[tuple[int, int, int]]:
    """Each case expects one call per sample, made right with probability p (a TP), else a wrong call (FP + FN):
    the population micro F1 is 2p / (2p + 2(1 - p)) = p."""
    out = []
    for _ in range(cases):
        k = int(rng.binomial(samples, p))
        out.append((k, samples - k, samples - k))
    return out


def test_f1_interval_is_never_one_point() -> None:
    """All cases perfect, or no true positive anywhere: the bootstrap is degenerate, so the interval is the Wilson
    bound on the share of correct calls with n = cases (times Korn & Graubard's t factor), computed here with
    statsmodels; a single case, or cases all alike, too."""
    from scipy.stats import norm, t
    from statsmodels.stats.proportion import proportion_confint

    from benchrun.analysis.tools import F1_DEGENERATE_METHOD, F1_METHOD

    g = 20
    n_star = g * (norm.ppf(0.975) / t.ppf(0.975, g - 1)) ** 2
    perfect = bootstrap_f1([(1, 0, 0)] * g)
    lo, hi = proportion_confint(n_star, n_star, alpha=0.05, method="wilson")
    assert (perfect.estimate, perfect.method) == (1.0, F1_DEGENERATE_METHOD)
    assert perfect.low == pytest.approx(lo) and perfect.high == pytest.approx(hi) == 1.0 and perfect.low < 0.9
    none = bootstrap_f1([(0, 1, 1)] * 12 + [(0, 0, 1)] * 8)  # no true positive: F1 = 0
    lo, hi = proportion_confint(0, n_star, alpha=0.05, method="wilson")
    assert (none.estimate, none.method) == (0.0, F1_DEGENERATE_METHOD)
    assert none.low == 0.0 and none.high == pytest.approx(hi) and none.high > 0.1
    for per_case in ([(1, 1, 0)], [(2, 1, 1)] * 5):  # one case; cases all alike (every resample: F1 = 2/3)
        iv = bootstrap_f1(per_case)
        assert iv.method == F1_DEGENERATE_METHOD and iv.low < iv.estimate < iv.high, iv
    assert bootstrap_f1([(1, 0, 0)] * 19 + [(0, 1, 1)]).method == F1_METHOD  # not degenerate: the bootstrap


@pytest.mark.parametrize(("p", "cases", "samples"), [(0.97, 20, 1), (0.03, 20, 1), (0.95, 15, 3)])
def test_f1_interval_covers_near_the_edges_by_simulation(p: float, cases: int, samples: int) -> None:
    """Where a sample of cases is often all perfect (or all wrong) the interval still covers the true F1 at least
    ~95% of the time; a one-point interval there would cover only when the sample is not degenerate
    (1 - 0.97^20 = 46% for the first setting)."""
    rng = np.random.default_rng(11)
    reps, covered, degenerate = 400, 0, 0
    for _ in range(reps):
        iv = bootstrap_f1(_simulated_cases(rng, p, cases, samples), resamples=400, seed=int(rng.integers(1 << 30)))
        covered += iv.low <= p <= iv.high
        degenerate += iv.low == iv.high
    assert degenerate == 0
    assert covered / reps >= 0.93, covered / reps


def _row(model: str, case_id: str, score: dict[str, Any], status: str = "passed") -> dict[str, Any]:
    return {"model_key": model, "case_id": case_id, "status": status,
            "trajectory": json.dumps({"n_steps": 1, "score": score})}


def test_metrics_cluster_samples_of_a_case_and_skip_errors() -> None:
    from benchrun.analysis.stats import clustered_wilson_interval

    c = case(expected_tool_calls=[{"name": "lookup_invoice"}])
    good = score_calls(c, TOOLS, [call("lookup_invoice", {"invoice_id": "A"})])
    bad = score_calls(c, TOOLS, [call("nope", {})])
    rows = [_row("m", "a", good), _row("m", "a", good), _row("m", "b", bad), _row("m", "b", good),
            _row("m", "c", bad), _row("m", "c", bad), _row("m", "d", good, status="error")]
    m = tool_metrics(rows)["m"]
    want = clustered_wilson_interval([2, 1, 0], [2, 2, 2]).interval
    assert (m["name_accuracy"]["successes"], m["name_accuracy"]["n"]) == (3, 6)
    assert m["name_accuracy"]["low"] == pytest.approx(want.low) and m["name_accuracy"]["high"] == pytest.approx(want.high)
    assert m["results"] == 6 and m["forbidden_call_rate"]["estimate"] is None  # no case forbids a tool
    assert m["f1"]["tp"] == 3 and m["f1"]["fp"] == 3 and m["f1"]["fn"] == 3


def test_secrets_are_redacted_from_tool_call_arguments() -> None:
    from benchrun.providers import SECRETS, CallResult

    secret = "s3cr3t-value-for-tool-test-42"
    SECRETS.add(secret)
    res = CallResult(text="", tool_calls=[{"id": "a", "type": "function",
                                            "function": {"name": "f", "arguments": json.dumps({"k": secret})}}])
    clean = res.with_secrets_redacted()
    assert secret not in json.dumps(clean.tool_calls) and "***" in clean.tool_calls[0]["function"]["arguments"]
    assert secret in json.dumps(res.tool_calls)  # the original is not modified in place


def test_malformed_provider_tool_calls_are_scored_not_crashed_on() -> None:
    from benchrun.scoring.tools import normalise_call

    junk = [None, "x", {"function": "nope"}, {"id": 5, "function": {"name": 7, "arguments": None}},
            {"function": {"name": "lookup_invoice", "arguments": {"invoice_id": "A"}}}]
    calls = [normalise_call(j, i) for i, j in enumerate(junk)]
    assert [c["name"] for c in calls] == ["", "", "", "", "lookup_invoice"]
    assert json.loads(calls[4]["arguments"]) == {"invoice_id": "A"}  # an object sent as such becomes its JSON
    s = score_calls(case(expected_tool_calls=[{"name": "lookup_invoice"}]), TOOLS, calls)
    assert s["tp"] == 1 and s["fp"] == 4 and s["failure_mode"] == "wrong_tool"  # calls of tools not offered


def test_budget_bound_of_a_scripted_trajectory_counts_every_step_and_its_growing_prompt() -> None:
    from benchrun.providers import count_tokens
    from benchrun.spec import RunSpec
    from benchrun.trajectory import worst_case_steps

    spec = RunSpec.model_validate({"name": "s", "dataset": "d.yaml", "candidates": [{"model": "openai/x"}],
                                   "max_steps": 3})
    c = case(tool_results={"lookup_invoice": "short", "1": {"k": "a much longer scripted result here"}})
    longest = count_tokens(json.dumps({"k": "a much longer scripted result here"})) + 8
    got = worst_case_steps(spec, c, 100, 50, lambda pt, ct: float(pt + ct))
    assert got == sum(100 + k * (50 + longest) + 50 for k in range(3))
    assert worst_case_steps(spec, c, 100, 50, lambda pt, ct: None) is None  # unknown price stays unknown
