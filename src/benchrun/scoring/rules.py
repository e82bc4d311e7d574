"""Deterministic rule checks on a response: must_include, must_not and typed checks."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
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
    extracted: str | None = None  # numeric / equals: the answer as extracted or normalised before comparing
    extracted_by: str | None = None  # the rule that extracted it (e.g. "after ####", "last number")
    unparsed: bool = False  # multiple choice: the answer names no choice, or several (counted apart from fails)

    def to_dict(self) -> dict[str, Any]:
        # what `dataclasses.asdict` gives (the fields in order, ``execution`` copied deeply), at a tenth of its
        # cost: asdict recurses into every value, and a run converts one outcome per rule per answer
        d = {k: getattr(self, k) for k in _OUTCOME_FIELDS}
        if self.execution is not None:
            d["execution"] = copy.deepcopy(self.execution)
        for k in ("execution", "error", "extracted", "extracted_by"):
            if d[k] is None:
                del d[k]
        if not d["unparsed"]:
            del d["unparsed"]
        return d


_OUTCOME_FIELDS = tuple(f.name for f in fields(RuleOutcome))


def _norm(s: str) -> str:
    return " ".join(s.casefold().split())


def _contains(haystack: str, needle: str) -> bool:
    return _norm(needle) in _norm(haystack)


MAX_JSON_DEPTH = 100  # brackets open at once; deeper values are refused before json (or jsonschema) recurses
MAX_JSON_CHARS = 2_000_000  # longer texts are not searched for JSON at all


@dataclass
class JsonScan:
    """What a search for JSON values did: ``steps`` characters examined (at most ``budget``)."""

    steps: int = 0
    budget: int = 0
    too_deep: bool = False
    exhausted: bool = False


def iter_json(text: str, scan: JsonScan | None = None) -> Iterator[Any]:
    """Every top-level JSON object or array in ``text``, in order of position.

    Bounded: texts over `MAX_JSON_CHARS` raise `ValueError`; values nested deeper than
    `MAX_JSON_DEPTH` are skipped (``scan.too_deep``) without being parsed; the search examines at
    most ``8 * len(text) + 10_000`` characters in all (``scan.exhausted`` when that ran out), so
    its cost is linear in the text whatever the text is. Only a span whose brackets balance
    (outside strings) is handed to `json.loads`.
    """
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"text of {len(text)} characters is over the {MAX_JSON_CHARS} limit for JSON")
    scan = scan if scan is not None else JsonScan()
    scan.budget = 8 * len(text) + 10_000
    n, pos = len(text), 0
    # Fast path: a value that `json`'s C decoder reads at an opener is the value the scan below finds there
    # (its brackets balance outside strings exactly where the value ends), taken when the scan would take it:
    # not too deep (at most MAX_JSON_DEPTH openers in it) and within the step budget, charged as the scan
    # would (one step per character). Failed attempts are charged to a budget of their own (at most the rest
    # of the text each, 2 * len(text) in all), so that the search stays linear in the text.
    fast_budget = 2 * n
    while pos < n:
        m = _OPENER.search(text, pos)
        if m is None:
            return
        start = j = m.start()
        if fast_budget > 0:
            try:
                value, e = _DECODER.raw_decode(text, start)
            except (ValueError, RecursionError):
                fast_budget -= n - start
            else:
                if scan.steps + (e - start) <= scan.budget and \
                        text.count("{", start, e) + text.count("[", start, e) <= MAX_JSON_DEPTH:
                    scan.steps += e - start
                    yield value
                    pos = e
                    continue
                fast_budget -= e - start
        stack: list[str] = []
        in_str = esc = False
        end = -1
        while j < n:
            scan.steps += 1
            if scan.steps > scan.budget:
                scan.exhausted = True
                return
            ch = text[j]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch in "{[":
                stack.append(ch)
                if len(stack) > MAX_JSON_DEPTH:
                    scan.too_deep = True
                    break
            elif ch in "}]":
                if not stack or (stack[-1] == "{") != (ch == "}"):
                    break
                stack.pop()
                if not stack:
                    end = j + 1
                    break
            j += 1
        if end > 0:
            try:
                value = json.loads(text[start:end])
            except ValueError:  # not JSON (or a number too long for int()): look for a value starting later
                pass
            else:
                yield value
                pos = end
                continue
        # too deep: no value starts inside this run of brackets within the depth limit; else try the next opener
        pos = j if len(stack) > MAX_JSON_DEPTH else start + 1


_OPENER = re.compile(r"[\[{]")
_DECODER = json.JSONDecoder()


def extract_json(text: str) -> Any:
    """Parse the first JSON value in ``text`` (one inside a ``` fence first, else a bare one); bounded (`iter_json`)."""
    fence = re.search(r"```(?:json)?\s*(.*?)```", text[:MAX_JSON_CHARS], re.DOTALL)
    scan = JsonScan()
    for cand in ([fence.group(1)] if fence else []) + [text]:
        for value in iter_json(cand, scan):
            return value
    if scan.too_deep:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    raise ValueError("no JSON value found")


REGEX_TIMEOUT_S = 0.5  # one rule regex on one answer; catastrophic backtracking becomes an error, not a stall


def bounded_search(pattern: str, text: str, ignore_case: bool = True) -> Any:
    """`regex.search` with a time limit (raises `TimeoutError`): a rule pattern such as ``^(\\w+\\s?)*$`` can
    backtrack exponentially on a short answer, and rules run on the event loop that drives every call."""
    import regex

    flags = regex.IGNORECASE if ignore_case else 0
    return regex.search(pattern, text, flags, timeout=REGEX_TIMEOUT_S, concurrent=True)  # concurrent: GIL released


def _regex_timeout_message(rule: str) -> str:
    return (f"check {rule} took over {REGEX_TIMEOUT_S:g}s on this answer (catastrophic backtracking); "
            "simplify the pattern, e.g. remove nested quantifiers such as (\\w+\\s?)*")


def run_check(check: Check, response: str, case: Case | None = None, sandbox: Sandbox | None = None) -> RuleOutcome:
    t = check.type
    if t == "python_tests":
        from benchrun.scoring import code

        if case is None:
            raise ValueError("a python_tests check needs its case (for prompt_prefix)")
        r = code.run_python_tests(check, case, response, sandbox)
        return RuleOutcome("python_tests", r["passed"], r["detail"], r["execution"], r["error"])
    if t in ("equals", "equals_any") and (check.normalize is not None or t == "equals_any"):
        return _equals_normalised(check, response)
    if t == "equals":
        a, b = response.strip(), str(check.value).strip()
        ok = a.casefold() == b.casefold() if check.ignore_case else a == b
        return RuleOutcome(f"equals {b!r}", ok, "" if ok else "response differs")
    if t == "contains":
        v = str(check.value)
        ok = _contains(response, v) if check.ignore_case else v in response
        return RuleOutcome(f"contains {v!r}", ok, "" if ok else "not found")
    if t in ("regex", "not_regex"):
        name = f"{t} {check.pattern!r}"
        try:
            m = bounded_search(check.pattern or "", response, check.ignore_case)
        except TimeoutError:
            return RuleOutcome(name, False, error=_regex_timeout_message(f"{t} /{check.pattern}/"))
        found = m is not None
        ok = found if t == "regex" else not found
        return RuleOutcome(name, ok, "" if ok else ("no match" if t == "regex" else "matched"))
    if t == "json_schema":
        import jsonschema

        try:
            value = extract_json(response)
        except ValueError as e:
            return RuleOutcome("json_schema", False, f"response contains no usable JSON ({e})")
        errors = sorted(jsonschema.Draft202012Validator(check.schema_ or {}).iter_errors(value), key=str)
        if errors:
            return RuleOutcome("json_schema", False, errors[0].message[:200])
        return RuleOutcome("json_schema", True)
    if t == "max_words":
        n = len(response.split())
        ok = n <= (check.max or 0)
        return RuleOutcome(f"max_words {check.max}", ok, f"{n} words")
    if t == "numeric":
        from benchrun.scoring.extract import extract_number, numbers_match

        target = float(check.value)  # type: ignore[arg-type]
        name = f"numeric {target:g}"
        num = extract_number(response)
        if num is None:
            return RuleOutcome(name, False, "no number in response")
        ok = numbers_match(num.value, target, check.tolerance, check.rel_tolerance or 0.0)
        tol = f"tolerance {check.tolerance:g}" + (f", rel {check.rel_tolerance:g}" if check.rel_tolerance else "")
        detail = (f"{num.rule} {num.shown()}" if ok
                  else f"extracted {num.shown()} ({num.rule}, written {num.text!r}) != {target:g} ({tol})")
        return RuleOutcome(name, ok, detail, extracted=num.shown(), extracted_by=num.rule)
    raise ValueError(f"unknown check type {t}")  # unreachable: validated by the spec


def _equals_normalised(check: Check, response: str) -> RuleOutcome:
    """``equals`` with ``normalize`` and ``equals_any``: both sides normalised the same way, then compared."""
    from benchrun.scoring.extract import normalise

    steps: list[str] = list(check.normalize) if check.normalize is not None else ["whitespace"]
    if check.normalize is None and check.ignore_case:
        steps.append("case")  # equals_any without normalize: what plain equals does (strip, ignore_case)
    accepted = list(check.values or []) if check.type == "equals_any" else [str(check.value)]
    got = normalise(response, steps)
    targets = [normalise(a, steps) for a in accepted]
    ok = got in targets
    name = (f"equals_any {accepted!r}" if check.type == "equals_any" else f"equals {str(check.value)!r}")
    how = "normalised: " + ", ".join(steps)
    if ok:
        return RuleOutcome(name, True, how, extracted=got[:500], extracted_by=how)
    shown = got if len(got) <= 80 else got[:77] + "..."
    want = ", ".join(repr(x) for x in targets[:5]) + (" ..." if len(targets) > 5 else "")
    return RuleOutcome(name, False, f"{shown!r} is not {'any of ' if len(targets) > 1 else ''}{want} ({how})",
                       extracted=got[:500], extracted_by=how)


def uses_regex(case: Case) -> bool:
    return any(isinstance(b, Pattern) for b in case.must_not) or any(c.type in ("regex", "not_regex")
                                                                    for c in case.checks)


def needs_sandbox(case: Case) -> bool:
    """Whether evaluating this case runs code (slow, blocking: keep it off an event loop)."""
    return any(c.type == "python_tests" for c in case.checks)


async def evaluate_async(case: Case, response: str, sandbox: Sandbox | None = None) -> list[RuleOutcome]:
    """:func:`evaluate` for callers on an event loop: cases that run code go to the sandbox's thread pool
    (one thread per core, independent of model-call concurrency); the others are evaluated inline."""
    import asyncio

    if not needs_sandbox(case):
        if uses_regex(case):  # a slow pattern (up to its timeout) must not hold up every other call's progress
            return await asyncio.to_thread(evaluate, case, response)
        return evaluate(case, response)

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
            name = f"must_not /{bad.regex}/"
            try:
                m = bounded_search(bad.regex, response)
            except TimeoutError:
                out.append(RuleOutcome(name, False, error=_regex_timeout_message(name)))
                continue
            out.append(RuleOutcome(name, m is None, f"matched {m.group(0)!r}" if m else ""))
        else:
            found = _contains(response, bad)
            out.append(RuleOutcome(f"must_not {bad!r}", not found, "found" if found else ""))
    out.extend(run_check(c, response, case, sandbox) for c in case.checks)
    if case.choices is not None:
        out.append(choice_outcome(case, response))
    return out


def choice_outcome(case: Case, response: str) -> RuleOutcome:
    """Multiple choice: the letter the answer names (see `extract.extract_choice`) against the case's answer."""
    from benchrun.scoring.extract import LETTERS, extract_choice

    assert case.choices is not None
    want = case.answer_index()
    name = f"choice {LETTERS[want]}"
    got = extract_choice(response, case.choices)
    if got.index is None:
        return RuleOutcome(name, False, f"unparsed: {got.rule}", extracted_by=got.rule, unparsed=True)
    ok = got.index == want
    return RuleOutcome(name, ok, "" if ok else f"chose {got.letter} ({got.rule}), the answer is {LETTERS[want]}",
                       extracted=got.letter, extracted_by=got.rule)
