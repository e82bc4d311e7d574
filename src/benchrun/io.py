"""Reading user files with errors that name the file and line.

Every loader in benchrun goes through these helpers so that a malformed file
always produces a `BadInput` with file, line and what to fix, never a traceback.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from benchrun.errors import BadInput

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_LINE_CHARS = 4 * 1024 * 1024


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file; a missing, empty-named or non-UTF-8 file is `BadInput`."""
    p = Path(path)
    return _decode(p, _read_bytes(p))


def read_source(path: str | Path) -> tuple[str, str]:
    """`read_text`, and the SHA-256 (hex) of the file's bytes as read: the text parsed and the digest of
    exactly those bytes, so a file changing between the two cannot pair one version's digest with the
    other's content."""
    p = Path(path)
    data = _read_bytes(p)
    return _decode(p, data), hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 (hex) of a regular file's bytes, as `read_source` gives it; None when the file is missing,
    not a regular file, over `MAX_FILE_BYTES` or unreadable."""
    try:
        return hashlib.sha256(_read_bytes(Path(path))).hexdigest()
    except (BadInput, OSError):
        return None


def _read_bytes(p: Path) -> bytes:
    if not p.exists():
        raise BadInput(p, None, "file not found; check the path")
    if p.is_dir():
        raise BadInput(p, None, "is a directory; give a file")
    st = p.stat()
    if not stat.S_ISREG(st.st_mode):  # /dev/zero, a FIFO, a socket: stat() says 0 bytes, reading never ends
        raise BadInput(p, None, "is not a regular file (a device, pipe or socket); give a file")
    if st.st_size > MAX_FILE_BYTES:
        raise BadInput(p, None, f"file is {st.st_size} bytes, over the {MAX_FILE_BYTES}-byte limit; split it")
    with p.open("rb") as fh:  # capped: a file may grow, or report size 0 (/proc), after the check
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise BadInput(p, None, f"file is over the {MAX_FILE_BYTES}-byte limit; split it")
    return data


def _decode(p: Path, data: bytes) -> str:
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


# Values an alias may stand for, summed over all aliases of a document. Anchors and merge keys
# (``<<: *defaults``) stay usable; a "billion laughs" document (8 levels of 10 aliases, 700 bytes,
# 10^8 values) is refused at the alias that crosses the budget, before anything is built.
MAX_ALIAS_EXPANSION = 100_000


def _expanded_size(root: yaml.Node, memo: dict[int, int]) -> int:
    """Number of nodes ``root`` stands for with every alias written out (iterative, memoised)."""
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in memo:
            continue
        if not isinstance(node, yaml.CollectionNode):
            memo[id(node)] = 1
            continue
        kids = [c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode) else list(node.value)
        if children_done:
            memo[id(node)] = 1 + sum(memo.get(id(c), 1) for c in kids)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in kids if id(c) not in memo)
    return memo[id(root)]


def _recursive_alias_line(root: yaml.Node) -> int | None:
    """Line of a collection that contains itself through an alias (``&a [*a]``), else None."""
    state: dict[int, int] = {}  # 1 on the path, 2 finished
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, i = stack.pop()
        if not isinstance(node, yaml.CollectionNode):
            continue
        kids = [c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode) else node.value
        if i == 0:
            if state.get(id(node)) == 2:
                continue
            state[id(node)] = 1
        if i < len(kids):
            stack.append((node, i + 1))
            kid = kids[i]
            if state.get(id(kid)) == 1:
                return int(node.start_mark.line) + 1
            if state.get(id(kid)) != 2:
                stack.append((kid, 0))
        else:
            state[id(node)] = 2
    return None


class _AliasBudget:
    """Composes nodes like PyYAML's Composer, refusing an alias that takes the document past the budget."""

    _alias_budget: int
    _sizes: dict[int, int]
    anchors: dict[str, yaml.Node]

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):  # type: ignore[no-untyped-call]
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._alias_budget -= _expanded_size(target, self._sizes)
                if self._alias_budget < 0:
                    raise yaml.composer.ComposerError(
                        None, None, f"alias *{event.anchor} takes the document past {MAX_ALIAS_EXPANSION} aliased "
                        "values (an alias bomb?); write the values out instead of nesting aliases", event.start_mark)
        return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]


class _UniqueKeyLoader(_AliasBudget, yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last) and alias bombs."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._alias_budget = MAX_ALIAS_EXPANSION
        self._sizes: dict[int, int] = {}


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: its keys may be overridden here
            continue
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

