"""Several ``benchrun run`` processes writing into one ledger at once: every row arrives, nobody sees "locked".

Four real CLI processes share one new SQLite ledger, eight share one new PostgreSQL database. They
start together on a ledger that has no schema yet (the concurrent-migration race), each creates its
own run, and all run the same spec against one fake server with latency, so they overlap for the
whole run. With the response cache on they share cache entries: two processes that make the same
call at once both insert it (insert-or-ignore), a real point of contention next to the result
inserts. Checked: every process exits 0 with nothing on stderr (no "locked", no traceback), every
run is completed with every cell exactly once, the runs really overlapped (and raced on the same
cache entries), and an independent reader (plain SQLAlchemy, not benchrun's ledger code) counts the
same rows the processes reported.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from conftest import Project, fake_config, make_cases
from fakeserver import FakeServer
from reliability import relsupport
from reliability.relsupport import BENCHRUN, query

pg_server = relsupport.pg_server
pg_url = relsupport.pg_url


def run_at_once(tmp: Path, url: str, processes: int, cases: int) -> list[dict[str, Any]]:
    """Start ``processes`` runs of one spec against ledger ``url`` together; their JSON summaries."""
    # The processes start seconds apart on a busy machine (at 40 ms calls one run once finished before any other
    # began): the server holds the first calls until every process has its two calls in flight, so all the runs
    # are under way at once, then answers at 150 ms, so each run's writes span ~1 s while the others write.
    with FakeServer(fake_config(latency_ms=150, hold_until_in_flight=2 * processes)) as srv:
        project = Project(tmp, srv.url)
        project.write_dataset(make_cases(cases))
        project.write_rubric()
        spec = project.write_spec(concurrency={"global": 2, "per_model": 2})
        env = {**os.environ, "BENCHRUN_LEDGER": url, "COLUMNS": "200"}
        procs = [subprocess.Popen([BENCHRUN, "run", str(spec), "--json"], cwd=tmp, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(processes)]
        try:
            outs = [p.communicate(timeout=900) for p in procs]  # a hang guard, not a speed check: 8 processes at load 20 took >300 s
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        stats = srv.stats()
    summaries = []
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "locked" not in err.lower() and "Traceback" not in err, err[-3000:]
        assert err.strip() == "", err[-3000:]  # with --json a clean run prints nothing else: no retried-error noise
        summaries.append(json.loads(out))
    # the processes overlapped: the server had more calls in flight than one process may make, and
    # several processes made the same call before any had cached it (so all of them inserted it)
    assert stats["max_in_flight"] > 2, stats["max_in_flight"]
    assert max(stats["completed_by_prompt_key"].values()) > 1
    return summaries


def check_ledger(url: str, summaries: list[dict[str, Any]], cases: int) -> None:
    cells = cases * 2
    run_ids = sorted(s["conditions"]["run_id"] for s in summaries)
    assert len(set(run_ids)) == len(summaries)
    # read back independently
    from benchrun.ledger.migrations import MIGRATIONS

    assert query(url, "SELECT version, COUNT(*) FROM schema_version GROUP BY version ORDER BY version") == [
        (m.version, 1) for m in MIGRATIONS]
    assert sorted(query(url, "SELECT id, status FROM run")) == [(r, "completed") for r in run_ids]
    per_run = sorted(query(url, "SELECT run_id, COUNT(*), COUNT(DISTINCT case_id || '/' || model_key || '/' || "
                                "CAST(sample_index AS TEXT)) FROM result GROUP BY run_id"))
    assert per_run == [(r, cells, cells) for r in run_ids]
    # every run has the same outcome in every cell: the good candidate passes, the bad one fails
    outcomes = query(url, "SELECT model_key, status, COUNT(*) FROM result GROUP BY model_key, status ORDER BY 1, 2")
    assert outcomes == [("bad", "failed", cases * len(run_ids)), ("good", "passed", cases * len(run_ids))]
    # one cache entry per distinct call (answer and judgement of each cell), however many processes made it
    assert query(url, "SELECT COUNT(*) FROM cache") == [(2 * cells,)]
    # the runs wrote at the same time: each run's results were being written while another's were
    spans = query(url, "SELECT run_id, MIN(created_at), MAX(created_at) FROM result GROUP BY run_id")
    for run_id, first, last in spans:
        assert any(f < last and first < la for r, f, la in spans if r != run_id), spans
    # what each process reported agrees with the reader
    for s in summaries:
        assert s["expected_results"] == s["recorded_results"] == cells
        run_id = s["conditions"]["run_id"]
        assert query(url, "SELECT COUNT(*) FROM result WHERE run_id = :r", r=run_id) == [(cells,)]


def test_four_processes_write_one_sqlite_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared' / 'ledger.sqlite'}"
    (tmp_path / "shared").mkdir()
    summaries = run_at_once(tmp_path, url, processes=4, cases=10)
    check_ledger(url, summaries, cases=10)
    assert query(url, "PRAGMA integrity_check") == [("ok",)]
    assert query(url, "PRAGMA journal_mode") == [("wal",)]


def test_eight_processes_write_one_postgresql_ledger(tmp_path: Path, pg_url: str) -> None:
    summaries = run_at_once(tmp_path, pg_url, processes=8, cases=6)
    check_ledger(pg_url, summaries, cases=6)
