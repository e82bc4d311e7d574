"""Build the run summary (a plain dict) from the ledger: what `run`, `runs show` and `--json` print.

Every number comes with what it depends on: pass rates with 95% intervals (Wilson; with several
samples per case, cases as clusters; each interval names its method),
judge scores with the judge's latest calibration (or "uncalibrated"), and the
dataset's coverage against production when a coverage report exists.
"""

from __future__ import annotations

import json
from typing import Any

from benchrun.analysis.breakdown import breakdown, summarize, totals
from benchrun.ledger import Ledger
from benchrun.ledger.tables import Result, Run


def result_dicts(rows: list[Result]) -> list[dict[str, Any]]:
    return [r.model_dump() for r in rows]


def rules_only(run: Run) -> bool:
    """Whether the run had no judge (every result scored by its rules alone)."""
    return not run.judge_model


def judge_calibration(ledger: Ledger, run: Run) -> dict[str, Any] | None:
    """The latest calibration of this run's judge (model + prompt hash + rubric hash), if any."""
    if rules_only(run):
        return None
    return latest_calibration(ledger, run.judge_model, run.judge_prompt_hash, run.rubric_hash)


def latest_calibration(ledger: Ledger, judge_model: str, judge_prompt_hash: str, rubric_hash: str) -> dict[str, Any] | None:
    """Calibrations are tied to the judge model, the judge prompt and the rubric: change any, and it no longer applies."""
    reps = ledger.reports(
        "calibration", judge_model=judge_model, judge_prompt_hash=judge_prompt_hash, rubric_hash=rubric_hash
    )
    if not reps:
        return None
    p = json.loads(reps[0].payload)
    return {"report_id": reps[0].id, "created_at": reps[0].created_at.isoformat(), "summary": reps[0].summary,
            "trusted": p.get("trusted"), "kappa": p.get("kappa"), "n": p.get("n")}


def coverage_qualifier(ledger: Ledger, run: Run) -> dict[str, Any] | None:
    """The latest coverage report for this run's dataset version, if any."""
    reps = ledger.reports("coverage", dataset_hash=run.dataset_hash)
    if not reps:
        return None
    p = json.loads(reps[0].payload)
    return {"report_id": reps[0].id, "created_at": reps[0].created_at.isoformat(), "jsd": p.get("jsd"),
            "band": p.get("band"), "production": reps[0].subject, "summary": reps[0].summary}


def run_conditions(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "name": run.name,
        "status": run.status,
        "message": run.message,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "spec_hash": run.spec_hash,
        "dataset": {"name": run.dataset_name, "version": run.dataset_version, "hash": run.dataset_hash},
        # rubric and judge are None in a run scored by rules only
        "rubric": None if rules_only(run) else {"name": run.rubric_name, "version": run.rubric_version,
                                                 "hash": run.rubric_hash},
        "models": json.loads(run.models),
        "prompt_hashes": json.loads(run.prompt_hashes),
        "sampling": json.loads(run.sampling),
        "samples_per_case": run.samples_per_case,
        "judge": None if rules_only(run) else {"model": run.judge_model, "prompt_hash": run.judge_prompt_hash,
                                                "sampling": json.loads(run.judge_sampling)},
        "package_versions": json.loads(run.package_versions),
        "git_commit": run.git_commit,
    }


