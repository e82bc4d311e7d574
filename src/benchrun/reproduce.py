"""`benchrun reproduce`: re-run exactly what the ledger recorded and say whether the answer came out the same.

The re-run always uses the stored spec snapshot (spec + dataset + rubric as they were), never
today's files. The files on disk are only *checked*: if the dataset, rubric or spec changed (or
are gone), the user is told, because that usually explains why a fresh ``benchrun run`` of the
same spec gives different numbers.

Two modes:

* default: fresh calls (the cache is not read), so provider drift shows up;
* ``--from-cache``: replay every call from the ledger's response cache, no call at all. Every
  needed answer and judgement is looked up *before* the run starts; if one is missing, nothing
  runs and the user gets the list.

The comparison with the original run is built from the paired statistics in
`benchrun.analysis.compare` (reproduction = A, original = B, so differences are new - old).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchrun.ledger import Ledger
from benchrun.ledger.tables import Run
from benchrun.spec import Case, LoadedSpec, resolve_path

if TYPE_CHECKING:
    from benchrun.runner import JudgedAhead, Progress


@dataclass(frozen=True)
class FileCheck:
    """Whether a file the run was made from still hashes the same. ``status``: same | changed | missing | unreadable."""

    kind: str  # spec | dataset | rubric
    path: str | None
    status: str
    recorded_hash: str
    disk_hash: str | None = None
    detail: str | None = None

    def sentence(self) -> str:
        where = self.path or "(no path recorded)"
        if self.status == "same":
            return f"{self.kind} {where}: unchanged (hash {self.recorded_hash[:12]})"
        if self.status == "changed":
            return (f"{self.kind} {where} CHANGED since the run (on disk {str(self.disk_hash)[:12]}, recorded "
                    f"{self.recorded_hash[:12]}); re-running from the stored snapshot, not the file")
        if self.status == "missing":
            return f"{self.kind} {where} not found; re-running from the stored snapshot"
        return f"{self.kind} {where} cannot be read ({self.detail}); re-running from the stored snapshot"


def check_files(run: Run) -> list[FileCheck]:
    """Compare the spec, dataset and rubric files on disk with the run's recorded hashes.

    When the run recorded its files' byte digests (``source_files``) and every file on disk still has those
    bytes, the recorded hashes are the answer and nothing is parsed (`_checks_by_digest`, all or nothing);
    otherwise each file is loaded and its content hash computed, as the run computed it.
    Paths: the spec path as recorded (relative paths are relative to the current directory, as
    when the run was made), and the dataset / rubric paths from the stored spec, relative to it.
    """
    from benchrun.errors import BenchrunError
    from benchrun.spec import load_dataset, load_rubric, load_run_spec

    snap = json.loads(run.spec_snapshot)
    spec_path = Path(run.spec_path) if run.spec_path else None
    base = spec_path.parent if spec_path is not None else Path.cwd()
    if spec_path is not None and (fast := _checks_by_digest(run, snap, spec_path, base)) is not None:
        return fast
    out: list[FileCheck] = []
    # the spec file loads its dataset and rubric: their hashes are reused below when they are the same files
    # (loading a 2,000-case dataset costs most of a second)
    loaded_hashes: dict[Path, str] = {}
    if spec_path is None or not spec_path.exists():
        out.append(FileCheck("spec", str(spec_path) if spec_path else None, "missing", run.spec_hash))
    else:
        try:
            disk = load_run_spec(spec_path)
        except BenchrunError as e:
            out.append(FileCheck("spec", str(spec_path), "unreadable", run.spec_hash, detail=str(e)))
        else:
            ds_hash = disk.dataset.hash  # once: the spec hash includes it
            h = disk.spec_hash_with(ds_hash)
            out.append(FileCheck("spec", str(spec_path), "same" if h == run.spec_hash else "changed", run.spec_hash, h))
            loaded_hashes[resolve_path(base, disk.spec.dataset)] = ds_hash
            if disk.spec.rubric is not None and disk.rubric is not None:
                loaded_hashes[resolve_path(base, disk.spec.rubric)] = disk.rubric.hash
    files: list[tuple[str, str, str, Any]] = [("dataset", snap["spec"]["dataset"], run.dataset_hash, load_dataset)]
    if snap["spec"].get("rubric") is not None:  # none in a run scored by rules only
        files.append(("rubric", snap["spec"]["rubric"], run.rubric_hash, load_rubric))
    for kind, rel, recorded, loader in files:
        p = resolve_path(base, rel)
        if not p.exists():
            out.append(FileCheck(kind, str(p), "missing", recorded))
            continue
        if p in loaded_hashes:
            h = loaded_hashes[p]
        else:
            try:
                h = loader(p).hash
            except BenchrunError as e:
                out.append(FileCheck(kind, str(p), "unreadable", recorded, detail=str(e)))
                continue
        out.append(FileCheck(kind, str(p), "same" if h == recorded else "changed", recorded, h))
    return out


def _checks_by_digest(run: Run, snap: dict[str, Any], spec_path: Path, base: Path) -> list[FileCheck] | None:
    """`check_files` without parsing anything, when the snapshot records the files the run was loaded from
    (``source_files``: each file's SHA-256 and the hash it gave, `LoadedSpec.source_record`) and every one
    of them still has those bytes; None otherwise (a file changed, is gone or was added, or the run was not
    loaded from files), and the files are then parsed and hashed.

    All or nothing: the spec's hash covers its dataset, rubric and few-shot file, so it is known only when
    all of them are byte-identical. The same bytes parse to the same hash, so the result is the one the
    slow path gives (`tests/test_reproduce.py` checks both).
    """
    from benchrun.io import file_sha256
    from benchrun.spec import valid_source_record

    rec = valid_source_record(snap.get("source_files"))
    spec = snap.get("spec")
    if rec is None or not isinstance(spec, dict):
        return None
    try:
        paths = {"spec": spec_path, "dataset": resolve_path(base, spec["dataset"])}
        if spec.get("rubric") is not None:
            paths["rubric"] = resolve_path(base, spec["rubric"])
        fewshot = spec.get("fewshot")
        if isinstance(fewshot, dict) and fewshot.get("from", "same") != "same":
            paths["fewshot_dataset"] = resolve_path(base, fewshot["from"])
    except (KeyError, TypeError, ValueError):  # a ledger row is untrusted: parse the files instead
        return None
    if set(paths) != set(rec) or any(file_sha256(p) != rec[kind]["sha256"] for kind, p in paths.items()):
        return None
    recorded = {"spec": run.spec_hash, "dataset": run.dataset_hash, "rubric": run.rubric_hash}
    return [FileCheck(kind, str(paths[kind]), "same" if rec[kind]["hash"] == recorded[kind] else "changed",
                      recorded[kind], rec[kind]["hash"]) for kind in ("spec", "dataset", "rubric") if kind in paths]


def cache_misses(loaded: LoadedSpec, ledger: Ledger, limit: int | None = None,
                 found: dict[str, dict[str, Any]] | None = None,
                 judged_out: dict[tuple[int, str], JudgedAhead] | None = None) -> tuple[int, list[str]]:
    """Calls of this spec that the response cache cannot serve: ``(count, first descriptions)``.

    Walks exactly the calls the runner would make with the cache on: every candidate answer
    (case × candidate × sample), the judge call on that cached answer, and the judge's one
    re-ask when the cached verdict does not parse. With zero misses a cached run makes no call.
    ``found``, when given, receives every cache entry read on the way (``{key: response}``), so a
    replay can hand them to the runner (`Runner`'s ``cache_entries``) instead of reading them again.
    ``judged_out``, when given, receives what the walk worked out for each cached answer's judge call
    (`runner.JudgedAhead`: its messages, cache key and the cached verdict as parsed), for `Runner`'s
    ``judged_ahead``, so a replay renders, hashes and parses each of them once.
    """
    from benchrun import runner
    from benchrun.scoring import judge as judge_mod

    spec, rubric = loaded.spec, loaded.rubric
    jparams = runner.judge_params(loaded)
    structured = spec.judge is not None and spec.judge.structured_output != "none"  # parsed as the runner parses
    count = 0
    shown: list[str] = []
    answers: dict[tuple[str, str], str] = {}  # cached answers, for the pairwise judge's calls

    def miss(text: str) -> None:
        nonlocal count
        count += 1
        if limit is None or len(shown) < limit:
            shown.append(text)

    # The same walk in three passes (answers, verdicts, re-asks), each looked up in bulk; the misses are then
    # listed cell by cell, in the order a one-by-one walk finds them.
    cells: list[tuple[str, Case, str, str]] = []  # (where, case as asked, model key, candidate answer key)
    params_of = {cand.key: spec.sampling_for(cand).as_params() for cand in spec.candidates}
    for base in loaded.cases():
        for cand in spec.candidates:
            params = params_of[cand.key]
            base_msgs = runner.candidate_messages(loaded, cand, base)
            for i in range(spec.samples_per_case):
                case = loaded.case_for_sample(base, i)  # shuffle_choices: sample i is choice order i
                msgs = base_msgs if case is base else runner.candidate_messages(loaded, cand, case)
                cells.append((f"case {case.id} × {cand.key} sample {i}", case, cand.key,
                              runner.cache_key(cand, msgs, params, i, "candidate")))
    cached = ledger.cache_get_many(k for *_, k in cells)
    judged: dict[int, tuple[list[dict[str, str]], str]] = {}  # cell -> (judge messages, judge key)
    for n, (_, case, model_key, key) in enumerate(cells):
        hit = cached.get(key)
        if hit is None or hit.get("text") is None:
            continue
        answers[(case.id, model_key)] = hit["text"]
        if loaded.judged(case):
            assert spec.judge is not None and rubric is not None
            jmsgs = judge_mod.judge_messages(rubric, case, hit["text"])
            judged[n] = (jmsgs, runner.cache_key(spec.judge, jmsgs, jparams, 0, "judge"))
    verdicts = ledger.cache_get_many(k for _, k in judged.values())
    reasks: dict[int, str] = {}  # cell -> re-ask key, for cached verdicts that do not parse
    for n, (jmsgs, jkey) in judged.items():
        jhit = verdicts.get(jkey)
        if jhit is None or jhit.get("text") is None:
            continue
        assert spec.judge is not None and rubric is not None
        parsed: judge_mod.Verdict | judge_mod.JudgeFormatError
        try:
            parsed = judge_mod.parse_verdict(rubric, jhit["text"], structured)
        except judge_mod.JudgeFormatError as e:
            parsed = e
            rmsgs = judge_mod.reask_messages(jmsgs, jhit["text"], str(e), rubric)
            reasks[n] = runner.cache_key(spec.judge, rmsgs, jparams, 0, "judge")
        if judged_out is not None:
            _, case, _, key = cells[n]
            judged_out[(id(case), cached[key]["text"])] = runner.JudgedAhead(jmsgs, jkey, jhit["text"], parsed)
    reasked = ledger.cache_get_many(reasks.values())
    if found is not None:
        found.update(cached)
        found.update(verdicts)
        found.update(reasked)
    for n, (where, _, _, key) in enumerate(cells):
        hit = cached.get(key)
        if hit is None or hit.get("text") is None:
            miss(f"{where}: answer")
        elif n in judged:
            jhit = verdicts.get(judged[n][1])
            if jhit is None or jhit.get("text") is None:
                miss(f"{where}: judge verdict")
            elif n in reasks and reasks[n] not in reasked:
                miss(f"{where}: judge re-ask")
    if spec.judge is not None and spec.judge.pairwise:
        from benchrun.pairwise_run import pairwise_cache_misses

        pairwise_cache_misses(loaded, ledger, answers, miss)
    return count, shown


def _resolved(run: Run) -> dict[str, list[str]]:
    return {m["key"]: list(m.get("resolved_models") or []) for m in json.loads(run.models)}


def _delta(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else new - old


def reproduction_diff(ledger: Ledger, original: Run, reproduction: Run, from_cache: bool = False,
                      level: float = 0.95, n_boot: int = 10000,
                      reproduction_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Compare a reproduction run with its original: per-model paired statistics, flips, cost,
    latency and model-version changes, and a verdict.

    Per model, ``comparison`` is `paired_compare(reproduction, original)`, so ``difference`` is
    new - old. A model is *reproduced within noise* when neither its pass-rate difference (the
    paired exact test of `paired_compare`) nor its judge-score difference (paired t interval
    excludes 0, or every case moved by the same non-zero amount) is larger than noise, and the
    reproduction has no more errored cells than the original. With several models these are
    several tests: their p-values are Holm-adjusted together (``p_adjusted``), so a run that
    reproduced is called "NOT reproduced" by chance at most 1 - level of the time. Flips inside the noise are listed
    but do not fail the verdict: at temperature > 0 a few flips are expected.
    ``reproduction_rows``: the reproduction's result rows when the caller already has them (`RunOutcome.rows`).
    """
    from benchrun.analysis.breakdown import summarize
    from benchrun.analysis.compare import flips, paired_compare
    from benchrun.analysis.stats import holm_adjust
    from benchrun.report.comparison import conditions_diff, outcomes_for
    from benchrun.report.plain import jsonable

    rows_o = ledger.result_rows(original.id)
    rows_n = reproduction_rows if reproduction_rows is not None else ledger.result_rows(reproduction.id)
    order = [m["key"] for m in json.loads(original.models)]
    sum_o = {s.model_key: s for s in summarize(rows_o, order)}
    sum_n = {s.model_key: s for s in summarize(rows_n, order)}
    ver_o, ver_n = _resolved(original), _resolved(reproduction)
    alpha = 1 - level
    models: list[dict[str, Any]] = []
    problems: list[str] = []
    outs = {key: (outcomes_for(rows_n, key), outcomes_for(rows_o, key)) for key in order}
    cmps = {key: paired_compare(*outs[key], level=level, n_boot=n_boot, name_a="reproduction", name_b="original")
            for key in order}
    # one family of tests: every model's pass-rate test and judge-score test, Holm-adjusted
    family: list[tuple[str, str, float]] = []
    for key, c in cmps.items():
        if c.test is not None and c.n_pairs >= 2:
            family.append((key, "pass", c.test.p_value))
        if c.score is not None and c.score.n_pairs >= 2 and c.score.p_value is not None:
            family.append((key, "score", c.score.p_value))
    adjusted = {(k, what): adj for (k, what, _), adj in zip(family, holm_adjust([p for *_, p in family]), strict=True)}
    for key in order:
        a, b = outs[key]
        cmp = cmps[key]
        fl = flips(a, b)
        text_o = {(r["case_id"], r["sample_index"]): r["response_text"] for r in rows_o if r["model_key"] == key}
        text_n = {(r["case_id"], r["sample_index"]): r["response_text"] for r in rows_n if r["model_key"] == key}
        shared = set(text_o) & set(text_n)
        changed_answers = sorted(k for k in shared if text_o[k] != text_n[k])
        so, sn = sum_o.get(key), sum_n.get(key)
        score_beyond = False
        if cmp.score is not None and cmp.score.interval is not None and cmp.score.n_pairs >= 2:
            iv = cmp.score.interval
            excludes = iv.low > 0 or iv.high < 0
            score_beyond = excludes and (cmp.score.p_value is None or adjusted[(key, "score")] < alpha)
        err_o = so.errors if so else 0
        err_n = sn.errors if sn else 0
        reasons: list[str] = []
        pass_adj = adjusted.get((key, "pass"))
        if pass_adj is not None and pass_adj < alpha:
            reasons.append(f"pass rate moved {100 * (cmp.difference or 0):+.1f} points, larger than noise "
                           f"(Holm-adjusted p={pass_adj:.3g})")
        if score_beyond and cmp.score is not None:
            reasons.append(f"mean judge score moved {cmp.score.difference:+.2f}, larger than noise")
        if err_n > err_o:
            reasons.append(f"{err_n} errored cells (original {err_o})")
        if ver_o.get(key, []) != ver_n.get(key, []):
            note = f"model version changed: {ver_o.get(key) or ['?']} -> {ver_n.get(key) or ['?']}"
        else:
            note = None
        for r in reasons:
            problems.append(f"{key}: {r}")
        models.append({
            "model_key": key,
            "reproduced": not reasons,
            "reasons": reasons,
            "pass_rate_original": so.pass_rate.estimate if so else None,
            "pass_rate_reproduction": sn.pass_rate.estimate if sn else None,
            "comparison": cmp,
            "p_adjusted": {"pass_rate": pass_adj, "judge_score": adjusted.get((key, "score"))},
            "flips": fl,
            "answers_changed": len(changed_answers),
            "answers_compared": len(shared),
            "changed_answer_cells": [f"{c} sample {i}" for c, i in changed_answers[:50]],
            "errors_original": err_o,
            "errors_reproduction": err_n,
            "cost_usd": {"original": so.cost_usd if so else None, "reproduction": sn.cost_usd if sn else None,
                         "delta": _delta(sn.cost_usd if sn else None, so.cost_usd if so else None),
                         "unknown_calls_original": so.cost_unknown_calls if so else None,
                         "unknown_calls_reproduction": sn.cost_unknown_calls if sn else None},
            "latency_p50_ms": {"original": so.latency_p50_ms if so else None,
                               "reproduction": sn.latency_p50_ms if sn else None,
                               "delta": _delta(sn.latency_p50_ms if sn else None, so.latency_p50_ms if so else None)},
            "latency_p95_ms": {"original": so.latency_p95_ms if so else None,
                               "reproduction": sn.latency_p95_ms if sn else None,
                               "delta": _delta(sn.latency_p95_ms if sn else None, so.latency_p95_ms if so else None)},
            "resolved_models": {"original": ver_o.get(key, []), "reproduction": ver_n.get(key, []),
                                "changed": ver_o.get(key, []) != ver_n.get(key, [])},
            "version_note": note,
        })
    pairwise = None
    if ledger.pair_judgements(original.id) or ledger.pair_judgements(reproduction.id):  # else pairwise_diff is None
        from benchrun.pairwise_run import pairwise_diff  # (imports numpy and the arena models: only when needed)

        pairwise = pairwise_diff(ledger, original, reproduction, level)
    if pairwise is not None:
        problems.extend(pairwise["problems"])
    reproduced = not problems
    if reproduced:
        n_flips = sum(len(m["flips"]) for m in models)
        verdict = "reproduced within noise" + (f" ({n_flips} flip(s) inside the noise; see the list)" if n_flips else
                                               " (no case flipped)")
    else:
        verdict = "NOT reproduced: " + "; ".join(problems)
    notes: list[str] = []
    if original.status != "completed":
        notes.append(f"the original run is '{original.status}': only the results it recorded can be compared "
                     "(see the unpaired counts in each comparison's notes).")
    if from_cache:
        notes.append("replayed from the response cache: answers, costs and latencies are the recorded ones, so only "
                     "scoring changes (rules, judge parsing) can show up; run without --from-cache to detect drift.")
    return jsonable({
        "original_run": original.id,
        "reproduction_run": reproduction.id,
        "mode": "from-cache" if from_cache else "fresh calls",
        "reproduced": reproduced,
        "verdict": verdict,
        "models": models,
        "conditions": conditions_diff(original, reproduction),
        "notes": notes,
        **({"pairwise": pairwise} if pairwise is not None else {}),
    })


def reproduce(ledger: Ledger, run_id: str, from_cache: bool = False, n_boot: int = 10000, *,
              unsafe_exec: bool = False, confirmed: bool = False, on_progress: Callable[[Progress], None] | None = None,
              on_start: Callable[[], None] | None = None,
              interrupt_guard: Callable[[], AbstractContextManager[Any]] | None = None) -> dict[str, Any]:
    """Re-run RUN_ID from its stored snapshot as a new run and compare. Returns the diff payload.

    Raises `UsageError` when ``from_cache`` is set and some call is not in the cache (nothing
    is run then), when the snapshot reads a variable or calls a host that the spec file on disk
    does not (or that file is absent) and ``confirmed`` is not set (see `benchrun.credentials`),
    and `RunAborted` when the new run cannot complete. The hooks are those of
    `benchrun.execution.execute_run`.
    """
    from benchrun import credentials, providers, runner
    from benchrun.errors import RunAborted, UsageError
    from benchrun.execution import execute_run

    providers.collect_env_secrets()
    original = ledger.get_run(run_id)
    checks = check_files(original)
    from pydantic import ValidationError

    try:
        loaded = LoadedSpec.from_snapshot(json.loads(original.spec_snapshot))
    except (ValidationError, ValueError, KeyError, TypeError) as e:
        from benchrun.spec import _format_validation_error

        detail = _format_validation_error(e)[1][:300] if isinstance(e, ValidationError) else type(e).__name__
        raise UsageError(f"run {original.id}: its stored snapshot is not a valid spec ({detail}); "
                         "nothing was run (ledger edited, or written by an incompatible benchrun version)") from None
    loaded.path = original.spec_path
    rubric_hash = loaded.rubric.hash if loaded.rubric is not None else ""
    ds_dump = loaded.dataset.dump()  # the new run's record reuses it
    if loaded.dataset.hash_of(ds_dump) != original.dataset_hash or rubric_hash != original.rubric_hash:
        raise UsageError(f"run {original.id}: the stored snapshot no longer hashes as recorded "
                         "(ledger edited, or written by an incompatible benchrun version); cannot reproduce it exactly")
    runner.check_templates(loaded, f"run {original.id} (stored snapshot)")  # before the cache check renders them
    # before anything is called or written: the snapshot is a ledger row, which anyone with write access can edit
    credentials.require(credentials.assess(original, loaded.spec), confirmed, f"benchrun reproduce {original.id}")
    exec_loaded = loaded
    entries: dict[str, dict[str, Any]] | None = None
    judged: dict[tuple[int, str], JudgedAhead] | None = None
    if from_cache:
        entries, judged = {}, {}  # what the check read and worked out, for the runner (not done twice)
        n_miss, shown = cache_misses(loaded, ledger, limit=5, found=entries, judged_out=judged)
        if n_miss:
            raise UsageError(
                f"--from-cache: {n_miss} call(s) of run {original.id} are not in the cache (e.g. {'; '.join(shown)}); "
                f"nothing was run. Reproduce with fresh calls: benchrun reproduce {original.id}"
            )
        if not loaded.spec.cache:  # the spec switched the cache off; replaying needs it on (hashes unchanged)
            exec_loaded = LoadedSpec(spec=loaded.spec.model_copy(update={"cache": True}), dataset=loaded.dataset,
                                     rubric=loaded.rubric, path=loaded.path)
    new_id = runner.create_run(loaded, ledger, unsafe_exec=unsafe_exec, templates_checked=True,  # checked above
                               dataset_dump=ds_dump)
    workers = 0 if from_cache else runner.call_workers_for(exec_loaded, "auto")  # replays make no calls
    outcome = execute_run(exec_loaded, ledger, new_id, use_cache=from_cache, call_workers=workers,
                          unsafe_exec=unsafe_exec, on_progress=on_progress, on_start=on_start, interrupt_guard=interrupt_guard,
                          cache_entries=entries, judged_ahead=judged, keep_rows=True)
    if outcome.status != "completed":
        raise RunAborted(f"reproduction run {new_id} of {original.id} stopped: {outcome.message}. "
                         f"Resume with: benchrun run --resume {new_id}")
    diff = reproduction_diff(ledger, original, ledger.get_run(new_id), from_cache=from_cache, n_boot=n_boot,
                             reproduction_rows=outcome.rows)  # as the run's totals read them: not read again
    diff["file_checks"] = [{"kind": c.kind, "path": c.path, "status": c.status, "recorded_hash": c.recorded_hash,
                            "disk_hash": c.disk_hash, "detail": c.detail, "message": c.sentence()} for c in checks]
    diff["ran_from"] = ("stored snapshot (files on disk unchanged)" if all(c.status == "same" for c in checks)
                        else "stored snapshot (files on disk differ or are missing; see file_checks)")
    ledger.add_report("reproduction", diff, run_id=new_id, dataset_hash=original.dataset_hash,
                      judge_model=original.judge_model, judge_prompt_hash=original.judge_prompt_hash,
                      rubric_hash=original.rubric_hash, subject=original.id, summary=diff["verdict"])
    return diff
