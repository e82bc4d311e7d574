"""The two entry points the CLI calls: `run_coverage` and `run_refresh`.

Both read the production file and the dataset, embed (with the cache), cluster
production and place the eval cases; they return plain JSON-ready dicts and
print nothing (rendering lives in `benchrun.coverage.render`).

Streaming (``params.streamed``): with more queries than ``fit_sample``, k-means and an embedding cache,
the queries are embedded chunk by chunk into the cache and no query vector is kept; the sampled fit, the
chunked assignment, representatives (from the kept similarities) and refresh read them back from the
cache (`CachedRows`). Memory is then O(fit sample x dim + n) -- the texts, labels, similarities and
weights stay in memory, the n x dim matrix does not. Sessions, HDBSCAN and ``cache_path=None`` keep every
vector in memory as before. Results equal the in-memory path's (tests/test_coverage_streaming.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchrun.coverage import cluster as cl
from benchrun.coverage import refresh as rf
from benchrun.coverage import sessions as ss
from benchrun.coverage.embed import (
    DEFAULT_CACHE,
    DEFAULT_MODEL,
    CachedRows,
    EmbedStats,
    Remote,
    embed_texts,
    is_remote,
)
from benchrun.coverage.production import ProductionSample, load_production
from benchrun.coverage.report import Bands, coverage_table, headline
from benchrun.errors import BadInput, UsageError
from benchrun.spec import Dataset, load_dataset

SCHEMA_VERSION = 1


@dataclass
class CoverageOptions:
    """Every knob of a coverage run (the CLI flags map 1:1 onto these)."""

    # production input
    table: str | None = None
    text_column: str | None = None
    timestamp_column: str | None = None
    session_column: str | None = None
    turn_column: str | None = None
    tool_calls_column: str | None = None
    outcome_column: str | None = None
    window_days: float | None = None
    window_anchor: str = "newest"
    by_weekday: bool = False
    sample_size: int | None = None
    now: dt.datetime | None = None
    # embeddings
    model: str | None = None  # the embedder: a local model (default) or litellm:MODEL
    cache_path: str | Path | None = DEFAULT_CACHE
    batch_size: int | None = None  # texts per local encode batch (32) or per remote request (128)
    api_base: str | None = None  # remote embedder: an OpenAI-compatible server (TEI, vLLM, Ollama /v1)
    api_key_env: str | None = None  # remote embedder: the variable holding its key
    embed_concurrency: int = 8  # remote embedder: requests in flight
    embed_price_per_1m: float | None = None  # remote embedder: USD per 1M input tokens (default: litellm's map)
    embed_transport: str | None = None  # remote embedder: "openai" (aiohttp) or "litellm"; default as for chat models
    # clustering
    method: str = "kmeans"
    k: int | None = None
    min_cluster_size: int | None = None
    n_init: int = 2
    fit_sample: int = cl.FIT_SAMPLE  # k-means: fit on at most this many units, then assign all in chunks
    seed: int = 0
    outside_percentile: float = 1.0
    # sessions
    sessions: bool = False
    session_feature_weight: float = 1.0
    # score
    good_below: float = 0.1
    refresh_above: float = 0.25
    floor_draws: int = 200

    def validate(self) -> None:
        if self.method not in ("kmeans", "hdbscan"):
            raise UsageError(f"--method must be 'kmeans' or 'hdbscan', not '{self.method}'")
        if self.k is not None and self.k < 1:
            raise UsageError("--k must be a positive number of clusters")
        if not 0 <= self.outside_percentile <= 100:
            raise UsageError("outside_percentile must be between 0 and 100")
        if not 0 <= self.good_below <= self.refresh_above <= 1:
            raise UsageError("need 0 <= good_below <= refresh_above <= 1")
        if self.sample_size is not None and self.sample_size < 1:
            raise UsageError("--sample-size must be positive")
        if self.session_feature_weight < 0:
            raise UsageError("--session-feature-weight must be >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError("--batch-size must be positive")
        if self.embed_concurrency < 1:
            raise UsageError("--embed-concurrency must be positive")
        if self.fit_sample < 2:
            raise UsageError("--fit-sample must be at least 2")
        if self.embed_transport not in (None, "openai", "litellm"):
            raise UsageError(f"--embed-transport must be 'openai' or 'litellm', not '{self.embed_transport}'")
        remote_only = (self.api_base, self.api_key_env, self.embed_price_per_1m, self.embed_transport)
        if any(v is not None for v in remote_only) and not is_remote(self.model):
            raise UsageError("--api-base, --api-key-env, --embed-price-per-1m and --embed-transport need a remote "
                             "embedder: --embedder litellm:MODEL")


def _options(options: dict[str, Any]) -> CoverageOptions:
    names = {f.name for f in dataclasses.fields(CoverageOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise UsageError(f"unknown coverage option(s) {unknown}; known: {sorted(names)}")
    o = CoverageOptions(**options)
    o.validate()
    return o


@dataclass
class Analysis:
    """Everything computed on the way to a report (kept for refresh)."""

    options: CoverageOptions
    dataset: Dataset
    production: ProductionSample
    unit: str  # "query" or "session"
    prod_turns: list[list[str]]  # per unit, its texts (one for queries)
    prod_weights: np.ndarray
    prod_vecs: Any  # a float32 matrix, or `CachedRows` (read from the cache in slices) when streaming
    eval_ids: list[str]
    eval_texts: list[str]
    eval_vecs: np.ndarray
    clustering: cl.Clustering
    eval_labels: np.ndarray
    eval_outside: np.ndarray
    threshold: float
    labels: dict[int, str]
    report: dict[str, Any]


def analyse(production_path: str | Path, dataset_path: str | Path, options: CoverageOptions) -> Analysis:
    """Load, embed, cluster and score. Raises `BadInput` for bad files."""
    t_start = time.perf_counter()
    o = options
    dataset = load_dataset(dataset_path)
    sample = load_production(
        production_path,
        table=o.table,
        text_column=o.text_column,
        timestamp_column=o.timestamp_column,
        session_column=o.session_column,
        turn_column=o.turn_column,
        tool_calls_column=o.tool_calls_column,
        outcome_column=o.outcome_column,
        window_days=o.window_days,
        window_anchor=o.window_anchor,
        by_weekday=o.by_weekday,
        sample_size=None if o.sessions else o.sample_size,
        seed=o.seed,
        now=o.now,
    )
    if o.sessions and not sample.has_sessions:
        raise BadInput(
            production_path, "--sessions", "session mode needs a session id column; name it with --session-column"
        )
    t_loaded = time.perf_counter()
    stats = EmbedStats()
    remote = Remote(api_base=o.api_base, api_key_env=o.api_key_env, concurrency=o.embed_concurrency,
                    price_per_1m=o.embed_price_per_1m, transport=o.embed_transport)

    def embed(texts: list[str]) -> np.ndarray:
        return embed_texts(texts, model=o.model, cache_path=o.cache_path, batch_size=o.batch_size, stats=stats,
                           remote=remote)

    # memory bounded in the number of queries (no n x dim matrix): query mode, k-means, more queries than the
    # fit sample, and a cache to read the vectors back from (without one, vectors stay in memory as before)
    streaming = (not o.sessions and o.method == "kmeans" and o.cache_path is not None
                 and len(sample.rows) > o.fit_sample)
    prod_texts = sample.texts
    cases = dataset.cases
    eval_ids = [c.id for c in cases]
    eval_texts = [c.input_text() for c in cases]
    if o.sessions:
        sessions = ss.group_sessions(sample)
        if o.sample_size is not None and o.sample_size < len(sessions):
            rng = np.random.default_rng(o.seed)
            sessions = [sessions[i] for i in np.sort(rng.choice(len(sessions), o.sample_size, replace=False))]
        eval_sessions = [
            ss.case_session(
                c.id,
                [("user", c.input)] if isinstance(c.input, str) else [(m.role, m.content) for m in c.input],
                c.metadata.get("outcome"),
            )
            for c in cases
        ]
        all_turns = [t for s in sessions for t in s.turns] + [t for s in eval_sessions for t in s.turns]
        vecs = embed(all_turns)
        n_prod_turns = sum(len(s.turns) for s in sessions)
        prod_text = ss.mean_turn_vectors(vecs[:n_prod_turns], sessions)
        eval_text = ss.mean_turn_vectors(vecs[n_prod_turns:], eval_sessions)
        pf = np.stack([s.features for s in sessions])
        ef = np.stack([s.features for s in eval_sessions])
        mean, std = ss.feature_stats(pf)
        prod_vecs = ss.combine(prod_text, pf, mean, std, o.session_feature_weight)
        eval_vecs = ss.combine(eval_text, ef, mean, std, o.session_feature_weight)
        prod_turns = [s.turns for s in sessions]
        prod_weights = np.array([s.weight for s in sessions], dtype=float)
        unit = "session"
    elif streaming:
        # more queries than the fit sample: embed them chunk by chunk into the cache and keep no vectors; the
        # sampled fit, the assignment and refresh read them back a chunk at a time (see `CachedRows`)
        rows = CachedRows(prod_texts, model=o.model, cache_path=o.cache_path,  # type: ignore[arg-type]
                          batch_size=o.batch_size, remote=remote)
        rows.fill(stats)
        eval_vecs = embed(eval_texts) if eval_texts else np.zeros((0, rows.dim), dtype=np.float32)
        prod_vecs = rows
        prod_turns = [[t] for t in prod_texts]
        prod_weights = sample.weights
        unit = "query"
    else:
        vecs = embed(prod_texts + eval_texts)
        prod_vecs, eval_vecs = vecs[: len(sample.rows)], vecs[len(sample.rows) :]
        prod_turns = [[t] for t in prod_texts]
        prod_weights = sample.weights
        unit = "query"
    t_embedded = time.perf_counter()

    n = prod_vecs.shape[0]
    if o.k is not None and o.k > n:
        raise UsageError(f"--k {o.k} is more than the {n} production {unit}s; choose a smaller k")
    if o.k is not None and o.k > o.fit_sample:
        raise UsageError(f"--k {o.k} is more than the --fit-sample {o.fit_sample}; choose a smaller k")
    if o.method == "hdbscan":
        clustering = cl.hdbscan(prod_vecs, min_cluster_size=o.min_cluster_size, seed=o.seed)
    else:
        weights = prod_weights if o.by_weekday else None
        clustering = cl.kmeans_at_scale(prod_vecs, o.k, seed=o.seed, n_init=o.n_init, weights=weights,
                                        fit_sample=o.fit_sample)
    prod_sims = cl.production_similarities(prod_vecs, clustering)
    threshold = cl.outside_threshold(prod_sims, o.outside_percentile)
    eval_labels, eval_sims = cl.assign(prod_vecs, clustering, eval_vecs)
    eval_outside = eval_sims < threshold
    t_clustered = time.perf_counter()

    flat = [" ".join(t) for t in prod_turns]
    labels = cl.ctfidf_labels(flat, clustering.labels, clustering.ids)
    if cl.UNCLUSTERED in labels:
        labels[cl.UNCLUSTERED] = "unclustered: " + labels[cl.UNCLUSTERED]
    reps = cl.representatives(prod_vecs, flat, clustering)
    table = coverage_table(
        cluster_ids=clustering.ids,
        prod_labels=clustering.labels,
        prod_weights=prod_weights,
        eval_labels=eval_labels,
        eval_outside=eval_outside,
        eval_ids=eval_ids,
        eval_added=[c.provenance.added for c in cases],
        cluster_labels=labels,
        representatives=reps,
        bands=Bands(o.good_below, o.refresh_above),
        floor_draws=o.floor_draws,
        seed=o.seed,
    )
    t_done = time.perf_counter()

    report: dict[str, Any] = {
        "kind": "coverage",
        "schema_version": SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dataset": {
            "name": dataset.name,
            "version": dataset.version,
            "hash": dataset.hash,
            "path": str(dataset_path),
            "n_cases": len(cases),
        },
        "production": {
            "source": sample.source,
            "hash": sample.hash,
            "rows_read": sample.rows_read,
            "rows_used": len(sample.rows),
            "unit": unit,
            "units": n,
            "skipped": dict(sample.skipped),
            "skipped_summary": sample.describe_skipped(),
            "window": sample.window,
            "by_weekday": sample.by_weekday,
            "columns": {k: v for k, v in sample.columns.items() if v},
        },
        "params": {
            "model": o.model or DEFAULT_MODEL,
            "method": o.method,
            "k": clustering.k,
            "k_given": o.k,
            "n_init": o.n_init if o.method == "kmeans" else None,
            "fit_sample_size": clustering.sample_size if clustering.sample_size is not None else n,
            "streamed": streaming,
            "stability_jsd": clustering.stability_jsd,
            "embedder_api_base": o.api_base,
            "min_cluster_size": o.min_cluster_size,
            "seed": o.seed,
            "outside_percentile": o.outside_percentile,
            "outside_threshold": threshold,
            "sessions": o.sessions,
            "session_feature_weight": o.session_feature_weight if o.sessions else None,
        },
        **table,
    }
    if is_remote(o.model):
        report["cost"] = {
            "embedding_usd": stats.cost_usd,
            "embedding_requests": stats.n_requests,
            "embedding_retries": stats.n_retries,
            "embedding_tokens": stats.prompt_tokens,
            "tokens_estimated": stats.tokens_estimated,
        }
    report["headline"] = headline(report)
    report["timing"] = {
        "load_s": round(t_loaded - t_start, 3),
        "embed_s": round(stats.embed_s, 3),
        "cache_s": round(stats.cache_s, 3),
        "cache_reread_s": round(prod_vecs.reread.cache_s, 3) if streaming else 0.0,  # CachedRows read-backs
        "cluster_s": round(t_clustered - t_embedded, 3),
        "analyse_s": round(t_done - t_clustered, 3),
        "total_s": round(t_done - t_start, 3),
        "embedding": stats.as_dict(),
    }
    return Analysis(
        options=o,
        dataset=dataset,
        production=sample,
        unit=unit,
        prod_turns=prod_turns,
        prod_weights=prod_weights,
        prod_vecs=prod_vecs,
        eval_ids=eval_ids,
        eval_texts=eval_texts,
        eval_vecs=eval_vecs,
        clustering=clustering,
        eval_labels=eval_labels,
        eval_outside=eval_outside,
        threshold=threshold,
        labels=labels,
        report=report,
    )


def run_coverage(
    production_path: str | Path,
    dataset_path: str | Path,
    *,
    on_report: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Coverage of ``dataset_path`` against ``production_path``; returns the JSON-ready report.

    ``options`` are the fields of `CoverageOptions`. ``on_report`` (e.g. the ledger's
    store function) is called with the report before it is returned.
    """
    report = analyse(production_path, dataset_path, _options(options)).report
    if on_report is not None:
        on_report(report)
    return report


