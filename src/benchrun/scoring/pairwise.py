"""Pairwise judging: the judge compares two answers to the same case.

The judge sees the case, the rubric's criteria and two answers labelled by their
position ("A" = shown first, "B" = shown second) and replies with one JSON object
``{"winner": "A" | "B" | "tie", "reason": "..."}``. The prompt is the rubric's
``pairwise_prompt`` (Jinja variables: ``input``, ``ideal``, ``response_a``,
``response_b``, ``criteria_text``, ``scale_text``, ``failure_modes_text``), or
`DEFAULT_PAIRWISE_PROMPT` when the rubric has none.

With ``both_orders`` every pair is judged twice, A-first and B-first, and a win
counts only when both orders agree; any disagreement is a tie (Zheng et al. 2023,
MT-Bench, §3.4). The flipping of the swapped verdict is done by
`benchrun.analysis.bias.both_orders_verdict`.

Calls go through `benchrun.providers.complete` and the ledger's response cache,
exactly like the runner's calls: the same call is never paid for twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from benchrun import providers
from benchrun.hashing import content_hash
from benchrun.providers import CallResult, Endpoint
from benchrun.scoring.judge import JudgeFormatError, case_input_text, fence_answer, last_valid, reask_with_schema
from benchrun.scoring.prompts import render
from benchrun.spec import Case, ModelRef, Retries, Rubric

if TYPE_CHECKING:  # the analysis (and its statistics) only when a pair is judged: `benchrun run` renders
    from benchrun.analysis.bias import Verdict  # pairwise_messages to check the template, nothing more

Winner = Literal["A", "B", "tie"]

PAIRWISE_SYSTEM = (
    "You are a strict, impartial evaluator. You compare two answers of AI assistants to the same request "
    "against a rubric. The order in which the answers are shown, their length and their style must not "
    "influence you. Reply with a single JSON object and nothing else."
)

DEFAULT_PAIRWISE_PROMPT = """Compare two answers to the same request against these criteria:
{{ criteria_text }}

[Request]
{{ input }}

[Reference answer]
{{ ideal }}

[Answer A]
{{ response_a }}
[End of answer A]

[Answer B]
{{ response_b }}
[End of answer B]