_Loader: Any = _UniqueKeyLoader
if getattr(yaml, "__with_libyaml__", False):
    class _UniqueKeyCLoader(_AliasBudget, yaml.composer.Composer, yaml._yaml.CParser,  # type: ignore[misc]
                            yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """The same loader with libyaml's scanner and parser: events come from C (most of the time of loading a
        large dataset went to PyYAML's pure-Python scanner); composing (with the alias budget of
        `_AliasBudget`) and constructing (duplicate keys refused) stay as above."""

        def __init__(self, stream: str) -> None:
            yaml._yaml.CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._alias_budget = MAX_ALIAS_EXPANSION
            self._sizes: dict[int, int] = {}

    _UniqueKeyCLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _Loader = _UniqueKeyCLoader


def load_yaml(path: str | Path, text: str | None = None) -> tuple[Any, yaml.Node | None]:
    """Parse YAML, returning the data and its node tree (for line numbers)."""
    p = Path(path)
    if text is None:
        text = read_text(p)
    if not text.strip():
        raise BadInput(p, None, "file is empty; see the README for the format")
    try:
        loader = _Loader(text)  # PyYAML's reader refuses control characters here, before parsing
    except yaml.YAMLError as e:
        raise BadInput(p, None, f"invalid YAML: {' '.join(str(e).split())}") from None
    try:
        node = loader.get_single_node()  # type: ignore[no-untyped-call]
        if node is not None and (line := _recursive_alias_line(node)) is not None:
            raise BadInput(p, line, "invalid YAML: a value contains itself through an alias; remove the alias")
        data = loader.construct_document(node) if node is not None else None  # type: ignore[no-untyped-call]
    except RecursionError:
        raise BadInput(p, None, "invalid YAML: nested too deeply; flatten the structure") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = e.problem or e.context or "invalid YAML"
        raise BadInput(p, line, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise BadInput(p, None, f"invalid YAML: {e}") from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]
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


@contextlib.contextmanager
def csv_field_limit() -> Iterator[None]:
    """Let one CSV field be as large as a whole file may be (the csv module stops at 128 KiB).

    Past the module's limit the reader raises mid-record and carries on from the next physical line,
    so one large quoted field would become many bogus records.
    """
    old = csv.field_size_limit(MAX_FILE_BYTES)
    try:
        yield
    finally:
        csv.field_size_limit(old)


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell_out(value: str) -> str:
    """A cell for a CSV file people open in spreadsheets: formula-like text gets a leading ``'``.

    OWASP's rule (prefix a cell starting with ``= + - @``, tab or carriage return with a single
    quote), made reversible: text that already is quotes followed by such a character gets one more
    quote, so `csv_cell_in` gives back exactly the original, including an answer starting ``'=``.
    Every other cell is written as it is.
    """
    if value.startswith(FORMULA_START) or (value.startswith("'") and value.lstrip("'").startswith(FORMULA_START)):
        return "'" + value
    return value


def csv_writer(fh: Any) -> Any:
    """The CSV writer for files we hand to people: every cell quoted, ``\\n`` line ends.

    Quoting every cell keeps a bare carriage return inside an answer from ending the record
    (the csv module quotes only for the line terminator's characters). Neutralise cells with
    `csv_cell_out` as well.
    """
    return csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_ALL)


def csv_cell_in(value: str) -> str:
    """Undo `csv_cell_out`: one leading quote is removed from quotes followed by a formula character.

    A cell a spreadsheet saved without the quote (``=x``) and text like ``'hello`` are left as they are.
    """
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_START):
        return value[1:]
    return value


def load_csv(
    path: str | Path, text: str | None = None, *, restore_formulas: bool = False
) -> tuple[list[str], list[tuple[int, dict[str, str]]], list[str]]:
    """Parse CSV. Leading ``# key: value`` lines are returned as comments.

    ``restore_formulas``: the file is one benchrun wrote with `csv_cell_out` (a labels template,
    recorded verdicts); undo it on every cell with `csv_cell_in`.
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
    with csv_field_limit():
        return _csv_rows(p, csv.reader(io.StringIO(body)), start, comments, restore_formulas)


def _csv_rows(
    p: Path, reader: Any, start: int, comments: list[str], restore_formulas: bool
) -> tuple[list[str], list[tuple[int, dict[str, str]]], list[str]]:
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
            if restore_formulas:
                rec = [csv_cell_in(c) for c in rec]
            rows.append((line_no, dict(zip(header, rec, strict=True))))
    except csv.Error as e:
        raise BadInput(p, start + reader.line_num, f"invalid CSV: {e}") from None
    return header, rows, comments
