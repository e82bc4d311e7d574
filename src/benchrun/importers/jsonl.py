"""Import any JSON Lines file (e.g. a Hugging Face ``datasets`` export) with a field map.

``--map input=question,answer=target,choices=options,category=subject,id=uid,ideal=solution`` says which
field of each row fills which part of a case (a dotted name such as ``question.stem`` reaches into
nested objects). Only ``input`` is required. ``answer`` becomes:

- with ``choices``: the right choice (a letter, a 0-based index or the choice's text), as for MMLU;
- otherwise a check: a JSON number → ``numeric``; a string → ``equals`` (stripped, case-insensitive);
  a list of strings → ``equals_any``. The answer is also kept as the case's ``ideal``.

``input`` may be a string or a list of chat messages (``{"role", "content"}``). Case ids come from
``id`` when mapped, else ``<file stem>-<line>``. A ``.parquet`` file is read with pyarrow when it is
installed (rows are then numbered from 1 in place of lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from benchrun.errors import BadInput
from benchrun.importers import json_lines, select, source_record

KEYS = ("input", "answer", "choices", "category", "id", "ideal")


def parse_map(pairs: list[str] | None, allowed: tuple[str, ...] = KEYS) -> dict[str, str]:
    """``["input=question,answer=target", ...]`` → ``{"input": "question", "answer": "target"}``."""
    out: dict[str, str] = {}
    for chunk in pairs or []:
        for item in chunk.split(","):
            if not item.strip():
                continue
            key, eq, field = item.partition("=")
            key, field = key.strip(), field.strip()
            if not eq or not field:
                raise BadInput(None, "--map", f"{item.strip()!r} is not KEY=FIELD (e.g. input=question)")
            if key not in allowed:
                raise BadInput(None, "--map", f"unknown key {key!r}; known: {', '.join(allowed)}")
            out[key] = field
    return out


def _get(row: dict[str, Any], dotted: str) -> Any:
    cur: Any = row
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def read_rows(source: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line or row number, row) for every non-empty line of a JSON Lines file, or every row of a Parquet file."""
    if source.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq  # type: ignore[import-not-found]
        except ImportError:
            raise BadInput(source, None, "reading Parquet needs pyarrow; install it (pip install pyarrow) "
                           "or export the data as JSON Lines") from None
        try:
            rows = pq.read_table(source).to_pylist()
        except Exception as e:  # pyarrow raises several types for a broken file
            raise BadInput(source, None, f"not a readable Parquet file ({type(e).__name__})") from None
        return [(i, r) for i, r in enumerate(rows, start=1)]
    try:
        text = source.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BadInput(source, None, "file not found") from None
    except IsADirectoryError:
        raise BadInput(source, None, "is a directory; give one .jsonl file") from None
    except UnicodeDecodeError:
        raise BadInput(source, None, "not UTF-8 text; is it a JSON Lines file?") from None
    out: list[tuple[int, dict[str, Any]]] = []
    for n, row in json_lines(text, source):
        if not isinstance(row, dict):
            raise BadInput(source, n, "each line must be a JSON object")
        out.append((n, row))
    if not out:
        raise BadInput(source, None, "no rows in the file")
    return out


def _input(value: Any, source: Path, n: int, field: str) -> str | list[dict[str, str]]:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise BadInput(source, n, f"field {field!r} must be a non-empty string or a list of {{role, content}} messages")


def import_jsonl(source: Path, *, limit: int | None = None, seed: int | None = None,
                 field_map: dict[str, str] | None = None) -> dict[str, Any]:
    """Rows of a JSON Lines (or Parquet) file as a benchrun dataset, fields chosen by ``field_map``."""
    fm = dict(field_map or {})
    if "input" not in fm:
        raise BadInput(source, "--map", "say which field holds the input, e.g. --map input=question,answer=target")
    rows = read_rows(source)
    chosen = select(rows, limit, seed, source)
    src = source_record(source, "jsonl", None)
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, row in chosen:
        case: dict[str, Any] = {}
        if "id" in fm:
            rid = _get(row, fm["id"])
            if not isinstance(rid, (str, int)) or isinstance(rid, bool) or str(rid) == "":
                raise BadInput(source, n, f"field {fm['id']!r} (the id) is missing or not a string/number")
            case["id"] = str(rid)
        else:
            case["id"] = f"{source.stem.split('.')[0]}-{n:05d}"
        if case["id"] in seen:
            raise BadInput(source, n, f"duplicate id {case['id']!r}")
        seen.add(case["id"])
        case["input"] = _input(_get(row, fm["input"]), source, n, fm["input"])
        if "ideal" in fm:
            ideal = _get(row, fm["ideal"])
            if not isinstance(ideal, str):
                raise BadInput(source, n, f"field {fm['ideal']!r} (the ideal) must be a string")
            case["ideal"] = ideal
        answer = _get(row, fm["answer"]) if "answer" in fm else None
        if "answer" in fm and answer is None:
            raise BadInput(source, n, f"field {fm['answer']!r} (the answer) is missing")
        if "choices" in fm:
            choices = _get(row, fm["choices"])
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                raise BadInput(source, n, f"field {fm['choices']!r} (the choices) must be a list of strings")
            if "answer" not in fm:
                raise BadInput(source, "--map", "choices need the right answer too: add answer=FIELD")
            if isinstance(answer, bool) or not isinstance(answer, (str, int)):
                raise BadInput(source, n, f"field {fm['answer']!r}: a choice answer is a letter, an index or a text")
            case["choices"], case["answer"] = choices, answer
        elif "answer" in fm:
            if isinstance(answer, bool):
                raise BadInput(source, n, f"field {fm['answer']!r}: true/false is not an answer; map it to a string")
            if isinstance(answer, (int, float)):
                case["checks"] = [{"type": "numeric", "value": answer}]
                case.setdefault("ideal", str(answer))
            elif isinstance(answer, str) and answer.strip():
                case["checks"] = [{"type": "equals", "value": answer}]
                case.setdefault("ideal", answer)
            elif isinstance(answer, list) and answer and all(isinstance(a, str) and a.strip() for a in answer):
                case["checks"] = [{"type": "equals_any", "values": answer}]
                case.setdefault("ideal", answer[0])
            else:
                raise BadInput(source, n, f"field {fm['answer']!r}: the answer must be a number, a non-empty string "
                               "or a list of strings")
        if "category" in fm:
            cat = _get(row, fm["category"])
            if not isinstance(cat, str) or not cat.strip():
                raise BadInput(source, n, f"field {fm['category']!r} (the category) must be a non-empty string")
            case["category"] = cat
        case["provenance"] = {"source": "imported", "added": src["imported"]}
        case["metadata"] = {"source_line": n}
        cases.append(case)
    from benchrun.spec import Case

    for c in cases:  # a row the map turns into an invalid case: name its line, not a pydantic dump
        try:
            Case.model_validate(c)
        except ValidationError as e:
            raise BadInput(source, c["metadata"]["source_line"], f"not a valid case ({e.errors()[0]['msg']})") from None
    shown_map = ",".join(f"{k}={v}" for k, v in fm.items())
    src["notes"] = [f"--map {shown_map}"]
    return {
        "name": source.stem.split(".")[0],
        "version": src["sha256"][:12],
        "description": f"{len(cases)} of {len(rows)} rows imported from {source.name} "
                       f"(jsonl, --map {shown_map})",
        "source": src,
        "cases": cases,
    }
