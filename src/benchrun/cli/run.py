"""`benchrun run`: run a spec (or resume a run), print the per-model table, apply the quality gates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from benchrun.cli.common import (
    JsonOpt,
    LedgerOpt,
    ProgressBar,
    Severity,
    err,
    exit_on_gate_failures,
    open_ledger,
    out,
    print_json,
)
from benchrun.errors import RunAborted, UsageError

app = typer.Typer()


@app.command()
def run(
    spec: Annotated[Path | None, typer.Argument(help="Run spec (runs/NAME.yaml).")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Complete the missing results of RUN_ID.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read the response cache.")] = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    fail_on: Annotated[
        Severity | None, typer.Option("--fail-on", help="Exit 1 if any case of this severity or worse is not passed.")
    ] = None,
    min_pass_rate: Annotated[
        float | None, typer.Option("--min-pass-rate", min=0, max=1, help="Exit 1 if a model passes less than this.")
    ] = None,
    require_calibrated: Annotated[
        bool, typer.Option("--require-calibrated", help="Refuse to run with an uncalibrated or untrusted judge.")
    ] = False,
    call_workers: Annotated[
        str, typer.Option("--call-workers", help="Processes that make the model calls (0: this process). 'auto' "
                          "uses one per 8 calls in flight (2-8) for runs of 250+ cells at concurrency 16+ on "
                          "remote models with 2+ cores, else 0.")
    ] = "auto",
    unsafe_exec: Annotated[
        bool, typer.Option("--unsafe-exec", help="Run code checks without bubblewrap: a plain subprocess with "
                           "rlimits only, which can read your files and reach the network (recorded in the run).")
    ] = False,
) -> None:
    """Run a spec: every case × candidate × sample, scored by rules and the judge, recorded in the ledger."""
    from benchrun import providers, runner
    from benchrun.execution import execute_run
    from benchrun.report.summary import build_summary, gate_failures
    from benchrun.report.terminal import render_summary
    from benchrun.spec import LoadedSpec, load_run_spec

    providers.collect_env_secrets()
    led = open_ledger(ledger)
    if resume:
        prior = led.get_run(resume)
        if prior.status == "completed" and not _has_errors(led, prior.id):
            raise UsageError(f"run {prior.id} is already complete; nothing to resume")
        loaded = LoadedSpec.from_snapshot(json.loads(prior.spec_snapshot))
        loaded.path = prior.spec_path
        n_workers = runner.call_workers_for(loaded, call_workers)
        run_id = prior.id
        runner.code_sandbox(loaded, unsafe_exec=unsafe_exec)  # refuse before the run is marked running
        led.update_run(run_id, status="running", message=None, finished_at=None)
    else:
        if spec is None:
            raise UsageError("give a run spec file, or --resume RUN_ID")
        loaded = load_run_spec(spec)
        n_workers = runner.call_workers_for(loaded, call_workers)
        if require_calibrated:
            _check_calibrated(led, loaded)
        run_id = runner.create_run(loaded, led, unsafe_exec=unsafe_exec)
    if not json_out:
        from benchrun.ledger.store import redact_url

        how = (f"{n_workers} call worker processes, {loaded.spec.concurrency.global_} calls at most at once"
               if n_workers else "calls in this process")
        err().print(f"run {run_id}: {loaded.spec.name} — ledger {redact_url(led.url)} — {how}", markup=False)
    with ProgressBar(not json_out) as bar:
        outcome = execute_run(loaded, led, run_id, use_cache=not no_cache, call_workers=n_workers,
                              unsafe_exec=unsafe_exec, **bar.hooks())
    summary = build_summary(led, led.get_run(run_id))
    if json_out:
        print_json(summary)
    else:
        render_summary(out(), summary)
    if outcome.status != "completed":
        raise RunAborted(f"run {run_id} stopped: {outcome.message}. Resume with: benchrun run --resume {run_id}")
    exit_on_gate_failures(gate_failures(summary, fail_on.value if fail_on else None, min_pass_rate))


def _check_calibrated(led: Any, loaded: Any) -> None:
    from benchrun.report.summary import latest_calibration

    if loaded.spec.judge is None or loaded.rubric is None:
        return  # scored by rules only: there is no judge to calibrate
    judge, rb = loaded.spec.judge.model, loaded.rubric
    cal = latest_calibration(led, judge, rb.judge_prompt_hash, rb.hash)
    if cal is None:
        raise UsageError(
            f"judge {judge} is uncalibrated for rubric {rb.name} v{rb.version} (prompt {rb.judge_prompt_hash[:12]}); "
            "run `benchrun calibrate` with human labels first, or drop --require-calibrated"
        )
    if not cal.get("trusted"):
        raise UsageError(f"judge {judge} is not trusted by its latest calibration: {cal.get('summary')}")


def _has_errors(led: Any, run_id: str) -> bool:
    return any(st == "error" for st in led.cells(run_id).values())
