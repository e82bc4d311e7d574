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
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from benchrun.errors import BenchrunError, RunAborted

if TYPE_CHECKING:
    from benchrun.ledger import Ledger
    from benchrun.runner import Progress, RunOutcome
    from benchrun.spec import LoadedSpec


def _totals(ledger: Ledger, run_id: str) -> dict[str, Any]:
    from benchrun.analysis.breakdown import totals
    from benchrun.report.summary import result_dicts

    return totals(result_dicts(ledger.results(run_id)))


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
) -> RunOutcome:
    """Run every pending cell of ``run_id`` and record how the run ended (see the module docstring).

    Raises `RunAborted` when interrupted (Ctrl-C, or a `KeyboardInterrupt` the guard raises); other
    errors propagate after the run was marked. Returns the runner's outcome otherwise, whatever its
    status: the caller decides what a non-completed outcome means to it. ``unsafe_exec`` lets code
    checks run without bubblewrap (rlimits only); without it such a run is refused (`UsageError`)
    before anything is called or marked.
    """
    from benchrun import runner

    sandbox, _ = runner.code_sandbox(loaded, unsafe_exec=unsafe_exec)

    guard = interrupt_guard() if interrupt_guard is not None else contextlib.nullcontext()
    with guard:
        pool: Any = None
        try:
            if call_workers:
                from benchrun.callpool import CallPool

                # before any thread of the caller's (a progress bar's) exists: the workers are forked
                pool = CallPool(call_workers, loaded.spec.concurrency.global_)
            if on_start is not None:
                on_start()
            r = runner.Runner(loaded, ledger, run_id, use_cache=use_cache, on_progress=on_progress, pool=pool,
                              sandbox=sandbox)
            try:
                outcome = asyncio.run(r.execute())
            except KeyboardInterrupt:
                ledger.finish_run(run_id, "interrupted", _totals(ledger, run_id), "interrupted by the user")
                raise RunAborted(f"run {run_id} interrupted; resume with: benchrun run --resume {run_id}") from None
            except BenchrunError as e:
                ledger.finish_run(run_id, "interrupted" if isinstance(e, RunAborted) else "failed",
                                  _totals(ledger, run_id), str(e))
                raise
            except Exception as e:
                ledger.finish_run(run_id, "interrupted", _totals(ledger, run_id), f"crashed: {type(e).__name__}")
                raise
            results = ledger.results(run_id)
            ledger.update_run(run_id, models=runner.with_resolved_models(ledger.get_run(run_id).models, results))
            from benchrun.analysis.breakdown import totals
            from benchrun.report.summary import result_dicts

            ledger.finish_run(run_id, outcome.status, totals(result_dicts(results)), outcome.message)
            return outcome
        finally:
            if pool is not None:
                pool.close()
            local_model = sys.modules.get("benchrun.local_model")
            if local_model is not None:  # only imported when a local model was started
                local_model.stop_all()
