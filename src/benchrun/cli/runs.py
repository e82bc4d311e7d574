"""`benchrun runs list | show`: read runs recorded in the ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from benchrun.cli.common import (
    Group,
    JsonOpt,
    LedgerOpt,
    Severity,
    exit_on_gate_failures,
    open_ledger,
    out,
    print_json,
)

app = typer.Typer()
runs_app = typer.Typer(cls=Group, help="Read runs recorded in the ledger.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(ledger: LedgerOpt = None, json_out: JsonOpt = False,
              limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 50) -> None:
    """List runs, newest first."""
    from dataclasses import asdict

    from benchrun import api
    from benchrun.report.terminal import render_runs

    rows = [asdict(r) for r in api.Ledger(open_ledger(ledger, read_only=True)).runs(limit)]
    if json_out:
        print_json(rows)
    else:
        render_runs(out(), rows)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    fail_on: Annotated[Severity | None, typer.Option(
        "--fail-on", help="Exit 1 if any case of this severity or worse is not passed.")] = None,
    min_pass_rate: Annotated[float | None, typer.Option(
        "--min-pass-rate", min=0, max=1, help="Exit 1 if a model passes less than this (errors count as not passed).")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Show one case: every answer, each rule with what it "
                                                            "extracted and why it failed, the judge's verdict.")] = None,
) -> None:
    """Show a run's conditions, per-model table and failure breakdown."""
    from benchrun import api
    from benchrun.report.summary import case_detail, gate_failures
    from benchrun.report.terminal import render_case, render_summary

    led = open_ledger(ledger, read_only=True)
    if case is not None:
        detail = case_detail(led, led.get_run(run_id), case)
        if json_out:
            print_json(detail)
        else:
            render_case(out(), detail)
        return
    summary = api.Ledger(led).run(run_id).data
    if json_out:
        print_json(summary)
    else:
        render_summary(out(), summary)
    exit_on_gate_failures(gate_failures(summary, fail_on.value if fail_on else None, min_pass_rate))
