"""Glue for "can we trust the judge?": ledger rows in, pure analyses, reports stored.

Reads a run from the ledger, calls the pure functions of `benchrun.labels`,
`benchrun.analysis.calibration` and `benchrun.analysis.bias`, makes the judge
calls the probes need (through `benchrun.scoring.pairwise.CachedCaller`, i.e.
`providers.complete` and the ledger's cache) and stores every result in the
ledger as a report (kinds ``labels``, ``calibration``, ``bias_position``,
``bias_verbosity``). Returns plain dicts; printing is the CLI's job.

Item ids are ``blind_item_id(run_id, result.id)``: opaque, stable, and free of
model names, so a labelling template never reveals who wrote an answer.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from benchrun.errors import RunAborted, UsageError
from benchrun.hashing import content_hash
from benchrun.io import csv_cell_out, csv_writer
from benchrun.ledger import Ledger
from benchrun.ledger.tables import Result, Run
from benchrun.spec import Case, LoadedSpec, ModelRef, Rubric

if TYPE_CHECKING:
    from benchrun.labels import Label, LabelSet

T = TypeVar("T")

STRATA_KEYS = ("model", "category", "severity", "judge_pass")
REJUDGE_SAMPLE = 1
"""Sample index of the verbosity probe's second, independent judgement of an unpadded answer
(the runner's own judgement is sample 0, so this one is never served from the run's cache entry)."""


# ----------------------------------------------------------------------------- the run


@dataclass
class RunContext:
    """A recorded run with its spec snapshot (dataset, rubric, judge) and results."""

    run: Run
    loaded: LoadedSpec
    results: list[Result]

    @property
    def rubric(self) -> Rubric:
        assert self.loaded.rubric is not None  # open_run refuses runs without a judge
        return self.loaded.rubric

    def case(self, case_id: str) -> Case:
        return self.loaded.dataset.case(case_id)

    def item_id(self, r: Result) -> str:
        from benchrun.labels import blind_item_id

        return blind_item_id(self.run.id, r.id or 0)

    def answered(self) -> dict[str, Result]:
        """Item id -> result, for every result with a response text."""
        return {self.item_id(r): r for r in self.results if r.response_text is not None}

    def load_labels(self, path: str | Path) -> LabelSet:
        """A human labels file checked against this run: known item ids, their case ids, the rubric's modes."""
        from benchrun.labels import load_labels

        answered = self.answered()
        return load_labels(path, self.rubric.failure_modes, set(answered),
                           {i: r.case_id for i, r in answered.items()})

    def judged(self) -> list[Result]:
        """Results with a response and a judge verdict (what calibration can compare)."""
        return [r for r in self.results if r.response_text is not None and r.judge_score is not None]

    def rule_pass(self, r: Result) -> bool:
        """The rubric's pass rule applied to the judge's recorded verdict (no deterministic rules)."""
        assert r.judge_score is not None
        return self.rubric.pass_rule.evaluate(r.judge_score, bool(r.judge_pass), r.judge_failure_mode or "none")

    def candidate_models(self) -> list[dict[str, Any]]:
        return list(json.loads(self.run.models))

    def model_names(self) -> list[str]:
        """Every string that names a candidate: model strings (with and without provider), aliases, keys."""
        names: set[str] = set()
        for m in self.candidate_models():
            for v in (m.get("key"), m.get("model"), m.get("alias")):
                if v:
                    names.add(str(v))
                    names.add(str(v).rsplit("/", 1)[-1])
        return sorted(names)


def open_run(led: Ledger, run_id: str) -> RunContext:
    run = led.get_run(run_id)
    loaded = LoadedSpec.from_snapshot(json.loads(run.spec_snapshot))
    loaded.path = run.spec_path
    if loaded.rubric is None or loaded.spec.judge is None:
        from benchrun.errors import UsageError

        raise UsageError(f"run {run.id} was scored by rules only: it has no judge or rubric to label, "
                         "calibrate or audit; pick a run with a judge")
    return RunContext(run, loaded, led.results(run.id))


def sanitize(obj: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v) for v in obj]
    return obj


def self_preference_warnings(judge_model: str, candidates: Iterable[tuple[str, str]]) -> list[str]:
    """A warning per candidate (key, model) from the judge's model family (name heuristic)."""
    from benchrun.analysis.bias import model_family, same_family

    out = []
    for key, model in candidates:
        if same_family(judge_model, model):
            out.append(
                f"self-preference risk: judge {judge_model} and candidate {key} ({model}) are both "
                f"{model_family(model)} models; a judge may favour its own family. Use a judge from another "
                "family, or calibrate on this candidate's answers"
            )
    return out


