"""The ledger on SQLite and PostgreSQL: schema, constraints, retries, concurrent first open, `ledger copy`/`info`.

Every test runs against both backends (a real PostgreSQL server; see tests/reliability/relsupport.py).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from benchrun.ledger import Ledger
from benchrun.ledger.migrations import MIGRATIONS
from benchrun.ledger.store import is_transient
from conftest import JUDGE_PASS, Project, fake_config, make_cases
from fakeserver import FakeServer
from reliability import relsupport
from reliability.relsupport import dump, make_result, make_run, query

pg_server, pg_url, backend_url = relsupport.pg_server, relsupport.pg_url, relsupport.backend_url  # fixtures


# --------------------------------------------------------------------------- the store on both backends


def test_store_basics(backend_url: str) -> None:
    led = Ledger(backend_url)
    assert led.schema_version() == max(m.version for m in MIGRATIONS)
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    led.create_run(make_run("r1"))
    for i in range(3):
        led.add_result(make_result("r1", f"c{i}", status="error" if i == 2 else "passed"))
    # the uniqueness constraint on run/case/model/sample holds on every backend
    with pytest.raises(IntegrityError):
        led.add_result(make_result("r1", "c0"))
    assert len(led.results("r1")) == 3
    # replace swaps an error row for its redo atomically
    led.add_result(make_result("r1", "c2", status="passed"), replace=True)
    assert led.cells("r1") == {("c0", "m", 0): "passed", ("c1", "m", 0): "passed", ("c2", "m", 0): "passed"}
    # the cache is insert-or-ignore: the first answer stays
    led.cache_put("k", "openai/m", {"text": "first"})
    led.cache_put("k", "openai/m", {"text": "second"})
    assert led.cache_get("k") == {"text": "first"} and led.cache_get("nope") is None
    led.add_report("calibration", {"kappa": 0.5}, judge_model="openai/judge")
    led.add_report("calibration", {"kappa": 0.7}, judge_model="openai/judge")
    assert [json.loads(r.payload)["kappa"] for r in led.reports("calibration", judge_model="openai/judge")] == [0.7, 0.5]
    led.finish_run("r1", "completed", {"results": 3})
    run = led.get_run("r1")
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    # timestamps are stored in UTC whatever the server's time zone
    assert run.finished_at is not None and before <= run.finished_at.replace(tzinfo=None) <= after
    assert before <= run.created_at.replace(tzinfo=None) <= after
    assert led.get_run("r").id == "r1"  # unique prefix
    counts = led.counts()
    assert counts["runs"] == 1 and counts["runs_by_status"] == {"completed": 1} and counts["results"] == 3
    assert counts["cache"] == 1 and counts["reports_by_kind"] == {"calibration": 2}
    led.close()
    # an independent reader agrees
    assert query(backend_url, "SELECT COUNT(*) FROM result WHERE run_id = 'r1'") == [(3,)]
    assert query(backend_url, "SELECT version FROM schema_version ORDER BY version") == [(m.version,) for m in MIGRATIONS]


def test_batched_writes_and_bulk_reads(backend_url: str) -> None:
    """`write_batch` commits cache entries and results together or not at all; `cache_get_many` and
    `result_rows` read what `cache_get` and `results` read, in bulk."""
    from benchrun.ledger.tables import Result
    from benchrun.report.summary import result_dicts

    led = Ledger(backend_url)
    led.create_run(make_run("r1"))
    led.add_result(make_result("r1", "c0", status="error"))
    led.cache_put("k0", "openai/m", {"text": "first"})
    led.write_batch([("k0", "openai/m", {"text": "second"}), ("k1", "openai/m", {"text": "one"})],
                    [(make_result("r1", "c0", status="passed"), True), (make_result("r1", "c1"), False)])
    assert led.cells("r1") == {("c0", "m", 0): "passed", ("c1", "m", 0): "passed"}
    # one bad row (a cell recorded twice) fails the whole batch: neither its cache entry nor the other row is kept
    with pytest.raises(IntegrityError):
        led.write_batch([("k2", "openai/m", {"text": "two"})],
                        [(make_result("r1", "c2"), False), (make_result("r1", "c1"), False)])
    assert led.cache_get("k2") is None and set(led.cells("r1")) == {("c0", "m", 0), ("c1", "m", 0)}
    keys = ["k0", "k1", "nope", "k0"] + [f"absent-{i}" for i in range(1200)]  # more than one query's worth
    assert led.cache_get_many(keys) == {"k0": {"text": "first"}, "k1": {"text": "one"}}
    assert led.cache_get_many([]) == {}
    rows = led.result_rows("r1")
    assert rows == result_dicts(led.results("r1"))  # the same values
    assert [[type(v) for v in r.values()] for r in rows] == [
        [type(r[k]) for k in rows[0]] for r in result_dicts(led.results("r1"))]  # of the same types
    assert all(list(r) == list(Result.model_fields) for r in rows)  # keys in the table's order
    assert led.result_rows("no-such-run") == []
    led.close()


def assert_written_alike(backend_url: str, new: Any, old: Any) -> None:
    """``new`` and ``old`` (as case c1) written to a fresh ledger read back as the same row."""
    led = Ledger(backend_url)
    led.create_run(make_run("r1"))
    led.add_result(new)
    led.add_result(old.model_copy(update={"case_id": "c1"}))
    a, b = led.result_rows("r1")
    assert {**a, "id": None, "case_id": "c1"} == {**b, "id": None}
    led.close()


def test_new_result_is_the_same_row_as_result(backend_url: str) -> None:
    """`new_result` (the runner's fast constructor) builds what ``Result(**values)`` builds: the same
    values, defaults, fields set and change tracking, written and read back alike."""
    from sqlalchemy import inspect

    from benchrun.ledger.tables import Result, new_result

    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    values: dict[str, Any] = {
        "run_id": "r1", "case_id": "c0", "model_key": "m", "model": "openai/m", "sample_index": 1, "category": "c",
        "severity": "high", "status": "error", "messages": "[]", "response_text": "hi", "resolved_model": "m-1",
        "prompt_tokens": 3, "completion_tokens": None, "tokens_estimated": True, "cost_usd": None,
        "latency_ms": 2.5, "retries": 1, "attempts": '[{"error": "429"}]', "cached": True, "error": None,
        "scored_by": "judge", "created_at": at}
    old, new = Result(**values), new_result(**values)
    assert new.model_dump() == old.model_dump() and new.model_fields_set == old.model_fields_set
    assert new.judge_reasks == 0 and new.rules == "[]" and new.passed is None and new.id is None  # defaults
    assert inspect(new).transient
    for row in (old, new):  # set afterwards, as the runner's scoring does
        row.status, row.passed, row.judge_score = "passed", True, 4
    assert new.model_dump() == old.model_dump() and new.model_fields_set == old.model_fields_set
    assert new_result(**{k: v for k, v in values.items() if k != "created_at"}).created_at > at  # factory called
    with pytest.raises(TypeError, match="no_such"):
        new_result(**values, no_such=1)
    assert_written_alike(backend_url, new, old)


def test_result_draft_makes_the_row_new_result_and_assignments_make(backend_url: str) -> None:
    """`ResultDraft` (the runner's scoring fills it in): reading an unset field gives the row's default, and
    ``row()`` is the row that `new_result` plus the same assignments is, written and read back alike."""
    from benchrun.ledger.tables import ResultDraft, new_result

    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    values: dict[str, Any] = {
        "run_id": "r1", "case_id": "c0", "model_key": "m", "model": "openai/m", "sample_index": 0, "category": "c",
        "severity": "medium", "status": "error", "messages": "[]", "response_text": "hi", "cached": True,
        "scored_by": "rules+judge", "created_at": at}
    old, draft = new_result(**values), ResultDraft(**values)
    assert (draft.judge_retries, draft.judge_prompt_tokens, draft.rules) == (0, None, "[]")  # the defaults
    for row in (old, draft):  # what `_grade` does to a judged result
        row.rules, row.rules_passed = '[{"rule": "x", "passed": true}]', True
        row.judge_retries += 2
        row.judge_prompt_tokens = 7
        row.status, row.passed, row.judge_score = "passed", True, 4
    new = draft.row()
    assert new.model_dump() == old.model_dump() and new.model_fields_set == old.model_fields_set
    assert new.judge_retries == 2 and new.judge_reasks == 0 and new.id is None
    with pytest.raises(AttributeError, match="no_such"):
        draft.no_such = 1
    with pytest.raises(AttributeError, match="created"):
        ResultDraft(run_id="r1").created_at  # a factory field has no plain default to read
    with pytest.raises(TypeError, match="no_such"):
        ResultDraft(**values, no_such=1)
    assert_written_alike(backend_url, new, old)


def test_runner_group_commit_fails_only_the_bad_write(project: Project) -> None:
    """Writes handed to the runner's writer while it is busy are committed together; when that batch fails
    (here: a result for a cell already recorded), each write is retried alone, so only the bad one fails."""
    import asyncio

    from benchrun import runner
    from benchrun.spec import load_run_spec

    loaded = load_run_spec(project.setup())
    led = Ledger(str(project.ledger))
    run_id = runner.create_run(loaded, led)
    led.add_result(make_result(run_id, "c0"))
    r = runner.Runner(loaded, led, run_id)
    gate = threading.Event()
    r._writer.submit(gate.wait)  # hold the writer thread, so that the three writes queue up behind it

    async def go() -> list[Any]:
        done = [r._submit(result=(make_result(run_id, "c1"), False)),
                r._submit(result=(make_result(run_id, "c0"), False)),  # recorded already
                r._submit(cache=("k", "openai/m", {"text": "t"}))]
        await asyncio.sleep(0.05)
        assert not any(f.done() for f in done)  # nobody resumes before a commit
        gate.set()
        return await asyncio.gather(*done, return_exceptions=True)

    try:
        out = asyncio.run(go())
    finally:
        gate.set()  # a failed assertion must not leave the writer thread held (the interpreter would wait for it)
        r._writer.shutdown(wait=True)
    assert out[0] is None and isinstance(out[1], IntegrityError) and out[2] is None
    assert set(led.cells(run_id)) == {("c0", "m", 0), ("c1", "m", 0)} and led.cache_get("k") == {"text": "t"}
    led.close()


WRITER = r"""
import sys
sys.path.insert(0, sys.argv[3])
from benchrun.ledger import Ledger
from reliability.relsupport import make_result, make_run
led = Ledger(sys.argv[1])
rid = "run-" + sys.argv[2]
led.create_run(make_run(rid))
for i in range(25):
    led.add_result(make_result(rid, f"case-{i}"))
    led.cache_put(f"shared-{i}", "m", {"text": str(i)})
led.finish_run(rid, "completed", {})
"""


def test_many_processes_open_a_new_ledger_at_once(backend_url: str) -> None:
    """The concurrent-migration race: 8 processes create the schema of one new ledger and write into it."""
    n = 8
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, backend_url, str(i), str(Path(__file__).parent)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_o, e) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and e.strip() == "", e[-2000:]
    assert query(backend_url, "SELECT version, COUNT(*) FROM schema_version GROUP BY version ORDER BY version") == [
        (m.version, 1) for m in MIGRATIONS]
    assert query(backend_url, "SELECT COUNT(*), COUNT(DISTINCT run_id) FROM result") == [(25 * n, n)]
    assert query(backend_url, "SELECT COUNT(*) FROM cache") == [(25,)]
    assert query(backend_url, "SELECT COUNT(*) FROM run WHERE status = 'completed'") == [(n,)]


def test_sqlite_writer_waits_for_a_held_lock(tmp_path: Path) -> None:
    """Another process holding the write lock makes a write wait, not fail."""
    path = tmp_path / "ledger.sqlite"
    led = Ledger(str(path))
    led.create_run(make_run("r1"))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO cache (key, model, response, created_at) VALUES ('held', 'm', '{}', '2026-01-01')")
    # a real "database is locked" from a writer that does not wait is classified as transient
    impatient = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    with pytest.raises(DBAPIError) as info, impatient.begin() as conn:
        conn.execute(text("INSERT INTO cache (key, model, response, created_at) VALUES ('x', 'm', '{}', '2026')"))
    assert "locked" in str(info.value) and is_transient(info.value)
    impatient.dispose()
    release = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    release.start()
    led.add_result(make_result("r1", "c0"))  # blocks until the holder commits
    release.join()
    holder.close()
    assert {k for (k,) in query(f"sqlite:///{path}", "SELECT key FROM cache")} == {"held"}
    assert len(led.results("r1")) == 1


def test_postgres_transient_errors_are_retried(pg_url: str) -> None:
    """Real serialization failures and deadlocks are classified transient and retried; a unique violation is not."""
    led = Ledger(pg_url)
    led.create_run(make_run("r1"))
    led.cache_put("a", "m", {"text": "0"})
    led.cache_put("b", "m", {"text": "0"})
    other = create_engine(pg_url)
    calls = []

    def txn() -> str:
        calls.append(1)
        with led.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            conn.execute(text("SELECT response FROM cache WHERE key = 'a'")).scalar_one()  # snapshot taken
            if len(calls) == 1:  # someone else commits a change to the same row meanwhile
                with other.begin() as oc:
                    oc.execute(text("""UPDATE cache SET response = '{"text": "other"}' WHERE key = 'a'"""))
            conn.execute(text("""UPDATE cache SET response = '{"text": "mine"}' WHERE key = 'a'"""))
            conn.commit()
        return "ok"

    assert led._retrying(txn) == "ok" and len(calls) == 2
    assert led.cache_get("a") == {"text": "mine"}

    # a real deadlock: two transactions lock a and b in opposite orders
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def locker(first: str, second: str) -> None:
        eng = create_engine(pg_url)
        try:
            with eng.begin() as conn:
                conn.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
                conn.execute(text("UPDATE cache SET model = 'x' WHERE key = :k"), {"k": first})
                barrier.wait()
                conn.execute(text("UPDATE cache SET model = 'x' WHERE key = :k"), {"k": second})
        except DBAPIError as e:
            errors.append(e)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=locker, args=p) for p in (("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(errors) == 1 and "deadlock" in str(errors[0]).lower() and is_transient(errors[0])
    with pytest.raises(IntegrityError) as dup:
        led.add_result(make_result("r1", "c0"))
        led.add_result(make_result("r1", "c0"))
    assert not is_transient(dup.value)
    other.dispose()
    led.close()


# --------------------------------------------------------------------------- ledger copy


def reask_config() -> dict[str, Any]:
    """Case 2's first verdicts are not JSON, so the judge is re-asked: the re-ask is cached under its own key."""
    cfg = fake_config()
    cfg["rules"] = [{"model": "judge", "contains": "Your reply was not valid", "reply": JUDGE_PASS},
                    {"model": "judge", "contains": "ticket 2)", "reply": "Looks fine to me!"}, *cfg["rules"]]
    return cfg


def _run(project: Project, spec: Path, *extra: str) -> str:
    r, summary = project.cli_json("run", str(spec), *extra)
    assert r.returncode == 0, r.stderr
    return str(summary["conditions"]["run_id"])


def _copy(project: Project, src: str, dst: str, *extra: str) -> dict[str, Any]:
    r, stats = project.cli_json("ledger", "copy", "--from", src, "--to", dst, *extra)
    assert r.returncode == 0, r.stderr
    return dict(stats)


def test_copy_round_trip_is_idempotent(tmp_path: Path, backend_url: str) -> None:
    with FakeServer(reask_config()) as server:
        project = Project(tmp_path, server.url)
        spec = project.setup()
        run_id = _run(project, spec)
        src = f"sqlite:///{project.ledger}"
        led = Ledger(src)
        assert any(r.judge_reasks for r in led.results(run_id))
        led.add_report("calibration", {"kappa": 0.8, "trusted": True}, judge_model="openai/judge", summary="k 0.8")
        led.add_report("coverage", {"covered": 0.5}, dataset_hash=led.get_run(run_id).dataset_hash)
        led.add_report("bias_position", {"flip_rate": 0.1}, run_id=run_id)
        led.close()
        original = dump(src)

        stats = _copy(project, src, backend_url)
        assert (stats["runs_added"], stats["results_added"], stats["reports_added"]) == (1, 12, 3)
        assert stats["cache_added"] == len(original["cache"]) and stats["cache_keys_unresolved"] == 0
        copied = dump(backend_url)
        for table in ("run", "result", "report", "cache"):
            assert copied[table] == original[table], table
        again = _copy(project, src, backend_url)  # copying twice changes nothing
        assert not again["changed"] and again["runs_unchanged"] == 1
        assert dump(backend_url) == copied

        # and back into a fresh SQLite file: identical to where it started
        back = f"sqlite:///{tmp_path / 'back.sqlite'}"
        _copy(project, backend_url, back)
        assert {k: v for k, v in dump(back).items() if k != "schema_version"} == {
            k: v for k, v in original.items() if k != "schema_version"}

        # the destination reads the same (runs show) and its cache serves a repeat with no call at all
        _, shown_src = project.cli_json("runs", "show", run_id)
        _, shown_dst = project.cli_json("runs", "show", run_id, "--ledger", backend_url)
        assert shown_dst["models"] == shown_src["models"] and shown_dst["breakdown"] == shown_src["breakdown"]
        _, listed = project.cli_json("runs", "list", "--ledger", backend_url)
        assert [r["id"] for r in listed] == [run_id]
        calls = server.stats()["total"]
        _run(project, spec, "--ledger", backend_url)
        assert server.stats()["total"] == calls  # every answer, verdict and re-ask came from the copied cache


def test_copy_one_run_with_the_reports_that_apply(tmp_path: Path, backend_url: str, server: FakeServer) -> None:
    project = Project(tmp_path, server.url)
    spec_a = project.setup()
    run_a = _run(project, spec_a)
    project.write_dataset(make_cases(3), name="other")
    spec_b = project.write_spec(name="other", dataset="../datasets/other.yaml")
    run_b = _run(project, spec_b)
    src = f"sqlite:///{project.ledger}"
    led = Ledger(src)
    a, b = led.get_run(run_a), led.get_run(run_b)
    judge = {"judge_model": a.judge_model, "judge_prompt_hash": a.judge_prompt_hash, "rubric_hash": a.rubric_hash}
    led.add_report("calibration", {"kappa": 0.8}, **judge)
    led.add_report("calibration", {"kappa": 0.8}, **judge)  # the same analysis stored twice stays twice
    led.add_report("calibration", {"kappa": 0.1}, judge_model="openai/other-judge")
    led.add_report("coverage", {"covered": 0.5}, dataset_hash=a.dataset_hash)
    led.add_report("coverage", {"covered": 0.9}, dataset_hash=b.dataset_hash)
    led.add_report("bias_position", {"flip_rate": 0.2}, run_id=run_b)
    led.close()

    stats = _copy(project, src, backend_url, "--run", run_a[:-2])
    assert stats["runs_added"] == 1 and stats["results_added"] == 12 and stats["reports_added"] == 3
    assert query(backend_url, "SELECT id FROM run") == [(run_a,)]
    got = sorted(query(backend_url, "SELECT kind, payload FROM report"))
    assert got == sorted([("calibration", '{"kappa": 0.8}')] * 2 + [("coverage", '{"covered": 0.5}')])
    assert not _copy(project, src, backend_url, "--run", run_a)["changed"]

    stats = _copy(project, src, backend_url)  # everything: run b, its reports and the unrelated calibration
    assert (stats["runs_added"], stats["runs_unchanged"], stats["results_added"], stats["reports_added"]) == (
        1, 1, 6, 3)
    assert dump(backend_url)["report"] == dump(src)["report"]
    assert not _copy(project, src, backend_url)["changed"]


def test_copy_brings_a_run_up_to_date(tmp_path: Path, backend_url: str) -> None:
    """A run copied while running is completed by the next copy; cells only the destination has are kept."""
    src_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    src = Ledger(src_url)
    src.create_run(make_run("r1"))
    src.add_result(make_result("r1", "c0"))
    src.add_result(make_result("r1", "c1", status="error"))
    project = Project(tmp_path, "http://127.0.0.1:9/v1")
    stats = _copy(project, src_url, backend_url)
    assert stats["runs_still_running"] == ["r1"] and stats["results_added"] == 2
    src.add_result(make_result("r1", "c1", status="passed"), replace=True)  # resumed in the source
    src.add_result(make_result("r1", "c2"))
    src.finish_run("r1", "completed", {"results": 3})
    dst = Ledger(backend_url)
    dst.add_result(make_result("r1", "only-here"))
    stats = _copy(project, src_url, backend_url)
    assert (stats["runs_updated"], stats["results_added"], stats["results_replaced"]) == (1, 1, 1)
    assert dst.get_run("r1").status == "completed"
    assert dst.cells("r1") == {("c0", "m", 0): "passed", ("c1", "m", 0): "passed", ("c2", "m", 0): "passed",
                               ("only-here", "m", 0): "passed"}
    assert not _copy(project, src_url, backend_url)["changed"]
    src.close()
    dst.close()


def test_ledger_info_and_copy_usage_errors(tmp_path: Path, backend_url: str) -> None:
    src_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    src = Ledger(src_url)
    src.create_run(make_run("r1"))
    src.add_result(make_result("r1", "c0"))
    src.add_report("coverage", {"x": 1})
    src.close()
    project = Project(tmp_path, "http://127.0.0.1:9/v1")
    _copy(project, src_url, backend_url)
    r, info = project.cli_json("ledger", "info", "--ledger", backend_url)
    assert r.returncode == 0
    assert info["schema_version"] == max(m.version for m in MIGRATIONS)
    assert (info["runs"], info["results"], info["reports_by_kind"], info["runs_by_status"]) == (
        1, 1, {"coverage": 1}, {"running": 1})
    assert info["backend"] == backend_url.split(":", 1)[0].split("+")[0]
    r = project.cli("ledger", "info", "--ledger", backend_url)
    assert r.returncode == 0 and "schema version" in r.stdout and "results: 1" in r.stdout
    # an unknown run: exit 2, one line, and the destination is not even created
    fresh = tmp_path / "fresh.sqlite"
    r = project.cli("ledger", "copy", "--from", src_url, "--to", str(fresh), "--run", "nope")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no run 'nope'" in r.stderr
    assert not fresh.exists()
    r = project.cli("ledger", "copy", "--from", backend_url, "--to", backend_url)
    assert r.returncode == 2 and "same ledger" in r.stderr


def test_postgres_url_without_driver_uses_psycopg(pg_url: str) -> None:
    bare = pg_url.replace("postgresql+psycopg://", "postgresql://")
    led = Ledger(bare)
    assert led.engine.dialect.driver == "psycopg" and led.schema_version() >= 1
    led.close()


def test_url_missing_its_slashes_is_refused_without_echoing_the_password(tmp_path: Path) -> None:
    """A typo'd URL must not silently become a SQLite file named after it (password included)."""
    project = Project(tmp_path, "http://127.0.0.1:9/v1")
    r = project.cli("ledger", "info", "--ledger", "postgresql:/bench:Pw4LedgerXyz@127.0.0.1/db")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "without '://'" in r.stderr and "Pw4LedgerXyz" not in r.stdout + r.stderr
    assert not any("Pw4LedgerXyz" in str(p) for p in tmp_path.rglob("*"))


LEDGER_SECRETS_PROBE = """
import sys
from benchrun.ledger import Ledger

Ledger(sys.argv[1]).engine.dispose()
print("providers after a plain path:", "benchrun.providers" in sys.modules)
Ledger(f"sqlite://someone:pw-0123456789@/{sys.argv[2]}?token=tok-abcdefgh123").engine.dispose()
from benchrun.providers import SECRETS
print(SECRETS.redact("failed: pw-0123456789, tok-abcdefgh123"))
"""


def test_ledger_url_secrets_are_registered_and_a_plain_path_needs_no_provider_module(tmp_path: Path) -> None:
    """A URL's password and secret-named query values are redacted from printed errors; a plain SQLite path has
    neither, so opening it does not import `benchrun.providers` (httpx) for commands that call no model."""
    r = subprocess.run([sys.executable, "-c", LEDGER_SECRETS_PROBE, str(tmp_path / "plain.sqlite"),
                        str(tmp_path / "url.sqlite")], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["providers after a plain path: False", "failed: ***, ***"]
    assert (tmp_path / "url.sqlite").exists()
