"""`benchrun compare | reproduce | diff | shortlist | report`: read the ledger, call the pure analyses, render.

The builders here (``compare_payload``, ``conditions_diff``, ``shortlist_payload``,
``report_data``) turn ledger rows into plain JSON-ready dicts; the statistics themselves live
in `benchrun.analysis.compare` and `benchrun.analysis.shortlist`. `register(app)` adds the
commands to the main typer app. Heavy imports stay inside functions so `benchrun --help`
stays instant.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlparse

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from benchrun.analysis.compare import Outcome
    from benchrun.ledger import Ledger
    from benchrun.ledger.tables import Run

LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", help="SQLAlchemy URL or SQLite path (default: $BENCHRUN_LEDGER or runs/ledger.sqlite)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - compared, never bound


# ----------------------------------------------------------------------------- plain-data helpers


def jsonable(obj: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, NaN/inf to None (JSON has no NaN), dict keys to str."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def outcomes_for(rows: Iterable[Mapping[str, Any]], model_key: str, case_ids: set[str] | None = None) -> list[Outcome]:
    """One `Outcome` per result row of ``model_key``; errored rows become ``passed=None``."""
    from benchrun.analysis.compare import Outcome

    out = []
    for r in rows:
        if r["model_key"] != model_key or (case_ids is not None and r["case_id"] not in case_ids):
            continue
        passed = None if r["status"] == "error" else r["status"] == "passed"
        out.append(Outcome(r["case_id"], int(r["sample_index"]), passed, r["judge_score"], r["category"], r["severity"]))
    return out


def _rows(led: Ledger, run_id: str) -> list[dict[str, Any]]:
    from benchrun.report.summary import result_dicts

    return result_dicts(led.results(run_id))


def _model_keys(run: Run) -> list[str]:
    return [m["key"] for m in json.loads(run.models)]


def _case_hashes(run: Run) -> dict[str, str]:
    from benchrun.hashing import content_hash

    return {c["id"]: content_hash(c) for c in json.loads(run.spec_snapshot)["dataset"]["cases"]}


def resolve_ref(led: Ledger, ref: str, run_id: str | None) -> tuple[Run, str]:
    """``MODEL_KEY`` (with ``--run``), ``RUN_ID:MODEL_KEY``, or a ``RUN_ID`` whose run has a single model."""
    from benchrun.errors import UsageError

    if run_id is not None:
        run = led.get_run(run_id)
        if ref in _model_keys(run):
            return run, ref
    if ":" in ref:
        rid, key = ref.split(":", 1)
        run = led.get_run(rid)
        if key not in _model_keys(run):
            raise UsageError(f"run {run.id} has no model '{key}'; it has: {', '.join(_model_keys(run))}")
        return run, key
    if run_id is not None:
        run = led.get_run(run_id)
        raise UsageError(f"run {run.id} has no model '{ref}'; it has: {', '.join(_model_keys(run))}")
    run = led.get_run(ref)
    keys = _model_keys(run)
    if len(keys) != 1:
        raise UsageError(f"run {run.id} has {len(keys)} models ({', '.join(keys)}); "
                         f"name one as {run.id}:MODEL_KEY, or give MODEL_KEY with --run {run.id}")
    return run, keys[0]


# ----------------------------------------------------------------------------- compare


def compare_payload(led: Ledger, a: tuple[Run, str], b: tuple[Run, str], level: float = 0.95,
                    n_boot: int = 10000, seed: int = 0) -> dict[str, Any]:
    """Paired comparison of model A with model B (same run or two runs), as a JSON-ready dict."""
    from benchrun.analysis.compare import (
        breakdown_compare,
        flips,
        min_detectable_difference,
        multi_sample_summary,
        paired_compare,
        power_sentence,
    )

    (run_a, key_a), (run_b, key_b) = a, b
    same_run = run_a.id == run_b.id
    name_a = key_a if same_run or key_a != key_b else f"{key_a}@{run_a.id}"
    name_b = key_b if same_run or key_a != key_b else f"{key_b}@{run_b.id}"
    if name_a == name_b:
        name_a, name_b = f"A:{key_a}", f"B:{key_b}"
    warnings: list[str] = []
    case_ids: set[str] | None = None
    dataset_note: dict[str, Any] = {"same_hash": run_a.dataset_hash == run_b.dataset_hash}
    if run_a.dataset_hash != run_b.dataset_hash:
        ha, hb = _case_hashes(run_a), _case_hashes(run_b)
        case_ids = set(ha) & set(hb)
        changed = sorted(k for k in case_ids if ha[k] != hb[k])
        dataset_note.update(shared=len(case_ids), only_a=len(set(ha) - set(hb)), only_b=len(set(hb) - set(ha)),
                            shared_but_changed=changed)
        warnings.append(
            f"DIFFERENT DATASETS: {run_a.dataset_name} v{run_a.dataset_version} ({run_a.dataset_hash[:12]}) vs "
            f"{run_b.dataset_name} v{run_b.dataset_version} ({run_b.dataset_hash[:12]}). Comparing only the "
            f"{len(case_ids)} case id(s) both have ({len(set(ha) - set(hb))} only in A, {len(set(hb) - set(ha))} "
            f"only in B); {len(changed)} shared id(s) have different content. This is not the comparison of "
            "the two runs as a whole."
        )
    if run_a.rubric_hash != run_b.rubric_hash or run_a.judge_model != run_b.judge_model or \
            run_a.judge_prompt_hash != run_b.judge_prompt_hash:
        warnings.append(
            "DIFFERENT SCORING: the runs used a different rubric, judge model or judge prompt "
            f"({run_a.rubric_name} v{run_a.rubric_version} / {run_a.judge_model} vs {run_b.rubric_name} "
            f"v{run_b.rubric_version} / {run_b.judge_model}); a gap may come from the scoring, not the models."
        )
    rows_a = _rows(led, run_a.id)
    rows_b = rows_a if same_run else _rows(led, run_b.id)
    oa, ob = outcomes_for(rows_a, key_a, case_ids), outcomes_for(rows_b, key_b, case_ids)
    cmp = paired_compare(oa, ob, level=level, n_boot=n_boot, seed=seed, name_a=name_a, name_b=name_b)
    groups = breakdown_compare(oa, ob, level=level, n_boot=n_boot, seed=seed, name_a=name_a, name_b=name_b)
    power: dict[str, Any] = {"sentence": None, "min_detectable_difference": None, "basis": None}
    if cmp.n_pairs and cmp.pass_rate_a is not None and cmp.pass_rate_b is not None:
        power["min_detectable_difference"] = min_detectable_difference(cmp.n_pairs, cmp.pass_rate_b, 1 - level)
        power["basis"] = (f"{cmp.n_pairs} paired cases, from {name_b}'s pass rate, two-sided test at "
                          f"{1 - level:.2g}, 80% power, ignoring pairing (conservative)")
        if not cmp.larger_than_noise:
            power["sentence"] = power_sentence(cmp.n_pairs, cmp.pass_rate_a, cmp.pass_rate_b, 1 - level)
    multi = None
    if max(run_a.samples_per_case, run_b.samples_per_case) > 1:
        ks = sorted({1, 3, 5, max(run_a.samples_per_case, run_b.samples_per_case)})
        multi = {name_a: multi_sample_summary(oa, ks), name_b: multi_sample_summary(ob, ks)}
    return jsonable({
        "a": {"name": name_a, "run_id": run_a.id, "model_key": key_a, "dataset_hash": run_a.dataset_hash},
        "b": {"name": name_b, "run_id": run_b.id, "model_key": key_b, "dataset_hash": run_b.dataset_hash},
        "warnings": warnings,
        "dataset": dataset_note,
        "comparison": cmp,
        "verdict": cmp.verdict,
        "larger_than_noise": cmp.larger_than_noise,
        "by_group": groups,
        "flips": flips(oa, ob),
        "power": power,
        "multi_sample": multi,
    })


# ----------------------------------------------------------------------------- diff


def run_condition_fields(run: Run) -> dict[str, dict[str, Any]]:
    """A run's recorded conditions, flattened into sections of ``field -> value``."""
    from benchrun.spec import RunSpec

    snap = json.loads(run.spec_snapshot)
    spec = RunSpec.model_validate(snap["spec"])
    sec: dict[str, dict[str, Any]] = {k: {} for k in ("models", "prompts", "sampling", "samples", "dataset", "rubric",
                                                      "judge", "packages", "git", "spec")}
    for m in json.loads(run.models):
        sec["models"][f"{m['key']}.model"] = m["model"]
        sec["models"][f"{m['key']}.api_base"] = m.get("api_base")
        sec["models"][f"{m['key']}.resolved_models"] = ", ".join(m.get("resolved_models") or []) or None
    for key, h in json.loads(run.prompt_hashes).items():
        sec["prompts"][f"{key}.hash"] = h
    for cand in spec.candidates:
        p = spec.prompt_for(cand)
        sec["prompts"][f"{cand.key}.version"] = p.version
        sec["prompts"][f"{cand.key}.system"] = p.system
        sec["prompts"][f"{cand.key}.template"] = p.template
        price = cand.price.model_dump() if cand.price else None
        sec["models"][f"{cand.key}.price"] = json.dumps(price, sort_keys=True) if price else None
    for key, params in json.loads(run.sampling).items():
        for p, v in params.items():
            sec["sampling"][f"{key}.{p}"] = v
    sec["samples"]["samples_per_case"] = run.samples_per_case
    sec["dataset"].update(name=run.dataset_name, version=run.dataset_version, hash=run.dataset_hash,
                          cases=len(snap["dataset"]["cases"]))
    sec["rubric"].update(name=run.rubric_name, version=run.rubric_version, hash=run.rubric_hash)
    sec["judge"].update(model=run.judge_model, api_base=spec.judge.api_base, prompt_hash=run.judge_prompt_hash,
                        both_orders=spec.judge.both_orders)
    for p, v in json.loads(run.judge_sampling).items():
        sec["judge"][f"sampling.{p}"] = v
    sec["packages"].update(json.loads(run.package_versions))
    sec["git"]["commit"] = run.git_commit
    sec["spec"].update(hash=run.spec_hash, timeout_s=spec.timeout_s, cache=spec.cache, budget_usd=spec.budget_usd,
                       **{f"retries.{k}": v for k, v in spec.retries.model_dump().items()},
                       **{f"concurrency.{k}": v for k, v in spec.concurrency.model_dump(by_alias=True).items()})
    return sec


