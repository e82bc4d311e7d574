"""Loading a production traffic sample: JSON Lines, CSV or a SQLite table.

Each row needs a text column (``text`` unless told otherwise). Optional columns:
a timestamp (ISO 8601 string or Unix seconds), a session id, a turn index, a
tool-call count and a session outcome. Columns left at their default name are
used when present; a column named explicitly must exist.

Rows that cannot be used (invalid JSON, wrong field count, empty text, an
unparseable timestamp, ...) are skipped and counted by reason, so the user sees
``skipped 12 rows: 9 empty text, 3 invalid JSON``. A missing column or a file
with no usable row is a `BadInput`.

Time window: ``window_days=N`` keeps rows newer than ``anchor - N days`` where
the anchor is the newest timestamp in the file (default, so re-running on the
same file gives the same sample) or the current time (``window_anchor="now"``).

Weekday stratification: ``by_weekday=True`` gives every row the weight
``N / (W * n_d)`` (``n_d`` rows on its weekday ``d``, ``W`` weekdays present), so
each weekday carries the same total weight and a spike on one day cannot
dominate the traffic shares. Weights average 1; without the option all are 1.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import numpy as np

from benchrun.errors import BadInput
from benchrun.io import csv_field_limit, read_text

DEFAULT_COLUMNS: dict[str, str] = {
    "text": "text",
    "timestamp": "timestamp",
    "session": "session_id",
    "turn": "turn",
    "tool_calls": "tool_calls",
    "outcome": "outcome",
}

SUCCESS_WORDS = frozenset({"success", "succeeded", "resolved", "completed", "complete", "ok", "true", "1", "yes"})
FAILURE_WORDS = frozenset(
    {"abandoned", "abandonment", "abandon", "failure", "failed", "fail", "unresolved", "false", "0", "no", "error"}
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class ProductionRow:
    """One usable production record."""

    text: str
    timestamp: dt.datetime | None = None
    session: str | None = None
    turn: float | None = None
    tool_calls: float | None = None
    outcome: float | None = None  # 1 success, 0 abandonment/failure, None unknown


@dataclass
class ProductionSample:
    """The production rows kept after parsing, windowing and weighting."""

    source: str
    rows: list[ProductionRow]
    weights: np.ndarray
    rows_read: int
    skipped: dict[str, int] = field(default_factory=dict)
    columns: dict[str, str | None] = field(default_factory=dict)
    window: dict[str, Any] | None = None
    by_weekday: bool = False

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.rows]

    @property
    def has_sessions(self) -> bool:
        return self.columns.get("session") is not None

    @property
    def hash(self) -> str:
        """SHA-256 over the kept texts (in order): identifies the production sample."""
        h = hashlib.sha256()
        for r in self.rows:
            h.update(hashlib.sha256(r.text.encode("utf-8")).digest())
        return h.hexdigest()

    def describe_skipped(self) -> str:
        if not self.skipped:
            return "no rows skipped"
        total = sum(self.skipped.values())
        parts = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items(), key=lambda kv: -kv[1]))
        return f"skipped {total} rows: {parts}"


class _Skip(Exception):
    """A row that cannot be used; the message is the reason."""


# ----------------------------------------------------------------------------- parsing values


def parse_timestamp(value: Any) -> dt.datetime | None:
    """ISO 8601 text or Unix seconds/milliseconds to an aware UTC datetime; blank is None.

    Naive timestamps are taken as UTC. Raises `_Skip` when the value cannot be read.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Skip("unreadable timestamp")
    if isinstance(value, (int, float)):
        return _from_epoch(float(value))
    s = str(value).strip()
    if not s:
        return None
    try:
        return _from_epoch(float(s))
    except ValueError:
        pass
    try:
        ts = dt.datetime.fromisoformat(s.replace(" ", "T", 1) if len(s) > 10 else s)
    except ValueError:
        raise _Skip("unreadable timestamp") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(dt.UTC)


