"""Import promptfoo test files (YAML: a list of tests, or a config whose ``tests`` is that list).

Each test ``{description, vars: {...}, assert: [{type, value}, ...]}`` becomes a case. The input is the
var named by ``--map input=NAME``, or the only var when there is one; all vars are kept in the case's
``metadata.vars`` (a prompt template can use ``{{ case.metadata.vars.NAME }}``). A config's
``defaultTest`` vars and assertions apply to every test, as in promptfoo.

Assertions become benchrun checks with promptfoo's semantics:

=================  ==========================================================================
promptfoo          benchrun
=================  ==========================================================================
``equals``         ``equals`` (case-sensitive; benchrun strips surrounding whitespace)
``contains``       ``contains`` (case-sensitive)
``icontains``      ``contains`` (case-insensitive)
``regex``          ``regex`` (case-sensitive)
``not-regex``      ``not_regex`` (case-sensitive)
``not-icontains``  ``must_not`` (case-insensitive)
``is-json``        ``json_schema`` (its ``value`` as the schema, else any JSON; benchrun also
                   accepts JSON inside a ``` fence)
=================  ==========================================================================

Anything else (``llm-rubric``, ``javascript``, ``similar``, a value that is a ``file://`` reference or a
``{{ }}`` template, an assertion with ``transform`` or ``threshold`` ...) is **not dropped silently**: it
is listed in the case's ``metadata.unsupported_asserts``, counted in the dataset's ``source.notes``
and printed by ``benchrun dataset import``. Case ids are ``<file stem>-<test number>``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from benchrun.errors import BadInput
from benchrun.importers import select, source_record

HOMEPAGE = "https://www.promptfoo.dev/docs/configuration/test-cases/"
_PLAIN = {"equals": ("equals", False), "contains": ("contains", False), "icontains": ("contains", True),
          "regex": ("regex", False), "not-regex": ("not_regex", False)}
_KNOWN_KEYS = {"type", "value", "weight", "metric"}


def _load(source: Path) -> tuple[list[dict[str, Any]], list[int], dict[str, Any]]:
    """The tests, the line each starts on, and the config's defaultTest ({} for a bare list)."""
    try:
        text = source.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BadInput(source, None, "file not found; give a promptfoo tests file (YAML)") from None
    except IsADirectoryError:
        raise BadInput(source, None, "is a directory; give one promptfoo tests file (YAML)") from None
    except UnicodeDecodeError:
        raise BadInput(source, None, "not UTF-8 text; is it a promptfoo tests file?") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise BadInput(source, mark.line + 1 if mark is not None else None,
                       f"not valid YAML ({getattr(e, 'problem', None) or 'syntax error'})") from None
    default: dict[str, Any] = {}
    tests_node = node
    if isinstance(data, dict):
        if not isinstance(data.get("tests"), list):
            raise BadInput(source, None, "expected a list of tests, or a config with 'tests: [...]' inline "
                           "(tests loaded from other files are not followed)")
        assert isinstance(node, yaml.MappingNode)
        tests_node = next(v for k, v in node.value if k.value == "tests")
        default = data.get("defaultTest") or {}
        if not isinstance(default, dict):
            raise BadInput(source, None, "'defaultTest' must be a mapping")
        data = data["tests"]
    if not isinstance(data, list) or not data:
        raise BadInput(source, None, "expected a non-empty list of tests ({vars: ..., assert: [...]})")
    assert isinstance(tests_node, yaml.SequenceNode)
    lines = [item.start_mark.line + 1 for item in tests_node.value]
    return data, lines, default


def _check(a: dict[str, Any]) -> tuple[str, Any] | str:
    """("check", dict) / ("must_not", str) for a supported assertion, else the reason it is not supported."""
    t = a.get("type")
    v = a.get("value")
    extra = set(a) - _KNOWN_KEYS
    if extra:
        return f"has {', '.join(sorted(extra))}"
    if isinstance(v, str) and (v.startswith("file://") or "{{" in v):
        return "value is a file reference or a template"
    if t in _PLAIN:
        kind, ignore_case = _PLAIN[t]
        if t in ("equals", "contains", "icontains") and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str):
            return "value is not a string"
        if kind in ("regex", "not_regex"):
            return "check", {"type": kind, "pattern": v, "ignore_case": ignore_case}
        return "check", {"type": kind, "value": v, "ignore_case": ignore_case}
    if t == "not-icontains":
        if not isinstance(v, str):
            return "value is not a string"
        return "must_not", v
    if t == "is-json":
        if v is None:
            return "check", {"type": "json_schema", "schema": {}}
        if isinstance(v, dict):
            return "check", {"type": "json_schema", "schema": v}
        return "value is not a JSON schema"
    return "not supported by benchrun"


