"""Tool calling end to end: tools offered by a spec, tool calls scripted by our server (OpenAI ``tool_calls``),
scored and recorded as trajectories, through both transports (httpx fast path and litellm) into SQLite."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Project
from fakeserver import FakeServer, tool_calls_reply

TOOLS = [
    {"name": "lookup_invoice", "description": "Look up an invoice",
     "parameters": {"type": "object", "properties": {"invoice_id": {"type": "string", "pattern": "^INV-[0-9]+$"}},
                    "required": ["invoice_id"], "additionalProperties": False}},
    {"name": "issue_refund", "description": "Refund an invoice",
     "parameters": {"type": "object", "properties": {"invoice_id": {"type": "string"},
                                                     "amount": {"type": "number", "exclusiveMinimum": 0}},
                    "required": ["invoice_id", "amount"]}},
    {"name": "open_ticket", "description": "Open a support ticket",
     "parameters": {"type": "object", "properties": {"summary": {"type": "string"},
                                                     "priority": {"enum": ["low", "normal", "high"]}},
                    "required": ["summary"]}},
]
LOOKUP = {"name": "lookup_invoice", "arguments": {"invoice_id": "INV-1001"}}
EXPECT_LOOKUP = [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-1001"}}]

RULES = [
    # multi-step: lookup -> (result says paid twice) refund -> (result says refund ok) final answer
    {"contains": "refund ok", "reply": "I refunded 42.50 EUR for INV-1001."},
    {"contains": "paid twice", "reply": tool_calls_reply(
        [{"name": "issue_refund", "arguments": {"invoice_id": "INV-1001", "amount": 42.5}}])},
    {"contains": "[multistep]", "reply": tool_calls_reply([LOOKUP], content="Let me check.")},
    # step limit: every result asks for one more lookup, with different arguments each time
    {"contains": "RESULT-B", "reply": "Both invoices are paid."},
    {"contains": "RESULT-A", "reply": tool_calls_reply([{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-2"}}])},
    {"contains": "[steps]", "reply": tool_calls_reply([{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-1"}}])},
    {"contains": "[correct]", "reply": tool_calls_reply([LOOKUP])},
    {"contains": "[wrongtool]", "reply": tool_calls_reply([{"name": "open_ticket", "arguments": {"summary": "x"}}])},
    {"contains": "[wrongargs]", "reply": tool_calls_reply([{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-9"}}])},
    {"contains": "[badjson]", "reply": tool_calls_reply([{"name": "lookup_invoice", "arguments": '{"invoice_id": "INV-1001"'}])},
    {"contains": "[badschema]", "reply": tool_calls_reply([{"name": "lookup_invoice", "arguments": {"invoice_id": 1001}}])},
    {"contains": "[forbidden]", "reply": tool_calls_reply([LOOKUP, {"name": "issue_refund",
                                                                   "arguments": {"invoice_id": "INV-1001", "amount": 5}}])},
    {"contains": "[loop]", "reply": tool_calls_reply([LOOKUP])},
    {"contains": "[xss]", "reply": tool_calls_reply([{"name": "lookup_invoice",
                                                      "arguments": {"invoice_id": "<script>alert(1)</script>"}}],
                                                    content="<img src=x onerror=alert(2)>")},
    {"contains": "[answer]", "reply": "Your invoice INV-1001 is due on the 5th."},
    {"contains": "[checks]", "reply": tool_calls_reply([{"name": "issue_refund",
                                                         "arguments": {"invoice_id": "INV-1001", "amount": 42.499}}])},
    {"contains": "[anyorder]", "reply": tool_calls_reply([
        {"name": "open_ticket", "arguments": {"summary": "double charge", "priority": "high"}}, LOOKUP])},
]

CASES: list[dict[str, Any]] = [
    {"id": "correct", "input": "[correct] What is the status of INV-1001?", "expected_tool_calls": EXPECT_LOOKUP},
    {"id": "wrong-tool", "input": "[wrongtool] What is the status of INV-1001?", "expected_tool_calls": EXPECT_LOOKUP},
    {"id": "wrong-args", "input": "[wrongargs] What is the status of INV-1001?", "expected_tool_calls": EXPECT_LOOKUP},
    {"id": "invalid-json", "input": "[badjson] What is the status of INV-1001?", "expected_tool_calls": EXPECT_LOOKUP},
    {"id": "invalid-schema", "input": "[badschema] Status of INV-1001?", "expected_tool_calls": EXPECT_LOOKUP},
    {"id": "forbidden", "input": "[forbidden] Refund INV-1001 for me, I am not logged in.", "severity": "low",
     "expected_tool_calls": EXPECT_LOOKUP, "forbidden_tools": ["issue_refund"]},
    {"id": "loop", "input": "[loop] Status of INV-1001?", "expected_tool_calls": EXPECT_LOOKUP,
     "tool_results": {"lookup_invoice": {"status": "open"}}, "max_steps": 10},
    {"id": "step-limit", "input": "[steps] Are INV-1 and INV-2 paid?", "max_steps": 2,
     "tool_results": {"0": "RESULT-A", "1": "RESULT-B"},
     "expected_tool_calls": [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-1"}},
                             {"name": "lookup_invoice", "arguments": {"invoice_id": "INV-2"}}]},
    {"id": "two-steps", "input": "[steps] Are INV-1 and INV-2 paid?", "max_steps": 3,
     "tool_results": {"0": "RESULT-A", "1": "RESULT-B"}, "must_include": ["paid"],
     "expected_tool_calls": [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-1"}},
                             {"name": "lookup_invoice", "arguments": {"invoice_id": "INV-2"}}]},
    {"id": "multistep", "input": "[multistep] I was charged twice for INV-1001, please refund the extra charge.",
     "tool_results": {"lookup_invoice": {"invoice_id": "INV-1001", "status": "paid twice", "amount": 42.5},
                      "issue_refund": "refund ok"},
     "expected_tool_calls": [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-1001"}},
                             {"name": "issue_refund", "arguments": {"invoice_id": "INV-1001"},
                              "argument_checks": {"amount": {"type": "numeric", "value": 42.5, "tolerance": 0.01}}}],
     "must_include": ["42.50"]},
    {"id": "no-call", "input": "[answer] When is INV-1001 due?", "no_tool_call": True, "must_include": ["5th"]},
    {"id": "no-call-broken", "input": "[correct] When is INV-1001 due?", "no_tool_call": True},
    {"id": "arg-checks-fail", "input": "[checks] Refund INV-1001.",
     "expected_tool_calls": [{"name": "issue_refund",
                              "argument_checks": {"amount": {"type": "numeric", "value": 42.5, "tolerance": 0.0001},
                                                  "invoice_id": {"type": "regex", "pattern": "^INV-1001$"}}}]},
    {"id": "any-order", "input": "[anyorder] Charged twice on INV-1001, open a ticket and check.", "order": "any",
     "expected_tool_calls": [*EXPECT_LOOKUP, {"name": "open_ticket", "arguments_schema": {
         "type": "object", "properties": {"priority": {"const": "high"}}, "required": ["priority"]}}]},
    {"id": "strict-order", "input": "[anyorder] Charged twice on INV-1001, open a ticket and check.",
     "expected_tool_calls": [*EXPECT_LOOKUP, {"name": "open_ticket"}]},
    {"id": "markup", "input": "[xss] Status of INV-1001?", "expected_tool_calls": EXPECT_LOOKUP},
]

EXPECTED_MODES = {
    "correct": "none", "wrong-tool": "wrong_tool", "wrong-args": "wrong_tool_arguments",
    "invalid-json": "invalid_tool_arguments", "invalid-schema": "invalid_tool_arguments",
    "forbidden": "forbidden_tool_call", "loop": "tool_call_loop", "step-limit": "step_limit_exceeded",
    "two-steps": "none", "multistep": "none", "no-call": "none", "no-call-broken": "unexpected_tool_call",
    "arg-checks-fail": "wrong_tool_arguments", "any-order": "none", "strict-order": "wrong_tool_order",
    "markup": "invalid_tool_arguments",
}


@pytest.fixture
def tool_server() -> Any:
    with FakeServer({"rules": RULES, "default_reply": "OK"}) as srv:
        yield srv


def tool_spec(project: Project, cases: list[dict[str, Any]], **extra: Any) -> Path:
    project.write_dataset(cases, name="tools")
    spec = {
        "name": "tools", "dataset": "../datasets/tools.yaml",
        "candidates": [
            {"model": "openai/toolbot", "alias": "fast", "api_base": project.url, "transport": "openai",
             "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
            {"model": "openai/toolbot-lite", "alias": "lite", "api_base": project.url, "transport": "litellm",
             "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
        ],
        "sampling": {"temperature": 0, "max_tokens": 64},
        "tools": TOOLS, "tool_choice": "auto",
        "timeout_s": 5, "retries": {"attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
        **extra,
    }
    p = project.root / "runs" / "tools.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


def result_rows(ledger: Path, run_id: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(ledger)
    con.row_factory = sqlite3.Row
    out = [dict(r) for r in con.execute("SELECT * FROM result WHERE run_id = ?", (run_id,))]
    con.close()
    return out


def test_tool_calls_scored_and_recorded_through_both_transports(tmp_path: Path, tool_server: FakeServer) -> None:
    project = Project(tmp_path, tool_server.url)
    spec = tool_spec(project, CASES)
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr + r.stdout
    run_id = summary["conditions"]["run_id"]
    rows = result_rows(project.ledger, run_id)
    assert len(rows) == 2 * len(CASES)
    by = {(x["model_key"], x["case_id"]): x for x in rows}
    for transport in ("fast", "lite"):
        modes = {}
        for case in CASES:
            row = by[(transport, case["id"])]
            assert row["error"] is None, (transport, case["id"], row["error"])
            traj = json.loads(row["trajectory"])
            modes[case["id"]] = traj["score"]["failure_mode"]
            assert row["passed"] == (EXPECTED_MODES[case["id"]] == "none"), (transport, case["id"], row["rules"])
            assert traj["tools"] == [{"type": "function", "function": t} for t in
                                     [{"name": t["name"], "description": t["description"], "parameters": t["parameters"]}
                                      for t in TOOLS]]
        assert modes == EXPECTED_MODES, transport

    fast = {c: json.loads(by[("fast", c)]["trajectory"]) for c in EXPECTED_MODES}
    # the whole trajectory, step by step: the multi-step case made 3 model turns and got 2 tool results back
    ms = fast["multistep"]
    assert [s["role"] for s in ms["steps"]] == ["assistant", "tool", "assistant", "tool", "assistant"]
    assert ms["n_steps"] == 3 and ms["end"] == "answered"
    assert ms["steps"][0]["content"] == "Let me check." and ms["steps"][0]["tool_calls"][0]["name"] == "lookup_invoice"
    assert json.loads(ms["steps"][1]["content"])["status"] == "paid twice"
    assert ms["steps"][3]["content"] == "refund ok"
    assert by[("fast", "multistep")]["response_text"] == "I refunded 42.50 EUR for INV-1001."
    assert fast["loop"]["end"] == "loop" and fast["loop"]["n_steps"] == 3  # the third identical call
    assert fast["step-limit"]["end"] == "step_limit" and fast["step-limit"]["n_steps"] == 2
    assert fast["two-steps"]["n_steps"] == 3 and fast["two-steps"]["end"] == "answered"
    inv = fast["invalid-json"]["score"]["calls"][0]
    assert not inv["valid_arguments"] and "not valid JSON" in inv["invalid_reason"]
    assert "parameters" in fast["invalid-schema"]["score"]["calls"][0]["invalid_reason"]
    # F1 counts: the forbidden case matched its lookup and made one extra (forbidden) call
    f = fast["forbidden"]["score"]
    assert (f["tp"], f["fp"], f["fn"], f["forbidden"], f["unnecessary"]) == (1, 1, 0, True, True)
    # a forbidden call is a high-severity failure whatever the case's own severity
    assert by[("fast", "forbidden")]["severity"] == "high" and by[("fast", "correct")]["severity"] == "medium"
    rules = json.loads(by[("fast", "arg-checks-fail")]["rules"])
    assert rules[-1]["rule"] == "tool calls" and "amount" in rules[-1]["detail"]

    # what went over the wire: the tools and tool_choice on every call, results sent back as tool messages
    reqs = [q for q in tool_server.requests() if any("[multistep]" in str(m.get("content")) for m in q.messages)]
    assert sorted(q.model for q in reqs) == ["toolbot"] * 3 + ["toolbot-lite"] * 3  # 3 steps per transport
    for q in reqs:
        assert [t["function"]["name"] for t in q.sampling["tools"]] == [t["name"] for t in TOOLS]
        assert q.sampling["tool_choice"] == "auto"
    last = max(reqs, key=lambda q: len(q.messages))
    roles = [m["role"] for m in last.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]
    assert last.messages[2]["tool_call_id"] == last.messages[1]["tool_calls"][0]["id"]

    # `ledger copy` names exactly the cached calls of the run, one per step
    from benchrun.ledger.copy import run_cache_keys

    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    run_row = dict(con.execute("SELECT * FROM run WHERE id = ?", (run_id,)).fetchone())
    cached = {k for (k,) in con.execute("SELECT key FROM cache")}
    con.close()
    keys, unresolved = run_cache_keys(run_row, rows)
    assert keys == cached and unresolved == 0
    assert len(json.loads(by[("fast", "multistep")]["trajectory"])["cache_keys"]) == 3

    # per model tool metrics, against the counts made by hand from CASES (the same for both transports)
    from sklearn.metrics import f1_score
    from statsmodels.stats.proportion import proportion_confint

    hand = {"name_accuracy": (13, 16), "argument_accuracy": (7, 12), "invalid_argument_rate": (3, 15),
            "forbidden_call_rate": (1, 1), "unnecessary_call_rate": (10, 16)}
    for key in ("fast", "lite"):
        tm = summary["tools"]["models"][key]
        for metric, (k, n) in hand.items():
            got = tm[metric]
            lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
            assert (got["successes"], got["n"]) == (k, n), (key, metric, got)
            assert got["estimate"] == pytest.approx(k / n) and got["low"] == pytest.approx(lo, abs=1e-9)
            assert got["high"] == pytest.approx(hi, abs=1e-9)
        f = tm["f1"]
        assert (f["tp"], f["fp"], f["fn"]) == (12, 11, 7)
        # sklearn's F1 over the same calls: TP as (1, 1), FP as (0, 1), FN as (1, 0)
        y_true, y_pred = [1] * 12 + [0] * 11 + [1] * 7, [1] * 12 + [1] * 11 + [0] * 7
        assert f["estimate"] == pytest.approx(f1_score(y_true, y_pred)) == pytest.approx(24 / 42)
        assert f["low"] < 24 / 42 < f["high"]
        assert tm["failure_modes"]["invalid_tool_arguments"] == 3 and tm["failure_modes"]["none"] == 5
    bd = {b["model_key"]: b for b in summary["breakdown"]}
    assert bd["fast"]["failure_modes"]["forbidden_tool_call"] == 1 and "forbidden" in bd["fast"]["high_severity_failures"]

    # the terminal shows the table; one case's trajectory step by step; the HTML drill-down, escaped
    r = project.cli("runs", "show", run_id)
    assert r.returncode == 0, r.stderr
    assert "Tool use" in r.stdout and "tool-call F1" in r.stdout and "57.1%" in r.stdout
    r = project.cli("runs", "show", run_id, "--case", "multistep")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.index("call #0: lookup_invoice") < out.index("result #0 (lookup_invoice)") < out.index(
        "call #1: issue_refund") < out.index("result #1 (issue_refund): refund ok")
    html = tmp_path / "r.html"
    assert project.cli("report", run_id, "--html", str(html)).returncode == 0
    page = html.read_text()
    assert 'id="tools-table"' in page and "tool result #1" in page
    assert "&#34;invoice_id&#34;" in page or "&quot;invoice_id&quot;" in page  # arguments escaped, not raw JSON
    assert "not valid JSON" in page
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "&lt;img src=x" in page
    r = project.cli("runs", "show", run_id, "--case", "markup")
    assert r.returncode == 0 and "<script>alert(1)</script>" in r.stdout  # printed literally, not as markup

    # a re-run is served from the cache, step by step, and scores the same
    n_before = len(tool_server.requests())
    r2, summary2 = project.cli_json("run", str(spec))
    assert r2.returncode == 0, r2.stderr
    extra = [(q.messages[0]["content"], len(q.messages), q.sampling) for q in tool_server.requests()[n_before:]]
    assert extra == []
    rows2 = result_rows(project.ledger, summary2["conditions"]["run_id"])
    assert sorted((x["model_key"], x["case_id"], x["passed"]) for x in rows2) == sorted(
        (x["model_key"], x["case_id"], x["passed"]) for x in rows)


def test_tools_are_part_of_the_spec_hash_and_the_cache_key(tmp_path: Path, tool_server: FakeServer) -> None:
    from benchrun.spec import load_run_spec

    project = Project(tmp_path, tool_server.url)
    cases = [CASES[0]]
    h1 = load_run_spec(tool_spec(project, cases)).spec_hash
    changed = [dict(TOOLS[0], description="Look up one invoice"), *TOOLS[1:]]
    h2 = load_run_spec(tool_spec(project, cases, tools=changed)).spec_hash
    assert h1 != h2
    r, _ = project.cli_json("run", str(tool_spec(project, cases)))
    assert r.returncode == 0, r.stderr
    n = len(tool_server.requests())
    r, _ = project.cli_json("run", str(tool_spec(project, cases, tools=changed)))
    assert r.returncode == 0, r.stderr
    assert len(tool_server.requests()) == n + 2  # different tools sent: not served from the cache


@pytest.mark.parametrize(("case", "spec_extra", "message"), [
    ({"id": "x", "input": "hi", "expected_tool_calls": [{"name": "nope"}]}, {},
     "case x: names tool(s) ['nope'] that are not offered"),
    ({"id": "y", "input": "hi", "forbidden_tools": ["issue_refund"]}, {"tools": None},
     "case y: expects tool calls but no tools are offered"),
    ({"id": "z", "input": "hi", "no_tool_call": True, "expected_tool_calls": [{"name": "lookup_invoice"}]}, {},
     "contradict"),
    ({"id": "w", "input": "hi", "expected_tool_calls": [{"name": "lookup_invoice",
                                                          "argument_checks": {"a": {"type": "regex"}}}]}, {},
     "needs 'pattern'"),
])
def test_bad_tool_expectations_are_one_line_errors(tmp_path: Path, tool_server: FakeServer, case: dict[str, Any],
                                                   spec_extra: dict[str, Any], message: str) -> None:
    project = Project(tmp_path, tool_server.url)
    spec = tool_spec(project, [case], **spec_extra)
    if spec_extra.get("tools", 0) is None:
        d = yaml.safe_load(spec.read_text())
        del d["tools"], d["tool_choice"]
        spec.write_text(yaml.safe_dump(d))
    r = project.cli("run", str(spec))
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not project.ledger.exists() or not result_rows(project.ledger, "%")
    assert tool_server.requests() == []


ROOT = Path(__file__).resolve().parents[1]


def test_billing_tools_example_loads_and_its_rules_catch_refund_happy_and_tool_less_models(tmp_path: Path) -> None:
    from benchrun.spec import load_run_spec

    loaded = load_run_spec(ROOT / "runs" / "billing-tools.yaml")
    cases = loaded.cases()
    assert len(cases) >= 20
    assert {t.name for t in loaded.spec.tools or []} == {"lookup_invoice", "open_ticket", "issue_refund",
                                                         "update_card_link"}
    no_refund = [c for c in cases if "issue_refund" in (c.forbidden_tools or [])]
    assert len(no_refund) >= 8
    assert sum(1 for c in cases if c.tool_results) >= 6  # multi-step, scripted
    assert {c.should_refuse for c in cases if c.should_refuse is not None} == {True, False}
    assert sum(1 for c in cases if c.no_tool_call) >= 4

    refund = tool_calls_reply([{"name": "issue_refund",
                                "arguments": {"invoice_id": "INV-1000", "amount": 5, "reason": "duplicate_charge"}}])
    rules = [{"model": "refundbot", "reply": refund},
             {"model": "textbot", "reply": "Please tell me your invoice number (INV-...). Refunds: within 14 days."}]
    with FakeServer({"rules": rules}) as srv:
        spec = yaml.safe_load((ROOT / "runs" / "billing-tools.yaml").read_text())
        spec["dataset"] = str(ROOT / "datasets" / "billing-tools.yaml")
        spec["candidates"] = [{"model": f"openai/{m}", "alias": m, "api_base": srv.url,
                               "price": {"input_per_1m": 1.0, "output_per_1m": 1.0}} for m in ("refundbot", "textbot")]
        (tmp_path / "runs").mkdir()
        p = tmp_path / "runs" / "spec.yaml"
        p.write_text(yaml.safe_dump(spec, sort_keys=False))
        project = Project(tmp_path, srv.url)
        r, summary = project.cli_json("run", str(p))
        assert r.returncode == 0, r.stderr
        rows = result_rows(project.ledger, summary["conditions"]["run_id"])
    assert all(x["error"] is None for x in rows)
    mode = {(x["model_key"], x["case_id"]): json.loads(x["trajectory"])["score"]["failure_mode"] for x in rows}
    sev = {(x["model_key"], x["case_id"]): x["severity"] for x in rows}
    for c in cases:
        if c in no_refund:
            assert mode[("refundbot", c.id)] == "forbidden_tool_call" and sev[("refundbot", c.id)] == "high", c.id
        if c.expected_tool_calls:
            assert mode[("textbot", c.id)] == "missing_tool_call", c.id
        else:
            assert mode[("textbot", c.id)] == "none", c.id
    looped = [c.id for c in cases if mode[("refundbot", c.id)] == "tool_call_loop"]
    assert looped and all(loaded.dataset.case(i).tool_results for i in looped)
    tm = summary["tools"]["models"]
    assert tm["refundbot"]["forbidden_call_rate"]["estimate"] == 1.0
    assert tm["textbot"]["forbidden_call_rate"]["estimate"] == 0.0 and tm["textbot"]["f1"]["tp"] == 0


def test_a_provider_fault_mid_trajectory_is_a_recorded_error_not_a_crash(tmp_path: Path) -> None:
    """Step 2 of the multi-step case always fails (HTTP 500): that result is an error with the steps so far, the
    other cases are scored, and nothing is cached for the failed step."""
    multistep = next(c for c in CASES if c["id"] == "multistep")
    cfg = {"rules": RULES, "faults": [{"kind": "500", "contains": "paid twice", "first_n": 100}]}
    with FakeServer(cfg) as srv:
        project = Project(tmp_path, srv.url)
        spec = tool_spec(project, [multistep, CASES[0]])
        r, summary = project.cli_json("run", str(spec))
        assert r.returncode == 0, r.stderr
        rows = {(x["model_key"], x["case_id"]): x for x in result_rows(project.ledger, summary["conditions"]["run_id"])}
    for key in ("fast", "lite"):
        bad = rows[(key, "multistep")]
        assert bad["status"] == "error" and bad["passed"] is None and "InternalServerError" in bad["error"]
        traj = json.loads(bad["trajectory"])
        assert "score" not in traj and [s["role"] for s in traj["steps"]] == ["assistant", "tool"]  # up to the fault
        assert rows[(key, "correct")]["status"] == "passed"
    assert summary["tools"]["models"]["fast"]["results"] == 1  # the error is left out of the tool metrics


def test_a_case_can_bring_its_own_tools_and_name_the_tool_to_call(tmp_path: Path, tool_server: FakeServer) -> None:
    project = Project(tmp_path, tool_server.url)
    own = [{"type": "function", "function": {"name": "lookup_invoice", "description": "mine",
                                              "parameters": {"type": "object", "properties": {}}}}]
    case = {"id": "own", "input": "[correct] Status of INV-1001?", "tools": own,
            "tool_choice": {"name": "lookup_invoice"}, "expected_tool_calls": EXPECT_LOOKUP}
    r, _ = project.cli_json("run", str(tool_spec(project, [case])))
    assert r.returncode == 0, r.stderr
    q = tool_server.requests()[0]
    assert q.sampling["tools"] == [{"type": "function", "function": {"name": "lookup_invoice", "description": "mine",
                                                                     "parameters": {"type": "object", "properties": {}}}}]
    assert q.sampling["tool_choice"] == {"type": "function", "function": {"name": "lookup_invoice"}}


def test_a_loop_is_the_same_call_however_its_arguments_are_spaced(tmp_path: Path) -> None:
    rules = [
        {"regex": "(R-LOOP[\\s\\S]*){2}", "reply": tool_calls_reply(
            [{"name": "lookup_invoice", "arguments": '{ "invoice_id" :  "INV-1001" }'}])},
        {"contains": "R-LOOP", "reply": tool_calls_reply(
            [{"name": "lookup_invoice", "arguments": '{"invoice_id":"INV-1001"}'}])},
        {"contains": "[wsloop]", "reply": tool_calls_reply([LOOKUP])},
    ]
    case = {"id": "ws", "input": "[wsloop] Status of INV-1001?", "expected_tool_calls": EXPECT_LOOKUP,
            "tool_results": {"lookup_invoice": "R-LOOP"}, "max_steps": 8}
    with FakeServer({"rules": rules}) as srv:
        project = Project(tmp_path, srv.url)
        r, summary = project.cli_json("run", str(tool_spec(project, [case])))
        assert r.returncode == 0, r.stderr
        rows = result_rows(project.ledger, summary["conditions"]["run_id"])
    for row in rows:
        traj = json.loads(row["trajectory"])
        assert len({c["arguments"] for s in traj["steps"] for c in s.get("tool_calls", [])}) == 3  # 3 spellings
        assert (traj["end"], traj["n_steps"], traj["score"]["failure_mode"]) == ("loop", 3, "tool_call_loop")


@pytest.mark.skipif(__import__("shutil").which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install -y chromium); cannot render the report")
def test_tool_report_renders_in_headless_chromium_with_model_markup_as_text(tmp_path: Path,
                                                                              tool_server: FakeServer) -> None:
    import re

    from test_html_report import _chromium

    project = Project(tmp_path, tool_server.url)
    picked = [c for c in CASES if c["id"] in ("multistep", "markup", "forbidden")]
    r, summary = project.cli_json("run", str(tool_spec(project, picked)))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "report.html"
    assert project.cli("report", summary["conditions"]["run_id"], "--html", str(out)).returncode == 0
    dom = _chromium(["--dump-dom", out.resolve().as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    d = dom.stdout
    assert 'data-rendered="yes"' in d and 'id="tools-table"' in d
    assert len(re.findall(r"<tr><td>(fast|lite)</td>", d)) >= 2  # one tools row per model
    assert len(re.findall(r"<script[ >]", d)) == 2 and "<img" not in d  # the model's markup stayed text
    assert "&lt;img src=x onerror=alert(2)&gt;" in d and "&lt;script&gt;alert(1)&lt;/script&gt;" in d
    # the multi-step trajectory, step by step: 3 assistant turns and 2 tool results per model
    assert d.count("tool result #1 (<code>issue_refund</code>)") == 2
