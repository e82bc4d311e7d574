"""Tool calling in specs and datasets: the tools offered, and what a case expects the model to do with them.

A run spec (``tools``, ``tool_choice``, ``max_steps``) or a case (the same fields, which replace the
spec's) offers tools in the OpenAI function-calling schema::

    tools:
      - name: lookup_invoice
        description: Look up an invoice by id
        parameters: {type: object, properties: {invoice_id: {type: string}}, required: [invoice_id]}
    tool_choice: auto            # auto | none | required | {name: lookup_invoice}

A case states what should happen (see `benchrun.scoring.tools` for how it is scored)::

    expected_tool_calls:
      - name: lookup_invoice
        arguments: {invoice_id: INV-1001}    # compared by `match`: subset (default) or exact
        arguments_schema: {...}               # optional: the arguments must validate against it
        argument_checks:                      # optional: per argument, our rule types
          amount: {type: numeric, value: 42.5, tolerance: 0.01}
          reason: {type: regex, pattern: "duplicate|double"}
    order: strict                             # strict (default) | any
    forbidden_tools: [issue_refund]
    no_tool_call: true                        # the right behaviour is to answer or ask
    tool_results: {lookup_invoice: {...}, "2": "..."}   # scripted: by call index (0-based) or tool name
    max_steps: 4

Everything here is part of the dataset or spec dump, so of their hashes; the exact tools sent are in
the call parameters, so in the response cache's key and the recorded trajectory.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MAX_STEPS = 6
MAX_MAX_STEPS = 50
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_json_schema(v: dict[str, Any] | None, what: str) -> dict[str, Any] | None:
    """``v`` when it is a valid JSON schema (draft 2020-12) or None; else ValueError naming ``what``."""
    if v is None:
        return v
    import jsonschema  # here, not at the top: most specs have no schema (~0.08 s of start-up)

    try:
        jsonschema.Draft202012Validator.check_schema(v)
    except jsonschema.SchemaError as e:
        raise ValueError(f"{what} is not a valid JSON schema: {e.message}") from None
    return v


class Tool(_Strict):
    """One function the model may call (OpenAI's ``{type: function, function: {...}}`` is accepted too)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "function" and isinstance(data.get("function"), dict):
            extra = set(data) - {"type", "function"}
            if extra:
                raise ValueError(f"unknown field(s) {sorted(extra)} next to 'function'")
            return data["function"]
        return data

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"tool name {v!r} must be 1-64 letters, digits, '_' or '-'")
        return v

    @field_validator("parameters")
    @classmethod
    def _params_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_json_schema(v, "parameters")
        if v.get("type", "object") != "object":
            raise ValueError("parameters must be a JSON schema of type 'object'")
        return v

    def wire(self) -> dict[str, Any]:
        """The tool as the OpenAI chat API takes it."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


class ToolChoiceName(_Strict):
    name: str


ToolChoice = Literal["auto", "none", "required"] | ToolChoiceName


def wire_tool_choice(choice: ToolChoice) -> Any:
    if isinstance(choice, ToolChoiceName):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


class ArgCheck(_Strict):
    """A rule on one argument's value (the value as text: strings as they are, others as JSON). Validated as
    the dataset `Check` of the same fields when the case is (`spec.Case`), and scored by `rules.run_check`."""

    type: Literal["equals", "equals_any", "contains", "regex", "not_regex", "numeric"]
    value: str | float | int | None = None
    values: list[str] | None = None
    pattern: str | None = None
    tolerance: float = 0.0
    rel_tolerance: float | None = Field(default=None, ge=0)
    ignore_case: bool = True


class ExpectedCall(_Strict):
    name: str
    arguments: dict[str, Any] | None = None
    match: Literal["subset", "exact"] = "subset"
    arguments_schema: dict[str, Any] | None = None
    argument_checks: dict[str, ArgCheck | list[ArgCheck]] | None = None

    @field_validator("arguments_schema")
    @classmethod
    def _schema_ok(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_json_schema(v, "arguments_schema")

    def checks_for(self) -> list[tuple[str, ArgCheck]]:
        out: list[tuple[str, ArgCheck]] = []
        for arg, c in (self.argument_checks or {}).items():
            out.extend((arg, x) for x in (c if isinstance(c, list) else [c]))
        return out


# the case fields this module adds (left out of a case's dump when unset, so existing dataset hashes stay)
CASE_TOOL_FIELDS = ("tools", "tool_choice", "expected_tool_calls", "order", "forbidden_tools", "no_tool_call",
                    "tool_results", "max_steps", "should_refuse")
SPEC_TOOL_FIELDS = ("tools", "tool_choice", "max_steps")


def validate_case_tools(case: Any) -> None:
    """Cross-field checks of a case's tool fields (raises ValueError with the field named)."""
    if case.no_tool_call and case.expected_tool_calls:
        raise ValueError("no_tool_call: true and expected_tool_calls contradict each other; keep one")
    if case.tools is not None:
        names = [t.name for t in case.tools]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"tools: two tools are named {dup}")
    if case.tool_results is not None:
        for k in case.tool_results:
            if not (k.isdigit() or _NAME.match(k)):
                raise ValueError(f"tool_results: key {k!r} must be a call index (0, 1, ...) or a tool name")


def tool_names(tools: list[Tool] | None) -> set[str]:
    return {t.name for t in tools or []}


def effective_tools(spec: Any, case: Any) -> list[Tool] | None:
    """The tools offered for a case: its own, else the run spec's (None: no tools)."""
    return case.tools if case.tools is not None else spec.tools


def effective_tool_choice(spec: Any, case: Any) -> ToolChoice | None:
    return case.tool_choice if case.tool_choice is not None else spec.tool_choice


def effective_max_steps(spec: Any, case: Any) -> int:
    if case.max_steps is not None:
        return int(case.max_steps)
    return int(spec.max_steps) if spec.max_steps is not None else DEFAULT_MAX_STEPS


def check_case_against_tools(case: Any, tools: list[Tool] | None, choice: ToolChoice | None = None) -> str | None:
    """Why a case's expectations name a tool that is not offered to it (None when they all are)."""
    offered = tool_names(tools)
    named = [c.name for c in case.expected_tool_calls or []] + list(case.forbidden_tools or [])
    named += [k for k in (case.tool_results or {}) if not k.isdigit()]
    if isinstance(choice, ToolChoiceName):
        named.append(choice.name)
    unknown = sorted({n for n in named if n not in offered})
    if not unknown:
        return None
    if not offered:
        return "expects tool calls but no tools are offered: add 'tools' to the case or to the run spec"
    return f"names tool(s) {unknown} that are not offered (offered: {sorted(offered)}); fix the name or offer the tool"


def uses_tools(case: Any) -> bool:
    """Whether a case carries a tool expectation (which makes it scorable by rules)."""
    return bool(case.expected_tool_calls or case.forbidden_tools or case.no_tool_call)