# ----------------------------------------------------------------------------- labels


def _hidden_names(ctx: RunContext) -> list[str]:
    """Names the template must not contain in its ids.

    Blind item ids are 12 hex digits, so a name made only of hex letters (an alias such as
    "bad" or "cafe") could appear in one by chance; such names are not checked. Case ids are
    shared by every model and reveal nothing, so names that occur in a case id are not checked
    either (the writer checks case ids as well).
    """
    import re

    case_ids = [c.id.lower() for c in ctx.loaded.dataset.cases]
    out = []
    for name in ctx.model_names():
        low = name.lower()
        if re.fullmatch(r"[0-9a-f\-]*", low):
            continue
        if any(low in cid for cid in case_ids):
            continue
        out.append(name)
    return out


def label_sample(ctx: RunContext, n: int, seed: int = 0) -> tuple[list[Result], int]:
    """The judged results `labels export` puts in its template (and the browser queue shows), in template
    order, and how many strata the run's judged results fall in: a `benchrun.labels.stratified_sample` of
    ``n`` by model, category, severity and the judge's verdict under the rubric's pass rule."""
    from benchrun.labels import stratified_sample

    if n < 1:
        raise UsageError("--sample must be at least 1")
    judged = ctx.judged()
    if not judged:
        raise UsageError(f"run {ctx.run.id} has no judged results to label")
    keys: list[Callable[[Result], Any]] = [
        lambda r: r.model_key, lambda r: r.category, lambda r: r.severity, ctx.rule_pass,
    ]
    return stratified_sample(judged, n, keys, seed), len({tuple(k(r) for k in keys) for r in judged})


