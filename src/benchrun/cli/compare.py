"""`benchrun compare | reproduce | diff | shortlist | report`: read the ledger, build the plain data, render.

The builders live below the CLI (`benchrun.report.comparison`, `benchrun.report.shortlist`,
`benchrun.report.data`, `benchrun.reproduce`); the terminal rendering in
`benchrun.report.terminal_compare`. This module parses options and calls them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from benchrun.cli.common import (
    JsonOpt,
    LedgerOpt,
    ProgressBar,
    YesOpt,
    err,
    open_ledger,
    out,
    print_json,
    show_credentials,
)

app = typer.Typer()


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``--weights quality=0.6,cost=0.3`` to a dict; a part that is not NAME=NUMBER is bad input."""
    from benchrun.errors import BadInput

    if not text:
        return None
    weights: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        try:
            if not sep:
                raise ValueError
            weights[k.strip()] = float(v)
        except ValueError:
            raise BadInput(None, "--weights", f"'{part}' is not NAME=NUMBER; e.g. quality=0.6,cost=0.3,latency=0.1") from None
    return weights


@app.command("compare")
def compare(
    a: Annotated[str, typer.Argument(help="Model A: MODEL_KEY with --run, or RUN_ID:MODEL_KEY.")],
    b: Annotated[str, typer.Argument(help="Model B: MODEL_KEY with --run, or RUN_ID:MODEL_KEY.")],
    run: Annotated[str | None, typer.Option("--run", help="Run holding both models (give A and B as model keys).")] = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Is A better than B? Paired per case: pass-rate gap with intervals, McNemar, judge score, flips, power."""
    from benchrun import api
    from benchrun.report.terminal_compare import render_compare

    payload = api.compare(a, b, run=run, ledger=open_ledger(ledger, read_only=True)).data
    if json_out:
        print_json(payload)
    else:
        for w in payload["warnings"]:
            err().print(f"WARNING: {w}", markup=False)
        render_compare(out(), payload, warnings=False)  # once, on stderr: a CI log with 2>&1 shows it once


@app.command("reproduce")
def reproduce(
    run_id: Annotated[str, typer.Argument(help="Run to reproduce (id or unique prefix).")],
    from_cache: Annotated[bool, typer.Option("--from-cache", help="Replay every call from the ledger cache; no calls."
                                             )] = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    unsafe_exec: Annotated[
        bool, typer.Option("--unsafe-exec", help="Run code checks without bubblewrap (rlimits only; recorded).")
    ] = False,
    yes: YesOpt = False,
) -> None:
    """Re-run a recorded run from its stored snapshot and say whether the result reproduced (exit 1 if not)."""
    from benchrun import api
    from benchrun.report.terminal_compare import render_reproduce

    led = open_ledger(ledger)
    if not json_out:
        original = led.get_run(run_id)
        err().print(f"reproducing run {original.id} " + ("from the cache (no calls)" if from_cache else
                                                         "with fresh calls (cache not read)"), markup=False)
        show_credentials(original, from_cache)
    with ProgressBar(not json_out) as bar:
        hooks = bar.hooks()
        d = api.reproduce(run_id, from_cache=from_cache, ledger=led, unsafe_exec=unsafe_exec, confirmed=yes,
                          progress=hooks["on_progress"],
                          on_start=hooks["on_start"], interrupt_guard=hooks["interrupt_guard"]).data
    if json_out:
        print_json(d)
    else:
        render_reproduce(out(), d)
    if not d["reproduced"]:
        raise typer.Exit(1)


@app.command("diff")
def diff(
    run_a: Annotated[str, typer.Argument(help="First run id (or prefix).")],
    run_b: Annotated[str, typer.Argument(help="Second run id (or prefix).")],
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What differs in two runs' conditions (models, prompts, sampling, dataset, rubric, judge, versions)."""
    from benchrun.report.comparison import conditions_diff
    from benchrun.report.plain import jsonable
    from benchrun.report.sweep import sweep_diff
    from benchrun.report.terminal_compare import render_diff

    led = open_ledger(ledger, read_only=True)
    ra, rb = led.get_run(run_a), led.get_run(run_b)
    d = conditions_diff(ra, rb)
    sweep = sweep_diff(ra, rb, d["differences"])
    if sweep is not None:  # runs of one sweep: name the factor that varied
        d["sweep"] = sweep
    if json_out:
        print_json(jsonable(d))
    else:
        render_diff(out(), d)


@app.command("shortlist")
def shortlist(
    run_ids: Annotated[list[str], typer.Argument(help="One or more run ids; every model in them is a candidate.")],
    max_cost_per_1k: Annotated[float | None, typer.Option("--max-cost-per-1k", min=0,
                                                          help="Exclude above this USD per 1,000 cases.")] = None,
    max_p95_ms: Annotated[float | None, typer.Option("--max-p95-ms", min=0, help="Exclude above this p95 latency.")
                          ] = None,
    max_high_severity: Annotated[int | None, typer.Option("--max-high-severity", min=0,
                                                          help="Exclude with more high-severity failures.")] = None,
    min_pass_rate: Annotated[float | None, typer.Option("--min-pass-rate", min=0, max=1,
                                                        help="Exclude below this pass rate (0-1).")] = None,
    weights: Annotated[str | None, typer.Option("--weights", help="e.g. quality=0.6,cost=0.3,latency=0.1")] = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Decision table: exclude by limits (with reasons), rank the rest, mark ties and the quality/cost frontier.

    Exits 1 when limits were given and every candidate is excluded.
    """
    from benchrun import api
    from benchrun.report.terminal_compare import render_shortlist

    d = api.shortlist(run_ids, max_cost_per_1k=max_cost_per_1k, max_p95_ms=max_p95_ms,
                      max_high_severity=max_high_severity, min_pass_rate=min_pass_rate,
                      weights=parse_weights(weights), ledger=open_ledger(ledger, read_only=True)).data
    if json_out:
        print_json(d)
    else:
        render_shortlist(out(), d)
    if not d["ranked"] and d["excluded"]:
        err().print("no candidate meets the limits")
        raise typer.Exit(1)


@app.command("report")
def report(
    run_id: Annotated[str, typer.Argument(help="Run id (or prefix).")],
    html: Annotated[Path | None, typer.Option("--html", help="Write one self-contained HTML file here.")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a compact GitHub-flavoured Markdown summary "
                                           "(for a pull-request comment or $GITHUB_STEP_SUMMARY).")] = False,
    baseline: Annotated[str | None, typer.Option("--baseline", help="With --markdown: compare each model with the "
                                                 "same model key in this earlier run.")] = None,
    compare_: Annotated[str | None, typer.Option("--compare", help="Add a paired comparison: MODEL_A,MODEL_B.")
                        ] = None,
    with_shortlist: Annotated[bool, typer.Option("--shortlist", help="Add the shortlist table.")] = False,
    ledger: LedgerOpt = None,
) -> None:
    """One self-contained HTML report (no network needed): conditions, tables, charts, per-case drill-down.

    With --markdown, a compact Markdown summary on standard output instead (or as well).
    """
    from benchrun.errors import UsageError

    if html is None and not markdown:  # checked here, not by typer, so the message is our one line and exit code 2
        raise UsageError("give the output file: benchrun report RUN_ID --html report.html (or --markdown)")
    if baseline is not None and not markdown:
        raise UsageError("--baseline goes with --markdown: benchrun report RUN_ID --markdown --baseline RUN_ID")
    led = open_ledger(ledger, read_only=True)
    run = led.get_run(run_id)
    if markdown:
        from benchrun import api

        text = api.report_markdown(run.id, baseline=baseline, ledger=led)
    if html is not None:
        from benchrun.report.data import report_data
        from benchrun.report.html import render_report

        pair: tuple[str, str] | None = None
        if compare_:
            parts = [p.strip() for p in compare_.split(",")]
            if len(parts) != 2 or not all(parts):
                raise UsageError("--compare needs two model keys separated by a comma, e.g. --compare good,bad")
            pair = (parts[0], parts[1])
        data = report_data(led, run, pair, with_shortlist)
        try:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(render_report(data), encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {html}: {e.strerror}") from None
        (err() if markdown else out()).print(f"wrote {html}", markup=False)
    if markdown:
        sys.stdout.write(text)
