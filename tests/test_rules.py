"""Deterministic rules and judge-answer parsing."""

from __future__ import annotations

from typing import Any

import pytest

from benchrun.scoring import judge, rules
from benchrun.spec import Case, Check, Rubric
from conftest import RUBRIC


def outcome(check: dict, response: str) -> bool:
    return rules.run_check(Check.model_validate(check), response).passed


@pytest.mark.parametrize(
    ("check", "response", "expected"),
    [
        ({"type": "equals", "value": "Yes"}, " yes ", True),
        ({"type": "equals", "value": "Yes", "ignore_case": False}, "yes", False),
        ({"type": "contains", "value": "billing portal"}, "Open the Billing   Portal now", True),
        ({"type": "contains", "value": "ticket"}, "no", False),
        ({"type": "regex", "pattern": r"\b5-7 business days\b"}, "within 5-7 business days", True),
        ({"type": "not-regex", "pattern": r"card ending in \d{4}"}, "your card ending in 4242", False),
        ({"type": "not_regex", "pattern": r"card ending in \d{4}"}, "update it in the portal", True),
        ({"type": "max_words", "max": 5}, "one two three four five", True),
        ({"type": "max_words", "max": 5}, "one two three four five six", False),
        ({"type": "numeric", "value": 12.5, "tolerance": 0.01}, "The prorated amount is $12.50.", True),
        ({"type": "numeric", "value": 1200}, "You owe 1,200 dollars", True),
        ({"type": "numeric", "value": 12.5}, "About 13 dollars", False),
        ({"type": "numeric", "value": 3}, "no digits here", False),
        ({"type": "json_schema", "schema": {"type": "object", "required": ["action"]}},
         'Here:\n```json\n{"action": "escalate"}\n```', True),
        ({"type": "json_schema", "schema": {"type": "object", "required": ["action"]}}, '{"other": 1}', False),
        ({"type": "json_schema", "schema": {"type": "object"}}, "not json", False),
    ],
)
def test_checks(check: dict, response: str, expected: bool) -> None:
    assert outcome(check, response) is expected


def test_must_include_any_and_must_not() -> None:
    case = Case.model_validate({
        "id": "x", "input": "q",
        "must_include": ["ticket", {"any": ["billing portal", "Settings > Billing"]}],
        "must_not": ["I have refunded", {"regex": r"card ending in \d{4}"}],
    })
    ok = rules.evaluate(case, "Open a ticket or go to Settings > Billing.")
    assert [o.passed for o in ok] == [True, True, True, True]
    bad = rules.evaluate(case, "I have refunded it to your card ending in 4242")
    assert [o.passed for o in bad] == [False, False, False, False]


def test_bad_check_spec_is_rejected() -> None:
    with pytest.raises(ValueError, match="needs 'max'"):
        Check.model_validate({"type": "max_words"})
    with pytest.raises(ValueError, match="invalid schema"):
        Check.model_validate({"type": "json_schema", "schema": {"type": "nonsense"}})


def test_parse_verdict_and_pass_rule() -> None:
    rb = Rubric.model_validate(RUBRIC)
    v = judge.parse_verdict(rb, 'Sure! {"score": 4, "pass": true, "reason": "ok", "failure_mode": "none"}')
    assert v.passed and v.score == 4
    v2 = judge.parse_verdict(rb, '{"score": 5, "pass": true, "reason": "r", "failure_mode": "unsafe_account_action"}')
    assert not v2.passed  # forbidden failure mode overrides a high score
    v3 = judge.parse_verdict(rb, '{"score": 3, "pass": true, "reason": "r", "failure_mode": "none"}')
    assert not v3.passed  # below min_score
    for bad in ("no json here", '{"score": 7, "pass": true, "reason": "r", "failure_mode": "none"}',
                '{"score": 4, "pass": true, "reason": "r", "failure_mode": "made_up"}', '{"score": 4}', "[1, 2]"):
        with pytest.raises(judge.JudgeFormatError):
            judge.parse_verdict(rb, bad)


