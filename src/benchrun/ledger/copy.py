"""Copy runs between ledgers (e.g. a laptop's SQLite into the team's PostgreSQL), idempotently.

What moves, for each selected run:

- the run row (matched by run id; when the destination's copy differs, the source's wins: a run
  copied while still running is brought up to date by the next copy);
- its results (matched by the cell ``(run_id, case_id, model_key, sample_index)``, the ledger's
  uniqueness constraint; a differing cell is replaced by the source's, a cell only the
  destination has is kept; result ids are the destination's own);
- the cache entries the run used (their keys are recomputed from the run's spec snapshot and
  results exactly as the runner computed them, including the judge's re-ask), so a resumed or
  repeated run on the destination pays for nothing already paid for;
- its provider batches (``batch_job`` matched by its token, ``batch_line`` by job and custom id) and its shard
  rows (``run_shard``, matched by shard number): a differing row is updated to the source's, a missing one is
  added, job ids are the destination's own; so ``batch status`` and the "N of N shards done" line read the
  same on the copy;
- reports (calibrations, coverage, bias, ...): all of them without ``--run``; with ``--run``,
  those of the selected runs plus those that apply to them (same dataset hash, or same judge
  model, judge prompt hash and rubric hash). Reports are matched by content (every column but
  the id and the time it was stored), counting duplicates, so a second copy adds nothing.

Each run is written in one transaction on the destination, so an interrupted copy leaves whole
runs; copying again completes it. Copying twice changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.engine import Connection

from benchrun.errors import UsageError
from benchrun.ledger.store import Ledger
from benchrun.ledger.tables import BatchJob, BatchLine, CacheEntry, PairJudgement, Report, Result, Run, RunShard

_RUN: Table = Run.__table__  # type: ignore[attr-defined]
_RESULT: Table = Result.__table__  # type: ignore[attr-defined]
_CACHE: Table = CacheEntry.__table__  # type: ignore[attr-defined]
_REPORT: Table = Report.__table__  # type: ignore[attr-defined]
_PAIRS: Table = PairJudgement.__table__  # type: ignore[attr-defined]
_SHARDS: Table = RunShard.__table__  # type: ignore[attr-defined]
_JOBS: Table = BatchJob.__table__  # type: ignore[attr-defined]
_LINES: Table = BatchLine.__table__  # type: ignore[attr-defined]
_CELL = ("run_id", "case_id", "model_key", "sample_index")
_REPORT_CONTENT = ("kind", "run_id", "dataset_hash", "judge_model", "judge_prompt_hash", "rubric_hash", "subject",
                   "summary", "payload")
_CHUNK = 500


@dataclass
class CopyStats:
    """What a copy changed in the destination (all zero: it already held everything)."""

    runs_added: int = 0
    runs_updated: int = 0
    runs_unchanged: int = 0
    results_added: int = 0
    results_replaced: int = 0
    cache_added: int = 0
    reports_added: int = 0
    shards_written: int = 0  # run_shard rows added or brought up to date
    batch_jobs_written: int = 0
    batch_lines_written: int = 0
    runs_still_running: list[str] = field(default_factory=list)
    cache_keys_unresolved: int = 0  # results whose judge cache keys are not recorded (written before they were)

    @property
    def changed(self) -> bool:
        return bool(self.runs_added or self.runs_updated or self.results_added or self.results_replaced
                     or self.cache_added or self.reports_added or self.shards_written or self.batch_jobs_written
                     or self.batch_lines_written)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


def _chunks(items: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _rows(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(stmt)]


def _norm(v: Any) -> Any:
    """Compare values the same way whichever backend they came from."""
    if hasattr(v, "tzinfo") and getattr(v, "tzinfo", None) is not None:
        return v.replace(tzinfo=None)
    return v


def _same(a: dict[str, Any], b: dict[str, Any], skip: Iterable[str] = ("id",)) -> bool:
    skipped = set(skip)
    return all(_norm(a.get(k)) == _norm(b.get(k)) for k in a if k not in skipped)


def _trajectory_keys(raw: Any) -> list[str] | None:
    if not raw:
        return None
    try:
        keys = json.loads(raw).get("cache_keys")
    except (ValueError, AttributeError):
        return None
    return keys if isinstance(keys, list) and all(isinstance(k, str) for k in keys) else None


def _key_list(stored: str) -> list[str] | None:
    """A recorded JSON list of cache keys, or None when the (untrusted) column holds anything else."""
    try:
        keys = json.loads(stored)
    except ValueError:
        return None
    return keys if isinstance(keys, list) and all(isinstance(k, str) for k in keys) else None


def run_cache_keys(run: dict[str, Any], results: list[dict[str, Any]]) -> tuple[set[str], int]:
    """Cache keys the runner used for these results, and how many results' judge entries cannot be named.

    Nothing is rendered: a run's snapshot is a ledger row anyone who writes the ledger can edit, so its
    templates are never evaluated here. A candidate's key comes from the messages stored with the result;
    the judge's (first call and re-ask) from ``judge_cache_keys``, which the runner records. Results
    written before that column existed have no judge keys: those judge entries are not copied (a run
    reproduced from the copy pays for them once) and are counted as unresolved.
    """
    from pydantic import ValidationError

    from benchrun.hashing import cache_key
    from benchrun.spec import RunSpec

    try:
        spec = RunSpec.model_validate(json.loads(run["spec_snapshot"])["spec"])
    except (ValueError, KeyError, TypeError, ValidationError):
        return set(), len(results)
    cands = {c.key: c for c in spec.candidates}
    keys: set[str] = set()
    unresolved = 0
    for r in results:
        cand = cands.get(r["model_key"])
        if cand is None:
            unresolved += 1
            continue
        step_keys = _trajectory_keys(r.get("trajectory"))
        if step_keys is not None:  # a tool-using case: one cached call per step, keys recorded by the runner
            keys.update(step_keys)
        else:
            keys.add(cache_key(cand, json.loads(r["messages"]), spec.sampling_for(cand).as_params(),
                               r["sample_index"], "candidate"))
        stored = r.get("judge_cache_keys")
        if stored:
            judge_keys = _key_list(stored)
            if judge_keys is not None:
                keys.update(judge_keys)
            else:
                unresolved += 1
        elif r["response_text"] is not None and r.get("judge_raw") is not None:
            unresolved += 1  # judged before judge_cache_keys was recorded
    return keys, unresolved


def _upsert(conn: Connection, table: Table, run_id: str, rows: list[dict[str, Any]], key: Sequence[str],
            want_ids: bool = False) -> tuple[int, dict[tuple[Any, ...], Any]]:
    """Write the source's ``rows`` of one run (their ``id`` dropped) matched on ``key``: a missing row is added, a
    differing one updated, a row only the destination has is kept. Returns how many rows were written and, with
    ``want_ids``, each key's id in the destination."""
    have = {tuple(r[c] for c in key): r for r in _rows(conn, select(table).where(table.c.run_id == run_id))}
    written, ids, new = 0, {}, []
    for row in rows:
        k = tuple(row[c] for c in key)
        values = {c: v for c, v in row.items() if c != "id"}
        old = have.get(k)
        if old is None:
            written += 1
            if want_ids:
                ids[k] = conn.execute(table.insert().values(**values)).inserted_primary_key[0]
            else:
                new.append(values)
            continue
        ids[k] = old.get("id")
        if not _same(values, old):
            conn.execute(update(table).where(*(table.c[c] == v for c, v in zip(key, k, strict=True))).values(**values))
            written += 1
    for chunk in _chunks(new):
        conn.execute(table.insert(), list(chunk))
    return written, ids


