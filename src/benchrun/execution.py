"""The lifetime of one recorded run: call workers, the runner, and how the run ends in the ledger.

`execute_run` drives a run that `runner.create_run` recorded (or one being resumed) to its end
and always leaves the ledger saying how it ended:

* ``completed`` (or whatever status the runner reports, e.g. ``budget_exceeded``) with its totals
  and the model versions providers reported;
* ``interrupted`` on Ctrl-C (raised as `RunAborted`, resumable), on a `RunAborted` from the
  runner, or on a crash (the exception is re-raised);
* ``failed`` on any other benchrun error (bad input discovered mid-run, ...).

It owns what lives exactly as long as the run: the call-worker processes and the embedded local
model servers. What belongs to the caller comes in as hooks: ``on_progress`` (a progress bar),
``on_start`` (called once the call workers exist; a progress bar may start its thread then, not
before, since the workers are forked), and ``interrupt_guard`` (a context manager around the
whole run, e.g. the CLI's "SIGTERM means Ctrl-C"). Nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from benchrun.errors import BenchrunError, RunAborted
from benchrun.ledger.store import DiskFull, error_reason, is_disk_full

if TYPE_CHECKING:
    from benchrun.ledger import Ledger
    from benchrun.runner import JudgedAhead, Progress, RunOutcome
    from benchrun.shards import Shard
    from benchrun.spec import LoadedSpec


# the lease (see `Ledger.acquire_lease`): renewed every LEASE_HEARTBEAT_S; another process may take it over once
# no heartbeat came for LEASE_STALE_AFTER_S (at once when the holder is a dead process of this host)
LEASE_HEARTBEAT_S = 10.0
LEASE_STALE_AFTER_S = 60.0


class _Heartbeat:
    """A daemon thread renewing the run's lease while it executes."""

    def __init__(self, ledger: Ledger, run_id: str, owner: str) -> None:
        self.ledger, self.run_id, self.owner = ledger, run_id, owner
        self.lost = False  # the lease was taken over (we looked dead for LEASE_STALE_AFTER_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="benchrun-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(LEASE_HEARTBEAT_S):
            try:
                if not self.ledger.renew_lease(self.run_id, self.owner):
                    self.lost = True
            except Exception:  # noqa: S112 - a failed renewal is retried at the next beat
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _mark_interrupted(ledger: Ledger, run_id: str, why: str) -> None:
    """Record the run as interrupted when the ledger is failing: with its totals if it can, else the status alone."""
    try:
        ledger.finish_run(run_id, "interrupted", _totals(ledger, run_id), why)
    except Exception:
        with contextlib.suppress(Exception):
            ledger.update_run(run_id, status="interrupted", message=why)


def _totals(ledger: Ledger, run_id: str) -> dict[str, Any]:
    from benchrun.analysis.breakdown import totals

    return totals(ledger.result_rows(run_id))


