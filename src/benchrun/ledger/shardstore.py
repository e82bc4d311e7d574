"""The ledger side of sharded runs (see `benchrun.shards`): the run and its shard rows, read and written
in short transactions retried like every other write (`Ledger._retrying`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from benchrun.ledger.store import Ledger, _aware
from benchrun.ledger.tables import Run, RunLease, RunShard, utcnow


def find_run(ledger: Ledger, run_id: str) -> Run | None:
    """The run with exactly this id (no prefix matching: a shard names its run in full), or None."""

    def go() -> Run | None:
        with ledger.session() as s:
            return s.get(Run, run_id)

    return ledger._retrying(go)


def create_sharded_run(ledger: Ledger, run: Run, shards: int) -> bool:
    """Record ``run`` with its ``shards`` shard rows (all ``waiting``) in one transaction.

    False when a run with that id already exists (another shard arrived first): nothing is written then.
    """
    values = [{"run_id": run.id, "shard": i, "shards": shards, "status": "waiting", "cells": 0}
              for i in range(1, shards + 1)]

    def go() -> None:
        with ledger.session() as s:
            s.add(run)
            s.flush()  # the run row first: the shard rows refer to it
            s.connection().execute(RunShard.__table__.insert(), values)  # type: ignore[attr-defined]
            s.commit()

    try:
        ledger._retrying(go)
    except IntegrityError:
        return False
    return True


def shard_rows(ledger: Ledger, run_id: str) -> list[RunShard]:
    """The shard rows of a run, by shard number (empty for a run that was not sharded, and in a ledger
    read without migrating that has no ``run_shard`` table yet)."""
    if not inspect(ledger.engine).has_table("run_shard"):
        return []

    def go() -> list[RunShard]:
        with ledger.session() as s:
            q = select(RunShard).where(RunShard.run_id == run_id).order_by(RunShard.shard)  # type: ignore[arg-type]
            return list(s.exec(q))

    return ledger._retrying(go)


def mark_shard(ledger: Ledger, run_id: str, shard: int, **fields: Any) -> None:
    """Update one shard row (status, cells, host, started_at, finished_at, message)."""
    table = RunShard.__table__  # type: ignore[attr-defined]

    def go() -> None:
        with ledger.engine.begin() as conn:
            conn.execute(table.update().where(table.c.run_id == run_id, table.c.shard == shard).values(**fields))

    ledger._retrying(go)


def lease_heartbeats(ledger: Ledger, keys: list[str]) -> dict[str, float]:
    """Seconds since the last heartbeat of each lease in ``keys`` that is held (absent: nobody holds it)."""
    if not keys:
        return {}
    table = RunLease.__table__  # type: ignore[attr-defined]

    def go() -> dict[str, float]:
        now = utcnow()
        with ledger.engine.connect() as conn:
            rows = conn.execute(select(table.c.run_id, table.c.heartbeat_at).where(table.c.run_id.in_(keys)))
            return {k: max((now - _aware(t)).total_seconds(), 0.0) for k, t in rows}

    return ledger._retrying(go)
