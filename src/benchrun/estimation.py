"""What a run would call and cost, worked out before any call (`benchrun run SPEC --estimate`).

For each candidate and for the judge:

* **calls**: one per case × sample for a candidate, one judge call per answer. With the cache on,
  a call the ledger's response cache already holds is counted apart (``cached_calls``) and costs
  nothing, exactly as in the run: the candidate's messages are known, and for a cached answer so
  are the judge's.
* **prompt tokens**: counted with tiktoken (cl100k_base, the count benchrun records when a
  provider reports no usage) over the exact messages each call sends. The judge's prompt holds
  the answer, unknown before the call: its fixed part is counted, plus the answer's completion
  tokens (the expectation, or the candidate's ``max_tokens`` for the worst case).
* **worst case**: every answer uses its ``max_tokens``, and every judge verdict needs its one
  re-ask (a second call with the bad reply in it). Without ``max_tokens`` there is no bound and
  the worst case is unknown.
* **expected**: prompt tokens as counted, completion tokens at the mean this model produced in
  the ledger's recent runs; unknown when the ledger has no answer of this model.
* **pairwise judge** (``judge.mode: pairwise``): one call per order of every scheduled pair, its
  prompt holding both answers (exact when both are cached, else the fixed part plus each answer's
  expected or ``max_tokens`` length), cached verdicts counted apart, the worst case with one
  re-ask per order, the expectation at the judge's recorded pairwise verdict length.
* **prices**: the spec's ``price``, else litellm's bundled cost map; the embedded local model is
  free. A model neither knows stays unknown (never zero), and so does every total it enters.

Pure apart from reading the ledger (cache and history); nothing is called, nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchrun.ledger import Ledger
    from benchrun.spec import LoadedSpec, ModelRef

HISTORY_RUNS = 20  # recent runs whose answers set the expected completion length


@dataclass(frozen=True)
class RoleEstimate:
    """One candidate's calls (or the judge's), tokens and cost."""

    key: str  # candidate key, or "judge"
    model: str
    calls: int  # calls that would be made (cache hits excluded)
    cached_calls: int
    reask_calls_worst: int  # judge only: extra calls if every verdict needs its re-ask
    prompt_tokens: int  # over the calls to make (judge: fixed part plus the expected answers when known)
    prompt_tokens_worst: int | None
    completion_tokens_expected: int | None
    completion_tokens_worst: int | None  # None: no max_tokens, no bound
    expected_basis: str
    prompt_tokens_without_answers: bool  # judge only: answers of unknown length are not in prompt_tokens
    price_source: str  # spec | litellm | local | unknown
    input_per_1m: float | None
    output_per_1m: float | None
    expected_cost_usd: float | None
    worst_case_cost_usd: float | None


@dataclass(frozen=True)
class Estimate:
    spec_name: str
    cases: int
    samples: int
    candidates: list[RoleEstimate]
    judge: RoleEstimate | None  # None: the run is scored by rules only
    cache: bool
    notes: list[str] = field(default_factory=list)

    @property
    def roles(self) -> list[RoleEstimate]:
        return [*self.candidates, *([self.judge] if self.judge is not None else [])]

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.roles)

    @property
    def expected_cost_usd(self) -> float | None:
        return _sum(r.expected_cost_usd for r in self.roles)

    @property
    def worst_case_cost_usd(self) -> float | None:
        return _sum(r.worst_case_cost_usd for r in self.roles)

    @property
    def unknown_prices(self) -> list[str]:
        return [r.key for r in self.roles if r.price_source == "unknown"]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"spec": self.spec_name, "cases": self.cases, "samples": self.samples, "cache": self.cache,
                "calls": self.calls, "expected_cost_usd": self.expected_cost_usd,
                "worst_case_cost_usd": self.worst_case_cost_usd, "unknown_prices": self.unknown_prices,
                "candidates": [asdict(r) for r in self.candidates],
                "judge": asdict(self.judge) if self.judge is not None else None, "notes": self.notes}


def _sum(values: Any) -> float | None:
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def prices(ref: ModelRef) -> tuple[float | None, float | None, str]:
    """USD per 1M input and output tokens, and where they come from (the same sources a run uses)."""
    from benchrun import providers

    if ref.batch:  # answered in a provider batch: at batch prices, as the run charges them
        from benchrun.batch import batch_cost

        local = providers.is_local(ref)
        ep = providers.Endpoint(ref.model, ref.api_base, None, local=local, transport=providers.transport_for(ref))
        pin, pout = batch_cost(ref, ep, 1_000_000, 0), batch_cost(ref, ep, 0, 1_000_000)
        source = "spec" if ref.price is not None else "local" if local else "litellm"
        return (pin, pout, f"{source}, batch") if pin is not None and pout is not None else (None, None, "unknown")
    if ref.price is not None:
        return ref.price.input_per_1m, ref.price.output_per_1m, "spec"
    if providers.is_local(ref):
        return 0.0, 0.0, "local"
    ep = providers.Endpoint(ref.model, ref.api_base, None)
    pin = providers.cost_of(ref, ep, 1_000_000, 0)
    pout = providers.cost_of(ref, ep, 0, 1_000_000)
    if pin is None or pout is None:
        return None, None, "unknown"
    return pin, pout, "litellm"


def _cost(pin: float | None, pout: float | None, prompt: int | None, completion: int | None) -> float | None:
    if pin is None or pout is None or prompt is None or completion is None:
        return None
    return (prompt * pin + completion * pout) / 1_000_000


def completion_history(ledger: Ledger, runs: int = HISTORY_RUNS) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Completion tokens per answer by model string, and per judge call by judge model, over recent runs."""
    answers: dict[str, list[int]] = {}
    verdicts: dict[str, list[int]] = {}
    for run in ledger.list_runs(runs):
        for r in ledger.results(run.id):
            if r.response_text is not None and r.error is None:
                answers.setdefault(r.model, []).append(int(r.completion_tokens or 0))
            if r.judge_completion_tokens is not None:
                verdicts.setdefault(run.judge_model, []).append(
                    round(r.judge_completion_tokens / (1 + (r.judge_reasks or 0))))
    return answers, verdicts


