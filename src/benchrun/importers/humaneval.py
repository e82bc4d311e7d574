"""Import OpenAI's HumanEval (``HumanEval.jsonl.gz``: task_id, prompt, canonical_solution, test, entry_point).

Each problem becomes a case whose input is the prompt (a signature and docstring) and whose check
runs HumanEval's own ``check(candidate)`` tests in the sandbox with ``prompt_prefix: true``, the
harness's convention: the program is prompt + answer + tests + ``check(entry_point)``. The
canonical solution is kept as the case's ``ideal``.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from benchrun.errors import BadInput
from benchrun.importers import json_lines, select, source_record

LICENCE = "MIT (OpenAI, human-eval)"
HOMEPAGE = "https://github.com/openai/human-eval"
FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def read_problems(source: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line, problem) for every problem in a HumanEval JSON Lines file (gzipped or not)."""
    try:
        raw = gzip.decompress(source.read_bytes()) if source.suffix == ".gz" else source.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise BadInput(source, None, "file not found; give the path of HumanEval.jsonl.gz") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise BadInput(source, None, f"cannot read the file ({e}); is it HumanEval.jsonl.gz?") from None
    except UnicodeDecodeError:
        raise BadInput(source, None, "not UTF-8 text; is it HumanEval.jsonl(.gz)?") from None
    out: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    for n, row in json_lines(text, source):
        if not isinstance(row, dict):
            raise BadInput(source, n, "each line must be a JSON object with " + ", ".join(FIELDS))
        missing = [f for f in FIELDS if not isinstance(row.get(f), str) or not row[f]]
        if missing:
            raise BadInput(source, n, f"missing or empty field(s) {missing}; a HumanEval problem has {', '.join(FIELDS)}")
        if row["task_id"] in seen:
            raise BadInput(source, n, f"duplicate task_id {row['task_id']!r}")
        seen.add(row["task_id"])
        out.append((n, row))
    if not out:
        raise BadInput(source, None, "no problems in the file")
    return out


def import_humaneval(source: Path, *, limit: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """HumanEval as a benchrun dataset (plain data; validate with ``Dataset.model_validate``)."""
    from benchrun.spec import Check

    all_problems = read_problems(source)
    problems = select(all_problems, limit, seed, source)
    src = source_record(source, "humaneval", LICENCE, HOMEPAGE)
    cases = []
    for n, p in problems:
        check = {"type": "python_tests", "prompt_prefix": True, "entry_point": p["entry_point"], "tests": p["test"]}
        try:
            Check.model_validate(check)
        except ValueError as e:
            raise BadInput(source, n, f"task {p['task_id']}: {e}") from None
        cases.append({
            "id": p["task_id"],
            "input": p["prompt"],
            "ideal": p["canonical_solution"],
            "checks": [check],
            "category": "humaneval",
            "tags": ["humaneval", "code"],
            "provenance": {"source": "imported", "added": src["imported"], "author": "OpenAI (HumanEval)"},
            "metadata": {"task_id": p["task_id"], "entry_point": p["entry_point"], "source_line": n},
        })
    return {
        "name": "humaneval",
        "version": src["sha256"][:12],
        "description": f"HumanEval ({len(cases)} of {len(all_problems)} problems) imported from {source.name}",
        "source": src,
        "cases": cases,
    }
