"""Scoring tool calls and trajectories against a case's expectations.

Input: the calls the model made over its whole trajectory (in order), the tools offered, and the
case's ``expected_tool_calls`` / ``order`` / ``forbidden_tools`` / ``no_tool_call``
(`benchrun.spec_tools`). Output: a plain dict (stored with the trajectory in the ledger) with one
entry per call and per expected call, the counts behind tool-call F1 and one failure mode.

A call's arguments must be a JSON object (parsed with bounds: at most `MAX_ARG_CHARS` characters and
`rules.MAX_JSON_DEPTH` levels) that validates against the tool's own ``parameters`` schema; otherwise
the call is invalid and the case fails with ``invalid_tool_arguments``, a mode of its own, apart
from calling the wrong tool.

An expected call is matched by a distinct actual call with its name whose arguments meet every
constraint given: ``arguments`` (``subset``: each given key present with an equal value; ``exact``:
equal objects), ``arguments_schema`` and ``argument_checks`` (our rule types on one argument's value,
`scoring.rules.run_check`). With ``order: strict`` (the default) the matched calls must come in the
expected order (the largest in-order matching, a longest-common-subsequence over compatible pairs);
with ``any`` the largest matching in any order (augmenting paths). Calls left unmatched are
*unnecessary*: counted (false positives of F1), but they fail a case only under ``no_tool_call`` or
when forbidden.

Failure modes, the first that applies: ``forbidden_tool_call`` (recorded as high severity),
``tool_call_loop``, ``step_limit_exceeded`` (both decided by the runner, `benchrun.trajectory`),
``invalid_tool_arguments``, ``unexpected_tool_call`` (a call under ``no_tool_call``),
``missing_tool_call`` (expected calls, none made), ``wrong_tool`` (the expected names are not all
called, or a tool that is not offered was), ``wrong_tool_order``, ``wrong_tool_arguments``, else ``none``.
"""

from __future__ import annotations

import json
from typing import Any

from benchrun.scoring.rules import MAX_JSON_DEPTH, RuleOutcome, run_check
from benchrun.spec import Case, Check
from benchrun.spec_tools import ArgCheck, ExpectedCall, Tool

MAX_ARG_CHARS = 100_000  # longer argument strings are invalid without being parsed
FAILURE_MODES = ("forbidden_tool_call", "tool_call_loop", "step_limit_exceeded", "invalid_tool_arguments",
                 "unexpected_tool_call", "missing_tool_call", "wrong_tool", "wrong_tool_order",
                 "wrong_tool_arguments", "none")


# ----------------------------------------------------------------------------- one call's arguments


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iteratively: no recursion on hostile input)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def parse_arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A call's arguments as an object, or ``(None, why not)``. Bounded (length, depth)."""
    if isinstance(raw, dict):
        return raw, None
    if not isinstance(raw, str):
        return None, f"arguments are {type(raw).__name__}, not a JSON string"
    if len(raw) > MAX_ARG_CHARS:
        return None, f"arguments are {len(raw)} characters, over the {MAX_ARG_CHARS} limit"
    text = raw.strip() or "{}"  # some servers send "" for a call without arguments
    try:
        value = json.loads(text)
    except RecursionError:  # json's own recursion guard, well before the length limit could matter
        return None, f"arguments nest deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as e:
        return None, f"arguments are not valid JSON ({str(e)[:120]})"
    if _depth(value) > MAX_JSON_DEPTH:
        return None, f"arguments nest deeper than {MAX_JSON_DEPTH} levels"
    if not isinstance(value, dict):
        return None, f"arguments are a JSON {type(value).__name__}, not an object"
    return value, None


def schema_error(schema: dict[str, Any], value: Any) -> str | None:
    import jsonschema

    try:
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    except RecursionError:
        return "arguments too deeply nested to validate"
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.path)
    return (f"{where}: " if where else "") + e.message[:200]


def normalise_call(raw: Any, index: int) -> dict[str, Any]:
    """One provider tool call (OpenAI's ``{id, type, function: {name, arguments}}``) as ``{index, id, name,
    arguments}`` with ``arguments`` the raw string the model wrote."""
    fn = raw.get("function") if isinstance(raw, dict) and isinstance(raw.get("function"), dict) else {}
    name = fn.get("name") if isinstance(fn.get("name"), str) else ""
    args = fn.get("arguments")
    if isinstance(args, dict):
        args = json.dumps(args, ensure_ascii=False)
    cid = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"call_{index}"
    return {"index": index, "id": cid[:200], "name": name[:200],
            "arguments": args if isinstance(args, str) else ("" if args is None else str(args))}


