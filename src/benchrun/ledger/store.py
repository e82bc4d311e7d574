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
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, create_engine, delete, select

from benchrun.errors import UsageError
from benchrun.ledger.migrations import migrate
from benchrun.ledger.tables import CacheEntry, Report, Result, Run, utcnow

DEFAULT_LEDGER = "runs/ledger.sqlite"
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


def redact_url(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<ledger url>"


def _register_password(url: str) -> None:
    """Add the URL's password to the values redacted from printed errors (see `benchrun.providers.SECRETS`)."""
    from sqlalchemy.engine import make_url

    from benchrun.providers import SECRETS

    with contextlib.suppress(Exception):  # an unparseable URL is reported by create_engine
        SECRETS.add(make_url(url).password)


def _pg_driver(url: str) -> str:
    """``postgresql://`` / ``postgres://`` mean psycopg 3 when psycopg2 is not installed (it usually is not)."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg{sep}{rest}"
    return f"postgresql{sep}{rest}"


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


class Ledger:
    def __init__(self, url: str | None = None) -> None:
        self.url = ledger_url(url)
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        elif self.url.startswith("postgres"):
            # pre-ping: a shared server restarts or drops idle connections; UTC: timestamps compare across machines
            kwargs["pool_pre_ping"] = True
            if "+psycopg" in self.url.split("://", 1)[0]:
                kwargs["connect_args"] = {"options": "-c timezone=UTC", "connect_timeout": 10}
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except Exception as e:  # bad URL, missing driver
            raise UsageError(f"cannot open ledger {redact_url(self.url)}: {type(e).__name__}: {e}") from None
        if self.url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _register_password(self.url)
        try:
            self._retrying(lambda: migrate(self.engine))
        except OperationalError as e:  # unreachable server, wrong database, unwritable file: the user's to fix
            self.engine.dispose()
            reason = " ".join(str(getattr(e, "orig", None) or e).split())
            raise UsageError(f"cannot open ledger {redact_url(self.url)}: {reason}") from None

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

    # ------------------------------------------------------------------ results

    def add_result(self, result: Result, replace: bool = False) -> None:
        """Insert one result; with ``replace`` an earlier error row for the same cell is swapped out atomically."""

        table = Result.__table__  # type: ignore[attr-defined]
        # a Core insert with the row as parameters: the ORM unit of work costs ~1 ms a row, and building
        # ``insert().values(**row)`` per call ~0.8 ms (coercing and cache-keying every value); this form is
        # compiled once and cached (see benchmarks/ledger_throughput.py)
        values = result.model_dump(exclude={"id"})

        def go() -> None:
            with self.engine.begin() as conn:
                if replace:
                    conn.execute(
                        delete(Result).where(
                            Result.run_id == result.run_id,  # type: ignore[arg-type]
                            Result.case_id == result.case_id,  # type: ignore[arg-type]
                            Result.model_key == result.model_key,  # type: ignore[arg-type]
                            Result.sample_index == result.sample_index,  # type: ignore[arg-type]
                        )
                    )
                conn.execute(table.insert(), values)

        self._retrying(go)

    def results(self, run_id: str) -> list[Result]:
        def go() -> list[Result]:
            with self.session() as s:
                q = select(Result).where(Result.run_id == run_id).order_by(Result.id)  # type: ignore[arg-type]
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
        def go() -> str | None:
            with self.session() as s:
                e = s.get(CacheEntry, key)
                return e.response if e else None

        text = self._retrying(go)
        return json.loads(text) if text is not None else None

    def cache_put(self, key: str, model: str, response: dict[str, Any]) -> None:
        """Insert-or-ignore in one statement (a Core insert: the ORM round trip costs ~3 ms per call)."""
        values = {"key": key, "model": model, "response": json.dumps(response), "created_at": utcnow()}
        table = CacheEntry.__table__  # type: ignore[attr-defined]
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt: Any = sqlite_insert(table).on_conflict_do_nothing(index_elements=["key"])
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table).on_conflict_do_nothing(index_elements=["key"])
        else:
            stmt = table.insert()

        def go() -> None:
            with self.engine.begin() as conn:
                conn.execute(stmt, values)

        try:
            self._retrying(go)
        except IntegrityError:
            pass  # another writer cached the same call first

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
