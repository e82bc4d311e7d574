"""Read a battles file (JSON Lines) for `benchrun arena --battles FILE`.

One JSON object per line::

    {"model_a": "gpt-x", "model_b": "llama-y", "winner": "model_a", "case_id": "q17",
     "judge": "human:ann", "len_a": 812, "len_b": 640, "category": "summarise"}

``model_a``, ``model_b`` (non-empty strings, different) and ``winner`` ("model_a", "model_b" or
"tie") are required; ``case_id``, ``judge`` and ``category`` are optional strings (a number is
accepted as ``case_id``); ``len_a`` and ``len_b`` optional non-negative numbers. Unknown fields are
an error (a typo such as ``winer`` would otherwise pass silently). The file goes through
`benchrun.io.read_text` (size, line length, UTF-8 and NUL checks); at most ``MAX_BATTLES`` battles and
names of at most ``MAX_NAME`` characters. Every problem is a `BadInput` naming the file and line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchrun.analysis.arena import WINNERS, Battle
from benchrun.errors import BadInput
from benchrun.io import load_jsonl, read_text

FIELDS = ("model_a", "model_b", "winner", "case_id", "judge", "len_a", "len_b", "category")
MAX_BATTLES = 2_000_000
MAX_NAME = 200


def _name(p: Path, line: int, obj: dict[str, Any], key: str, required: bool) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise BadInput(p, line, f"'{key}' is missing; every battle needs model_a, model_b and winner")
        return None
    if key == "case_id" and isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not v.strip():
        raise BadInput(p, line, f"'{key}' must be a non-empty string, got {type(v).__name__} {str(v)[:40]!r}")
    if len(v) > MAX_NAME:
        raise BadInput(p, line, f"'{key}' is {len(v)} characters, over the {MAX_NAME} limit; shorten it")
    if any(ord(ch) < 32 for ch in v):
        raise BadInput(p, line, f"'{key}' contains a control character; remove it")
    return v


def _length(p: Path, line: int, obj: dict[str, Any], key: str) -> float | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise BadInput(p, line, f"'{key}' must be a non-negative number (characters or tokens), got {str(v)[:40]!r}")
    return float(v)


def load_battles(path: str | Path) -> list[Battle]:
    """Parse and check a battles file; `BadInput` (exit 2) with file and line on the first problem."""
    p = Path(path)
    text = read_text(p)
    if text.count("\n") > MAX_BATTLES + 1000:
        raise BadInput(p, None, f"more than {MAX_BATTLES} lines; split the file or sample battles")
    rows = load_jsonl(p, text)
    if len(rows) > MAX_BATTLES:
        raise BadInput(p, None, f"{len(rows)} battles, over the {MAX_BATTLES} limit; sample battles")
    battles: list[Battle] = []
    for line, obj in rows:
        if not isinstance(obj, dict):
            raise BadInput(p, line, "each line must be a JSON object with model_a, model_b and winner")
        unknown = sorted(set(obj) - set(FIELDS))
        if unknown:
            raise BadInput(p, line, f"unknown field(s) {', '.join(repr(u)[:40] for u in unknown[:5])}; allowed: "
                           f"{', '.join(FIELDS)}")
        a = _name(p, line, obj, "model_a", True)
        b = _name(p, line, obj, "model_b", True)
        if a == b:
            raise BadInput(p, line, f"model_a and model_b are both {a!r}; a battle needs two different models")
        w = obj.get("winner")
        if w not in WINNERS:
            raise BadInput(p, line, f"winner must be one of {', '.join(WINNERS)}, got {str(w)[:40]!r}")
        battles.append(Battle(a or "", b or "", str(w), case_id=_name(p, line, obj, "case_id", False),
                              judge=_name(p, line, obj, "judge", False), len_a=_length(p, line, obj, "len_a"),
                              len_b=_length(p, line, obj, "len_b"), category=_name(p, line, obj, "category", False)))
    lens = [(bt.len_a is None) == (bt.len_b is None) for bt in battles]
    if not all(lens):
        line = rows[lens.index(False)][0]
        raise BadInput(p, line, "give both len_a and len_b, or neither")
    return battles
