"""SIGKILL a run at random moments, resume it: nothing lost, nothing twice, no completed call paid twice.

One run (30 cases × 2 candidates = 60 cells, concurrency 4) against a deterministic fake server in
its own process is SIGKILLed at five or more points, each kill followed by ``benchrun run --resume``
(which the next kill point then kills), the last resume running to completion. The kill points, in
order (numbers drawn from a seeded RNG):

* ``after N results`` (twice): poll the ledger, SIGKILL once N more results are in;
* ``inside a commit`` (how the "during a ledger write" case is reached): the good candidate's
  answers are ~64 KB, so committing one to the cache, or its result row, appends ~17 WAL frames,
  each with two ``pwrite`` calls. Once the resumed run has recorded a result, ``strace`` attaches to
  it and injects SIGKILL at the entry of its K-th ``pwrite64`` into the WAL file, so the frames
  before it are written and the rest of that commit never is. The WAL is then parsed as the kill
  left it (salts, running checksums, commit marks, as SQLite documents the format): valid frames
  after the last commit frame prove the kill tore a transaction. If K happened to be the first
  write of a commit (nothing torn), the point is repeated with another K (at most four times), and
  at least one torn commit is asserted. Without strace or ptrace the process is instead killed as
  soon as the WAL file changes (at, or just after, a commit) and the torn-commit assertion is
  skipped. (Polling the WAL and SIGSTOPping on growth was tried first: under load the poller
  reacts in more than the ~0.1 ms a commit takes, and only ~2% of stops landed inside one.)
* ``inside a write transaction``: the test takes SQLite's write lock itself (``BEGIN IMMEDIATE``),
  waits until answers have arrived that the process could not record (its single ledger writer is
  then inside ``BEGIN … INSERT``, waiting for the lock), and SIGKILLs it there;
* ``after a random delay`` (0-1 s) from the resumed run's first result: anywhere in the run's work.

After every kill: the run is still ``running`` (nobody could mark it), ``PRAGMA integrity_check``
passes, the foreign keys hold, and no cell is recorded twice. At the end: every cell exactly once,
the run completed, every row recorded before a kill still there unchanged, each cell equal to a
fault-free baseline run, and, from the server's request log (split by process: the server is
idle between processes): no call whose result was recorded before a kill was made again; a call
was only ever repeated after the process that made it was killed, never within one process; and
each kill cost at most the calls in flight at that moment (the concurrency).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import BAD, GOOD, Project, fake_config, make_cases
from fakeserver import FakeServer
from reliability.relsupport import BENCHRUN, ServerProcess

SEED = 20261130
CASES = 30
CELLS = CASES * 2
CONCURRENCY = 4
# ~64 KB per answer of the good candidate: a commit of its answer (cache) or of its result row spans ~17 WAL frames
PAD = " Details follow. " + "The billing team reviews every duplicate charge carefully. " * 1100
TICKET = re.compile(r"\(ticket (\d+)\)")

Cell = tuple[str, str, int]
Ident = tuple[str, str, int]  # ("answer" | "judge", candidate, case number): one distinct paid call


def server_config() -> dict[str, Any]:
    # 100 ms per call: the last kill comes a random 0-1 s after the resumed process's first result and must
    # land mid-run. At 20 ms the ~35 cells left after four kills were all done within 0.9 s (seen once in CI).
    cfg = fake_config(latency_ms=100)
    cfg["rules"] = [{**r, "reply": r["reply"] + PAD} if r["model"] == "good" else r for r in cfg["rules"]]
    return cfg


def make_project(root: Path, url: str) -> tuple[Project, Path]:
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root, url)
    project.write_dataset(make_cases(CASES))
    project.write_rubric()
    spec = project.write_spec(concurrency={"global": CONCURRENCY, "per_model": CONCURRENCY}, timeout_s=60)
    return project, spec


# --------------------------------------------------------------------------- reading the ledger


def rows(db: Path) -> dict[Cell, dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        out: dict[Cell, dict[str, Any]] = {}
        for r in con.execute("SELECT * FROM result"):
            cell = (r["case_id"], r["model_key"], r["sample_index"])
            assert cell not in out, f"cell {cell} recorded twice"
            out[cell] = dict(r)
        return out
    finally:
        con.close()


def result_count(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=30)
    try:
        return int(con.execute("SELECT COUNT(*) FROM result").fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        con.close()


def outcome(r: dict[str, Any]) -> tuple[Any, ...]:
    """Everything about a cell that does not depend on timing or on the cache."""
    return (r["status"], r["passed"], r["rules_passed"], r["rules"], r["error"], r["messages"], r["response_text"],
            r["prompt_tokens"], r["completion_tokens"], r["cost_usd"], r["retries"], r["judge_raw"],
            r["judge_score"], r["judge_pass"], r["judge_failure_mode"], r["judge_prompt_tokens"],
            r["judge_completion_tokens"], r["judge_cost_usd"], r["judge_retries"], r["judge_reasks"])


# --------------------------------------------------------------------------- the WAL, read as SQLite documents it


def _wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack((">" if big_endian else "<") + f"{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def wal_uncommitted_frames(wal: Path) -> int:
    """Valid WAL frames after the last commit frame: a transaction caught in the middle of being appended.

    Frames count as valid while their salts match the header's and the running checksum holds
    (https://www.sqlite.org/fileformat2.html#walformat); recovery discards valid frames that no
    commit frame follows.
    """
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return 0
    if len(data) < 32:
        return 0
    magic, _version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    if magic not in (0x377F0682, 0x377F0683):
        return 0
    big = bool(magic & 1)
    s = _wal_checksum(data[:24], 0, 0, big)
    if s != (c1, c2):
        return 0
    off, pending = 32, 0
    while off + 24 + page_size <= len(data):
        _page, commit, fs1, fs2, fc1, fc2 = struct.unpack(">6I", data[off:off + 24])
        if (fs1, fs2) != (salt1, salt2):
            break
        s = _wal_checksum(data[off:off + 8], *s, big)
        s = _wal_checksum(data[off + 24:off + 24 + page_size], *s, big)
        if s != (fc1, fc2):
            break
        pending = 0 if commit else pending + 1
        off += 24 + page_size
    return pending


# --------------------------------------------------------------------------- kill points


@dataclass
class Kill:
    label: str
    log_start: int  # the server's request count when the process was started ...
    log_end: int  # ... and once it was dead and the server idle: its requests are log[log_start:log_end]
    cells: dict[Cell, dict[str, Any]]


def _wait(cond: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"benchrun exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def kill_after_results(proc: subprocess.Popen[bytes], db: Path, n: int) -> str:
    start = result_count(db)
    _wait(lambda: result_count(db) >= start + n, proc, f"{n} more results")
    proc.send_signal(signal.SIGKILL)
    return f"after {n} more results"


def kill_after_delay(proc: subprocess.Popen[bytes], db: Path, delay: float) -> str:
    start = result_count(db)
    _wait(lambda: result_count(db) > start, proc, "the resumed run to record a result")
    time.sleep(delay)
    assert proc.poll() is None, "benchrun finished before the random kill"
    proc.send_signal(signal.SIGKILL)
    return f"{delay:.2f} s after its first result"


def kill_inside_a_commit(proc: subprocess.Popen[bytes], db: Path, k: int) -> tuple[str, bool]:
    """SIGKILL at the k-th ``pwrite`` of the ledger's writer thread into the WAL; returns (label, strace used).

    strace attaches once the process has recorded a result (start-up runs at full speed) and injects
    SIGKILL at the entry of that write, so frames before it are in the WAL and the rest never are.
    Without strace (or ptrace), the process is killed as soon as the WAL changes instead.
    """
    wal = Path(f"{db}-wal")
    start = result_count(db)
    _wait(lambda: result_count(db) > start, proc, "the resumed run to record a result")
    strace = shutil.which("strace")
    if strace:
        tracer = subprocess.Popen([strace, "-f", "-qq", "-o", os.devnull, "-p", str(proc.pid), "-P", str(wal),
                                   "-e", "trace=pwrite64", "-e", f"inject=pwrite64:signal=SIGKILL:when={k}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and tracer.poll() is None:
            time.sleep(0.01)
        if proc.poll() is not None:
            tracer.wait(timeout=30)
            return f"at its WAL write {k} (strace)", True
        # strace could not attach (no ptrace here): fall back
    last: tuple[int, int] | None = None
    while proc.poll() is None:  # without strace: as soon as the WAL changes (at or just after a commit)
        try:
            st = os.stat(wal)
        except FileNotFoundError:
            continue
        if last is not None and (st.st_size, st.st_mtime_ns) != last:
            proc.send_signal(signal.SIGKILL)
            break
        last = (st.st_size, st.st_mtime_ns)
    return "as soon as the WAL changed (no strace)", False


def kill_inside_locked_write(proc: subprocess.Popen[bytes], db: Path, srv: ServerProcess) -> str:
    """Hold SQLite's write lock until the process is blocked inside a write transaction, then SIGKILL it."""
    start = result_count(db)
    _wait(lambda: result_count(db) >= start + 2, proc, "the resumed run to record results")
    holder = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN IMMEDIATE")
        completed_at_lock = srv.get("/stats")["completed"]
        seen: list[int] = []

        def stalled() -> bool:  # every worker waits on the ledger writer: no call completes any more
            seen.append(srv.get("/stats")["completed"])
            return len(seen) > 25 and seen[-1] == seen[-25] > completed_at_lock

        # answers arrived after the lock was taken and none can be cached: the writer is inside that write
        _wait(stalled, proc, "the process to block on the held lock")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    return f"inside a write transaction blocked on the lock ({seen[-1] - completed_at_lock} answers unrecorded)"


# --------------------------------------------------------------------------- the server's view


def settle(srv: ServerProcess, quiet_polls: int = 3) -> int:
    """Wait until the server has had nothing in flight and no new request for a while; the number logged."""
    totals: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = srv.get("/stats")
        totals = [*totals, stats["total"]] if stats["in_flight"] == 0 else []
        if len(totals) > quiet_polls and len(set(totals[-quiet_polls - 1:])) == 1:
            return totals[-1]
        time.sleep(0.15)
    raise AssertionError("fake server never went idle")


def ident(q: dict[str, Any]) -> Ident:
    text = "\n".join(str(m.get("content")) for m in q["messages"])
    m = TICKET.search(text)
    assert m is not None, text[:200]
    if q["model"] == "judge":
        answer = "good" if GOOD in text else "bad" if BAD in text else "?"
        return ("judge", answer, int(m.group(1)))
    return ("answer", q["model"], int(m.group(1)))


def cell_idents(cell: Cell) -> list[Ident]:
    case = int(cell[0].split("-")[1])
    return [("answer", cell[1], case), ("judge", cell[1], case)]


# --------------------------------------------------------------------------- the test


def baseline_run(root: Path) -> dict[Cell, tuple[Any, ...]]:
    with FakeServer(server_config()) as srv:
        project, spec = make_project(root, srv.url)
        r = project.cli("run", str(spec), "--json")
        assert r.returncode == 0, r.stderr
    return {c: outcome(r) for c, r in rows(project.ledger).items()}


def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    baseline = baseline_run(tmp_path / "baseline")
    assert len(baseline) == CELLS

    srv = ServerProcess(tmp_path, server_config())
    try:
        project, spec = make_project(tmp_path / "killed", srv.url)
        db = project.ledger
        env = {**os.environ, "BENCHRUN_LEDGER": str(db)}
        run_id: str | None = None
        kills: list[Kill] = []
        torn: list[int] = []  # uncommitted frames left in the WAL by each kill that strace put inside a commit

        def spawn() -> subprocess.Popen[bytes]:
            args = ["--resume", run_id] if run_id else [str(spec)]
            return subprocess.Popen([BENCHRUN, "run", *args, "--json"], cwd=project.root, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        plan: list[str] = ["results", "results", "commit", "locked_write", "delay"]
        while plan:
            point = plan.pop(0)
            log_start = settle(srv)
            assert log_start == (kills[-1].log_end if kills else 0), "a request reached the server between processes"
            proc = spawn()
            traced = False
            try:
                if point == "results":
                    label = kill_after_results(proc, db, rng.randint(3, 12))
                elif point == "commit":
                    label, traced = kill_inside_a_commit(proc, db, rng.randint(8, 120))
                elif point == "locked_write":
                    label = kill_inside_locked_write(proc, db, srv)
                else:
                    label = kill_after_delay(proc, db, rng.uniform(0.0, 1.0))
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            assert proc.returncode == -signal.SIGKILL, (label, proc.returncode)
            if traced:  # read the WAL as the kill left it, before any connection recovers it
                torn.append(wal_uncommitted_frames(Path(f"{db}-wal")))
                label += f": {torn[-1]} frames of the commit written"
                if torn[-1] == 0 and len(torn) < 4:  # that write was a commit's first: try again
                    plan.insert(0, "commit")
            # the database after the kill: intact, the run still marked running, no cell twice (rows() checks)
            con = sqlite3.connect(db)
            try:
                assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)], label
                assert con.execute("PRAGMA foreign_key_check").fetchall() == [], label
                runs = con.execute("SELECT id, status FROM run").fetchall()
            finally:
                con.close()
            assert len(runs) == 1 and runs[0][1] == "running", (label, runs)
            run_id = runs[0][0]
            kills.append(Kill(label, log_start, settle(srv), rows(db)))
        if torn:  # strace was there: some kill landed inside a commit, with part of it in the WAL
            assert max(torn) > 0, torn
        assert len(kills[-1].cells) < CELLS, "the run finished before the last kill: make it longer"

        # resume to completion
        log_start = settle(srv)
        assert log_start == kills[-1].log_end, "a request reached the server between processes"
        assert run_id is not None
        r = subprocess.run([BENCHRUN, "run", "--resume", run_id, "--json"], cwd=project.root, env=env,
                           capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "Traceback" not in r.stderr and "locked" not in r.stderr
        summary = json.loads(r.stdout)
        assert summary["conditions"]["run_id"] == run_id
        log_end = settle(srv)
        final = rows(db)
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert con.execute("SELECT status FROM run").fetchall() == [("completed",)]
            uniq = con.execute("SELECT COUNT(*) FROM (SELECT DISTINCT run_id, case_id, model_key, sample_index "
                               "FROM result)").fetchone()[0]
        finally:
            con.close()

        # zero lost, zero duplicates, the same outcome as without kills in every cell
        assert len(final) == uniq == CELLS
        assert {c: outcome(x) for c, x in final.items()} == baseline
        for k in kills:  # a row recorded before a kill was neither lost nor rewritten
            for cell, row in k.cells.items():
                assert final[cell] == row, (k.label, cell)

        # the server's view: who paid for what
        log = sorted(srv.get("/requests"), key=lambda q: q["n"])
        assert len(log) == log_end
        keys: dict[str, Ident] = {}
        for q in log:
            assert keys.setdefault(q["prompt_key"], ident(q)) == ident(q)
        assert len(set(keys.values())) == len(keys) == 2 * CELLS  # ident() tells the distinct calls apart exactly
        segments = [(k.log_start, k.log_end) for k in kills] + [(log_start, log_end)]

        def segment(n: int) -> int:
            return next(i for i, (a, b) in enumerate(segments) if a < n <= b)

        for k in kills:  # a call whose result was recorded before a kill was never made again
            recorded = {i for cell in k.cells for i in cell_idents(cell)}
            again = {ident(q) for q in log[k.log_end:]} & recorded
            assert not again, (k.label, sorted(again)[:5])
        completions: dict[Ident, list[int]] = {}
        for q in log:
            if q["completed"]:
                completions.setdefault(ident(q), []).append(q["n"])
        assert set(completions) == set(keys.values())
        lost: list[list[tuple[Ident, list[int]]]] = [[] for _ in kills]
        for call, ns in completions.items():  # paid again only if the process that got the answer died
            for earlier, later in itertools.pairwise(ns):
                s = segment(earlier)
                assert s < len(kills) and segment(later) > s, (call, ns, segments)
                lost[s].append((call, ns))
        for k, calls in zip(kills, lost, strict=True):  # at most the calls in flight at the kill
            assert len(calls) <= CONCURRENCY, (k.label, calls, segments)
        assert sum(len(ns) for ns in completions.values()) == 2 * CELLS + sum(len(c) for c in lost)
    finally:
        srv.close()
