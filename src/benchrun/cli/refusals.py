"""`benchrun refusals RUN_ID --judge MODEL`: a judge's verdict on which answers refuse (`benchrun.refusal_check`)."""

from __future__ import annotations

from typing import Annotated

import typer

from benchrun.cli.common import JsonOpt, LedgerOpt, NoCacheOpt, open_ledger, out, print_json
from benchrun.cli.judge import ApiBaseOpt, ApiKeyEnvOpt

app = typer.Typer()


@app.command("refusals")
def refusals(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    judge: Annotated[str, typer.Option("--judge", help="The model that classifies the answers (litellm string).")],
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    ledger: LedgerOpt = None,
    no_cache: NoCacheOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Ask a judge which answers of a run refuse; stored in the ledger, `runs show` then adds the judge's
    refusal rate and its agreement with the phrase rules to the holistic row."""
    from benchrun import api
    from benchrun.report.escape import escape

    d = api.check_refusals(run_id, judge=judge, api_base=api_base, api_key_env=api_key_env, cache=not no_cache,
                           ledger=open_ledger(ledger))
    if json_out:
        print_json({k: v for k, v in d.items() if k != "verdicts"} | {"verdicts": len(d["verdicts"])})
    else:
        out().print(escape(d["summary"]))
        if d["errors"]:
            out().print(f"[yellow]{len(d['errors'])} answer(s) not classified[/yellow] (call failed or no "
                        "{\"refusal\": ...} in the reply; --json lists them)")
