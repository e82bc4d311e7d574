"""Provider batch APIs: a run's calls submitted as batches at about half the synchronous price.

A model with ``batch: true`` in the spec (or every model, with ``benchrun run --batch``) has its
calls sent through litellm's files + batches API (``acreate_file`` / ``acreate_batch`` /
``aretrieve_batch`` / ``afile_content``; OpenAI, Azure OpenAI, Vertex, Bedrock and vLLM's
OpenAI-compatible batch endpoint as litellm supports them). litellm is the one batch transport for
every model, OpenAI-compatible or not: a batch is a handful of HTTP calls, so the fast transport's
saving does not matter here, and litellm already speaks each provider's batch dialect.

Before the runner's workers start (`prepare`, the runner's one hook), the calls the run still
needs are written as JSONL, one line per call with our cache key as ``custom_id``, in batches of
at most `MAX_LINES` per model and role. Each batch is recorded in the ledger (`ledger.batches`,
state ``creating``, one line per call) *before* it is created at the provider, with a token that
goes into the batch's metadata; its id and state are recorded the moment the provider returns
them. Then every pending batch of the run is polled (every ``BENCHRUN_BATCH_POLL_S`` seconds,
default 30) until it ends, and its answers are read:

* an answered line becomes the call's `CallResult` and goes through the runner's ordinary path
  (`Runner._call`): the same redaction, response cache, scoring and result rows as a synchronous
  call; its cost is at batch prices (`batch_cost`);
* a failed, expired or cancelled line (or every line of a failed batch) is recorded as such with
  ``fallback = "sync"``, and the runner makes that call synchronously; its result row's
  ``attempts`` starts with the batch's failure.

A process that ends while batches are pending (SIGKILL, a closed laptop) leaves them in the ledger;
`benchrun run --resume RUN_ID` polls them again instead of resubmitting, and a batch whose creation
was not yet recorded is found by its token in the provider's batch list (``alist_batches``), so no
call is paid for twice. `benchrun batch status RUN_ID` refreshes the states without running anything.

The judge stage is batched too when the judge has ``batch: true``: once the candidates' answers
are in (answered in a batch or from the cache), the first judge call of every judged case is
submitted as a second round of batches. Re-asks after an unparsable verdict are synchronous, as
are judge calls for answers that arrive synchronously.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchrun import providers
from benchrun.errors import RunAborted
from benchrun.hashing import cache_key
from benchrun.ledger import batches as store
from benchrun.ledger.tables import BatchJob
from benchrun.providers import CallResult, Endpoint
from benchrun.spec import LoadedSpec, ModelRef

if TYPE_CHECKING:
    from benchrun.ledger import Ledger

MAX_LINES = 50_000  # OpenAI's limit of requests per batch
MAX_POLL_FAULTS = 10  # polls in a row that fail before the run stops (resumable)
COMPLETION_WINDOW = "24h"
ENDPOINT = "/v1/chat/completions"
DEFAULT_POLL_S = 30.0
BATCH_DISCOUNT = 0.5  # the providers' batch price where the price map lists none (OpenAI, Anthropic, Vertex: 50%)
ACTIVE = frozenset({"creating", "validating", "in_progress", "finalizing", "cancelling"})
ENDED = frozenset({"completed", "expired", "failed", "cancelled"})
_LINE_FAILURE = {"expired": "expired", "cancelled": "cancelled"}


def poll_interval() -> float:
    try:
        return max(0.01, float(os.environ.get("BENCHRUN_BATCH_POLL_S", DEFAULT_POLL_S)))
    except ValueError:
        return DEFAULT_POLL_S


def batch_all(loaded: LoadedSpec) -> LoadedSpec:
    """``loaded`` with ``batch: true`` on every candidate and the judge (`benchrun run --batch`)."""
    spec = loaded.spec
    update: dict[str, Any] = {"candidates": [c.model_copy(update={"batch": True}) for c in spec.candidates]}
    if spec.judge is not None:
        update["judge"] = spec.judge.model_copy(update={"batch": True})
    return loaded.model_copy(update={"spec": spec.model_copy(update=update)})


# ----------------------------------------------------------------------------- cost


def batch_cost(ref: ModelRef, endpoint: Endpoint, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD of one call answered in a batch.

    The price map's ``input_cost_per_token_batches`` / ``output_cost_per_token_batches`` when the
    model's entry has both (litellm's map lists them for ~600 models, e.g. gpt-4o-mini at half its
    synchronous rates); otherwise half the synchronous cost (`providers.cost_of`: the spec's
    ``price``, or the map's rates), which is what OpenAI, Anthropic and Vertex charge for batches.
    A local model costs 0; an unknown price stays unknown (``None``).
    """
    if ref.price is None and not endpoint.local:
        from benchrun import prices

        entry = prices.batch_entry(endpoint.model)
        if entry is not None:
            i, o = entry.get("input_cost_per_token_batches"), entry.get("output_cost_per_token_batches")
            if isinstance(i, (int, float)) and isinstance(o, (int, float)):
                return prompt_tokens * float(i) + completion_tokens * float(o)
    sync = providers.cost_of(ref, endpoint, prompt_tokens, completion_tokens)
    return None if sync is None else sync * BATCH_DISCOUNT


