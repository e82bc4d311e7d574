"""Ledger rows to the shortlist decision table: candidates built from runs, ranked by
`benchrun.analysis.shortlist`, with ties decided by Holm-adjusted pairwise tests (paired on shared cases)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from benchrun.report.comparison import model_keys, outcomes_for, rows_of
from benchrun.report.plain import jsonable

if TYPE_CHECKING:
    from benchrun.analysis.compare import Outcome
    from benchrun.ledger import Ledger

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - compared, never bound


def is_local(model: str, api_base: str | None) -> bool:
    """The embedded model, or a server on this machine: prompts never leave it."""
    from benchrun.providers import LOCAL_PREFIX

    if model.startswith(LOCAL_PREFIX) and not api_base:
        return True
    if api_base:
        host = urlparse(api_base if "://" in api_base else f"http://{api_base}").hostname or ""
        return host in LOCAL_HOSTS
    return False


def model_info(model: str) -> dict[str, Any]:
    """Context window and list prices per 1M tokens from litellm's bundled model map; None where unknown."""
    from benchrun.providers import LOCAL_PREFIX, setup_litellm

    empty: dict[str, Any] = {"context_window": None, "input_per_1m": None, "output_per_1m": None}
    if model.startswith(LOCAL_PREFIX):
        return empty
    litellm = setup_litellm()
    try:
        info = litellm.get_model_info(model=model)
    except Exception:
        return empty

    def per_1m(v: Any) -> float | None:
        return None if v is None else float(v) * 1_000_000

    return {"context_window": info.get("max_input_tokens") or info.get("max_tokens"),
            "input_per_1m": per_1m(info.get("input_cost_per_token")),
            "output_per_1m": per_1m(info.get("output_cost_per_token"))}