def import_promptfoo(source: Path, *, limit: int | None = None, seed: int | None = None,
                     field_map: dict[str, str] | None = None) -> dict[str, Any]:
    """promptfoo tests as a benchrun dataset (plain data); unsupported assertions are recorded, not dropped."""
    fm = dict(field_map or {})
    if set(fm) - {"input"}:
        raise BadInput(source, "--map", "for promptfoo only input=VAR applies (the var that is the prompt's input)")
    tests, lines, default = _load(source)
    numbered = list(zip(range(1, len(tests) + 1), lines, tests, strict=True))
    chosen = select(numbered, limit, seed, source)
    src = source_record(source, "promptfoo", None, HOMEPAGE)
    stem = source.stem.split(".")[0]
    unsupported: Counter[str] = Counter()
    cases: list[dict[str, Any]] = []
    for i, line, test in chosen:
        if not isinstance(test, dict):
            raise BadInput(source, line, "a test must be a mapping with 'vars' and 'assert'")
        for part, where in ((default, "defaultTest"), (test, "test")):
            if not isinstance(part.get("vars") or {}, dict) or not isinstance(part.get("assert") or [], list):
                raise BadInput(source, line, f"{where}: 'vars' must be a mapping and 'assert' a list")
        vars_ = {**(default.get("vars") or {}), **(test.get("vars") or {})}
        if not vars_:
            raise BadInput(source, line, "test has no vars; benchrun needs the input as a var")
        name = fm.get("input") or (next(iter(vars_)) if len(vars_) == 1 else None)
        if name is None:
            raise BadInput(source, line, f"test has vars {sorted(vars_)}; say which is the input with --map input=NAME")
        if name not in vars_:
            raise BadInput(source, line, f"test has no var {name!r} (it has {sorted(vars_)})")
        inp = vars_[name]
        if isinstance(inp, list):
            raise BadInput(source, line, f"var {name!r} is a list (promptfoo runs one test per item); "
                           "write one test per value before importing")
        if not isinstance(inp, (str, int, float)) or isinstance(inp, bool) or not str(inp).strip():
            raise BadInput(source, line, f"var {name!r} must be a non-empty string")
        if isinstance(inp, str) and inp.startswith("file://"):
            raise BadInput(source, line, f"var {name!r} is a file reference; inline its text before importing")
        asserts = [*(default.get("assert") or []), *(test.get("assert") or [])]
        checks: list[dict[str, Any]] = []
        must_not: list[str] = []
        skipped: list[dict[str, Any]] = []
        for a in asserts:
            if not isinstance(a, dict) or not isinstance(a.get("type"), str):
                raise BadInput(source, line, "each assertion must be a mapping with a 'type'")
            got = _check(a)
            if isinstance(got, str):
                unsupported[a["type"]] += 1
                skipped.append({"type": a["type"], "why": got,
                                "value": a.get("value") if isinstance(a.get("value"), (str, int, float)) else
                                json.dumps(a.get("value"), default=str)[:500]})
            elif got[0] == "check":
                checks.append(got[1])
            else:
                must_not.append(got[1])
        meta: dict[str, Any] = {"vars": vars_, "test_number": i, "source_line": line}
        if isinstance(test.get("description"), str):
            meta["description"] = test["description"]
        if skipped:
            meta["unsupported_asserts"] = skipped
        case: dict[str, Any] = {"id": f"{stem}-{i:04d}", "input": str(inp), "checks": checks,
                                "tags": ["promptfoo"], "provenance": {"source": "imported", "added": src["imported"]},
                                "metadata": meta}
        if must_not:
            case["must_not"] = must_not
        from benchrun.spec import Case

        try:
            Case.model_validate(case)
        except ValidationError as e:
            raise BadInput(source, line, f"an assertion is not valid ({e.errors()[0]['msg']})") from None
        cases.append(case)
    if unsupported:
        n = sum(unsupported.values())
        src["notes"] = [f"{n} unsupported assertion(s) not checked: "
                        + ", ".join(f"{t} ×{k}" for t, k in sorted(unsupported.items()))
                        + " (listed in each case's metadata.unsupported_asserts)"]
    return {
        "name": stem,
        "version": src["sha256"][:12],
        "description": f"promptfoo tests ({len(cases)} of {len(tests)}) imported from {source.name}",
        "source": src,
        "cases": cases,
    }