# sections whose differences can change scores (the rest are bookkeeping or speed)
SCORE_RELEVANT = ("models", "prompts", "sampling", "samples", "dataset", "rubric", "judge")


def conditions_diff(a: Run, b: Run) -> dict[str, Any]:
    """What differs between two runs' conditions, section by section, and which dataset cases differ."""
    fa, fb = run_condition_fields(a), run_condition_fields(b)
    diffs: list[dict[str, Any]] = []
    same: list[str] = []
    for section in fa:
        xa, xb = fa[section], fb[section]
        found = False
        for field in sorted(set(xa) | set(xb)):
            va, vb = xa.get(field), xb.get(field)
            if va != vb:
                found = True
                diffs.append({"section": section, "field": field, "a": va, "b": vb,
                              "affects_scores": section in SCORE_RELEVANT})
        if not found:
            same.append(section)
    cases: dict[str, Any] | None = None
    if a.dataset_hash != b.dataset_hash:
        ha, hb = _case_hashes(a), _case_hashes(b)
        cases = {"only_a": sorted(set(ha) - set(hb)), "only_b": sorted(set(hb) - set(ha)),
                 "changed": sorted(k for k in set(ha) & set(hb) if ha[k] != hb[k])}
    return {"run_a": a.id, "run_b": b.id, "differences": diffs, "same_sections": same, "cases": cases,
            "score_relevant_differences": sum(1 for d in diffs if d["affects_scores"])}