Which answer better satisfies the criteria? Answer "tie" only if they are equally good.
Reply with ONLY this JSON object: {"winner": "A" or "B" or "tie", "reason": "<one sentence>"}
"""

PAIRWISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "winner": {"type": "string", "enum": ["A", "B", "tie"]},
        "reason": {"type": "string"},
    },
    "required": ["winner", "reason"],
}


def pairwise_prompt_source(rubric: Rubric) -> str:
    return rubric.pairwise_prompt or DEFAULT_PAIRWISE_PROMPT


def pairwise_prompt_hash(rubric: Rubric) -> str:
    """Hash of what the pairwise judge is told: system text, prompt template and reply schema."""
    return content_hash({"system": PAIRWISE_SYSTEM, "prompt": pairwise_prompt_source(rubric), "schema": PAIRWISE_SCHEMA})


def pairwise_messages(rubric: Rubric, case: Case, first: str, second: str) -> list[dict[str, str]]:
    """The messages sent to the judge with ``first`` shown as answer A and ``second`` as answer B."""
    prompt = render(
        pairwise_prompt_source(rubric),
        input=case_input_text(case),
        ideal=case.ideal,
        response_a=fence_answer(first),
        response_b=fence_answer(second),
        criteria_text="\n".join(f"- {c.name}: {c.description}" for c in rubric.criteria),
        scale_text="\n".join(f"{k}: {v}" for k, v in sorted(rubric.scale.items())),
        failure_modes_text=", ".join(rubric.failure_modes),
    )
    return [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": prompt}]


@dataclass(frozen=True)
class PairwiseReply:
    winner: Winner
    reason: str

    @property
    def displayed_verdict(self) -> Verdict:
        """The verdict in displayed positions: "A>B" means the answer shown first won."""
        return {"A": "A>B", "B": "B>A", "tie": "tie"}[self.winner]  # type: ignore[return-value]


def _pairwise_of(value: Any) -> PairwiseReply:
    if "winner" not in value:
        raise JudgeFormatError("'winner' is a required property")
    raw = str(value["winner"]).strip()
    norm = {"a": "A", "b": "B", "tie": "tie"}.get(raw.lower())
    if norm is None:
        raise JudgeFormatError(f"winner {raw!r} is not one of 'A', 'B', 'tie'")
    reason = value.get("reason")
    if not isinstance(reason, str):
        raise JudgeFormatError("'reason' must be a string")
    return PairwiseReply(norm, reason)  # type: ignore[arg-type]


def parse_pairwise(text: str) -> PairwiseReply:
    """Validate a pairwise judge reply (its last valid object, as for verdicts); raises `JudgeFormatError`."""
    return last_valid(text, _pairwise_of)  # type: ignore[no-any-return]


def _reask(messages: list[dict[str, str]], bad_reply: str, error: str) -> list[dict[str, str]]:
    return reask_with_schema(messages, bad_reply, error, PAIRWISE_SCHEMA)


# ----------------------------------------------------------------------------- cached calls


class ResponseCache(Protocol):
    """What the ledger offers as a response cache."""

    def cache_get(self, key: str) -> dict[str, Any] | None: ...
    def cache_put(self, key: str, model: str, response: dict[str, Any]) -> None: ...


@dataclass
class CachedCaller:
    """Calls one model through `providers.complete`, reading and filling the ledger's cache.

    The cache key is `benchrun.runner.cache_key` (model, api_base, messages, params,
    sample, role), so a judgement the runner already made is served from the cache.
    With the cache on, a call whose key is already being asked waits for that answer instead of
    asking again (two samples with the same answer make the same judge call): what the cache
    would have served had the first answer landed first, whatever the timing.
    Keeps count of calls, cache hits (those shared answers included), fresh cost and failures.
    """

    ref: ModelRef
    endpoint: Endpoint
    params: dict[str, Any]
    cache: ResponseCache
    timeout_s: float = 60.0
    retries: Retries = field(default_factory=Retries)
    use_cache: bool = True
    concurrency: int = 4
    calls: int = 0
    cached: int = 0
    failed: int = 0
    cost_usd: float = 0.0  # fresh (not cached) spend in this process
    cost_unknown: bool = False
    _sem: asyncio.Semaphore | None = field(default=None, repr=False)
    _asking: dict[str, asyncio.Future[CallResult]] = field(default_factory=dict, repr=False)

    async def __call__(self, messages: list[dict[str, Any]], role: str, sample: int = 0) -> CallResult:
        from benchrun.hashing import cache_key

        key = cache_key(self.ref, messages, self.params, sample, role)
        self.calls += 1
        if not self.use_cache:
            return await self._ask(key, messages)
        pending = self._asking.get(key)
        if pending is not None:  # the same call is under way: its answer, once (shielded: one caller cancelled
            self.cached += 1     # does not cancel it for the others)
            return await asyncio.shield(pending)
        task = asyncio.ensure_future(self._ask(key, messages))
        self._asking[key] = task
        task.add_done_callback(lambda _: self._asking.pop(key, None))
        return await asyncio.shield(task)

    async def _ask(self, key: str, messages: list[dict[str, Any]]) -> CallResult:
        if self.use_cache:
            hit = await asyncio.to_thread(self.cache.cache_get, key)
            if hit is not None:
                self.cached += 1
                return CallResult.from_cache(hit)
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        async with self._sem:
            res = await providers.complete(self.ref, self.endpoint, messages, self.params, self.timeout_s, self.retries)
        res = res.with_secrets_redacted()
        if res.ok:
            await asyncio.to_thread(self.cache.cache_put, key, self.ref.model, res.to_cache())
            if res.cost_usd is None:
                self.cost_unknown = True
            else:
                self.cost_usd += res.cost_usd
        else:
            self.failed += 1
        return res

    def usage(self) -> dict[str, Any]:
        return {"calls": self.calls, "cached": self.cached, "failed": self.failed,
                "cost_usd": None if self.cost_unknown else round(self.cost_usd, 8)}


# ----------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class OneOrder:
    """One pairwise judgement: the displayed verdict, or why there is none."""

    verdict: Verdict | None
    reason: str | None = None
    error: str | None = None
    raw: str | None = None
    keys: tuple[str, ...] = ()  # cache keys of the calls made (first call, then its re-ask)
    calls: tuple[CallResult, ...] = ()  # what each call returned (tokens, cost, cached)


async def judge_order(call: CachedCaller, rubric: Rubric, case: Case, first: str, second: str) -> OneOrder:
    """Judge one presentation order; one re-ask on a malformed reply, then a recorded error."""
    from benchrun.hashing import cache_key

    messages = pairwise_messages(rubric, case, first, second)
    keys = (cache_key(call.ref, messages, call.params, 0, "pairwise"),)
    res = await call(messages, "pairwise")
    if not res.ok:
        return OneOrder(None, error=f"judge call failed: {res.error}", keys=keys, calls=(res,))
    assert res.text is not None
    try:
        rep = parse_pairwise(res.text)
        return OneOrder(rep.displayed_verdict, rep.reason, raw=res.text, keys=keys, calls=(res,))
    except JudgeFormatError as e:
        again = _reask(messages, res.text, str(e))
        keys += (cache_key(call.ref, again, call.params, 0, "pairwise"),)
        res2 = await call(again, "pairwise")
        if not res2.ok:
            return OneOrder(None, error=f"judge call failed on re-ask: {res2.error}", raw=res.text, keys=keys,
                            calls=(res, res2))
        assert res2.text is not None
        try:
            rep = parse_pairwise(res2.text)
        except JudgeFormatError as e2:
            return OneOrder(None, error=f"judge answer invalid after one re-ask: {e2}", raw=res2.text, keys=keys,
                            calls=(res, res2))
        return OneOrder(rep.displayed_verdict, rep.reason, raw=res2.text, keys=keys, calls=(res, res2))


@dataclass(frozen=True)
class PairOutcome:
    """A judged pair. ``verdict_ab``: A shown first, in A/B terms. ``verdict_ba_raw``: B shown
    first, in displayed positions (None unless both orders were judged). ``verdict``: the final
    verdict in A/B terms (the both-orders rule when both orders were judged)."""

    verdict_ab: Verdict | None
    verdict_ba_raw: Verdict | None
    verdict: Verdict | None
    errors: tuple[str, ...] = ()
    reason_ab: str | None = None
    reason_ba: str | None = None


async def judge_pair(
    call: CachedCaller, rubric: Rubric, case: Case, answer_a: str, answer_b: str, *, both_orders: bool = True
) -> PairOutcome:
    """Compare answers A and B to ``case``; with ``both_orders`` also with B shown first.

    The final verdict is ``None`` when a needed order could not be judged.
    """
    if both_orders:
        ab, ba = await asyncio.gather(
            judge_order(call, rubric, case, answer_a, answer_b), judge_order(call, rubric, case, answer_b, answer_a)
        )
    else:
        ab, ba = await judge_order(call, rubric, case, answer_a, answer_b), None
    errors = tuple(e for e in (ab.error, ba.error if ba else None) if e)
    final: Verdict | None
    if ab.verdict is None or (both_orders and (ba is None or ba.verdict is None)):
        final = None
    elif both_orders:
        assert ba is not None and ba.verdict is not None
        from benchrun.analysis.bias import both_orders_verdict

        final = both_orders_verdict(ab.verdict, ba.verdict)
    else:
        final = ab.verdict
    return PairOutcome(
        verdict_ab=ab.verdict,
        verdict_ba_raw=ba.verdict if ba else None,
        verdict=final,
        errors=errors,
        reason_ab=ab.reason,
        reason_ba=ba.reason if ba else None,
    )
