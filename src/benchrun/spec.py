"""Datasets, rubrics and run specs: the versioned files a user writes.

Each is a pydantic model validated strictly (unknown fields are errors) and
hashed over canonical content (see `benchrun.hashing`). Loaders turn every
problem into a one-line `BadInput` naming the file and the line or case id.
"""

from __future__ import annotations

import datetime as dt
import json
import keyword
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from benchrun.errors import BadInput
from benchrun.hashing import content_hash
from benchrun.io import key_line, load_csv, load_jsonl, load_yaml, mapping_lines, node_line, read_source
from benchrun.spec_tools import (
    CASE_TOOL_FIELDS,
    MAX_MAX_STEPS,
    SPEC_TOOL_FIELDS,
    ExpectedCall,
    Tool,
    ToolChoice,
    check_case_against_tools,
    check_json_schema,
    effective_tool_choice,
    effective_tools,
    uses_tools,
    validate_case_tools,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# ----------------------------------------------------------------------------- cases


class Message(_Strict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class AnyOf(_Strict):
    """``{any: [...]}``: at least one of these strings must appear."""

    any: list[str] = Field(min_length=1)


class Pattern(_Strict):
    """``{regex: "..."}``: a regular expression (case-insensitive)."""

    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"invalid regular expression {v!r}: {e}") from None
        return v


_CODE_FIELDS = ("tests", "entry_point", "prompt_prefix", "setup", "timeout_s")
_MATCH_FIELDS = ("rel_tolerance", "values", "normalize")


def _compiles(code: str) -> str | None:
    """None when ``code`` is valid Python, else why not (compiled only, never run)."""
    try:
        compile(code, "<check>", "exec", dont_inherit=True)
    except SyntaxError as e:
        return f"line {e.lineno}: {e.msg}"
    except (ValueError, RecursionError, MemoryError) as e:
        return f"{type(e).__name__}: {e}"[:200]
    return None


class Check(_Strict):
    """A deterministic rule. ``type`` selects which other fields apply.

    ``python_tests`` runs the answer's code against ``tests`` in the sandbox (see ``scoring/code.py``).
    """

    type: Literal["equals", "equals_any", "contains", "regex", "not_regex", "json_schema", "max_words", "numeric",
                  "python_tests"]
    value: str | float | int | None = None
    pattern: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    max: int | None = None
    tolerance: float = 0.0
    ignore_case: bool = True
    # python_tests only (left out of the dump when unset, so the hashes of other checks do not change)
    tests: str | None = None
    entry_point: str | None = None
    prompt_prefix: bool = False
    setup: str | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=600)
    # numeric: relative tolerance (passes when within tolerance OR rel_tolerance × |value|)
    rel_tolerance: float | None = Field(default=None, ge=0)
    # equals / equals_any: the acceptable answers of equals_any, and normalisations applied to both
    # sides before comparing (see scoring/extract.py; when unset, equals strips and honours ignore_case)
    values: list[str] | None = None
    normalize: list[Literal["nfkc", "case", "punctuation", "articles", "whitespace", "squad"]] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_serializer(mode="wrap")
    def _omit_unset_code_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        d = handler(self)
        for k in (*_CODE_FIELDS, *_MATCH_FIELDS):  # unset: left out, so the hashes of existing checks do not change
            if k in d and d[k] in (None, False):
                del d[k]
        return d

    @model_validator(mode="before")
    @classmethod
    def _normalise_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            data = dict(data)
            data["type"] = data["type"].replace("-", "_")
        return data

    @model_validator(mode="after")
    def _fields_for_type(self) -> Check:
        t = self.type
        if t in ("equals", "contains") and self.value is None:
            raise ValueError(f"check '{t}' needs 'value'")
        if t == "equals_any" and not self.values:
            raise ValueError("check 'equals_any' needs 'values' (a non-empty list of acceptable answers)")
        if self.values is not None and t != "equals_any":
            raise ValueError(f"check '{t}': 'values' only applies to checks of type 'equals_any'")
        if self.normalize is not None and t not in ("equals", "equals_any"):
            raise ValueError(f"check '{t}': 'normalize' only applies to checks of type 'equals' and 'equals_any'")
        if self.rel_tolerance is not None and t != "numeric":
            raise ValueError(f"check '{t}': 'rel_tolerance' only applies to checks of type 'numeric'")
        if t in ("regex", "not_regex"):
            if not self.pattern:
                raise ValueError(f"check '{t}' needs 'pattern'")
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"check '{t}': invalid regular expression: {e}") from None
        if t == "json_schema":
            if self.schema_ is None:
                raise ValueError("check 'json_schema' needs 'schema'")
            import jsonschema  # here, not at the top: most specs have no json_schema check (~0.08 s of start-up)

            try:
                jsonschema.Draft202012Validator.check_schema(self.schema_)
            except jsonschema.SchemaError as e:
                raise ValueError(f"check 'json_schema': invalid schema: {e.message}") from None
        if t == "python_tests":
            if not self.tests or not self.tests.strip():
                raise ValueError("check 'python_tests' needs 'tests' (Python code with asserts, or a check(candidate) function)")
            for name in ("tests", "setup"):
                why = _compiles(getattr(self, name) or "")
                if why is not None:
                    raise ValueError(f"check 'python_tests': '{name}' is not valid Python ({why})")
            if self.entry_point is not None and not (self.entry_point.isidentifier()
                                                     and not keyword.iskeyword(self.entry_point)):
                raise ValueError(f"check 'python_tests': entry_point {self.entry_point!r} is not a Python name")
        else:
            given = [k for k in _CODE_FIELDS if getattr(self, k) not in (None, False)]
            if given:
                raise ValueError(f"check '{t}': {', '.join(given)} only apply to checks of type 'python_tests'")
        if t == "max_words" and (self.max is None or self.max < 1):
            raise ValueError("check 'max_words' needs 'max' (a positive integer)")
        if t == "numeric":
            if self.value is None:
                raise ValueError("check 'numeric' needs 'value'")
            try:
                float(self.value)
            except (TypeError, ValueError):
                raise ValueError("check 'numeric': 'value' must be a number") from None
        return self


class Provenance(_Strict):
    source: Literal["hand", "synthetic", "production", "imported"] = "hand"
    added: dt.date | None = None
    author: str | None = None
    cluster_id: int | None = None
    cluster_label: str | None = None


Severity = Literal["high", "medium", "low"]


