"""Deterministic rule checks on a response: must_include, must_not and typed checks."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from benchrun.spec import AnyOf, Case, Check, Pattern

if TYPE_CHECKING:
    from benchrun.scoring.sandbox import Sandbox


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    passed: bool
    detail: str = ""
    execution: dict[str, Any] | None = None  # python_tests: the program that ran and what happened (scoring/code.py)
    error: str | None = None  # the rule could not be evaluated (e.g. no sandbox): the result is an error, not a fail

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("execution", "error"):
            if d[k] is None:
                del d[k]
        return d


def _norm(s: str) -> str:
    return " ".join(s.casefold().split())


def _contains(haystack: str, needle: str) -> bool:
    return _norm(needle) in _norm(haystack)


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def extract_json(text: str) -> Any:
    """Parse the first JSON value in ``text`` (a bare object, or one inside a ``` fence)."""
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidates = [fence.group(1)] if fence else []
    candidates.append(text)
    decoder = json.JSONDecoder()
    for cand in candidates:
        cand = cand.strip()
        for i, ch in enumerate(cand):
            if ch in "{[":
                try:
                    value, _ = decoder.raw_decode(cand[i:])
                    return value
                except json.JSONDecodeError:
                    continue
    raise ValueError("no JSON value found")


def run_check(check: Check, response: str, case: Case | None = None, sandbox: Sandbox | None = None) -> RuleOutcome:
    t = check.type
    if t == "python_tests":
        from benchrun.scoring import code

        if case is None:
            raise ValueError("a python_tests check needs its case (for prompt_prefix)")
        r = code.run_python_tests(check, case, response, sandbox)
        return RuleOutcome("python_tests", r["passed"], r["detail"], r["execution"], r["error"])
    if t == "equals":
        a, b = response.strip(), str(check.value).strip()
        ok = a.casefold() == b.casefold() if check.ignore_case else a == b
        return RuleOutcome(f"equals {b!r}", ok, "" if ok else "response differs")
    if t == "contains":
        v = str(check.value)
        ok = _contains(response, v) if check.ignore_case else v in response
        return RuleOutcome(f"contains {v!r}", ok, "" if ok else "not found")
    if t in ("regex", "not_regex"):
        flags = re.IGNORECASE if check.ignore_case else 0
        found = re.search(check.pattern or "", response, flags) is not None
        ok = found if t == "regex" else not found
        return RuleOutcome(f"{t} {check.pattern!r}", ok, "" if ok else ("no match" if t == "regex" else "matched"))
    if t == "json_schema":
        import jsonschema

        try:
            value = extract_json(response)
        except ValueError:
            return RuleOutcome("json_schema", False, "response contains no JSON")
        errors = sorted(jsonschema.Draft202012Validator(check.schema_ or {}).iter_errors(value), key=str)
        if errors:
            return RuleOutcome("json_schema", False, errors[0].message[:200])
        return RuleOutcome("json_schema", True)
    if t == "max_words":
        n = len(response.split())
        ok = n <= (check.max or 0)
        return RuleOutcome(f"max_words {check.max}", ok, f"{n} words")
    if t == "numeric":
        target = float(check.value)  # type: ignore[arg-type]
        nums = [m.group(0).replace(",", "") for m in _NUMBER.finditer(response)]
        if not nums:
            return RuleOutcome(f"numeric {target:g}", False, "no number in response")
        got = float(nums[-1])
        ok = abs(got - target) <= check.tolerance
        return RuleOutcome(f"numeric {target:g}", ok, f"last number {got:g}")
    raise ValueError(f"unknown check type {t}")  # unreachable: validated by the spec


def needs_sandbox(case: Case) -> bool:
    """Whether evaluating this case runs code (slow, blocking: keep it off an event loop)."""
    return any(c.type == "python_tests" for c in case.checks)


async def evaluate_async(case: Case, response: str, sandbox: Sandbox | None = None) -> list[RuleOutcome]:
    """:func:`evaluate` for callers on an event loop: cases that run code go to the sandbox's thread pool
    (one thread per core, independent of model-call concurrency); the others are evaluated inline."""
    if not needs_sandbox(case):
        return evaluate(case, response)
    import asyncio

    from benchrun.scoring import sandbox as sandbox_mod

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(sandbox_mod.executor(), lambda: evaluate(case, response, sandbox))


def evaluate(case: Case, response: str, sandbox: Sandbox | None = None) -> list[RuleOutcome]:
    """All rule outcomes for one response, in a stable order."""
    out: list[RuleOutcome] = []
    for item in case.must_include:
        if isinstance(item, AnyOf):
            ok = any(_contains(response, s) for s in item.any)
            out.append(RuleOutcome(f"must_include any of {item.any}", ok, "" if ok else "none found"))
        else:
            ok = _contains(response, item)
            out.append(RuleOutcome(f"must_include {item!r}", ok, "" if ok else "not found"))
    for bad in case.must_not:
        if isinstance(bad, Pattern):
            m = re.search(bad.regex, response, re.IGNORECASE)
            out.append(RuleOutcome(f"must_not /{bad.regex}/", m is None, f"matched {m.group(0)!r}" if m else ""))
        else:
            found = _contains(response, bad)
            out.append(RuleOutcome(f"must_not {bad!r}", not found, "found" if found else ""))
    out.extend(run_check(c, response, case, sandbox) for c in case.checks)
    return out