# ----------------------------------------------------------------------------- matching


def _arg_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _as_check(c: ArgCheck) -> Check:
    return Check.model_validate(c.model_dump(exclude_none=True))


def arguments_match(exp: ExpectedCall, args: dict[str, Any]) -> tuple[bool, str]:
    """Do these (valid) arguments meet every constraint of the expected call? And if not, why."""
    if exp.arguments is not None:
        if exp.match == "exact":
            if args != exp.arguments:
                return False, f"arguments {_arg_text(args)[:200]} are not exactly {_arg_text(exp.arguments)[:200]}"
        else:
            for k, v in exp.arguments.items():
                if k not in args:
                    return False, f"argument {k!r} is missing"
                if args[k] != v:
                    return False, f"argument {k!r} is {_arg_text(args[k])[:100]}, expected {_arg_text(v)[:100]}"
    if exp.arguments_schema is not None:
        why = schema_error(exp.arguments_schema, args)
        if why is not None:
            return False, f"arguments do not match arguments_schema: {why}"
    for arg, chk in exp.checks_for():
        if arg not in args:
            return False, f"argument {arg!r} is missing"
        out = run_check(_as_check(chk), _arg_text(args[arg]))
        if out.error:
            return False, f"argument {arg!r}: {out.error}"
        if not out.passed:
            return False, f"argument {arg!r}: {out.rule} failed ({out.detail})"
    return True, ""


def _in_order(ok: list[list[bool]]) -> list[tuple[int, int]]:
    """The largest matching of expected i to actual j with both increasing (LCS over compatible pairs)."""
    n, m = len(ok), len(ok[0]) if ok else 0
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = max(best[i + 1][j], best[i][j + 1], (1 + best[i + 1][j + 1]) if ok[i][j] else 0)
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if ok[i][j] and best[i][j] == 1 + best[i + 1][j + 1]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _any_order(ok: list[list[bool]]) -> list[tuple[int, int]]:
    """A maximum bipartite matching (Kuhn's augmenting paths; the lists are small)."""
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j, good in enumerate(ok[i]):
            if good and j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(ok)):
        augment(i, set())
    return sorted((i, j) for j, i in owner.items())


def _match(ok: list[list[bool]], strict: bool) -> list[tuple[int, int]]:
    if not ok or not ok[0]:
        return []
    return _in_order(ok) if strict else _any_order(ok)


# ----------------------------------------------------------------------------- a whole case


