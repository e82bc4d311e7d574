"""The browser labelling queue of a run: the `labels export` sample, one item at a time, blind.

The queue is the stratified sample `benchrun labels export` draws (`judge_trust.label_sample`, same
``n`` and ``seed``), in the same order. Each answer is validated exactly as a labels file row is
(`RunContext.load_labels`: score 1-5, pass, the rubric's failure modes, a known item) and recorded
at once as a ``labels`` report, the record `labels import` makes for a file
(`judge_trust.record_labels`); `judge_trust.stored_labels` reads them all back, so labels from the
browser, a CSV import and the terminal (`labels annotate`, then import) are the same records.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from benchrun import judge_trust as jt
from benchrun.errors import BadInput, UsageError
from benchrun.ledger import Ledger

MAX_NOTE = 2000
MAX_ANNOTATOR = 80


def _item_view(ctx: jt.RunContext, r: Any) -> dict[str, Any]:
    """What the annotator sees before answering: no model name, no judge verdict."""
    from benchrun.scoring.judge import case_input_text

    case = ctx.case(r.case_id)
    return {"item_id": ctx.item_id(r), "case_id": r.case_id, "input": case_input_text(case), "ideal": case.ideal,
            "response": r.response_text or ""}


def reveal(ctx: jt.RunContext, r: Any) -> dict[str, Any]:
    """Who wrote the answer and what the judge said (shown once the annotator has answered)."""
    return {"model_key": r.model_key, "judge_score": r.judge_score,
            "judge_pass": ctx.rule_pass(r) if r.judge_score is not None else None,
            "judge_failure_mode": r.judge_failure_mode, "judge_reason": r.judge_reason}


def reveal_item(store: Ledger, run_id: str, item_id: str) -> dict[str, Any]:
    """The reveal of one item, for an annotator who chooses to see it before answering."""
    ctx = jt.open_run(store, run_id)
    r = ctx.answered().get(item_id)
    if r is None:
        raise BadInput(None, f"item {item_id}", "unknown item id: it matches no result of this run")
    return reveal(ctx, r)


def rubric_view(ctx: jt.RunContext) -> dict[str, Any]:
    rb = ctx.rubric
    return {"name": rb.name, "version": rb.version,
            "criteria": [{"name": c.name, "description": c.description} for c in rb.criteria],
            "scale": {str(k): v for k, v in sorted(rb.scale.items())}, "failure_modes": list(rb.failure_modes)}


def agreement(ctx: jt.RunContext, labels: list[Any]) -> dict[str, Any]:
    """Judge-human agreement so far on pass/fail: Cohen's kappa with its Jeffreys 95% interval
    (`analysis.calibration.pass_kappa`, the number `calibrate` decides trust on), over the labelled items
    with a judge verdict (annotators aggregated as `calibrate` does)."""
    from benchrun.analysis.calibration import MIN_ITEMS, aggregate_annotators, build_pairs, pass_kappa

    agg = aggregate_annotators(labels)
    pairs, missing = build_pairs(agg, jt.run_verdicts(ctx, agg))
    k = pass_kappa(pairs)
    iv = k.interval
    return {"n": len(pairs), "without_verdict": len(missing), "kappa": k.value,
            "low": None if iv is None else iv.low, "high": None if iv is None else iv.high,
            "method": k.method, "note": k.note, "calibrate_needs": MIN_ITEMS}


def queue(store: Ledger, run_id: str, annotator: str | None, n: int = 100, seed: int = 0,
          per_item: int | None = None) -> dict[str, Any]:
    """The queue for ``annotator``: the next item they have not labelled (None when done), progress, rubric
    and the agreement so far over every annotator's labels. With ``per_item`` an item that already has that
    many annotators (others) is not shown again, so a team shares the queue."""
    if per_item is not None and per_item < 1:
        raise UsageError("per_item must be at least 1")
    ctx = jt.open_run(store, run_id)
    sample, _ = jt.label_sample(ctx, n, seed)
    labels = jt.stored_labels(store, ctx)
    queued = [ctx.item_id(r) for r in sample]
    mine = {lab.item_id for lab in labels if annotator and lab.annotator == annotator}
    done_by_me = len(mine & set(queued))
    if per_item is not None:
        others: dict[str, set[str]] = {}
        for lab in labels:
            if lab.annotator != annotator:
                others.setdefault(lab.item_id, set()).add(lab.annotator)
        mine |= {i for i, who in others.items() if len(who) >= per_item}
    todo = [r for r in sample if ctx.item_id(r) not in mine]
    in_queue = set(queued)
    return {
        "run_id": ctx.run.id, "annotator": annotator, "n": n, "seed": seed, "per_item": per_item,
        "item": _item_view(ctx, todo[0]) if annotator and todo else None,
        "position": len(queued) - len(todo) + 1 if todo else None,
        "progress": {"done": done_by_me, "total": len(queued), "left": len(todo),
                     "labels_in_queue": sum(1 for lab in labels if lab.item_id in in_queue),
                     "labels_recorded": len(labels), "annotators": sorted({lab.annotator for lab in labels})},
        "agreement": agreement(ctx, labels), "rubric": rubric_view(ctx),
    }


def _text_field(body: dict[str, Any], key: str, limit: int) -> str:
    v = body.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise BadInput(None, key, f"'{key}' must be text")
    if len(v) > limit:
        raise BadInput(None, key, f"'{key}' is longer than {limit} characters; shorten it")
    return v.strip()


def save(store: Ledger, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Validate one answer like a labels-file row and record it; returns the reveal, queue state and record."""
    ctx = jt.open_run(store, run_id)
    annotator = _text_field(body, "annotator", MAX_ANNOTATOR)
    if not annotator:
        raise BadInput(None, "annotator", "give your name or initials before labelling")
    item_id = _text_field(body, "item_id", 64)
    answered = ctx.answered()
    r = answered.get(item_id)
    if r is None:
        raise BadInput(None, f"item {item_id}", "unknown item id: it matches no result of this run")
    row = {"item_id": item_id, "case_id": r.case_id, "annotator": annotator, "human_score": body.get("human_score"),
           "human_pass": body.get("human_pass"), "failure_mode": _text_field(body, "failure_mode", 200) or None,
           "note": _text_field(body, "note", MAX_NOTE) or None}
    if not isinstance(row["human_score"], (int, str)) or not isinstance(row["human_pass"], (bool, str)):
        raise BadInput(None, f"item {item_id}", "give a score 1-5 and pass or fail")
    with tempfile.TemporaryDirectory(prefix="benchrun-view-") as tmp:
        path = Path(tmp) / "label.jsonl"
        path.write_text(json.dumps(row) + "\n", encoding="utf-8")
        try:
            ls = ctx.load_labels(path)
        except BadInput as e:  # the same checks as a labels file; the temporary file's name says nothing
            raise BadInput(None, e.where, e.what) from None
    info = jt.record_labels(store, ctx, ls, f"browser:{annotator}")
    return {"saved": info, "reveal": reveal(ctx, r)}


