"""Ledger write throughput: results written per second into SQLite and PostgreSQL, 1 and N writers.

Each writer is a separate process writing its own run (as separate `benchrun run` processes
sharing one ledger do). All writers open the ledger and create their run first, then start
together; throughput is all rows written divided by the time from the first writer's start to
the last writer's finish. Every measurement uses a fresh database.

Paths measured (rows identical in every path: `Result` rows as the runner builds them):

- bare 1 txn/row     the baseline: a SQLAlchemy Core ``insert`` loop, one transaction per row,
                      on an engine with the ledger's SQLite settings (WAL, synchronous=NORMAL,
                      busy timeout), i.e. the same durability as the ledger; no retry wrapper.
- bare batched 500   the same rows, ``executemany`` in transactions of 500 (for scale only: a
                      run cannot batch, since each result must be durable once it is scored).
- add_result          ``Ledger.add_result`` called in a loop (one transaction per row, retried on
                      transient errors).
- runner thread       what a run does: 32 asyncio tasks hand ``add_result`` to the runner's single
                      writer thread (``Runner._submit``) and await it.
- runner +2 cache     the same, plus the two ``cache_put`` calls (candidate and judge answer) a run
                      with the cache on makes per result: 3 transactions per result.

Ratios are to "bare 1 txn/row" of the same backend and writer count, in transactions per second
(for all paths but the last, one transaction = one result).

PostgreSQL: ``BENCHRUN_TEST_PG_URL`` (a user that may create databases), else a throwaway cluster
started with ``scripts/start_postgres.sh`` and stopped at the end; skipped, with the reason printed,
when neither works.

    python benchmarks/ledger_throughput.py [--rows 1000] [--writers 1,8] [--backends sqlite,postgresql] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")

PATHS = ("bare 1 txn/row", "bare batched 500", "add_result", "runner thread", "runner +2 cache")
TXNS_PER_RESULT = {"runner +2 cache": 3}
RUNNER_TASKS = 32
BATCH = 500


# --------------------------------------------------------------------------- rows


def write_spec(tmp: Path) -> Path:
    """A one-case spec (never called: the candidate's api_base is a closed port) for real run rows."""
    case = {"id": "c0", "input": "I was charged twice this month. What now?", "severity": "medium"}
    (tmp / "d.yaml").write_text(yaml.safe_dump({"name": "bench", "version": "1", "cases": [case]}))
    (tmp / "r.yaml").write_text((ROOT / "tests" / "data" / "bench_rubric.yaml").read_text())
    spec = {"name": "ledger-bench", "dataset": "d.yaml", "rubric": "r.yaml",
            "candidates": [{"model": "openai/cand", "api_base": "http://127.0.0.1:9/v1"}],
            "judge": {"model": "openai/judge", "api_base": "http://127.0.0.1:9/v1"}}
    (tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    return tmp / "s.yaml"


def make_rows(run_id: str, n: int) -> list[Any]:
    """``n`` result rows shaped like a real run's (messages, answer, rules, judge verdict)."""
    from benchrun.ledger.tables import Result

    rows = []
    for i in range(n):
        question = f"I was charged twice this month for order {i}. Can you refund one of the charges today?"
        answer = ("Sorry about the double charge. Please open a ticket with the billing team; they refund "
                  "duplicate charges within 5-7 business days once the ticket is confirmed. " * 2).strip()
        rows.append(Result(
            run_id=run_id, case_id=f"case-{i:06d}", model_key="cand", model="openai/cand", sample_index=0,
            category="double_charge", severity="high", status="passed",
            messages=json.dumps([{"role": "system", "content": "You are a billing assistant for Acme Cloud."},
                                 {"role": "user", "content": question}]),
            response_text=answer, resolved_model="cand-2026-01-01", prompt_tokens=41, completion_tokens=52,
            cost_usd=0.000093, latency_ms=212.4, attempts="[]",
            rules=json.dumps([{"rule": "must_not: I have refunded", "passed": True, "detail": None}]),
            rules_passed=True, judge_score=5, judge_pass=True, judge_reason="follows the refund policy",
            judge_failure_mode="none", judge_prompt_tokens=310, judge_completion_tokens=28, judge_cost_usd=0.00017,
            judge_latency_ms=198.7,
            judge_raw='{"score": 5, "pass": true, "reason": "follows the refund policy", "failure_mode": "none"}',
            passed=True,
        ))
    return rows


def cache_values(run_id: str, i: int, role: str, text: str) -> tuple[str, str, dict[str, Any]]:
    key = hashlib.sha256(f"{run_id}|{i}|{role}".encode()).hexdigest()
    resp = {"text": text, "prompt_tokens": 41, "completion_tokens": 52, "tokens_estimated": False,
            "cost_usd": 0.000093, "latency_ms": 212.4, "resolved_model": "cand-2026-01-01"}
    return key, f"openai/{role}", resp


# --------------------------------------------------------------------------- one writer process


def _bare_engine(url: str) -> Any:
    from sqlalchemy import create_engine, event

    from benchrun.ledger.store import _sqlite_pragmas

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)  # the ledger's durability settings, for a fair baseline
        return engine
    return create_engine(url)


def writer(url: str, spec_path: str, path: str, n: int, barrier: Any, out: Any) -> None:
    """Create a run, wait for the other writers, write ``n`` results by ``path``; report (start, end, txns)."""
    from benchrun import runner
    from benchrun.ledger import Ledger
    from benchrun.ledger.tables import Result
    from benchrun.spec import load_run_spec

    try:
        loaded = load_run_spec(spec_path)
        ledger = Ledger(url)
        run_id = runner.create_run(loaded, ledger)
        rows = make_rows(run_id, n)
        txns = n * TXNS_PER_RESULT.get(path, 1)
        table = Result.__table__  # type: ignore[attr-defined]
        values = [r.model_dump(exclude={"id"}) for r in rows] if path.startswith("bare") else []
        engine = _bare_engine(ledger.url) if path.startswith("bare") else None
        if engine is not None:
            with engine.connect():  # connect (and set the pragmas) before the clock starts, as Ledger did
                pass
        barrier.wait(timeout=300)
        t0 = time.monotonic()
        if path == "bare 1 txn/row":
            assert engine is not None
            for v in values:
                with engine.begin() as conn:
                    conn.execute(table.insert(), v)
        elif path == "bare batched 500":
            assert engine is not None
            for i in range(0, n, BATCH):
                with engine.begin() as conn:
                    conn.execute(table.insert(), values[i : i + BATCH])
        elif path == "add_result":
            for r in rows:
                ledger.add_result(r)
        else:
            asyncio.run(_runner_path(loaded, ledger, run_id, rows, with_cache=path == "runner +2 cache"))
        t1 = time.monotonic()
        written = len(ledger.cells(run_id))
        if written != n:
            raise RuntimeError(f"{path}: wrote {written} of {n} rows")
        ledger.close()
        if engine is not None:
            engine.dispose()
        out.put(("ok", t0, t1, txns))
    except BaseException as e:  # report, do not hang the parent
        out.put(("error", f"{type(e).__name__}: {e}"))
        with_barrier_abort(barrier)


def with_barrier_abort(barrier: Any) -> None:
    with contextlib.suppress(Exception):  # already broken
        barrier.abort()


async def _runner_path(loaded: Any, ledger: Any, run_id: str, rows: list[Any], with_cache: bool) -> None:
    """The runner's own write path: ``Runner._submit`` hands each write to its single writer thread."""
    from benchrun.runner import Runner

    r = Runner(loaded, ledger, run_id)
    todo = iter(enumerate(rows))

    async def task() -> None:
        for i, row in todo:  # one shared iterator: tasks take the next row as they become free
            if with_cache:  # as a run with the cache on: each answer committed before the next call
                await r._submit(cache=cache_values(run_id, i, "cand", row.response_text))
                await r._submit(cache=cache_values(run_id, i, "judge", row.judge_raw))
            await r._submit(result=(row, False))

    try:
        await asyncio.gather(*(task() for _ in range(RUNNER_TASKS)))
    finally:
        r._writer.shutdown(wait=True)


# --------------------------------------------------------------------------- databases


class Postgres:
    """BENCHRUN_TEST_PG_URL, or a throwaway cluster from scripts/start_postgres.sh (stopped by ``close``)."""

    def __init__(self) -> None:
        self.url: str | None = os.environ.get("BENCHRUN_TEST_PG_URL")
        self.dir: str | None = None
        self.why_not = ""
        if self.url:
            return
        script = ROOT / "scripts" / "start_postgres.sh"
        try:
            r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=180, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.why_not = f"{script.name} failed: {e}"
            return
        if r.returncode != 0:
            self.why_not = f"{script.name}: " + ((r.stderr.strip().splitlines() or ["no output"])[-1])
            return
        env = {}
        for line in r.stdout.splitlines():
            if line.startswith("export "):
                k, _, v = line[len("export "):].partition("=")
                env[k] = shlex.split(v)[0]
        self.url, self.dir = env.get("BENCHRUN_TEST_PG_URL"), env.get("BENCHRUN_TEST_PG_DIR")

    def _admin(self) -> Any:
        import psycopg
        from sqlalchemy.engine import make_url

        assert self.url is not None
        u = make_url(self.url)
        return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
                               autocommit=True)

    def fresh(self) -> tuple[str, str | None]:
        """A new empty database: its URL and name (None when the schema of the given database was emptied)."""
        from sqlalchemy.engine import make_url

        assert self.url is not None
        name = "benchrun_tp_" + uuid.uuid4().hex[:10]
        with self._admin() as con:
            try:
                con.execute(f'CREATE DATABASE "{name}"')
            except Exception:  # no CREATEDB privilege: empty the given database instead
                con.execute("DROP SCHEMA public CASCADE")
                con.execute("CREATE SCHEMA public")
                return self.url, None
        return make_url(self.url).set(database=name).render_as_string(hide_password=False), name

    def drop(self, name: str | None) -> None:
        if name:
            with self._admin() as con:
                con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def settings(self) -> str:
        with self._admin() as con:
            vals = [con.execute(f"SHOW {k}").fetchone()[0] for k in ("server_version", "fsync", "synchronous_commit")]
        return f"PostgreSQL {vals[0]}, fsync={vals[1]}, synchronous_commit={vals[2]}"

    def close(self) -> None:
        if self.dir:
            subprocess.run(["bash", str(ROOT / "scripts" / "start_postgres.sh"), "stop", self.dir],
                           capture_output=True, timeout=120, check=False)


