"""Importers: public benchmark files → ordinary benchrun datasets (with provenance).

Each importer is a function ``(source: Path, *, limit: int | None, seed: int | None) -> dict``
(``jsonl`` and ``promptfoo`` also take ``field_map``, from ``--map``) returning a dataset as plain data (``name``, ``version``, ``description``, ``source``, ``cases``)
that :func:`benchrun.spec.Dataset.model_validate` accepts and :func:`write_dataset` saves as YAML.
``source`` records the file, its SHA-256, the import date and the licence, so an imported set is
hashed, diffable and reviewable like any other. Problems in the source file are ``BadInput`` naming
the file and the line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from benchrun.errors import BadInput

T = TypeVar("T")

# format -> (module, function); imported only when used
IMPORTERS: dict[str, tuple[str, str]] = {
    "arc": ("benchrun.importers.arc", "import_arc"),
    "gsm8k": ("benchrun.importers.gsm8k", "import_gsm8k"),
    "humaneval": ("benchrun.importers.humaneval", "import_humaneval"),
    "jsonl": ("benchrun.importers.jsonl", "import_jsonl"),
    "mbpp": ("benchrun.importers.mbpp", "import_mbpp"),
    "mmlu": ("benchrun.importers.mmlu", "import_mmlu"),
    "openai-evals": ("benchrun.importers.openai_evals", "import_openai_evals"),
    "promptfoo": ("benchrun.importers.promptfoo", "import_promptfoo"),
}


def get_importer(fmt: str) -> Any:
    """The importer function for a format name (``KeyError`` for an unknown one)."""
    import importlib

    module, fn = IMPORTERS[fmt]
    return getattr(importlib.import_module(module), fn)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_record(path: Path, fmt: str, licence: str | None, homepage: str | None = None,
                  today: dt.date | None = None) -> dict[str, Any]:
    return {"format": fmt, "file": path.name, "sha256": sha256_of(path),
            "imported": (today or dt.date.today()).isoformat(), "licence": licence, "homepage": homepage}


def select(items: list[T], limit: int | None, seed: int | None, path: Path) -> list[T]:
    """The first ``limit`` items, or with ``seed`` a seeded random sample of them (kept in source order)."""
    if limit is not None and limit < 1:
        raise BadInput(path, None, f"--limit must be at least 1, not {limit}")
    if limit is None or limit >= len(items):
        return list(items)
    if seed is None:
        return items[:limit]
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


def json_lines(text: str, source: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line of a JSON Lines text; a line that is not JSON
    is `BadInput` naming the file and the line."""
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInput(source, n, f"not valid JSON ({e.msg})") from None
        yield n, value


def write_dataset(data: dict[str, Any], out: Path) -> Path:
    """Validate ``data`` as a dataset and write it as YAML (multi-line strings in block style)."""
    from benchrun.spec import Dataset

    Dataset.model_validate(data)  # never write a file benchrun would refuse to load

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, s: str) -> yaml.Node:
        if "\n" in s and not any(c in s for c in "\r\t") and s == s.rstrip(" "):
            return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|")
        return dumper.represent_scalar("tag:yaml.org,2002:str", s)

    _Dumper.add_representer(str, _str)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    tmp.replace(out)
    return out
