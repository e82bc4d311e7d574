"""``benchrun coverage`` and ``benchrun refresh`` (a typer sub-application).

The main app loads the two commands from the default ``app``; ``build_app(on_report=...)``
makes one whose ``on_report`` receives every coverage report dict (tests use it). The
pipeline (`benchrun.coverage.pipeline`, numpy, the embedding model) is imported only when a
command runs; the terminal, HTML and PNG output is `benchrun.coverage.render`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from benchrun.errors import BenchrunError

ReportCallback = Callable[[dict[str, Any]], None]


class Method(StrEnum):
    kmeans = "kmeans"
    hdbscan = "hdbscan"


Production = Annotated[str, typer.Option("--production", "-p", help="Production traffic: .jsonl, .csv, .db or sqlite:///f.db?table=T")]
DatasetOpt = Annotated[Path, typer.Option("--dataset", "-d", help="The eval dataset (.yaml, .jsonl, .csv)")]
TableOpt = Annotated[str | None, typer.Option("--table", help="SQLite table holding the production rows")]
TextCol = Annotated[str | None, typer.Option("--text-column", help="Column with the query text (default: text)")]
TsCol = Annotated[str | None, typer.Option("--timestamp-column", help="Timestamp column (default: timestamp, if present)")]
SessCol = Annotated[str | None, typer.Option("--session-column", help="Session id column (default: session_id, if present)")]
TurnCol = Annotated[str | None, typer.Option("--turn-column", help="Turn index column (default: turn, if present)")]
ToolCol = Annotated[str | None, typer.Option("--tool-calls-column", help="Tool-call count column (default: tool_calls)")]
OutcomeCol = Annotated[str | None, typer.Option("--outcome-column", help="Session outcome column (default: outcome)")]
KOpt = Annotated[int | None, typer.Option("--k", help="Number of k-means clusters (default: sqrt(n/2) clipped to 20-80)")]
MethodOpt = Annotated[Method, typer.Option("--method", help="Clustering: kmeans or hdbscan")]
MinSize = Annotated[
    int | None, typer.Option("--min-cluster-size", help="HDBSCAN minimum cluster size (default: max(5, n/400))")
]
Window = Annotated[float | None, typer.Option("--window-days", help="Only the last N days (before the newest timestamp)")]
Anchor = Annotated[str, typer.Option("--window-anchor", help="Window ends at the 'newest' timestamp or 'now'")]
Weekday = Annotated[bool, typer.Option("--by-weekday", help="Weight rows so each weekday counts the same")]
Sample = Annotated[int | None, typer.Option("--sample-size", help="Analyse a random sample of N production units")]
ModelOpt = Annotated[str | None, typer.Option(
    "--embedder", "--model",
    help="Embedding model: local path or hub name (default: all-MiniLM-L6-v2), or a service: "
         "litellm:openai/text-embedding-3-small, litellm:openai/NAME with --api-base (TEI, vLLM, Ollama /v1)")]
ApiBase = Annotated[str | None, typer.Option("--api-base", help="Remote embedder: OpenAI-compatible base URL")]
ApiKeyEnv = Annotated[str | None, typer.Option("--api-key-env", help="Remote embedder: variable holding the key")]
EmbedConc = Annotated[int, typer.Option("--embed-concurrency", help="Remote embedder: requests in flight")]
EmbedPrice = Annotated[float | None, typer.Option(
    "--embed-price-per-1m", help="Remote embedder: USD per 1M input tokens (default: litellm's price map)")]
EmbedTransport = Annotated[str | None, typer.Option(
    "--embed-transport", help="Remote embedder: 'openai' (aiohttp) or 'litellm' (default: as for chat models)")]
BatchOpt = Annotated[int | None, typer.Option(
    "--batch-size", help="Texts per local encode batch (default 32) or per remote request (default 128)")]
FitSample = Annotated[int, typer.Option(
    "--fit-sample", help="k-means is fitted on at most this many units, then every unit is assigned in chunks")]
CacheOpt = Annotated[Path, typer.Option("--cache", help="Embedding cache (SQLite)")]
SessionsOpt = Annotated[bool, typer.Option("--sessions", help="Cluster whole sessions (text + turn/tool/outcome features)")]
SessW = Annotated[float, typer.Option("--session-feature-weight", help="Weight of session features vs text")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed for clustering and sampling")]
Good = Annotated[float, typer.Option("--good-below", help="JSD band: good below this")]
Refresh = Annotated[float, typer.Option("--refresh-above", help="JSD band: refresh needed above this")]


def build_app(on_report: ReportCallback | None = None) -> typer.Typer:
    """The typer app with ``coverage`` and ``refresh``; ``on_report`` gets each coverage report."""
    app = typer.Typer(no_args_is_help=True, add_completion=False)

    def _options(**kw: Any) -> dict[str, Any]:
        kw["method"] = kw["method"].value
        kw["cache_path"] = kw.pop("cache")
        return kw

    @app.command("coverage")
    def coverage_cmd(
        action: Annotated[
            str | None, typer.Argument(help="Leave empty to measure; 'history' lists stored reports (trend over time)")
        ] = None,
        production: Annotated[str | None, typer.Option("--production", "-p", help="Production traffic: .jsonl, .csv, .db or sqlite:///f.db?table=T")] = None,
        dataset: Annotated[Path | None, typer.Option("--dataset", "-d", help="The eval dataset (.yaml, .jsonl, .csv)")] = None,
        ledger: Annotated[str | None, typer.Option("--ledger", help="Ledger URL or SQLite path (default: $BENCHRUN_LEDGER or runs/ledger.sqlite)")] = None,
        no_store: Annotated[bool, typer.Option("--no-store", help="Do not record the report in the ledger")] = False,
        k: KOpt = None,
        method: MethodOpt = Method.kmeans,
        min_cluster_size: MinSize = None,
        window_days: Window = None,
        window_anchor: Anchor = "newest",
        by_weekday: Weekday = False,
        table: TableOpt = None,
        text_column: TextCol = None,
        timestamp_column: TsCol = None,
        session_column: SessCol = None,
        turn_column: TurnCol = None,
        tool_calls_column: ToolCol = None,
        outcome_column: OutcomeCol = None,
        sample_size: Sample = None,
        model: ModelOpt = None,
        cache: CacheOpt = Path("runs/embeddings.sqlite"),
        api_base: ApiBase = None,
        api_key_env: ApiKeyEnv = None,
        embed_concurrency: EmbedConc = 8,
        embed_price_per_1m: EmbedPrice = None,
        embed_transport: EmbedTransport = None,
        batch_size: BatchOpt = None,
        fit_sample: FitSample = 100_000,
        sessions: SessionsOpt = False,
        session_feature_weight: SessW = 1.0,
        seed: Seed = 0,
        good_below: Good = 0.1,
        refresh_above: Refresh = 0.25,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
        html: Annotated[Path | None, typer.Option("--html", help="Write an HTML chart here")] = None,
        png: Annotated[Path | None, typer.Option("--png", help="Write a PNG chart here (needs matplotlib)")] = None,
        rows: Annotated[int, typer.Option("--rows", help="Clusters shown in the terminal table")] = 25,
        fail_above: Annotated[
            float | None, typer.Option("--fail-above", help="Exit 1 when the JSD is above this (for CI)")
        ] = None,
    ) -> None:
        """How far the eval set is from production traffic (Jensen-Shannon divergence over clusters)."""
        from benchrun import api
        from benchrun.coverage import history as hist
        from benchrun.coverage import render

        if action is not None:
            if action != "history":
                render.print_error(f"unknown action {action!r}; use `benchrun coverage history` or no action")
                raise typer.Exit(2)
            ds_hash = None
            if dataset is not None:
                from benchrun.spec import load_dataset

                try:
                    ds_hash = load_dataset(dataset).hash
                except BenchrunError as e:
                    render.print_error(str(e))
                    raise typer.Exit(e.exit_code) from None
            rows_ = hist.history(ledger, ds_hash)
            if as_json:
                render.print_json(rows_)
            else:
                render.print_history(rows_)
            return
        if production is None or dataset is None:
            render.print_error("coverage needs --production FILE and --dataset FILE (or the action 'history')")
            raise typer.Exit(2)

        opts = _options(
            k=k, method=method, min_cluster_size=min_cluster_size, window_days=window_days, window_anchor=window_anchor, by_weekday=by_weekday,
            table=table, text_column=text_column, timestamp_column=timestamp_column, session_column=session_column,
            turn_column=turn_column, tool_calls_column=tool_calls_column, outcome_column=outcome_column,
            sample_size=sample_size, model=model, cache=cache, sessions=sessions,
            session_feature_weight=session_feature_weight, seed=seed, api_base=api_base, api_key_env=api_key_env,
            embed_concurrency=embed_concurrency, embed_price_per_1m=embed_price_per_1m, batch_size=batch_size,
            embed_transport=embed_transport,
            fit_sample=fit_sample,
        )
        opts.update(good_below=good_below, refresh_above=refresh_above)
        try:
            report = api.measure_coverage(production, dataset, ledger=ledger, store=not no_store, on_report=on_report,
                                          **opts).data
            if html is not None:
                render.write_html(report, html)
            if png is not None:
                render.write_png(report, png)
        except BenchrunError as e:
            render.print_error(str(e))
            raise typer.Exit(e.exit_code) from None
        if as_json:
            render.print_json(report)
        else:
            render.print_coverage(report, max_rows=rows)
        if fail_above is not None and report["score"]["jsd"] > fail_above:
            render.print_error(f"coverage JSD {report['score']['jsd']:.3f} is above --fail-above {fail_above:g}")
            raise typer.Exit(1)

    @app.command("refresh")
    def refresh_cmd(
        production: Production,
        dataset: DatasetOpt,
        n: Annotated[int, typer.Option("--n", help="How many candidate cases to propose")] = 50,
        out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the candidate dataset YAML")] = Path(
            "new_cases.yaml"
        ),
        edge_share: Annotated[float, typer.Option("--edge-share", help="Pool clusters under this traffic share")] = 0.005,
        near_duplicate: Annotated[
            float, typer.Option("--near-duplicate", help="Cosine similarity counted as a near-duplicate")
        ] = 0.9,
        novelty: Annotated[
            float, typer.Option("--novelty", help="Prefer queries unlike existing cases inside a cluster (0 = uniform)")
        ] = 2.0,
        k: KOpt = None,
        method: MethodOpt = Method.kmeans,
        min_cluster_size: MinSize = None,
        window_days: Window = None,
        window_anchor: Anchor = "newest",
        by_weekday: Weekday = False,
        table: TableOpt = None,
        text_column: TextCol = None,
        timestamp_column: TsCol = None,
        session_column: SessCol = None,
        turn_column: TurnCol = None,
        tool_calls_column: ToolCol = None,
        outcome_column: OutcomeCol = None,
        sample_size: Sample = None,
        model: ModelOpt = None,
        cache: CacheOpt = Path("runs/embeddings.sqlite"),
        api_base: ApiBase = None,
        api_key_env: ApiKeyEnv = None,
        embed_concurrency: EmbedConc = 8,
        embed_price_per_1m: EmbedPrice = None,
        embed_transport: EmbedTransport = None,
        batch_size: BatchOpt = None,
        fit_sample: FitSample = 100_000,
        sessions: SessionsOpt = False,
        session_feature_weight: SessW = 1.0,
        seed: Seed = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    ) -> None:
        """Propose new eval cases from production, stratified by cluster coverage."""
        from benchrun.coverage import render
        from benchrun.coverage.pipeline import run_refresh

        opts = _options(
            k=k, method=method, min_cluster_size=min_cluster_size, window_days=window_days, window_anchor=window_anchor, by_weekday=by_weekday,
            table=table, text_column=text_column, timestamp_column=timestamp_column, session_column=session_column,
            turn_column=turn_column, tool_calls_column=tool_calls_column, outcome_column=outcome_column,
            sample_size=sample_size, model=model, cache=cache, sessions=sessions,
            session_feature_weight=session_feature_weight, seed=seed, api_base=api_base, api_key_env=api_key_env,
            embed_concurrency=embed_concurrency, embed_price_per_1m=embed_price_per_1m, batch_size=batch_size,
            embed_transport=embed_transport,
            fit_sample=fit_sample,
        )
        try:
            result = run_refresh(
                production, dataset, n, out, edge_share=edge_share, near_duplicate=near_duplicate, novelty=novelty,
                on_report=on_report, **opts
            )
        except BenchrunError as e:
            render.print_error(str(e))
            raise typer.Exit(e.exit_code) from None
        if as_json:
            render.print_json({k_: v for k_, v in result.items() if k_ != "coverage"})
        else:
            render.print_refresh(result)

    return app


app = build_app()