def _from_epoch(x: float) -> dt.datetime:
    if not math.isfinite(x):
        raise _Skip("unreadable timestamp")
    if abs(x) > 1e11:  # milliseconds
        x /= 1000.0
    try:
        return dt.datetime.fromtimestamp(x, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise _Skip("unreadable timestamp") from None


def _number(value: Any, what: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return float(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _Skip(f"unreadable {what}") from None
    if not math.isfinite(x) or x < 0:
        raise _Skip(f"unreadable {what}")
    return x


def _tool_calls(value: Any) -> float | None:
    """A count, or a JSON list of calls (its length)."""
    if isinstance(value, list):
        return float(len(value))
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise _Skip("unreadable tool-call count") from None
        if isinstance(parsed, list):
            return float(len(parsed))
    return _number(value, "tool-call count")


def _outcome(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    s = str(value).strip().lower()
    if not s:
        return None
    if s in SUCCESS_WORDS:
        return 1.0
    if s in FAILURE_WORDS:
        return 0.0
    raise _Skip("unreadable outcome (use success/abandoned)")


# ----------------------------------------------------------------------------- sources


def parse_production_path(path: str | Path, table: str | None = None) -> tuple[Path, str, str | None]:
    """Split ``sqlite:///file.db?table=NAME`` / ``file.db`` / ``file.jsonl`` into (path, format, table)."""
    s = str(path)
    if s.startswith("sqlite:"):
        u = urlparse(s, allow_fragments=False)  # a '#' is part of the file name, not a fragment
        p = Path(u.path if not u.netloc else u.netloc + u.path)
        q = parse_qs(u.query).get("table")
        return p, "sqlite", table or (q[0] if q else None)
    p = Path(s)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return p, "jsonl", None
    if suffix in (".csv", ".tsv"):
        return p, "csv", None
    if suffix in (".db", ".sqlite", ".sqlite3"):
        return p, "sqlite", table
    raise BadInput(p, None, f"unknown production format '{suffix}'; use .jsonl, .csv, or a SQLite .db with a table")


def _resolve_columns(available: set[str], given: dict[str, str | None], file: Path) -> dict[str, str | None]:
    """Map role -> column name: a default name is used when present, an explicit one must exist."""
    cols: dict[str, str | None] = {}
    for role, default in DEFAULT_COLUMNS.items():
        name = given.get(role)
        explicit = name is not None
        name = name or default
        if name in available:
            cols[role] = name
        elif explicit or role == "text":
            shown = ", ".join(sorted(available)) or "none"
            flag = "--" + role.replace("_", "-") + "-column"
            raise BadInput(
                file, "header", f"no column '{name}' (for the {role}); available columns: {shown}; name it with {flag}"
            )
        else:
            cols[role] = None
    return cols


def _read_jsonl(
    p: Path, skipped: Counter[str], bad_lines: list[int]
) -> tuple[list[tuple[int, dict[str, Any]]], set[str] | None]:
    text = read_text(p)
    rows: list[tuple[int, dict[str, Any]]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            skipped["invalid JSON"] += 1
            bad_lines.append(i)
            continue
        if not isinstance(obj, dict):
            skipped["not a JSON object"] += 1
            bad_lines.append(i)
            continue
        rows.append((i, obj))
    return rows, None


def _read_csv(
    p: Path, skipped: Counter[str], bad_lines: list[int]
) -> tuple[list[tuple[int, dict[str, Any]]], set[str] | None]:
    text = read_text(p)
    if not text.strip():
        raise BadInput(p, None, "file is empty; production CSV needs a header row with a 'text' column")
    delim = "\t" if p.suffix.lower() == ".tsv" else ","
    with csv_field_limit():
        return _csv_records(p, csv.reader(io.StringIO(text), delimiter=delim), skipped, bad_lines)


def _csv_records(
    p: Path, reader: Any, skipped: Counter[str], bad_lines: list[int]
) -> tuple[list[tuple[int, dict[str, Any]]], set[str] | None]:
    """One entry (a row or one skipped row) per CSV record; a field is never limited below the file size."""
    try:
        header = [h.strip() for h in next(reader)]
    except (csv.Error, StopIteration) as e:
        raise BadInput(p, 1, f"invalid CSV header: {e}") from None
    if len(set(header)) != len(header):
        raise BadInput(p, 1, "CSV header repeats a column name")
    rows: list[tuple[int, dict[str, Any]]] = []
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error:
            skipped["invalid CSV quoting"] += 1
            bad_lines.append(reader.line_num)
            continue
        if not any(c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            skipped["wrong number of CSV fields"] += 1
            bad_lines.append(reader.line_num)
            continue
        rows.append((reader.line_num, dict(zip(header, rec, strict=True))))
    return rows, set(header)


def _read_sqlite(
    p: Path, table: str | None, given: dict[str, str | None]
) -> tuple[list[tuple[int, dict[str, Any]]], set[str]]:
    if not p.exists():
        raise BadInput(p, None, "file not found; check the path")
    try:
        # quoted: a '#' or '?' in the path would otherwise end it (and drop mode=ro, creating a file)
        con = sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise BadInput(p, None, f"cannot open SQLite database: {e}") from None
    try:
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")]
        except sqlite3.DatabaseError as e:
            raise BadInput(p, None, f"not a readable SQLite database: {e}") from None
        if table is None:
            raise BadInput(p, None, f"name the table with --table or ?table=NAME; tables: {', '.join(tables) or 'none'}")
        if table not in tables:
            raise BadInput(p, f"table {table}", f"no such table; tables: {', '.join(tables) or 'none'}")
        info = con.execute(f'PRAGMA table_info("{table}")').fetchall()
        available = {r[1] for r in info}
        cols = _resolve_columns(available, given, p)
        wanted = [c for c in cols.values() if c]
        for c in wanted:
            if not _IDENT.match(c) and '"' in c:
                raise BadInput(p, f"table {table}", f"column name {c!r} cannot be quoted")
        sel = ", ".join(f'"{c}"' for c in wanted)
        cur = con.execute(f'SELECT {sel} FROM "{table}"')
        rows = [(i, dict(zip(wanted, rec, strict=True))) for i, rec in enumerate(cur, start=1)]
    finally:
        con.close()
    return rows, available


# ----------------------------------------------------------------------------- main loader


def load_production(
    path: str | Path,
    *,
    table: str | None = None,
    text_column: str | None = None,
    timestamp_column: str | None = None,
    session_column: str | None = None,
    turn_column: str | None = None,
    tool_calls_column: str | None = None,
    outcome_column: str | None = None,
    window_days: float | None = None,
    window_anchor: str = "newest",
    by_weekday: bool = False,
    sample_size: int | None = None,
    seed: int = 0,
    now: dt.datetime | None = None,
) -> ProductionSample:
    """Read production traffic and return the rows to analyse (see the module docstring)."""
    p, fmt, table = parse_production_path(path, table)
    given = {
        "text": text_column,
        "timestamp": timestamp_column,
        "session": session_column,
        "turn": turn_column,
        "tool_calls": tool_calls_column,
        "outcome": outcome_column,
    }
    skipped: Counter[str] = Counter()
    bad_lines: list[int] = []  # where unusable rows are, to point at the first when none is usable
    unit = "row" if fmt == "sqlite" else "line"
    if fmt == "jsonl":
        raw, available = _read_jsonl(p, skipped, bad_lines)
    elif fmt == "csv":
        raw, available = _read_csv(p, skipped, bad_lines)
    else:
        raw, available = _read_sqlite(p, table, given)
    rows_read = len(raw) + sum(skipped.values())
    if rows_read == 0:
        raise BadInput(p, None, f"file is empty (no production rows); it needs one record per query with a '{text_column or 'text'}' column")
    if available is None:  # JSONL: a column is present when any row has it
        seen: set[str] = set()
        for _, obj in raw:
            seen.update(obj.keys())
        if not raw:
            raise BadInput(p, None, f"no readable rows ({_summary(skipped)}, the first at line {bad_lines[0]}); "
                           "each line must be a JSON object")
        available = seen
    cols = _resolve_columns(available, given, p)

    if window_days is not None:
        if window_days <= 0:
            raise BadInput(p, "--window-days", "the window must be a positive number of days")
        if cols["timestamp"] is None:
            raise BadInput(p, "--window-days", "a time window needs a timestamp column; name it with --timestamp-column")
    if by_weekday and cols["timestamp"] is None:
        raise BadInput(p, "--by-weekday", "weekday stratification needs a timestamp column; name it with --timestamp-column")
    if window_anchor not in ("newest", "now"):
        raise BadInput(p, "--window-anchor", "use 'newest' or 'now'")

    rows: list[ProductionRow] = []
    tcol = cols["text"]
    assert tcol is not None
    for line, obj in raw:
        try:
            rows.append(_row(obj, cols, tcol))
        except _Skip as s:
            skipped[str(s)] += 1
            bad_lines.append(line)

    window: dict[str, Any] | None = None
    if window_days is not None:
        stamped = [r for r in rows if r.timestamp is not None]
        if len(stamped) < len(rows):
            skipped["no timestamp (needed for the window)"] += len(rows) - len(stamped)
        if not stamped:
            raise BadInput(p, None, f"no row has a readable timestamp; {_summary(skipped)}")
        anchor = max(r.timestamp for r in stamped if r.timestamp) if window_anchor == "newest" else (now or dt.datetime.now(dt.UTC))
        start = anchor - dt.timedelta(days=window_days)
        kept = [r for r in stamped if r.timestamp is not None and start < r.timestamp <= anchor]
        skipped["outside the time window"] += len(stamped) - len(kept)
        rows = kept
        window = {"days": window_days, "anchor": window_anchor, "start": start.isoformat(), "end": anchor.isoformat()}

    if by_weekday:
        missing = sum(1 for r in rows if r.timestamp is None)
        if missing:
            skipped["no timestamp (needed for weekday weights)"] += missing
            rows = [r for r in rows if r.timestamp is not None]

    if not rows:
        first = f" (the first unusable at {unit} {min(bad_lines)})" if bad_lines else ""
        raise BadInput(p, None, f"no usable production rows; {_summary(skipped)}{first}")

    if sample_size is not None and sample_size < len(rows):
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(rows), size=sample_size, replace=False))
        rows = [rows[i] for i in idx]

    weights = weekday_weights([r.timestamp for r in rows]) if by_weekday else np.ones(len(rows))
    return ProductionSample(
        source=str(path),
        rows=rows,
        weights=weights,
        rows_read=rows_read,
        skipped={k: v for k, v in skipped.items() if v},
        columns=cols,
        window=window,
        by_weekday=by_weekday,
    )


def _summary(skipped: Counter[str]) -> str:
    if not skipped:
        return "no rows skipped"
    return "skipped " + ", ".join(f"{n} {k}" for k, n in skipped.most_common() if n)


def _row(obj: dict[str, Any], cols: dict[str, str | None], tcol: str) -> ProductionRow:
    if tcol not in obj:
        raise _Skip(f"no '{tcol}' field")
    text = obj[tcol]
    if text is None or not isinstance(text, (str, int, float)) or isinstance(text, bool):
        raise _Skip("text is not a string")
    text = str(text)
    if not text.strip():
        raise _Skip("empty text")

    def get(role: str) -> Any:
        c = cols.get(role)
        return obj.get(c) if c else None

    session = get("session")
    return ProductionRow(
        text=text,
        timestamp=parse_timestamp(get("timestamp")),
        session=None if session is None or str(session).strip() == "" else str(session),
        turn=_number(get("turn"), "turn index"),
        tool_calls=_tool_calls(get("tool_calls")),
        outcome=_outcome(get("outcome")),
    )


def weekday_weights(timestamps: list[dt.datetime | None]) -> np.ndarray:
    """Weights giving each weekday present the same total: ``w_i = N / (W * n_{d(i)})``."""
    days = [t.weekday() if t is not None else -1 for t in timestamps]
    counts = Counter(days)
    n, w = len(days), len(counts)
    return np.array([n / (w * counts[d]) for d in days], dtype=float)
