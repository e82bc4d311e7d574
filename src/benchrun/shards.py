"""Sharded runs: N processes (a CI matrix, or N processes on one machine) fill one run in one ledger.

``benchrun run SPEC --shard I/N --run-id ID --ledger URL``, run once for each I in 1..N:

* **Split.** Cell (case id, model key, sample index) belongs to shard ``1 + h mod N``, where ``h`` is
  the first 8 bytes (big-endian) of the SHA-256 of the JSON list ``[case_id, model_key, sample]``:
  the same on every machine and Python (no ``PYTHONHASHSEED``), independent of the order of the
  dataset, and a partition (every cell in exactly one shard). Each shard is resumable on its own:
  the same command again fills only its cells that are missing or errored.
* **Arrival.** The first shard to arrive records the run from its spec snapshot, together with all N
  shard rows (``run_shard``, ledger migration 9), in one transaction, so N is fixed by the run. A
  later (or restarted) shard loads its own spec file and compares its spec hash with the run's; when
  they differ it names the first field of the snapshot that differs and stops (exit 2, nothing
  called or written). A different N is refused the same way.
* **Lease.** Each shard holds the run lease of ledger migration 4 (`Ledger.acquire_lease`) under its
  own key ``ID#shard-I-of-N``: the same shard started twice is refused, and a killed shard's lease
  is taken over by its restart (at once on the same host, after the stale period elsewhere).
* **Completion.** When a shard ends, the run is completed (totals, resolved model versions) if every
  cell of the run is recorded, by whichever shard finishes last; otherwise the run stays ``running``
  (``runs show``: "3 of 4 shards done"), or takes the status of a shard that stopped early.

Calls are never paid twice across shards: their cells are disjoint, and the response cache in the
shared ledger serves a restarted shard every answer its killed predecessor had received.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchrun.errors import BadInput, UsageError

if TYPE_CHECKING:
    from benchrun.ledger import Ledger
    from benchrun.ledger.tables import Run
    from benchrun.spec import LoadedSpec

MAX_SHARDS = 1000
STOPPED = ("interrupted", "failed", "budget_exceeded")  # how a shard's process may end without finishing
_SHARD_RE = re.compile(r"\s*(\d{1,5})\s*/\s*(\d{1,5})\s*")
_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_PRIVATE_FIELD = re.compile(r"(?i)(key|secret|token|pass|auth|header|api_base|url)[^.\[]*$")

Cell = tuple[str, str, int]  # (case id, model key, sample index)


def shard_of(case_id: str, model_key: str, sample: int, count: int) -> int:
    """The shard (1..count) that owns a cell (see the module docstring for the hash)."""
    digest = hashlib.sha256(json.dumps([case_id, model_key, sample]).encode("utf-8")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as ``--shard 2/4`` and a CI matrix count)."""

    index: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, case_id: str, model_key: str, sample: int) -> bool:
        return shard_of(case_id, model_key, sample, self.count) == self.index

    def lease_key(self, run_id: str) -> str:
        """This shard's key in the run-lease table (one lease per shard, so shards run side by side)."""
        return f"{run_id}#shard-{self.index}-of-{self.count}"

    def command(self, spec_path: str | None, run_id: str) -> str:
        return f"benchrun run {spec_path or 'SPEC'} --shard {self.label} --run-id {run_id}"


def parse_shard(text: str) -> Shard:
    """``"2/4"`` -> ``Shard(2, 4)``; `UsageError` (exit 2) for anything else."""
    m = _SHARD_RE.fullmatch(text)
    if m is not None:
        i, n = int(m.group(1)), int(m.group(2))
        if 1 <= i <= n <= MAX_SHARDS:
            return Shard(i, n)
    raise UsageError(f"--shard must be I/N with 1 <= I <= N <= {MAX_SHARDS} (e.g. --shard 2/4 for the second of "
                     f"four shards), not {_shown(text)}")


def check_run_id(text: str) -> str:
    """A run id chosen by the user (``--run-id``): letters, digits, ``.``, ``_``, ``-``, at most 100."""
    if _RUN_ID_RE.fullmatch(text) is None:
        raise UsageError(f"--run-id must be 1-100 letters, digits, '.', '_' or '-' starting with a letter or digit "
                         f"(e.g. --run-id ci-$GITHUB_RUN_ID, the same for all shards and their re-runs), not {_shown(text)}")
    return text