def _mean(xs: list[int] | None) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _judge_tokens(calls: int, fixed: int, answers_expected: float | None, answers_worst: int | None,
                  mean_verdict: float | None, j_max: int | None) -> tuple[int | None, int | None, int | None, int | None]:
    """A judge's prompt and completion tokens, expected and worst case, over ``calls`` calls whose prompts have
    ``fixed`` tokens besides the answers they hold (None: unknown). Worst case: each verdict re-asked once;
    the re-ask repeats the prompt and carries the first reply."""
    prompt_exp = fixed + round(answers_expected) if answers_expected is not None else None
    ct_exp = round(mean_verdict * calls) if mean_verdict is not None else (0 if not calls else None)
    prompt_worst = 2 * (fixed + answers_worst) + j_max * calls if answers_worst is not None and j_max is not None \
        else None
    ct_worst = 2 * j_max * calls if j_max is not None else (0 if not calls else None)
    if not calls:
        prompt_worst, ct_worst = 0, 0
    return prompt_exp, ct_exp, prompt_worst, ct_worst


def pairwise_verdict_history(ledger: Ledger, judge_model: str, runs: int = HISTORY_RUNS) -> list[int]:
    """Completion tokens per pairwise verdict (one order, re-asks averaged out) of ``judge_model`` in recent runs."""
    out: list[int] = []
    for run in ledger.list_runs(runs):
        for j in ledger.pair_judgements(run.id):
            if j.judge_model == judge_model and j.completion_tokens is not None:
                out.append(round(j.completion_tokens / (1 + (j.reasks or 0))))
    return out


