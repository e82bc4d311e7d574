"""Import MMLU (Hendrycks et al., 2021) in its original CSV layout.

The original release has one headerless CSV per subject and split, e.g. ``data/test/anatomy_test.csv``,
each row ``question,A,B,C,D,answer`` with ``answer`` one of A-D. ``SOURCE`` is one such file or a
directory of them (read in name order). The subject comes from the file name (``anatomy_test.csv``
→ ``anatomy``) and becomes the case's category, so `runs show` breaks results down by subject.
Each case carries ``choices`` and ``answer``: write the prompt template with ``{{ choices_block }}``
(see the README, "Tasks with a right answer").
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from benchrun.errors import BadInput
from benchrun.importers import select, sha256_of, source_record

LICENCE = "MIT (Hendrycks et al., test)"
HOMEPAGE = "https://github.com/hendrycks/test"
_SPLIT = re.compile(r"_(test|val|dev|train|auxiliary_train)$")


def subject_of(path: Path) -> str:
    return _SPLIT.sub("", path.stem)


def _files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix == ".csv")
        if not files:
            raise BadInput(source, None, "no .csv files in this directory; give MMLU's data/test (or one CSV)")
        return files
    if not source.exists():
        raise BadInput(source, None, "file not found; give an MMLU CSV such as anatomy_test.csv, or its directory")
    return [source]


def read_questions(source: Path) -> list[tuple[Path, int, str, list[str]]]:
    """(file, line, subject, row) for every question."""
    out: list[tuple[Path, int, str, list[str]]] = []
    for f in _files(source):
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(f, None, "not UTF-8 text; is it an MMLU CSV?") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            end = 0
            for row in reader:
                n, end = end + 1, reader.line_num  # n: the line the row starts on (a quoted field may span lines)
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != 6:
                    raise BadInput(f, n, f"expected 6 columns (question, A, B, C, D, answer), found {len(row)}")
                if row[5].strip() not in ("A", "B", "C", "D"):
                    raise BadInput(f, n, f"answer must be A, B, C or D, not {row[5].strip()[:20]!r}")
                if not row[0].strip() or any(not c.strip() for c in row[1:5]):
                    raise BadInput(f, n, "the question or a choice is empty")
                out.append((f, n, subject_of(f), row))
        except csv.Error as e:
            raise BadInput(f, reader.line_num, f"not valid CSV ({e})") from None
    if not out:
        raise BadInput(source, None, "no questions found")
    return out


def import_mmlu(source: Path, *, limit: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """MMLU questions as a benchrun dataset (plain data)."""
    all_q = read_questions(source)
    chosen = select(all_q, limit, seed, source)
    if source.is_dir():  # provenance of a directory: the SHA-256 of its files' hashes, in name order
        import hashlib

        src = source_record(_files(source)[0], "mmlu", LICENCE, HOMEPAGE)
        src["file"] = source.name + "/"
        src["sha256"] = hashlib.sha256("".join(f"{p.name}:{sha256_of(p)}\n" for p in _files(source)).encode()
                                       ).hexdigest()
    else:
        src = source_record(source, "mmlu", LICENCE, HOMEPAGE)
    cases = []
    for f, n, subject, row in chosen:
        cases.append({
            "id": f"{subject}-{n:04d}",
            "input": row[0].strip(),
            "choices": [c.strip() for c in row[1:5]],
            "answer": row[5].strip(),
            "category": subject,
            "tags": ["mmlu", subject],
            "provenance": {"source": "imported", "added": src["imported"], "author": "MMLU (Hendrycks et al.)"},
            "metadata": {"file": f.name, "source_line": n},
        })
    subjects = sorted({c["category"] for c in cases})
    return {
        "name": "mmlu",
        "version": src["sha256"][:12],
        "description": f"MMLU ({len(cases)} of {len(all_q)} questions, {len(subjects)} subject(s): "
                       f"{', '.join(subjects[:8])}{' ...' if len(subjects) > 8 else ''}) imported from {src['file']}",
        "source": src,
        "cases": cases,
    }
