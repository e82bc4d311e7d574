"""Reading user files with errors that name the file and line.

Every loader in benchrun goes through these helpers so that a malformed file
always produces a `BadInput` with file, line and what to fix, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from benchrun.errors import BadInput

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_LINE_CHARS = 4 * 1024 * 1024


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file; a missing, empty-named or non-UTF-8 file is `BadInput`."""
    p = Path(path)
    if not p.exists():
        raise BadInput(p, None, "file not found; check the path")
    if p.is_dir():
        raise BadInput(p, None, "is a directory; give a file")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise BadInput(p, None, f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit; split it")
    data = p.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise BadInput(p, line, f"not valid UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise BadInput(p, line, "contains a NUL byte; this is not a text file")
    for i, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise BadInput(p, i, f"line is {len(line)} characters, over the {MAX_LINE_CHARS} limit; shorten it")
    return text


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path, text: str | None = None) -> tuple[Any, yaml.Node | None]:
    """Parse YAML, returning the data and its node tree (for line numbers)."""
    p = Path(path)
    if text is None:
        text = read_text(p)
    if not text.strip():
        raise BadInput(p, None, "file is empty; see the README for the format")
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = e.problem or e.context or "invalid YAML"
        raise BadInput(p, line, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise BadInput(p, None, f"invalid YAML: {e}") from None
    return data, node


def mapping_lines(node: yaml.Node | None, key: str) -> list[int]:
    """Line numbers (1-based) of each item in the sequence stored under ``key``."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in v.value]
    return []


def key_line(node: yaml.Node | None, key: str) -> int | None:
    """Line (1-based) of a top-level key, if present."""
    return node_line(node, (key,))


def node_line(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """Line (1-based) of the deepest node found along ``loc`` (mapping keys and sequence indexes).

    ``("candidates", 1, "temp")`` gives the line of ``temp:`` in the second candidate, or of that
    candidate, or of ``candidates:``, whichever is the deepest that exists.
    """
    line: int | None = None
    cur = node
    for part in loc:
        if isinstance(cur, yaml.MappingNode):
            for k, v in cur.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    line, cur = int(k.start_mark.line) + 1, v
                    break
            else:
                break
        elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(cur.value):
            cur = cur.value[part]
            line = int(cur.start_mark.line) + 1
        else:
            break
    return line


def load_jsonl(path: str | Path, text: str | None = None) -> list[tuple[int, Any]]:
    """Parse JSON Lines, returning ``(line_number, object)`` for every non-blank line."""
    p = Path(path)
    if text is None:
        text = read_text(p)
    rows: list[tuple[int, Any]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((i, json.loads(line)))
        except json.JSONDecodeError as e:
            raise BadInput(p, i, f"invalid JSON: {e.msg} at column {e.colno}") from None
    if not rows:
        raise BadInput(p, None, "file is empty; see the README for the format")
    return rows


def load_csv(path: str | Path, text: str | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]], list[str]]:
    """Parse CSV. Leading ``# key: value`` lines are returned as comments.

    Returns (header, rows as (line_number, dict), comment lines).
    """
    p = Path(path)
    if text is None:
        text = read_text(p)
    lines = text.splitlines(keepends=True)
    comments: list[str] = []
    start = 0
    while start < len(lines) and lines[start].lstrip().startswith("#"):
        comments.append(lines[start].lstrip()[1:].strip())
        start += 1
    body = "".join(lines[start:])
    if not body.strip():
        raise BadInput(p, None, "file has no CSV header row; see the README for the format")
    reader = csv.reader(io.StringIO(body))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as e:
        raise BadInput(p, start + 1, f"invalid CSV: {e}") from None
    if len(set(header)) != len(header):
        raise BadInput(p, start + 1, "CSV header repeats a column name")
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for rec in reader:
            line_no = start + reader.line_num
            if not any(c.strip() for c in rec):
                continue
            if len(rec) != len(header):
                raise BadInput(p, line_no, f"row has {len(rec)} fields but the header has {len(header)}")
            rows.append((line_no, dict(zip(header, rec, strict=True))))
    except csv.Error as e:
        raise BadInput(p, start + reader.line_num, f"invalid CSV: {e}") from None
    return header, rows, comments
