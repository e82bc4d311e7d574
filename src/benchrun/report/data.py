"""Everything the HTML report shows, as plain data (rendered by `benchrun.report.html.render_report`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from benchrun.report.comparison import compare_payload, model_keys, resolve_ref, rows_of
from benchrun.report.plain import jsonable
from benchrun.report.shortlist import candidate_cost_per_1k, shortlist_payload

if TYPE_CHECKING:
    from benchrun.ledger import Ledger
    from benchrun.ledger.tables import Run


def report_data(led: Ledger, run: Run, compare: tuple[str, str] | None = None,
                with_shortlist: bool = False, n_boot: int = 10000) -> dict[str, Any]:
    """Everything the HTML report shows, as plain data."""
    from benchrun.report.summary import build_summary

    summary = jsonable(build_summary(led, run))
    rows = rows_of(led, run.id)
    order = model_keys(run)
    snap = json.loads(run.spec_snapshot)
    by_case: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in sorted(rows, key=lambda r: (r["case_id"], r["model_key"], r["sample_index"])):
        by_case.setdefault(r["case_id"], {}).setdefault(r["model_key"], []).append({
            "sample": r["sample_index"], "status": r["status"], "answer": r["response_text"], "error": r["error"],
            "rules": json.loads(r["rules"] or "[]"), "judge_score": r["judge_score"], "judge_pass": r["judge_pass"],
            "judge_reason": r["judge_reason"], "failure_mode": r["judge_failure_mode"],
            "judge_error": r["judge_error"], "latency_ms": r["latency_ms"], "cost_usd": r["cost_usd"],
            "scored_by": r.get("scored_by"),
            "injection_suspected": r.get("injection_suspected"),
            "trajectory": json.loads(r["trajectory"]) if r.get("trajectory") else None,
        })
    cases = []
    for c in snap["dataset"]["cases"]:
        inp = c["input"]
        text = inp if isinstance(inp, str) else "\n".join(f"{m['role'].upper()}: {m['content']}" for m in inp)
        per_model = by_case.get(c["id"], {})
        statuses = {s["status"] for samples in per_model.values() for s in samples}
        cases.append({"id": c["id"], "category": c.get("category"), "severity": c.get("severity"), "input": text,
                      "ideal": c.get("ideal"), "models": [{"key": k, "samples": per_model.get(k, [])} for k in order],
                      "statuses": sorted(statuses)})
    data: dict[str, Any] = {"summary": summary, "cases": cases, "chart_points": chart_points(summary, rows),
                            "compare": None,
                            "shortlist": None}
    if compare is not None:
        a, b = (resolve_ref(led, ref, run.id) for ref in compare)
        data["compare"] = compare_payload(led, a, b, n_boot=n_boot)
    if with_shortlist:
        data["shortlist"] = shortlist_payload(led, [run.id])
    from benchrun.report.arena import run_arena_section

    arena = run_arena_section(led, run, summary)  # a pairwise run: its ratings beside the tables
    if arena is not None:
        data["arena"] = arena
    return jsonable(data)


def chart_points(summary: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per model for the quality/cost chart: pass rate with its interval, candidate cost per 1k cases."""
    points = []
    for m in summary["models"]:
        mrows = [r for r in rows if r["model_key"] == m["model_key"]]
        points.append({"key": m["model_key"], "pass_rate": m["pass_rate"]["estimate"], "low": m["pass_rate"]["low"],
                       "high": m["pass_rate"]["high"], "cost_per_1k": candidate_cost_per_1k(mrows)})
    return points