# ----------------------------------------------------------------------------- shortlist


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


def parse_weights(text: str | None) -> dict[str, float] | None:
    from benchrun.errors import BadInput

    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[k.strip()] = float(v)
        except ValueError:
            raise BadInput(None, "--weights", f"'{part}' is not NAME=NUMBER; e.g. quality=0.6,cost=0.3,latency=0.1") from None
    return out


def _calibration_note(cal: dict[str, Any] | None) -> str:
    if cal is None:
        return "uncalibrated"
    return ("trusted" if cal.get("trusted") else "NOT trusted") + (f": {cal['summary']}" if cal.get("summary") else "")


def shortlist_payload(led: Ledger, run_ids: list[str], max_cost_per_1k: float | None = None,
                      max_p95_ms: float | None = None, max_high_severity: int | None = None,
                      min_pass_rate: float | None = None, weights: dict[str, float] | None = None,
                      level: float = 0.95, n_boot: int = 10000) -> dict[str, Any]:
    """Build `Candidate`s from runs, rank them with `benchrun.analysis.shortlist.shortlist`."""
    from benchrun.analysis.breakdown import breakdown, summarize
    from benchrun.analysis.compare import paired_compare
    from benchrun.analysis.shortlist import Candidate, shortlist, wilson_overlap_tie
    from benchrun.errors import UsageError
    from benchrun.report.summary import coverage_qualifier, judge_calibration

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
                        "from different datasets are tied unless their Wilson intervals separate")
    for run in runs:
        rows = _rows(led, run.id)
        order = _model_keys(run)
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
                mean_judge_score=s.mean_judge_score, judge_calibration=_calibration_note(cal),
                cost_per_1k_cases=candidate_cost_per_1k(mrows),
                latency_p50_ms=s.latency_p50_ms, latency_p95_ms=s.latency_p95_ms,
                context_window=info["context_window"],
                input_price_per_1m=price["input_per_1m"] if price else info["input_per_1m"],
                output_price_per_1m=price["output_per_1m"] if price else info["output_per_1m"],
                local=is_local(m["model"], m.get("api_base")), coverage_note=cov_note,
            ))
            outcomes[ck] = (run.dataset_hash, outcomes_for(mrows, key))
            extra[ck] = {"run_id": run.id, "model_key": key, "errors": s.errors, "results": s.results,
                         "price_source": price_source, "eval_cost_usd": s.cost_usd,
                         "eval_cost_unknown_calls": s.cost_unknown_calls,
                         "resolved_models": m.get("resolved_models") or []}

    pair_cache: dict[frozenset[str], bool] = {}
    paired_pairs = 0

    def tie(x: Candidate, y: Candidate) -> bool:
        nonlocal paired_pairs
        hx, ox = outcomes[x.key]
        hy, oy = outcomes[y.key]
        if hx != hy:
            return wilson_overlap_tie(x, y)
        k = frozenset((x.key, y.key))
        if k not in pair_cache:
            paired_pairs += 1
            pair_cache[k] = not paired_compare(ox, oy, level=level, n_boot=n_boot, name_a=x.key,
                                               name_b=y.key).larger_than_noise
        return pair_cache[k]

    res = shortlist(cands, max_cost_per_1k=max_cost_per_1k, max_p95_ms=max_p95_ms,
                    max_high_severity=max_high_severity, min_pass_rate=min_pass_rate, weights=weights, tie_fn=tie)
    notes = list(res.notes)
    notes.append("ties: candidates on the same dataset are tied unless a paired comparison (bootstrap, standard "
                 "error and McNemar all agree) finds the pass-rate gap larger than noise"
                 + ("; across datasets, overlapping Wilson intervals" if len({h for h, _ in outcomes.values()}) > 1
                    else ""))
    notes.append("cost per 1k cases: candidate calls only (judge excluded), mean cost per answer × 1000; "
                 "unknown when any answer's price is unknown")
    payload = jsonable(res)
    for part in ("ranked", "excluded"):
        for item in payload[part]:
            item["candidate"].update(extra[item["candidate"]["key"]])
    payload["notes"] = notes
    payload["warnings"] = warnings
    payload["runs"] = [r.id for r in runs]
    payload["limits"] = {"max_cost_per_1k": max_cost_per_1k, "max_p95_ms": max_p95_ms,
                         "max_high_severity": max_high_severity, "min_pass_rate": min_pass_rate, "weights": weights}
    return payload


