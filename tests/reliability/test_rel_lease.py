"""Two ``run --resume`` of one run at once: a run-level lease in the ledger (issue 12, item 10).

Before: nothing stopped a second process from resuming a run another process was still
executing; both paid for the same calls and the loser died with ``internal error: IntegrityError``.
Now the process executing a run holds a lease row (owner ``host:pid:token``, renewed heartbeat);
a second resume is refused with one line, exit 2, before it calls anything. A lease whose owner
died (a process of this host that no longer exists) or whose heartbeat is old (another host) is
taken over.

Real processes on real SQLite and PostgreSQL ledgers. The first resume is held by the fake
server (its calls wait at the server's gate), so it is provably still running while the second
one starts; the test then opens the gate with one request of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from conftest import Project, fake_config
from fakeserver import FakeServer
from reliability import relsupport
from reliability.relsupport import BENCHRUN, query

pg_server, pg_url, backend_url = relsupport.pg_server, relsupport.pg_url, relsupport.backend_url  # fixtures

HOLD = {"hold_until_in_flight": 3, "hold_timeout_s": 120}


def _execute(url: str, sql: str, **params: Any) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def _interrupted_run(project: Project, url: str) -> str:
    """A run whose 'good' cells are missing, as a crash leaves it."""
    spec = project.setup(concurrency={"global": 2, "per_model": 2}, timeout_s=120)  # held calls must not time out
    r, payload = project.cli_json("run", str(spec), "--ledger", url)
    assert r.returncode == 0, r.stderr
    run_id = str(payload["conditions"]["run_id"])
    _execute(url, "DELETE FROM result WHERE run_id = :r AND model_key = 'good'", r=run_id)
    _execute(url, "DELETE FROM cache")
    _execute(url, "UPDATE run SET status = 'interrupted' WHERE id = :r", r=run_id)
    return run_id


def _resume(project: Project, url: str, run_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "BENCHRUN_LEDGER": url, "COLUMNS": "200"}
    return subprocess.Popen([BENCHRUN, "run", "--resume", run_id, "--json", "--call-workers", "0"], cwd=project.root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_in_flight(srv: FakeServer, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while srv.stats()["in_flight"] < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, srv.stats()
        time.sleep(0.05)


def _open_gate(srv: FakeServer) -> None:
    """One request of our own: with the held ones it reaches the gate's count, and everything goes through."""
    body = json.dumps({"model": "gate-opener", "messages": [{"role": "user", "content": "open"}]}).encode()
    req = urllib.request.Request(srv.url + "/chat/completions", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200


def _check_completed(url: str, run_id: str) -> None:
    assert query(url, "SELECT status FROM run WHERE id = :r", r=run_id) == [("completed",)]
    assert query(url, "SELECT COUNT(*), COUNT(DISTINCT case_id || '/' || model_key) FROM result WHERE run_id = :r",
                 r=run_id) == [(12, 12)]
    assert query(url, "SELECT COUNT(*) FROM run_lease") == [(0,)]  # released at the end


def test_a_second_resume_is_refused_while_the_first_runs(tmp_path: Path, backend_url: str) -> None:
    with FakeServer(fake_config()) as srv:
        project = Project(tmp_path, srv.url)
        run_id = _interrupted_run(project, backend_url)
        srv.set_config(fake_config(**HOLD))
        srv.reset()
        first = _resume(project, backend_url, run_id)
        try:
            _wait_in_flight(srv, 2, first)  # the first resume holds the lease and its calls wait at the gate
            second = _resume(project, backend_url, run_id)
            out, err = second.communicate(timeout=120)
            assert second.returncode == 2, out + err
            lines = [ln for ln in err.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), err
            assert f"run {run_id} is being run by another process (pid {first.pid} on " in lines[0], lines[0]
            assert "IntegrityError" not in err and out == ""
            assert first.poll() is None  # still running: the refusal did not wait for it
            _open_gate(srv)
            out, err = first.communicate(timeout=180)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert first.returncode == 0, err
        stats = srv.stats()
        # only the first process called: every call once (6 answers, 6 verdicts, and the gate opener)
        assert stats["total"] == 13 and max(stats["completed_by_prompt_key"].values()) == 1, stats
        _check_completed(backend_url, run_id)


def test_the_lease_of_a_killed_process_is_taken_over(tmp_path: Path, backend_url: str) -> None:
    with FakeServer(fake_config()) as srv:
        project = Project(tmp_path, srv.url)
        run_id = _interrupted_run(project, backend_url)
        srv.set_config(fake_config(**HOLD))
        victim = _resume(project, backend_url, run_id)
        try:
            _wait_in_flight(srv, 2, victim)
            owners = query(backend_url, "SELECT owner FROM run_lease WHERE run_id = :r", r=run_id)
            assert len(owners) == 1 and f":{victim.pid}:" in owners[0][0], owners
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.communicate()
        srv.set_config(fake_config())
        # at once: the owner is a dead process of this host (no waiting for its heartbeat to go stale)
        r = project.cli("run", "--resume", run_id, "--ledger", backend_url, "--call-workers", "0")
        assert r.returncode == 0, r.stderr
        _check_completed(backend_url, run_id)


def test_a_lease_of_another_host_is_respected_until_its_heartbeat_is_old(tmp_path: Path, backend_url: str) -> None:
    with FakeServer(fake_config()) as srv:
        project = Project(tmp_path, srv.url)
        run_id = _interrupted_run(project, backend_url)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        _execute(backend_url, "INSERT INTO run_lease (run_id, owner, acquired_at, heartbeat_at) VALUES "
                              "(:r, 'build-7.example:4242:beef', :t, :t)", r=run_id, t=now)
        srv.reset()
        r = project.cli("run", "--resume", run_id, "--ledger", backend_url)
        assert r.returncode == 2, r.stderr
        last = r.stderr.strip().splitlines()[-1]  # after what the snapshot calls and the run banner
        assert r.stderr.count("error: ") == 1 and last.startswith("error: "), r.stderr
        assert "pid 4242 on build-7.example, last heartbeat " in last, r.stderr
        assert srv.requests() == []
        assert query(backend_url, "SELECT status FROM run WHERE id = :r", r=run_id) == [("interrupted",)]

        _execute(backend_url, "UPDATE run_lease SET heartbeat_at = :t", t=now - dt.timedelta(minutes=10))
        r = project.cli("run", "--resume", run_id, "--ledger", backend_url)
        assert r.returncode == 0, r.stderr
        _check_completed(backend_url, run_id)
