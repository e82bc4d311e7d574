"""Multi-step tool use: call the model, answer its tool calls from the case's script, repeat.

A case with tools is one trajectory. Step 1 sends the case's messages with the tools. When the
model answers with tool calls and the case scripts results (``tool_results``: by the call's
0-based index over the whole trajectory first, else by tool name), each result goes back as a
``tool`` message (calls renumbered ``call_0``, ``call_1``, ... over the trajectory, so identical runs send
identical messages) and the model continues, up to ``max_steps`` model turns. A call with no scripted
result gets ``{"error": "no result scripted for this call"}``. Without any ``tool_results`` the
trajectory is one step: the calls the model chose are what is scored.

It ends ``answered`` (a turn without tool calls), ``tool_calls`` (one-step case ended by calls),
``step_limit`` (still calling tools after ``max_steps`` turns) or ``loop`` (the same call, name and
arguments alike, made `LOOP_REPEATS` times). Each step is one cached call (its key covers the
messages so far and the tools sent), so a re-run or a resume pays for nothing twice. Every
assistant message, tool call and tool result is recorded, in order, with the tools sent.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from benchrun.hashing import canonical_json
from benchrun.providers import CallResult
from benchrun.scoring import tools as tool_scoring
from benchrun.spec import Case, RunSpec
from benchrun.spec_tools import effective_max_steps, effective_tool_choice, effective_tools, wire_tool_choice

LOOP_REPEATS = 3
MAX_RESULT_CHARS = 20_000

Call = Callable[[list[dict[str, Any]], dict[str, Any]], Awaitable[CallResult]]


def has_tools(spec: RunSpec, case: Case) -> bool:
    return effective_tools(spec, case) is not None


def tool_params(spec: RunSpec, case: Case, params: dict[str, Any]) -> dict[str, Any]:
    """The sampling params plus the exact ``tools`` / ``tool_choice`` sent for this case."""
    tools = effective_tools(spec, case) or []
    out = dict(params)
    out["tools"] = [t.wire() for t in tools]
    choice = effective_tool_choice(spec, case)
    if choice is not None:
        out["tool_choice"] = wire_tool_choice(choice)
    return out


def _result_for(case: Case, index: int, name: str) -> str:
    script = case.tool_results or {}
    value: Any
    if str(index) in script:
        value = script[str(index)]
    elif name in script:
        value = script[name]
    else:
        value = {"error": "no result scripted for this call"}
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:MAX_RESULT_CHARS]


def _add(a: Any, b: Any) -> Any:
    return b if a is None else (a if b is None else a + b)


async def run(spec: RunSpec, case: Case, messages: list[dict[str, Any]], params: dict[str, Any],
              call: Call, key: Callable[[list[dict[str, Any]], dict[str, Any]], str] | None = None,
              ) -> tuple[CallResult, dict[str, Any]]:
    """Play one case's trajectory; returns the combined call result (final text, summed usage) and the
    trajectory record (tools sent, steps, how it ended, its score, and with ``key`` each step's cache key,
    for `ledger copy`)."""
    p = tool_params(spec, case, params)
    max_steps = effective_max_steps(spec, case) if case.tool_results is not None else 1
    convo = [dict(m) for m in messages]
    steps: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    total = CallResult(text=None, prompt_tokens=None, completion_tokens=None, cost_usd=0.0, latency_ms=0.0)
    all_cached = True
    end = "answered"
    final = ""
    cost_unknown = False
    fresh = 0.0  # paid in this process (steps not served from the cache)
    keys: list[str] = []
    for _step in range(max_steps):
        if key is not None:
            keys.append(key(convo, p))
        res = await call(convo, p)
        total.retries += res.retries
        total.attempts += res.attempts
        total.latency_ms = _add(total.latency_ms, res.latency_ms)
        if not res.ok:
            total.error = res.error
            total.cached = False
            break
        all_cached = all_cached and res.cached
        total.prompt_tokens = _add(total.prompt_tokens, res.prompt_tokens)
        total.completion_tokens = _add(total.completion_tokens, res.completion_tokens)
        total.tokens_estimated = total.tokens_estimated or res.tokens_estimated
        total.resolved_model = res.resolved_model or total.resolved_model
        if res.cost_usd is None:
            cost_unknown = True
        else:
            total.cost_usd = (total.cost_usd or 0.0) + res.cost_usd
            if not res.cached:
                fresh += res.cost_usd
        step_calls = [tool_scoring.normalise_call(tc, len(calls) + k) for k, tc in enumerate(res.tool_calls or [])]
        for c in step_calls:  # ids the provider drew at random would make every later step's messages (so its
            c["provider_id"], c["id"] = c["id"], f"call_{c['index']}"  # cache key) differ between identical runs
        final = res.text or ""
        assistant: dict[str, Any] = {"role": "assistant", "content": res.text or None}
        if step_calls:
            assistant["tool_calls"] = [{"id": c["id"], "type": "function",
                                        "function": {"name": c["name"], "arguments": c["arguments"]}}
                                       for c in step_calls]
        steps.append({"role": "assistant", "content": res.text or "",
                      "tool_calls": [{k: c[k] for k in ("index", "id", "provider_id", "name", "arguments")}
                                     for c in step_calls]})
        if not step_calls:
            end = "answered"
            break
        calls.extend(step_calls)
        looped = False
        for c in step_calls:
            parsed, _ = tool_scoring.parse_arguments(c["arguments"])  # the same arguments however they are spaced
            sig = canonical_json([c["name"], parsed if parsed is not None else c["arguments"]])
            seen[sig] = seen.get(sig, 0) + 1
            looped = looped or seen[sig] >= LOOP_REPEATS
        if looped:
            end = "loop"
            break
        if case.tool_results is None:
            end = "tool_calls"
            break
        convo.append(assistant)
        for c in step_calls:
            result = _result_for(case, c["index"], c["name"])
            convo.append({"role": "tool", "tool_call_id": c["id"], "content": result})
            steps.append({"role": "tool", "tool_call_id": c["id"], "name": c["name"], "call_index": c["index"],
                          "content": result})
    else:
        end = "step_limit"
    total.cached = all_cached and total.error is None
    if cost_unknown:
        total.cost_usd = None
    record: dict[str, Any] = {"tools": p["tools"], "tool_choice": p.get("tool_choice"), "max_steps": max_steps,
                              "steps": steps, "end": end, "n_steps": sum(1 for s in steps if s["role"] == "assistant")}
    if key is not None:
        record["cache_keys"] = keys
    record["fresh_cost_usd"] = fresh
    if total.error is None:
        total.text = final
        tools = effective_tools(spec, case)
        record["score"] = tool_scoring.score_calls(case, tools, calls, end)
    return total, record


def worst_case_steps(spec: RunSpec, case: Case, prompt_tokens: int, max_tokens: int,
                     cost: Callable[[int, int], float | None]) -> float | None:
    """Upper bound on the cost of a scripted trajectory, for the budget: ``max_steps`` calls, step k's prompt
    the case's plus k times (an answer of ``max_tokens`` + the longest scripted result, as tokens)."""
    from benchrun.providers import count_tokens

    results = [v if isinstance(v, str) else json.dumps(v) for v in (case.tool_results or {}).values()]
    per_round = max_tokens + max([count_tokens(r[:MAX_RESULT_CHARS]) + 8 for r in results] or [0])
    total = 0.0
    for k in range(effective_max_steps(spec, case)):
        c = cost(prompt_tokens + k * per_round, max_tokens)
        if c is None:
            return None
        total += c
    return total
