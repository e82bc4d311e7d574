"""Human votes on a pairwise run's pairs: the blind template, its import, and the judge's calibration.

`export_pairwise_labels` writes a CSV of pairs to vote on (``benchrun labels export RUN_ID --pairwise``):
columns ``item_id, case_id, input, ideal, response_a, response_b, human_winner, annotator, note``. The
item id is `benchrun.labels.blind_item_id` of (run, case, model_a, model_b); which answer is shown as
"A" is drawn from that id (seeded, so import recomputes it) and never follows the judge's order; no
model name is written. The pairs are a stratified sample over the model pairs
(`benchrun.labels.stratified_sample`).

`import_pairwise_labels` checks a filled-in file (``human_winner`` A, B or tie; ``annotator`` required;
rows with both blank are skipped; one-line `BadInput` with file and line otherwise) and records it in
the ledger as a ``pairwise_labels`` report with the votes in model terms. `human_votes` reads the
latest one back: human battles (`benchrun.analysis.arena.Battle`, judge ``human:NAME``) and the
judge-vs-human agreement (`benchrun.analysis.pairwise_agreement`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchrun.analysis.arena import Battle
from benchrun.errors import BadInput, UsageError
from benchrun.hashing import content_hash
from benchrun.io import csv_cell_out, csv_writer, load_csv
from benchrun.labels import blind_item_id, stratified_sample
from benchrun.pairwise_run import run_battles

if TYPE_CHECKING:
    from benchrun.ledger import Ledger
    from benchrun.ledger.tables import Run

COLUMNS = ("item_id", "case_id", "input", "ideal", "response_a", "response_b", "human_winner", "annotator", "note")
REPORT_KIND = "pairwise_labels"
MAX_NAME = 200


def _shown_swapped(run_id: str, item_id: str) -> bool:
    """Whether model_b's answer is shown as "A" for this item (seeded by the item, so import can recompute it)."""
    return random.Random(f"blind:{run_id}:{item_id}").random() < 0.5


def judged_items(led: Ledger, run: Run) -> dict[str, Battle]:
    """Every pair of the run judged in both orders, by its blind item id."""
    rb = run_battles(run, led.results(run.id), led.pair_judgements(run.id))
    return {blind_item_id(run.id, b.case_id or "", b.model_a, b.model_b): b for b in rb.battles}


def shown_order(run_id: str, item_id: str, b: Battle) -> tuple[str, str]:
    """(model shown as "A", model shown as "B") for this item, blind and seeded by the item."""
    return (b.model_b, b.model_a) if _shown_swapped(run_id, item_id) else (b.model_a, b.model_b)


def pairwise_sample(led: Ledger, run: Run, n: int, seed: int = 0) -> tuple[dict[str, Battle], list[str]]:
    """(every judged pair by item id, the ``n`` item ids to vote on): the stratified sample over the model
    pairs that `labels export --pairwise` writes and the browser queue shows, in that order."""
    import json

    from benchrun.spec import LoadedSpec

    if n < 1:
        raise UsageError("--sample must be at least 1")
    items = judged_items(led, run)
    if not items:
        raise UsageError(f"run {run.id} has no pair judged in both orders to label")
    ids = sorted(items)
    chosen = stratified_sample(ids, n, [lambda i: tuple(sorted((items[i].model_a, items[i].model_b)))], seed)
    loaded = LoadedSpec.from_snapshot(json.loads(run.spec_snapshot))
    names = [m.lower() for c in loaded.spec.candidates for m in (c.key, c.model)]
    leaky = sorted({items[i].case_id or "" for i in chosen if any(nm in (items[i].case_id or "").lower() for nm in names)})
    if leaky:
        raise UsageError(f"case id {leaky[0]!r} contains a model name, so the template would not be blind; "
                         "nothing written")
    return items, chosen


def vote_record(run_id: str, item_id: str, b: Battle, shown: str, annotator: str) -> dict[str, Any]:
    """One vote in model terms from the winner as shown (``A``, ``B`` or ``tie``)."""
    swapped = _shown_swapped(run_id, item_id)
    model = "tie" if shown == "tie" else ("model_a" if (shown == "A") != swapped else "model_b")
    return {"item_id": item_id, "case_id": b.case_id, "model_a": b.model_a, "model_b": b.model_b,
            "winner": model, "annotator": annotator}