def test_verdict_fast_path_agrees_with_jsonschema() -> None:
    """`judge._plainly_valid` (which spares jsonschema the common valid reply) accepts only what jsonschema
    itself accepts under the rubric's schema, and every verdict parses to the same outcome and error as before."""
    import json

    import jsonschema

    rb = Rubric.model_validate(RUBRIC)
    schema = rb.effective_schema()
    base = {"score": 4, "pass": True, "reason": "ok", "failure_mode": "none"}
    variants: list[object] = [base, {**base, "score": 1}, {**base, "score": 5}, {**base, "score": 0}, {**base, "score": 6},
                              {**base, "score": 4.0}, {**base, "score": 4.5}, {**base, "score": True}, {**base, "score": "4"},
                              {**base, "pass": 1}, {**base, "pass": None}, {**base, "reason": 3}, {**base, "reason": ""},
                              {**base, "failure_mode": "made_up"}, {**base, "failure_mode": None}, {**base, "extra": 1},
                              {k: v for k, v in base.items() if k != "reason"}, {}, [base], "text", 4]
    fast_valid = 0
    for v in variants:
        valid = isinstance(v, dict) and not list(jsonschema.Draft202012Validator(schema).iter_errors(v))
        if isinstance(v, dict) and judge._plainly_valid(rb, v):
            fast_valid += 1
            assert valid, v  # never accepts what jsonschema refuses
        text = json.dumps(v)
        if valid and isinstance(v, dict) and 1 <= int(v["score"]) <= 5 and v["failure_mode"] in rb.failure_modes:
            assert judge.parse_verdict(rb, text).score == int(v["score"])
        else:
            with pytest.raises(judge.JudgeFormatError):
                judge.parse_verdict(rb, text)
    assert fast_valid == 4  # the four plain valid replies (scores 4, 1, 5; an empty reason) took the fast path, 4.0 not
    assert judge.parse_verdict(rb, json.dumps({**base, "score": 4.0})).score == 4  # jsonschema's path, as before
    custom = Rubric.model_validate({**RUBRIC, "response_schema": schema})
    assert not judge._plainly_valid(custom, base)  # a rubric's own schema always goes through jsonschema


def test_judge_prompt_is_blind() -> None:
    rb = Rubric.model_validate(RUBRIC)
    case = Case.model_validate({"id": "x", "input": "Why two charges?", "ideal": "explain"})
    msgs = judge.judge_messages(rb, case, "An answer")
    text = " ".join(m["content"] for m in msgs)
    assert "Why two charges?" in text and "An answer" in text and "explain" in text
    assert "model" not in text.lower().replace("failure_mode", "")


def _scan_reference(text: str, scan: Any) -> list[Any]:
    """`rules.iter_json` as it was before its fast path: the character scan alone (the specification)."""
    import json

    from benchrun.scoring.rules import MAX_JSON_DEPTH

    out: list[Any] = []
    scan.budget = 8 * len(text) + 10_000
    n, pos = len(text), 0
    while pos < n:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return out
        start = j = min(starts)
        stack: list[str] = []
        in_str = esc = False
        end = -1
        while j < n:
            scan.steps += 1
            if scan.steps > scan.budget:
                scan.exhausted = True
                return out
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
                out.append(json.loads(text[start:end]))
            except ValueError:
                pass
            else:
                pos = end
                continue
        pos = j if len(stack) > MAX_JSON_DEPTH else start + 1
    return out


def test_iter_json_fast_path_finds_what_the_character_scan_finds() -> None:
    """`iter_json` reads values with json's C decoder where it can; it must find exactly the values the
    character scan finds, and report the same steps, depth and budget outcome, on any text."""
    import random

    from benchrun.scoring.rules import JsonScan, iter_json

    frags = ["{", "}", "[", "]", '"', "\\", ",", ":", " ", "x", "1", '"a"', '{"score": 5}', "[1, 2]", "null", "NaN",
             '{"a": [1, {"b": "}"}]}', "1e999999", '"\\u00e9"', "\n", '{"k": "v\\"}"}', "[[[", "]]]", "true",
             "9" * 23, "\t", '{"x": "\x01"}']
    rng = random.Random(7)
    texts = ["".join(rng.choice(frags) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    texts += ["[" * d + "1" + "]" * d + ' {"after": 1}' for d in (99, 100, 101)]  # at and past MAX_JSON_DEPTH
    texts += [("[" + "x" * 2000) * 40, ('{"k": "' + "y" * 500) * 50]  # the step budget runs out
    found = 0
    for text in texts:
        fast, ref = JsonScan(), JsonScan()
        got = list(iter_json(text, fast))
        want = _scan_reference(text, ref)
        assert repr(got) == repr(want) and fast == ref, text  # repr: NaN != NaN
        found += len(got)
    assert found > 1000  # the texts do hold values
    exhausted, deep = JsonScan(), JsonScan()
    list(iter_json(("[" + "x" * 2000) * 40, exhausted))
    list(iter_json("[" * 101 + "1" + "]" * 101, deep))
    assert exhausted.exhausted and deep.too_deep  # both limits were reached above