def _pairwise_judge(loaded: LoadedSpec, ledger: Ledger, cache: bool, known: dict[tuple[str, str], str],
                    lengths: dict[str, tuple[float | None, int | None]]) -> RoleEstimate:
    """The pairwise judge (``judge.mode: pairwise``): both orders of every scheduled pair (`pairwise_run.schedule`),
    counted like the pointwise judge. A call's prompt is the pairwise prompt with the two answers: exact (and
    looked up in the cache) when both answers are cached, else its fixed part plus each unknown answer's
    expected length (the candidate's recorded mean) or, for the worst case, its ``max_tokens``; the worst
    case re-asks every verdict once, as the run's budget gate assumes (`pairwise_run._worst_case`)."""
    from benchrun import providers
    from benchrun.hashing import cache_key
    from benchrun.pairwise_run import pairwise_params, schedule
    from benchrun.scoring.pairwise import pairwise_messages

    spec, rubric, judge = loaded.spec, loaded.rubric, loaded.spec.judge
    assert judge is not None and rubric is not None
    params = pairwise_params(judge)
    j_max = params.get("max_tokens")
    cases = loaded.cases()
    plan = schedule([c.key for c in spec.candidates], [c.id for c in cases], judge)
    calls = cached = fixed = 0
    answers_expected: float | None = 0.0
    answers_worst: int | None = 0
    for case in cases:
        for a, b in plan[case.id]:
            for x, y in ((a, b), (b, a)):
                tx, ty = known.get((case.id, x)), known.get((case.id, y))
                msgs = pairwise_messages(rubric, case, tx or "", ty or "")
                if tx is not None and ty is not None and cache and ledger.cache_get(
                        cache_key(judge, msgs, params, 0, "pairwise")) is not None:
                    cached += 1
                    continue
                calls += 1
                fixed += providers.count_message_tokens(msgs)
                for side, text in ((x, tx), (y, ty)):
                    if text is not None:
                        continue
                    mean_len, max_len = lengths[side]
                    answers_expected = None if answers_expected is None or mean_len is None else \
                        answers_expected + mean_len
                    answers_worst = None if answers_worst is None or max_len is None else answers_worst + max_len
    jin, jout, jsource = prices(judge)
    hist = pairwise_verdict_history(ledger, judge.model)
    mean_v = _mean(hist)
    prompt_exp, ct_exp, prompt_worst, ct_worst = _judge_tokens(calls, fixed, answers_expected, answers_worst, mean_v,
                                                               j_max)
    n_pairs = sum(len(p) for p in plan.values())
    basis = (f"pairwise judge: {n_pairs} pair(s) x 2 orders; "
             + (f"mean of {len(hist)} recorded pairwise verdict(s) of {judge.model}: {mean_v:.1f} tokens"
                if mean_v is not None else f"no recorded pairwise verdict of {judge.model} in the ledger's last "
                f"{HISTORY_RUNS} runs"))
    if answers_expected is None:
        basis += "; the judge's prompt holds answers of unknown length"
    return RoleEstimate(
        key="judge", model=judge.model, calls=calls, cached_calls=cached, reask_calls_worst=calls,
        prompt_tokens=prompt_exp if prompt_exp is not None else fixed, prompt_tokens_worst=prompt_worst,
        completion_tokens_expected=ct_exp, completion_tokens_worst=ct_worst, expected_basis=basis,
        prompt_tokens_without_answers=answers_expected is None, price_source=jsource, input_per_1m=jin,
        output_per_1m=jout, expected_cost_usd=_cost(jin, jout, prompt_exp, ct_exp),
        worst_case_cost_usd=_cost(jin, jout, prompt_worst, ct_worst))