def record_votes(led: Ledger, run: Run, votes: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """Record ``votes`` (`vote_record` dicts) as the run's ``pairwise_labels`` report (the latest one is what
    `human_votes` reads); ``source`` is the file or where the votes came from."""
    h = content_hash(sorted(votes, key=lambda v: (v["item_id"], v["annotator"])))
    summary = (f"{len(votes)} vote(s) on {len({v['item_id'] for v in votes})} pair(s) by "
               f"{len({v['annotator'] for v in votes})} annotator(s), hash {h[:12]}")
    rid = led.add_report(REPORT_KIND, {"hash": h, "path": source, "votes": votes}, run_id=run.id,
                         dataset_hash=run.dataset_hash, judge_model=run.judge_model,
                         judge_prompt_hash=run.judge_prompt_hash, rubric_hash=run.rubric_hash, subject=h,
                         summary=summary)
    return {"report_id": rid, "run_id": run.id, "summary": summary, "votes": len(votes), "hash": h}


def latest_votes(led: Ledger, run: Run) -> list[dict[str, Any]]:
    """The votes of the run's latest ``pairwise_labels`` report (empty without one)."""
    import json

    reps = led.reports(REPORT_KIND, run_id=run.id)
    return list(json.loads(reps[0].payload)["votes"]) if reps else []


def export_pairwise_labels(led: Ledger, run: Run, n: int, out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write the blind CSV of ``n`` judged pairs of ``run`` (see the module docstring)."""
    import json

    from benchrun.scoring.judge import case_input_text
    from benchrun.spec import LoadedSpec

    items, chosen = pairwise_sample(led, run, n, seed)
    loaded = LoadedSpec.from_snapshot(json.loads(run.spec_snapshot))
    cases = {c.id: c for c in loaded.dataset.cases}
    text = {(r.case_id, r.model_key): r.response_text or "" for r in led.results(run.id)}
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8", newline="") as fh:
        fh.write("# Which answer is better? human_winner: A, B or tie; annotator: your name or initials (required)\n")
        fh.write("# The order of the two answers is random. Do not look up which model wrote them. Blank rows are "
                 "skipped.\n")
        w = csv_writer(fh)
        w.writerow(COLUMNS)
        for item_id in chosen:
            b = items[item_id]
            case = cases[b.case_id or ""]
            first, second = shown_order(run.id, item_id, b)
            w.writerow([csv_cell_out(x) for x in (item_id, case.id, case_input_text(case), case.ideal,
                                                  text[(case.id, first)], text[(case.id, second)])] + ["", "", ""])
    return {"run_id": run.id, "out": str(p), "written": len(chosen), "judged_pairs": len(items), "seed": seed}


def _field(path: Path, line: int, row: dict[str, str], key: str) -> str:
    v = (row.get(key) or "").strip()
    if len(v) > MAX_NAME:
        raise BadInput(path, line, f"'{key}' is {len(v)} characters, over the {MAX_NAME} limit")
    if any(ord(ch) < 32 for ch in v):
        raise BadInput(path, line, f"'{key}' contains a control character; remove it")
    return v


def import_pairwise_labels(led: Ledger, run: Run, path: str | Path) -> dict[str, Any]:
    """Validate a filled-in pairwise template against ``run`` and record the votes (model terms) in the ledger."""
    p = Path(path)
    header, rows, _ = load_csv(p, restore_formulas=True)
    missing = [c for c in ("item_id", "human_winner", "annotator") if c not in header]
    if missing:
        raise BadInput(p, 1, f"missing column(s) {', '.join(missing)}; use the file `benchrun labels export "
                       f"{run.id} --pairwise` wrote")
    items = judged_items(led, run)
    votes: list[dict[str, Any]] = []
    skipped = 0
    seen: set[tuple[str, str]] = set()
    for line, row in rows:
        winner, annotator = _field(p, line, row, "human_winner"), _field(p, line, row, "annotator")
        if not winner and not annotator:
            skipped += 1
            continue
        item_id = _field(p, line, row, "item_id")
        b = items.get(item_id)
        if b is None:
            raise BadInput(p, line, f"item_id {item_id[:40]!r} is not a judged pair of run {run.id}")
        shown = {"a": "A", "b": "B", "tie": "tie"}.get(winner.lower())
        if shown is None:
            raise BadInput(p, line, f"human_winner must be A, B or tie, got {winner[:40]!r}")
        if not annotator:
            raise BadInput(p, line, "annotator is empty; say who voted")
        if (item_id, annotator) in seen:
            raise BadInput(p, line, f"annotator {annotator!r} voted twice on {item_id}; keep one row")
        seen.add((item_id, annotator))
        votes.append(vote_record(run.id, item_id, b, shown, annotator))
    if not votes:
        raise BadInput(p, None, "no vote in the file: fill in human_winner and annotator")
    out = record_votes(led, run, votes, str(p))
    return {**{k: out[k] for k in ("report_id", "run_id", "summary", "votes")}, "skipped_blank": skipped,
            "hash": out["hash"]}


def human_votes(led: Ledger, run: Run) -> tuple[list[Battle], list[tuple[str, str]]] | None:
    """The latest imported votes of ``run``: (human battles, (judge verdict, human verdict) per vote), or None."""
    votes = latest_votes(led, run)
    if not votes:
        return None
    judged = {(b.case_id, b.model_a, b.model_b): b for b in judged_items(led, run).values()}
    battles, pairs = [], []
    for v in votes:
        b = judged.get((v["case_id"], v["model_a"], v["model_b"]))
        battles.append(Battle(v["model_a"], v["model_b"], v["winner"], case_id=v["case_id"],
                              judge=f"human:{v['annotator']}", len_a=b.len_a if b else None,
                              len_b=b.len_b if b else None, category=b.category if b else None))
        if b is not None:
            pairs.append((b.winner, v["winner"]))
    return battles, pairs
