"""Model calls in worker processes, so one event loop's CPU does not cap a run's throughput.

A litellm call costs about 4-5 ms of CPU in the calling process (request building, the
openai SDK, response parsing, cost bookkeeping, logging). One event loop therefore tops
out near 200 calls/s on one core, and well before that its queueing delay stretches
every call: at 32 calls in flight against a 200 ms endpoint, the loop is busy most of
the time and a run takes 1.2-1.3x the time the calls themselves need.

``CallPool`` moves only the calls: each worker process runs its own event loop and
``providers.complete`` (retries, backoff, ``Retry-After``, cost), and sends back the
``CallResult``. Everything else stays in the run's process: the queue, the per-model
concurrency limits, the cache, rules and judge parsing, the budget, the ledger, progress.

The run's global limit moves into the workers: the run's concurrency is split between
them (32 over 4 workers: 8 each) and a worker makes at most its share of calls at once,
queueing the rest. So never more than the global limit of calls are in flight, and the
run can keep more calls *outstanding* than that: a call that ends frees its slot inside
its worker, where a queued call takes it at once, instead of after a round trip through
the run's process (its scoring, ledger writes, and the sockets both ways).

Lifetime: workers are forked when the pool starts (before the progress bar's thread
exists, so the fork is clean; with other threads alive they are spawned instead, which
costs each a fresh import of litellm). A worker ignores SIGINT (Ctrl-C is the run's to
handle) and exits at once when its socket closes, including when the run's process is
killed, so no call is made that nobody will record. A worker that dies fails its outstanding calls
(in flight or queued for a slot) with ``RunAborted``; the run stops as interrupted and ``--resume``
completes it.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from benchrun import providers
from benchrun.errors import RunAborted
from benchrun.providers import CallResult, Endpoint
from benchrun.spec import ModelRef, Retries

AUTO_MIN_UNITS = 250  # smaller runs make their calls in-process: forking would not pay for itself
AUTO_MIN_CONCURRENCY = 16  # below this one event loop is nowhere near busy
AUTO_CALLS_PER_WORKER = 8  # calls in flight per worker loop (see below)
AUTO_MAX_WORKERS = 8


def auto_workers(n_units: int, global_concurrency: int, any_local: bool, cpus: int | None = None) -> int:
    """How many call workers ``--call-workers auto`` uses (0: calls in the run's own process).

    Worker processes only help when the calling loop is busy: many calls in flight, enough of
    them to amortise the fork, more than one core, and remote models (the embedded local model
    is served by one llama.cpp process: its speed, not our CPU, sets the pace). How many: what
    stretches a call is the queue on its event loop, which grows with the calls in flight on
    that loop. Bare litellm against a 200 ms server took 1.07x the ideal at 8 calls in flight per
    loop, 1.10x at 16 and 1.16-1.23x at 32. So there is one worker per 8 calls in flight, even
    beyond the core count: on 2 cores at concurrency 32, 4 workers beat 2 (docs/performance.md).
    """
    if cpus is None:
        cpus = os.cpu_count() or 1
    if any_local or cpus < 2 or n_units < AUTO_MIN_UNITS or global_concurrency < AUTO_MIN_CONCURRENCY:
        return 0
    return max(2, min(AUTO_MAX_WORKERS, -(-global_concurrency // AUTO_CALLS_PER_WORKER)))


# ----------------------------------------------------------------------------- framing

# Messages are pickled tuples behind a 4-byte length, over a socketpair driven by asyncio streams on
# both sides: a side that is sending never stops reading, so two full buffers cannot deadlock the run
# and a worker (blocking sends could, with long prompts going one way and long answers the other).
_LEN = struct.Struct("!I")


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader) -> Any:
    (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    return pickle.loads(await reader.readexactly(n))  # noqa: S301 - our own socketpair, written by our own process


# ----------------------------------------------------------------------------- worker side


def _worker_main(sock: socket.socket, inherited: list[socket.socket], slots: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the run handles it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the run's handler (a KeyboardInterrupt) that a fork copies
    for s in inherited:  # the run's ends of every socketpair, and the other workers' ends (fork copies them)
        if s is not sock:
            s.close()
    providers.collect_env_secrets()
    providers.setup_litellm()
    asyncio.run(_serve(sock, slots))


async def _serve(sock: socket.socket, slots: int) -> None:
    await providers.warm_up()  # a no-op after a fork from a warmed-up process; imports it all otherwise
    reader, writer = await asyncio.open_connection(sock=sock)
    tasks: set[asyncio.Task[None]] = set()
    limit = asyncio.Semaphore(slots)  # this worker's share of the run's global concurrency

    async def one(call_id: int, args: tuple[Any, ...]) -> None:
        ref, ep, messages, params, timeout_s, retries = args
        providers.SECRETS.add(ep.api_key)
        reply: tuple[int, CallResult | None, str | None]
        try:
            async with limit:  # waiting here is not part of the call: its latency and timeout start inside
                reply = (call_id, await providers.complete(ref, ep, messages, params, timeout_s, retries), None)
        except Exception as e:  # complete() returns provider faults; anything else is a bug to surface
            reply = (call_id, None, f"{type(e).__name__}: {providers.SECRETS.redact(str(e))}")
        writer.write(_frame(reply))
        await writer.drain()

    try:
        while True:
            call_id, args = await _read(reader)
            task = asyncio.create_task(one(call_id, args))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except (asyncio.IncompleteReadError, OSError):
        pass
    # The run finished, or its process died: stop now, without finishing calls nobody will record.
    os._exit(0)


# ----------------------------------------------------------------------------- run side


@dataclass
class _Worker:
    process: Any
    sock: socket.socket
    slots: int
    writer: asyncio.StreamWriter | None = None
    listener: asyncio.Task[None] | None = None
    pending: dict[int, asyncio.Future[CallResult]] = field(default_factory=dict)
    dead: bool = False


def split_slots(concurrency: int, n: int) -> list[int]:
    """The run's global concurrency shared out between ``n`` workers, none left without a slot."""
    n = min(n, concurrency)
    return [concurrency // n + (1 if i < concurrency % n else 0) for i in range(n)]


class CallPool:
    """Worker processes that make the model calls for one run, at most ``concurrency`` at once.

    ``n`` workers (no more than ``concurrency``) share the ``concurrency`` slots between them
    (``split_slots``). Create it outside any event loop and before other threads start (the workers
    are then forked); inside the run's ``asyncio.run``, ``await attach()`` before the first call and
    ``await detach()`` after the last; ``close()`` at the end.
    """

    def __init__(self, n: int, concurrency: int) -> None:
        if n < 1 or concurrency < 1:
            raise ValueError("a call pool needs at least one worker and one slot")
        if threading.active_count() == 1:  # load litellm's lazily imported call path once, not once per worker
            providers.setup_litellm()
            asyncio.run(providers.warm_up())
        # With other threads alive a fork could copy a lock some thread holds; start fresh processes then.
        method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() \
            else "spawn"
        ctx = multiprocessing.get_context(method)
        shares = split_slots(concurrency, n)
        pairs = [socket.socketpair() for _ in shares]
        everything = [s for pair in pairs for s in pair] if method == "fork" else []
        self.method = method
        self.concurrency = concurrency
        self.workers: list[_Worker] = []
        for (ours, theirs), slots in zip(pairs, shares, strict=True):
            inherited = [s for s in everything if s is not theirs and s.fileno() != -1]
            proc = ctx.Process(target=_worker_main, args=(theirs, inherited, slots), name="benchrun-call-worker",
                               daemon=True)
            proc.start()
            theirs.close()
            self.workers.append(_Worker(proc, ours, slots))
        self._ids = itertools.count()
        self._death: str | None = None

    async def attach(self) -> None:
        """Start listening for results on the running event loop."""
        for w in self.workers:
            if not w.dead and w.writer is None:
                reader, w.writer = await asyncio.open_connection(sock=w.sock)
                w.listener = asyncio.create_task(self._listen(w, reader))

    async def detach(self) -> None:
        """Stop listening and close the sockets: the workers exit."""
        for w in self.workers:
            if w.listener is not None:
                w.listener.cancel()
                await asyncio.gather(w.listener, return_exceptions=True)
            if w.writer is not None:
                w.writer.close()
            w.dead = True

    async def complete(self, ref: ModelRef, ep: Endpoint, messages: list[dict[str, Any]], params: dict[str, Any],
                       timeout_s: float, retries: Retries) -> CallResult:
        """``providers.complete`` in the worker with the most free slots (it waits there for one if none is)."""
        if self._death is not None:  # one worker died, even one that held no call: the run stops, it is resumable
            raise RunAborted(self._death)
        alive = [w for w in self.workers if not w.dead]
        if not alive:
            raise RunAborted("every call worker process has exited; resume the run")
        w = max(alive, key=lambda x: x.slots - len(x.pending))
        if w.writer is None:
            raise RuntimeError("CallPool.attach() was not awaited on this event loop")
        call_id = next(self._ids)
        fut: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        w.pending[call_id] = fut
        try:
            w.writer.write(_frame((call_id, (ref, ep, messages, params, timeout_s, retries))))
            await w.writer.drain()
            return await fut
        except (ConnectionError, OSError):
            self._died(w)
            raise RunAborted(f"call worker process {w.process.pid} has exited; resume the run") from None
        finally:
            w.pending.pop(call_id, None)

    async def _listen(self, w: _Worker, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                call_id, result, error = await _read(reader)
                fut = w.pending.pop(call_id, None)
                if fut is None or fut.done():
                    continue  # its caller was cancelled
                if error is not None:
                    fut.set_exception(RuntimeError(f"in call worker: {error}"))
                else:
                    fut.set_result(result)
        except (asyncio.IncompleteReadError, OSError):
            self._died(w)

    def _died(self, w: _Worker) -> None:
        if w.dead:
            return
        w.dead = True
        w.process.join(timeout=1)
        code = w.process.exitcode
        n = len(w.pending)
        self._death = (f"call worker process {w.process.pid} exited (exit code {code}) with {n} calls outstanding; "
                       "resume the run")
        for fut in w.pending.values():
            if not fut.done():
                fut.set_exception(RunAborted(self._death))
        w.pending.clear()

    def close(self) -> None:
        """Stop the workers (closing its socket makes a worker exit at once) and reap them."""
        for w in self.workers:
            w.dead = True
            w.sock.close()  # also when a stream owns it: its event loop has ended by now
        for w in self.workers:
            w.process.join(timeout=5)
            if w.process.exitcode is None:
                w.process.kill()
                w.process.join(timeout=5)
