"""The provider gateway's two transports: the OpenAI-compatible one over httpx and litellm.

The same spec run through each against our test server must leave the same ledger (answers, tokens,
cost, retries and how every fault was described, Retry-After waits, cache keys and entries, the
requests the server saw), apart from timings; the fast path prices from litellm's own map, read as
data; and an OpenAI-compatible run imports neither litellm nor scipy.stats nor numpy before its first call.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchrun import openai_http, prices, providers
from benchrun.spec import ModelRef, Retries
from conftest import Project, fake_config
from fakeserver import FakeServer

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-fake-h15-0123456789abcdef"  # echoed back in full by the server's 401: must never reach the ledger
TIMINGS = {"id", "run_id", "latency_ms", "judge_latency_ms", "created_at"}


def _rows(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    out = [dict(r) for r in con.execute("SELECT * FROM result ORDER BY case_id, model_key, sample_index")]
    cache = {r["key"]: dict(r) for r in con.execute("SELECT * FROM cache")}
    con.close()
    for r in out:
        for k in TIMINGS:
            r.pop(k, None)
        attempts = json.loads(r["attempts"])
        for a in attempts:
            if "RateLimitError" not in a["error"]:  # jittered backoff is a timing; a Retry-After wait is not
                a.pop("wait_s", None)
        r["attempts"] = attempts
    for c in cache.values():
        value = json.loads(c.pop("response"))
        value.pop("latency_ms", None)
        c["value"] = value
        c.pop("created_at", None)
        c.pop("id", None)
    return [*out, {"cache": cache}]


def _requests(srv: FakeServer) -> list[tuple[str, str, str, str]]:
    return sorted((q.model, json.dumps(q.messages), json.dumps(q.sampling, sort_keys=True), q.outcome)
                  for q in srv.requests())


def _run_through(project: Project, srv: FakeServer, transport: str, config: dict[str, Any],
                 **spec_overrides: Any) -> tuple[list[dict[str, Any]], list[tuple[str, str, str, str]]]:
    srv.set_config(config)
    srv.reset()
    spec = yaml.safe_load(project.write_spec(**spec_overrides).read_text())
    for m in [*spec["candidates"], spec["judge"]]:
        m["transport"] = transport
    path = project.root / "runs" / f"{transport}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    ledger = project.root / f"{transport}.sqlite"
    r = project.cli("run", str(path), "--json", env={"BENCHRUN_LEDGER": str(ledger), "H15_FAKE_KEY": KEY})
    assert r.returncode == 0, r.stderr[-3000:]
    return _rows(ledger), _requests(srv)


def _faults() -> list[dict[str, Any]]:
    def on(case: int, kind: str, **kw: Any) -> dict[str, Any]:
        return {"kind": kind, "model": kw.pop("model", "good"), "contains": f"(ticket {case})", "first_n": 1, **kw}

    return [
        on(0, "429", retry_after=0.3),
        on(1, "503"),
        {**on(2, "500"), "first_n": 99},  # retries exhausted: an error row
        on(3, "502"),
        on(4, "timeout"),
        on(5, "reset"),
        on(6, "malformed"),
        on(7, "truncated"),
        on(8, "empty"),
        on(9, "401"),  # fatal, and its message carries the key
        on(1, "429", model="judge"),
        on(3, "500", model="judge"),
    ]


CANDIDATES = [
    {"model": "openai/good", "alias": "good", "api_key_env": "H15_FAKE_KEY",
     "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
    # no price in the spec: litellm's map prices it (litellm.cost_per_token / benchrun.prices)
    {"model": "openai/gpt-4o-mini", "alias": "mini"},
    {"model": "openai/unpriced-model", "alias": "unpriced"},  # the map does not know it: unknown, not zero
]


@pytest.mark.parametrize("scenario", ["faults", "no-usage"])
def test_the_same_spec_leaves_the_same_ledger_through_both_transports(
        project: Project, server: FakeServer, scenario: str) -> None:
    from conftest import make_cases

    project.write_dataset(make_cases(10))
    project.write_rubric()
    cands = [{**c, "api_base": project.url} for c in CANDIDATES]
    if scenario == "faults":
        config = fake_config(faults=_faults(), timeout_sleep_s=3)
    else:  # no usage from the server: tokens estimated alike; the provider's model version recorded alike
        config = fake_config(no_usage=True, resolved_model="fake-model-2026-01-01")
    # every candidate answers differently, so no two judge calls are one request (which of two identical calls
    # in flight at once is served from the cache depends on timing, not on the transport)
    config["rules"][:0] = [{"model": "gpt-4o-mini", "reply": "Please open a ticket."},
                           {"model": "unpriced", "reply": "A ticket, please."}]
    judge = {"model": "openai/judge", "api_base": project.url, "structured_output": "json_schema",
             "price": {"input_per_1m": 0.5, "output_per_1m": 0.5}}
    overrides = {"candidates": cands, "judge": judge, "timeout_s": 1}
    rows_l, seen_l = _run_through(project, server, "litellm", config, **overrides)
    rows_o, seen_o = _run_through(project, server, "openai", config, **overrides)

    # the same requests, bodies and outcomes at the server (retries included)
    assert seen_o == seen_l, (Counter(seen_o) - Counter(seen_l), Counter(seen_l) - Counter(seen_o))
    assert len(rows_o) == 31
    for a, b in zip(rows_l, rows_o, strict=True):
        assert b == a
    res = {(r["case_id"], r["model_key"]): r for r in rows_o[:-1]}
    assert res[("case-002", "mini")]["cost_usd"] > 0  # priced from the map
    assert res[("case-002", "unpriced")]["cost_usd"] is None
    assert all(KEY not in json.dumps(r) for r in rows_o)
    if scenario == "no-usage":
        assert all(r["tokens_estimated"] for r in rows_o[:-1])
        assert {r["resolved_model"] for r in rows_o[:-1]} == {"fake-model-2026-01-01"}
        return
    # what the faults did, read from the ledger of the fast path (identical to litellm's, above)
    good = {r["case_id"]: r for r in rows_o[:-1] if r["model_key"] == "good"}
    assert [good[f"case-00{i}"]["retries"] for i in range(10)] == [1, 1, 2, 1, 1, 1, 1, 1, 1, 0]
    assert good["case-000"]["attempts"][0]["wait_s"] == 0.3  # the server's Retry-After
    assert good["case-002"]["status"] == "error" and "gave up after 3 attempts" in good["case-002"]["error"]
    assert good["case-009"]["status"] == "error" and "AuthenticationError" in good["case-009"]["error"]
    assert "***" in good["case-009"]["error"]
    assert all(good[f"case-00{i}"]["status"] == "passed" for i in (0, 1, 3, 4, 5, 6, 7, 8))
    assert good["case-001"]["judge_retries"] == 1 and good["case-003"]["judge_retries"] == 1
    kinds = [good[f"case-00{i}"]["attempts"][0]["error"].split(":")[0] for i in range(10)]
    assert kinds == ["RateLimitError", "ServiceUnavailableError", "InternalServerError", "BadGatewayError", "Timeout",
                     "APIConnectionError", "InternalServerError", "InternalServerError", "EmptyResponse",
                     "AuthenticationError"]
    assert all(a["retryable"] for i in range(9) for a in good[f"case-00{i}"]["attempts"])
    assert not good["case-009"]["attempts"][0]["retryable"]
    # structured output reached the server in the judge's requests, through both transports alike
    assert all('"json_schema"' in s for m, _, s, _ in seen_o if m == "judge")


def test_tool_and_format_fields_pass_through_both_transports(server: FakeServer) -> None:
    import asyncio

    tools = [{"type": "function", "function": {"name": "refund", "description": "refund an order",
                                               "parameters": {"type": "object", "properties": {}}}}]
    params = {"temperature": 0, "tools": tools, "tool_choice": "auto", "response_format": {"type": "json_object"},
              "seed": 3}
    msgs = [{"role": "user", "content": "refund me (tool test)"}]
    sent = {}
    for transport in ("litellm", "openai"):
        server.reset()
        ref = ModelRef(model="openai/good", api_base=server.url, transport=transport)
        res = asyncio.run(providers.complete(ref, providers.resolve(ref), msgs, params, 5, Retries()))
        assert res.ok, res.error
        (q,) = server.requests()
        sent[transport] = (q.model, q.messages, q.sampling)
    assert sent["openai"] == sent["litellm"]
    assert sent["openai"][2]["tools"] == tools and sent["openai"][2]["tool_choice"] == "auto"

    # a tool-call answer is read alike: litellm's own response object versus the fast path's parser
    import litellm

    body = {"id": "x", "object": "chat.completion", "created": 1, "model": "m-2026",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None,
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "refund", "arguments": "{\"order\": 7}"}}]}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}
    ours = openai_http.parse_completion(body)
    theirs = providers._from_litellm(litellm.ModelResponse(**body))
    assert (ours.text, ours.prompt_tokens, ours.completion_tokens, ours.model, ours.finish_reason) == \
        (theirs.text, theirs.prompt_tokens, theirs.completion_tokens, theirs.model, theirs.finish_reason)
    assert ours.tool_calls is not None and theirs.tool_calls is not None
    assert [(t["id"], t["function"]) for t in ours.tool_calls] == [(t["id"], t["function"]) for t in theirs.tool_calls]


def test_fast_path_prices_equal_litellms_for_every_openai_chat_model() -> None:
    litellm = providers.setup_litellm()
    names = [k for k, v in prices.price_map().items() if v.get("litellm_provider") == "openai"
             and v.get("mode") == "chat"]
    assert len(names) > 50
    checked = 0
    for name in [*names, "unpriced-model", "claude-3-5-sonnet-20240620"]:
        for model in (f"openai/{name}", name):
            for pt, ct in ((1000, 500), (150_000, 20), (300_000, 7)):
                try:
                    p, c = litellm.cost_per_token(model=model, prompt_tokens=pt, completion_tokens=ct)
                    want: float | None = float(p) + float(c)
                except Exception:
                    want = None
                if model == name and want is not None and prices.model_entry(model) is None:
                    continue  # an unprefixed name of another provider: the fast path only prices OpenAI's
                assert prices.cost(model, pt, ct) == want, (model, pt, ct)
                checked += 1
    assert checked > 300


def test_transport_choice_and_validation(project: Project) -> None:
    def t(**kw: Any) -> str:
        return providers.transport_for(ModelRef(**kw))

    assert t(model="openai/gpt-4o-mini") == "openai"
    assert t(model="local/smollm2-135m") == "openai"
    assert t(model="my-model", api_base="http://127.0.0.1:8000/v1") == "openai"
    assert t(model="hosted_vllm/llama", api_base="http://127.0.0.1:8000/v1") == "openai"
    assert t(model="anthropic/claude-3-5-sonnet-20240620") == "litellm"
    assert t(model="ollama/llama3", api_base="http://127.0.0.1:11434") == "litellm"  # Ollama's own API
    assert t(model="openai/gpt-4o-mini", transport="litellm") == "litellm"
    assert t(model="anthropic/claude", api_base="http://proxy:4000/v1", transport="openai") == "openai"
    assert openai_http.wire_model("openai/org/model") == "org/model"

    spec = project.setup()
    data = yaml.safe_load(spec.read_text())
    data["candidates"][0]["transport"] = "grpc"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    r = project.cli("run", str(spec))
    assert r.returncode == 2
    assert "transport" in r.stderr and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0


PROBE = textwrap.dedent("""
    import json, sys, threading, time
    sys.path.insert(0, {tests!r})
    from fakeserver import FakeServer

    # the first request is held (gate) until the snapshot is taken: the run is waiting on its first call
    srv = FakeServer({{"hold_until_in_flight": 99, "hold_timeout_s": 5, "default_reply": "fine",
                      "rules": [{{"model": "judge", "reply": '{{"score": 5, "pass": true, "reason": "ok", "failure_mode": "none"}}'}}]}}).start()
    seen = {{}}

    def watch():
        deadline = time.monotonic() + 60
        while not srv.stats()["total"] and time.monotonic() < deadline:
            time.sleep(0.005)
        seen["modules"] = sorted(sys.modules)

    threading.Thread(target=watch, daemon=True).start()
    spec = sys.argv[1].replace("URL", srv.url)
    open(sys.argv[2], "w").write(spec)
    from benchrun.cli import main
    code = main(["run", sys.argv[2], "--json"])
    srv.stop()
    after = sorted(sys.modules)
    print(json.dumps({{"code": code, "modules": seen.get("modules"), "after": after}}))
