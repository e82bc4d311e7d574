"""`benchrun arena RUN_ID` / `benchrun arena --battles FILE`: Bradley-Terry ratings of pairwise battles.

The work is `benchrun.api.arena` (the analysis `benchrun.analysis.arena`, the file reader
`benchrun.battles`, a pairwise run's battles `benchrun.pairwise_run`), the rendering
`benchrun.report.arena`. This module parses options and calls them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from benchrun.cli.common import JsonOpt, LedgerOpt, out, print_json

app = typer.Typer()


@app.command("arena")
def arena(
    run_id: Annotated[str | None, typer.Argument(help="A pairwise run (judge.mode: pairwise) to rate from the ledger."
                                                 )] = None,
    battles: Annotated[Path | None, typer.Option("--battles", help="JSON Lines of battles: model_a, model_b, winner "
                                                 "(model_a|model_b|tie), optional case_id, judge, len_a, len_b, "
                                                 "category.")] = None,
    anchor: Annotated[str | None, typer.Option("--anchor", help="Model rated 1000 (default: the mean of all is 1000)."
                                               )] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="Model to report raw and length-controlled win "
                                                 "rates against (a run's judge.pairs.baseline by default).")] = None,
    draws: Annotated[int, typer.Option("--draws", min=2, max=100_000, help="Bootstrap draws over cases.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    human: Annotated[bool, typer.Option("--human", help="Rate the run's imported human votes instead of its judge."
                                        )] = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Which model do people prefer? Bradley-Terry ratings of pairwise battles with case-bootstrap intervals."""
    from benchrun.api import arena as api_arena
    from benchrun.report.arena import render_arena

    payload = api_arena(run_id, battles=battles, anchor=anchor, baseline=baseline, draws=draws, seed=seed,
                        human=human, ledger=ledger)
    if json_out:
        print_json(payload)
    else:
        render_arena(out(), payload)