class Case(_Strict):
    id: str = Field(min_length=1)
    input: str | list[Message]
    ideal: str = ""
    must_include: list[str | AnyOf] = Field(default_factory=list)
    must_not: list[str | Pattern] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    category: str = "uncategorised"
    severity: Severity = "medium"
    tags: list[str] = Field(default_factory=list)
    provenance: Provenance = Field(default_factory=Provenance)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # multiple choice: the choices (shown to the model as `choices` / `choices_block` in the prompt template)
    # and the right one: a letter (A = first), a 0-based index, or the text of a choice
    choices: list[str] | None = None
    answer: str | int | None = None
    # tool calling (see benchrun.spec_tools; scored by scoring/tools.py); tools here replace the spec's
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    expected_tool_calls: list[ExpectedCall] | None = None
    order: Literal["strict", "any"] | None = None
    forbidden_tools: list[str] | None = None
    no_tool_call: bool | None = None
    tool_results: dict[str, Any] | None = None
    max_steps: int | None = Field(default=None, ge=1, le=MAX_MAX_STEPS)
    # whether the right answer is a refusal (a plain optional field; scored by the refusal detector)
    should_refuse: bool | None = None

    @model_serializer(mode="wrap")
    def _omit_no_choices(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        d = handler(self)  # left out when unset, so the hashes of existing datasets do not change
        for k in ("choices", "answer", *CASE_TOOL_FIELDS):
            if k in d and d[k] is None:
                del d[k]
        return d

    @model_validator(mode="after")
    def _tool_fields(self) -> Case:
        validate_case_tools(self)
        for exp in self.expected_tool_calls or []:
            for arg, chk in exp.checks_for():
                try:
                    Check.model_validate(chk.model_dump(exclude_none=True))
                except ValidationError as e:
                    _, msg = _format_validation_error(e)
                    raise ValueError(f"expected_tool_calls {exp.name}: argument_checks {arg}: {msg}") from None
        return self

    @model_validator(mode="after")
    def _choices_and_answer(self) -> Case:
        if self.choices is None and self.answer is None:
            return self
        if self.choices is None or self.answer is None:
            raise ValueError("'choices' and 'answer' go together: give the list of choices and the right one")
        if not 2 <= len(self.choices) <= 26:
            raise ValueError("choices: give between 2 and 26 choices (letters A to Z)")
        if any(not c.strip() for c in self.choices):
            raise ValueError("choices: a choice is empty")
        if len({c.strip().casefold() for c in self.choices}) != len(self.choices):
            raise ValueError("choices: two choices have the same text")
        self.answer_index()  # raises ValueError naming what is wrong
        return self

    def answer_index(self) -> int:
        """The 0-based index of the right choice (``answer`` as a letter, an index or a choice's text)."""
        choices, a = self.choices or [], self.answer
        if isinstance(a, bool):
            raise ValueError("answer must be a letter, a 0-based index or the text of a choice")
        if isinstance(a, int):
            if not 0 <= a < len(choices):
                raise ValueError(f"answer index {a} is outside 0..{len(choices) - 1}")
            return a
        s = str(a).strip()
        if len(s) == 1 and s.upper() in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            i = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".index(s.upper())
            if i >= len(choices):
                raise ValueError(f"answer {s!r} names choice {i + 1} but there are {len(choices)}")
            return i
        for i, c in enumerate(choices):
            if c.strip() == s:
                return i
        raise ValueError(f"answer {s!r} is not a letter, an index or the text of one of the choices")

    @field_validator("id", mode="before")
    @classmethod
    def _id_str(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("input")
    @classmethod
    def _input_nonempty(cls, v: str | list[Message]) -> str | list[Message]:
        if isinstance(v, str) and not v.strip():
            raise ValueError("input is empty")
        if isinstance(v, list):
            if not v:
                raise ValueError("input has no messages")
            if v[-1].role != "user":
                raise ValueError("the last input message must have role 'user'")
        return v

    def input_text(self) -> str:
        """The case input as plain text (the last user message for chats)."""
        if isinstance(self.input, str):
            return self.input
        return "\n".join(m.content for m in self.input if m.role == "user")


class DatasetSource(_Strict):
    """Where an imported dataset came from: the file, its SHA-256, when and under which licence."""

    format: str = Field(min_length=1)
    file: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    imported: dt.date
    licence: str | None = None
    homepage: str | None = None
    # what the import did not carry over or chose (e.g. a field map, unsupported assertions); left out when unset
    notes: list[str] | None = None

    @model_serializer(mode="wrap")
    def _omit_no_notes(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        d = handler(self)
        if d.get("notes", 0) is None:
            del d["notes"]
        return d


class Dataset(_Strict):
    name: str = Field(min_length=1)
    version: str
    description: str = ""
    source: DatasetSource | None = None  # set by importers; left out of the dump (and the hash) when absent
    cases: list[Case]

    @model_serializer(mode="wrap")
    def _omit_no_source(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        d = handler(self)
        if d.get("source", 0) is None:
            del d["source"]
        return d

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v

    def dump(self) -> dict[str, Any]:
        """The dataset as stored in a run's snapshot and hashed (`hash_of`)."""
        return self.model_dump(mode="json", by_alias=True)

    @staticmethod
    def hash_of(dump: dict[str, Any]) -> str:
        """`hash` from a `dump` already made (dumping a large dataset takes a while)."""
        return content_hash(dump)

    @property
    def hash(self) -> str:
        return self.hash_of(self.dump())

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(case_id)


# ----------------------------------------------------------------------------- rubric


class Criterion(_Strict):
    name: str
    description: str


class PassRule(_Strict):
    """A judged answer passes when ``score >= min_score``, its failure mode is not in
    ``forbidden_failure_modes`` and, if ``require_judge_pass``, the judge said pass."""

    min_score: int = Field(ge=1, le=5)
    forbidden_failure_modes: list[str] = Field(default_factory=list)
    require_judge_pass: bool = True

    def evaluate(self, score: int, judge_pass: bool, failure_mode: str) -> bool:
        if score < self.min_score:
            return False
        if failure_mode in self.forbidden_failure_modes:
            return False
        return not (self.require_judge_pass and not judge_pass)

    def describe(self) -> str:
        parts = [f"score >= {self.min_score}"]
        if self.forbidden_failure_modes:
            parts.append(f"failure_mode not in [{', '.join(self.forbidden_failure_modes)}]")
        if self.require_judge_pass:
            parts.append("judge pass")
        return " and ".join(parts)


DEFAULT_JUDGE_SYSTEM = (
    "You are a strict evaluator. You grade one answer of an AI assistant against a rubric. "
    "Reply with a single JSON object and nothing else."
)


class Rubric(_Strict):
    name: str = Field(min_length=1)
    version: str
    description: str = ""
    criteria: list[Criterion] = Field(min_length=1)
    scale: dict[int, str]
    failure_modes: list[str]
    pass_rule: PassRule
    judge_system: str = DEFAULT_JUDGE_SYSTEM
    judge_prompt: str = Field(min_length=1)
    pairwise_prompt: str | None = None
    response_schema: dict[str, Any] | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v

    # Field validators (not one model validator) so that an error's location names the field,
    # and the loader can point at its line.
    @field_validator("scale")
    @classmethod
    def _five_points(cls, v: dict[int, str]) -> dict[int, str]:
        if sorted(v) != [1, 2, 3, 4, 5]:
            raise ValueError("scale must define exactly the points 1, 2, 3, 4 and 5")
        return v

    @field_validator("failure_modes")
    @classmethod
    def _modes(cls, v: list[str]) -> list[str]:
        if "none" not in v:
            raise ValueError("failure_modes must include 'none'")
        if len(set(v)) != len(v):
            raise ValueError("failure_modes repeats a value")
        return v

    @field_validator("pass_rule")
    @classmethod
    def _known_modes(cls, v: PassRule, info: ValidationInfo) -> PassRule:
        modes = info.data.get("failure_modes")  # absent when failure_modes itself is invalid
        unknown = [m for m in v.forbidden_failure_modes if modes is not None and m not in modes]
        if unknown:
            raise ValueError(f"pass_rule names unknown failure modes {unknown}; add them to failure_modes")
        return v

    @field_validator("response_schema")
    @classmethod
    def _schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if check_json_schema(v, "response_schema") is None:
            return v
        assert v is not None
        missing = {"score", "pass", "reason", "failure_mode"} - set(v.get("required", []))
        if missing:
            raise ValueError(f"response_schema must require {sorted(missing)}")
        return v

    @field_validator("judge_prompt", "pairwise_prompt")
    @classmethod
    def _template(cls, v: str | None, info: ValidationInfo) -> str | None:
        from benchrun.scoring import prompts

        if v is not None:
            names = prompts.JUDGE_VARIABLES if info.field_name == "judge_prompt" else prompts.PAIRWISE_VARIABLES
            d = info.data
            sample: dict[str, Any] = {  # values of the types the judge code passes (scoring/judge.py, pairwise.py)
                "input": "sample input", "ideal": "sample ideal", "response": "sample answer",
                "response_a": "answer A", "response_b": "answer B", "criteria": d.get("criteria", []),
                "criteria_text": "", "scale": d.get("scale", {}), "scale_text": "",
                "failure_modes": d.get("failure_modes", []), "failure_modes_text": "", "schema": "{}", "pass_rule": ""}
            try:
                prompts.check(v, names, str(info.field_name))
                prompts.trial_render(v, {k: sample[k] for k in names}, str(info.field_name))
            except prompts.TemplateCheckError as e:
                raise ValueError(str(e)) from None
        return v

    def effective_schema(self) -> dict[str, Any]:
        """The JSON schema every judge answer must validate against."""
        if self.response_schema is not None:
            return self.response_schema
        return {
            "type": "object",
            "properties": {
                "score": {"type": "integer", "minimum": 1, "maximum": 5},
                "pass": {"type": "boolean"},
                "reason": {"type": "string"},
                "failure_mode": {"type": "string", "enum": list(self.failure_modes)},
            },
            "required": ["score", "pass", "reason", "failure_mode"],
            "additionalProperties": False,
        }

    @property
    def hash(self) -> str:
        return content_hash(self.model_dump(mode="json"))

    @property
    def judge_prompt_hash(self) -> str:
        return content_hash(
            {"system": self.judge_system, "prompt": self.judge_prompt, "schema": self.effective_schema()}
        )


# ----------------------------------------------------------------------------- run spec


class Sampling(_Strict):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None

    def merged(self, override: Sampling | None) -> Sampling:
        if override is None:
            return self
        base = self.model_dump()
        base.update({k: v for k, v in override.model_dump().items() if v is not None})
        return Sampling(**base)

    def as_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Price(_Strict):
    """Prices in USD per one million tokens."""

    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)


class Prompt(_Strict):
    version: str = "1"
    system: str | None = None
    template: str = "{{ input }}"

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v

    @field_validator("template")
    @classmethod
    def _template_ok(cls, v: str) -> str:
        from benchrun.scoring import prompts

        try:
            prompts.check(v, prompts.PROMPT_VARIABLES, "template")
        except prompts.TemplateCheckError as e:
            raise ValueError(str(e)) from None
        return v

    @property
    def hash(self) -> str:
        return content_hash(self.model_dump(mode="json"))


# Prefixes of common provider keys and tokens (OpenAI/Anthropic sk-, Hugging Face, GitHub, GitLab, Slack, Google, AWS).
_KEY_PREFIXES = ("sk-", "sk_", "hf_", "ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "glpat-", "xoxb-", "xoxp-",
                 "AIza", "AKIA", "ASIA")
# URL query parameters that carry credentials (``?api_key=``, ``?key=``, ``?access_token=``, ``?sig=`` ...)
_CREDENTIAL_PARAM = re.compile(r"(?i)(^|[_-])(key|token|secret|password|passwd|pwd|sig|signature|auth|credentials?)$")
_KEY_MESSAGE = "export the key in an environment variable and name that variable in api_key_env"


def looks_like_key(value: str) -> bool:
    """A value that is surely a key rather than an environment variable's name.

    Known key prefixes, or 20+ characters mixing lower case, upper case and digits (variable
    names are conventionally UPPER_SNAKE_CASE).
    """
    if value.startswith(_KEY_PREFIXES):
        return True
    return (len(value) >= 20 and any(c.islower() for c in value) and any(c.isupper() for c in value)
            and any(c.isdigit() for c in value))


def url_has_credentials(url: str) -> bool:
    """``user:password@`` (or any user info) in the authority, or a credential-named query parameter."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False  # not a URL at all: the provider call reports it
    if "@" in parts.netloc:
        return True
    return any(_CREDENTIAL_PARAM.search(name) for name, _ in parse_qsl(parts.query, keep_blank_values=True))


class ModelRef(_Strict):
    """A model to call: any litellm model string, or ``local/smollm2-135m``.

    There is deliberately no field for a key (keys never go into a spec, so never into the
    ledger): ``api_key_env`` names the environment variable that holds it. An ``api_key``
    field, a key pasted into ``api_key_env`` and credentials in ``api_base`` are refused with a
    message that names the field, never the value.
    """

    model: str = Field(min_length=1)
    alias: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    price: Price | None = None
    sampling: Sampling | None = None
    prompt: Prompt | None = None
    concurrency: int | None = Field(default=None, ge=1)
    # Which transport calls the model (benchrun.providers.transport_for): "openai" (aiohttp, for OpenAI-compatible
    # servers) or "litellm". Unset: openai/... models, the local model and most api_base servers use "openai".
    transport: Literal["litellm", "openai"] | None = None
    # Submit this model's calls through the provider's batch API (benchrun.batch; about half price, answers
    # within the provider's completion window). How calls are paid for, not what is asked: not in the spec hash.
    batch: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_inline_key(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("api_key", "key", "token", "password", "secret"):
                if name in data:
                    raise ValueError(f"'{name}' is not accepted: a key must not be written in a spec; {_KEY_MESSAGE}")
        return data

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and (not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) or looks_like_key(v)):
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key itself"
            )
        return v

    @field_validator("api_base")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        if v is not None and url_has_credentials(v):
            raise ValueError(f"api_base must not carry credentials (user:password@ or a key in the query); {_KEY_MESSAGE}")
        return v

    @property
    def key(self) -> str:
        return self.alias or self.model


class Concurrency(_Strict):
    global_: int = Field(default=8, ge=1, alias="global")
    per_model: int = Field(default=4, ge=1)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Retries(_Strict):
    attempts: int = Field(default=4, ge=1, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)


class PairsBaseline(_Strict):
    """Every other candidate against one reference candidate (AlpacaEval-style)."""

    baseline: str = Field(min_length=1)


class PairsSample(_Strict):
    """``sample`` pairs per case, chosen so that every pair of candidates is compared about equally often."""

    sample: int = Field(ge=1)


class JudgeSpec(ModelRef):
    both_orders: bool = False
    # Ask the server to constrain the judge's answer to the rubric's JSON schema:
    # "json_schema" = OpenAI structured outputs; "llama_cpp" = llama.cpp's grammar-constrained
    # {"type": "json_object", "schema": ...} (the embedded local model, llama.cpp servers).
    structured_output: Literal["none", "json_schema", "llama_cpp"] = "none"
    # "pairwise": the judge compares two candidates' answers to a case (benchrun.pairwise_run, docs/arena.md);
    # ``pairs`` says which pairs (default all_pairs), ``pair_seed`` seeds their order and the sample.
    mode: Literal["pointwise", "pairwise"] = "pointwise"
    pairs: Literal["all_pairs"] | PairsBaseline | PairsSample | None = None
    pair_seed: int = 0

    @model_serializer(mode="wrap")
    def _omit_pointwise_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a pointwise judge dumps (and hashes) exactly as before pairwise runs existed
        d = handler(self)
        if d.get("mode") == "pointwise":
            for k in ("mode", "pairs", "pair_seed"):
                d.pop(k, None)
        return d

    @property
    def pairwise(self) -> bool:
        return self.mode == "pairwise"


class Selection(_Strict):
    """Which dataset cases a run uses (all by default). Filters combine with AND; ``limit`` keeps the first N."""

    ids: list[str] | None = None
    tags: list[str] | None = None  # a case matches when it has any of these tags
    categories: list[str] | None = None
    severities: list[Severity] | None = None
    limit: int | None = Field(default=None, ge=1)

    def apply(self, cases: list[Case]) -> list[Case]:
        out = [
            c for c in cases
            if (self.ids is None or c.id in self.ids)
            and (self.tags is None or any(t in c.tags for t in self.tags))
            and (self.categories is None or c.category in self.categories)
            and (self.severities is None or c.severity in self.severities)
        ]
        return out[: self.limit] if self.limit is not None else out


class FewShot(_Strict):
    """Few-shot exemplars for every case: ``n`` other cases of the same dataset (``from: same``) or of
    another dataset file (``from: PATH``, relative to the spec like ``dataset``); a case with the same id
    or the same input as the case asked is never used; with ``split``, only cases tagged with it; drawn per case with a seeded generator, shown with their ``ideal`` (or, for multiple choice, the
    right letter) as ``multiturn`` user/assistant turns before the case or ``inline`` in one user
    message. They are part of the exact messages recorded and hashed; the file's dataset hash is part
    of the spec hash and of the run's snapshot."""

    n: int = Field(ge=1, le=64)
    from_: str = Field(default="same", alias="from", min_length=1)
    split: str | None = None
    seed: int = 0
    as_: Literal["multiturn", "inline"] = Field(default="multiturn", alias="as")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RunSpec(_Strict):
    """A run. ``rubric`` and ``judge`` are optional together: without them every case is scored by its
    rules alone (a case passes when every rule passes). With them, ``judge_when`` says which cases the
    judge sees: ``always`` (every case; rules must pass too) or ``no_rules`` (only cases without any
    rule; the others are scored by their rules alone)."""

    name: str = Field(min_length=1)
    description: str = ""
    dataset: str
    rubric: str | None = None
    prompt: Prompt = Field(default_factory=Prompt)
    candidates: list[ModelRef] = Field(min_length=1)
    sampling: Sampling = Field(default_factory=Sampling)
    samples: int = Field(default=1, ge=1, le=100)
    judge: JudgeSpec | None = None
    judge_when: Literal["always", "no_rules"] = "always"
    fewshot: FewShot | None = None
    concurrency: Concurrency = Field(default_factory=Concurrency)
    timeout_s: float = Field(default=60.0, gt=0)
    retries: Retries = Field(default_factory=Retries)
    cache: bool = True
    budget_usd: float | None = Field(default=None, gt=0)
    select: Selection | None = None
    # a length limit for every answer, reported (not scored) as the holistic row's share over max_words;
    # a case's own max_words check takes precedence
    max_words: int | None = Field(default=None, ge=1)
    # multiple choice, circular evaluation: ask each case under this many orders of its choices (the first the
    # dataset's own, the others seeded permutations; see `choice_order`); sample i is order i
    shuffle_choices: int | None = Field(default=None, ge=2, le=26)
    # tool calling: the tools offered to every case (a case's own replace them), see benchrun.spec_tools
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    max_steps: int | None = Field(default=None, ge=1, le=MAX_MAX_STEPS)

    @property
    def samples_per_case(self) -> int:
        """Answers asked per case and candidate: ``samples``, or one per choice order with ``shuffle_choices``."""
        return self.shuffle_choices or self.samples

    @model_validator(mode="after")
    def _shuffle_one_sample(self) -> RunSpec:
        if self.shuffle_choices is not None and self.samples != 1:
            raise ValueError("shuffle_choices asks each case once per order of its choices (the orders are its "
                             "samples); remove 'samples' or set it to 1")
        return self

    @field_validator("candidates")
    @classmethod
    def _unique_keys(cls, v: list[ModelRef]) -> list[ModelRef]:
        keys = [c.key for c in v]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"candidates share the name {dup}; give each an 'alias'")
        return v

    @model_validator(mode="after")
    def _judge_with_rubric(self) -> RunSpec:
        if (self.rubric is None) != (self.judge is None):
            given, missing = ("judge", "rubric") if self.rubric is None else ("rubric", "judge")
            raise ValueError(f"'{given}' is set but '{missing}' is not: a judge grades against a rubric; "
                             f"give both, or neither to score by rules only")
        if self.judge is None and self.judge_when != "always":
            raise ValueError("judge_when only applies to a run with a judge")
        if self.judge is not None:
            self._check_pairwise(self.judge)
        return self

    def _check_pairwise(self, judge: JudgeSpec) -> None:
        """A pairwise judge needs two or more candidates, one sample each, and a schedule that fits them."""
        if not judge.pairwise:
            if judge.pairs is not None:
                raise ValueError("judge.pairs only applies to judge.mode: pairwise")
            return
        n = len(self.candidates)
        if n < 2:
            raise ValueError(f"judge.mode pairwise compares candidates, but the spec has {n}; give two or more")
        if self.samples != 1:
            raise ValueError("judge.mode pairwise judges one answer per candidate and case; set samples: 1")
        if self.judge_when != "always":
            raise ValueError("judge_when does not apply to judge.mode pairwise (every answered case is compared)")
        keys = [c.key for c in self.candidates]
        if isinstance(judge.pairs, PairsBaseline) and judge.pairs.baseline not in keys:
            raise ValueError(f"judge.pairs.baseline {judge.pairs.baseline!r} is not a candidate; "
                             f"use one of {', '.join(keys)}")
        if isinstance(judge.pairs, PairsSample) and judge.pairs.sample > n * (n - 1) // 2:
            raise ValueError(f"judge.pairs.sample is {judge.pairs.sample}, but {n} candidates have only "
                             f"{n * (n - 1) // 2} pair(s) per case; lower it or use all_pairs")

    @model_serializer(mode="wrap")
    def _omit_no_judge(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a judged spec dumps (and hashes) exactly as before these fields became optional
        d = handler(self)
        for k in ("rubric", "judge", "fewshot", "shuffle_choices", "max_words", *SPEC_TOOL_FIELDS):
            if d.get(k, 0) is None:
                del d[k]
        if d.get("judge_when") == "always":
            del d["judge_when"]
        return d

    def prompt_for(self, cand: ModelRef) -> Prompt:
        return cand.prompt or self.prompt

    def sampling_for(self, cand: ModelRef) -> Sampling:
        return self.sampling.merged(cand.sampling)


# ----------------------------------------------------------------------------- loading


_UNION_TAGS = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|[A-Z]\w*|function-\w+\[.*\]|literal\[.*\])$")


def _clean_loc(err: Any) -> tuple[Any, ...]:
    return tuple(p for p in err.get("loc", ()) if not (isinstance(p, str) and _UNION_TAGS.match(p)))


def _fields_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The field names (and aliases) of the model found at ``loc`` below ``model`` (lists and optionals
    looked through), or [] where the path leaves the models."""
    import typing

    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(cur, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann: Any = fields[part].annotation
        nxt = None
        for _ in range(4):  # Optional[list[X]] and the like
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                nxt = ann
                break
            ann = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), args[0] if args else None)
        cur = nxt
    fields = getattr(cur, "model_fields", None) or {}
    return [n for n in fields] + [f.alias for f in fields.values() if f.alias]


def _near(name: Any, options: list[str]) -> str | None:
    from difflib import get_close_matches

    m = get_close_matches(str(name), [o for o in options if o != name], n=1, cutoff=0.75)
    return m[0] if m else None


def _format_validation_error(e: ValidationError, model: type[BaseModel] | None = None) -> tuple[tuple[Any, ...], str]:
    """The most useful pydantic error as ``(location, "field: message")``.

    Custom validator messages beat type mismatches of other union branches, and
    union branch tags (``str``, ``Pattern``…) are dropped from the field path. A missing
    field next to an unknown one of a similar name (``candidate:`` for ``candidates:``),
    or an unknown field close to one of ``model``'s, says "did you mean".
    """
    errs = e.errors()
    err = next((x for x in errs if x.get("type") == "value_error"), errs[0])
    loc = _clean_loc(err)
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err.get("type") == "extra_forbidden":
        near = _near(loc[-1], _fields_at(model, loc[:-1])) if loc else None
        msg = f"unknown field; did you mean '{near}'?" if near else "unknown field; remove it or check its spelling"
    if err.get("type") == "missing":
        msg = "required field is missing"
        extras = [_clean_loc(x) for x in errs if x.get("type") == "extra_forbidden"]
        near = _near(loc[-1], [x[-1] for x in extras if x[:-1] == loc[:-1] and isinstance(x[-1], str)]) if loc else None
        if near:
            msg += f"; the file has '{near}': did you mean '{loc[-1]}'?"
    field = ".".join(str(p) for p in loc)
    if not field or (len(loc) == 1 and msg.startswith(f"{field} ")):  # the message already names its field
        return loc, msg
    return loc, f"{field}: {msg}"


def _case_where(case_raw: Any, line: int | None) -> str:
    cid = case_raw.get("id") if isinstance(case_raw, dict) else None
    parts = []
    if line is not None:
        parts.append(f"line {line}")
    if cid is not None:
        parts.append(f"case {cid}")
    return " ".join(parts) if parts else ""


def _build_dataset(path: Path, header: dict[str, Any], raw_cases: list[Any], lines: list[int | None]) -> Dataset:
    if not isinstance(header, dict):
        raise BadInput(path, 1, "the dataset must start with name, version and description")
    for k in ("name", "version"):
        if k not in header:
            raise BadInput(path, 1, f"dataset header is missing '{k}'")
    extra = set(header) - {"name", "version", "description", "source"}
    if extra:
        raise BadInput(path, 1, f"unknown header field(s) {sorted(extra)}; allowed: name, version, description, source")
    if not raw_cases:
        raise BadInput(path, None, "dataset has no cases")
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(raw_cases):
        line = lines[i] if i < len(lines) else None
        where = _case_where(raw, line) or f"case #{i + 1}"
        if not isinstance(raw, dict):
            raise BadInput(path, where, "a case must be a mapping with at least 'id' and 'input'")
        try:
            case = Case.model_validate(raw)
        except ValidationError as e:
            _, msg = _format_validation_error(e, Case)
            raise BadInput(path, where, msg) from None
        if case.id in seen:
            raise BadInput(path, where, f"duplicate case id '{case.id}' (first at {seen[case.id]}); ids must be unique")
        seen[case.id] = where
        cases.append(case)
    try:
        return Dataset(cases=cases, **header)
    except ValidationError as e:
        _, msg = _format_validation_error(e)
        raise BadInput(path, 1, msg) from None


_CSV_LIST_COLS = ("must_include", "must_not", "tags")


def _csv_case(path: Path, line: int, row: dict[str, str]) -> dict[str, Any]:
    case: dict[str, Any] = {}
    prov: dict[str, Any] = {}
    for k, v in row.items():
        v = v.strip() if k != "input" else v
        if v == "":
            continue
        if k in _CSV_LIST_COLS:
            case[k] = [x.strip() for x in v.split("|") if x.strip()]
        elif k in ("checks", "metadata"):
            try:
                case[k] = json.loads(v)
            except json.JSONDecodeError as e:
                raise BadInput(path, f"line {line} case {row.get('id', '?')}", f"column '{k}' must be JSON: {e.msg}") from None
        elif k in ("source", "added", "author"):
            prov[k] = v
        else:
            case[k] = v
    if prov:
        case["provenance"] = prov
    return case


def load_dataset(path: str | Path, text: str | None = None) -> Dataset:
    """Load a dataset from YAML, JSON Lines or CSV (``text``: the file's content, already read)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data, node = load_yaml(p, text)
        if not isinstance(data, dict):
            raise BadInput(p, 1, "the dataset must be a mapping with name, version, description and cases")
        raw_cases = data.get("cases")
        if raw_cases is None:
            raise BadInput(p, None, "dataset has no 'cases' list")
        if not isinstance(raw_cases, list):
            raise BadInput(p, key_line(node, "cases"), "'cases' must be a list")
        header = {k: v for k, v in data.items() if k != "cases"}
        lines: list[int | None] = list(mapping_lines(node, "cases"))
        return _build_dataset(p, header, raw_cases, lines)
    if suffix == ".jsonl":
        rows = load_jsonl(p, text)
        first_line, first = rows[0]
        if not isinstance(first, dict) or "id" in first or "name" not in first:
            raise BadInput(p, first_line, "the first line must be the header {\"name\", \"version\", \"description\"}")
        return _build_dataset(p, first, [r for _, r in rows[1:]], [ln for ln, _ in rows[1:]])
    if suffix == ".csv":
        header_cols, rows_csv, comments = load_csv(p, text)
        header: dict[str, Any] = {}
        for c in comments:
            if ":" in c:
                k, v = c.split(":", 1)
                header[k.strip()] = v.strip()
        for col in ("id", "input"):
            if col not in header_cols:
                raise BadInput(p, len(comments) + 1, f"CSV header has no '{col}' column")
        cases = [_csv_case(p, ln, r) for ln, r in rows_csv]
        return _build_dataset(p, header, cases, [ln for ln, _ in rows_csv])
    raise BadInput(p, None, f"unknown dataset format '{suffix}'; use .yaml, .jsonl or .csv")


def _load_yaml_model(path: str | Path, cls: type[Any], what: str, text: str | None = None) -> Any:
    """A YAML file validated as ``cls``; a problem is `BadInput` naming the file and line."""
    p = Path(path)
    data, node = load_yaml(p, text)
    if not isinstance(data, dict):
        raise BadInput(p, 1, f"the {what}")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        loc, msg = _format_validation_error(e, cls)
        raise BadInput(p, node_line(node, loc), msg) from None


def load_rubric(path: str | Path, text: str | None = None) -> Rubric:
    return _load_yaml_model(path, Rubric, "rubric must be a mapping (name, version, criteria, scale, ...)", text)


def load_prompt(path: str | Path) -> Prompt:
    """A prompt file (``version``, ``system``, ``template``), as `benchrun sweep --vary prompt=FILE` reads it."""
    return _load_yaml_model(path, Prompt, "prompt file must be a mapping (version, system, template)")


_SOURCE_KINDS = ("spec", "dataset", "rubric", "fewshot_dataset")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SourceFiles:
    """What `load_run_spec` read: the SHA-256 of each file's bytes, beside what was parsed from those bytes.

    A run made from this load records each digest with the hash its file gave (`LoadedSpec.source_record`,
    the snapshot's ``source_files``), so `benchrun.reproduce.check_files` can tell a byte-identical file
    without parsing it again (a 2,000-case dataset takes a quarter of a second to load).
    """

    spec_sha256: str
    spec_dump_hash: str  # `content_hash` of the spec as loaded: a spec changed after loading records nothing
    dataset_sha256: str
    dataset: Dataset
    rubric_sha256: str | None = None
    rubric: Rubric | None = None
    fewshot_sha256: str | None = None
    fewshot: Dataset | None = None


def valid_source_record(rec: Any) -> dict[str, dict[str, str]] | None:
    """A snapshot's ``source_files`` if it has the shape `LoadedSpec.source_record` writes, else None (a ledger
    row is untrusted: a malformed record is ignored, and the files are then parsed and hashed as before)."""
    if not isinstance(rec, dict) or "spec" not in rec or "dataset" not in rec or not set(rec) <= set(_SOURCE_KINDS):
        return None
    for entry in rec.values():
        if (not isinstance(entry, dict) or set(entry) != {"sha256", "hash"} or not isinstance(entry["sha256"], str)
                or not _SHA256_HEX.fullmatch(entry["sha256"]) or not isinstance(entry["hash"], str)
                or not 0 < len(entry["hash"]) <= 128):
            return None
    return rec


class LoadedSpec(BaseModel):
    """A run spec with its dataset and rubric loaded: everything a run needs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    spec: RunSpec
    dataset: Dataset
    rubric: Rubric | None = None  # None: a run scored by rules only
    path: str | None = None
    fewshot_dataset: Dataset | None = None  # fewshot.from a file: that dataset (None for from: same)
    # `benchrun sweep`: {"id", "factors", "setup"} of the sweep this run belongs to (kept in the snapshot only)
    sweep: dict[str, Any] | None = None
    # the files this was loaded from (`load_run_spec`), or the ``source_files`` record of the snapshot it came
    # from (`from_snapshot`): see `source_record`
    source_files: SourceFiles | dict[str, dict[str, str]] | None = None
    # candidate messages rendered for this spec (`runner.candidate_messages`): not part of the model's data
    _rendered: dict[Any, Any] = PrivateAttr(default_factory=dict)

    @property
    def rendered(self) -> dict[Any, Any]:
        """Messages `runner.candidate_messages` rendered for this spec (a cache, kept with the spec it is for).

        Read from pydantic's private storage directly: ``self._rendered`` goes through `BaseModel.__getattr__`
        (two AttributeErrors raised and caught), ~1.9 us against ~0.07 us, and a replay asks 12,000 times."""
        private = self.__pydantic_private__
        assert private is not None  # a model with a private attribute always has its storage
        return private["_rendered"]  # type: ignore[no-any-return]

    def judged(self, case: Case) -> bool:
        """Whether the judge scores this case (see `RunSpec.judge_when`)."""
        if self.spec.judge is None or self.spec.judge.pairwise:  # a pairwise judge sees pairs, not one answer
            return False
        return self.spec.judge_when == "always" or not case_has_rules(case)

    def scored_by(self, case: Case) -> str:
        """How a result of this case is scored: ``rules``, ``judge`` or ``rules+judge`` (recorded per result)."""
        if self.spec.judge is not None and self.spec.judge.pairwise:
            return "rules+pairwise" if case_has_rules(case) else "pairwise"
        if not self.judged(case):
            return "rules"
        return "rules+judge" if case_has_rules(case) else "judge"

    def case_for_sample(self, case: Case, sample: int) -> Case:
        """The case as sample ``sample`` asks it: with ``shuffle_choices``, its choices in order ``sample``
        (`choice_order`) and ``answer`` the index of the right one there; otherwise the case itself."""
        k = self.spec.shuffle_choices
        if k is None or case.choices is None or sample == 0:
            return case
        order = choice_order(case, sample, k)
        right = case.answer_index()
        return case.model_copy(update={"choices": [case.choices[j] for j in order], "answer": order.index(right)})

    def cases(self) -> list[Case]:
        """The dataset cases this run uses (the spec's ``select``, or all)."""
        if self.spec.select is None:
            return list(self.dataset.cases)
        return self.spec.select.apply(self.dataset.cases)

    def source_record(self, spec_hash: str, dataset_hash: str) -> dict[str, dict[str, str]] | None:
        """``{kind: {"sha256", "hash"}}`` for a run made from this spec (its snapshot's ``source_files``): the
        digest of each file's bytes and the hash those bytes gave (``spec_hash``, ``dataset_hash``: this spec's,
        already worked out). None when this was not loaded from files, or was changed after loading (a sweep's
        setup, a batch override): the files would not give this run's hashes, and nothing is claimed.

        A record carried from a snapshot is returned as it is: it states what given bytes hash to, which holds
        whatever run it is copied into (`benchrun.reproduce.check_files` compares those hashes with the run's).
        """
        sf = self.source_files
        if sf is None or isinstance(sf, dict):
            return sf
        if (self.dataset is not sf.dataset or self.rubric is not sf.rubric or self.fewshot_dataset is not sf.fewshot
                or content_hash(self.spec.model_dump(mode="json", by_alias=True)) != sf.spec_dump_hash):
            return None
        rec = {"spec": {"sha256": sf.spec_sha256, "hash": spec_hash},
               "dataset": {"sha256": sf.dataset_sha256, "hash": dataset_hash}}
        if sf.rubric is not None and sf.rubric_sha256 is not None:
            rec["rubric"] = {"sha256": sf.rubric_sha256, "hash": sf.rubric.hash}
        if sf.fewshot is not None and sf.fewshot_sha256 is not None:
            rec["fewshot_dataset"] = {"sha256": sf.fewshot_sha256, "hash": sf.fewshot.hash}
        return rec

    def snapshot(self, dataset_dump: dict[str, Any] | None = None,
                 source_files: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
        """Everything needed to re-run without any file on disk. ``dataset_dump``: ``self.dataset.dump()``,
        when the caller already has it; ``source_files``: `source_record`, kept when given."""
        snap = {
            "spec": self.spec.model_dump(mode="json", by_alias=True),
            "dataset": dataset_dump if dataset_dump is not None else self.dataset.dump(),
            "rubric": self.rubric.model_dump(mode="json") if self.rubric is not None else None,
        }
        if self.fewshot_dataset is not None:  # only when set, so snapshots of other runs stay as they were
            snap["fewshot_dataset"] = self.fewshot_dataset.dump()
        if self.sweep is not None:  # the sweep tag, only on runs of a sweep (not part of the spec hash)
            snap["sweep"] = self.sweep
        if source_files is not None:  # not part of the spec hash either
            snap["source_files"] = source_files
        return snap

    @property
    def spec_hash(self) -> str:
        return self.spec_hash_with(self.dataset.hash)

    def spec_hash_with(self, dataset_hash: str) -> str:
        """`spec_hash`, given ``self.dataset.hash`` already worked out (hashing a large dataset takes a while)."""
        d = self.spec.model_dump(mode="json", by_alias=True)
        d["dataset"] = dataset_hash
        if self.rubric is not None:
            d["rubric"] = self.rubric.hash
        if self.fewshot_dataset is not None:  # the exemplars' file by content, not by name
            d["fewshot_dataset"] = self.fewshot_dataset.hash
        for m in [*d.get("candidates", []), d.get("judge") or {}]:  # unset: hash as before the field existed
            if m.get("transport") is None:
                m.pop("transport", None)
            m.pop("batch", None)  # batched or not, the same calls are asked
        return content_hash(d)

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> LoadedSpec:
        rubric = snap.get("rubric")
        fs = snap.get("fewshot_dataset")
        return cls(
            spec=RunSpec.model_validate(snap["spec"]),
            dataset=Dataset.model_validate(snap["dataset"]),
            rubric=Rubric.model_validate(rubric) if rubric is not None else None,
            fewshot_dataset=Dataset.model_validate(fs) if fs is not None else None,
            source_files=valid_source_record(snap.get("source_files")),
        )


def case_has_rules(case: Case) -> bool:
    """Whether a case carries any deterministic rule (must_include, must_not, a typed check, or choices)."""
    return bool(case.must_include or case.must_not or case.checks or case.choices or uses_tools(case))


def choice_order(case: Case, index: int, k: int) -> list[int]:
    """Order ``index`` (0 ≤ index < k) of a multiple-choice case's choices, as indices into ``case.choices``.

    Order 0 is the dataset's own. Orders 1..k-1 are distinct permutations, none the original, drawn with
    Python's ``random.Random`` seeded by the case id ("shuffle:<id>"), so they are the same on every run,
    machine and resume, and independent of the other cases (circular evaluation as in MMBench, Liu et al.
    2023, with seeded permutations instead of cyclic shifts). Needs k ≤ n! for n choices.
    """
    import random

    n = len(case.choices or [])
    rng = random.Random(f"shuffle:{case.id}")
    seen = [tuple(range(n))]
    while len(seen) <= index:
        perm = list(range(n))
        rng.shuffle(perm)
        if tuple(perm) not in seen:
            seen.append(tuple(perm))
    return list(seen[index])


def load_run_spec(path: str | Path) -> LoadedSpec:
    """Load a run spec and the dataset and rubric it names (paths relative to the spec)."""
    p = Path(path)
    spec_text, spec_sha = read_source(p)
    data, node = load_yaml(p, spec_text)
    if not isinstance(data, dict):
        raise BadInput(p, 1, "the run spec must be a mapping (name, dataset, candidates, optional rubric and judge, ...)")
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as e:
        loc, msg = _format_validation_error(e, RunSpec)
        raise BadInput(p, node_line(node, loc), msg) from None
    base = p.parent
    ds_path = resolve_path(base, spec.dataset)
    rb_path = resolve_path(base, spec.rubric) if spec.rubric is not None else None
    for field, fp in (("dataset", ds_path), ("rubric", rb_path)):
        if fp is not None and not fp.exists():
            raise BadInput(p, key_line(node, field), f"{field} file '{fp}' not found; paths are relative to the spec file")
    fs_dataset, fs_sha = None, None
    if spec.fewshot is not None and spec.fewshot.from_ != "same":
        fs_path = resolve_path(base, spec.fewshot.from_)
        if not fs_path.is_file():
            raise BadInput(p, key_line(node, "fewshot"), f"fewshot.from file '{fs_path}' not found; give 'same' or a "
                           "dataset file (relative to the spec file)")
        fs_text, fs_sha = read_source(fs_path)
        fs_dataset = load_dataset(fs_path, fs_text)
    ds_text, ds_sha = read_source(ds_path)
    dataset = load_dataset(ds_path, ds_text)
    rubric, rb_sha = None, None
    if rb_path is not None:
        rb_text, rb_sha = read_source(rb_path)
        rubric = load_rubric(rb_path, rb_text)
    sources = SourceFiles(spec_sha256=spec_sha, spec_dump_hash=content_hash(spec.model_dump(mode="json", by_alias=True)),
                          dataset_sha256=ds_sha, dataset=dataset, rubric_sha256=rb_sha, rubric=rubric,
                          fewshot_sha256=fs_sha, fewshot=fs_dataset)
    loaded = LoadedSpec(spec=spec, dataset=dataset, rubric=rubric, path=str(p), fewshot_dataset=fs_dataset,
                        source_files=sources)
    if spec.select is not None:
        if spec.select.ids:
            known = {c.id for c in loaded.dataset.cases}
            unknown = [i for i in spec.select.ids if i not in known]
            if unknown:
                raise BadInput(p, key_line(node, "select"), f"select.ids names unknown cases {unknown[:5]}")
        if not loaded.cases():
            raise BadInput(p, key_line(node, "select"), "select matches no case of the dataset; loosen it")
    if spec.shuffle_choices is not None:
        import math

        for case in loaded.cases():
            if case.choices is None:
                raise BadInput(ds_path, f"case {case.id}", "has no 'choices', but the spec sets shuffle_choices "
                               "(circular evaluation of multiple-choice cases); select only choice cases or drop it")
            if spec.shuffle_choices > math.factorial(len(case.choices)):
                raise BadInput(p, key_line(node, "shuffle_choices"),
                               f"shuffle_choices {spec.shuffle_choices} asks for more orders than case {case.id}'s "
                               f"{len(case.choices)} choices have ({math.factorial(len(case.choices))}); lower it")
    if spec.judge is None:
        for case in loaded.cases():
            if not case_has_rules(case):
                raise BadInput(ds_path, f"case {case.id}",
                               "has no rule (must_include, must_not or checks) and the run has no judge, so it "
                               "could never be scored; add a rule to the case, or a judge and rubric to the spec")
    for case in loaded.cases():
        why = check_case_against_tools(case, effective_tools(spec, case), effective_tool_choice(spec, case))
        if why is not None:
            raise BadInput(ds_path, f"case {case.id}", why)
    return loaded


def resolve_path(base: Path, rel: str) -> Path:
    """Where a dataset or rubric named in a spec lives: relative to the spec, else to the working directory."""
    rp = Path(os.path.expanduser(rel))
    if rp.is_absolute():
        return rp
    cand = _tidy(base / rp)
    if cand.exists():
        return cand
    # also accept paths relative to the working directory (e.g. "datasets/x.yaml")
    return rp if rp.exists() else cand


def _tidy(p: Path) -> Path:
    """``runs/../datasets/x.yaml`` as ``datasets/x.yaml`` when both name the same file (a symlinked
    folder can make ``..`` go elsewhere; then the path stays as written)."""
    short = Path(os.path.normpath(p))
    if short == p:
        return p
    try:
        return short if short.resolve() == p.resolve() else p
    except OSError:
        return p


def missing_key_variables(spec: RunSpec) -> list[tuple[str, str]]:
    """(model, variable) for every ``api_key_env`` of the candidates and the judge that is unset or empty.

    Checked before a run is recorded, so a missing key is bad input (exit 2) with nothing written
    to the ledger; `benchrun validate` reports the same list as a warning.
    """
    import os

    out: list[tuple[str, str]] = []
    for ref in [*spec.candidates, spec.judge]:
        var = getattr(ref, "api_key_env", None)
        if var and not os.environ.get(var) and (ref.key, var) not in out:
            out.append((ref.key, var))
    return out
