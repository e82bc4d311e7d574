"""`benchrun arena --battles FILE`: Bradley-Terry ratings of pairwise battles.

The analysis is `benchrun.analysis.arena`, the file reader `benchrun.battles`, the rendering
`benchrun.report.arena`. This module parses options and calls them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from benchrun.cli.common import JsonOpt, out, print_json

app = typer.Typer()


@app.command("arena")
def arena(
    battles: Annotated[Path, typer.Option("--battles", help="JSON Lines of battles: model_a, model_b, winner "
                                          "(model_a|model_b|tie), optional case_id, judge, len_a, len_b, category.")],
    anchor: Annotated[str | None, typer.Option("--anchor", help="Model rated 1000 (default: the mean of all is 1000)."
                                               )] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="Model to report raw and length-controlled win "
                                                 "rates against.")] = None,
    draws: Annotated[int, typer.Option("--draws", min=2, max=100_000, help="Bootstrap draws over cases.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Which model do people prefer? Bradley-Terry ratings of pairwise battles with case-bootstrap intervals."""
    from benchrun.analysis.arena import rate
    from benchrun.battles import load_battles
    from benchrun.errors import BadInput
    from benchrun.report.arena import arena_payload, render_arena

    rows = load_battles(battles)
    try:
        res = rate(rows, anchor=anchor, baseline=baseline, n_boot=draws, seed=seed)
    except BadInput as e:  # the analysis names the option or the problem; add the file
        raise BadInput(battles, e.where, e.what) from None
    payload = arena_payload(res)
    if json_out:
        print_json(payload)
    else:
        render_arena(out(), payload)
