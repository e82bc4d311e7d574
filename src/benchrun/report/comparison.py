"""Ledger rows to plain comparison data: one model against another, and one run's conditions against another's.

``compare_payload`` (paired comparison of two models, same run or two runs) and ``conditions_diff``
(what differs in two runs' recorded conditions) return JSON-ready dicts that `benchrun compare`,
`benchrun diff`, `benchrun reproduce`, the HTML report and the Python API render or return. The
statistics themselves live in `benchrun.analysis.compare`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from benchrun.report.plain import jsonable

if TYPE_CHECKING:
    from benchrun.analysis.compare import Outcome
    from benchrun.ledger import Ledger
    from benchrun.ledger.tables import Run


def outcomes_for(rows: Iterable[Mapping[str, Any]], model_key: str, case_ids: set[str] | None = None) -> list[Outcome]:
    """One `Outcome` per result row of ``model_key``; errored rows (and the unscored ``answered`` rows of a
    pairwise run) become ``passed=None``."""
    from benchrun.analysis.compare import Outcome

    out = []
    for r in rows:
        if r["model_key"] != model_key or (case_ids is not None and r["case_id"] not in case_ids):
            continue
        passed = None if r["status"] in ("error", "answered") else r["status"] == "passed"
        out.append(Outcome(r["case_id"], int(r["sample_index"]), passed, r["judge_score"], r["category"], r["severity"]))
    return out


def _unparsed(row: Mapping[str, Any]) -> bool:
    rules = row.get("rules") or ""
    return '"unparsed"' in rules and any(o.get("unparsed") for o in json.loads(rules))


def unparsed_warning(rows_a: Iterable[Mapping[str, Any]], rows_b: Iterable[Mapping[str, Any]], key_a: str, key_b: str,
                     case_ids: set[str] | None, name_a: str, name_b: str) -> str | None:
    """A warning when most of the (case, sample) cells where A and B differ are ones where the model that did
    not pass gave a multiple-choice answer naming no choice (or several): a gap of format, not knowledge."""
    def cells(rows: Iterable[Mapping[str, Any]], key: str) -> dict[tuple[str, int], Mapping[str, Any]]:
        return {(r["case_id"], int(r["sample_index"])): r for r in rows
                if r["model_key"] == key and (case_ids is None or r["case_id"] in case_ids)}

    ca, cb = cells(rows_a, key_a), cells(rows_b, key_b)
    differ = by_unparsed = 0
    for k in ca.keys() & cb.keys():
        ra, rb = ca[k], cb[k]
        if "error" in (ra["status"], rb["status"]) or (ra["status"] == "passed") == (rb["status"] == "passed"):
            continue
        differ += 1
        by_unparsed += _unparsed(rb if ra["status"] == "passed" else ra)
    if differ == 0 or 2 * by_unparsed <= differ:
        return None
    return (f"MOSTLY UNPARSED: in {by_unparsed} of the {differ} result(s) where {name_a} and {name_b} differ, the "
            "one that did not pass gave a multiple-choice answer that named no choice (or several): the gap may "
            "be about answer format, not knowledge; check the prompt's answer instruction (`runs show RUN --case ID`)")


def rows_of(led: Ledger, run_id: str) -> list[dict[str, Any]]:
    return led.result_rows(run_id)


def model_keys(run: Run) -> list[str]:
    return [m["key"] for m in json.loads(run.models)]


def case_hashes(run: Run) -> dict[str, str]:
    from benchrun.hashing import content_hash

    return {c["id"]: content_hash(c) for c in json.loads(run.spec_snapshot)["dataset"]["cases"]}


def resolve_ref(led: Ledger, ref: str, run_id: str | None) -> tuple[Run, str]:
    """``MODEL_KEY`` (with ``--run``), ``RUN_ID:MODEL_KEY``, or a ``RUN_ID`` whose run has a single model."""
    from benchrun.errors import UsageError

    if run_id is not None:
        run = led.get_run(run_id)
        if ref in model_keys(run):
            return run, ref
    if ":" in ref:
        rid, key = ref.split(":", 1)
        run = led.get_run(rid)
        if key not in model_keys(run):
            raise UsageError(f"run {run.id} has no model '{key}'; it has: {', '.join(model_keys(run))}")
        return run, key
    if run_id is not None:
        run = led.get_run(run_id)
        raise UsageError(f"run {run.id} has no model '{ref}'; it has: {', '.join(model_keys(run))}")
    run = led.get_run(ref)
    keys = model_keys(run)
    if len(keys) != 1:
        raise UsageError(f"run {run.id} has {len(keys)} models ({', '.join(keys)}); "
                         f"name one as {run.id}:MODEL_KEY, or give MODEL_KEY with --run {run.id}")
    return run, keys[0]


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
        ha, hb = case_hashes(run_a), case_hashes(run_b)
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
            f"({_scoring_name(run_a)} vs {_scoring_name(run_b)}); a gap may come from the scoring, not the models."
        )
    rows_a = rows_of(led, run_a.id)
    rows_b = rows_a if same_run else rows_of(led, run_b.id)
    oa, ob = outcomes_for(rows_a, key_a, case_ids), outcomes_for(rows_b, key_b, case_ids)
    mostly_unparsed = unparsed_warning(rows_a, rows_b, key_a, key_b, case_ids, name_a, name_b)
    if mostly_unparsed:
        warnings.append(mostly_unparsed)
    cmp = paired_compare(oa, ob, level=level, n_boot=n_boot, seed=seed, name_a=name_a, name_b=name_b)
    groups = breakdown_compare(oa, ob, level=level, n_boot=n_boot, seed=seed, name_a=name_a, name_b=name_b)
    power: dict[str, Any] = {"sentence": None, "min_detectable_difference": None, "basis": None}
    if cmp.n_pairs and cmp.pass_rate_a is not None and cmp.pass_rate_b is not None:
        power["min_detectable_difference"] = min_detectable_difference(cmp.n_pairs, cmp.pass_rate_b, 1 - level)
        power["basis"] = (f"{cmp.n_pairs} paired cases, from {name_b}'s pass rate, exact power of the two-sided "
                          f"exact McNemar test at {1 - level:.2g}, 80% power, models failing independently "
                          "(conservative)"
                          + ("; with several samples per case a lower bound" if cmp.max_samples_per_case > 1 else ""))
        if not cmp.larger_than_noise:
            power["sentence"] = power_sentence(cmp.n_pairs, cmp.pass_rate_a, cmp.pass_rate_b, 1 - level,
                                               samples_per_case=cmp.max_samples_per_case)
    multi = multi_stats = None
    if max(run_a.samples_per_case, run_b.samples_per_case) > 1:
        ks = sorted({1, 3, 5, max(run_a.samples_per_case, run_b.samples_per_case)})
        multi = {name_a: multi_sample_summary(oa, ks), name_b: multi_sample_summary(ob, ks)}
        multi_stats = _pass_at_k_stats(oa, ob, ks, name_a, name_b, level, n_boot, seed)
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
        "pass_at_k": multi_stats,
    })


def _pass_at_k_stats(oa: Any, ob: Any, ks: list[int], name_a: str, name_b: str, level: float, n_boot: int,
                     seed: int) -> dict[str, Any]:
    """pass@k with bootstrap intervals over problems for each model, and the paired difference per k
    with its exact sign-flip test (see `benchrun.analysis.passk.pass_at_k_tests`)."""
    from benchrun.analysis.passk import counts_from_outcomes, pass_at_k_by_k, pass_at_k_tests

    ca, cb = counts_from_outcomes(oa), counts_from_outcomes(ob)
    boot = min(n_boot, 2000)

    def drop_per_problem(v: Any) -> dict[str, Any]:
        d = v.to_dict()
        d.pop("per_problem", None)
        return d

    return {
        "models": {name: {str(k): drop_per_problem(v) for k, v in pass_at_k_by_k(c, ks, confidence=level,
                                                                                   n_boot=boot, seed=seed).items()}
                   for name, c in ((name_a, ca), (name_b, cb))},
        "differences": [t.to_dict() for t in pass_at_k_tests(ca, cb, ks, confidence=level, n_boot=boot, seed=seed)],
        "estimator": "Chen et al. (2021) unbiased pass@k, mean over problems with at least k scored samples",
    }


def _scoring_name(run: Run) -> str:
    if not run.judge_model:
        return "rules only, no judge"
    return f"{run.rubric_name} v{run.rubric_version} / {run.judge_model}"


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
    if spec.fewshot is not None:  # shown only when set, so diffs of runs without few-shot stay as they were
        sec["prompts"]["fewshot"] = json.dumps(spec.fewshot.model_dump(mode="json", by_alias=True), sort_keys=True)
        if snap.get("fewshot_dataset") is not None:  # from a file: its content, which the name alone does not tell
            from benchrun.spec import Dataset

            sec["prompts"]["fewshot.dataset_hash"] = Dataset.model_validate(snap["fewshot_dataset"]).hash
    for key, params in json.loads(run.sampling).items():
        for p, v in params.items():
            sec["sampling"][f"{key}.{p}"] = v
    sec["samples"]["samples_per_case"] = run.samples_per_case
    sec["dataset"].update(name=run.dataset_name, version=run.dataset_version, hash=run.dataset_hash,
                          cases=len(snap["dataset"]["cases"]))
    if spec.judge is None:  # scored by rules only: a diff against a judged run shows the judge as added/removed
        sec["judge"].update(model=None, judge_when=None)
    else:
        sec["rubric"].update(name=run.rubric_name, version=run.rubric_version, hash=run.rubric_hash)
        sec["judge"].update(model=run.judge_model, api_base=spec.judge.api_base, prompt_hash=run.judge_prompt_hash,
                            both_orders=spec.judge.both_orders)
        if spec.judge_when != "always":  # shown only when set, so diffs of older runs stay as they were
            sec["judge"]["judge_when"] = spec.judge_when
        if spec.judge.pairwise:  # likewise: pointwise runs' diffs do not change
            pairs = spec.judge.pairs
            sec["judge"].update(mode="pairwise", pair_seed=spec.judge.pair_seed,
                                pairs=pairs if isinstance(pairs, str) or pairs is None else pairs.model_dump())
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
        ha, hb = case_hashes(a), case_hashes(b)
        cases = {"only_a": sorted(set(ha) - set(hb)), "only_b": sorted(set(hb) - set(ha)),
                 "changed": sorted(k for k in set(ha) & set(hb) if ha[k] != hb[k])}
    return {"run_a": a.id, "run_b": b.id, "differences": diffs, "same_sections": same, "cases": cases,
            "score_relevant_differences": sum(1 for d in diffs if d["affects_scores"])}
