"""Hostile or unusual ledgers (issue 12: item 9 and the ledger items of "Low").

* A ledger password given as a query parameter (``?password=``) is hidden wherever a ledger URL is
  printed: the run banner, ``ledger info``, ``ledger copy`` and the connection-failure error.
* A text file as ledger, another application's SQLite file, a ledger of a newer schema: one line,
  exit 2, and nothing written to the file (no benchrun tables, no WAL mode).
* A read-only ledger (a read-only mount, which even root cannot write) can still be listed, shown
  and reported on.
* A full disk stops the run with exit 3 and leaves it ``interrupted``, not ``running``.
* ``#`` and ``?`` in a SQLite path are part of the file name.

Read-only media and full disks are real: a tmpfs mounted for the test (root only; otherwise the
test is skipped and says why).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import Project, make_cases
from fakeserver import FakeServer
from reliability import relsupport

pg_server, pg_url = relsupport.pg_server, relsupport.pg_url  # fixtures

QUERY_PW = "CnryQueryPw3Lk8Vb2Nm"
TOKEN = "CnryQueryToken6Rt1Yx"


def _one_line_error(r: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert r.returncode == code, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# --------------------------------------------------------------------------- item 9: passwords in URLs


def test_redact_url_hides_the_password_and_secret_query_parameters() -> None:
    from benchrun.ledger import redact_url

    url = (f"postgresql+psycopg://u:{QUERY_PW}@h:5432/db?password={QUERY_PW}&sslmode=require&api_token={TOKEN}"
           f"&sslpassword={QUERY_PW}&application_name=bench")
    shown = redact_url(url)
    assert QUERY_PW not in shown and TOKEN not in shown, shown
    u = make_url(shown)
    assert u.query["password"] == "***" and u.query["api_token"] == "***" and u.query["sslpassword"] == "***"
    assert u.query["sslmode"] == "require" and u.query["application_name"] == "bench"  # not secrets: kept
    assert u.host == "h" and u.database == "db" and u.username == "u"


def test_query_password_never_printed(tmp_path: Path, pg_url: str, server: FakeServer) -> None:
    project = Project(tmp_path, server.url)
    spec = project.setup()
    url = f"{pg_url}?password={QUERY_PW}&application_name=benchrun"
    printed: list[str] = []

    r = project.cli("run", str(spec), "--ledger", url)  # the banner names the ledger
    assert r.returncode == 0, r.stderr
    assert "ledger postgresql+psycopg://" in r.stderr and "password=***" in r.stderr, r.stderr
    printed.append(r.stdout + r.stderr)

    r = project.cli("ledger", "info", "--ledger", url)
    assert r.returncode == 0 and "password=***" in r.stdout, r.stdout + r.stderr
    printed.append(r.stdout + r.stderr)
    r, info = project.cli_json("ledger", "info", "--ledger", url)
    assert "password=***" in info["ledger"]
    printed.append(r.stdout + r.stderr)

    for args in (("ledger", "copy", "--from", url, "--to", str(tmp_path / "copy.sqlite")),
                 ("ledger", "copy", "--from", str(tmp_path / "copy.sqlite"), "--to", url)):
        r = project.cli(*args)
        assert r.returncode == 0, r.stderr
        printed.append(r.stdout + r.stderr)
        r = project.cli(*args, "--json")
        assert r.returncode == 0, r.stderr
        printed.append(r.stdout + r.stderr)
    assert any("password=***" in p for p in printed[-4:])

    # the connection-failure error: nothing listens on port 1
    unreachable = f"postgresql+psycopg://benchrun@127.0.0.1:1/x?password={QUERY_PW}&token={TOKEN}"
    for args in (("runs", "list", "--ledger", unreachable), ("ledger", "info", "--ledger", unreachable),
                 ("ledger", "copy", "--from", str(project.ledger), "--to", unreachable),
                 ("run", str(spec), "--ledger", unreachable)):
        r = project.cli(*args)
        line = _one_line_error(r)
        assert "cannot open ledger postgresql+psycopg://benchrun@127.0.0.1:1/x" in line, line
        printed.append(r.stdout + r.stderr)
    for text in printed:
        assert QUERY_PW not in text and TOKEN not in text, text


# --------------------------------------------------------------------------- files that are not our ledger


def test_a_text_file_as_ledger_is_one_line_exit_2(project: Project) -> None:
    project.setup()
    project.ledger.write_text("these are my notes\n")
    for args in (("runs", "list"), ("run", "runs/mini.yaml"), ("ledger", "info")):
        line = _one_line_error(project.cli(*args))
        assert "is not a SQLite database" in line and str(project.ledger) in line, line
    assert project.ledger.read_text() == "these are my notes\n"


def test_another_applications_sqlite_file_is_refused_untouched(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    con = sqlite3.connect(project.ledger)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO customers (name) VALUES ('Ada')")
    con.commit()
    con.close()
    before = project.ledger.read_bytes()
    for args in (("run", str(spec)), ("runs", "list"), ("ledger", "info")):
        line = _one_line_error(project.cli(*args))
        assert "another application's SQLite database (tables: customers)" in line, line
    assert project.ledger.read_bytes() == before  # no table added, and not switched to WAL
    con = sqlite3.connect(project.ledger)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["customers"]
    assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    con.close()
    assert not Path(f"{project.ledger}-wal").exists()
    assert server.requests() == []


def test_a_newer_schema_is_not_written_but_can_be_read(project: Project, server: FakeServer) -> None:
    from benchrun.ledger.migrations import KNOWN_VERSION

    spec = project.setup()
    r, payload = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(project.ledger)
    con.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, 'from the future', "
                "'2027-01-01 00:00:00')", (KNOWN_VERSION + 5,))
    con.commit()
    con.close()
    server.reset()
    line = _one_line_error(project.cli("run", str(spec)))
    assert f"schema version {KNOWN_VERSION + 5}, newer than this benchrun" in line and "upgrade" in line, line
    assert server.requests() == []
    con = sqlite3.connect(project.ledger)
    assert con.execute("SELECT COUNT(*) FROM run").fetchone() == (1,)
    con.close()
    r, rows = project.cli_json("runs", "list")  # reading still works
    assert r.returncode == 0 and [x["id"] for x in rows] == [payload["conditions"]["run_id"]]


def test_hash_and_question_mark_are_part_of_a_sqlite_path(project: Project) -> None:
    spec = project.setup()
    odd = project.root / "runs" / "team#1?v=2.sqlite"
    r, payload = project.cli_json("run", str(spec), "--ledger", str(odd))
    assert r.returncode == 0, r.stderr
    assert odd.is_file()
    names = {p.name for p in (project.root / "runs").iterdir() if p.suffix != ".yaml"}
    assert names <= {"team#1?v=2.sqlite", "team#1?v=2.sqlite-wal", "team#1?v=2.sqlite-shm"}, names  # no "team" file
    con = sqlite3.connect(f"file:{odd}".replace("#", "%23").replace("?", "%3F"), uri=True)
    assert con.execute("SELECT id FROM run").fetchall() == [(payload["conditions"]["run_id"],)]
    con.close()


def test_hash_in_a_production_sqlite_path(tmp_path: Path) -> None:
    from benchrun.coverage.production import load_production

    db = tmp_path / "logs#2026?x.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE queries (text TEXT, timestamp TEXT)")
    con.executemany("INSERT INTO queries VALUES (?, ?)", [("card lost", "2026-05-01"), ("pin blocked", "2026-05-02")])
    con.commit()
    con.close()
    sample = load_production(db, table="queries")
    assert sorted(r.text for r in sample.rows) == ["card lost", "pin blocked"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs#2026?x.db"]  # no empty "logs" created


# --------------------------------------------------------------------------- read-only media, full disks


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"needs a tmpfs mount (root): {r.stderr.strip() or 'mount failed'}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def test_a_read_only_ledger_can_be_listed(project: Project, tmp_path: Path) -> None:
    spec = project.setup()
    with tmpfs(tmp_path / "ro-" / uuid.uuid4().hex[:6], "16m") as mnt:
        ledger = mnt / "ledger.sqlite"
        # a separate process, which exits: the mount is not busy and the ledger was closed cleanly
        r, payload = project.cli_json("run", str(spec), "--ledger", str(ledger), subprocess_=True)
        assert r.returncode == 0, r.stderr
        run_id = payload["conditions"]["run_id"]
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(OSError):
            (mnt / "probe").write_text("x")  # really read-only, even for root
        r, rows = project.cli_json("runs", "list", "--ledger", str(ledger))
        assert r.returncode == 0 and [x["id"] for x in rows] == [run_id], r.stderr
        r, shown = project.cli_json("runs", "show", run_id, "--ledger", str(ledger))
        assert r.returncode == 0 and shown["conditions"]["run_id"] == run_id
        r = project.cli("report", run_id, "--html", str(tmp_path / "report.html"), "--ledger", str(ledger))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "report.html").stat().st_size > 1000
        r = project.cli("ledger", "info", "--ledger", str(ledger))
        assert r.returncode == 0 and "runs: 1" in r.stdout, r.stderr
        # writing is refused in one line
        line = _one_line_error(project.cli("run", str(spec), "--ledger", str(ledger)))
        assert "cannot open ledger" in line and "read-only" in line, line


def test_a_full_disk_stops_the_run_interrupted_exit_3(tmp_path: Path) -> None:
    from benchrun.ledger.store import DISK_RESERVE_BYTES

    big = "x" * 3000  # each answer takes about a page: a 40 kB margin fills within a few cells
    cfg = {"rules": [{"model": "judge", "reply": '{"score": 5, "pass": true, "reason": "ok", "failure_mode": "none"}'},
                     {"model": ".", "reply": big}]}
    with FakeServer(cfg) as srv, tmpfs(tmp_path / "full" / uuid.uuid4().hex[:6], "600k") as mnt:
        project = Project(tmp_path, srv.url)
        project.write_dataset(make_cases(40))
        project.write_rubric()
        spec = project.write_spec(concurrency={"global": 2, "per_model": 2})
        ledger = mnt / "ledger.sqlite"
        r = project.cli("run", str(spec), "--ledger", str(ledger), "--call-workers", "0")
        assert r.returncode == 3 and "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        line = r.stderr.strip().splitlines()[-1]  # after the run banner: the one error line
        assert line.startswith("error: ") and r.stderr.count("error: ") == 1, r.stderr
        assert "disk is full" in line and "--resume" in line, line
        con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            run_id, status, message = con.execute("SELECT id, status, message FROM run").fetchone()
            n = con.execute("SELECT COUNT(*) FROM result").fetchone()[0]
        finally:
            con.close()
        assert status == "interrupted" and "disk is full" in message, (status, message)
        assert 0 < n < 80, n  # it stopped part-way: some results recorded, not all
        st = os.statvfs(mnt)
        assert st.f_bavail * st.f_frsize < 2 * DISK_RESERVE_BYTES  # the disk really was (nearly) full

        # filled to the last byte by someone else: still one line and exit 3, never an internal error
        with contextlib.suppress(OSError), (mnt / "filler").open("wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        for args in (("run", "--resume", run_id), ("run", str(spec))):
            r = project.cli(*args, "--ledger", str(ledger), "--call-workers", "0")
            assert r.returncode == 3 and "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
            assert r.stderr.strip().splitlines()[-1].startswith("error: ") and "disk is full" in r.stderr, r.stderr
        # space again (the filler gone, the disk grown): the run resumes from where it stopped and completes
        (mnt / "filler").unlink()
        subprocess.run(["mount", "-o", "remount,size=32m", str(mnt)], check=True)
        r = project.cli("run", "--resume", run_id, "--ledger", str(ledger), "--call-workers", "0")
        assert r.returncode == 0, r.stderr
        con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            assert con.execute("SELECT COUNT(*), COUNT(DISTINCT case_id || model_key) FROM result "
                               "WHERE run_id = ?", (run_id,)).fetchone() == (80, 80)
            assert con.execute("SELECT status FROM run WHERE id = ?", (run_id,)).fetchone() == ("completed",)
        finally:
            con.close()
