"""Shared parts of the ledger and reliability tests: a real PostgreSQL server, ledgers of both backends.

PostgreSQL comes from ``BENCHRUN_TEST_PG_URL`` when set; otherwise ``scripts/start_postgres.sh``
starts a throwaway cluster for the session. The PostgreSQL variants skip (saying why) only
when neither works. Each test gets its own fresh database.

Use the fixtures in a test module by assigning them: ``backend_url = relsupport.backend_url``.
(No conftest.py here: a second conftest module would shadow ``tests/conftest.py`` for ``from conftest import``.)
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
BENCHRUN = str(Path(sys.executable).parent / "benchrun")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL URL whose user may create databases (session-wide)."""
    url = os.environ.get("BENCHRUN_TEST_PG_URL")
    if url:
        yield url
        return
    script = ROOT / "scripts" / "start_postgres.sh"
    try:
        r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=180, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"PostgreSQL variant skipped: BENCHRUN_TEST_PG_URL unset and {script.name} failed: {e}")
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"PostgreSQL variant skipped: BENCHRUN_TEST_PG_URL unset and {script.name} could not start a "
                    f"server ({why}); install Debian's postgresql package or set BENCHRUN_TEST_PG_URL")
    env = {}
    for line in r.stdout.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            env[k] = shlex.split(v)[0]
    try:
        yield env["BENCHRUN_TEST_PG_URL"]
    finally:
        subprocess.run(["bash", str(script), "stop", env["BENCHRUN_TEST_PG_DIR"]], capture_output=True, timeout=120,
                       check=False)


def _admin(url: str) -> Any:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
                           autocommit=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    from sqlalchemy.engine import make_url

    name = "benchrun_t_" + uuid.uuid4().hex[:12]
    con = _admin(pg_server)
    try:
        con.execute(f'CREATE DATABASE "{name}"')
        created = True
    except Exception:  # no CREATEDB privilege: empty the given database instead
        created = False
        con.execute("DROP SCHEMA public CASCADE")
        con.execute("CREATE SCHEMA public")
    con.close()
    url = make_url(pg_server).set(database=name).render_as_string(hide_password=False) if created else pg_server
    try:
        yield url
    finally:
        if created:
            con = _admin(pg_server)
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            con.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger URL of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


# --------------------------------------------------------------------------- rows


def make_run(run_id: str, dataset_hash: str = "d" * 64) -> Any:
    """A minimal run row (no spec behind it): for tests of the store itself."""
    from benchrun.ledger.tables import Run

    return Run(id=run_id, name="t", status="running", spec_hash="s" * 64, spec_snapshot="{}", dataset_name="ds",
               dataset_version="1", dataset_hash=dataset_hash, rubric_name="rb", rubric_version="1",
               rubric_hash="r" * 64, prompt_hashes="{}", models="[]", sampling="{}", samples_per_case=1,
               judge_model="openai/judge", judge_prompt_hash="j" * 64, judge_sampling="{}", package_versions="{}")


def make_result(run_id: str, case: str, sample: int = 0, status: str = "passed", model_key: str = "m") -> Any:
    from benchrun.ledger.tables import Result

    return Result(run_id=run_id, case_id=case, model_key=model_key, model="openai/m", sample_index=sample,
                  category="c", severity="high", status=status, messages='[{"role": "user", "content": "hi"}]',
                  response_text="hello", passed=status == "passed", judge_score=5 if status == "passed" else None)


# --------------------------------------------------------------------------- reading a ledger directly


def runs_in(ledger: Path) -> int:
    """Runs recorded in a SQLite ledger file (read with sqlite3, independent of benchrun's code)."""
    import sqlite3

    con = sqlite3.connect(ledger)
    try:
        return int(con.execute("SELECT COUNT(*) FROM run").fetchone()[0])
    finally:
        con.close()


def one_line_exit_2(r: Any) -> str:
    """The stderr of a CLI result that failed as bad input: exit code 2, one line, no traceback."""
    assert r.returncode == 2, f"exit {r.returncode}: {r.stdout[-1500:]} {r.stderr[-1500:]}"
    msg = r.stderr.strip()
    assert msg and "\n" not in msg and "Traceback" not in msg and "internal error" not in msg, msg
    return str(msg)


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of a SQL query against a ledger URL of either backend (independent of benchrun's code)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table except generated ids, sorted: compare two ledgers' contents."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as conn:
            for table in inspect(engine).get_table_names():
                cols = [c["name"] for c in inspect(engine).get_columns(table) if c["name"] not in ("id", "applied_at")]
                if table == "run":
                    cols.append("id")
                rows = conn.execute(text(f"SELECT {', '.join(cols)} FROM {table}"))
                out[table] = sorted((tuple(_plain(v) for v in r) for r in rows), key=repr)
    finally:
        engine.dispose()
    return out


def _plain(v: Any) -> Any:
    if hasattr(v, "strftime"):  # PostgreSQL returns datetimes; SQLite text in SQLAlchemy's storage format
        return v.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, bool):
        return int(v)
    return v


# --------------------------------------------------------------------------- a fake server in another process


class ServerProcess:
    """``tests/fakeserver.py`` as a separate process (it outlives the benchrun processes we kill)."""

    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        cfg = tmp / f"fakeserver-{uuid.uuid4().hex[:6]}.json"
        cfg.write_text(json.dumps(config))
        port_file = cfg.with_suffix(".port")
        self.proc = subprocess.Popen([sys.executable, str(TESTS / "fakeserver.py"), "--port", "0", "--config",
                                      str(cfg), "--port-file", str(port_file)], stderr=subprocess.DEVNULL)
        for _ in range(400):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{port_file.read_text().strip()}"
        self.url = self.base + "/v1"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
