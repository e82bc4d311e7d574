"""``benchrun ledger copy`` and ``benchrun ledger info``: move runs between ledgers, inspect one.

Thin: parse, call `benchrun.ledger.copy`, render. Exit codes follow `benchrun.cli` (2 for usage
errors such as an unknown run id). See docs/reliability.md.
"""

from __future__ import annotations

from typing import Annotated

import typer

from benchrun.cli.common import Group, LedgerOpt, out, print_json

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of text.")]

app = typer.Typer()
ledger_app = typer.Typer(cls=Group, help="Copy runs between ledgers (SQLite, PostgreSQL) and inspect a ledger.",
                         no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


def _out(text: str) -> None:
    out().print(text, markup=False)


@ledger_app.command("copy")
def ledger_copy(
    from_url: Annotated[str, typer.Option("--from", help="Source ledger: SQLAlchemy URL or SQLite path.")],
    to_url: Annotated[str, typer.Option("--to", help="Destination ledger: SQLAlchemy URL or SQLite path.")],
    run: Annotated[
        list[str] | None, typer.Option("--run", help="Copy only this run (id or unique prefix); repeatable.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Copy runs with their results, cache entries and reports; copying twice changes nothing."""
    from benchrun.ledger.copy import copy
    from benchrun.ledger.store import ledger_url, redact_url

    stats = copy(from_url, to_url, run or None)
    if json_out:
        print_json({"from": redact_url(ledger_url(from_url)), "to": redact_url(ledger_url(to_url)),
                     **stats.to_dict()})
        return
    runs = stats.runs_added + stats.runs_updated + stats.runs_unchanged
    line = (f"copied {runs} run(s) to {redact_url(ledger_url(to_url))}: {stats.runs_added} new, "
            f"{stats.runs_updated} updated, {stats.runs_unchanged} already there; results +{stats.results_added} "
            f"(replaced {stats.results_replaced}); cache +{stats.cache_added}; reports +{stats.reports_added}")
    if stats.shards_written or stats.batch_jobs_written or stats.batch_lines_written:
        line += (f"; shard rows {stats.shards_written}, batches {stats.batch_jobs_written}, batch lines "
                 f"{stats.batch_lines_written} written")
    _out(line if stats.changed or runs else "nothing to copy")
    if stats.runs_still_running:
        _out(f"note: {len(stats.runs_still_running)} run(s) were still running in the source "
             f"({', '.join(stats.runs_still_running)}); copy again when they finish")


@ledger_app.command("info")
def ledger_info(
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Schema version and row counts of a ledger."""
    from benchrun.ledger import Ledger, redact_url

    led = Ledger(ledger, read_only=True)
    try:
        info = {"ledger": redact_url(led.url), "backend": led.engine.dialect.name,
                "schema_version": led.schema_version(), **led.counts()}
    finally:
        led.close()
    if json_out:
        print_json(info)
        return
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(info["runs_by_status"].items())) or "none"
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(info["reports_by_kind"].items())) or "none"
    _out(f"{info['ledger']} ({info['backend']}), schema version {info['schema_version']}\n"
         f"runs: {info['runs']} ({by_status})\nresults: {info['results']}\ncache entries: {info['cache']}\n"
         f"reports: {info['reports']} ({by_kind})")

