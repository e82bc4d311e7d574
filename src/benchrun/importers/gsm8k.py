"""Import GSM8K (JSON Lines: ``question``, and ``answer`` = the reference solution ending in ``#### N``).

Each problem becomes a case whose input is the question and whose check is ``numeric`` against the
final answer N (thousands separators removed: ``#### 1,080`` is 1080). The reference solution, with
its calculator annotations (``<<48/2=24>>``), is kept as the case's ``ideal``. Case ids are
``gsm8k-<line>`` (the line in the source file), so an id names the same problem whatever
``--limit``/``--seed`` selected. Scoring follows GSM8K's own answer parsing: see
``benchrun.scoring.extract.extract_number``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from benchrun.errors import BadInput
from benchrun.importers import json_lines, select, source_record

LICENCE = "MIT (OpenAI, grade-school-math)"
HOMEPAGE = "https://github.com/openai/grade-school-math"
_FINAL = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")


def final_answer(answer: str) -> str | None:
    """The number after the last ``####`` of a reference solution, separators removed (None if absent or not a number)."""
    if "####" not in answer:
        return None
    raw = answer.rsplit("####", 1)[1].strip()
    if not _FINAL.match(raw):
        return None
    return raw.replace(",", "")


def read_problems(source: Path) -> list[tuple[int, dict[str, Any], str]]:
    """(line, problem, final answer) for every problem of a GSM8K JSON Lines file."""
    try:
        text = source.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BadInput(source, None, "file not found; give the path of a GSM8K file such as train.jsonl") from None
    except OSError as e:
        raise BadInput(source, None, f"cannot read the file ({e})") from None
    except UnicodeDecodeError:
        raise BadInput(source, None, "not UTF-8 text; is it a GSM8K .jsonl file?") from None
    out: list[tuple[int, dict[str, Any], str]] = []
    for n, row in json_lines(text, source):
        if not isinstance(row, dict):
            raise BadInput(source, n, "each line must be a JSON object with 'question' and 'answer'")
        missing = [f for f in ("question", "answer") if not isinstance(row.get(f), str) or not row[f].strip()]
        if missing:
            raise BadInput(source, n, f"missing or empty field(s) {missing}; a GSM8K problem has 'question' and 'answer'")
        final = final_answer(row["answer"])
        if final is None:
            raise BadInput(source, n, "'answer' must end with '#### N' where N is a number (GSM8K's reference format)")
        out.append((n, row, final))
    if not out:
        raise BadInput(source, None, "no problems in the file")
    return out


def import_gsm8k(source: Path, *, limit: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """GSM8K as a benchrun dataset (plain data; validate with ``Dataset.model_validate``)."""
    all_problems = read_problems(source)
    problems = select(all_problems, limit, seed, source)
    src = source_record(source, "gsm8k", LICENCE, HOMEPAGE)
    cases = []
    for n, p, final in problems:
        value: int | float = int(final) if re.fullmatch(r"-?\d+", final) else float(final)
        cases.append({
            "id": f"gsm8k-{n:05d}",
            "input": p["question"],
            "ideal": p["answer"],
            "checks": [{"type": "numeric", "value": value}],
            "category": "gsm8k",
            "tags": ["gsm8k", "math"],
            "provenance": {"source": "imported", "added": src["imported"], "author": "OpenAI (GSM8K)"},
            "metadata": {"final_answer": final, "source_line": n},
        })
    return {
        "name": "gsm8k",
        "version": src["sha256"][:12],
        "description": f"GSM8K ({len(cases)} of {len(all_problems)} problems) imported from {source.name}",
        "source": src,
        "cases": cases,
    }
