"""The ledger: the only module that reads or writes the database.

SQLite by default (``runs/ledger.sqlite``), any SQLAlchemy URL otherwise
(``--ledger URL`` / ``BENCHRUN_LEDGER``), e.g. a team's PostgreSQL
(``postgresql+psycopg://user@host/db``). SQLite runs in WAL mode with a busy
timeout so several writers can share one file; every write is one short
transaction, retried when the database reports a transient conflict (SQLite
"database is locked", PostgreSQL serialization failures and deadlocks).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, bindparam, event
from sqlalchemy.exc import DatabaseError, DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, create_engine, delete, select

from benchrun.errors import RunAborted, UsageError
from benchrun.ledger.migrations import FutureSchema, migrate
from benchrun.ledger.tables import CacheEntry, PairJudgement, Report, Result, Run, RunLease, utcnow

DEFAULT_LEDGER = "runs/ledger.sqlite"
_CACHE_TABLE = CacheEntry.__table__  # type: ignore[attr-defined]
_CACHE_GET = select(_CACHE_TABLE.c.response).where(_CACHE_TABLE.c.key == bindparam("key"))
_RESULT_FIELDS = tuple(Result.model_fields)  # the order of `Result.model_dump`
_CACHE_CHUNK = 500  # keys per query of `Ledger.cache_get_many` (SQLite allows 32,766 bound parameters, old builds 999)
T = TypeVar("T")
# PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected, lock_not_available
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}
_CONCURRENT_DDL_SQLSTATES = {"42P07", "42710"}  # duplicate_table, duplicate_object


def ledger_url(url_or_path: str | None = None) -> str:
    """Resolve ``--ledger`` / ``BENCHRUN_LEDGER`` / the default into a SQLAlchemy URL."""
    value = url_or_path or os.environ.get("BENCHRUN_LEDGER") or DEFAULT_LEDGER
    if "://" in value:
        return _pg_driver(value)
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):", value)
    if scheme:  # "postgresql:/u:pw@h/db" would otherwise become a SQLite file named after the URL, password and all
        raise UsageError(f"the ledger '{scheme.group(1)}:...' looks like a database URL without '://'; write it as "
                         "SCHEME://user@host/db (e.g. postgresql+psycopg://user@host/benchrun) or give a file path")
    Path(value).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{value}"


# query parameters of a database URL that carry credentials (``?password=``, ``?sslpassword=``, ``?token=`` ...)
_SECRET_QUERY = re.compile(r"(?i)pass|pwd|token|secret|key|auth|credential|signature|^sig$")


def redact_url(url: str) -> str:
    """A database URL fit to print: the password hidden (SQLAlchemy's ``hide_password``), and the value of every
    query parameter named like a secret (``password``, ``token``, ``key``, ``secret`` ...) replaced by ``***``.

    The one helper for every place that shows a ledger URL (run banner, ``ledger info``, ``ledger copy``,
    errors).
    """
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
        if u.query:
            u = u.set(query={k: ("***" if _SECRET_QUERY.search(k) else v) for k, v in u.query.items()})
        return u.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
    except Exception:
        return "<ledger url>"


def _register_password(url: str) -> None:
    """Add the URL's password and secret-named query values to the values redacted from printed errors
    (see `benchrun.providers.SECRETS`).

    A URL with neither ``@`` nor ``?`` (every plain SQLite path) carries no password and no query, so there is
    nothing to register, and `benchrun.providers` (httpx with it) is not imported for a command that calls no
    model (`runs list`, `runs show` ...)."""
    if "@" not in url and "?" not in url:
        return
    from sqlalchemy.engine import make_url

    from benchrun.providers import SECRETS

    with contextlib.suppress(Exception):  # an unparseable URL is reported by create_engine
        u = make_url(url)
        SECRETS.add(u.password)
        for k, v in u.query.items():
            if _SECRET_QUERY.search(k):
                for value in (v,) if isinstance(v, str) else v:
                    SECRETS.add(value)


def _pg_driver(url: str) -> str:
    """``postgresql://`` / ``postgres://`` mean psycopg 3 when psycopg2 is not installed (it usually is not)."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg{sep}{rest}"
    return f"postgresql{sep}{rest}"


def error_reason(e: BaseException) -> str:
    """A database error's own message on one line, without SQLAlchemy's SQL and parameters."""
    return " ".join(str(getattr(e, "orig", None) or e).split())


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full") or PostgreSQL's disk_full (53100)."""
    if isinstance(exc, DiskFull):
        return True
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code == "53100" or "disk is full" in str(exc).lower() or "no space left" in str(exc).lower()


def is_transient(exc: BaseException) -> bool:
    """A database error that a retry of the same short transaction can cure."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _TRANSIENT_SQLSTATES:
        return True
    if code in _CONCURRENT_DDL_SQLSTATES:
        return True
    text = str(exc).lower()
    if "locked" in text or "busy" in text or "serializ" in text or "deadlock" in text:
        return True
    # two processes creating the schema at once (migrations also take a lock; this is the safety net).
    # A unique violation on our own tables (e.g. a result cell recorded twice) is NOT transient.
    if "schema_version" in text or "pg_type_typname_nsp_index" in text or "pg_class_relname_nsp_index" in text:
        return True
    return isinstance(exc, OperationalError) and "already exists" in text  # SQLite: "table run already exists"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL below may itself have to wait
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_pragmas_read_only(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_SQLITE_HEADER = b"SQLite format 3\x00"
_OUR_TABLES = {"schema_version", "run"}  # a benchrun ledger has at least these (migration 1 makes them together)


def _sqlite_file(url: str, given: str | None) -> str:
    """The file behind a SQLite ledger: the path as given (``#`` and ``?`` are part of a path, not URL syntax),
    or the database part of a ``sqlite:///`` URL."""
    if given is not None and "://" not in given:
        return given
    from sqlalchemy.engine import make_url

    return make_url(url).database or ""


def _sqlite_uri(path: str, *params: str) -> str:
    """A ``file:`` URI for ``sqlite3.connect(uri=True)`` with the path percent-encoded, so ``#`` / ``?`` in a
    file name cannot end the path and start a fragment or query."""
    from urllib.parse import quote

    return f"file:{quote(path, safe='/')}" + (f"?{'&'.join(params)}" if params else "")


# Every ledger and every SQLite connection this process opened and still holds, weakly: `close_all` closes them
# when the console script ends the process without the interpreter's teardown (`benchrun.cli.app.console`).
_OPEN_LEDGERS: weakref.WeakSet[Ledger] = weakref.WeakSet()
_OPEN_SQLITE: weakref.WeakSet[Any] = weakref.WeakSet()


@functools.cache
def _tracked_connection_class() -> Any:
    """`sqlite3.Connection` cannot be weakly referenced; a subclass of it can, and is otherwise the same."""
    import sqlite3

    class _TrackedConnection(sqlite3.Connection):
        pass

    return _TrackedConnection


def _connect_sqlite(path: str, read_only: bool) -> Any:
    import sqlite3

    tracked = _tracked_connection_class()
    if not read_only:
        con = sqlite3.connect(_sqlite_uri(path), uri=True, timeout=30, check_same_thread=False, factory=tracked)
    else:
        con = sqlite3.connect(_sqlite_uri(path, "mode=ro"), uri=True, timeout=30, check_same_thread=False,
                              factory=tracked)
        try:  # a WAL ledger on a read-only medium cannot create its -shm file: read it as immutable then
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            con.close()
            con = sqlite3.connect(_sqlite_uri(path, "mode=ro", "immutable=1"), uri=True, check_same_thread=False,
                                  factory=tracked)
    _OPEN_SQLITE.add(con)
    return con


def close_all() -> None:
    """Close every ledger connection this process still holds: each ledger's pool, then any SQLite connection
    still checked out of one. What the interpreter's teardown would do when it frees them: SQLite then
    checkpoints a WAL ledger and removes its ``-wal`` / ``-shm`` files, and a server sees its connections
    end cleanly. Committed transactions are durable either way; an open one is rolled back, as at teardown."""
    for led in list(_OPEN_LEDGERS):
        with contextlib.suppress(Exception):
            led.close()
    for con in list(_OPEN_SQLITE):
        with contextlib.suppress(Exception):
            con.close()


def _check_sqlite_file(path: str, shown: str) -> None:
    """Refuse a file that is not a benchrun ledger before anything (tables, WAL mode) is written to it:
    a text file, or another application's SQLite database (non-empty, without our schema)."""
    import sqlite3

    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size == 0:
            return  # a new ledger (or a path the connection itself will report on)
        with p.open("rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError:
        return
    if head != _SQLITE_HEADER:
        raise UsageError(f"ledger {shown} is not a SQLite database (it does not start with the SQLite header); give "
                         "a benchrun ledger file, or a path that does not exist yet to start a new one")
    try:
        con = _connect_sqlite(path, read_only=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error:
        return  # locked, corrupt: reported when the ledger connects
    if tables and not _OUR_TABLES <= tables:
        names = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise UsageError(f"ledger {shown} is another application's SQLite database (tables: {names}) without "
                         "benchrun's schema; refusing to add tables to it. Give a new path for the ledger")


# A SQLite ledger stops taking results and cache entries when its disk has less than this free, so that
# recording how the run ended (a few pages) still fits: a disk that is really full takes no write at all.
DISK_RESERVE_BYTES = 256 * 1024


class DiskFull(RunAborted):
    """The ledger's disk is (almost) full: the run stops, resumable, before the database itself fails."""


class LeaseHeld(UsageError):
    """Another live process holds the run's lease."""


def _aware(t: Any) -> Any:
    """SQLite returns naive datetimes (stored as UTC); PostgreSQL aware ones."""
    import datetime as dt

    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def lease_owner() -> str:
    """``host:pid:token`` of this process (the token tells apart a reused pid)."""
    import secrets
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _describe_owner(owner: str) -> str:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return f"pid {pid} on {host}"


def _owner_dead(owner: str) -> bool:
    """Is ``owner`` a process of this host that no longer runs (or a zombie)? Owners on other hosts: unknown."""
    import socket

    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] == "Z"  # killed, not yet reaped by its parent
    return False


class _CompiledInserts:
    """`Ledger.write_batch`'s two inserts as SQL text and positional parameters, for ``exec_driver_sql``.

    ``conn.execute(table.insert(), rows)`` looks the compiled statement up in SQLAlchemy's cache and runs
    every value through its execution context each time. Here the statements are compiled once, by SQLAlchemy
    for this dialect, and each value goes through its column type's own bind processor
    (``TypeEngine.bind_processor``, what SQLAlchemy applies itself), so the driver receives the same values
    and the rows are the same. tests/test_ledger_writes.py compares the two paths row for row.
    `benchmarks/ledger_throughput.py --rows 2000 --writers 1 --backends sqlite`, before -> after, one writer:
    ``add_result`` 3,829 -> 4,718 rows/s, a result with its two cache entries 3,600 -> 5,039 results/s.
    """

    def __init__(self, dialect: Any, cache_insert: Any) -> None:
        result = Result.__table__  # type: ignore[attr-defined]
        self.result_cols = [c for c in _RESULT_FIELDS if c != "id"]
        self.cache_cols = ["key", "model", "response", "created_at"]
        self.result_sql, self.result_procs = self._compile(dialect, result.insert(), result, self.result_cols)
        self.cache_sql, self.cache_procs = self._compile(dialect, cache_insert, _CACHE_TABLE, self.cache_cols)

    @staticmethod
    def _compile(dialect: Any, stmt: Any, table: Any, cols: list[str]) -> tuple[str, list[Any]]:
        compiled = stmt.compile(dialect=dialect, column_keys=cols)
        order = list(compiled.positiontup or [])
        if order != cols:  # a dialect that orders parameters otherwise: not this path's
            raise AssertionError(f"unexpected parameter order {order}")
        procs = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in cols]
        return str(compiled), procs

    @staticmethod
    def _params(row: dict[str, Any], cols: list[str], procs: list[Any]) -> tuple[Any, ...]:
        return tuple(v if (p := procs[i]) is None else p(v) for i, v in enumerate(row[c] for c in cols))

    def result_params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return self._params(row, self.result_cols, self.result_procs)

    def cache_params(self, entry: dict[str, Any]) -> tuple[Any, ...]:
        return self._params(entry, self.cache_cols, self.cache_procs)


class Ledger:
    """A ledger opened for writing (the schema is created or upgraded), or with ``read_only`` for reading commands.

    ``read_only`` opens an existing SQLite file with ``mode=ro`` (so a ledger on a read-only medium or
    without write permission can still be listed) and writes nothing, not even migrations; a ledger whose
    schema is newer than this benchrun knows can be read that way but not written. A missing file is
    created as usual.
    """

    def __init__(self, url: str | None = None, *, read_only: bool = False) -> None:
        self.url = ledger_url(url)
        kwargs: dict[str, Any] = {}
        sqlite = self.url.startswith("sqlite")
        self._sqlite_dir: Path | None = None
        if sqlite:
            path = _sqlite_file(self.url, url or os.environ.get("BENCHRUN_LEDGER") or DEFAULT_LEDGER)
            _check_sqlite_file(path, redact_url(self.url))
            read_only = read_only and Path(path).exists()
            from sqlalchemy.pool import QueuePool

            # our own connect: the path goes into a percent-encoded file: URI, and read-only opens use mode=ro
            self._sqlite_dir = Path(path).resolve().parent
            kwargs["creator"] = lambda: _connect_sqlite(path, read_only)
            kwargs["poolclass"] = QueuePool
        elif self.url.startswith("postgres"):
            # pre-ping: a shared server restarts or drops idle connections; UTC: timestamps compare across machines
            kwargs["pool_pre_ping"] = True
            if "+psycopg" in self.url.split("://", 1)[0]:
                kwargs["connect_args"] = {"options": "-c timezone=UTC", "connect_timeout": 10}
        try:
            self.engine: Engine = create_engine("sqlite://" if sqlite else self.url, **kwargs)
        except Exception as e:  # bad URL, missing driver
            raise UsageError(f"cannot open ledger {redact_url(self.url)}: {type(e).__name__}: {e}") from None
        _OPEN_LEDGERS.add(self)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas_read_only if read_only else _sqlite_pragmas)
        _register_password(self.url)
        # a reading command writes nothing: no migration on a read-only SQLite file, nor on a server ledger that
        # already has a schema (a new, empty server database still gets one)
        self.read_only = read_only and (sqlite or self._has_schema())
        try:
            if not self.read_only:
                self._retrying(lambda: migrate(self.engine))
        except FutureSchema as e:
            self.engine.dispose()
            raise UsageError(f"ledger {redact_url(self.url)} has {e}: it was written by a newer benchrun; upgrade "
                             "benchrun before writing to it (reading commands such as `runs list` still work)") from None
        except DatabaseError as e:  # unreachable server, wrong database, unwritable or foreign file: the user's to fix
            self.engine.dispose()
            hint = ""
            if sqlite and Path(path).exists() and not (os.access(path, os.W_OK)
                                                       and os.access(Path(path).parent, os.W_OK)):
                hint = " (the file or its directory is read-only; reading commands such as `runs list` still work)"
            raise UsageError(f"cannot open ledger {redact_url(self.url)}: {error_reason(e)}{hint}") from None

    def _has_schema(self) -> bool:
        from benchrun.ledger.migrations import current_version

        try:
            return current_version(self.engine) >= 1
        except DatabaseError:
            return False  # reported by migrate

    @staticmethod
    def _retrying(fn: Callable[[], T], attempts: int = 20) -> T:
        """Retry on lock contention, serialization failures, deadlocks and concurrent-migration races.

        ``fn`` must be one whole transaction (it is re-run from the start). Backoff is exponential
        with full jitter, so writers that collided do not collide again in lockstep.
        """
        for i in range(attempts):
            try:
                return fn()
            except DBAPIError as e:
                if not is_transient(e) or i == attempts - 1:
                    raise
                time.sleep(random.uniform(0.0, min(2.0, 0.02 * (2**i))))
        raise AssertionError("unreachable")

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ runs

    def create_run(self, run: Run) -> None:
        def go() -> None:
            with self.session() as s:
                s.add(run)
                s.commit()

        self._retrying(go)

    def get_run(self, run_id: str) -> Run:
        """A run by id or unique id prefix."""
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                return run
            matches = list(s.exec(select(Run).where(Run.id.startswith(run_id))))  # type: ignore[attr-defined]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UsageError(f"no run '{run_id}' in ledger {redact_url(self.url)}; see `benchrun runs list`")
        raise UsageError(f"run id prefix '{run_id}' is ambiguous ({len(matches)} runs); give more characters")

    def list_runs(self, limit: int = 50) -> list[Run]:
        with self.session() as s:
            return list(s.exec(select(Run).order_by(Run.created_at.desc()).limit(limit)))  # type: ignore[attr-defined]

    def update_run(self, run_id: str, **fields: Any) -> None:
        def go() -> None:
            with self.session() as s:
                run = s.get(Run, run_id)
                if run is None:
                    raise UsageError(f"no run '{run_id}'")
                for k, v in fields.items():
                    setattr(run, k, v)
                s.add(run)
                s.commit()

        self._retrying(go)

    def finish_run(self, run_id: str, status: str, totals: dict[str, Any], message: str | None = None) -> None:
        self.update_run(run_id, status=status, totals=json.dumps(totals), message=message, finished_at=utcnow())

    # ------------------------------------------------------------------ lease

    def acquire_lease(self, run_id: str, owner: str, stale_after_s: float) -> None:
        """Take the run-level lease of ``run_id`` for ``owner`` (``host:pid:token``), or refuse.

        One row per run in ``run_lease``, taken in a short transaction: inserted when absent; taken over
        when stale (its heartbeat is older than ``stale_after_s``, or its owner is a process of this host
        that no longer exists), by an update conditioned on the old owner, so two takers cannot both win.
        Otherwise raises `LeaseHeld` (a `UsageError`: exit 2) naming the holder.
        """
        table = RunLease.__table__  # type: ignore[attr-defined]

        def go() -> str | None:
            try:
                return attempt()
            except IntegrityError:
                return "retry"  # another process inserted the row first: look again

        def attempt() -> str | None:
            now = utcnow()
            with self.engine.begin() as conn:
                row = conn.execute(select(table.c.owner, table.c.heartbeat_at).where(table.c.run_id == run_id)).first()
                if row is None:
                    conn.execute(table.insert(), {"run_id": run_id, "owner": owner, "acquired_at": now,
                                                  "heartbeat_at": now})
                    return None
                holder, beat = row
                age = (now - _aware(beat)).total_seconds()
                if age <= stale_after_s and not _owner_dead(holder):
                    return f"{_describe_owner(holder)}, last heartbeat {max(age, 0):.0f}s ago"
                taken = conn.execute(table.update().where(table.c.run_id == run_id, table.c.owner == holder).values(
                    owner=owner, acquired_at=now, heartbeat_at=now)).rowcount
                return None if taken == 1 else "retry"

        for _ in range(5):
            held = self._retrying(go)
            if held != "retry":
                break
        if held is not None:
            raise LeaseHeld(f"run {run_id} is being run by another process ({held}); wait for it to finish, or if "
                            f"it died, retry after {stale_after_s:.0f}s without a heartbeat (a dead process on this "
                            "host is noticed at once)")

    def renew_lease(self, run_id: str, owner: str) -> bool:
        """Refresh the heartbeat; False when the lease is no longer ours (taken over after we looked stale)."""
        table = RunLease.__table__  # type: ignore[attr-defined]

        def go() -> bool:
            with self.engine.begin() as conn:
                n = conn.execute(table.update().where(table.c.run_id == run_id, table.c.owner == owner).values(
                    heartbeat_at=utcnow())).rowcount
            return n == 1

        return self._retrying(go)

    def release_lease(self, run_id: str, owner: str) -> None:
        table = RunLease.__table__  # type: ignore[attr-defined]

        def go() -> None:
            with self.engine.begin() as conn:
                conn.execute(table.delete().where(table.c.run_id == run_id, table.c.owner == owner))

        self._retrying(go)

    # ------------------------------------------------------------------ results

    def _check_space(self) -> None:
        """Raise `DiskFull` when a SQLite ledger's file system has less than `DISK_RESERVE_BYTES` free."""
        if self._sqlite_dir is None:
            return
        try:
            st = os.statvfs(self._sqlite_dir)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        if free < DISK_RESERVE_BYTES:
            raise DiskFull(f"{free // 1024} kB free on the disk of {self._sqlite_dir}, under the "
                           f"{DISK_RESERVE_BYTES // 1024} kB kept to record how the run ended")

    def add_result(self, result: Result, replace: bool = False) -> None:
        """Insert one result; with ``replace`` an earlier error row for the same cell is swapped out atomically."""
        self.write_batch([], [(result, replace)])

    def write_batch(self, cache: list[tuple[str, str, dict[str, Any]]], results: list[tuple[Result, bool]]) -> None:
        """Cache entries ``(key, model, response)`` (insert-or-ignore, as `cache_put`) and results ``(row, replace)``
        (as `add_result`) in ONE transaction: all of them are committed, or none (a crash mid-commit leaves
        none; SQLite and PostgreSQL commits are atomic). The runner's writer thread hands over what arrived
        while it was writing (group commit), so one commit serves many results under load."""
        self._check_space()
        # SQLite: `_CompiledInserts`. Elsewhere a Core insert with the rows as parameters: the ORM unit of work
        # costs ~1 ms a row, and building ``insert().values(**row)`` per call ~0.8 ms (coercing and cache-keying
        # every value); this form is compiled once and cached (see benchmarks/ledger_throughput.py)
        table = Result.__table__  # type: ignore[attr-defined]
        rows = [r.model_dump(exclude={"id"}) for r, _ in results]
        replaced = [r for r, replace in results if replace]
        now = utcnow()
        entries = [{"key": k, "model": m, "response": json.dumps(resp), "created_at": now} for k, m, resp in cache]
        fast = self._insert_sql() if self._sqlite_dir is not None else None
        if fast is not None:  # the same statements, compiled once, with the values as the driver gets them
            cache_args = [fast.cache_params(e) for e in entries]
            row_args = [fast.result_params(r) for r in rows]

        def go() -> None:
            with self.engine.begin() as conn:
                if entries and fast is not None:
                    conn.exec_driver_sql(fast.cache_sql, cache_args)
                elif entries:
                    conn.execute(self._cache_insert(), entries)
                for result in replaced:
                    conn.execute(
                        delete(Result).where(
                            Result.run_id == result.run_id,  # type: ignore[arg-type]
                            Result.case_id == result.case_id,  # type: ignore[arg-type]
                            Result.model_key == result.model_key,  # type: ignore[arg-type]
                            Result.sample_index == result.sample_index,  # type: ignore[arg-type]
                        )
                    )
                if rows and fast is not None:
                    conn.exec_driver_sql(fast.result_sql, row_args)
                elif rows:
                    conn.execute(table.insert(), rows)

        self._retrying(go)

    def results(self, run_id: str) -> list[Result]:
        def go() -> list[Result]:
            with self.session() as s:
                q = select(Result).where(Result.run_id == run_id).order_by(Result.id)  # type: ignore[arg-type]
                return list(s.exec(q))

        return self._retrying(go)

    def result_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The run's results as plain dicts, in the order of `results`: ``[r.model_dump() for r in results(run_id)]``
        read with one Core select (no ORM objects: loading 4,000 of them cost ~10x the CPU of the rows)."""
        table = Result.__table__  # type: ignore[attr-defined]

        def go() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(table).where(table.c.run_id == run_id).order_by(table.c.id))
                return [{k: m[k] for k in _RESULT_FIELDS} for m in rows.mappings()]

        return self._retrying(go)

    def add_pair_judgements(self, rows: list[PairJudgement]) -> None:
        """Insert the judgements of one pair (both orders) in one transaction; an earlier error row of the same
        pair and order is replaced (a resumed pairwise run judges it again)."""
        self._check_space()
        table = PairJudgement.__table__  # type: ignore[attr-defined]

        def go() -> None:
            with self.engine.begin() as conn:
                for r in rows:
                    conn.execute(delete(PairJudgement).where(
                        PairJudgement.run_id == r.run_id, PairJudgement.case_id == r.case_id,  # type: ignore[arg-type]
                        PairJudgement.model_a == r.model_a, PairJudgement.model_b == r.model_b,  # type: ignore[arg-type]
                        PairJudgement.ordering == r.ordering))  # type: ignore[arg-type]
                    conn.execute(table.insert(), r.model_dump(exclude={"id"}))

        self._retrying(go)

    def pair_judgements(self, run_id: str) -> list[PairJudgement]:
        """Every pairwise judgement of a run (empty for a pointwise run), in the order they were recorded."""

        def go() -> list[PairJudgement]:
            with self.session() as s:
                q = select(PairJudgement).where(PairJudgement.run_id == run_id).order_by(PairJudgement.id)  # type: ignore[arg-type]
                return list(s.exec(q))

        return self._retrying(go)

    def cells(self, run_id: str) -> dict[tuple[str, str, int], str]:
        """``{(case_id, model_key, sample_index): status}`` of every recorded result."""

        def go() -> dict[tuple[str, str, int], str]:
            with self.session() as s:
                rows = s.exec(
                    select(Result.case_id, Result.model_key, Result.sample_index, Result.status).where(
                        Result.run_id == run_id  # type: ignore[arg-type]
                    )
                )
                return {(c, m, i): st for c, m, i, st in rows}

        return self._retrying(go)

    # ------------------------------------------------------------------ cache

    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The cached response of one call, or None. (A Core select compiled once: the ORM's ``Session.get``
        cost ~5x as much CPU per lookup, and a replay makes two lookups per result.)"""

        def go() -> str | None:
            with self.engine.connect() as conn:
                return conn.execute(_CACHE_GET, {"key": key}).scalar()

        text = self._retrying(go)
        return json.loads(text) if text is not None else None

    def cache_get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{key: response}`` of the given keys that are cached (absent keys are left out), in a few queries
        of up to `_CACHE_CHUNK` keys each: what `cache_get` returns for each key, without a round trip per key."""
        table = _CACHE_TABLE
        wanted = list(dict.fromkeys(keys))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), _CACHE_CHUNK):
            chunk = wanted[start:start + _CACHE_CHUNK]

            def go(chunk: list[str] = chunk) -> list[tuple[str, str]]:
                with self.engine.connect() as conn:
                    return [(k, r) for k, r in conn.execute(
                        select(table.c.key, table.c.response).where(table.c.key.in_(chunk)))]

            for k, text in self._retrying(go):
                out[k] = json.loads(text)
        return out

    def _insert_sql(self) -> _CompiledInserts:
        """The cache and result inserts of `write_batch` compiled once for this engine's dialect (SQLite)."""
        compiled = self.__dict__.get("_compiled_inserts")
        if compiled is None:
            compiled = self.__dict__["_compiled_inserts"] = _CompiledInserts(self.engine.dialect, self._cache_insert())
        return compiled

    def _cache_insert(self) -> Any:
        """Insert-or-ignore into the cache (another writer may have cached the same call first)."""
        table = _CACHE_TABLE
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing(index_elements=["key"])
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing(index_elements=["key"])
        return table.insert()

    def cache_put(self, key: str, model: str, response: dict[str, Any]) -> None:
        """Insert-or-ignore in one statement (a Core insert: the ORM round trip costs ~3 ms per call)."""
        try:
            self.write_batch([(key, model, response)], [])
        except IntegrityError:
            pass  # another writer cached the same call first (a dialect without insert-or-ignore)

    # ------------------------------------------------------------------ reports

    def add_report(self, kind: str, payload: dict[str, Any], **fields: Any) -> int:
        rep = Report(kind=kind, payload=json.dumps(payload, default=str), **fields)

        def go() -> int:
            with self.session() as s:
                s.add(rep)
                s.commit()
                s.refresh(rep)
                return int(rep.id or 0)

        return self._retrying(go)

    def reproductions(self) -> dict[str, str]:
        """Run id of each reproduction -> the id of the run it reproduced (from the stored reproduction reports)."""
        with self.session() as s:
            q = select(Report.run_id, Report.subject).where(Report.kind == "reproduction")  # type: ignore[call-overload, arg-type]
            return {rid: subj for rid, subj in s.exec(q) if rid and subj}

    def reports(self, kind: str, **filters: Any) -> list[Report]:
        """Reports of a kind, newest first, filtered by column equality."""
        with self.session() as s:
            q = select(Report).where(Report.kind == kind)  # type: ignore[arg-type]
            for k, v in filters.items():
                q = q.where(getattr(Report, k) == v)
            return list(s.exec(q.order_by(Report.created_at.desc(), Report.id.desc())))  # type: ignore[attr-defined, union-attr]

    # ------------------------------------------------------------------ inspection

    def schema_version(self) -> int:
        """The highest migration applied to this ledger."""
        from benchrun.ledger.migrations import current_version

        return current_version(self.engine)

    def counts(self) -> dict[str, Any]:
        """Row counts: runs (by status), results, cache entries and reports (by kind)."""
        from sqlalchemy import func

        def go() -> dict[str, Any]:
            with self.session() as s:
                by_status = dict(s.exec(select(Run.status, func.count()).group_by(Run.status)).all())  # type: ignore[arg-type]
                by_kind = dict(s.exec(select(Report.kind, func.count()).group_by(Report.kind)).all())  # type: ignore[arg-type]
                n_results = s.exec(select(func.count()).select_from(Result)).one()
                n_cache = s.exec(select(func.count()).select_from(CacheEntry)).one()
            return {
                "runs": sum(by_status.values()), "runs_by_status": by_status, "results": int(n_results),
                "cache": int(n_cache), "reports": sum(by_kind.values()), "reports_by_kind": by_kind,
            }

        return self._retrying(go)
