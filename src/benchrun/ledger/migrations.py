"""Explicit, append-only schema migrations (in the style of simonw/llm).

Each migration has a number and runs once; the applied ones are recorded in
`schema_version`. Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from benchrun.ledger import tables as t


class FutureSchema(Exception):
    """The ledger's schema is newer than this benchrun: refuse to write to it."""

    def __init__(self, version: int) -> None:
        self.version = version
        super().__init__(f"schema version {version}, newer than this benchrun knows ({KNOWN_VERSION})")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _create(*models: type[SQLModel]) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        SQLModel.metadata.create_all(conn, tables=[m.__table__ for m in models])  # type: ignore[attr-defined]

    return run


def _add_column(table: str, column: str, sql_type: str) -> Callable[[Connection], None]:
    """``ALTER TABLE ... ADD COLUMN`` (nullable), skipped when migration 1 already created the column
    (it creates the tables from today's models)."""

    def run(conn: Connection) -> None:
        if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")

    return run


MIGRATIONS: list[Migration] = [
    Migration(1, "core: run, result, cache, report", _create(t.Run, t.Result, t.CacheEntry, t.Report)),
    Migration(2, "result.scored_by: which method scored each result", _add_column("result", "scored_by", "VARCHAR")),
    Migration(3, "result.injection_suspected", _add_column("result", "injection_suspected", "TEXT")),
    Migration(4, "run lease", _create(t.RunLease)),
    Migration(5, "result.judge_cache_keys: ledger copy renders no template",
              _add_column("result", "judge_cache_keys", "TEXT")),
    Migration(6, "pair_judgement: pairwise runs' verdicts", _create(t.PairJudgement)),
    Migration(7, "result.trajectory: tool calls, tool results and steps of tool-using cases",
              _add_column("result", "trajectory", "TEXT")),
    Migration(8, "batch_job, batch_line: provider batches of a run", _create(t.BatchJob, t.BatchLine)),
    Migration(9, "run_shard: shards of one run (benchrun run --shard I/N)", _create(t.RunShard)),
]
KNOWN_VERSION = max(m.version for m in MIGRATIONS)


# any fixed 64-bit number: the PostgreSQL advisory lock that serialises concurrent migrations
_PG_MIGRATION_LOCK = 0x62656E6368  # "bench"


def _lock_for_migration(conn: Connection) -> None:
    """Make concurrent ``migrate`` calls (many CI jobs opening one new ledger at once) take turns.

    PostgreSQL: a transaction-scoped advisory lock (DDL is transactional there, so the
    second process waits, then sees the tables). SQLite: ``BEGIN IMMEDIATE`` takes the
    write lock before the first read of ``schema_version`` (the busy timeout waits for it).
    Other databases rely on the retry in ``Ledger._retrying``.
    """
    dialect = conn.engine.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    elif dialect == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> list[int]:
    """Apply every pending migration in order, in one transaction; returns the versions applied."""
    applied: list[int] = []
    with engine.begin() as conn:
        _lock_for_migration(conn)
        SQLModel.metadata.create_all(conn, tables=[t.SchemaVersion.__table__])  # type: ignore[attr-defined]
        done = {row[0] for row in conn.exec_driver_sql("SELECT version FROM schema_version")}
        if done and max(done) > KNOWN_VERSION:  # written by a newer benchrun: its tables may mean more than ours know
            raise FutureSchema(max(done))
        for m in MIGRATIONS:
            if m.version in done:
                continue
            m.apply(conn)
            conn.execute(t.SchemaVersion.__table__.insert().values(version=m.version, name=m.name))  # type: ignore[attr-defined]
            applied.append(m.version)
    return applied


def current_version(engine: Engine) -> int:
    if "schema_version" not in inspect(engine).get_table_names():
        return 0
    with engine.connect() as conn:
        v = conn.exec_driver_sql("SELECT MAX(version) FROM schema_version").scalar()
    return int(v or 0)