def build_summary(ledger: Ledger, run: Run) -> dict[str, Any]:
    from benchrun.ledger.batches import summary as batch_summary
    from benchrun.shards import shard_summary

    rows = ledger.result_rows(run.id)
    from benchrun.spec import LoadedSpec

    snap = json.loads(run.spec_snapshot)
    loaded = LoadedSpec.from_snapshot(snap)
    expected = len(loaded.cases()) * len(loaded.spec.candidates) * run.samples_per_case
    order = [m["key"] for m in json.loads(run.models)]
    models = [s.to_dict() for s in summarize(rows, order)]
    unparsed = unparsed_counts(rows)
    for m in models:  # multiple choice: answers naming no choice (or several); already counted as failed
        m["unparsed"] = unparsed.get(m["model_key"], 0)
    bds = breakdown(rows, order)
    extra: dict[str, Any] = {}
    if loaded.spec.judge is not None and loaded.spec.judge.pairwise:  # only then: other summaries stay as they were
        extra["pairwise"] = {"judged": json.loads(run.totals or "{}").get("pairwise"),
                             "pairs": loaded.spec.judge.pairs if isinstance(loaded.spec.judge.pairs, str | None)
                             else loaded.spec.judge.pairs.model_dump(), "rate_with": f"benchrun arena {run.id}"}
    out: dict[str, Any] = {
        **extra,
        "conditions": run_conditions(run),
        "expected_results": expected,
        "recorded_results": len(rows),
        "totals": totals(rows),
        "models": models,
        "breakdown": [
            {
                "model_key": b.model_key,
                "do_not_ship": b.do_not_ship,
                "high_severity_failures": b.high_severity_failures,
                "by_severity": b.by_severity,
                "by_category": b.by_category,
                "failure_modes": b.failure_modes,
                "injection_suspected": b.injection_suspected,
            }
            for b in bds
        ],
        "scoring": scoring(rows, rules_only(run)),
        "choice_cases": sum(1 for c in loaded.cases() if c.choices is not None),
        "categories": _categories(rows, order),
        "judge_calibration": judge_calibration(ledger, run),
        "judge_health": run_judge_health(rows, loaded.rubric),
        "coverage": coverage_qualifier(ledger, run),
        "pass_at_k": pass_at_k_section(rows, order) if run.samples_per_case > 1 else None,
        "circular": _circular(rows, order, loaded.spec.shuffle_choices),
        "shards": shard_summary(ledger, run),  # None unless the run was sharded (benchrun run --shard I/N)
        "batches": batch_summary(ledger, run.id),  # None unless the run used provider batches (benchrun run --batch)
        "tools": tool_section(rows, order),
    }
    out["holistic"] = holistic_section(ledger, rows, loaded, order, out)
    sweep = snap.get("sweep")
    if sweep is not None:  # a run of `benchrun sweep`: its sweep id and setup (only then, so other output is as before)
        out["conditions"]["sweep"] = sweep
    return out


def case_infos(loaded: Any) -> dict[str, Any]:
    """Per case what the holistic row needs: ``should_refuse``, the ``max_words`` limit (the case's own
    check, else the spec's) and whether it is multiple choice."""
    from benchrun.analysis.holistic import CaseInfo

    out = {}
    for c in loaded.cases():
        own = [ch.max for ch in c.checks if ch.type == "max_words" and ch.max is not None]
        k = getattr(loaded.spec, "shuffle_choices", None)
        shown = None
        if k and c.choices is not None:  # circular evaluation: the choices as each sample showed them
            shown = {i: list(loaded.case_for_sample(c, i).choices or []) for i in range(k)}
        out[c.id] = CaseInfo(should_refuse=getattr(c, "should_refuse", None),
                             max_words=min(own) if own else getattr(loaded.spec, "max_words", None),
                             choices=c.choices is not None, choices_by_sample=shown)
    return out


def holistic_section(ledger: Ledger, rows: list[dict[str, Any]], loaded: Any, order: list[str],
                     summary: dict[str, Any]) -> dict[str, Any]:
    """The holistic table (analysis/holistic.py) with the judge qualifier `runs show` prints."""
    from benchrun.analysis.holistic import holistic_table

    cal = summary.get("judge_calibration")
    judge = None
    if summary["conditions"]["judge"] is not None:
        marker = judge_marker(summary)
        judge = {"status": {"uncal.": "uncalibrated", None: "trusted"}.get(marker, marker),
                 "kappa": cal.get("kappa") if cal else None, "n": cal.get("n") if cal else None,
                 "summary": cal.get("summary") if cal else None}
    from benchrun.refusal_check import latest_refusal_check

    check = latest_refusal_check(ledger, summary["conditions"]["run_id"])
    judged = None
    if check is not None:
        judged = {}
        for k, v in check["verdicts"].items():
            parts = str(k).split("\x1f")
            if len(parts) == 3 and parts[2].isdigit() and isinstance(v, bool):
                judged[(parts[0], parts[1], int(parts[2]))] = v
    out = holistic_table(rows, case_infos(loaded), order, judge, judged_refusals=judged)
    if check is not None:
        out["refusal_check"] = {"report_id": check["report_id"], "judge": check["judge"]}
    return out


