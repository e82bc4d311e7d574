"""Four shard processes fill one run in a real PostgreSQL ledger; one is SIGKILLed mid-run and restarted.

`benchrun run SPEC --shard I/4 --run-id ID --ledger postgresql+psycopg://...` x 4, at once, against the
fake server. Once the shard with the most cells has recorded a few results, the server starts holding
every new request (its gate), the test waits until every answer the server has sent is in the
ledger's response cache (so the kill cannot fall between an answer and its caching, the one window
where a crash can cost a call: see runner.py), and SIGKILLs that shard while its next calls are held
at the server, unanswered. The same command restarts it: it takes over the dead shard's lease, and
the held requests of the killed process find their client gone (the server records them as
``client_gone``, not completed).

Checked: every process exits 0 (the killed one aside), the run is completed with every cell exactly
once and its four shards done; the rows the killed shard had recorded are still there, unchanged;
at the server every distinct call (an answer or a judgement per cell) was completed exactly once:
no call paid twice, however the shards and the kill interleaved; and every cell equals the same
cell of an unsharded run of the same spec.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import benchrun
from conftest import Project, fake_config, make_cases
from fakeserver import FakeServer
from reliability import relsupport
from reliability.relsupport import BENCHRUN, query
from test_shards import cell_outcomes, unsharded_outcomes

pg_server, pg_url = relsupport.pg_server, relsupport.pg_url  # fixtures

CASES = 16
LATENCY_MS = 300
RUN_ID = "gh-4242-1"


def _start(spec: Path, shard: str, url: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "BENCHRUN_LEDGER": url, "COLUMNS": "200"}
    return subprocess.Popen([BENCHRUN, "run", str(spec), "--shard", shard, "--run-id", RUN_ID, "--json",
                             "--call-workers", "0"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait(what: str, cond: Any, procs: list[subprocess.Popen[str]], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            assert p.poll() is None or p.returncode == 0, (what, p.communicate())
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_four_shards_one_killed_fill_one_postgresql_run(tmp_path: Path, pg_url: str) -> None:
    from benchrun.shards import shard_of

    cells = [(f"case-{c:03d}", m, 0) for c in range(CASES) for m in ("good", "bad")]
    owned = {i: [c for c in cells if shard_of(*c, 4) == i] for i in range(1, 5)}
    target = max(owned, key=lambda i: len(owned[i]))
    assert len(owned[target]) >= 6, owned  # room for results before the kill and work after it

    def recorded_by_target() -> list[tuple[Any, ...]]:
        if not query(pg_url, "SELECT 1 FROM information_schema.tables WHERE table_name = 'result'"):
            return []  # the shards have not created the schema yet
        rows = query(pg_url, "SELECT case_id, model_key, sample_index, id, status, response_text, created_at "
                             "FROM result WHERE run_id = :r", r=RUN_ID)
        return sorted(r for r in rows if shard_of(r[0], r[1], r[2], 4) == target)

    def cached() -> int:
        return int(query(pg_url, "SELECT COUNT(*) FROM cache")[0][0])

    config = fake_config(latency_ms=LATENCY_MS)
    with FakeServer(config) as srv:
        project = Project(tmp_path, srv.url)
        project.write_dataset(make_cases(CASES))
        project.write_rubric()
        spec = project.write_spec(concurrency={"global": 2, "per_model": 2}, timeout_s=120)  # held calls wait
        procs = {i: _start(spec, f"{i}/4", pg_url, tmp_path) for i in range(1, 5)}
        live = list(procs.values())
        _wait("the shard to record a few results", lambda: len(recorded_by_target()) >= 2, live)
        assert len(recorded_by_target()) <= len(owned[target]) - 2, "the shard finished before the kill"

        # hold every new request; wait until every answer sent so far is cached (none is in the window
        # between arriving and being cached), then kill the shard while its next calls are held, unanswered
        srv.set_config({**config, "hold_until_in_flight": 10**6, "hold_timeout_s": 20})
        time.sleep(2 * LATENCY_MS / 1000)
        settled: list[int] = []

        def every_answer_cached() -> bool:
            done = srv.stats()["completed"]
            settled.append(done if done == cached() else -1)
            return len(settled) >= 3 and settled[-1] == settled[-2] == settled[-3] != -1

        _wait("every answer sent to be cached", every_answer_cached, live, timeout=15)
        killed = procs[target]
        _wait("the shard's next calls to be held", lambda: srv.stats()["in_flight"] >= 2, live, timeout=15)
        before = recorded_by_target()
        assert 0 < len(before) < len(owned[target])
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert killed.returncode == -signal.SIGKILL
        sh = benchrun.Ledger(pg_url).run(RUN_ID).data["shards"]  # what `runs show` reports about the dead shard
        dead = sh["shards"][target - 1]
        assert dead["status"] == "running" and dead["heartbeat_age_s"] is not None, dead
        assert dead["recorded"] == len(before) and sh["done"] < 4 and sh["line"] == f"{sh['done']} of 4 shards done"
        procs[target] = _start(spec, f"{target}/4", pg_url, tmp_path)  # the same command again
        outs = {}
        for i, p in procs.items():
            try:
                outs[i] = p.communicate(timeout=600)  # a hang guard, not a speed check
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        stats = srv.stats()

    for i, p in procs.items():
        assert p.returncode == 0, (i, outs[i][1][-3000:])
        assert "Traceback" not in outs[i][1], outs[i][1][-3000:]

    # one completed run: every cell exactly once, four shards done, what the killed shard had recorded kept
    assert query(pg_url, "SELECT status FROM run WHERE id = :r", r=RUN_ID) == [("completed",)]
    assert query(pg_url, "SELECT shard, status FROM run_shard WHERE run_id = :r ORDER BY shard", r=RUN_ID) == [
        (i, "done") for i in range(1, 5)]
    assert query(pg_url, "SELECT COUNT(*), COUNT(DISTINCT case_id || '/' || model_key || '/' || "
                         "CAST(sample_index AS TEXT)) FROM result WHERE run_id = :r", r=RUN_ID) == [(2 * CASES,) * 2]
    after = {r[:3]: r for r in recorded_by_target()}
    for row in before:
        assert after[row[:3]] == row
    # the server: every distinct call completed once, the killed process's held calls never answered to it
    assert len(stats["completed_by_prompt_key"]) == 4 * CASES
    assert max(stats["completed_by_prompt_key"].values()) == 1
    assert stats["by_outcome"].get("client_gone", 0) >= 1  # the kill came while calls were in flight
    assert stats["completed"] == 4 * CASES
    assert query(pg_url, "SELECT COUNT(*) FROM run_lease") == [(0,)]  # every shard released its lease

    # cell for cell the same as one unsharded run of the spec
    assert cell_outcomes(pg_url, RUN_ID) == unsharded_outcomes(tmp_path, CASES)