# ----------------------------------------------------------------------------- calls


@dataclass
class BatchCall:
    """One call to make in a batch: ``key`` (the cache key) is its ``custom_id``."""

    key: str
    ref: ModelRef
    endpoint: Endpoint
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    role: str  # candidate | judge


@dataclass
class Outcome:
    """What the batches gave: answers by cache key, and the failures of lines to redo synchronously."""

    answers: dict[str, CallResult] = field(default_factory=dict)
    fallbacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> an ``attempts`` entry
    taken: set[str] = field(default_factory=set)

    def take(self, key: str) -> CallResult | None:
        """The answer to the call with this cache key; a second identical call (the judge of two samples
        with the same answer) gets it as a cache hit, as it would synchronously: paid once, counted once."""
        res = self.answers.get(key)
        if res is None:
            return None
        if key in self.taken:
            return dataclasses.replace(res, cached=True)
        self.taken.add(key)
        return res


def _wire_model(endpoint: Endpoint) -> str:
    from benchrun.openai_http import wire_model

    model = wire_model(endpoint.model)
    return model.split("/", 1)[1] if "/" in model and endpoint.transport != "openai" else model


def input_jsonl(calls: list[BatchCall]) -> bytes:
    """The batch input file: one OpenAI batch request per call, ``custom_id`` = cache key."""
    lines = [json.dumps({"custom_id": c.key, "method": "POST", "url": ENDPOINT,
                         "body": {"model": _wire_model(c.endpoint), "messages": c.messages, **c.params}},
                        ensure_ascii=False)
             for c in calls]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _parse_jsonl(data: bytes, limit: int) -> list[dict[str, Any]]:
    """Lines of an output or error file (bounded: at most ``limit`` lines; unparsable lines skipped)."""
    out = []
    for ln in data.decode("utf-8", "replace").splitlines()[: limit + 1]:
        try:
            obj = json.loads(ln)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("custom_id"), str):
            out.append(obj)
    return out


def _describe(line: dict[str, Any]) -> str:
    err = line.get("error")
    if isinstance(err, dict):
        return f"{err.get('code') or 'error'}: {err.get('message') or ''}".strip()
    resp = line.get("response") if isinstance(line.get("response"), dict) else {}
    body = resp.get("body") if isinstance(resp.get("body"), dict) else {}
    e = body.get("error")
    msg = e.get("message") if isinstance(e, dict) else e
    return f"status {resp.get('status_code')}: {msg or 'no answer'}"