def execute_run(
    loaded: LoadedSpec,
    ledger: Ledger,
    run_id: str,
    *,
    use_cache: bool = True,
    call_workers: int = 0,
    unsafe_exec: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[], None] | None = None,
    interrupt_guard: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    shard: Shard | None = None,
    cache_entries: dict[str, dict[str, Any]] | None = None,
    judged_ahead: dict[tuple[int, str], JudgedAhead] | None = None,
    keep_rows: bool = False,
) -> RunOutcome:
    """Run every pending cell of ``run_id`` and record how the run ended (see the module docstring).

    Raises `RunAborted` when interrupted (Ctrl-C, or a `KeyboardInterrupt` the guard raises); other
    errors propagate after the run was marked. Returns the runner's outcome otherwise, whatever its
    status: the caller decides what a non-completed outcome means to it. ``unsafe_exec`` lets code
    checks run without bubblewrap (rlimits only); without it such a run is refused (`UsageError`)
    before anything is called or marked. With ``shard`` only that shard's cells run, under the shard's own
    lease, and its end is recorded by `benchrun.shards.settle` (which completes the run once every cell is in).
    ``cache_entries`` are cache entries already read (`reproduce.cache_misses`), served by the runner first;
    ``judged_ahead`` the judge calls that check worked out (`runner.JudgedAhead`). With ``keep_rows`` a completed
    run's outcome carries the result rows read for its totals (`RunOutcome.rows`), for a caller that reports on
    them next (reproduce); off by default, so a big run's rows are not held after its totals are recorded.
    """
    from benchrun import runner
    from benchrun.ledger.store import lease_owner

    sandbox, _ = runner.code_sandbox(loaded, unsafe_exec=unsafe_exec)

    owner = lease_owner()
    lease = shard.lease_key(run_id) if shard is not None else run_id
    # before anything is called: a second process running the same run is refused here (LeaseHeld, exit 2)
    ledger.acquire_lease(lease, owner, LEASE_STALE_AFTER_S)

    def finish(status: str, message: str | None) -> None:
        if shard is None:
            ledger.finish_run(run_id, status, _totals(ledger, run_id), message)
        else:
            from benchrun import shards

            shards.settle(ledger, loaded, run_id, shard, status, message)

    heartbeat: _Heartbeat | None = None
    guard = interrupt_guard() if interrupt_guard is not None else contextlib.nullcontext()
    with guard:
        pool: Any = None
        try:
            ledger.update_run(run_id, status="running", message=None, finished_at=None)  # a resumed run runs again
            if shard is not None:
                from benchrun import shards

                shards.start(ledger, loaded, run_id, shard)
            if call_workers:
                from benchrun.callpool import CallPool

                # before any thread of ours or the caller's (a progress bar's) exists: the workers are forked
                pool = CallPool(call_workers, loaded.spec.concurrency.global_)
            heartbeat = _Heartbeat(ledger, lease, owner)
            if on_start is not None:
                on_start()
            r = runner.Runner(loaded, ledger, run_id, use_cache=use_cache, on_progress=on_progress, pool=pool,
                              sandbox=sandbox, cell_filter=shard.owns if shard is not None else None,
                              cache_entries=cache_entries, judged_ahead=judged_ahead)
            try:
                outcome = asyncio.run(r.execute())
                pairwise = None
                if outcome.status == "completed" and loaded.spec.judge is not None and loaded.spec.judge.pairwise \
                        and shard is None:  # (prepare_shard refuses pairwise specs)
                    from benchrun.pairwise_run import judge_pairs  # the answers are in: judge pairs of them

                    base = outcome.progress

                    def tick(done: int, total: int, errors: int, cost: float) -> None:  # pairs count as cells
                        if on_progress is not None:
                            on_progress(dataclasses.replace(base, total=base.total + total, done=base.done + done,
                                                            errors=base.errors + errors,
                                                            cost_usd=base.cost_usd + cost))

                    pairwise = judge_pairs(loaded, ledger, run_id, use_cache=use_cache, on_pair=tick,
                                           spent=base.cost_usd)
                    if pairwise.stopped is not None:
                        outcome = runner.RunOutcome(run_id, "budget_exceeded", pairwise.stopped, outcome.progress)
            except DiskFull as e:  # the ledger stopped taking rows while it still had room to say how the run ended
                why = "the ledger's disk is full"
                _mark_interrupted(ledger, run_id, why)
                raise RunAborted(f"run {run_id} stopped: {why} ({e}); free space, then resume with: "
                                 f"benchrun run --resume {run_id}") from None
            except KeyboardInterrupt:
                finish("interrupted", "interrupted by the user")
                raise RunAborted(f"run {run_id} interrupted; resume with: benchrun run --resume {run_id}") from None
            except BenchrunError as e:
                finish("interrupted" if isinstance(e, RunAborted) else "failed", str(e))
                raise
            except Exception as e:
                if is_disk_full(e):  # full after all (another process filled it): try to say so all the same
                    why = "the ledger's disk is full"
                    _mark_interrupted(ledger, run_id, why)
                    raise RunAborted(f"run {run_id} stopped: {why} ({error_reason(e)}); free space, then resume with: "
                                     f"benchrun run --resume {run_id}") from None
                finish("interrupted", f"crashed: {type(e).__name__}")
                raise
            if shard is not None:
                finish(outcome.status, outcome.message)
                return outcome
            results = ledger.result_rows(run_id)
            ledger.update_run(run_id, models=runner.with_resolved_models(ledger.get_run(run_id).models, results))
            from benchrun.analysis.breakdown import totals

            tot = totals(results)
            if pairwise is not None:
                tot["pairwise"] = pairwise.to_dict()
            ledger.finish_run(run_id, outcome.status, tot, outcome.message)
            return dataclasses.replace(outcome, rows=results) if keep_rows else outcome
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            with contextlib.suppress(Exception):  # a full disk or a lost server: the lease goes stale instead
                ledger.release_lease(lease, owner)
            if pool is not None:
                pool.close()
            local_model = sys.modules.get("benchrun.local_model")
            if local_model is not None:  # only imported when a local model was started
                local_model.stop_all()