def estimate_run(loaded: LoadedSpec, ledger: Ledger, use_cache: bool = True) -> Estimate:
    """Count the calls, tokens and cost of a run of ``loaded`` (see the module docstring)."""
    from benchrun import providers, runner
    from benchrun.scoring import judge as judge_mod

    spec, rubric = loaded.spec, loaded.rubric
    cases = loaded.cases()
    cache = use_cache and spec.cache
    answers_hist, verdicts_hist = completion_history(ledger)
    jparams = runner.judge_params(loaded)
    j_max = jparams.get("max_tokens")
    has_judge = spec.judge is not None and rubric is not None
    jin, jout, jsource = prices(spec.judge) if spec.judge is not None else (None, None, "unknown")
    j_calls = j_cached = 0
    j_fixed = 0  # judge prompt tokens without the answer, over the judge calls to make
    j_answer_expected: float = 0.0
    j_answer_worst: int | None = 0
    cand_out: list[RoleEstimate] = []
    notes: list[str] = []
    known: dict[tuple[str, str], str] = {}  # (case id, candidate key): the cached answer (the pairwise judge's input)
    lengths: dict[str, tuple[float | None, int | None]] = {}  # candidate key: answer length expected, at most
    for cand in spec.candidates:
        params = spec.sampling_for(cand).as_params()
        c_max = params.get("max_tokens")
        mean_ct = _mean(answers_hist.get(cand.model))
        lengths[cand.key] = (mean_ct, c_max)
        calls = cached = prompt = 0
        for base in cases:
            judged = has_judge and loaded.judged(base)
            jfix = providers.count_message_tokens(judge_mod.judge_messages(rubric, base, "")) if judged else 0
            base_msgs = runner.candidate_messages(loaded, cand, base)
            for i in range(spec.samples_per_case):
                case = loaded.case_for_sample(base, i)
                msgs = base_msgs if case is base else runner.candidate_messages(loaded, cand, case)
                hit = ledger.cache_get(runner.cache_key(cand, msgs, params, i, "candidate")) if cache else None
                if hit is not None and hit.get("text") is not None:
                    cached += 1
                    if i == 0:
                        known[(base.id, cand.key)] = hit["text"]
                    if not judged:
                        continue
                    jmsgs = judge_mod.judge_messages(rubric, case, hit["text"])
                    if ledger.cache_get(runner.cache_key(spec.judge, jmsgs, jparams, 0, "judge")) is not None:
                        j_cached += 1
                    else:  # the answer is known: the judge prompt is exact
                        j_calls += 1
                        j_fixed += providers.count_message_tokens(jmsgs)
                    continue
                calls += 1
                prompt += providers.count_message_tokens(msgs)
                if not judged:
                    continue
                j_calls += 1
                j_fixed += jfix
                j_answer_expected += mean_ct if mean_ct is not None else 0.0
                j_answer_worst = None if j_answer_worst is None or c_max is None else j_answer_worst + c_max
        if mean_ct is None and calls and has_judge and any(loaded.judged(c) for c in cases):
            j_answer_expected = float("nan")  # unknown answer length: the judge's expectation is unknown too
        pin, pout, source = prices(cand)
        ct_exp = round(mean_ct * calls) if mean_ct is not None else (0 if not calls else None)
        ct_worst = c_max * calls if c_max is not None else (0 if not calls else None)
        basis = (f"mean of {len(answers_hist[cand.model])} recorded answer(s) of {cand.model}: {mean_ct:.1f} tokens"
                 if mean_ct is not None else f"no recorded answer of {cand.model} in the ledger's last "
                 f"{HISTORY_RUNS} runs: the answer length is unknown")
        cand_out.append(RoleEstimate(
            key=cand.key, model=cand.model, calls=calls, cached_calls=cached, reask_calls_worst=0,
            prompt_tokens=prompt, prompt_tokens_worst=prompt, completion_tokens_expected=ct_exp,
            completion_tokens_worst=ct_worst, expected_basis=basis, prompt_tokens_without_answers=False,
            price_source=source, input_per_1m=pin,
            output_per_1m=pout, expected_cost_usd=_cost(pin, pout, prompt, ct_exp),
            worst_case_cost_usd=_cost(pin, pout, prompt, ct_worst),
        ))
    judge_model = spec.judge.model if spec.judge is not None else ""
    mean_jt = _mean(verdicts_hist.get(judge_model))
    answers_known = j_answer_expected == j_answer_expected  # not NaN
    j_prompt_exp, j_ct_exp, j_prompt_worst, j_ct_worst = _judge_tokens(
        j_calls, j_fixed, j_answer_expected if answers_known else None, j_answer_worst, mean_jt, j_max)
    j_basis = (f"mean of {len(verdicts_hist[judge_model])} recorded verdict(s) of {judge_model}: "
               f"{mean_jt:.1f} tokens" if mean_jt is not None else
               f"no recorded verdict of {judge_model} in the ledger's last {HISTORY_RUNS} runs")
    if not answers_known:
        j_basis += "; the judge's prompt holds answers of unknown length"
    judge = None if not has_judge else RoleEstimate(
        key="judge", model=judge_model, calls=j_calls, cached_calls=j_cached, reask_calls_worst=j_calls,
        prompt_tokens=j_fixed + (round(j_answer_expected) if answers_known else 0),
        prompt_tokens_worst=j_prompt_worst, completion_tokens_expected=j_ct_exp, completion_tokens_worst=j_ct_worst,
        expected_basis=j_basis, prompt_tokens_without_answers=not answers_known, price_source=jsource,
        input_per_1m=jin, output_per_1m=jout,
        expected_cost_usd=_cost(jin, jout, j_prompt_exp, j_ct_exp),
        worst_case_cost_usd=_cost(jin, jout, j_prompt_worst, j_ct_worst),
    )
    if judge is not None and spec.judge is not None and spec.judge.pairwise:
        judge = _pairwise_judge(loaded, ledger, cache, known, lengths)
    if (has_judge and j_max is None) or any(spec.sampling_for(c).as_params().get("max_tokens") is None
                                            for c in spec.candidates):
        notes.append("a model without max_tokens has no worst case: set sampling.max_tokens (and the judge's) to "
                     "bound it")
    if not has_judge:
        notes.append("scored by rules only: no judge calls")
    notes.append("tokens counted with tiktoken cl100k_base; providers with other tokenizers bill somewhat different "
                 "counts")
    if spec.budget_usd is not None:
        notes.append(f"the spec's budget_usd {spec.budget_usd} stops the run before it can spend more")
    return Estimate(spec_name=spec.name, cases=len(cases), samples=spec.samples_per_case, candidates=cand_out, judge=judge,
                    cache=cache, notes=notes)
