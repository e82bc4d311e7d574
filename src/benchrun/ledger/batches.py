"""The ledger's record of a run's provider batches (`benchrun.batch`): jobs and their lines.

A job and all its lines are written in one transaction before the batch is created at the provider,
then updated as the provider reports; so a process that dies at any point leaves a record that
says which calls were submitted and where to collect them.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from benchrun.ledger.store import Ledger
from benchrun.ledger.tables import BatchJob, BatchLine, utcnow


def add_job(ledger: Ledger, job: BatchJob, custom_ids: list[str]) -> BatchJob:
    """Record a job (state ``creating``) with one ``submitted`` line per custom id, in one transaction."""

    def go() -> BatchJob:
        with ledger.session() as s:
            s.add(job)
            s.flush()
            assert job.id is not None
            s.add_all([BatchLine(job_id=job.id, run_id=job.run_id, custom_id=c) for c in custom_ids])
            s.commit()
            s.refresh(job)
            return job

    return ledger._retrying(go)


def update_job(ledger: Ledger, job_id: int, **fields: Any) -> None:
    if "counts" in fields and not isinstance(fields["counts"], str):
        fields["counts"] = json.dumps(fields["counts"])

    def go() -> None:
        with ledger.engine.begin() as conn:
            conn.execute(update(BatchJob).where(BatchJob.id == job_id)  # type: ignore[arg-type]
                         .values(**fields, updated_at=utcnow()))

    ledger._retrying(go)


def set_lines(ledger: Ledger, job_id: int, states: dict[str, tuple[str, str | None, str | None]]) -> None:
    """Set ``{custom_id: (state, fallback, error)}`` for lines of one job, in one transaction."""

    def go() -> None:
        with ledger.engine.begin() as conn:
            for cid, (state, fallback, error) in states.items():
                conn.execute(update(BatchLine).where(BatchLine.job_id == job_id,  # type: ignore[arg-type]
                                                     BatchLine.custom_id == cid)  # type: ignore[arg-type]
                             .values(state=state, fallback=fallback, error=error))

    ledger._retrying(go)


def _of_run(ledger: Ledger, table: type[BatchJob] | type[BatchLine], run_id: str) -> list[Any]:
    def go() -> list[Any]:
        with ledger.session() as s:
            return list(s.exec(select(table).where(table.run_id == run_id).order_by(table.id)))  # type: ignore[arg-type]

    return ledger._retrying(go)


def jobs(ledger: Ledger, run_id: str) -> list[BatchJob]:
    return _of_run(ledger, BatchJob, run_id)


def lines(ledger: Ledger, run_id: str) -> list[BatchLine]:
    return _of_run(ledger, BatchLine, run_id)
