"""Loading production traffic: formats, columns, windows, weekday weights, bad input."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from benchrun.coverage.production import load_production, parse_timestamp, weekday_weights
from benchrun.errors import BadInput

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)  # a Wednesday


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _sqlite(path: Path, rows: list[tuple[str, str]], table: str = "queries") -> Path:
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, query TEXT, ts TEXT)")
    con.executemany(f"INSERT INTO {table} (query, ts) VALUES (?, ?)", rows)
    con.commit()
    con.close()
    return path


def test_jsonl_default_columns_and_skips_with_reasons(tmp_path: Path) -> None:
    p = _jsonl(
        tmp_path / "prod.jsonl",
        [
            {"text": "where is my card", "timestamp": "2024-05-01T10:00:00Z", "session_id": "s1"},
            {"text": "  ", "timestamp": "2024-05-01T10:00:00Z"},
            "{not json",
            "[1, 2]",
            {"text": "exchange rate?", "timestamp": "yesterday-ish"},
            {"other": "no text field"},
            {"text": "top up failed", "timestamp": 1714560000},
        ],
    )
    s = load_production(p)
    assert s.texts == ["where is my card", "top up failed"]
    assert s.rows_read == 7
    assert s.skipped == {
        "empty text": 1,
        "invalid JSON": 1,
        "not a JSON object": 1,
        "unreadable timestamp": 1,
        "no 'text' field": 1,
    }
    assert "skipped 5 rows" in s.describe_skipped()
    assert s.columns["timestamp"] == "timestamp" and s.columns["session"] == "session_id"
    assert s.columns["turn"] is None
    assert s.rows[1].timestamp == dt.datetime(2024, 5, 1, 10, 40, tzinfo=dt.UTC)
    assert np.all(s.weights == 1.0)


def test_csv_custom_text_column_and_bad_rows(tmp_path: Path) -> None:
    p = tmp_path / "prod.csv"
    p.write_text('query,when\n"hello there",2024-01-01\n"a,b,c",too,many\n"",2024-01-02\nbye,\n', encoding="utf-8")
    s = load_production(p, text_column="query", timestamp_column="when")
    assert s.texts == ["hello there", "bye"]
    assert s.skipped == {"wrong number of CSV fields": 1, "empty text": 1}
    with pytest.raises(BadInput) as e:
        load_production(p)
    assert "no column 'text'" in str(e.value) and "query, when" in str(e.value) and str(p) in str(e.value)


def test_sqlite_url_and_table_option(tmp_path: Path) -> None:
    db = _sqlite(tmp_path / "prod.db", [("card lost", "2024-05-01"), ("pin blocked", "2024-05-02"), ("", None)])
    a = load_production(f"sqlite:///{db}?table=queries", text_column="query", timestamp_column="ts")
    b = load_production(db, table="queries", text_column="query", timestamp_column="ts")
    assert a.texts == b.texts == ["card lost", "pin blocked"]
    assert a.skipped == {"empty text": 1}
    assert a.hash == b.hash
    with pytest.raises(BadInput, match="tables: queries"):
        load_production(db, table="nope", text_column="query")
    with pytest.raises(BadInput, match="name the table"):
        load_production(db, text_column="query")
    with pytest.raises(BadInput, match="no column 'text'"):
        load_production(db, table="queries")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("{broken\n[1]\n", "no readable rows"),
        ('{"text": ""}\n{"text": "   "}\n', "no usable production rows"),
    ],
)
def test_malformed_jsonl_is_bad_input(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "prod.jsonl"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(BadInput, match=message):
        load_production(p)


def test_other_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="file not found"):
        load_production(tmp_path / "missing.jsonl")
    with pytest.raises(BadInput, match="unknown production format"):
        load_production(tmp_path / "prod.parquet")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(BadInput, match="UTF-8"):
        load_production(bad)
    notdb = tmp_path / "x.db"
    notdb.write_text("hello", encoding="utf-8")
    with pytest.raises(BadInput, match="SQLite"):
        load_production(notdb, table="t")
    p = _jsonl(tmp_path / "p.jsonl", [{"text": "a"}])
    with pytest.raises(BadInput, match="timestamp column"):
        load_production(p, window_days=30)
    with pytest.raises(BadInput, match="no column 'ts'"):
        load_production(p, timestamp_column="ts")
    with pytest.raises(BadInput, match="timestamp column"):
        load_production(p, by_weekday=True)


def test_time_window_relative_to_newest_and_now(tmp_path: Path) -> None:
    rows = [{"text": f"q{d}", "timestamp": (T0 - dt.timedelta(days=d)).isoformat()} for d in range(0, 60, 5)]
    rows.append({"text": "no time"})
    p = _jsonl(tmp_path / "p.jsonl", rows)
    s = load_production(p, window_days=30)
    assert s.texts == ["q0", "q5", "q10", "q15", "q20", "q25"]  # strictly newer than newest - 30 days
    assert s.skipped["outside the time window"] == 6
    assert s.skipped["no timestamp (needed for the window)"] == 1
    assert s.window is not None and s.window["end"] == T0.isoformat()
    now = T0 + dt.timedelta(days=20)
    s2 = load_production(p, window_days=30, window_anchor="now", now=now)
    assert s2.texts == ["q0", "q5"]
    with pytest.raises(BadInput, match="no usable"):
        load_production(p, window_days=30, window_anchor="now", now=T0 + dt.timedelta(days=365))


def test_weekday_weights_equalise_days(tmp_path: Path) -> None:
    # a Monday spike: 30 rows on Monday, 2 on each other weekday
    monday = dt.datetime(2024, 4, 29, 9, tzinfo=dt.UTC)
    rows = [{"text": f"spike {i}", "timestamp": monday.isoformat()} for i in range(30)]
    for d in range(1, 7):
        for i in range(2):
            rows.append({"text": f"d{d} {i}", "timestamp": (monday + dt.timedelta(days=d)).isoformat()})
    s = load_production(_jsonl(tmp_path / "p.jsonl", rows), by_weekday=True)
    per_day: dict[int, float] = defaultdict(float)
    for r, w in zip(s.rows, s.weights, strict=True):
        assert r.timestamp is not None
        per_day[r.timestamp.weekday()] += float(w)
    assert len(per_day) == 7
    assert all(v == pytest.approx(len(rows) / 7) for v in per_day.values())
    assert float(np.mean(s.weights)) == pytest.approx(1.0)
    assert weekday_weights([]).size == 0


def test_sample_size_is_seeded(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "p.jsonl", [{"text": f"q{i}"} for i in range(100)])
    a = load_production(p, sample_size=10, seed=4)
    b = load_production(p, sample_size=10, seed=4)
    assert a.texts == b.texts and len(a.texts) == 10


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01", dt.datetime(2024, 5, 1, tzinfo=dt.UTC)),
        ("2024-05-01 13:00:00+02:00", dt.datetime(2024, 5, 1, 11, tzinfo=dt.UTC)),
        ("2024-05-01T11:00:00Z", dt.datetime(2024, 5, 1, 11, tzinfo=dt.UTC)),
        (1714561200, dt.datetime(2024, 5, 1, 11, tzinfo=dt.UTC)),
        (1714561200000, dt.datetime(2024, 5, 1, 11, tzinfo=dt.UTC)),
        ("1714561200", dt.datetime(2024, 5, 1, 11, tzinfo=dt.UTC)),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp(value: object, expected: dt.datetime | None) -> None:
    assert parse_timestamp(value) == expected


def test_session_columns(tmp_path: Path) -> None:
    p = _jsonl(
        tmp_path / "p.jsonl",
        [
            {"text": "hi", "session_id": "s1", "turn": 0, "tool_calls": 0, "outcome": "success"},
            {"text": "refund", "session_id": "s1", "turn": 1, "tool_calls": ["lookup", "refund"]},
            {"text": "x", "session_id": "s2", "turn": 0, "tool_calls": "many"},
            {"text": "y", "session_id": "s2", "turn": 1, "outcome": "weird"},
        ],
    )
    s = load_production(p)
    assert s.has_sessions
    assert [r.tool_calls for r in s.rows] == [0.0, 2.0]
    assert s.rows[0].outcome == 1.0
    assert s.skipped == {"unreadable tool-call count": 1, "unreadable outcome (use success/abandoned)": 1}