def _result(call: BatchCall, body: dict[str, Any]) -> CallResult | None:
    """The call's result from the body of an answered line (None: not a usable completion)."""
    from benchrun.openai_http import ProviderError, parse_completion

    try:
        c = parse_completion(body)
    except ProviderError:
        return None
    if c.text is None or not str(c.text).strip():
        return None
    pt, ct, estimated = c.prompt_tokens, c.completion_tokens, False
    if not pt or ct is None:
        pt, ct, estimated = providers.count_message_tokens(call.messages), providers.count_tokens(str(c.text)), True
    return CallResult(text=str(c.text), prompt_tokens=int(pt), completion_tokens=int(ct), tokens_estimated=estimated,
                      cost_usd=batch_cost(call.ref, call.endpoint, int(pt), int(ct)), latency_ms=None,
                      resolved_model=c.model, tool_calls=c.tool_calls)


# ----------------------------------------------------------------------------- the provider side


class Batches:
    """Submits, recovers, polls and collects the batches of one run (see the module doc)."""

    def __init__(self, ledger: Ledger, run_id: str, on_wait: Callable[[str], None] | None = None) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.on_wait = on_wait  # told what the run waits for, after every poll that found batches pending
        self.poll_s = poll_interval()
        self.fallbacks: dict[str, dict[str, Any]] = {}  # calls of batches that could not be submitted
        self.poll_faults = 0  # polls in a row that failed

    async def _do(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def run(self, calls: list[BatchCall]) -> Outcome:
        """Submit what was never submitted, wait for every batch of the run, and collect the answers to ``calls``."""
        jobs = await self._do(store.jobs, self.ledger, self.run_id)
        lines = await self._do(store.lines, self.ledger, self.run_id)
        by_job: dict[int, list[str]] = {}
        for ln in lines:
            by_job.setdefault(ln.job_id, []).append(ln.custom_id)
        endpoints = {c.key: c.endpoint for c in calls}
        for job in jobs:  # recover batches created by a process that died before recording them
            if job.state == "creating":
                await self._recover(job, next((endpoints[k] for k in by_job.get(job.id or 0, []) if k in endpoints),
                                              None))
        jobs = await self._do(store.jobs, self.ledger, self.run_id)
        lines = await self._do(store.lines, self.ledger, self.run_id)
        live = {j.id for j in jobs if j.state != "abandoned"}
        submitted = {ln.custom_id for ln in lines if ln.job_id in live}
        fresh = [c for c in calls if c.key not in submitted]
        groups: dict[tuple[str, str], list[BatchCall]] = {}
        for c in fresh:
            groups.setdefault((c.role, c.ref.key), []).append(c)
        for group in groups.values():
            for i in range(0, len(group), MAX_LINES):
                await self._submit(group[i:i + MAX_LINES])
        out = await self.collect({c.key: c for c in calls}, wait=True)
        out.fallbacks.update({k: v for k, v in self.fallbacks.items() if k not in out.answers})
        return out

    async def _submit(self, calls: list[BatchCall]) -> None:
        first = calls[0]
        ep = first.endpoint
        token = secrets.token_hex(8)
        job = await self._do(store.add_job, self.ledger, BatchJob(
            run_id=self.run_id, token=token, role=first.role, model_key=first.ref.key, model=first.ref.model,
            api_base=first.ref.api_base, state="creating", n_lines=len(calls)), [c.key for c in calls])
        try:
            f = await providers.batch_upload(ep, f"benchrun-{self.run_id}-{token}.jsonl", input_jsonl(calls))
        except Exception as e:  # nothing was submitted: the calls are made synchronously
            await self._give_up(job, calls, f"uploading the batch input failed: {providers.classify(e)[1]}")
            return
        await self._do(lambda: store.update_job(self.ledger, job.id, input_file_id=f.id))
        try:
            b = await providers.batch_create(ep, f.id, COMPLETION_WINDOW, ENDPOINT,
                                             {"benchrun_run": self.run_id, "benchrun_token": token})
        except Exception as e:  # the provider may have created it all the same (a timeout): look for its token
            why = f"creating the batch failed: {providers.classify(e)[1]}"
            try:
                await self._recover(job, ep)
            except Exception as e2:
                why += f"; listing batches to check failed too ({providers.classify(e2)[1]})"
            jobs = {j.id: j for j in await self._do(store.jobs, self.ledger, self.run_id)}
            if jobs[job.id].batch_id is None:
                await self._give_up(job, calls, why)
            return
        await self._do(lambda: store.update_job(self.ledger, job.id, batch_id=b.id, state=str(b.status)))

    async def _give_up(self, job: BatchJob, calls: list[BatchCall], why: str) -> None:
        """Record a batch that could not be submitted; its calls go synchronous."""
        assert job.id is not None
        why = why[:500]
        await self._do(store.set_lines, self.ledger, job.id, {c.key: ("failed", "sync", why) for c in calls})
        await self._do(lambda: store.update_job(self.ledger, job.id, state="failed", message=why))
        for c in calls:
            self.fallbacks[c.key] = {"error": f"batch not submitted ({why[:200]}); called synchronously",
                                     "retryable": True, "batch": None}

    async def _recover(self, job: BatchJob, ep: Endpoint | None) -> None:
        """A ``creating`` job: the batch with its token, if the provider has it; else it was never created."""
        assert job.id is not None
        found = None
        if ep is not None:
            after = None
            for _ in range(100):  # pages of the provider's batch list, newest first
                page = await providers.batch_list(ep, after)
                data = list(getattr(page, "data", None) or [])
                found = next((b for b in data if (getattr(b, "metadata", None) or {}).get("benchrun_token")
                              == job.token), None)
                if found is not None or not getattr(page, "has_more", False) or not data:
                    break
                after = data[-1].id
        if found is not None:
            await self._do(lambda: store.update_job(self.ledger, job.id, batch_id=found.id, state=str(found.status),
                                                    input_file_id=found.input_file_id))
        elif ep is not None:  # never created: its lines are submitted again, in a new batch
            keys = [ln.custom_id for ln in await self._do(store.lines, self.ledger, self.run_id) if ln.job_id == job.id]
            await self._do(store.set_lines, self.ledger, job.id, {k: ("abandoned", None, None) for k in keys})
            await self._do(lambda: store.update_job(self.ledger, job.id, state="abandoned",
                                                    message="not found at the provider: never created"))

    async def refresh(self, job: BatchJob, ep: Endpoint) -> Any:
        """Ask the provider for the batch's state; record it when it changed. Returns the batch object."""
        assert job.batch_id is not None
        b = await providers.batch_retrieve(ep, job.batch_id)
        state = str(b.status)
        counts = b.request_counts.model_dump() if getattr(b, "request_counts", None) is not None else {}
        if state != job.state or json.dumps(counts) != job.counts:
            errors = getattr(getattr(b, "errors", None), "data", None) or []
            message = "; ".join(str(getattr(x, "message", "") or getattr(x, "code", "")) for x in errors)[:500] or None
            await self._do(lambda: store.update_job(self.ledger, job.id, state=state, counts=counts,
                                                    output_file_id=b.output_file_id, error_file_id=b.error_file_id,
                                                    message=providers.SECRETS.redact(message)))
            job.message = message
            job.state, job.counts = state, json.dumps(counts)
            job.output_file_id, job.error_file_id = b.output_file_id, b.error_file_id
        return b

    async def collect(self, wanted_calls: dict[str, BatchCall], *, wait: bool) -> Outcome:
        """Poll the run's batches (until they end, with ``wait``) and read the ended ones' answers to ``wanted``."""
        out = Outcome()
        while True:
            jobs = [j for j in await self._do(store.jobs, self.ledger, self.run_id) if j.state != "abandoned"]
            lines = await self._do(store.lines, self.ledger, self.run_id)
            keys_of: dict[int, list[str]] = {}
            for ln in lines:
                keys_of.setdefault(ln.job_id, []).append(ln.custom_id)
            pending: dict[str, int] = {}  # state -> lines
            for job in jobs:
                keys = [k for k in keys_of.get(job.id or 0, []) if k in wanted_calls]
                if not keys or job.batch_id is None:
                    continue
                ep = wanted_calls[keys[0]].endpoint
                if job.state in ACTIVE:
                    try:
                        await self.refresh(job, ep)
                        self.poll_faults = 0
                    except Exception as e:  # one failed poll in a day-long wait is no reason to stop
                        self.poll_faults += 1
                        if self.poll_faults >= MAX_POLL_FAULTS:
                            raise RunAborted(f"could not get the state of batch {job.batch_id} ({job.model_key}) "
                                             f"{self.poll_faults} times in a row: {providers.classify(e)[1]}; it is "
                                             f"recorded: benchrun run --resume {self.run_id} picks it up") from None
                if job.state in ACTIVE:
                    pending[job.state] = pending.get(job.state, 0) + job.n_lines
                elif job.state in ENDED or job.state == "collected":
                    await self._read(job, ep, {k: wanted_calls[k] for k in keys}, out)
            if not pending or not wait:
                return out
            if self.on_wait is not None:
                self.on_wait("waiting for provider batches: " + ", ".join(
                    f"{n} lines {state}" for state, n in sorted(pending.items())))
            await asyncio.sleep(self.poll_s)

    async def _read(self, job: BatchJob, ep: Endpoint, calls: dict[str, BatchCall], out: Outcome) -> None:
        """Read an ended batch's output and error files into ``out``; record each line's fate once."""
        assert job.id is not None
        if all(k in out.answers or k in out.fallbacks for k in calls):
            return
        answered: dict[str, dict[str, Any]] = {}
        failed: dict[str, tuple[str, str]] = {}  # key -> (failed | expired | cancelled, why)
        for fid in (job.output_file_id, job.error_file_id):
            if not fid:
                continue
            try:
                content = await providers.batch_file_content(ep, fid)
            except Exception as e:  # its answers are paid for: stop rather than pay for them again
                raise RunAborted(f"could not read the answers of batch {job.batch_id} ({job.model_key}): "
                                 f"{providers.classify(e)[1]}; benchrun run --resume {self.run_id} tries again") from None
            for line in _parse_jsonl(content.content, job.n_lines):
                resp = line.get("response") if isinstance(line.get("response"), dict) else {}
                body = resp.get("body")
                if resp.get("status_code") == 200 and isinstance(body, dict) and line.get("error") is None:
                    answered[line["custom_id"]] = body
                else:
                    code = (line.get("error") or {}).get("code") if isinstance(line.get("error"), dict) else None
                    kind = {"batch_expired": "expired", "batch_cancelled": "cancelled"}.get(str(code), "failed")
                    failed[line["custom_id"]] = (kind, _describe(line))
        states: dict[str, tuple[str, str | None, str | None]] = {}
        for key, call in calls.items():
            res = _result(call, answered[key]) if key in answered else None
            if res is not None:
                out.answers[key] = res
                states[key] = ("ok", None, None)
                continue
            ended = job.state if job.state != "collected" else json.loads(job.counts or "{}").get("provider_status")
            kind, why = failed.get(key) or (_LINE_FAILURE.get(str(ended), "failed"),
                                            f"batch {ended}" + (f": {job.message}" if job.message else ""))
            why = providers.SECRETS.redact(why) or ""
            if key in answered:
                why = "the batch's answer is not a usable completion"
            out.fallbacks[key] = {"error": f"batch {job.batch_id} line {kind} ({why[:200]}); called synchronously",
                                  "retryable": True, "batch": job.batch_id}
            states[key] = (kind, "sync", why[:500])
        if job.state != "collected":
            costs = [out.answers[k].cost_usd for k, s in states.items() if s[0] == "ok"]  # at batch prices
            await self._do(store.set_lines, self.ledger, job.id, states)
            await self._do(lambda: store.update_job(self.ledger, job.id, state="collected", counts={
                **json.loads(job.counts or "{}"), "provider_status": job.state,
                "ok": sum(1 for s in states.values() if s[0] == "ok"),
                "fallback_sync": sum(1 for s in states.values() if s[1] == "sync"),
                "cost_usd": sum(c for c in costs if c is not None), "unpriced": sum(1 for c in costs if c is None)}))
            job.state = "collected"


# ----------------------------------------------------------------------------- the runner's hook


@dataclass
class Planned:
    """A cell the runner still has to answer, as the batches need it (built by `Runner._batch_plan`).

    ``answer`` is an answer already recorded (only its judging is redone); ``judge_messages`` renders the
    judge's first call for an answer (None: the case is scored by rules alone)."""

    ref: ModelRef
    endpoint: Endpoint
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    sample: int
    answer: str | None
    judge_messages: Callable[[str], list[dict[str, Any]]] | None


@dataclass
class Judge:
    ref: ModelRef
    endpoint: Endpoint
    params: dict[str, Any]


async def prepare(ledger: Ledger, run_id: str, plan: list[Planned], judge: Judge | None, *, use_cache: bool,
                  budget_usd: float | None = None, on_wait: Callable[[str], None] | None = None) -> Outcome:
    """Batch the planned calls of models with ``batch: true``: candidates first, then the judge's first call
    for the answers that are in. Returns the answers (by cache key) and the lines to redo synchronously.

    With ``budget_usd``, a round is batched only when its worst case (every line at its ``max_tokens``, at
    batch prices) fits in the budget: a batch is paid as a whole, so it cannot stop at the cap as
    synchronous calls do; otherwise its calls are made synchronously, under the runner's budget control.
    """
    batches = Batches(ledger, run_id, on_wait=on_wait)
    total = Outcome()

    async def cached(key: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(ledger.cache_get, key) if use_cache else None

    calls: list[BatchCall] = []
    for p in plan:
        if not p.ref.batch or p.answer is not None or p.endpoint.local:  # the local model is free and has no batches
            continue
        key = cache_key(p.ref, p.messages, p.params, p.sample, "candidate")
        if await cached(key) is None:
            calls.append(BatchCall(key, p.ref, p.endpoint, p.messages, p.params, "candidate"))
    if calls and _affordable(calls, budget_usd):
        got = await batches.run(calls)
        total.answers.update(got.answers)
        total.fallbacks.update(got.fallbacks)
    if judge is None or not judge.ref.batch or judge.endpoint.local:
        return total
    jcalls: dict[str, BatchCall] = {}
    for p in plan:
        if p.judge_messages is None:
            continue
        text = p.answer
        if text is None:
            key = cache_key(p.ref, p.messages, p.params, p.sample, "candidate")
            res = total.answers.get(key)
            if res is None and (hit := await cached(key)) is not None:
                res = CallResult.from_cache(hit)
            text = res.with_secrets_redacted().text if res is not None and res.ok else None  # as Runner._call hands it on
        if text is None:
            continue
        messages = p.judge_messages(text)
        key = cache_key(judge.ref, messages, judge.params, 0, "judge")
        if await cached(key) is None:
            jcalls[key] = BatchCall(key, judge.ref, judge.endpoint, messages, judge.params, "judge")
    if jcalls and _affordable(list(jcalls.values()), budget_usd):
        got = await batches.run(list(jcalls.values()))
        total.answers.update(got.answers)
        total.fallbacks.update(got.fallbacks)
    return total


def _affordable(calls: list[BatchCall], budget_usd: float | None) -> bool:
    if budget_usd is None:
        return True
    worst = 0.0
    for c in calls:
        cost = batch_cost(c.ref, c.endpoint, providers.count_message_tokens(c.messages),
                          int(c.params.get("max_tokens") or 4096))
        if cost is None:
            return False
        worst += cost
    return worst <= budget_usd


# ----------------------------------------------------------------------------- status


async def status(ledger: Ledger, run_id: str, endpoints: dict[str, Endpoint]) -> list[BatchJob]:
    """Refresh the provider state of the run's unfinished batches (``endpoints`` by model key); no answer is read."""
    b = Batches(ledger, run_id)
    for job in store.jobs(ledger, run_id):
        ep = endpoints.get(job.model_key)
        if ep is None:
            continue
        if job.state == "creating":
            keys = [ln.custom_id for ln in store.lines(ledger, run_id) if ln.job_id == job.id]
            await b._recover(job, ep if keys else None)
        elif job.state in ACTIVE and job.batch_id is not None:
            await b.refresh(job, ep)
    return store.jobs(ledger, run_id)