def _circular(rows: list[dict[str, Any]], order: list[str], k: int | None) -> dict[str, Any] | None:
    """With ``shuffle_choices``: accuracy under the dataset's choice order and under all K orders (analysis/circular.py)."""
    if k is None:
        return None
    from benchrun.analysis.circular import circular_accuracy

    return {"orders": k, "models": circular_accuracy(rows, order, k),
            "method": f"each case asked under {k} orders of its choices (order 0 the dataset's, then seeded "
                      "permutations); circular = right under all of them (CircularEval, MMBench); Wilson score "
                      "intervals over cases; cases with an error under any order left out"}


def tool_section(rows: list[dict[str, Any]], order: list[str]) -> dict[str, Any] | None:
    """Tool-use metrics per model with intervals (analysis/tools.py); None when no case used tools."""
    from benchrun.analysis.tools import F1_DEGENERATE_METHOD, F1_METHOD, tool_metrics

    metrics = tool_metrics(rows, order)
    if not metrics:
        return None
    bounded = [k for k, m in metrics.items() if m["f1"]["method"] == F1_DEGENERATE_METHOD]
    f1_method = F1_METHOD + (f"; for {', '.join(bounded)}: {F1_DEGENERATE_METHOD}" if bounded else "")
    return {"models": metrics, "methods": {"rates": "Wilson score with cases as clusters", "f1": f1_method}}


def pass_at_k_section(rows: list[dict[str, Any]], order: list[str]) -> dict[str, Any]:
    """pass@k for every k up to the samples per case, per model: the mean of the per-case unbiased
    estimates (Chen et al. 2021) over cases with at least k scored samples, with a percentile bootstrap
    interval over cases, and each case's own estimate. Errored samples are left out of n."""
    from benchrun.analysis.passk import counts_from_results, pass_at_k_by_k

    counts = counts_from_results(rows)
    out: dict[str, Any] = {}
    for key in order:
        c = counts.get(key, {})
        ks = range(1, max((n for n, _ in c.values()), default=0) + 1)
        out[key] = {str(k): v.to_dict() for k, v in pass_at_k_by_k(c, ks).items()}
    return {"models": out, "method": "Chen et al. (2021) unbiased estimator, mean over cases; 95% percentile "
            "bootstrap over cases (2,000 resamples)"}


def _categories(rows: list[dict[str, Any]], order: list[str]) -> dict[str, Any]:
    """Per model: pass rate per category with intervals, micro and macro averages (analysis/categories.py)."""
    from dataclasses import asdict

    from benchrun.analysis.categories import category_pass_rates

    out: dict[str, Any] = {}
    for key, v in category_pass_rates(rows, order).items():
        out[key] = {"n_categories": v["n_categories"], "micro": asdict(v["micro"]), "macro": asdict(v["macro"]),
                    "by_category": {c: {"passed": d["passed"], "scored": d["scored"],
                                        "pass_rate": asdict(d["pass_rate"])} for c, d in v["categories"].items()}}
    return out


def unparsed_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Per model: results whose multiple-choice answer was unparsed (named no choice, or several)."""
    out: dict[str, int] = {}
    for r in rows:
        if '"unparsed"' in (r.get("rules") or "") and any(o.get("unparsed") for o in json.loads(r["rules"])):
            out[r["model_key"]] = out.get(r["model_key"], 0) + 1
    return out


def case_detail(ledger: Ledger, run: Run, case_id: str) -> dict[str, Any]:
    """Every result of one case: the answer, how it was scored, each rule with what it extracted and why it
    failed, and the judge's verdict (what `runs show --case` prints)."""
    from benchrun.errors import UsageError
    from benchrun.spec import LoadedSpec

    loaded = LoadedSpec.from_snapshot(json.loads(run.spec_snapshot))
    try:
        case = loaded.dataset.case(case_id)
    except KeyError:
        raise UsageError(f"run {run.id} has no case {case_id!r}; `runs show {run.id} --json` lists the results") from None
    results = []
    for r in ledger.results(run.id):
        if r.case_id != case_id:
            continue
        results.append({
            "model_key": r.model_key, "sample_index": r.sample_index, "status": r.status, "passed": r.passed,
            "scored_by": r.scored_by, "error": r.error, "answer": r.response_text,
            "rules": json.loads(r.rules or "[]"),
            "trajectory": json.loads(r.trajectory) if r.trajectory else None,
            "judge": None if r.judge_raw is None and r.judge_error is None else {
                "score": r.judge_score, "pass": r.judge_pass, "failure_mode": r.judge_failure_mode,
                "reason": r.judge_reason, "error": r.judge_error},
        })
    results.sort(key=lambda x: (x["model_key"], x["sample_index"]))
    return {"run_id": run.id, "case_id": case.id, "category": case.category, "severity": case.severity,
            "input": case.input_text(), "ideal": case.ideal, "results": results}