""").format(tests=str(ROOT / "tests"))


def test_an_openai_compatible_run_imports_nothing_heavy_before_its_first_call(project: Project) -> None:
    project.write_dataset([{"id": "one", "input": "hello"}])
    project.write_rubric()
    # priced, so the summary computes the cost per 1,000 cases (a case bootstrap, numpy's when there are several
    # values; one case's one value needs none)
    price = {"input_per_1m": 1, "output_per_1m": 1}
    spec = project.write_spec(candidates=[{"model": "openai/cand", "api_base": "URL", "price": price}],
                              judge={"model": "openai/judge", "api_base": "URL", "price": price})
    r = subprocess.run([sys.executable, "-c", PROBE, spec.read_text(), str(project.root / "runs" / "probe.yaml")],
                       capture_output=True, text=True, timeout=120, check=False, cwd=project.root,
                       env={**os.environ, "BENCHRUN_LEDGER": str(project.ledger)})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["code"] == 0
    summary = json.loads(r.stdout.strip().rsplit("\n", 1)[0])  # the run's own --json output, before the probe's line
    cost = summary["holistic"]["models"][0]["cost_per_1k_cases"]
    assert summary["models"][0]["passed"] == 1  # answered and judged: the answer's cost is known
    assert cost is not None and cost["low"] == cost["estimate"] == cost["high"] > 0
    mods = set(out["modules"])
    assert "aiohttp" in mods and "benchrun.runner" in mods  # the snapshot was taken during the run
    heavy = {"litellm", "openai", "scipy", "numpy", "sklearn", "torch"}
    assert sorted(m for m in mods if m.split(".")[0] in heavy) == []
    # nor afterwards: the run's summary (Wilson intervals, latency percentiles) needs no scipy or numpy either
    assert sorted(m for m in out["after"] if m.split(".")[0] in heavy) == []
    # start-up (issue 15): no jsonschema before the first call for a spec without schemas (a verdict that is not
    # plainly the default schema's is validated by it afterwards)
    assert sorted(m for m in mods if m.split(".")[0] == "jsonschema") == []


def test_help_imports_no_provider_or_statistics_package() -> None:
    code = ("import sys\nfrom benchrun.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('MODS', ' '.join(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    line = next(x for x in r.stdout.splitlines() if x.startswith("MODS "))
    mods = set(line.split()[1:])
    assert "benchrun.cli" in mods
    assert not {m for m in mods if m.split(".")[0] in {"litellm", "openai", "scipy", "numpy", "httpx", "aiohttp", "torch"}}
