"""Import OpenAI Evals samples (JSON Lines, the ``samples.jsonl`` of a registry eval).

Each line: ``{"input": [{"role", "content"}, ...] or "a prompt", "ideal": "answer" or ["a", "b", ...]}``.
The messages become the case's input as they are (the run's prompt template does not apply to chat
input); ``ideal`` becomes an ``equals_any`` check over the acceptable answers (stripped,
case-insensitive; one string is a list of one) and the first of them is the case's ``ideal``. OpenAI
Evals' few-shot convention, ``system`` messages named ``example_user`` / ``example_assistant``, is
turned into ``user`` / ``assistant`` turns (recorded in the case's metadata); any other ``name`` is
refused, as benchrun's messages carry none. Case ids are ``<file stem>-<line>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchrun.errors import BadInput
from benchrun.importers import select, source_record
from benchrun.importers.jsonl import read_rows

HOMEPAGE = "https://github.com/openai/evals"
_NAMED = {"example_user": "user", "example_assistant": "assistant"}
_ROLES = ("system", "user", "assistant")


def _messages(value: Any, source: Path, n: int) -> tuple[str | list[dict[str, str]], int]:
    """The input as benchrun takes it, and how many named example messages were turned into turns."""
    if isinstance(value, str):
        if not value.strip():
            raise BadInput(source, n, "'input' is empty")
        return value, 0
    if not isinstance(value, list) or not value:
        raise BadInput(source, n, "'input' must be a list of {role, content} messages or a string")
    out: list[dict[str, str]] = []
    renamed = 0
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in _ROLES:
            raise BadInput(source, n, f"input message {i}: expected {{\"role\": system|user|assistant, \"content\": "
                           "\"...\"}")
        role, name = m["role"], m.get("name")
        if name is not None:
            if name not in _NAMED:
                raise BadInput(source, n, f"input message {i}: name {name!r} is not supported "
                               "(only example_user / example_assistant)")
            role, renamed = _NAMED[name], renamed + 1
        extra = set(m) - {"role", "content", "name"}
        if extra:
            raise BadInput(source, n, f"input message {i}: unsupported field(s) {sorted(extra)}")
        out.append({"role": role, "content": m["content"]})
    if out[-1]["role"] == "assistant":
        raise BadInput(source, n, "the last input message is the assistant's; the sample must end with a prompt")
    return out, renamed


def import_openai_evals(source: Path, *, limit: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """OpenAI Evals samples as a benchrun dataset (plain data)."""
    rows = read_rows(source)
    chosen = select(rows, limit, seed, source)
    src = source_record(source, "openai-evals", None, HOMEPAGE)
    stem = source.stem.split(".")[0]
    cases: list[dict[str, Any]] = []
    total_renamed = 0
    for n, row in chosen:
        if "input" not in row or "ideal" not in row:
            raise BadInput(source, n, "a sample needs 'input' (messages) and 'ideal' (an answer or a list of them)")
        inp, renamed = _messages(row["input"], source, n)
        total_renamed += renamed
        ideal = row["ideal"]
        values = [ideal] if isinstance(ideal, str) else ideal
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise BadInput(source, n, "'ideal' must be a non-empty string or a list of non-empty strings")
        meta: dict[str, Any] = {"source_line": n}
        if renamed:
            meta["example_messages_as_turns"] = renamed
        cases.append({
            "id": f"{stem}-{n:05d}",
            "input": inp,
            "ideal": values[0],
            "checks": [{"type": "equals_any", "values": values}],
            "tags": ["openai-evals"],
            "provenance": {"source": "imported", "added": src["imported"]},
            "metadata": meta,
        })
    if total_renamed:
        src["notes"] = [f"{total_renamed} system message(s) named example_user/example_assistant became "
                        "user/assistant turns"]
    return {
        "name": stem,
        "version": src["sha256"][:12],
        "description": f"OpenAI Evals samples ({len(cases)} of {len(rows)}) imported from {source.name}",
        "source": src,
        "cases": cases,
    }
