"""Deterministic rule checks on a response: must_include, must_not and typed checks."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from benchrun.spec import AnyOf, Case, Check, Pattern


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def run_check(check: Check, response: str) -> RuleOutcome:
    t = check.type
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


def evaluate(case: Case, response: str) -> list[RuleOutcome]:
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
    out.extend(run_check(c, response) for c in case.checks)
    return out
