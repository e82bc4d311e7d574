"""The plain data of each page of `benchrun view` (what the ``.json`` twin of the page returns).

Every number comes from `benchrun.api` and the report builders the CLI uses
(`benchrun.report.summary`, `benchrun.report.comparison`); nothing here computes a statistic.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from benchrun import api
from benchrun.ledger import Ledger


def runs_list(store: Ledger, *, dataset: str | None = None, model: str | None = None, status: str | None = None,
              q: str | None = None, since: str | None = None, until: str | None = None,
              limit: int = 500) -> dict[str, Any]:
    """Runs, newest first (`benchrun runs list`), filtered by dataset name, model key, status, creation date
    (``since`` / ``until``: YYYY-MM-DD, both days included, UTC) and a search over id, name, dataset and
    models (case-insensitive substring)."""
    runs = [asdict(r) for r in api.Ledger(store).runs(limit)]
    needle = (q or "").strip().lower()

    def keep(r: dict[str, Any]) -> bool:
        if dataset and r["dataset"] != dataset:
            return False
        if model and model not in r["models"]:
            return False
        if status and r["status"] != status:
            return False
        if (since and r["created_at"][:10] < since) or (until and r["created_at"][:10] > until):
            return False
        if needle:
            hay = " ".join([r["id"], r["name"], r["dataset"], *r["models"], r["judge"] or ""]).lower()
            return needle in hay
        return True

    return {
        "runs": [r for r in runs if keep(r)],
        "filters": {"dataset": dataset, "model": model, "status": status, "q": q, "since": since, "until": until},
        "datasets": sorted({r["dataset"] for r in runs}),
        "models": sorted({m for r in runs for m in r["models"]}),
        "statuses": sorted({r["status"] for r in runs}),
    }


def run_page(store: Ledger, run_id: str) -> dict[str, Any]:
    """A run as `benchrun runs show --json` prints it, plus its cases with each model's status (for the
    drill-down links), the judge qualifier every judge score carries and, for a pairwise run, ``arena``:
    what `benchrun arena RUN_ID --json` prints (None for other runs)."""
    from benchrun.report.summary import judge_marker

    summary = api.Ledger(store).run(run_id).data
    rid = summary["conditions"]["run_id"]
    order = [m["model_key"] for m in summary["models"]]
    cases: dict[str, dict[str, Any]] = {}
    for r in store.results(rid):
        c = cases.setdefault(r.case_id, {"case_id": r.case_id, "category": r.category, "severity": r.severity,
                                         "models": {}})
        c["models"].setdefault(r.model_key, []).append(r.status)
    from benchrun.report.arena import run_arena_section
    from benchrun.report.comparison import rows_of
    from benchrun.report.data import chart_points

    return {"summary": summary, "judge_marker": judge_marker(summary), "model_order": order,
            "cases": sorted(cases.values(), key=lambda c: c["case_id"]),
            "chart_points": chart_points(summary, rows_of(store, rid)),
            "arena": run_arena_section(store, store.get_run(rid), summary)}


def case_page(store: Ledger, run_id: str, case_id: str) -> dict[str, Any]:
    """One case of a run (`benchrun runs show --case`), each result with the exact messages sent, tokens,
    cost and latency of the candidate call and of the judge call."""
    from benchrun.report.summary import case_detail

    run = store.get_run(run_id)
    d = case_detail(store, run, case_id)
    rows = {(r.model_key, r.sample_index): r for r in store.results(run.id) if r.case_id == d["case_id"]}
    for res in d["results"]:
        r = rows[(res["model_key"], res["sample_index"])]
        res.update(model=r.model, resolved_model=r.resolved_model, messages=json.loads(r.messages or "[]"),
                   prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens, cost_usd=r.cost_usd,
                   latency_ms=r.latency_ms, retries=r.retries, cached=r.cached, judge_cost_usd=r.judge_cost_usd,
                   judge_latency_ms=r.judge_latency_ms, injection_suspected=r.injection_suspected)
    d["model_order"] = [m["key"] for m in json.loads(run.models)]
    return d


def is_regression(flip: dict[str, Any]) -> bool:
    """A flip where A (the candidate) fails a case B (the baseline) passes."""
    return not flip["a_passed"] and bool(flip["b_passed"])


def compare_page(store: Ledger, a: str, b: str, run: str | None = None,
                 regressions_only: bool = False) -> dict[str, Any]:
    """`benchrun compare A B [--run RUN]` (the same payload), with the flips shown: all of them, high
    severity first as `analysis.compare.flips` orders them, or only A's regressions against B."""
    payload = api.compare(a, b, run=run, ledger=store).data
    flips = payload["flips"]
    return {"compare": payload, "query": {"a": a, "b": b, "run": run, "regressions_only": regressions_only},
            "shown_flips": [f for f in flips if is_regression(f)] if regressions_only else flips,
            "regressions": sum(1 for f in flips if is_regression(f))}


def calibrations_page(store: Ledger, run_id: str | None = None) -> dict[str, Any]:
    """Stored calibrations (newest first), all or those of one run: what `benchrun calibrate` stored."""
    filters = {} if run_id is None else {"run_id": store.get_run(run_id).id}
    reps = store.reports("calibration", **filters)
    return {"calibrations": [{"report_id": r.id, "created_at": r.created_at.isoformat(), "run_id": r.run_id,
                              "judge_model": r.judge_model, "summary": r.summary} for r in reps]}


def coverage_list(store: Ledger) -> dict[str, Any]:
    """Stored coverage reports, newest first, as `benchrun coverage history` lists them."""
    from benchrun.coverage.history import history

    return {"reports": history(store.url)}


def report_page(store: Ledger, kind: str, report_id: int) -> dict[str, Any] | None:
    """One stored report of ``kind`` (``calibration``: what `benchrun calibrate --json` printed; ``coverage``:
    what `benchrun coverage --json` printed), or None when the ledger has no such report."""
    for r in store.reports(kind):
        if r.id == report_id:
            p = json.loads(r.payload)
            body = p["report"] if kind == "coverage" else p
            return {"report_id": r.id, "created_at": r.created_at.isoformat(), "summary": r.summary, **body}
    return None