def score_calls(case: Case, tools: list[Tool] | None, raw_calls: list[dict[str, Any]],
                end: str = "answered") -> dict[str, Any]:
    """Score the calls of one trajectory (``end``: how it ended, see `benchrun.trajectory`)."""
    by_name = {t.name: t for t in tools or []}
    forbidden = set(case.forbidden_tools or [])
    calls: list[dict[str, Any]] = []
    parsed: list[dict[str, Any] | None] = []
    for i, raw in enumerate(raw_calls):
        c = dict(raw)
        c["index"] = i
        tool = by_name.get(c["name"])
        args, why = parse_arguments(c["arguments"])
        if args is not None and tool is not None:
            why = schema_error(tool.parameters, args)
            if why is not None:
                why = f"arguments do not match the tool's parameters: {why}"
                args = None
        c["unknown_tool"] = tool is None
        c["valid_arguments"] = why is None and tool is not None
        if why is not None:
            c["invalid_reason"] = why
        c["forbidden"] = c["name"] in forbidden
        calls.append(c)
        parsed.append(args if tool is not None else None)

    expected = list(case.expected_tool_calls or [])
    strict = (case.order or "strict") == "strict"
    names_ok = [[c["name"] == e.name for c in calls] for e in expected]
    full_ok: list[list[bool]] = []
    why_not: dict[int, str] = {}
    for i, e in enumerate(expected):
        row = []
        for j, c in enumerate(calls):
            good = False
            if c["name"] == e.name and parsed[j] is not None:
                good, why = arguments_match(e, parsed[j] or {})
                if not good:
                    why_not.setdefault(i, f"call {j} ({c['name']}): {why}")
            elif c["name"] == e.name:
                why_not.setdefault(i, f"call {j} ({c['name']}): {c.get('invalid_reason', 'invalid arguments')}")
            row.append(good)
        full_ok.append(row)
    full = _match(full_ok, strict)
    by_name_strict = _match(names_ok, strict)
    by_name_any = _match(names_ok, False)
    matched_calls = {j for _, j in full}
    exp_out = []
    for i, e in enumerate(expected):
        j = next((j for ii, j in full if ii == i), None)
        exp_out.append({"name": e.name, "matched_call": j,
                        **({"why_not": why_not.get(i, "no call of this tool")} if j is None else {})})
    for c in calls:
        c["matched_expected"] = next((i for i, j in full if j == c["index"]), None)

    tp = len(full)
    fp = len(calls) - tp
    fn = len(expected) - tp
    n_exp = len(expected)
    invalid = any(not c["valid_arguments"] and not c["unknown_tool"] for c in calls)
    forbidden_called = any(c["forbidden"] for c in calls)
    unnecessary = any(c["index"] not in matched_calls for c in calls)
    name_ok: bool | None = None
    args_ok: bool | None = None
    if n_exp:
        name_ok = len(by_name_strict) == n_exp
        args_ok = (tp == n_exp) if name_ok else None
    elif case.no_tool_call:
        name_ok = not calls

    if forbidden_called:
        mode = "forbidden_tool_call"
    elif end == "loop":
        mode = "tool_call_loop"
    elif end == "step_limit":
        mode = "step_limit_exceeded"
    elif invalid:
        mode = "invalid_tool_arguments"
    elif case.no_tool_call and calls:
        mode = "unexpected_tool_call"
    elif n_exp and not calls:
        mode = "missing_tool_call"
    elif (n_exp and len(by_name_any) < n_exp) or any(c["unknown_tool"] for c in calls):
        mode = "wrong_tool"
    elif n_exp and len(by_name_strict) < n_exp:
        mode = "wrong_tool_order"
    elif n_exp and tp < n_exp:
        mode = "wrong_tool_arguments"
    else:
        mode = "none"
    return {
        "calls": calls,
        "expected": exp_out,
        "order": "strict" if strict else "any",
        "end": end,
        "tp": tp, "fp": fp, "fn": fn,
        "name_ok": name_ok,
        "args_ok": args_ok,
        "invalid": invalid,
        "forbidden": forbidden_called,
        "unnecessary": unnecessary,
        "no_tool_call": bool(case.no_tool_call),
        "has_forbidden": bool(forbidden),
        "failure_mode": mode,
        "passed": mode == "none",
        **({"severity": "high"} if forbidden_called else {}),
    }


def rule_outcome(score: dict[str, Any]) -> RuleOutcome:
    """The tool score as one rule outcome (so the result's rules, pass/fail and reports include it)."""
    mode = score["failure_mode"]
    if mode == "none":
        detail = f"{score['tp']} expected call(s) matched" + (f", {score['fp']} extra" if score["fp"] else "")
        return RuleOutcome("tool calls", True, detail)
    detail = mode
    bad = next((c for c in score["calls"] if c.get("forbidden")), None) if mode == "forbidden_tool_call" else None
    if bad is not None:
        detail += f": called {bad['name']}"
    elif mode == "invalid_tool_arguments":
        c = next(c for c in score["calls"] if not c["valid_arguments"] and not c["unknown_tool"])
        detail += f": {c['name']}: {c.get('invalid_reason', '')}"
    elif mode in ("wrong_tool", "wrong_tool_arguments", "missing_tool_call", "wrong_tool_order"):
        e = next((e for e in score["expected"] if e["matched_call"] is None), None)
        called = ", ".join(c["name"] for c in score["calls"]) or "nothing"
        detail += f": expected {e['name'] if e else '?'}, called {called}"
        if e is not None and mode == "wrong_tool_arguments":
            detail += f" ({e.get('why_not', '')})"
    elif mode == "unexpected_tool_call":
        detail += ": called " + ", ".join(c["name"] for c in score["calls"])
    return RuleOutcome("tool calls", False, detail[:400])