def _shown(value: Any, limit: int = 60) -> str:
    """A value for a one-line message: its repr (control characters escaped), cut to ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_cells(loaded: LoadedSpec) -> list[Cell]:
    """Every cell of the run, in the runner's order."""
    spec = loaded.spec
    return [(case.id, cand.key, i) for case in loaded.cases() for cand in spec.candidates for i in range(spec.samples_per_case)]


# ----------------------------------------------------------------------------- the snapshot check


def snapshot_difference(mine: Any, theirs: Any, path: str = "") -> str | None:
    """The first place where two spec snapshots differ, as ``path (value here, value in the run)``; None if equal.

    Lists of objects with an ``id`` (the dataset's cases) are named by id, other lists by index.
    """
    if isinstance(mine, dict) and isinstance(theirs, dict):
        for key in [*mine, *(k for k in theirs if k not in mine)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in theirs:
                return f"{sub} (set here, absent in the run)"
            if key not in mine:
                return f"{sub} (absent here, set in the run)"
            found = snapshot_difference(mine[key], theirs[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(mine, list) and isinstance(theirs, list):
        for i, (a, b) in enumerate(zip(mine, theirs, strict=False)):
            name = a.get("id") if isinstance(a, dict) and isinstance(a.get("id"), str) else None
            found = snapshot_difference(a, b, f"{path}[{_shown(name) if name is not None else i}]")
            if found is not None:
                return found
        if len(mine) != len(theirs):
            return f"{path} ({len(mine)} entries here, {len(theirs)} in the run)"
        return None
    if mine != theirs or type(mine) is not type(theirs):
        if _PRIVATE_FIELD.search(path):  # an api_base may carry credentials: name the field, not its values
            return f"{path} (differs)"
        return f"{path} ({_shown(mine)} here, {_shown(theirs)} in the run)"
    return None


def check_same_spec(loaded: LoadedSpec, run: Run, shard: Shard) -> None:
    """`BadInput` (exit 2) naming the first differing field when ``loaded`` is not the spec ``run`` was made from."""
    if loaded.spec_hash == run.spec_hash:
        return
    mine = json.loads(json.dumps(loaded.snapshot()))
    try:
        theirs = json.loads(run.spec_snapshot)
    except ValueError:
        theirs = None
    if isinstance(theirs, dict):
        theirs.pop("source_files", None)  # which files the run was loaded from, not what it runs
    where = snapshot_difference(mine, theirs) if isinstance(theirs, dict) else "the run's stored snapshot (unreadable)"
    if where is None:  # equal snapshots, different hashes: the shards hash with different benchrun versions
        where = (f"the spec hash ({loaded.spec_hash[:12]} here, {run.spec_hash[:12]} in the run) though every "
                 "snapshot field agrees: run every shard with the same benchrun version")
    raise BadInput(loaded.path or "spec", f"shard {shard.label} of run {run.id}",
                   f"the spec differs from the run's snapshot at {where}; every shard of a run must use the same "
                   "spec, dataset and rubric (nothing was run or recorded)")


# ----------------------------------------------------------------------------- arriving, starting, ending


def arrive(loaded: LoadedSpec, ledger: Ledger, shard: Shard, run_id: str, *, unsafe_exec: bool = False) -> bool:
    """Make sure run ``run_id`` exists for this shard: record it (with its N shard rows) if this shard is the
    first to arrive, else check that it is the same sharded run with the same spec and N. True if recorded here.
    """
    from benchrun import runner
    from benchrun.ledger import shardstore

    check_run_id(run_id)
    run = shardstore.find_run(ledger, run_id)
    created = False
    if run is None:
        record = runner.run_record(loaded, unsafe_exec=unsafe_exec, run_id=run_id)  # validates all it can offline
        record.message = f"0 of {shard.count} shards done"
        created = shardstore.create_sharded_run(ledger, record, shard.count)
        if not created:  # another shard recorded it in the meantime
            run = shardstore.find_run(ledger, run_id)
        if run is None and not created:
            raise UsageError(f"run {run_id} could not be recorded or read in ledger; retry the shard")
    if run is not None:
        rows = shardstore.shard_rows(ledger, run_id)
        if not rows:
            raise UsageError(f"run {run_id} is already in the ledger and was not started as a sharded run; give "
                             "another --run-id")
        if rows[0].shards != shard.count:
            raise UsageError(f"run {run_id} is split into {rows[0].shards} shards, not {shard.count}: run its shards "
                             f"as --shard I/{rows[0].shards}")
        check_same_spec(loaded, run, shard)
        runner.check_templates(loaded)
    return created


def start(ledger: Ledger, loaded: LoadedSpec, run_id: str, shard: Shard) -> None:
    """Mark this shard running (called once it holds its lease)."""
    from benchrun.ledger import shardstore
    from benchrun.ledger.tables import utcnow

    cells = sum(1 for c in run_cells(loaded) if shard.owns(*c))
    shardstore.mark_shard(ledger, run_id, shard.index, status="running", cells=cells, host=socket.gethostname(),
                          started_at=utcnow(), finished_at=None, message=None)


def settle(ledger: Ledger, loaded: LoadedSpec, run_id: str, shard: Shard, status: str, message: str | None) -> str:
    """Record how this shard ended (``status`` is the runner's: ``completed`` means all its cells are in), then
    the run's state: completed when every cell of the run is recorded and no shard stopped early (as an
    unsharded run that stops is not completed, even if its stop left an error in every cell); else running
    while shards are still to finish, or the status of the shard that stopped. Returns the run's status."""
    from benchrun import runner
    from benchrun.analysis.breakdown import totals
    from benchrun.ledger import shardstore
    from benchrun.ledger.tables import utcnow

    own = "done" if status == "completed" else status
    shardstore.mark_shard(ledger, run_id, shard.index, status=own, finished_at=utcnow(), message=message)
    results = ledger.result_rows(run_id)
    counted = totals(results)
    present = {(r["case_id"], r["model_key"], r["sample_index"]) for r in results}
    rows = shardstore.shard_rows(ledger, run_id)
    done = sum(1 for r in rows if r.status == "done")
    run = shardstore.find_run(ledger, run_id)
    assert run is not None
    # the model versions providers reported so far (reports of the unfinished run read them too)
    ledger.update_run(run_id, models=runner.with_resolved_models(run.models, results))
    stopped = [r for r in rows if r.status in STOPPED]
    if not stopped and all(c in present for c in run_cells(loaded)):
        ledger.finish_run(run_id, "completed", counted, f"{done} of {shard.count} shards done")
        return "completed"
    run_status, why = "running", f"{done} of {shard.count} shards done"
    if own in STOPPED:
        run_status, why = own, f"shard {shard.label} stopped: {message}"
    elif stopped and not any(r.status in ("waiting", "running") for r in rows):
        run_status = stopped[0].status
        why = f"shard {stopped[0].shard}/{shard.count} stopped: {stopped[0].message}"
    ledger.update_run(run_id, status=run_status, message=why, totals=json.dumps(counted),
                      finished_at=utcnow() if run_status != "running" else None)
    return run_status


def refuse_resume(ledger: Ledger, run_id: str) -> None:
    """`UsageError` for `run --resume` of a sharded run: its shards resume themselves (and hold their own leases)."""
    from benchrun.ledger import shardstore

    rows = shardstore.shard_rows(ledger, run_id)
    if rows:
        raise UsageError(f"run {run_id} is split into {rows[0].shards} shards: rerun its unfinished shards with the "
                         f"same command, `benchrun run SPEC --shard I/{rows[0].shards} --run-id {run_id}`, instead "
                         "of --resume")


# ----------------------------------------------------------------------------- reading


def shard_summary(ledger: Ledger, run: Run) -> dict[str, Any] | None:
    """Each shard's state for `runs show` (None for a run that was not sharded): status, cells owned and
    recorded, where it ran, its lease's heartbeat age while it runs; ``line`` is "3 of 4 shards done"."""
    from benchrun.ledger import shardstore
    from benchrun.spec import LoadedSpec

    rows = shardstore.shard_rows(ledger, run.id)
    if not rows:
        return None
    n = rows[0].shards
    recorded: dict[int, int] = {}
    for case_id, model_key, sample in ledger.cells(run.id):
        k = shard_of(case_id, model_key, sample, n)
        recorded[k] = recorded.get(k, 0) + 1
    owned: dict[int, int] = {}
    for c in run_cells(LoadedSpec.from_snapshot(json.loads(run.spec_snapshot))):
        k = shard_of(*c, n)
        owned[k] = owned.get(k, 0) + 1
    beats = shardstore.lease_heartbeats(ledger, [Shard(r.shard, n).lease_key(run.id) for r in rows])
    shards = [{"shard": r.shard, "status": r.status, "cells": owned.get(r.shard, 0),
               "recorded": recorded.get(r.shard, 0), "host": r.host, "message": r.message,
               "heartbeat_age_s": beats.get(Shard(r.shard, n).lease_key(run.id))} for r in rows]
    done = sum(1 for s in shards if s["status"] == "done")
    return {"count": n, "done": done, "line": f"{done} of {n} shards done", "shards": shards}
