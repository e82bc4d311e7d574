"""`benchrun batch status RUN_ID`: the provider batches of a run (see `benchrun.batch`)."""

from __future__ import annotations

from typing import Annotated

import typer

from benchrun.cli.common import Group, JsonOpt, LedgerOpt, open_ledger, out, print_json

app = typer.Typer()
batch_app = typer.Typer(cls=Group, help="Provider batches of a run (batch: true, run --batch).", no_args_is_help=True)
app.add_typer(batch_app, name="batch")


@batch_app.command("status")
def batch_status(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
                 ledger: LedgerOpt = None, json_out: JsonOpt = False) -> None:
    """Refresh and show the state of each batch of a run; `benchrun run --resume RUN_ID` collects ended ones."""
    from benchrun import api
    from benchrun.report.terminal import render_batches

    jobs = api.batch_status(run_id, ledger=open_ledger(ledger))
    if json_out:
        print_json(jobs)
    else:
        render_batches(out(), run_id, jobs)
