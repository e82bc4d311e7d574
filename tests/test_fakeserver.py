"""The fake OpenAI server, checked with real clients (litellm, httpx) over real sockets.

These tests also pin down how litellm surfaces each failure, because benchrun's
retry logic depends on it:

- HTTP 429 -> ``litellm.RateLimitError``; the Retry-After header is in
  ``exc.litellm_response_headers`` (an ``httpx.Headers``), *not* in ``exc.response.headers``
  (litellm builds a synthetic response without headers).
- HTTP 500 / 502 / 503 -> ``litellm.InternalServerError`` / ``BadGatewayError`` /
  ``ServiceUnavailableError``.
- client timeout -> ``litellm.Timeout`` (``status_code`` 408).
- connection reset, malformed JSON, truncated JSON -> ``litellm.InternalServerError`` with
  ``status_code`` 500 and ``litellm_response_headers`` None (no real HTTP response).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from benchrun.providers import _retry_after_seconds
from fakeserver import FakeServer, http_json, prompt_key

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")

HERE = Path(__file__).parent
MSGS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hello there world"},
]
JUDGE = '{"score": 5, "pass": true, "reason": "ok", "failure_mode": "none"}'


@pytest.fixture(scope="module")
def litellm() -> Any:
    import litellm as _litellm

    _litellm.suppress_debug_info = True
    return _litellm


def complete(litellm: Any, srv: FakeServer, messages: list[dict[str, Any]] = MSGS, **kw: Any) -> Any:
    kw.setdefault("model", "openai/fake-a")
    return litellm.completion(api_base=srv.url, api_key="x", messages=messages, num_retries=0, max_retries=0, **kw)


def chat(srv: FakeServer, body: dict[str, Any], path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(srv.base_url + path, json=body, timeout=10)


# --------------------------------------------------------------------------- happy path


def test_litellm_gets_rule_reply_usage_and_model(litellm: Any) -> None:
    cfg = {"rules": [{"contains": "hello", "reply": "hi from rule"}], "default_reply": "default"}
    with FakeServer(cfg) as srv:
        r = complete(litellm, srv)
        assert r.choices[0].message.content == "hi from rule"
        assert r.choices[0].finish_reason == "stop"
        assert r.model == "fake-a"
        # whitespace tokens: "You are terse." (3) + "hello there world" (3); "hi from rule" (3)
        assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (6, 3, 9)
        r2 = complete(litellm, srv, messages=[{"role": "user", "content": "something else"}])
        assert r2.choices[0].message.content == "default"
        st = srv.stats()
        assert st["total"] == 2 and st["completed"] == 2
        assert st["by_model"] == {"fake-a": 2}
        assert st["by_status"] == {"200": 2}


def test_rules_first_match_wins_model_regex_and_placeholder(litellm: Any) -> None:
    cfg = {
        "rules": [
            {"model": "^judge", "reply": JUDGE},
            {"regex": r"\bcapital\b", "contains": "France", "reply": "Paris"},
            {"contains": "France", "reply": "second rule"},
            {"reply": "echo: {last_user}"},
        ]
    }
    with FakeServer(cfg) as srv:
        judged = complete(litellm, srv, model="openai/judge-1")
        assert json.loads(judged.choices[0].message.content) == json.loads(JUDGE)
        q = [{"role": "user", "content": "What is the capital of France?"}]
        assert complete(litellm, srv, messages=q).choices[0].message.content == "Paris"
        q2 = [{"role": "user", "content": "France is big"}]
        assert complete(litellm, srv, messages=q2).choices[0].message.content == "second rule"
        conv = [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": "last one"},
        ]
        assert complete(litellm, srv, messages=conv).choices[0].message.content == "echo: last one"


def test_resolved_model_and_no_usage(litellm: Any) -> None:
    with FakeServer({"resolved_model": "fake-model-2026-01-01", "no_usage": True}) as srv:
        raw = chat(srv, {"model": "fake-a", "messages": MSGS}).json()
        assert "usage" not in raw
        assert raw["model"] == "fake-model-2026-01-01"
        assert raw["object"] == "chat.completion" and raw["id"].startswith("chatcmpl-")
        r = complete(litellm, srv)
        assert r.model == "fake-model-2026-01-01"
        # litellm fills a missing usage with zeros rather than None: callers that estimate tokens
        # must treat total_tokens == 0 as "not reported".
        assert r.usage.total_tokens == 0


def test_both_paths_content_parts_and_bad_requests() -> None:
    with FakeServer({"default_reply": "{last_user}"}) as srv:
        parts = [{"role": "user", "content": [{"type": "text", "text": "a b"}, {"type": "text", "text": "c"}]}]
        for path in ("/v1/chat/completions", "/chat/completions"):
            body = chat(srv, {"model": "m", "messages": parts}, path).json()
            assert body["choices"][0]["message"]["content"] == "a b\nc"
            assert body["usage"]["prompt_tokens"] == 3
        assert chat(srv, {"model": "m", "messages": parts, "stream": True}).status_code == 400
        assert chat(srv, {"model": "m"}).status_code == 400
        assert httpx.post(srv.base_url + "/v1/chat/completions", content=b"{nope", timeout=5).status_code == 400
        assert httpx.get(srv.base_url + "/health", timeout=5).status_code == 200
        assert httpx.get(srv.base_url + "/nope", timeout=5).status_code == 404
        assert srv.stats()["total"] == 2  # only well-formed completion requests are recorded


# --------------------------------------------------------------------------- faults as litellm sees them


def test_429_retry_after_reachable_from_litellm_exception(litellm: Any) -> None:
    cfg = {"faults": [{"kind": "429", "first_n": 1, "retry_after": 7}]}
    with FakeServer(cfg) as srv:
        with pytest.raises(litellm.RateLimitError) as ei:
            complete(litellm, srv)
        e = ei.value
        assert e.status_code == 429
        assert e.litellm_response_headers["retry-after"] == "7"
        # older litellm gave a synthetic e.response without headers; our reader takes either place
        assert _retry_after_seconds(e) == 7.0
        assert srv.stats()["total"] == 1  # num_retries=0, max_retries=0: no hidden retry
        assert complete(litellm, srv).choices[0].message.content == "OK"  # first_n=1: second call passes
    with FakeServer({"faults": [{"kind": "429", "first_n": 1}]}) as srv:
        with pytest.raises(litellm.RateLimitError) as ei:
            complete(litellm, srv)
        assert "retry-after" not in ei.value.litellm_response_headers


@pytest.mark.parametrize(
    ("kind", "exc_name", "status"),
    [("500", "InternalServerError", 500), ("502", "BadGatewayError", 502), ("503", "ServiceUnavailableError", 503)],
)
def test_5xx_exception_classes(litellm: Any, kind: str, exc_name: str, status: int) -> None:
    with FakeServer({"faults": [{"kind": kind, "first_n": 1}]}) as srv:
        with pytest.raises(getattr(litellm, exc_name)) as ei:
            complete(litellm, srv)
        assert ei.value.status_code == status
        assert ei.value.litellm_response_headers is not None
        st = srv.stats()
        assert st["by_status"] == {kind: 1} and st["completed"] == 0


def test_timeout_fault_is_litellm_timeout_and_stop_is_prompt(litellm: Any) -> None:
    srv = FakeServer({"faults": [{"kind": "timeout", "first_n": 1}], "timeout_sleep_s": 600}).start()
    try:
        with pytest.raises(litellm.Timeout) as ei:
            complete(litellm, srv, timeout=0.5)
        assert ei.value.status_code == 408
        st = srv.stats()
        assert st["by_outcome"] == {"timeout": 1} and st["completed"] == 0
    finally:
        # the handler is still "sleeping" 600 s; stop() must wake it and finish every thread
        assert srv.stop() is True


@pytest.mark.parametrize("kind", ["reset", "malformed", "truncated"])
def test_broken_responses_are_internal_server_error_without_headers(litellm: Any, kind: str) -> None:
    with FakeServer({"faults": [{"kind": kind, "first_n": 1}]}) as srv:
        with pytest.raises(litellm.InternalServerError) as ei:
            complete(litellm, srv)
        assert ei.value.status_code == 500
        assert ei.value.litellm_response_headers is None
        assert srv.stats()["by_outcome"] == {kind: 1}
        assert srv.stats()["completed"] == 0


def test_async_client_sees_the_same_classes(litellm: Any) -> None:
    cfg = {
        "faults": [
            {"kind": "429", "contains": "rl", "first_n": 1, "retry_after": 2},
            {"kind": "reset", "contains": "rs", "first_n": 1},
            {"kind": "timeout", "contains": "to", "first_n": 1},
        ],
        "timeout_sleep_s": 600,
    }

    async def one(srv: FakeServer, text: str) -> Any:
        try:
            return await litellm.acompletion(
                model="openai/fake-a",
                api_base=srv.url,
                api_key="x",
                messages=[{"role": "user", "content": text}],
                num_retries=0,
                max_retries=0,
                timeout=0.5,
            )
        except Exception as exc:
            return exc

    async def run(srv: FakeServer) -> list[Any]:
        return await asyncio.gather(*(one(srv, t) for t in ("rl", "rs", "to", "fine")))

    srv = FakeServer(cfg).start()
    try:
        rl, rs, to, fine = asyncio.run(run(srv))
    finally:
        assert srv.stop() is True
    assert isinstance(rl, litellm.RateLimitError) and rl.litellm_response_headers["retry-after"] == "2"
    assert isinstance(rs, litellm.InternalServerError) and rs.litellm_response_headers is None
    assert isinstance(to, litellm.Timeout)
    assert fine.choices[0].message.content == "OK"


def test_empty_reply_is_a_completed_call(litellm: Any) -> None:
    with FakeServer({"faults": [{"kind": "empty", "first_n": 1}], "default_reply": "full"}) as srv:
        r = complete(litellm, srv)
        assert r.choices[0].message.content == ""
        assert r.usage.completion_tokens == 0
        assert complete(litellm, srv).choices[0].message.content == "full"
        assert srv.stats()["completed"] == 2


def test_raw_reset_and_truncated_at_http_level() -> None:
    cfg = {"faults": [{"kind": "reset", "contains": "rs", "first_n": 1}, {"kind": "truncated", "first_n": 1}]}
    with FakeServer(cfg) as srv:
        with pytest.raises(httpx.TransportError):
            chat(srv, {"model": "m", "messages": [{"role": "user", "content": "rs"}]})
        r = chat(srv, {"model": "m", "messages": [{"role": "user", "content": "tr"}]})
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)
        assert r.content.startswith(b'{"id": "chatcmpl-fake-')


# --------------------------------------------------------------------------- determinism of faults


def test_first_n_counts_per_prompt_key(litellm: Any) -> None:
    cfg = {"faults": [{"kind": "500", "model": "^fake-a$", "first_n": 2}]}
    a = [{"role": "user", "content": "question a"}]
    b = [{"role": "user", "content": "question b"}]
    with FakeServer(cfg) as srv:
        outcomes = []
        for msgs in (a, b, a, b, a, b):
            try:
                complete(litellm, srv, messages=msgs, temperature=0)
                outcomes.append("ok")
            except litellm.InternalServerError:
                outcomes.append("500")
        assert outcomes == ["500", "500", "500", "500", "ok", "ok"]
        # other models are not matched by the fault
        assert complete(litellm, srv, model="openai/fake-b", messages=a).choices[0].message.content == "OK"
        st = srv.stats()
        key_a = prompt_key("fake-a", a, {"temperature": 0})
        key_b = prompt_key("fake-a", b, {"temperature": 0})
        assert st["by_prompt_key"][key_a] == 3 and st["by_prompt_key"][key_b] == 3
        assert st["completed_by_prompt_key"] == {key_a: 1, key_b: 1, prompt_key("fake-b", a, {}): 1}
        recs = srv.requests()
        assert [r.status for r in recs[:6]] == [500, 500, 500, 500, 200, 200]
        assert recs[0].sampling == {"temperature": 0}


def _rate_outcomes(order: list[int], cfg: dict[str, Any]) -> dict[tuple[int, int], int]:
    """Status per (prompt number, attempt) when requests arrive in ``order``."""
    seen: dict[int, int] = {}
    out: dict[tuple[int, int], int] = {}
    with FakeServer(cfg) as srv, httpx.Client(base_url=srv.base_url, timeout=10) as c:
        for i in order:
            r = c.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": f"p{i}"}]})
            out[(i, seen.get(i, 0))] = r.status_code
            seen[i] = seen.get(i, 0) + 1
    return out


def test_rate_faults_are_deterministic_and_order_independent() -> None:
    from scipy.stats import binomtest

    cfg = {"faults": [{"kind": "503", "rate": 0.3, "seed": 11}]}
    order = [i for i in range(150) for _ in range(2)]  # every prompt twice
    first = _rate_outcomes(order, cfg)
    again = _rate_outcomes(list(reversed(order)), cfg)
    assert first == again
    fails = sum(1 for s in first.values() if s == 503)
    assert set(first.values()) == {200, 503}
    # hash-based draws should behave like Bernoulli(0.3): a two-sided binomial test must not reject
    assert binomtest(fails, len(first), 0.3).pvalue > 0.001
    other_seed = _rate_outcomes(order, {"faults": [{"kind": "503", "rate": 0.3, "seed": 12}]})
    assert other_seed != first
    assert set(_rate_outcomes(order[:20], {"faults": [{"kind": "503", "rate": 0.0}]}).values()) == {200}
    assert set(_rate_outcomes(order[:20], {"faults": [{"kind": "503", "rate": 1.0}]}).values()) == {503}


# --------------------------------------------------------------------------- control endpoints, config


def test_http_control_endpoints() -> None:
    with FakeServer({"default_reply": "one"}) as srv:
        chat(srv, {"model": "m", "messages": MSGS})
        st = http_json(srv.base_url + "/stats")
        assert st["total"] == 1 and st["completed"] == 1
        log = http_json(srv.base_url + "/requests")
        assert log[0]["model"] == "m" and log[0]["messages"] == MSGS and log[0]["status"] == 200
        assert log[0]["prompt_key"] == prompt_key("m", MSGS)
        http_json(srv.base_url + "/config", {"default_reply": "two", "faults": [{"kind": "502", "first_n": 1}]})
        assert chat(srv, {"model": "m", "messages": MSGS}).status_code == 502
        assert chat(srv, {"model": "m", "messages": MSGS}).json()["choices"][0]["message"]["content"] == "two"
        http_json(srv.base_url + "/reset", {})
        assert http_json(srv.base_url + "/stats")["total"] == 0
        # /reset also restarts the fault counters: first_n fires again
        assert chat(srv, {"model": "m", "messages": MSGS}).status_code == 502
        with pytest.raises(httpx.HTTPStatusError):
            httpx.post(srv.base_url + "/config", json={"latency": 5}, timeout=5).raise_for_status()
        # the rejected config left the previous one in place
        assert chat(srv, {"model": "m", "messages": MSGS}).json()["choices"][0]["message"]["content"] == "two"


@pytest.mark.parametrize(
    "bad",
    [
        {"latency": 5},
        {"rules": [{"contains": "x"}]},
        {"rules": [{"reply": "x", "model": "("}]},
        {"faults": [{"kind": "418", "first_n": 1}]},
        {"faults": [{"kind": "500"}]},
        {"faults": [{"kind": "500", "first_n": 1, "rate": 0.5}]},
    ],
)
def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FakeServer(bad)


def test_concurrent_requests_sleep_in_parallel_and_stop_wakes_them() -> None:
    """32 requests must be in flight at once while each sleeps its latency (no serialisation), counted per model too."""
    srv = FakeServer({"latency_ms": 600_000}).start()
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            chat(srv, {"model": "m" if i < 20 else "n", "messages": [{"role": "user", "content": str(i)}]})
        except BaseException as exc:  # the server is stopped under the client
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(32)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while srv.stats()["in_flight"] < 32 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.stats()["in_flight"] == 32
        assert srv.stats()["max_in_flight_by_model"] == {"m": 20, "n": 12}
    finally:
        assert srv.stop() is True
    for t in threads:
        t.join(timeout=10)
    assert len(errors) == 32 and all(isinstance(e, httpx.TransportError) for e in errors)


def test_hold_until_in_flight_releases_everyone_at_once_then_stays_open() -> None:
    """The gate holds requests until N are in flight together; later requests are not held."""
    with FakeServer({"hold_until_in_flight": 3}) as srv:
        done: list[float] = []
        cut: list[int] = []

        def client(i: int) -> None:
            try:
                chat(srv, {"model": "m", "messages": [{"role": "user", "content": str(i)}]})
            except httpx.HTTPError:  # held when the server closed
                cut.append(i)
                return
            done.append(time.monotonic())

        first = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(2)]
        for t in first:
            t.start()
        time.sleep(0.5)
        assert done == [] and srv.stats()["in_flight"] == 2  # two of three: both still held
        third = threading.Thread(target=client, args=(2,), daemon=True)
        third.start()
        for t in [*first, third]:
            t.join(timeout=10)
        assert len(done) == 3 and srv.stats()["max_in_flight"] == 3
        # the open gate holds nobody: a lone request is answered (held, it would wait for two more)
        assert chat(srv, {"model": "m", "messages": [{"role": "user", "content": "late"}]}).status_code == 200
        http_json(srv.url.removesuffix("/v1") + "/reset", {})
        t = threading.Thread(target=client, args=(3,), daemon=True)
        t.start()
        time.sleep(0.3)
        assert len(done) == 3  # /reset re-armed the gate: the next request is held again
    t.join(timeout=10)
    # closing the server lets the held request go: answered as the gate shuts or cut off, never left hanging
    assert not t.is_alive() and len(done) + len(cut) == 4 and cut in ([], [3])


# --------------------------------------------------------------------------- as a separate process


def _start_process(tmp_path: Path, cfg: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(cfg))
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "fakeserver.py"),
            "--port",
            "0",
            "--config",
            str(cfg_file),
            "--port-file",
            str(port_file),
        ],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("fakeserver process did not start")
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{int(port_file.read_text())}"


def test_process_mode_counts_calls_of_a_killed_client(tmp_path: Path, litellm: Any) -> None:
    proc, base = _start_process(tmp_path, {"latency_ms": 600_000, "rules": [{"contains": "x", "reply": "y"}]})
    try:
        assert http_json(base + "/health") == {"ok": True}
        client_code = (
            "import httpx, sys\n"
            "httpx.post(sys.argv[1] + '/v1/chat/completions', timeout=600,"
            " json={'model': 'm', 'messages': [{'role': 'user', 'content': 'hang'}]})\n"
        )
        client = subprocess.Popen([sys.executable, "-c", client_code, base])
        deadline = time.monotonic() + 30
        while http_json(base + "/stats")["in_flight"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        client.send_signal(signal.SIGKILL)
        client.wait(10)
        http_json(base + "/config", {"rules": [{"contains": "x", "reply": "y"}]})
        r = litellm.completion(
            model="openai/fake-a",
            api_base=base + "/v1",
            api_key="x",
            num_retries=0,
            max_retries=0,
            messages=[{"role": "user", "content": "x"}],
        )
        assert r.choices[0].message.content == "y"
        st = http_json(base + "/stats")
        assert st["total"] == 2 and st["completed"] == 1 and st["by_outcome"]["ok"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


# --------------------------------------------------------------------------- files and batches API


def _batch_input(texts: list[str]) -> bytes:
    lines = [{"custom_id": f"k{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "m", "messages": [{"role": "user", "content": t}], "temperature": 0}}
             for i, t in enumerate(texts)]
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


def test_batches_through_litellm_complete_fail_and_expire_lines() -> None:
    """litellm's files + batches API against the server: in progress until the delay has passed, then an output
    file of answered lines and an error file of failed and expired ones, in OpenAI's JSONL format."""
    from benchrun.providers import setup_litellm

    litellm = setup_litellm()
    cfg = {"default_reply": "echo {last_user}", "batch": {"delay_s": 0.5, "fail_contains": "boom",
                                                          "expire_contains": "late"}}

    async def go(srv: FakeServer) -> None:
        kw = {"custom_llm_provider": "openai", "api_base": srv.url, "api_key": "sk-test-fake-key-1"}
        f = await litellm.acreate_file(file=("in.jsonl", _batch_input(["hi", "boom", "late"])), purpose="batch", **kw)
        b = await litellm.acreate_batch(completion_window="24h", endpoint="/v1/chat/completions",
                                        input_file_id=f.id, metadata={"t": "1"}, **kw)
        assert b.status == "in_progress" and b.request_counts.total == 3
        assert (await litellm.aretrieve_batch(batch_id=b.id, **kw)).status == "in_progress"
        assert srv.stats()["total"] == 0  # nothing answered before the delay
        await asyncio.sleep(0.6)
        b = await litellm.aretrieve_batch(batch_id=b.id, **kw)
        assert b.status == "expired" and b.metadata == {"t": "1"}
        assert (b.request_counts.completed, b.request_counts.failed) == (1, 2)
        out = [json.loads(x) for x in (await litellm.afile_content(file_id=b.output_file_id, **kw)).content.splitlines()]
        assert [(x["custom_id"], x["response"]["status_code"], x["error"]) for x in out] == [("k0", 200, None)]
        assert out[0]["response"]["body"]["choices"][0]["message"]["content"] == "echo hi"
        err = {x["custom_id"]: x for x in (json.loads(y) for y in
               (await litellm.afile_content(file_id=b.error_file_id, **kw)).content.splitlines())}
        assert err["k1"]["response"]["status_code"] == 500 and err["k1"]["error"] is None
        assert err["k2"]["response"] is None and err["k2"]["error"]["code"] == "batch_expired"
        listed = await litellm.alist_batches(limit=10, **kw)
        assert [x.id for x in listed.data] == [b.id]
        # a second batch, cancelled before it ran: nothing answered
        b2 = await litellm.acreate_batch(completion_window="24h", endpoint="/v1/chat/completions",
                                         input_file_id=f.id, **kw)
        assert (await litellm.acancel_batch(batch_id=b2.id, **kw)).status == "cancelling"
        assert (await litellm.aretrieve_batch(batch_id=b2.id, **kw)).status == "cancelled"

    with FakeServer(cfg) as srv:
        asyncio.run(go(srv))
        st = srv.stats()
        # the expired line never ran; the failed one did, once; the cancelled batch ran nothing
        assert st["by_outcome"] == {"ok": 1, "500": 1}
        assert {r.path for r in srv.requests()} == {"/v1/batches"}
        assert st["batch_calls"]["files_create"] == 1 and st["batch_calls"]["batches_create"] == 2
        assert st["batches"] and set(st["batches"].values()) == {"expired", "cancelled"}


def test_batches_api_refuses_bad_requests() -> None:
    with FakeServer({"batch": {"fail_batch": True}}) as srv:
        r = httpx.post(srv.url + "/batches", json={"input_file_id": "file-nope"})
        assert r.status_code == 400 and "no file" in r.json()["error"]["message"]
        assert httpx.get(srv.url + "/batches/batch_nope").status_code == 404
        assert httpx.get(srv.url + "/files/file-nope/content").status_code == 404
        assert httpx.post(srv.url + "/files", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 400
        f = httpx.post(srv.url + "/files", files={"file": ("in.jsonl", _batch_input(["hi"]))},
                       data={"purpose": "batch"}).json()
        b = httpx.post(srv.url + "/batches", json={"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                                                   "completion_window": "24h"}).json()
        done = httpx.get(srv.url + f"/batches/{b['id']}").json()
        assert done["status"] == "failed" and done["output_file_id"] is None
        assert done["errors"]["data"][0]["code"] == "invalid_request"
        assert srv.stats()["total"] == 0
    with pytest.raises(ValueError, match="batch"):
        FakeServer({"batch": {"delay": 1}})
