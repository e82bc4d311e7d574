"""`benchrun sweep`: run a spec once per setup (prompt, temperature, few-shot ...) and ask whether the gap
between the models is larger than what the setup does to each (`benchrun.api.sweep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from benchrun.cli.common import JsonOpt, LedgerOpt, err, open_ledger, out, print_json

app = typer.Typer()


@app.command("sweep")
def sweep(
    spec: Annotated[Path | None, typer.Argument(help="Run spec (runs/NAME.yaml).")] = None,
    vary: Annotated[list[str] | None, typer.Option(
        "--vary", help="FACTOR=VALUE,VALUE (repeat for several factors): prompt (the spec's prompt version or a "
                       "prompt YAML file), fewshot (0 = none), temperature, top_p, seed, max_tokens.")] = None,
    budget: Annotated[float | None, typer.Option("--budget-usd", min=0, help="Cap on the fresh spend of the whole "
                                                 "sweep (default: the spec's budget_usd).")] = None,
    show: Annotated[str | None, typer.Option("--show", help="Report a recorded sweep by its id; run nothing.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read the response cache.")] = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a spec once per combination of setup factors; report each model's score per setup, its spread, and
    whether the gap between the two best models is larger than setup noise.

    Exits 3 when the sweep stopped early (budget spent, a run that did not complete).
    """
    from benchrun import api
    from benchrun.errors import UsageError
    from benchrun.report.terminal_compare import render_sweep

    led = open_ledger(ledger)
    if show is not None:
        if spec is not None or vary:
            raise UsageError("--show reports a recorded sweep; give no spec and no --vary with it")
        res = api.sweep_report(show, ledger=led)
    else:
        if spec is None or not vary:
            raise UsageError("give a spec and at least one factor: benchrun sweep SPEC --vary temperature=0,0.7")
        def said(setup: dict[str, str], r: api.RunResult) -> None:
            if not json_out:
                err().print(f"setup {' '.join(f'{k}={v}' for k, v in setup.items())}: run {r.run_id} {r.status}",
                            markup=False)

        res = api.sweep(spec, vary, ledger=led, budget_usd=budget, cache=not no_cache, on_run=said)
    if json_out:
        print_json(res.data)
    else:
        render_sweep(out(), res.data)
        for setup in res.data.get("not_run") or []:
            err().print(f"not run: {setup}", markup=False)
    if res.stopped:
        err().print(f"sweep stopped early: {res.stopped}", markup=False)
        raise typer.Exit(3)
