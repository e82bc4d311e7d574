"""Import ARC (AI2 Reasoning Challenge, Clark et al., 2018) in its original JSON Lines layout.

Each line: ``{"id", "question": {"stem", "choices": [{"label", "text"}, ...]}, "answerKey"}``.
Labels are letters (``A``-``E``) in most rows and digits (``1``-``4``) in some; benchrun always shows
choices lettered in their original order, so ``answerKey`` is turned into the index of the choice
whose label it names. The split (``Challenge`` / ``Easy``) is read from the file name when present
and becomes the category.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchrun.errors import BadInput
from benchrun.importers import json_lines, select, source_record

LICENCE = "CC BY-SA 4.0 (AI2)"
HOMEPAGE = "https://allenai.org/data/arc"


def _category(source: Path) -> str:
    name = source.name.lower()
    if "challenge" in name:
        return "arc-challenge"
    if "easy" in name:
        return "arc-easy"
    return "arc"


def read_questions(source: Path) -> list[tuple[int, dict[str, Any], list[str], int]]:
    """(line, row, choice texts, index of the right choice) for every question."""
    try:
        text = source.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BadInput(source, None, "file not found; give an ARC .jsonl file such as ARC-Challenge-Test.jsonl") from None
    except UnicodeDecodeError:
        raise BadInput(source, None, "not UTF-8 text; is it an ARC .jsonl file?") from None
    out: list[tuple[int, dict[str, Any], list[str], int]] = []
    seen: set[str] = set()
    for n, row in json_lines(text, source):
        q = row.get("question") if isinstance(row, dict) else None
        if not isinstance(q, dict) or not isinstance(q.get("stem"), str) or not isinstance(q.get("choices"), list):
            raise BadInput(source, n, "expected {\"id\", \"question\": {\"stem\", \"choices\": [...]}, \"answerKey\"}")
        rid, key = row.get("id"), row.get("answerKey")
        if not isinstance(rid, str) or not rid or not isinstance(key, str):
            raise BadInput(source, n, "missing 'id' or 'answerKey'")
        if rid in seen:
            raise BadInput(source, n, f"duplicate id {rid!r}")
        seen.add(rid)
        labels, texts = [], []
        for ch in q["choices"]:
            if not isinstance(ch, dict) or not isinstance(ch.get("label"), str) or not isinstance(ch.get("text"), str):
                raise BadInput(source, n, "each choice must be {\"label\": ..., \"text\": ...}")
            labels.append(ch["label"].strip())
            texts.append(ch["text"].strip())
        if key.strip() not in labels:
            raise BadInput(source, n, f"answerKey {key!r} is not one of the labels {labels}")
        if not 2 <= len(texts) <= 26 or any(not t for t in texts):
            raise BadInput(source, n, "a question needs 2 to 26 non-empty choices")
        out.append((n, row, texts, labels.index(key.strip())))
    if not out:
        raise BadInput(source, None, "no questions in the file")
    return out


def import_arc(source: Path, *, limit: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """ARC questions as a benchrun dataset (plain data)."""
    all_q = read_questions(source)
    chosen = select(all_q, limit, seed, source)
    src = source_record(source, "arc", LICENCE, HOMEPAGE)
    cat = _category(source)
    cases = []
    for n, row, texts, idx in chosen:
        cases.append({
            "id": row["id"],
            "input": row["question"]["stem"].strip(),
            "choices": texts,
            "answer": idx,
            "category": cat,
            "tags": ["arc", cat],
            "provenance": {"source": "imported", "added": src["imported"], "author": "AI2 (ARC)"},
            "metadata": {"answer_key": row["answerKey"], "labels": [c["label"] for c in row["question"]["choices"]],
                         "source_line": n},
        })
    return {
        "name": cat,
        "version": src["sha256"][:12],
        "description": f"ARC ({len(cases)} of {len(all_q)} questions) imported from {source.name}",
        "source": src,
        "cases": cases,
    }
