"""Import MBPP (Austin et al. 2021): JSON Lines (``mbpp.jsonl``) or a JSON list (the sanitized split).

Fields: ``task_id``, ``text`` (``prompt`` in the sanitized split), ``code`` (the reference
solution), ``test_list`` (assert lines), ``test_setup_code``. The input follows the paper's
prompt: the task, then "Your code should pass these tests:" and the asserts, which is how the
model learns the function's name; the check runs the asserts after ``test_setup_code``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchrun.errors import BadInput
from benchrun.importers import json_lines, select, source_record

LICENCE = "CC BY 4.0 (Google Research, MBPP)"
HOMEPAGE = "https://github.com/google-research/google-research/tree/master/mbpp"


def _rows(source: Path) -> list[tuple[int, Any]]:
    from benchrun.io import read_text

    text = read_text(source)
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInput(source, e.lineno, f"not valid JSON ({e.msg})") from None
        return [(i + 1, r) for i, r in enumerate(data)]  # position in the list: there is no line per problem
    return list(json_lines(text, source))


def read_problems(source: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    seen: set[str] = set()
    for n, row in _rows(source):
        if not isinstance(row, dict):
            raise BadInput(source, n, "each problem must be a JSON object with task_id, text, code, test_list")
        text = row.get("text", row.get("prompt"))
        tests = row.get("test_list")
        problems = []
        if row.get("task_id") is None:
            problems.append("task_id")
        if not isinstance(text, str) or not text.strip():
            problems.append("text")
        if not isinstance(row.get("code"), str):
            problems.append("code")
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            problems.append("test_list (a non-empty list of assert lines)")
        if not isinstance(row.get("test_setup_code", ""), str):
            problems.append("test_setup_code")
        if problems:
            raise BadInput(source, n, f"missing or invalid field(s): {', '.join(problems)}")
        tid = str(row["task_id"])
        if tid in seen:
            raise BadInput(source, n, f"duplicate task_id {tid!r}")
        seen.add(tid)
        out.append((n, {**row, "text": text}))
    if not out:
        raise BadInput(source, None, "no problems in the file")
    return out


def prompt_for(text: str, tests: list[str]) -> str:
    """The MBPP paper's prompt (Austin et al. 2021, section 2.1) without few-shot examples."""
    return (f"You are an expert Python programmer, and here is your task: {text.strip()} "
            "Your code should pass these tests:\n\n" + "\n".join(t.strip() for t in tests) + "\n")


def import_mbpp(source: Path, *, limit: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """MBPP as a benchrun dataset (plain data)."""
    from benchrun.spec import Check

    all_problems = read_problems(source)
    problems = select(all_problems, limit, seed, source)
    src = source_record(source, "mbpp", LICENCE, HOMEPAGE)
    cases = []
    for n, p in problems:
        tests = "\n".join(t.strip() for t in p["test_list"]) + "\n"
        check: dict[str, Any] = {"type": "python_tests", "tests": tests}
        if p.get("test_setup_code", "").strip():
            check["setup"] = p["test_setup_code"].replace("\r\n", "\n")
        try:
            Check.model_validate(check)
        except ValueError as e:
            raise BadInput(source, n, f"task {p['task_id']}: {e}") from None
        cases.append({
            "id": f"mbpp/{p['task_id']}",
            "input": prompt_for(p["text"], p["test_list"]),
            "ideal": p["code"].replace("\r\n", "\n"),  # MBPP's files use Windows line ends in code
            "checks": [check],
            "category": "mbpp",
            "tags": ["mbpp", "code"],
            "provenance": {"source": "imported", "added": src["imported"], "author": "Google Research (MBPP)"},
            "metadata": {"task_id": p["task_id"], "source_line": n},
        })
    return {
        "name": "mbpp",
        "version": src["sha256"][:12],
        "description": f"MBPP ({len(cases)} of {len(all_problems)} problems) imported from {source.name}",
        "source": src,
        "cases": cases,
    }
