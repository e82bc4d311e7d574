"""`Ledger.write_batch` on SQLite sends precompiled SQL with driver tuples (`store._CompiledInserts`) instead of
``conn.execute(table.insert(), rows)``. The rows it stores must be the ones SQLAlchemy's own insert stores:
same values, same SQLite storage classes, for every column, including None, booleans, integral floats,
timestamps with and without microseconds, in UTC and another zone, and text that looks like SQL or JSON."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from benchrun.ledger import Ledger
from benchrun.ledger.store import _CACHE_TABLE
from benchrun.ledger.tables import Result, Run


def _run(ledger: Ledger, run_id: str) -> None:
    ledger.create_run(Run(id=run_id, name="w", status="running", spec_hash="h", spec_snapshot="{}", spec_path="s.yaml",
                          dataset_name="d", dataset_version="1", dataset_hash="dh", rubric_name="", rubric_version="",
                          rubric_hash="", prompt_hashes="{}", models="[]", sampling="{}", samples_per_case=1,
                          judge_model="", judge_prompt_hash="", judge_sampling="{}", package_versions="{}"))


def _results(run_id: str) -> list[Result]:
    when = [dt.datetime(2026, 12, 3, 5, 50, 26, 971889, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            dt.datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))]  # another zone
    rows = []
    for i, text in enumerate(["plain", None, "'); DROP TABLE result; --", '{"a": [1, 2]}', "é ✓ \x00 nul", ""]):
        rows.append(Result(
            run_id=run_id, case_id=f"c{i}", model_key="m", model="openai/m", sample_index=i % 2, category="cat",
            severity=["low", "medium", "high"][i % 3], status="ok" if i % 2 else "error", error=None if i % 2 else text,
            messages=json.dumps([{"role": "user", "content": text or ""}]), response_text=text,
            prompt_tokens=i * 10 if i else None, completion_tokens=3, tokens_estimated=bool(i % 2),
            cost_usd=[None, 0.0, 1, 2.5e-7, 3.0, 10**6][i], latency_ms=[200, 0.5, None, 1e9, 7, 0][i],
            retries=i, attempts=json.dumps([{"error": "429", "wait_s": 1.5}] * i), cached=bool(i % 3), rules=json.dumps([{"rule": "x", "ok": True}]),
            rules_passed=[True, False, None, True, False, None][i], scored_by="rules",
            judge_score=[None, 1, 2, 3, 4, 5][i], judge_pass=[None, True, False, None, True, False][i],
            judge_reason=text, judge_raw=text, judge_cost_usd=[1, None, 0.25, 0, 2, None][i],
            judge_latency_ms=[None, 1, 2.5, None, 3, 4][i], passed=[True, False, None, True, False, True][i],
            created_at=when[i % 3], injection_suspected=None if i % 2 else "ignore previous",
            judge_cache_keys=json.dumps(["k1", "k2"]) if i % 2 else None, trajectory=None))
    return rows


def _dump(path: Path, table: str) -> list[tuple[Any, ...]]:
    """Every stored value with its SQLite storage class (1 and 1.0 differ; so do '...' and a datetime)."""
    con = sqlite3.connect(path)
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})") if r[1] != "id"]
    sel = ", ".join(f'"{c}", typeof("{c}")' for c in cols)
    order = '"key"' if table == "cache" else "id"
    out = con.execute(f"SELECT {sel} FROM {table} ORDER BY {order}").fetchall()
    con.close()
    return out


@pytest.mark.parametrize("batched", [True, False])
def test_fast_sqlite_writes_store_what_sqlalchemys_insert_stores(tmp_path: Path, batched: bool) -> None:
    fast, ref = Ledger(str(tmp_path / "fast.sqlite")), Ledger(str(tmp_path / "ref.sqlite"))
    for led in (fast, ref):
        _run(led, "r1")
    cache = [(f"key-{i}", "openai/m", {"text": t, "usage": {"prompt_tokens": i}, "n": [1.0, 2]})
             for i, t in enumerate(["a", "é", None, "'; --"])]
    results = [(r, False) for r in _results("r1")]
    if batched:
        fast.write_batch(cache, results)
    else:
        for entry in cache:
            fast.cache_put(*entry)
        for r, replace in results:
            fast.add_result(r, replace)
    # the reference: SQLAlchemy's own Core inserts of the same values, as write_batch made them before
    with ref.engine.begin() as conn:
        conn.execute(ref._cache_insert(), [{"key": k, "model": m, "response": json.dumps(resp),
                                            "created_at": dt.datetime(2026, 12, 3, tzinfo=dt.UTC)}
                                           for k, m, resp in cache])
        conn.execute(Result.__table__.insert(),  # type: ignore[attr-defined]
                     [r.model_dump(exclude={"id"}) for r, _ in results])
    got, want = _dump(tmp_path / "fast.sqlite", "result"), _dump(tmp_path / "ref.sqlite", "result")
    assert len(got) == len(want) == 6
    assert got == want
    # the cache rows: equal except created_at, which write_batch sets to the time of writing (same format)
    gc, wc = _dump(tmp_path / "fast.sqlite", "cache"), _dump(tmp_path / "ref.sqlite", "cache")
    assert [r[:-2] for r in gc] == [r[:-2] for r in wc] and len(gc) == 4
    assert all(g[-1] == w[-1] == "text" and len(g[-2]) == len(w[-2]) for g, w in zip(gc, wc, strict=True))
    # and they read back through the ledger as the rows given
    back = fast.result_rows("r1")
    assert [b["response_text"] for b in back] == [r.response_text for r, _ in results]
    assert [b["cost_usd"] for b in back] == [None if r.cost_usd is None else float(r.cost_usd) for r, _ in results]
    assert fast.cache_get("key-1") == cache[1][2]


def test_fast_path_keeps_insert_or_ignore_replace_and_all_or_nothing(tmp_path: Path) -> None:
    led = Ledger(str(tmp_path / "l.sqlite"))
    _run(led, "r1")
    rows = _results("r1")
    led.write_batch([("k", "m", {"text": "first"})], [(rows[0], False)])
    led.write_batch([("k", "m", {"text": "second"})], [])  # another writer cached the same call first: kept
    assert led.cache_get("k") == {"text": "first"}
    again = rows[0].model_copy(update={"status": "ok", "error": None})
    led.write_batch([], [(again, True)])  # a resumed cell replaces its error row
    assert [(r["case_id"], r["status"]) for r in led.result_rows("r1")] == [("c0", "ok")]
    bad = rows[1].model_copy(update={"run_id": "no-such-run"})  # violates the run foreign key
    with pytest.raises(Exception, match="FOREIGN KEY"):
        led.write_batch([("k2", "m", {"text": "x"})], [(rows[2], False), (bad, False)])
    assert led.cache_get("k2") is None and len(led.result_rows("r1")) == 1  # nothing of the failed batch
    assert _CACHE_TABLE.name == "cache"
