"""Pairwise runs: the judge compares candidates' answers two at a time (``judge: {mode: pairwise}``).

A pairwise run first collects every candidate's answer to every case exactly like any run (the
runner; rules, if a case has any, still decide its pass/fail; a case without rules is recorded as
``answered``), then judges pairs of answers to the same case (`judge_pairs`, called by
`benchrun.execution.execute_run` once the answers are in):

* **Which pairs** (``judge.pairs``): ``all_pairs`` (default; every pair of candidates per case),
  ``{baseline: ALIAS}`` (every other candidate against ALIAS, AlpacaEval-style) or ``{sample: M}``
  (M pairs per case, greedily the pairs compared least so far, ties broken by a generator seeded with
  ``judge.pair_seed``, so every pair is compared about equally often).
* **Both orders, names hidden**: each pair is judged twice, once with each answer shown first as
  "answer A" (the judge sees only the case and the two answers, never a model name). Which candidate
  is ``model_a`` (shown first in order "AB") is drawn per case and pair from ``pair_seed``; both orders
  are recorded. The verdict of the pair is the MT-Bench rule (Zheng et al. 2023, §3.4;
  `benchrun.analysis.bias.both_orders_verdict`): a win only when both orders agree, else a tie; the
  share of pairs whose two orders agree is the judge's position consistency.
* **Recorded**: one ledger row per order (`benchrun.ledger.tables.PairJudgement`: pair, order, who was
  shown first, the raw answer, the parsed winner in shown positions and in model terms, the reason,
  judge model, pairwise prompt hash, rubric hash, cache keys, tokens, cost). Calls go through the
  response cache (role ``pairwise``), so a re-run, a resume or ``reproduce --from-cache`` pays nothing
  for a judgement already made.

`run_battles` turns a pairwise run's judgements into `benchrun.analysis.arena.Battle` rows (with answer
lengths in characters and case categories) for `benchrun arena RUN_ID`, plus the position consistency
per judge (`benchrun.analysis.bias.position_bias_report`) and the share of ties.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchrun.analysis.arena import Battle
from benchrun.analysis.bias import PairVerdict, both_orders_verdict, position_bias_report
from benchrun.errors import UsageError
from benchrun.ledger.tables import PairJudgement, Result, Run
from benchrun.spec import JudgeSpec, LoadedSpec, PairsBaseline, PairsSample

if TYPE_CHECKING:
    from benchrun.ledger import Ledger
    from benchrun.scoring.pairwise import OneOrder

ORDERS = ("AB", "BA")


def schedule(keys: Sequence[str], case_ids: Sequence[str], judge: JudgeSpec) -> dict[str, list[tuple[str, str]]]:
    """The pairs ``(model_a, model_b)`` judged on each case, ``model_a`` drawn per case and pair from the seed."""
    pairs = judge.pairs or "all_pairs"
    if isinstance(pairs, PairsBaseline):
        base: list[tuple[str, str]] = [(k, pairs.baseline) for k in keys if k != pairs.baseline]
    else:
        base = list(itertools.combinations(keys, 2))
    out: dict[str, list[tuple[str, str]]] = {}
    counts = dict.fromkeys(base, 0)
    rng = random.Random(f"pairs:{judge.pair_seed}")
    for cid in case_ids:
        chosen = base
        if isinstance(pairs, PairsSample):
            order = list(base)
            rng.shuffle(order)  # a random tie-break among the pairs compared least so far
            chosen = sorted(order, key=lambda p: counts[p])[: pairs.sample]
            for p in chosen:
                counts[p] += 1
            chosen = [p for p in base if p in chosen]
        oriented = []
        for a, b in chosen:
            flip_it = random.Random(f"order:{judge.pair_seed}:{cid}:{a}:{b}").random() < 0.5
            oriented.append((b, a) if flip_it else (a, b))
        out[cid] = oriented
    return out


def pairwise_params(judge: JudgeSpec) -> dict[str, Any]:
    """Sampling of the pairwise judge (temperature 0 unless the spec says otherwise) and its output constraint."""
    from benchrun.scoring.judge import judge_call_params
    from benchrun.scoring.pairwise import PAIRWISE_SCHEMA

    return judge_call_params(judge, PAIRWISE_SCHEMA, "pairwise_verdict")


# ----------------------------------------------------------------------------- judging


@dataclass
class PairwiseTotals:
    pairs: int = 0  # pairs judged now (both orders)
    skipped: int = 0  # scheduled pairs with an unanswered side (an errored candidate result)
    errors: int = 0  # orders that could not be judged
    calls: int = 0
    cached: int = 0
    cost_usd: float = 0.0
    cost_unknown: bool = False
    stopped: str | None = None  # why judging stopped early (the budget cap)

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "skipped": self.skipped, "errors": self.errors, "calls": self.calls,
                "cached": self.cached, "cost_usd": None if self.cost_unknown else round(self.cost_usd, 8)}


def _row(run_id: str, case_id: str, a: str, b: str, order: str, o: OneOrder, judge: str, phash: str,
         rhash: str) -> PairJudgement:
    def add(vals: list[Any]) -> Any:
        vals = [v for v in vals if v is not None]
        return sum(vals) if vals else None

    shown = (a, b) if order == "AB" else (b, a)
    displayed = None if o.verdict is None else {"A>B": "A", "B>A": "B", "tie": "tie"}[o.verdict]
    winner = None
    if displayed is not None:
        winner = "tie" if displayed == "tie" else ("model_a" if shown[0 if displayed == "A" else 1] == a else "model_b")
    costs = [c.cost_usd for c in o.calls if c.text is not None]
    return PairJudgement(
        run_id=run_id, case_id=case_id, model_a=a, model_b=b, ordering=order, shown_first=shown[0],
        status="judged" if displayed is not None else "error", displayed=displayed, winner=winner, reason=o.reason,
        raw=o.raw, error=o.error, judge_model=judge, pairwise_prompt_hash=phash, rubric_hash=rhash,
        cache_keys=json.dumps(list(o.keys)), reasks=max(0, len(o.calls) - 1),
        prompt_tokens=add([c.prompt_tokens for c in o.calls]), completion_tokens=add([c.completion_tokens for c in o.calls]),
        cost_usd=None if any(c is None for c in costs) else sum(costs),  # type: ignore[misc]
        latency_ms=add([c.latency_ms for c in o.calls]), cached=bool(o.calls) and all(c.cached for c in o.calls),
    )


def _worst_case(loaded: LoadedSpec, ep: Any, params: dict[str, Any], case: Any, first: str, second: str) -> float:
    """Upper bound on what judging one pair costs: both orders, each with its one re-ask (which repeats the
    prompt and carries the first reply), every reply at ``max_tokens`` (1024 when unset)."""
    from benchrun import providers
    from benchrun.errors import RunAborted
    from benchrun.scoring.pairwise import pairwise_messages

    judge, rubric = loaded.spec.judge, loaded.rubric
    assert judge is not None and rubric is not None
    j_max = int(params.get("max_tokens") or 1024)
    total = 0.0
    for x, y in ((first, second), (second, first)):
        prompt = providers.count_message_tokens(pairwise_messages(rubric, case, x, y))
        c = providers.worst_case_cost(judge, ep, 2 * prompt + j_max, 2 * j_max)
        if c is None:  # checked before the run starts (the judge needs a price with budget_usd)
            raise RunAborted("cannot bound cost for the budget: the pairwise judge has no known price")
        total += c
    return total


async def _judge_all(loaded: LoadedSpec, ledger: Ledger, run_id: str, use_cache: bool,
                     on_pair: Callable[[int, int, int, float], None] | None = None,
                     budget_left: float | None = None) -> PairwiseTotals:
    from benchrun import providers
    from benchrun.scoring.pairwise import CachedCaller, judge_order, pairwise_prompt_hash

    spec, rubric, judge = loaded.spec, loaded.rubric, loaded.spec.judge
    assert judge is not None and rubric is not None
    answers = {(r.case_id, r.model_key): r.response_text for r in ledger.results(run_id)
               if r.status != "error" and r.response_text is not None}
    judged = {(j.case_id, j.model_a, j.model_b, j.ordering) for j in ledger.pair_judgements(run_id) if j.status == "judged"}
    cases = loaded.cases()
    plan = schedule([c.key for c in spec.candidates], [c.id for c in cases], judge)
    tot = PairwiseTotals()
    todo = []
    for case in cases:
        for a, b in plan[case.id]:
            if (case.id, a) not in answers or (case.id, b) not in answers:
                tot.skipped += 1
            elif not all((case.id, a, b, o) in judged for o in ORDERS):
                todo.append((case, a, b))
    if not todo:
        return tot
    ep = await asyncio.to_thread(providers.resolve, judge, loaded.path or "spec")
    call = CachedCaller(ref=judge, endpoint=ep, params=pairwise_params(judge), cache=ledger, timeout_s=spec.timeout_s,
                        retries=spec.retries, use_cache=use_cache and spec.cache,
                        concurrency=judge.concurrency or spec.concurrency.per_model)
    phash, rhash = pairwise_prompt_hash(rubric), rubric.hash
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="benchrun-pairs")
    loop = asyncio.get_running_loop()

    params = pairwise_params(judge)
    gate = {"spent": 0.0, "reserved": 0.0}

    async def one(case: Any, a: str, b: str) -> None:
        reserve = 0.0
        if budget_left is not None:
            if tot.stopped is not None:
                return
            reserve = _worst_case(loaded, ep, params, case, answers[(case.id, a)] or "", answers[(case.id, b)] or "")
            while gate["spent"] + gate["reserved"] + reserve > budget_left:
                if tot.stopped is not None:
                    return
                if gate["reserved"] == 0.0 or gate["spent"] + reserve > budget_left:
                    tot.stopped = (f"budget cap ${spec.budget_usd:.4f} reached while judging pairs: spent "
                                   f"${gate['spent']:.4f} on them; the next pair could cost up to ${reserve:.4f}. "
                                   "Raise budget_usd and resume.")
                    return
                await asyncio.sleep(0.05)  # wait for the pairs in flight to settle their real cost
            gate["reserved"] += reserve
        before = call.cost_usd
        try:
            await _judge_pair(case, a, b)
        finally:
            gate["reserved"] -= reserve
            gate["spent"] += call.cost_usd - before  # fresh spend (cached calls cost nothing now)

    async def _judge_pair(case: Any, a: str, b: str) -> None:
        ab, ba = await asyncio.gather(judge_order(call, rubric, case, answers[(case.id, a)] or "", answers[(case.id, b)] or ""),
                                      judge_order(call, rubric, case, answers[(case.id, b)] or "", answers[(case.id, a)] or ""))
        rows = [_row(run_id, case.id, a, b, order, o, judge.model, phash, rhash) for order, o in zip(ORDERS, (ab, ba),
                                                                                                    strict=True)]
        await loop.run_in_executor(writer, ledger.add_pair_judgements, rows)
        tot.pairs += 1
        tot.errors += sum(1 for r in rows if r.status == "error")
        if on_pair is not None:
            on_pair(tot.pairs, len(todo), tot.errors, call.cost_usd)

    try:
        await asyncio.gather(*(one(c, a, b) for c, a, b in todo))
    finally:
        writer.shutdown(wait=True)
        await providers.close()
    use = call.usage()
    tot.calls, tot.cached = use["calls"], use["cached"]
    tot.cost_usd, tot.cost_unknown = call.cost_usd, call.cost_unknown
    return tot


def judge_pairs(loaded: LoadedSpec, ledger: Ledger, run_id: str, *, use_cache: bool = True,
                on_pair: Callable[[int, int, int, float], None] | None = None,
                spent: float = 0.0) -> PairwiseTotals:
    """Judge every scheduled pair of ``run_id`` not judged yet in both orders (see the module docstring).
    ``on_pair(pairs done, pairs to judge, orders failed, fresh cost so far)`` is called after each pair.
    With the spec's ``budget_usd``, ``spent`` (what the answers cost in this process) counts against it and
    a pair is judged only when its worst case still fits beside the pairs in flight, as the runner does for
    answers; otherwise judging stops (``stopped`` says why; resume to go on)."""
    budget = loaded.spec.budget_usd
    left = None if budget is None else budget - spent
    return asyncio.run(_judge_all(loaded, ledger, run_id, use_cache, on_pair, left))


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class JudgeConsistency:
    judge: str
    pairs: int
    consistency: float
    low: float
    high: float
    ties: int  # pairs that are ties under the both-orders rule
    first_position_win_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"judge": self.judge, "pairs": self.pairs, "consistency": self.consistency,
                "consistency_interval": [self.low, self.high], "tie_share": self.ties / self.pairs if self.pairs else None,
                "ties": self.ties, "first_position_win_rate": self.first_position_win_rate}


@dataclass(frozen=True)
class RunBattles:
    battles: list[Battle]
    consistency: list[JudgeConsistency]
    errors: int  # pairs without a verdict in both orders


def run_battles(run: Run, results: Sequence[Result], judgements: Sequence[PairJudgement]) -> RunBattles:
    """The battles of a pairwise run: one per pair judged in both orders, by the both-orders rule."""
    if not judgements:
        raise UsageError(f"run {run.id} has no pairwise judgements; `benchrun arena RUN_ID` rates runs whose spec has "
                         "judge.mode: pairwise (or use --battles FILE)")
    text = {(r.case_id, r.model_key): r.response_text or "" for r in results}
    category = {r.case_id: r.category for r in results}
    by_pair: dict[tuple[str, str, str, str], dict[str, PairJudgement]] = {}
    for j in judgements:
        by_pair.setdefault((j.judge_model, j.case_id, j.model_a, j.model_b), {})[j.ordering] = j
    battles: list[Battle] = []
    verdicts: dict[str, list[PairVerdict]] = {}
    ties: dict[str, int] = {}
    errors = 0
    to_v = {"A": "A>B", "B": "B>A", "tie": "tie"}
    for (judge, cid, a, b), orders in by_pair.items():
        ab, ba = orders.get("AB"), orders.get("BA")
        if ab is None or ba is None or ab.displayed is None or ba.displayed is None:
            errors += 1
            continue
        v_ab, v_ba = to_v[ab.displayed], to_v[ba.displayed]
        final = both_orders_verdict(v_ab, v_ba)  # type: ignore[arg-type]
        verdicts.setdefault(judge, []).append(PairVerdict(f"{cid}:{a}:{b}", None, v_ab, v_ba))  # type: ignore[arg-type]
        ties[judge] = ties.get(judge, 0) + (final == "tie")
        winner = {"A>B": "model_a", "B>A": "model_b", "tie": "tie"}[final]
        battles.append(Battle(a, b, winner, case_id=cid, judge=judge, len_a=float(len(text.get((cid, a), ""))),
                              len_b=float(len(text.get((cid, b), ""))), category=category.get(cid)))
    cons = []
    for judge, pv in sorted(verdicts.items()):
        rep = position_bias_report(pv)
        fp = rep.first_position_win_rate
        cons.append(JudgeConsistency(judge, rep.n, rep.consistency.estimate, rep.consistency.low, rep.consistency.high,
                                     ties[judge], fp.estimate if fp is not None else None))
    return RunBattles(battles, cons, errors)


# ----------------------------------------------------------------------------- reproduce


def pairwise_cache_misses(loaded: LoadedSpec, ledger: Ledger, answers: dict[tuple[str, str], str],
                          miss: Any) -> None:
    """Call ``miss(description)`` for every pairwise judge call of ``loaded`` the response cache cannot serve,
    given the cached candidate ``answers`` ``{(case_id, model_key): text}`` (pairs with a missing answer are
    the answer's miss, already counted); the re-ask is checked when a cached reply does not parse."""
    from benchrun.hashing import cache_key
    from benchrun.scoring.judge import JudgeFormatError, reask_with_schema
    from benchrun.scoring.pairwise import PAIRWISE_SCHEMA, pairwise_messages, parse_pairwise

    judge, rubric = loaded.spec.judge, loaded.rubric
    assert judge is not None and rubric is not None
    params = pairwise_params(judge)
    cases = loaded.cases()
    plan = schedule([c.key for c in loaded.spec.candidates], [c.id for c in cases], judge)
    for case in cases:
        for a, b in plan[case.id]:
            if (case.id, a) not in answers or (case.id, b) not in answers:
                continue
            for order, (x, y) in zip(ORDERS, ((a, b), (b, a)), strict=True):
                msgs = pairwise_messages(rubric, case, answers[(case.id, x)], answers[(case.id, y)])
                hit = ledger.cache_get(cache_key(judge, msgs, params, 0, "pairwise"))
                where = f"case {case.id} pair {a} vs {b} order {order}"
                if hit is None or hit.get("text") is None:
                    miss(f"{where}: pairwise verdict")
                    continue
                try:
                    parse_pairwise(hit["text"])
                except JudgeFormatError as e:
                    again = reask_with_schema(msgs, hit["text"], str(e), PAIRWISE_SCHEMA)
                    if ledger.cache_get(cache_key(judge, again, params, 0, "pairwise")) is None:
                        miss(f"{where}: pairwise re-ask")


def pairwise_diff(ledger: Ledger, original: Run, reproduction: Run, level: float = 0.95) -> dict[str, Any] | None:
    """How a pairwise run's battle verdicts moved in its reproduction (None for pointwise runs).

    Battles are paired by (judge, case, model_a, model_b) (the schedule and orientation are seeded, so they
    are the same pairs). Per model, a two-sided exact sign test (scipy ``binomtest``, p = 0.5) on the battles
    whose score for it changed (up: loss→tie, tie→win, loss→win; down the reverse), Holm-adjusted over the
    models: a model whose verdicts moved one way more than chance allows is a reason the run did not reproduce.
    """
    jo, jn = ledger.pair_judgements(original.id), ledger.pair_judgements(reproduction.id)
    if not jo and not jn:
        return None
    from scipy.stats import binomtest

    from benchrun.analysis.stats import holm_adjust

    def keyed(run: Run, js: Sequence[PairJudgement]) -> dict[tuple[str, str, str, str], Battle]:
        if not js:
            return {}
        rb = run_battles(run, ledger.results(run.id), js)
        return {(b.judge or "", b.case_id or "", b.model_a, b.model_b): b for b in rb.battles}

    bo, bn = keyed(original, jo), keyed(reproduction, jn)
    shared = sorted(set(bo) & set(bn))
    score = {"model_a": 1.0, "tie": 0.5, "model_b": 0.0}
    changed = [k for k in shared if bo[k].winner != bn[k].winner]
    moves: dict[str, list[int]] = {}
    for k in changed:
        d = score[bn[k].winner] - score[bo[k].winner]  # model_a's score, new - old
        for m, s in ((bo[k].model_a, d), (bo[k].model_b, -d)):
            moves.setdefault(m, [0, 0])[0 if s > 0 else 1] += 1
    models = sorted(moves)
    pvals = [binomtest(moves[m][0], sum(moves[m]), 0.5).pvalue for m in models]
    adj = holm_adjust(pvals) if pvals else []
    per = [{"model": m, "up": moves[m][0], "down": moves[m][1], "p_value": p, "p_adjusted": q}
           for m, p, q in zip(models, pvals, adj, strict=True)]
    problems = [f"{x['model']}: pairwise verdicts moved {x['up']} up / {x['down']} down, more one way than chance "
                f"(sign test, Holm-adjusted p={x['p_adjusted']:.3g})" for x in per if x["p_adjusted"] < 1 - level]
    return {"battles_original": len(bo), "battles_reproduction": len(bn), "battles_compared": len(shared),
            "verdicts_changed": len(changed),
            "changed": [{"case_id": k[1], "model_a": k[2], "model_b": k[3], "original": bo[k].winner,
                         "reproduction": bn[k].winner} for k in changed[:50]],
            "models": per, "problems": problems}