# ----------------------------------------------------------------------------- report data


def report_data(led: Ledger, run: Run, compare: tuple[str, str] | None = None,
                with_shortlist: bool = False, n_boot: int = 10000) -> dict[str, Any]:
    """Everything the HTML report shows, as plain data."""
    from benchrun.report.summary import build_summary

    summary = jsonable(build_summary(led, run))
    rows = _rows(led, run.id)
    order = _model_keys(run)
    snap = json.loads(run.spec_snapshot)
    by_case: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in sorted(rows, key=lambda r: (r["case_id"], r["model_key"], r["sample_index"])):
        by_case.setdefault(r["case_id"], {}).setdefault(r["model_key"], []).append({
            "sample": r["sample_index"], "status": r["status"], "answer": r["response_text"], "error": r["error"],
            "rules": json.loads(r["rules"] or "[]"), "judge_score": r["judge_score"], "judge_pass": r["judge_pass"],
            "judge_reason": r["judge_reason"], "failure_mode": r["judge_failure_mode"],
            "judge_error": r["judge_error"], "latency_ms": r["latency_ms"], "cost_usd": r["cost_usd"],
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
    points = []
    for m in summary["models"]:
        mrows = [r for r in rows if r["model_key"] == m["model_key"]]
        points.append({"key": m["model_key"], "pass_rate": m["pass_rate"]["estimate"], "low": m["pass_rate"]["low"],
                       "high": m["pass_rate"]["high"], "cost_per_1k": candidate_cost_per_1k(mrows)})
    data: dict[str, Any] = {"summary": summary, "cases": cases, "chart_points": points, "compare": None,
                            "shortlist": None}
    if compare is not None:
        a, b = (resolve_ref(led, ref, run.id) for ref in compare)
        data["compare"] = compare_payload(led, a, b, n_boot=n_boot)
    if with_shortlist:
        data["shortlist"] = shortlist_payload(led, [run.id], n_boot=n_boot)
    return jsonable(data)


# ----------------------------------------------------------------------------- terminal rendering


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"


def _iv_pts(iv: Mapping[str, Any] | None) -> str:
    return "n/a" if not iv else f"[{100 * iv['low']:+.1f}, {100 * iv['high']:+.1f}]"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _p(p: float | None) -> str:
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def render_compare(console: Console, d: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    a, b, c = d["a"], d["b"], d["comparison"]
    console.print(f"[bold]Compare[/bold] A = {escape(a['name'])} (run {a['run_id']})  vs  "
                  f"B = {escape(b['name'])} (run {b['run_id']})")
    for w in d["warnings"]:
        console.print(f"[bold red]WARNING: {escape(w)}[/bold red]")
    console.print(f"[bold]{escape(d['verdict'])}[/bold]")
    t = Table(title="Paired comparison (A − B)", title_justify="left")
    for col in ("measure", "A", "B", "A − B", "95% interval"):
        t.add_column(col, justify="left" if col == "measure" else "right")
    t.add_row(f"pass rate ({c['n_pairs']} paired cases)", _pct(c["pass_rate_a"]), _pct(c["pass_rate_b"]),
              _pts(c["difference"]) + " pts", f"bootstrap {_iv_pts(c['bootstrap'])}")
    t.add_row("", "", "", "", f"SE {_iv_pts(c['se_interval'])} ({c['se_method']})")
    mc = c["mcnemar"]
    if mc:
        t.add_row("McNemar exact", f"{mc['a_only']} A-only", f"{mc['b_only']} B-only", f"p = {_p(mc['p_value'])}",
                  mc["basis"])
    sc = c["score"]
    if sc:
        iv = sc["interval"]
        t.add_row(f"mean judge score ({sc['n_pairs']} cases)", _num(sc["mean_a"]), _num(sc["mean_b"]),
                  _num(sc["difference"], "+.2f"),
                  ("n/a" if not iv else f"[{iv['low']:+.2f}, {iv['high']:+.2f}]") + f" p = {_p(sc['p_value'])}")
    console.print(t)
    pw = d["power"]
    if pw["sentence"]:
        console.print(escape(pw["sentence"]))
    elif pw["min_detectable_difference"] is not None:
        console.print(f"smallest gap these cases detect with 80% power: about "
                      f"{100 * pw['min_detectable_difference']:.0f} points ({escape(pw['basis'])})")
    for n in c["notes"]:
        console.print(f"[dim]note: {escape(n)}[/dim]")
    g = Table(title="Per category and severity", title_justify="left")
    for col in ("group", "pairs", "A", "B", "A − B (pts)", "bootstrap", "McNemar p", ""):
        g.add_column(col, justify="left" if col in ("group", "") else "right")
    for grp in d["by_group"]:
        gc = grp["comparison"]
        flag = "too few pairs" if grp["too_few_pairs"] else ("larger than noise" if gc["larger_than_noise"] else "")
        g.add_row(f"{grp['dimension']}: {escape(grp['group'])}", str(gc["n_pairs"]), _pct(gc["pass_rate_a"]),
                  _pct(gc["pass_rate_b"]), _pts(gc["difference"]), _iv_pts(gc["bootstrap"]),
                  _p(gc["mcnemar"]["p_value"]) if gc["mcnemar"] else "n/a", flag)
    console.print(g)
    if d["flips"]:
        f = Table(title=f"Flips ({len(d['flips'])}), most severe first", title_justify="left")
        for col in ("severity", "case", "category", "A", "B"):
            f.add_column(col)
        for fl in d["flips"]:
            f.add_row(fl["severity"], escape(fl["case_id"]), escape(fl["category"]),
                      "pass" if fl["a_passed"] else "[red]fail[/red]", "pass" if fl["b_passed"] else "[red]fail[/red]")
        console.print(f)
    else:
        console.print("no flips: the models pass and fail the same cases")
    if d["multi_sample"]:
        m = Table(title="Several samples per case", title_justify="left")
        m.add_column("model")
        ks = sorted({int(k) for s in d["multi_sample"].values() for k in s["pass_at_k"]})
        for k in ks:
            m.add_column(f"pass@{k}", justify="right")
        for k in ks:
            m.add_column(f"pass^{k}", justify="right")
        m.add_column("consistency", justify="right")
        m.add_column("inconsistent cases", justify="right")
        for name, s in d["multi_sample"].items():
            m.add_row(escape(name), *[_pct(s["pass_at_k"].get(str(k))) for k in ks],
                      *[_pct(s["pass_hat_k"].get(str(k))) for k in ks], _pct(s["mean_consistency"]),
                      f"{s['inconsistent_cases']} of {s['n_cases']}")
        console.print(m)


def _short(v: Any, n: int = 60) -> str:
    s = "—" if v is None else str(v)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def render_diff(console: Console, d: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    n = len(d["differences"])
    console.print(f"[bold]Conditions[/bold] A = run {d['run_a']}  vs  B = run {d['run_b']}: {n} difference(s), "
                  f"{d['score_relevant_differences']} of them can change scores")
    if n:
        t = Table(show_header=True)
        for col in ("section", "field", "A", "B"):
            t.add_column(col)
        for x in d["differences"]:
            style = "bold" if x["affects_scores"] else "dim"
            t.add_row(x["section"], escape(x["field"]), escape(_short(x["a"])), escape(_short(x["b"])), style=style)
        console.print(t)
    if d["cases"]:
        cs = d["cases"]
        console.print(f"dataset cases: {len(cs['only_a'])} only in A, {len(cs['only_b'])} only in B, "
                      f"{len(cs['changed'])} changed" + (f" ({', '.join(cs['changed'][:10])})" if cs["changed"] else ""))
    console.print("same: " + (", ".join(d["same_sections"]) or "nothing"))


def render_reproduce(console: Console, d: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]Reproduction[/bold] of run {d['original_run']} as run {d['reproduction_run']} "
                  f"({d['mode']})")
    for fc in d.get("file_checks", []):
        style = "" if fc["status"] == "same" else "bold yellow"
        console.print(escape(fc["message"]), style=style)
    t = Table(title="Reproduction − original", title_justify="left")
    for col in ("model", "pass rate", "Δ pts [bootstrap]", "McNemar p", "flips", "answers changed", "Δ mean judge",
                "Δ cost", "Δ p50", "Δ p95", "version"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for m in d["models"]:
        c = m["comparison"]
        sc = c["score"]
        ver = m["resolved_models"]
        t.add_row(
            escape(m["model_key"]), f"{_pct(m['pass_rate_original'])} → {_pct(m['pass_rate_reproduction'])}",
            f"{_pts(c['difference'])} {_iv_pts(c['bootstrap'])}",
            _p(c["mcnemar"]["p_value"]) if c["mcnemar"] else "n/a", str(len(m["flips"])),
            f"{m['answers_changed']}/{m['answers_compared']}",
            _num(sc["difference"], "+.2f") if sc else "n/a",
            "n/a" if m["cost_usd"]["delta"] is None else f"${m['cost_usd']['delta']:+.6f}",
            "n/a" if m["latency_p50_ms"]["delta"] is None else f"{m['latency_p50_ms']['delta']:+.0f} ms",
            "n/a" if m["latency_p95_ms"]["delta"] is None else f"{m['latency_p95_ms']['delta']:+.0f} ms",
            "[red]changed[/red]" if ver["changed"] else "same",
        )
    console.print(t)
    for m in d["models"]:
        if m["version_note"]:
            console.print(f"[yellow]{escape(m['model_key'])}: {escape(m['version_note'])}[/yellow]")
        if m["flips"]:
            console.print(f"[bold]{escape(m['model_key'])} flips[/bold] (most severe first): " + ", ".join(
                f"{escape(f['case_id'])} ({f['severity']}: {'pass→fail' if f['b_passed'] else 'fail→pass'})"
                for f in m["flips"][:20]) + (" …" if len(m["flips"]) > 20 else ""))
    cond = d["conditions"]
    if cond["differences"]:
        console.print("conditions that differ: " + ", ".join(
            f"{x['section']}.{escape(x['field'])}" for x in cond["differences"][:12]))
    for n in d["notes"]:
        console.print(f"[dim]note: {escape(n)}[/dim]")
    style = "bold green" if d["reproduced"] else "bold red"
    console.print(escape(d["verdict"]), style=style)


def render_shortlist(console: Console, d: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    for w in d["warnings"]:
        console.print(f"[bold red]WARNING: {escape(w)}[/bold red]")
    t = Table(title="Shortlist", title_justify="left", caption=escape(d["method"]), caption_justify="left")
    for col in ("rank", "candidate", "pass rate (95% CI)", "high sev", "mean judge", "$/1k cases", "p50", "p95",
                "context", "$/1M in/out", "where", "frontier", "tied with"):
        t.add_column(col, justify="left" if col in ("candidate", "where", "tied with") else "right")
    for r in d["ranked"]:
        c = r["candidate"]
        pr = c["pass_rate"]
        judge = "n/a" if c["mean_judge_score"] is None else f"{c['mean_judge_score']:.2f} ({c['judge_calibration']})"
        price = ("n/a" if c["input_price_per_1m"] is None else
                 f"{c['input_price_per_1m']:g}/{_num(c['output_price_per_1m'], 'g')}")
        t.add_row(str(r["rank"]) + (f" ({r['score']:.2f})" if r["score"] is not None else ""), escape(c["key"]),
                  f"{_pct(pr['estimate'])} [{_pct(pr['low'])}, {_pct(pr['high'])}]",
                  str(c["high_severity_failures"]), escape(judge),
                  "unknown" if c["cost_per_1k_cases"] is None else f"${c['cost_per_1k_cases']:.4f}",
                  _num(c["latency_p50_ms"], ",.0f"), _num(c["latency_p95_ms"], ",.0f"),
                  _num(c["context_window"], ",d") if c["context_window"] else "n/a", price,
                  "local" if c["local"] else "hosted", "*" if r["pareto"] else "",
                  escape(", ".join(r["tied_with"])))
    console.print(t)
    if d["ranked"]:
        console.print("coverage: " + escape(d["ranked"][0]["candidate"]["coverage_note"] or "n/a"))
    for e in d["excluded"]:
        console.print(f"[red]excluded[/red] {escape(e['candidate']['key'])}: {escape('; '.join(e['reasons']))}")
    for n in d["notes"]:
        console.print(f"[dim]note: {escape(n)}[/dim]")


# ----------------------------------------------------------------------------- commands


def _cli() -> Any:
    from benchrun import cli

    return cli


def compare(
    a: Annotated[str, typer.Argument(help="Model A: MODEL_KEY with --run, or RUN_ID:MODEL_KEY.")],
    b: Annotated[str, typer.Argument(help="Model B: MODEL_KEY with --run, or RUN_ID:MODEL_KEY.")],
    run: Annotated[str | None, typer.Option("--run", help="Run holding both models (give A and B as model keys).")] = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Is A better than B? Paired per case: pass-rate gap with intervals, McNemar, judge score, flips, power."""
    cli = _cli()
    led = cli._ledger(ledger)
    ra, rb = resolve_ref(led, a, run), resolve_ref(led, b, run)
    if ra[0].id == rb[0].id and ra[1] == rb[1]:
        from benchrun.errors import UsageError

        raise UsageError(f"A and B are the same model ({ra[1]} in run {ra[0].id}); compare two different ones")
    payload = compare_payload(led, ra, rb)
    if json_out:
        cli._print_json(payload)
    else:
        for w in payload["warnings"]:
            cli.err.print(f"WARNING: {w}", markup=False)
        render_compare(cli.out, payload)


def reproduce(
    run_id: Annotated[str, typer.Argument(help="Run to reproduce (id or unique prefix).")],
    from_cache: Annotated[bool, typer.Option("--from-cache", help="Replay every call from the ledger cache; no calls."
                                             )] = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-run a recorded run from its stored snapshot and say whether the result reproduced (exit 1 if not)."""
    from benchrun.reproduce import reproduce as do_reproduce

    cli = _cli()
    led = cli._ledger(ledger)
    if not json_out:
        cli.err.print(f"reproducing run {led.get_run(run_id).id} " + ("from the cache (no calls)" if from_cache else
                                                                       "with fresh calls (cache not read)"))
    d = do_reproduce(led, run_id, from_cache=from_cache, show_progress=not json_out)
    if json_out:
        cli._print_json(d)
    else:
        render_reproduce(cli.out, d)
    if not d["reproduced"]:
        raise typer.Exit(1)


def diff(
    run_a: Annotated[str, typer.Argument(help="First run id (or prefix).")],
    run_b: Annotated[str, typer.Argument(help="Second run id (or prefix).")],
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What differs in two runs' conditions (models, prompts, sampling, dataset, rubric, judge, versions)."""
    cli = _cli()
    led = cli._ledger(ledger)
    d = conditions_diff(led.get_run(run_a), led.get_run(run_b))
    if json_out:
        cli._print_json(jsonable(d))
    else:
        render_diff(cli.out, d)


def shortlist(
    run_ids: Annotated[list[str], typer.Argument(help="One or more run ids; every model in them is a candidate.")],
    max_cost_per_1k: Annotated[float | None, typer.Option("--max-cost-per-1k", min=0,
                                                          help="Exclude above this USD per 1,000 cases.")] = None,
    max_p95_ms: Annotated[float | None, typer.Option("--max-p95-ms", min=0, help="Exclude above this p95 latency.")
                          ] = None,
    max_high_severity: Annotated[int | None, typer.Option("--max-high-severity", min=0,
                                                          help="Exclude with more high-severity failures.")] = None,
    min_pass_rate: Annotated[float | None, typer.Option("--min-pass-rate", min=0, max=1,
                                                        help="Exclude below this pass rate (0-1).")] = None,
    weights: Annotated[str | None, typer.Option("--weights", help="e.g. quality=0.6,cost=0.3,latency=0.1")] = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Decision table: exclude by limits (with reasons), rank the rest, mark ties and the quality/cost frontier.

    Exits 1 when limits were given and every candidate is excluded.
    """
    cli = _cli()
    led = cli._ledger(ledger)
    d = shortlist_payload(led, run_ids, max_cost_per_1k, max_p95_ms, max_high_severity, min_pass_rate,
                          parse_weights(weights))
    if json_out:
        cli._print_json(d)
    else:
        render_shortlist(cli.out, d)
    if not d["ranked"] and d["excluded"]:
        cli.err.print("no candidate meets the limits")
        raise typer.Exit(1)


def report(
    run_id: Annotated[str, typer.Argument(help="Run id (or prefix).")],
    html: Annotated[Path | None, typer.Option("--html", help="Write one self-contained HTML file here (required).")
                    ] = None,
    compare_: Annotated[str | None, typer.Option("--compare", help="Add a paired comparison: MODEL_A,MODEL_B.")
                        ] = None,
    with_shortlist: Annotated[bool, typer.Option("--shortlist", help="Add the shortlist table.")] = False,
    ledger: LedgerOpt = None,
) -> None:
    """One self-contained HTML report (no network needed): conditions, tables, charts, per-case drill-down."""
    from benchrun.errors import UsageError
    from benchrun.report.html import render_report

    if html is None:  # checked here, not by typer, so the message is our one line and exit code 2
        raise UsageError("give the output file: benchrun report RUN_ID --html report.html")
    cli = _cli()
    led = cli._ledger(ledger)
    run = led.get_run(run_id)
    pair: tuple[str, str] | None = None
    if compare_:
        parts = [p.strip() for p in compare_.split(",")]
        if len(parts) != 2 or not all(parts):
            raise UsageError("--compare needs two model keys separated by a comma, e.g. --compare good,bad")
        pair = (parts[0], parts[1])
    data = report_data(led, run, pair, with_shortlist)
    try:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_report(data), encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {html}: {e.strerror}") from None
    cli.out.print(f"wrote {html}")


def register(app: typer.Typer) -> None:
    """Add compare, reproduce, diff, shortlist and report to the main app."""
    app.command("compare")(compare)
    app.command("reproduce")(reproduce)
    app.command("diff")(diff)
    app.command("shortlist")(shortlist)
    app.command("report")(report)
