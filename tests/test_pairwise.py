"""Pairwise judging through litellm against our OpenAI-compatible server, with the ledger's cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from benchrun import providers
from benchrun.ledger import Ledger
from benchrun.scoring.judge import JudgeFormatError, fence_answer
from benchrun.scoring.pairwise import (
    DEFAULT_PAIRWISE_PROMPT,
    CachedCaller,
    judge_pair,
    pairwise_messages,
    pairwise_prompt_hash,
    parse_pairwise,
)
from benchrun.spec import Case, ModelRef, Retries, Rubric
from conftest import RUBRIC
from fakeserver import FakeServer

CASE = Case(id="c1", input="How do refunds work?", ideal="Refunds take 5-7 days after a ticket.")
GOOD = "Open a ticket; refunds take 5-7 business days."
BAD = "Refunds are instant, I did it."
WIN_A = '{"winner": "A", "reason": "first"}'
WIN_B = '{"winner": "B", "reason": "second"}'


def rubric(**extra: Any) -> Rubric:
    return Rubric.model_validate({**RUBRIC, **extra})


def caller(srv: FakeServer, tmp_path: Path, model: str = "openai/judge") -> CachedCaller:
    ref = ModelRef(model=model, api_base=srv.url)
    return CachedCaller(ref=ref, endpoint=providers.resolve(ref), params={"temperature": 0},
                        cache=Ledger(str(tmp_path / "ledger.sqlite")), timeout_s=5,
                        retries=Retries(attempts=2, backoff_base_s=0.01, backoff_max_s=0.02))


def test_parse_pairwise() -> None:
    assert parse_pairwise('Sure. {"winner": "a", "reason": "x"}').displayed_verdict == "A>B"
    assert parse_pairwise('{"winner": "B", "reason": "x"}').displayed_verdict == "B>A"
    assert parse_pairwise('{"winner": "TIE", "reason": "x"}').displayed_verdict == "tie"
    for bad, msg in [("A is better", "no JSON"), ('{"winner": "C", "reason": "x"}', "not one of"),
                     ('{"reason": "x"}', "'winner' is a required"), ('{"winner": "A"}', "'reason' must be")]:
        with pytest.raises(JudgeFormatError, match=msg):
            parse_pairwise(bad)


def test_messages_use_rubric_prompt_or_default() -> None:
    m = pairwise_messages(rubric(), CASE, GOOD, BAD)
    text = m[1]["content"]
    assert text.index(GOOD) < text.index(BAD) and "[Answer A]" in text and CASE.ideal in text
    swapped = pairwise_messages(rubric(), CASE, BAD, GOOD)[1]["content"]
    assert swapped.index(BAD) < swapped.index(GOOD)
    assert text.startswith(DEFAULT_PAIRWISE_PROMPT.splitlines()[0]) and m[0]["role"] == "system"
    custom = rubric(pairwise_prompt="Q {{ input }} | first {{ response_a }} | second {{ response_b }} | {{ criteria_text }}")
    assert custom.pairwise_prompt is not None
    assert pairwise_messages(custom, CASE, GOOD, BAD)[1]["content"] == (
        f"Q {CASE.input} | first {fence_answer(GOOD)} | second {fence_answer(BAD)} | - policy: follows the billing policy")
    # the hash changes with the prompt, so reports are tied to what the judge was told
    assert pairwise_prompt_hash(custom) != pairwise_prompt_hash(rubric())


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_first_position_judge_both_orders_rule_gives_tie(tmp_path: Path) -> None:
    with FakeServer({"rules": [{"model": "judge", "reply": WIN_A}]}) as srv:
        call = caller(srv, tmp_path)
        both = _run(judge_pair(call, rubric(), CASE, GOOD, BAD, both_orders=True))
        assert (both.verdict_ab, both.verdict_ba_raw, both.verdict) == ("A>B", "A>B", "tie")
        one = _run(judge_pair(call, rubric(), CASE, GOOD, BAD, both_orders=False))
        assert (one.verdict_ab, one.verdict_ba_raw, one.verdict) == ("A>B", None, "A>B")
        seen = [q.messages[1]["content"] for q in srv.requests()]
        assert len(seen) == 2  # the single-order call was served from the cache
        assert {s.index(GOOD) < s.index(BAD) for s in seen} == {True, False}  # one request per order
        assert call.usage()["calls"] == 3 and call.usage()["cached"] == 1


def test_content_judge_wins_in_both_orders(tmp_path: Path) -> None:
    rules = [{"model": "judge", "regex": r"\[Answer A\]\n<<<ANSWER-[^\n]*\nOpen a ticket", "reply": WIN_A},
             {"model": "judge", "reply": WIN_B}]
    with FakeServer({"rules": rules}) as srv:
        call = caller(srv, tmp_path)
        out = _run(judge_pair(call, rubric(), CASE, BAD, GOOD, both_orders=True))
        # B (GOOD) wins when shown second ("B>A") and, shown first, wins in displayed terms ("A>B")
        assert (out.verdict_ab, out.verdict_ba_raw, out.verdict) == ("B>A", "A>B", "B>A")


def test_malformed_reply_gets_one_reask_then_error(tmp_path: Path) -> None:
    rules = [{"model": "fixable", "contains": "Your reply was not valid", "reply": WIN_B},
             {"model": "fixable", "reply": "I prefer the first one"},
             {"model": "hopeless", "reply": "no idea"}]
    with FakeServer({"rules": rules}) as srv:
        out = _run(judge_pair(caller(srv, tmp_path, "openai/fixable"), rubric(), CASE, GOOD, BAD, both_orders=False))
        assert out.verdict == "B>A" and not out.errors
        bad = _run(judge_pair(caller(srv, tmp_path / "h", "openai/hopeless"), rubric(), CASE, GOOD, BAD))
        assert bad.verdict is None and len(bad.errors) == 2
        assert all("invalid after one re-ask" in e for e in bad.errors)
        assert sum(1 for q in srv.requests() if q.model == "hopeless") == 4  # 2 orders x (ask + re-ask)


def test_the_same_call_asked_twice_at_once_is_made_once(tmp_path: Path) -> None:
    """Two samples with the same answer make the same judge call: with the cache on, the second waits for
    the first's answer instead of paying for it again, whatever the timing (the server holds each call 200 ms,
    so both are under way together); with the cache off, both are asked."""
    msgs = [{"role": "user", "content": "Is this a refusal? I can't help with that."}]
    with FakeServer({"latency_ms": 200, "rules": [{"model": "judge", "reply": WIN_A}]}) as srv:
        call = caller(srv, tmp_path)

        async def twice(c: CachedCaller) -> list[Any]:
            return list(await asyncio.gather(c(msgs, "refusal"), c(msgs, "refusal"), c(msgs, "other role")))

        a, b, other = _run(twice(call))
        assert a.ok and b.ok and a.text == b.text == WIN_A and other.ok
        assert srv.stats()["by_model"]["judge"] == 2  # the shared call, and the other role's own key
        assert (call.calls, call.cached, call.failed) == (3, 1, 0)
        again = caller(srv, tmp_path)
        again.use_cache = False
        _run(twice(again))
        assert srv.stats()["by_model"]["judge"] == 5  # cache off: every call asked