def scoring(rows: list[dict[str, Any]], no_judge: bool) -> dict[str, Any]:
    """How the run's results were scored: ``"scored by rules only"``, ``"judge"`` or ``"mixed"``,
    and how many results each method scored (``rules``, ``judge``, ``rules+judge``)."""
    counts: dict[str, int] = {}
    for r in rows:
        k = r.get("scored_by") or ("rules" if no_judge else "rules+judge")  # rows from before the column existed
        counts[k] = counts.get(k, 0) + 1
    if no_judge:
        method = "scored by rules only"
    elif "rules" in counts:
        method = "mixed"
    else:
        method = "judge"
    return {"method": method, "results_by_method": dict(sorted(counts.items()))}


def run_judge_health(rows: list[dict[str, Any]], rubric: Any) -> dict[str, Any] | None:
    """Signs of a degenerate judge in this run's verdicts, against the rubric's own text and pass rule
    (None for a run scored by rules only)."""
    from benchrun.analysis.judge_health import judge_health

    if rubric is None:
        return None
    texts = [rubric.judge_system, rubric.judge_prompt, *(c.description for c in rubric.criteria),
             *(str(v) for v in rubric.scale.values())]
    return judge_health(rows, texts, rubric.pass_rule.min_score, rubric.pass_rule.forbidden_failure_modes)


def judge_marker(summary: dict[str, Any]) -> str | None:
    """The qualifier every judge-based number carries: degenerate, uncalibrated, untrusted, or none (trusted)."""
    health = summary.get("judge_health") or {}
    if health.get("degenerate"):
        return "degenerate"
    cal = summary.get("judge_calibration")
    if not cal:
        return "uncal."
    if not cal.get("trusted"):
        return "untrusted"
    return None


def gate_failures(summary: dict[str, Any], fail_on: str | None, min_pass_rate: float | None,
                  require_trusted_judge: bool = False) -> list[str]:
    """Quality gates the user set; a non-empty list means exit code 1.

    ``require_trusted_judge`` (`--require-calibrated`): a judge that turned out degenerate in
    this run is untrusted whatever its calibration says.

    ``min_pass_rate`` counts errors as non-passes (a case that could not be scored never passes).
    """
    problems: list[str] = []
    order = {"high": 0, "medium": 1, "low": 2}
    for b in summary["breakdown"]:
        if fail_on:
            worst = order[fail_on]
            for sev, counts in b["by_severity"].items():
                if order.get(sev, 9) <= worst and (counts["failed"] + counts["errors"]) > 0:
                    problems.append(f"{b['model_key']}: {counts['failed'] + counts['errors']} {sev}-severity case(s) not passed")
    if require_trusted_judge:
        health = summary.get("judge_health") or {}
        if health.get("degenerate"):
            problems.append(f"--require-calibrated: the judge is untrusted in this run, {health['message']}")
    if min_pass_rate is not None:
        for m in summary["models"]:
            rate = m["pass_rate_errors_as_fail"]
            if rate is None or rate < min_pass_rate:
                shown = "n/a" if rate is None else f"{rate:.1%}"
                problems.append(f"{m['model_key']}: pass rate {shown} below {min_pass_rate:.1%} (errors count as not passed)")
    return problems
