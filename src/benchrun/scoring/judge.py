"""The LLM judge: blind prompts from the rubric, strict schema validation, one re-ask.

The judge never sees which model wrote an answer. Its reply must be a JSON
object that validates against the rubric's schema; a malformed reply gets one
re-ask quoting the validation error, then becomes a recorded judge error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, StrictUndefined, Template

from benchrun.scoring.rules import extract_json
from benchrun.spec import Case, Rubric

_ENV = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=64)
def template(source: str) -> Template:
    """Compiled prompt template (compiling costs ~2 ms; a run renders the same few thousands of times)."""
    return _ENV.from_string(source)


class JudgeFormatError(ValueError):
    """The judge's reply is not a JSON object valid against the rubric's schema."""


@dataclass(frozen=True)
class Verdict:
    score: int
    judge_pass: bool
    reason: str
    failure_mode: str
    passed: bool  # the rubric's pass rule applied


def case_input_text(case: Case) -> str:
    if isinstance(case.input, str):
        return case.input
    return "\n".join(f"{m.role.upper()}: {m.content}" for m in case.input)


def _context(rubric: Rubric) -> dict[str, Any]:
    return {
        "criteria": rubric.criteria,
        "criteria_text": "\n".join(f"- {c.name}: {c.description}" for c in rubric.criteria),
        "scale": rubric.scale,
        "scale_text": "\n".join(f"{k}: {v}" for k, v in sorted(rubric.scale.items())),
        "failure_modes": rubric.failure_modes,
        "failure_modes_text": ", ".join(rubric.failure_modes),
        "schema": json.dumps(rubric.effective_schema(), indent=2),
        "pass_rule": rubric.pass_rule.describe(),
    }


def judge_messages(rubric: Rubric, case: Case, response: str) -> list[dict[str, str]]:
    """The exact messages sent to the judge for one answer (no model names)."""
    prompt = template(rubric.judge_prompt).render(
        input=case_input_text(case), ideal=case.ideal, response=response, **_context(rubric)
    )
    return [{"role": "system", "content": rubric.judge_system}, {"role": "user", "content": prompt}]


def reask_messages(messages: list[dict[str, str]], bad_reply: str, error: str, rubric: Rubric) -> list[dict[str, str]]:
    return reask_with_schema(messages, bad_reply, error, rubric.effective_schema())


def reask_with_schema(
    messages: list[dict[str, str]], bad_reply: str, error: str, schema: dict[str, Any]
) -> list[dict[str, str]]:
    """The one re-ask a judge gets: its bad reply, what was wrong, and the schema to follow."""
    return [
        *messages,
        {"role": "assistant", "content": bad_reply},
        {
            "role": "user",
            "content": (
                f"Your reply was not valid: {error}\n"
                "Reply again with ONLY one JSON object, no other text, matching this JSON schema:\n"
                f"{json.dumps(schema)}"
            ),
        },
    ]


_VALIDATORS: dict[str, Any] = {}  # canonical schema JSON -> its compiled validator (one per rubric, not per verdict)


def _validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    key = json.dumps(schema, sort_keys=True)
    v = _VALIDATORS.get(key)
    if v is None:
        v = _VALIDATORS[key] = jsonschema.Draft202012Validator(schema)
    return v


def parse_verdict(rubric: Rubric, text: str) -> Verdict:
    try:
        value = extract_json(text)
    except ValueError:
        raise JudgeFormatError("no JSON object found in the reply") from None
    if not isinstance(value, dict):
        raise JudgeFormatError("the reply is JSON but not an object")
    errors = sorted(_validator(rubric.effective_schema()).iter_errors(value), key=str)
    if errors:
        e = errors[0]
        path = ".".join(str(p) for p in e.absolute_path)
        raise JudgeFormatError(f"{path + ': ' if path else ''}{e.message}"[:300])
    score = int(value["score"])
    if not 1 <= score <= 5:
        raise JudgeFormatError(f"score {score} is outside 1-5")
    mode = str(value["failure_mode"])
    if mode not in rubric.failure_modes:
        raise JudgeFormatError(f"failure_mode {mode!r} is not one of {rubric.failure_modes}")
    jp = bool(value["pass"])
    return Verdict(
        score=score,
        judge_pass=jp,
        reason=str(value["reason"]),
        failure_mode=mode,
        passed=rubric.pass_rule.evaluate(score, jp, mode),
    )