def candidate_cost_per_1k(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """Candidate-only cost of 1,000 answers: mean ``cost_usd`` over answered rows × 1000.

    The judge's cost is left out (it is evaluation overhead, not what serving the model costs).
    None when any answered row has an unknown price, or nothing was answered.
    """
    costs = [r["cost_usd"] for r in rows if r["response_text"] is not None]
    if not costs or any(c is None for c in costs):
        return None
    return 1000 * math.fsum(costs) / len(costs)


def judge_cost_per_1k(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """Judge (evaluation) cost of 1,000 judged answers: mean ``judge_cost_usd`` over judged rows × 1000.

    Shown next to the candidate cost, never added to it. None when any judged row has an unknown price.
    """
    costs = [r["judge_cost_usd"] for r in rows if r["judge_raw"] is not None]
    if not costs or any(c is None for c in costs):
        return None
    return 1000 * math.fsum(costs) / len(costs)


def _calibration_note(cal: dict[str, Any] | None) -> str:
    if cal is None:
        return "uncalibrated"
    return ("trusted" if cal.get("trusted") else "NOT trusted") + (f": {cal['summary']}" if cal.get("summary") else "")


def shortlist_payload(led: Ledger, run_ids: list[str], max_cost_per_1k: float | None = None,
                      max_p95_ms: float | None = None, max_high_severity: int | None = None,
                      min_pass_rate: float | None = None, weights: dict[str, float] | None = None,
                      level: float = 0.95) -> dict[str, Any]:
    """Build `Candidate`s from runs, rank them with `benchrun.analysis.shortlist.shortlist`."""
    from benchrun.analysis.breakdown import breakdown, summarize
    from benchrun.analysis.compare import paired_test
    from benchrun.analysis.shortlist import Candidate, shortlist, unpaired_pair_test
    from benchrun.analysis.stats import SignificanceTest
    from benchrun.errors import UsageError
    from benchrun.report.summary import coverage_qualifier, judge_calibration, rules_only

    runs = []
    for rid in run_ids:
        run = led.get_run(rid)
        if run.id in [r.id for r in runs]:
            raise UsageError(f"run {run.id} given twice")
        runs.append(run)
    multi = len(runs) > 1
    cands: list[Candidate] = []
    outcomes: dict[str, tuple[str, list[Outcome]]] = {}  # key -> (dataset hash, outcomes)
    extra: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    if len({r.dataset_hash for r in runs}) > 1:
        warnings.append("the runs used DIFFERENT dataset versions: pass rates are over different cases; candidates "
                        "from different datasets are compared with an unpaired two-proportion test (less sensitive)")
    for run in runs:
        rows = rows_of(led, run.id)
        order = model_keys(run)
        sums = {s.model_key: s for s in summarize(rows, order)}
        bds = {b.model_key: b for b in breakdown(rows, order)}
        cal = judge_calibration(led, run)
        cov = coverage_qualifier(led, run)
        cov_note = (f"coverage JSD {cov['jsd']:.3f} ({cov['band']}) vs {cov['production']}" if cov and cov.get("jsd")
                    is not None else "no coverage report for this dataset version")
        snap_cands = {c.get("alias") or c["model"]: c for c in json.loads(run.spec_snapshot)["spec"]["candidates"]}
        for m in json.loads(run.models):
            key = m["key"]
            s = sums.get(key)
            if s is None:
                continue
            ck = f"{run.id}:{key}" if multi else key
            mrows = [r for r in rows if r["model_key"] == key]
            info = model_info(m["model"])
            price = snap_cands.get(key, {}).get("price")
            price_source = "spec" if price else ("litellm" if info["input_per_1m"] is not None else None)
            bd = bds.get(key)
            cands.append(Candidate(
                key=ck, model=m["model"], pass_rate=s.pass_rate,
                high_severity_failures=len(bd.high_severity_failures) if bd else 0,
                failure_modes=dict(bd.failure_modes) if bd else {},
                mean_judge_score=s.mean_judge_score,
                judge_calibration="scored by rules only" if rules_only(run) else _calibration_note(cal),
                cost_per_1k_cases=candidate_cost_per_1k(mrows),
                latency_p50_ms=s.latency_p50_ms, latency_p95_ms=s.latency_p95_ms,
                context_window=info["context_window"],
                input_price_per_1m=price["input_per_1m"] if price else info["input_per_1m"],
                output_price_per_1m=price["output_per_1m"] if price else info["output_per_1m"],
                local=is_local(m["model"], m.get("api_base")), coverage_note=cov_note,
                n_effective=s.n_effective,
            ))
            outcomes[ck] = (run.dataset_hash, outcomes_for(mrows, key))
            extra[ck] = {"run_id": run.id, "model_key": key, "errors": s.errors, "results": s.results,
                         "price_source": price_source, "eval_cost_usd": s.cost_usd,
                         "judge_cost_per_1k_cases": judge_cost_per_1k(mrows),
                         "eval_cost_unknown_calls": s.cost_unknown_calls,
                         "resolved_models": m.get("resolved_models") or []}

    def pair_test(x: Candidate, y: Candidate) -> SignificanceTest | None:
        hx, ox = outcomes[x.key]
        hy, oy = outcomes[y.key]
        if hx != hy:
            return unpaired_pair_test(x, y)
        t = paired_test(ox, oy, name_a=x.key, name_b=y.key)
        return None if t is None else SignificanceTest(t.p_value, t.method)

    res = shortlist(cands, max_cost_per_1k=max_cost_per_1k, max_p95_ms=max_p95_ms,
                    max_high_severity=max_high_severity, min_pass_rate=min_pass_rate, weights=weights,
                    pair_test=pair_test, level=level)
    notes = list(res.notes)
    notes.append("ties: every pair is tested (on the same dataset: the exact paired test of `benchrun compare`"
                 + ("; across datasets: a two-proportion test on effective sample sizes" if len(
                     {h for h, _ in outcomes.values()}) > 1 else "")
                 + f"), p-values Holm-adjusted over all pairs; tied unless the adjusted p < {1 - level:g}")
    notes.append("candidate $/1k cases: candidate calls only (judge excluded), mean cost per answer × 1000, "
                 "what limits and ranking use; judge $/1k: the evaluation's own cost, shown apart; "
                 "unknown when any call's price is unknown")
    payload = jsonable(res)
    for part in ("ranked", "excluded"):
        for item in payload[part]:
            item["candidate"].update(extra[item["candidate"]["key"]])
    payload["notes"] = notes
    payload["warnings"] = warnings
    payload["holistic"] = _holistic_of(led, runs, multi)
    payload["runs"] = [r.id for r in runs]
    payload["limits"] = {"max_cost_per_1k": max_cost_per_1k, "max_p95_ms": max_p95_ms,
                         "max_high_severity": max_high_severity, "min_pass_rate": min_pass_rate, "weights": weights}
    return payload


def _holistic_of(led: Ledger, runs: list[Any], multi: bool) -> dict[str, Any] | None:
    """The holistic table of every candidate (the rows `runs show` prints), keyed as the shortlist keys them."""
    from benchrun.report.summary import build_summary

    table: dict[str, Any] | None = None
    for run in runs:
        h = build_summary(led, run)["holistic"]
        for m in h["models"]:
            if multi:
                m["model_key"] = f"{run.id}:{m['model_key']}"
        if table is None:
            table = h
        else:
            table["models"].extend(h["models"])
    return table