def export_labels(ctx: RunContext, n: int, out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write a blind, stratified labelling template of ``n`` judged results of a run."""
    from benchrun.labels import TemplateRow, write_label_template
    from benchrun.scoring.judge import case_input_text

    chosen, strata = label_sample(ctx, n, seed)
    judged = ctx.judged()
    rows = [
        # the whole conversation, as the judge saw it (USER:/ASSISTANT:/USER:), not only the user's turns
        TemplateRow(ctx.item_id(r), r.case_id, case_input_text(ctx.case(r.case_id)), ctx.case(r.case_id).ideal,
                    r.response_text or "")
        for r in chosen
    ]
    try:
        written = write_label_template(out, rows, failure_modes=ctx.rubric.failure_modes, hide=_hidden_names(ctx))
    except ValueError as e:
        raise UsageError(f"cannot write a blind template: {e}") from None
    return {
        "run_id": ctx.run.id, "out": str(out), "written": written, "judged_results": len(judged),
        "strata": strata, "stratified_by": list(STRATA_KEYS), "seed": seed,
    }


def import_labels(led: Ledger, ctx: RunContext, path: str | Path) -> dict[str, Any]:
    """Validate a labels file against a run and its rubric, and record it in the ledger."""
    return record_labels(led, ctx, ctx.load_labels(path), str(path))


def record_labels(led: Ledger, ctx: RunContext, ls: LabelSet, source: str) -> dict[str, Any]:
    """Record validated labels of a run in the ledger: one report of kind ``labels`` (what `labels import`
    stores for a file, and the browser's labelling queue for each answer; ``source`` is the file path, or
    ``browser:ANNOTATOR``)."""
    answered = ctx.answered()
    items = ls.item_ids
    calibratable = sum(1 for i in items if answered[i].judge_score is not None)
    payload = {
        "hash": ls.hash, "path": source, "labels": len(ls), "items": len(items), "annotators": ls.annotators,
        "skipped_blank": ls.skipped_blank, "items_with_judge_verdict": calibratable,
        "rows": [lab.canonical() for lab in ls.labels],
    }
    summary = (f"{len(ls)} label(s) of {len(items)} item(s) by {len(ls.annotators)} annotator(s), "
               f"hash {ls.hash[:12]}")
    rid = led.add_report(
        "labels", payload, run_id=ctx.run.id, dataset_hash=ctx.run.dataset_hash, judge_model=ctx.run.judge_model,
        judge_prompt_hash=ctx.run.judge_prompt_hash, rubric_hash=ctx.run.rubric_hash, subject=ls.hash,
        summary=summary,
    )
    out = {k: v for k, v in payload.items() if k != "rows"}
    return {"report_id": rid, "run_id": ctx.run.id, "summary": summary, **out}


def stored_labels(led: Ledger, ctx: RunContext) -> list[Label]:
    """Every label of the run recorded in the ledger (`labels import` files and browser answers, i.e. the
    ``labels`` reports of the run), one per (item, annotator): the most recently recorded one wins, so an
    annotator who answers an item again replaces their earlier label. Oldest first."""
    from benchrun.labels import Label

    latest: dict[tuple[str, str], Label] = {}
    for rep in reversed(led.reports("labels", run_id=ctx.run.id)):  # reports() is newest first
        for row in json.loads(rep.payload).get("rows", []):
            lab = Label(**row)
            latest.pop((lab.item_id, lab.annotator), None)
            latest[(lab.item_id, lab.annotator)] = lab
    return list(latest.values())


def export_recorded_labels(led: Ledger, ctx: RunContext, out: str | Path) -> dict[str, Any]:
    """Write every label recorded for the run (`stored_labels`) as a labels CSV that `labels import` and
    `calibrate --labels` read back unchanged (same content hash); cells are quoted and formula-guarded."""
    from benchrun.labels import FIELDS, labels_hash

    labels = stored_labels(led, ctx)
    if not labels:
        raise UsageError(f"run {ctx.run.id} has no recorded labels; label it in `benchrun view` or `labels import` first")
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8", newline="") as fh:
        w = csv_writer(fh)
        w.writerow(FIELDS)
        for lab in labels:
            row = lab.canonical()
            row["human_pass"] = "yes" if lab.human_pass else "no"
            w.writerow([csv_cell_out("" if row[k] is None else str(row[k])) for k in FIELDS])
    return {"run_id": ctx.run.id, "out": str(p), "written": len(labels), "hash": labels_hash(labels),
            "annotators": sorted({lab.annotator for lab in labels})}


def run_verdicts(ctx: RunContext, item_ids: Iterable[str]) -> dict[str, Any]:
    """The run's recorded judge verdict on each item that has one (`JudgeVerdict`: score, the rubric's pass
    rule applied to it, failure mode): what calibration compares the human labels with."""
    from benchrun.analysis.calibration import JudgeVerdict

    answered = ctx.answered()
    out: dict[str, Any] = {}
    for item_id in item_ids:
        r = answered.get(item_id)
        if r is not None and r.judge_score is not None:
            out[item_id] = JudgeVerdict(r.judge_score, ctx.rule_pass(r), r.judge_failure_mode)
    return out


# ----------------------------------------------------------------------------- judge calls


def judge_ref(ctx: RunContext, judge: str | None, api_base: str | None, api_key_env: str | None) -> ModelRef:
    """The run's judge, or another judge given on the command line."""
    run_judge = ctx.loaded.spec.judge
    if judge is None or (judge == run_judge.model and api_base is None and api_key_env is None):
        if api_base is not None or api_key_env is not None:
            raise UsageError("--api-base / --api-key-env need --judge MODEL")
        return run_judge
    from pydantic import ValidationError

    from benchrun.spec import _format_validation_error

    try:
        return ModelRef(model=judge, api_base=api_base, api_key_env=api_key_env)
    except ValidationError as e:  # str(e) would echo the value, which may be a key pasted in the wrong option
        raise UsageError(f"--judge / --api-base / --api-key-env: {_format_validation_error(e)[1]}") from None


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run judge calls; stop an embedded local model we may have started."""
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    finally:
        local_model = sys.modules.get("benchrun.local_model")
        if local_model is not None:
            local_model.stop_all()


def make_caller(led: Ledger, ctx: RunContext, ref: ModelRef, use_cache: bool = True) -> Any:
    from benchrun import providers
    from benchrun.runner import judge_params
    from benchrun.scoring.pairwise import CachedCaller

    providers.collect_env_secrets()
    ep = providers.resolve(ref, "--judge" if ref is not ctx.loaded.spec.judge else (ctx.loaded.path or "spec"))
    spec = ctx.loaded.spec
    return CachedCaller(
        ref=ref, endpoint=ep, params=judge_params(ctx.loaded), cache=led, timeout_s=spec.timeout_s,
        retries=spec.retries, use_cache=use_cache,
        concurrency=(ref.concurrency or spec.concurrency.per_model),
    )


async def judge_answer(call: Any, rubric: Rubric, case: Case, response: str, sample: int = 0) -> tuple[Any, str | None]:
    """Judge one answer exactly as the runner does (same messages, one re-ask); (verdict | None, error).

    ``sample`` > 0 asks for an independent judgement of the same answer (a different cache key;
    the runner's own judgement is sample 0)."""
    from benchrun.scoring import judge as judge_mod

    messages = judge_mod.judge_messages(rubric, case, response)
    res = await call(messages, "judge", sample)
    if not res.ok:
        return None, f"judge call failed: {res.error}"
    try:
        return judge_mod.parse_verdict(rubric, res.text), None
    except judge_mod.JudgeFormatError as e:
        res2 = await call(judge_mod.reask_messages(messages, res.text, str(e), rubric), "judge", sample)
        if not res2.ok:
            return None, f"judge call failed on re-ask: {res2.error}"
        try:
            return judge_mod.parse_verdict(rubric, res2.text), None
        except judge_mod.JudgeFormatError as e2:
            return None, f"judge answer invalid after one re-ask: {e2}"


# ----------------------------------------------------------------------------- calibration


def calibrate_run(
    led: Ledger,
    ctx: RunContext,
    labels_path: str | Path,
    *,
    threshold: float = 0.6,
    judge: str | None = None,
    api_base: str | None = None,
    api_key_env: str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Calibrate a judge against human labels of a run's results and store the report.

    Without ``judge`` the run's recorded verdicts are used; with it, the labelled items are
    re-judged by that model with the run's rubric snapshot.
    """
    from benchrun.analysis.calibration import (
        MIN_ITEMS,
        JudgeVerdict,
        TooFewLabels,
        aggregate_annotators,
        build_pairs,
        calibrate,
    )
    if not 0 < threshold <= 1:
        raise UsageError("--threshold must be in (0, 1]")
    rubric = ctx.rubric
    answered = ctx.answered()
    ls = ctx.load_labels(labels_path)
    agg = aggregate_annotators(ls.labels)
    ref = judge_ref(ctx, judge, api_base, api_key_env)
    rejudged = ref is not ctx.loaded.spec.judge
    usable = len(agg) if rejudged else sum(1 for i in agg if answered[i].judge_score is not None)
    if usable < MIN_ITEMS:  # refuse before paying for any judge call
        raise TooFewLabels(usable)
    verdicts: dict[str, JudgeVerdict] = {}
    errors: dict[str, str] = {}
    usage: dict[str, Any] | None = None
    if not rejudged:
        verdicts = run_verdicts(ctx, agg)
    else:
        call = make_caller(led, ctx, ref, use_cache)

        async def go() -> None:
            items = list(agg)
            outs = await asyncio.gather(*(
                judge_answer(call, rubric, ctx.case(answered[i].case_id), answered[i].response_text or "")
                for i in items
            ))
            for i, (v, e) in zip(items, outs, strict=True):
                if v is None:
                    errors[i] = e or "no verdict"
                else:
                    verdicts[i] = JudgeVerdict(v.score, v.passed, v.failure_mode)

        run_async(go)
        usage = call.usage()
    pairs, missing = build_pairs(agg, verdicts)
    cands = [(m["key"], m["model"]) for m in ctx.candidate_models()
             if any(answered[i].model_key == m["key"] for i in agg)]
    sp = self_preference_warnings(ref.model, cands)
    report = calibrate(pairs, threshold, annotator_labels=ls.labels)  # raises TooFewLabels below 20
    rd = report.to_dict()
    kappa = report.kappa.value
    iv = report.kappa.interval
    if kappa is None:
        k_txt = "kappa undefined"
    elif iv is not None:
        k_txt = f"kappa {kappa:.2f} (95% CI {iv.low:.2f} to {iv.high:.2f})"
    else:
        k_txt = f"kappa {kappa:.2f}"
    summary = f"{k_txt} on {report.n} labelled items, threshold {threshold}, labels {ls.hash[:12]}"
    payload = sanitize({
        "trusted": report.trusted,
        "kappa": kappa,
        "kappa_interval": None if iv is None else [iv.low, iv.high],
        "n": report.n,
        "verdict": report.verdict,
        "verdict_reason": report.verdict_reason,
        "threshold": threshold,
        "judge_model": ref.model,
        "judge_source": "rejudged" if rejudged else "run verdicts",
        "judge_prompt_hash": rubric.judge_prompt_hash if rejudged else ctx.run.judge_prompt_hash,
        "rubric_hash": ctx.run.rubric_hash,
        "run_id": ctx.run.id,
        "labels_hash": ls.hash,
        "labels_path": str(labels_path),
        "labels": len(ls),
        "annotators": ls.annotators,
        "items_without_verdict": missing,
        "judge_errors": errors,
        "self_preference": sp,
        "usage": usage,
        "report": rd,
    })
    rid = led.add_report(
        "calibration", payload, run_id=ctx.run.id, dataset_hash=ctx.run.dataset_hash, judge_model=ref.model,
        judge_prompt_hash=payload["judge_prompt_hash"], rubric_hash=ctx.run.rubric_hash, subject=ls.hash,
        summary=summary,
    )
    return {"report_id": rid, "summary": summary, **payload}


# ----------------------------------------------------------------------------- position bias


def _position_summary(rep: Any) -> str:
    c = rep.consistency
    fp = rep.first_position_win_rate
    fp_txt = "n/a (all ties)" if fp is None else f"{fp.estimate:.0%}"
    return (f"consistency {c.estimate:.0%} (95% CI {c.low:.0%} to {c.high:.0%}) over {rep.n} pair(s); "
            f"first shown answer wins {fp_txt} of decisive verdicts")


def position_from_file(led: Ledger, path: str | Path, judge: str | None = None) -> dict[str, Any]:
    """Position bias from a file of recorded both-order verdicts."""
    from benchrun.analysis.bias import load_pair_verdicts, position_bias_report

    pairs = load_pair_verdicts(path)
    rep = position_bias_report(pairs)
    file_hash = content_hash([[p.pair_id, p.label, p.verdict_ab, p.verdict_ba_raw] for p in pairs])
    summary = _position_summary(rep)
    payload = sanitize({"source": "verdicts file", "path": str(path), "verdicts_hash": file_hash,
                        "judge_model": judge, "summary": summary, "report": rep.to_dict()})
    rid = led.add_report("bias_position", payload, judge_model=judge, subject=f"file {file_hash[:12]}",
                         summary=summary)
    return {"report_id": rid, **payload}


def _write_pair_verdicts(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8", newline="") as fh:
        fh.write("# label: fill in the better answer in A/B terms (A>B, B>A or tie) to measure accuracy;\n")
        fh.write("# verdict_ba_raw is in displayed positions (A>B there means the answer shown first, B, won)\n")
        w = csv_writer(fh)
        w.writerow(["pair_id", "case_id", "label", "verdict_ab", "verdict_ba_raw"])
        for r in rows:
            cells = (r["pair_id"], r["case_id"], "", r["verdict_ab"], r["verdict_ba_raw"])
            w.writerow(["" if x is None else csv_cell_out(str(x)) for x in cells])


def position_from_run(
    led: Ledger,
    ctx: RunContext,
    key_a: str,
    key_b: str,
    *,
    judge: str | None = None,
    api_base: str | None = None,
    api_key_env: str | None = None,
    use_cache: bool = True,
    save_verdicts: str | Path | None = None,
) -> dict[str, Any]:
    """Judge every (case, sample) answered by both models in both orders; report position bias."""
    from benchrun.analysis.bias import PairVerdict, position_bias_report
    from benchrun.scoring.pairwise import judge_pair, pairwise_prompt_hash

    keys = [m["key"] for m in ctx.candidate_models()]
    for k in (key_a, key_b):
        if k not in keys:
            raise UsageError(f"run {ctx.run.id} has no model '{k}'; its models are: {', '.join(keys)}")
    if key_a == key_b:
        raise UsageError("--a and --b must name two different models")
    by_cell = {(r.model_key, r.case_id, r.sample_index): r for r in ctx.results if r.response_text is not None}
    cells = sorted({(c, s) for (m, c, s) in by_cell if m == key_a} & {(c, s) for (m, c, s) in by_cell if m == key_b})
    if not cells:
        raise UsageError(f"no case was answered by both {key_a} and {key_b} in run {ctx.run.id}")
    ref = judge_ref(ctx, judge, api_base, api_key_env)
    call = make_caller(led, ctx, ref, use_cache)
    rubric = ctx.rubric

    async def go() -> list[Any]:
        return list(await asyncio.gather(*(
            judge_pair(call, rubric, ctx.case(c), by_cell[(key_a, c, s)].response_text or "",
                       by_cell[(key_b, c, s)].response_text or "", both_orders=True)
            for c, s in cells
        )))

    outcomes = run_async(go)
    pairs: list[PairVerdict] = []
    rows: list[dict[str, Any]] = []
    errors: dict[str, list[str]] = {}
    wins_both = {key_a: 0, key_b: 0, "tie": 0}
    wins_first = {key_a: 0, key_b: 0, "tie": 0}
    name = {"A>B": key_a, "B>A": key_b, "tie": "tie"}
    for (c, s), o in zip(cells, outcomes, strict=True):
        pid = f"{c}#{s}"
        if o.verdict_ab is None or o.verdict_ba_raw is None:
            errors[pid] = list(o.errors)
            continue
        pairs.append(PairVerdict(pid, None, o.verdict_ab, o.verdict_ba_raw))
        rows.append({"pair_id": pid, "case_id": c, "sample": s, "verdict_ab": o.verdict_ab,
                     "verdict_ba_raw": o.verdict_ba_raw, "verdict_both_orders": o.verdict})
        wins_both[name[o.verdict]] += 1
        wins_first[name[o.verdict_ab]] += 1
    if not pairs:
        first_err = next(iter(errors.values()), ["?"])
        raise RunAborted(f"the judge produced no usable verdict for any pair ({len(errors)} failed): "
                         f"{first_err[0] if first_err else '?'}")
    rep = position_bias_report(pairs)
    models = {m["key"]: m["model"] for m in ctx.candidate_models()}
    sp = self_preference_warnings(ref.model, [(key_a, models[key_a]), (key_b, models[key_b])])
    if save_verdicts is not None:
        _write_pair_verdicts(save_verdicts, rows)
    summary = _position_summary(rep)
    phash = pairwise_prompt_hash(rubric)
    payload = sanitize({
        "source": "run", "run_id": ctx.run.id, "a": key_a, "b": key_b, "judge_model": ref.model,
        "pairwise_prompt_hash": phash, "summary": summary, "report": rep.to_dict(),
        "wins_both_orders": wins_both, "wins_first_order_only": wins_first,
        "spec_both_orders": ctx.loaded.spec.judge.both_orders, "pairs": rows, "errors": errors,
        "self_preference": sp, "usage": call.usage(),
        "saved_verdicts": None if save_verdicts is None else str(save_verdicts),
    })
    rid = led.add_report(
        "bias_position", payload, run_id=ctx.run.id, dataset_hash=ctx.run.dataset_hash, judge_model=ref.model,
        judge_prompt_hash=phash, rubric_hash=ctx.run.rubric_hash, subject=f"{key_a} vs {key_b}", summary=summary,
    )
    return {"report_id": rid, **payload}


# ----------------------------------------------------------------------------- verbosity bias


def verbosity_from_run(
    led: Ledger,
    ctx: RunContext,
    *,
    sample: int = 30,
    seed: int = 0,
    labels_path: str | Path | None = None,
    judge: str | None = None,
    api_base: str | None = None,
    api_key_env: str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Pad a stratified sample of answers (no new information), re-judge, report score inflation.

    Per answer: the judge scores the unpadded answer (as in the run: usually a cache hit), scores
    it once more as an independent judgement (``REJUDGE_SAMPLE``: the noise floor, same judge and
    sampling), and scores each padded variant; `verbosity_report` then asks whether padded
    scores beat unpadded ones more often than the judge's noise explains.
    With ``labels_path`` the sample is drawn from the labelled items, and their human scores
    give the rank-based partial correlation of answer length and judge score.
    """
    from benchrun.analysis.bias import VerbosityItem, pad_variants, verbosity_report
    from benchrun.analysis.calibration import aggregate_annotators
    from benchrun.labels import stratified_sample

    if sample < 1:
        raise UsageError("--sample must be at least 1")
    rubric = ctx.rubric
    pool = [r for r in ctx.results if r.response_text is not None and r.response_text.strip()]
    human: dict[str, int] = {}
    labels_hash = None
    if labels_path is not None:
        ls = ctx.load_labels(labels_path)
        labels_hash = ls.hash
        human = {k: v.human_score for k, v in aggregate_annotators(ls.labels).items()}
        pool = [r for r in pool if ctx.item_id(r) in human]
    if not pool:
        raise UsageError(f"run {ctx.run.id} has no answers to pad" + (" among the labelled items" if human else ""))
    keys: list[Callable[[Result], Any]] = [
        lambda r: r.model_key, lambda r: r.category, lambda r: r.severity,
        lambda r: None if r.judge_score is None else ctx.rule_pass(r),
    ]
    chosen = stratified_sample(pool, sample, keys, seed)
    ref = judge_ref(ctx, judge, api_base, api_key_env)
    call = make_caller(led, ctx, ref, use_cache)

    async def one(r: Result) -> tuple[Any, dict[str, Any], list[str]]:
        case = ctx.case(r.case_id)
        text = r.response_text or ""
        variants = pad_variants(case.input_text(), text)
        names = ["original", "rejudged", *variants]
        texts = [text, text, *variants.values()]
        samples = [0, REJUDGE_SAMPLE, *([0] * len(variants))]
        outs = await asyncio.gather(*(judge_answer(call, rubric, case, t, sm) for t, sm in zip(texts, samples,
                                                                                             strict=True)))
        scores = {n: v for n, (v, _) in zip(names, outs, strict=True) if v is not None}
        errs = [f"{n}: {e}" for n, (v, e) in zip(names, outs, strict=True) if v is None]
        return r, scores, errs

    async def go() -> list[tuple[Any, dict[str, Any], list[str]]]:
        return list(await asyncio.gather(*(one(r) for r in chosen)))

    judged = run_async(go)
    items: list[VerbosityItem] = []
    rows: list[dict[str, Any]] = []
    errors: dict[str, list[str]] = {}
    for r, scores, errs in judged:
        iid = ctx.item_id(r)
        if errs:
            errors[iid] = errs
        orig = scores.get("original")
        again = scores.get("rejudged")
        padded = {k: float(v.score) for k, v in scores.items() if k not in ("original", "rejudged")}
        if orig is None or not padded:
            continue
        words = len((r.response_text or "").split())
        rejudged = () if again is None else (float(again.score),)
        items.append(VerbosityItem(iid, float(orig.score), padded, human.get(iid), words if iid in human else None,
                                   rejudged))
        rows.append({"item_id": iid, "case_id": r.case_id, "original_score": orig.score,
                     "rejudged_score": None if again is None else again.score, "padded_scores": padded,
                     "original_passed": orig.passed,
                     "padded_passed": {k: v.passed for k, v in scores.items() if k not in ("original", "rejudged")},
                     "human_score": human.get(iid), "original_words": words})
    if not items:
        first = next(iter(errors.values()), ["?"])
        raise RunAborted(f"the judge produced no usable scores ({len(errors)} item(s) failed): {first[0]}")
    rep = verbosity_report(items)
    models = {m["key"]: m["model"] for m in ctx.candidate_models()}
    sampled_keys = sorted({r.model_key for r, _, _ in judged})
    sp = self_preference_warnings(ref.model, [(k, models.get(k, k)) for k in sampled_keys])
    sh = rep.padded
    noise = ("noise floor not measured" if rep.noise_floor is None else
             f"re-judging the same answer moved its score on {1 - rep.noise_floor.equal.estimate:.0%}")
    summary = (f"{'FLAGGED' if rep.flagged else 'not flagged'}: padded answers scored higher for "
               f"{sh.higher.estimate:.0%} and lower for {sh.lower.estimate:.0%} of {rep.n} item(s) "
               f"(net {rep.net_rate:+.0%}, one-sided p={rep.p_value:.3g}); {noise}; "
               f"mean inflation {rep.mean_inflation:+.2f} points")
    payload = sanitize({
        "run_id": ctx.run.id, "judge_model": ref.model, "judge_prompt_hash": rubric.judge_prompt_hash,
        "flagged": rep.flagged, "padded_higher": sh.higher.estimate, "padded_lower": sh.lower.estimate,
        "net_rate": rep.net_rate, "p_value": rep.p_value, "summary": summary, "report": rep.to_dict(),
        "sample": sample, "seed": seed, "labels_hash": labels_hash, "items": rows, "errors": errors,
        "self_preference": sp, "usage": call.usage(),
    })
    rid = led.add_report(
        "bias_verbosity", payload, run_id=ctx.run.id, dataset_hash=ctx.run.dataset_hash, judge_model=ref.model,
        judge_prompt_hash=rubric.judge_prompt_hash, rubric_hash=ctx.run.rubric_hash, subject=labels_hash,
        summary=summary,
    )
    return {"report_id": rid, **payload}