def calibrate_now(store: Ledger, run_id: str, threshold: float = 0.6) -> dict[str, Any]:
    """Run `benchrun calibrate` on every label of the run recorded in the ledger (the run's verdicts) and
    store the calibration, as the CLI does (`api.calibrate` on a JSONL labels file written for it)."""
    from benchrun import api
    from benchrun.labels import labels_hash

    ctx = jt.open_run(store, run_id)
    labels = jt.stored_labels(store, ctx)
    if not labels:
        raise UsageError(f"run {ctx.run.id} has no labels yet; label some items first")
    with tempfile.TemporaryDirectory(prefix="benchrun-view-") as tmp:
        path = Path(tmp) / f"labels-{ctx.run.id}-{labels_hash(labels)[:12]}.jsonl"
        path.write_text("".join(json.dumps(lab.canonical()) + "\n" for lab in labels), encoding="utf-8")
        try:
            cal = api.calibrate(ctx.run.id, path, threshold=threshold, ledger=store)
        except BadInput as e:
            raise BadInput(None, e.where, e.what) from None
    return jt.sanitize(cal.data)


# ----------------------------------------------------------------------------- pairwise runs: A / B / tie


def is_pairwise(store: Ledger, run_id: str) -> bool:
    """Whether the run was judged pairwise (``judge.mode: pairwise``): its queue asks A, B or tie."""
    from benchrun.spec import LoadedSpec

    judge = LoadedSpec.from_snapshot(json.loads(store.get_run(run_id).spec_snapshot)).spec.judge
    return judge is not None and bool(judge.pairwise)