def _select_runs(src: Ledger, run_ids: Sequence[str] | None) -> list[str]:
    if run_ids:
        out: list[str] = []
        for rid in run_ids:
            full = src.get_run(rid).id  # accepts a unique prefix; unknown id -> UsageError
            if full not in out:
                out.append(full)
        return out
    with src.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(_RUN.c.id).order_by(_RUN.c.created_at, _RUN.c.id))]


def _copy_run(src: Ledger, dst: Ledger, run_id: str, stats: CopyStats) -> None:
    with src.engine.connect() as conn:
        run = _rows(conn, select(_RUN).where(_RUN.c.id == run_id))[0]
        results = _rows(conn, select(_RESULT).where(_RESULT.c.run_id == run_id).order_by(_RESULT.c.id))
        pairs = _rows(conn, select(_PAIRS).where(_PAIRS.c.run_id == run_id).order_by(_PAIRS.c.id))
        shards = _rows(conn, select(_SHARDS).where(_SHARDS.c.run_id == run_id).order_by(_SHARDS.c.shard))
        jobs = _rows(conn, select(_JOBS).where(_JOBS.c.run_id == run_id).order_by(_JOBS.c.id))
        lines = _rows(conn, select(_LINES).where(_LINES.c.run_id == run_id).order_by(_LINES.c.id))

    def src_cache(keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        with src.engine.connect() as conn:
            for chunk in _chunks(sorted(keys)):
                for row in _rows(conn, select(_CACHE).where(_CACHE.c.key.in_(chunk))):
                    found[row["key"]] = row
        return found

    keys, unresolved = run_cache_keys(run, results)
    for pj in pairs:  # a pairwise run's judge calls: the keys its rows record (nothing is rendered)
        pkeys = _key_list(pj["cache_keys"] or "[]")
        if pkeys is not None:
            keys.update(pkeys)
        else:
            unresolved += 1
    cache_rows = src_cache(sorted(keys))
    if run["status"] == "running":
        stats.runs_still_running.append(run_id)

    def write() -> CopyStats:
        s = CopyStats()
        with dst.engine.begin() as conn:
            have = _rows(conn, select(_RUN).where(_RUN.c.id == run_id))
            if not have:
                conn.execute(_RUN.insert(), [run])
                s.runs_added = 1
            elif not _same(run, have[0], skip=()):
                conn.execute(update(_RUN).where(_RUN.c.id == run_id).values(**{k: v for k, v in run.items() if k != "id"}))
                s.runs_updated = 1
            else:
                s.runs_unchanged = 1
            existing = {tuple(r[c] for c in _CELL): r
                        for r in _rows(conn, select(_RESULT).where(_RESULT.c.run_id == run_id))}
            new: list[dict[str, Any]] = []
            for r in results:
                cell = tuple(r[c] for c in _CELL)
                old = existing.get(cell)
                if old is not None and _same(r, old):
                    continue
                if old is not None:
                    conn.execute(delete(_RESULT).where(_RESULT.c.id == old["id"]))
                    s.results_replaced += 1
                else:
                    s.results_added += 1
                new.append({k: v for k, v in r.items() if k != "id"})
            for chunk in _chunks(new):
                conn.execute(_RESULT.insert(), list(chunk))
            have_pairs = _rows(conn, select(_PAIRS).where(_PAIRS.c.run_id == run_id).order_by(_PAIRS.c.id))
            if len(have_pairs) != len(pairs) or not all(_same(a, b) for a, b in zip(pairs, have_pairs, strict=True)):
                conn.execute(delete(_PAIRS).where(_PAIRS.c.run_id == run_id))  # the source's judgements, as they are
                for chunk in _chunks([{k: v for k, v in pj.items() if k != "id"} for pj in pairs]):
                    conn.execute(_PAIRS.insert(), list(chunk))
            s.shards_written, _ = _upsert(conn, _SHARDS, run_id, shards, ("shard",))
            s.batch_jobs_written, job_ids = _upsert(conn, _JOBS, run_id, jobs, ("token",), want_ids=True)
            src_job = {j["id"]: job_ids[(j["token"],)] for j in jobs}  # source job id -> destination job id
            s.batch_lines_written, _ = _upsert(conn, _LINES, run_id, [{**ln, "job_id": src_job[ln["job_id"]]}
                                                                      for ln in lines], ("job_id", "custom_id"))
            have_keys: set[str] = set()
            for chunk in _chunks(sorted(cache_rows)):
                have_keys.update(k for (k,) in conn.execute(select(_CACHE.c.key).where(_CACHE.c.key.in_(chunk))))
            missing = [cache_rows[k] for k in sorted(cache_rows) if k not in have_keys]
            for chunk in _chunks(missing):
                conn.execute(_CACHE.insert(), list(chunk))
            s.cache_added = len(missing)
        return s

    s = dst._retrying(write)
    stats.runs_added += s.runs_added
    stats.runs_updated += s.runs_updated
    stats.runs_unchanged += s.runs_unchanged
    stats.results_added += s.results_added
    stats.results_replaced += s.results_replaced
    stats.cache_added += s.cache_added
    stats.shards_written += s.shards_written
    stats.batch_jobs_written += s.batch_jobs_written
    stats.batch_lines_written += s.batch_lines_written
    stats.cache_keys_unresolved += unresolved


def _report_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(r.get(c) for c in _REPORT_CONTENT)


def _copy_reports(src: Ledger, dst: Ledger, run_ids: list[str] | None, stats: CopyStats) -> None:
    with src.engine.connect() as conn:
        reports = _rows(conn, select(_REPORT).order_by(_REPORT.c.created_at, _REPORT.c.id))
        if run_ids is not None:
            runs = _rows(conn, select(_RUN.c.id, _RUN.c.dataset_hash, _RUN.c.judge_model, _RUN.c.judge_prompt_hash,
                                      _RUN.c.rubric_hash).where(_RUN.c.id.in_(run_ids)))
            ids = {r["id"] for r in runs}
            datasets = {r["dataset_hash"] for r in runs}
            judges = {(r["judge_model"], r["judge_prompt_hash"], r["rubric_hash"]) for r in runs}

            def applies(rep: dict[str, Any]) -> bool:
                if rep["run_id"] is not None:
                    return rep["run_id"] in ids
                if rep["dataset_hash"] is not None and rep["dataset_hash"] in datasets:
                    return True
                return (rep["judge_model"], rep["judge_prompt_hash"], rep["rubric_hash"]) in judges

            reports = [r for r in reports if applies(r)]
    if not reports:
        return
    kinds = sorted({r["kind"] for r in reports})

    def write() -> int:
        with dst.engine.begin() as conn:
            have = Counter(_report_key(r) for r in _rows(conn, select(_REPORT).where(_REPORT.c.kind.in_(kinds))))
            new = []
            for r in reports:
                k = _report_key(r)
                if have[k] > 0:
                    have[k] -= 1
                    continue
                new.append({c: v for c, v in r.items() if c != "id"})
            for chunk in _chunks(new):
                conn.execute(_REPORT.insert(), list(chunk))
            return len(new)

    stats.reports_added += dst._retrying(write)


def copy_ledger(src: Ledger, dst: Ledger, run_ids: Sequence[str] | None = None) -> CopyStats:
    """Copy runs (all, or ``run_ids``: ids or unique prefixes) with their results, pairwise judgements, shard rows,
    provider batches, cache entries and reports.

    Idempotent: a second call with the same source changes nothing and returns all-zero counts.
    """
    if src.url == dst.url:
        raise UsageError("--from and --to are the same ledger; nothing to copy")
    stats = CopyStats()
    selected = _select_runs(src, run_ids)
    for rid in selected:
        _copy_run(src, dst, rid, stats)
    _copy_reports(src, dst, selected if run_ids else None, stats)
    return stats


def copy(from_url: str, to_url: str, run_ids: Sequence[str] | None = None) -> CopyStats:
    """Open both ledgers (the destination's schema is created or upgraded) and copy."""
    src = Ledger(from_url)
    try:
        selected = _select_runs(src, run_ids)  # an unknown run id fails before the destination is touched
        dst = Ledger(to_url)
        try:
            return copy_ledger(src, dst, selected if run_ids else None)
        finally:
            dst.close()
    finally:
        src.close()