def run_refresh(
    production_path: str | Path,
    dataset_path: str | Path,
    n: int,
    out_path: str | Path | None,
    *,
    edge_share: float = 0.005,
    near_duplicate: float = 0.9,
    light: float = 0.1,
    novelty: float = 2.0,
    today: dt.date | None = None,
    on_report: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Propose ``n`` candidate cases from production and write them as a dataset YAML.

    Returns ``{"out_path", "n_requested", "n_selected", "units": [...why...], "cases": [...],
    "coverage": report}``. ``out_path=None`` skips writing. ``on_report`` receives the
    coverage report (the state before the refresh).
    """
    if n < 1:
        raise UsageError("--n must be at least 1")
    if not 0 <= edge_share < 1:
        raise UsageError("edge_share must be in [0, 1)")
    if not 0 < near_duplicate <= 1:
        raise UsageError("near_duplicate must be in (0, 1]")
    if novelty < 0 or light < 0:
        raise UsageError("novelty and light must be >= 0")
    a = analyse(production_path, dataset_path, _options(options))
    rep = a.report
    added = today or dt.date.today()
    units = rf.build_units(rep["clusters"], a.clustering.labels, edge_share)
    rf.select(
        units,
        n,
        prod_texts=[" ".join(t) for t in a.prod_turns],
        prod_vecs=a.prod_vecs,
        prod_weights=a.prod_weights,
        eval_texts=a.eval_texts,
        eval_vecs=a.eval_vecs,
        near_duplicate=near_duplicate,
        light=light,
        novelty=novelty,
        seed=a.options.seed,
    )
    cases = rf.candidate_cases(
        units,
        prod_turns=a.prod_turns,
        prod_cluster=a.clustering.labels,
        cluster_labels=a.labels,
        taken_ids=set(a.eval_ids),
        added=added,
    )
    summary = [
        {
            "unit": u.key,
            "cluster_ids": u.cluster_ids,
            "label": u.label,
            "production_share": u.production_share,
            "eval_share": u.eval_share,
            "eval_count": u.eval_count,
            "weight": u.weight,
            "allocated": u.allocated,
            "exhausted": u.exhausted,
            "why": rf.why(u, edge_share, n),
        }
        for u in sorted(units, key=lambda u: (-u.allocated, -u.weight))
    ]
    result: dict[str, Any] = {
        "kind": "refresh",
        "out_path": str(out_path) if out_path is not None else None,
        "n_requested": n,
        "n_selected": len(cases),
        "added": added.isoformat(),
        "params": {"edge_share": edge_share, "near_duplicate": near_duplicate, "light": light, "novelty": novelty},
        "units": summary,
        "cases": cases,
        "coverage": rep,
    }
    if out_path is not None:
        write_candidates(Path(out_path), a.dataset, rep, summary, cases, added)
    if on_report is not None:
        on_report(rep)
    return result


def write_candidates(
    path: Path,
    dataset: Dataset,
    report: dict[str, Any],
    summary: list[dict[str, Any]],
    cases: list[dict[str, Any]],
    added: dt.date,
) -> None:
    """Write the candidates as a benchrun dataset YAML, the per-unit reasons as a comment header."""
    import yaml

    if not cases:
        raise UsageError("no candidate left after removing duplicates and near-duplicates; nothing written")
    doc = {
        "name": f"{dataset.name}-refresh-candidates",
        "version": added.isoformat(),
        "description": (
            f"Candidates sampled from production {report['production']['source']} on {added.isoformat()} "
            f"to close coverage gaps of {dataset.name} v{dataset.version} "
            f"(JSD {report['score']['jsd']:.3f}). Review each case and write its ideal before merging."
        ),
        "cases": cases,
    }
    lines = ["# benchrun refresh: why each cluster got its share", "#"]
    for s in summary:
        if s["allocated"] == 0 and s["eval_count"] > 0:
            continue
        lines.append(f"# {s['unit']} [{s['label']}]: {s['why']}")
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