def pairwise_queue(store: Ledger, run_id: str, annotator: str | None, n: int = 100, seed: int = 0) -> dict[str, Any]:
    """The pairwise queue for ``annotator``: the sample `labels export --pairwise` writes (same ``n`` and
    ``seed``, same order, same blind A/B order per item), the next pair they have not voted on, progress and
    the judge-vs-people agreement so far (what `benchrun arena RUN_ID` reports; None without votes)."""
    from benchrun import pairwise_labels as pl
    from benchrun.scoring.judge import case_input_text
    from benchrun.spec import LoadedSpec

    run = store.get_run(run_id)
    items, chosen = pl.pairwise_sample(store, run, n, seed)
    votes = pl.latest_votes(store, run)
    mine = {v["item_id"] for v in votes if annotator and v["annotator"] == annotator}
    todo = [i for i in chosen if i not in mine]
    item = None
    if annotator and todo:
        b = items[todo[0]]
        case = LoadedSpec.from_snapshot(json.loads(run.spec_snapshot)).dataset.case(b.case_id or "")
        text = {r.model_key: r.response_text or "" for r in store.results(run.id) if r.case_id == case.id}
        first, second = pl.shown_order(run.id, todo[0], b)
        item = {"item_id": todo[0], "case_id": case.id, "input": case_input_text(case), "ideal": case.ideal,
                "response_a": text.get(first, ""), "response_b": text.get(second, "")}
    agreement = None
    hv = pl.human_votes(store, run)
    if hv is not None and hv[1]:
        from benchrun.analysis.pairwise_agreement import pairwise_agreement
        from benchrun.report.arena import agreement_payload

        agreement = agreement_payload(pairwise_agreement(hv[1]))
    in_queue = set(chosen)
    rb = LoadedSpec.from_snapshot(json.loads(run.spec_snapshot)).rubric
    rubric = None if rb is None else {"name": rb.name, "version": rb.version,
                                      "criteria": [{"name": c.name, "description": c.description} for c in rb.criteria]}
    return {"run_id": run.id, "pairwise": True, "rubric": rubric, "annotator": annotator, "n": n, "seed": seed, "item": item,
            "position": len(chosen) - len(todo) + 1 if todo else None,
            "progress": {"done": len(mine & in_queue), "total": len(chosen), "left": len(todo),
                         "votes_in_queue": sum(1 for v in votes if v["item_id"] in in_queue),
                         "votes_recorded": len(votes), "annotators": sorted({v["annotator"] for v in votes})},
            "human_agreement": agreement}


def pairwise_save(store: Ledger, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Record one A / B / tie vote: the run's latest votes with this annotator's vote on this pair replaced,
    as a new ``pairwise_labels`` report (the record `labels import` writes for a pairwise file), so every
    vote is in the ledger at once and `benchrun arena RUN_ID` counts it. Returns the record and who was
    shown as A and B."""
    from benchrun import pairwise_labels as pl

    run = store.get_run(run_id)
    annotator = _text_field(body, "annotator", MAX_ANNOTATOR)
    if not annotator:
        raise BadInput(None, "annotator", "give your name or initials before voting")
    if any(ord(ch) < 32 for ch in annotator):
        raise BadInput(None, "annotator", "the annotator name contains a control character; remove it")
    item_id = _text_field(body, "item_id", 64)
    b = pl.judged_items(store, run).get(item_id)
    if b is None:
        raise BadInput(None, f"item {item_id}", f"not a judged pair of run {run.id}")
    shown = {"a": "A", "b": "B", "tie": "tie"}.get(_text_field(body, "winner", 8).lower())
    if shown is None:
        raise BadInput(None, f"item {item_id}", "winner must be A, B or tie")
    votes = [v for v in pl.latest_votes(store, run) if (v["item_id"], v["annotator"]) != (item_id, annotator)]
    votes.append(pl.vote_record(run.id, item_id, b, shown, annotator))
    info = pl.record_votes(store, run, votes, f"browser:{annotator}")
    first, second = pl.shown_order(run.id, item_id, b)
    return {"saved": info, "reveal": {"A": first, "B": second}}