# --------------------------------------------------------------------------- measuring


@dataclass
class Figure:
    backend: str
    writers: int
    path: str
    results: int
    txns: int
    seconds: float
    error: str | None = None

    @property
    def results_per_s(self) -> float:
        return self.results / self.seconds if self.seconds > 0 else float("nan")

    @property
    def txns_per_s(self) -> float:
        return self.txns / self.seconds if self.seconds > 0 else float("nan")


def measure(backend: str, url: str, spec: Path, path: str, writers: int, rows: int) -> Figure:
    from benchrun.ledger import Ledger

    Ledger(url).close()  # the schema exists before the writers start (they would also cope with creating it)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(url, str(spec), path, rows, barrier, out)) for _ in range(writers)]
    for p in procs:
        p.start()
    reports = [out.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r[1] for r in reports if r[0] != "ok"]
    if errors:
        return Figure(backend, writers, path, 0, 0, 0.0, errors[0])
    start, end = min(r[1] for r in reports), max(r[2] for r in reports)
    return Figure(backend, writers, path, rows * writers, sum(r[3] for r in reports), end - start)


def print_table(figs: list[Figure]) -> None:
    base = {(f.backend, f.writers): f for f in figs if f.path == "bare 1 txn/row" and not f.error}
    print(f"{'backend':<11}{'writers':>7}  {'path':<19}{'results/s':>11}{'txn/s':>9}{'per writer':>12}"
          f"{'vs bare 1 txn/row':>19}")
    last = None
    for f in figs:
        if last is not None and (f.backend, f.writers) != last:
            print()
        last = (f.backend, f.writers)
        if f.error:
            print(f"{f.backend:<11}{f.writers:>7}  {f.path:<19}  failed: {f.error[:200]}")
            continue
        b = base.get((f.backend, f.writers))
        ratio = f"{f.txns_per_s / b.txns_per_s:.2f}x" if b else "-"
        print(f"{f.backend:<11}{f.writers:>7}  {f.path:<19}{f.results_per_s:>11.0f}{f.txns_per_s:>9.0f}"
              f"{f.results_per_s / f.writers:>12.0f}{ratio:>19}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1000, help="results written by each writer (default 1000)")
    ap.add_argument("--writers", default="1,8", help="comma-separated writer counts (default 1,8)")
    ap.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset of: " + "; ".join(PATHS))
    ap.add_argument("--repeat", type=int, default=1, help="measure each figure this many times, report the best")
    args = ap.parse_args()
    writer_counts = [int(w) for w in args.writers.split(",") if w.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in paths if p not in PATHS]
    if unknown or not set(backends) <= {"sqlite", "postgresql"}:
        ap.error(f"unknown path or backend: {unknown or backends}")

    figs: list[Figure] = []
    pg = Postgres() if "postgresql" in backends else None
    load0 = os.getloadavg()
    t_start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            spec = write_spec(tmp)
            fs = subprocess.run(["stat", "-f", "-c", "%T", str(tmp)], capture_output=True, text=True, check=False)
            print(f"{os.cpu_count()} CPUs; load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at start; "
                  f"{args.rows} results per writer; best of {max(1, args.repeat)}; SQLite file in {tmp} "
                  f"({fs.stdout.strip() or '?'})")
            if pg is not None:
                print(pg.settings() if pg.url else f"PostgreSQL skipped: {pg.why_not}")
            print(flush=True)
            for backend in backends:
                if backend == "postgresql" and (pg is None or not pg.url):
                    continue
                for w in writer_counts:
                    for path in paths:
                        tries: list[Figure] = []
                        for _ in range(max(1, args.repeat)):
                            if backend == "sqlite":
                                url, name = f"sqlite:///{tmp / f'ledger-{uuid.uuid4().hex[:8]}.sqlite'}", None
                            else:
                                assert pg is not None
                                url, name = pg.fresh()
                            try:
                                tries.append(measure(backend, url, spec, path, w, args.rows))
                            finally:
                                if pg is not None and backend == "postgresql":
                                    pg.drop(name)
                        failed = [t for t in tries if t.error]
                        f = failed[0] if failed else max(tries, key=lambda t: t.txns_per_s)
                        figs.append(f)
                        print(f"  measured {backend} x{w} {path}: "
                              + (f"{f.results_per_s:.0f} results/s" if not f.error else f"failed: {f.error}"),
                              file=sys.stderr, flush=True)
    finally:
        if pg is not None:
            pg.close()
    load1 = os.getloadavg()
    print_table(figs)
    print(f"\nload average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end; "
          f"{time.monotonic() - t_start:.0f} s in all")
    return 1 if any(f.error for f in figs) else 0


if __name__ == "__main__":
    sys.exit(main())
