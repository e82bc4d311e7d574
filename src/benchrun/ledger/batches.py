"""The ledger's record of a run's provider batches (`benchrun.batch`): jobs and their lines.

A job and all its lines are written in one transaction before the batch is created at the provider,
then updated as the provider reports; so a process that dies at any point leaves a record that
says which calls were submitted and where to collect them.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import inspect, update
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


def summary(ledger: Ledger, run_id: str) -> dict[str, Any] | None:
    """What a run sent as provider batches, for `runs show` (None: it has none).

    ``batches``: batches created at the provider (not those abandoned before creation); ``lines``: the calls
    in them; ``fallback_sync``: lines answered by a synchronous call instead (failed, expired, cancelled);
    ``pending``: lines whose batch is not collected yet; ``cost_usd``: what the batch-answered calls cost at
    batch prices, as recorded when each batch was collected (``unpriced``: answered lines without a price;
    ``cost_unrecorded``: collected batches recorded before this was kept).
    """
    if not inspect(ledger.engine).has_table("batch_job"):  # a ledger read without migrating
        return None
    all_jobs = jobs(ledger, run_id)
    if not all_jobs:
        return None
    created = {j.id for j in all_jobs if j.batch_id is not None}
    out: dict[str, Any] = {"batches": len(created), "lines": 0, "fallback_sync": 0, "pending": 0, "cost_usd": 0.0,
                           "unpriced": 0, "cost_unrecorded": 0}
    for ln in lines(ledger, run_id):
        if ln.job_id in created:
            out["lines"] += 1
            out["pending"] += ln.state == "submitted"
        out["fallback_sync"] += ln.fallback == "sync"
    for j in all_jobs:
        if j.state != "collected":
            continue
        try:
            counts = json.loads(j.counts or "{}")
        except ValueError:
            counts = {}
        cost = counts.get("cost_usd") if isinstance(counts, dict) else None
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            out["cost_usd"] += float(cost)
            unpriced = counts.get("unpriced")
            out["unpriced"] += unpriced if isinstance(unpriced, int) and not isinstance(unpriced, bool) else 0
        else:
            out["cost_unrecorded"] += 1
    return out
