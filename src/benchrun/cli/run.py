"""`benchrun run`: run a spec (or resume a run), print the per-model table, apply the quality gates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from benchrun.cli.common import (
    JsonOpt,
    LedgerOpt,
    ProgressBar,
    Severity,
    YesOpt,
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
        bool, typer.Option("--require-calibrated", help="Refuse to run with an uncalibrated or untrusted judge; "
                                    "a judge degenerate in this run fails it (exit 1).")
    ] = False,
    call_workers: Annotated[
        str, typer.Option("--call-workers", help="Processes that make the litellm-transport calls (0: this "
                          "process; OpenAI-compatible calls always stay here). 'auto' uses one per 8 calls in "
                          "flight (2-8) for runs of 250+ cells at concurrency 16+ on remote models with 2+ "
                          "cores, else 0.")
    ] = "auto",
    unsafe_exec: Annotated[
        bool, typer.Option("--unsafe-exec", help="Run code checks without bubblewrap: a plain subprocess with "
                           "rlimits only, which can read your files and reach the network (recorded in the run).")
    ] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write a JUnit XML file (one test case per case × model).")
    ] = None,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Print the calls, tokens and cost the run would take; call nothing.")
    ] = False,
    yes: YesOpt = False,
    shard: Annotated[
        str | None, typer.Option("--shard", help="Run shard I of N (e.g. 2/4) of the run --run-id: N processes "
                                 "fill one run in a shared ledger; see docs/scale.md.")
    ] = None,
    run_id_opt: Annotated[
        str | None, typer.Option("--run-id", help="The id of the sharded run (the same for its N shards).")
    ] = None,
    batch: Annotated[
        bool, typer.Option("--batch", help="Submit every model's calls (candidates and judge) through the "
                           "provider's batch API: about half price, answers within its completion window (24 h); "
                           "see docs/batch.md.")
    ] = False,
) -> None:
    """Run a spec: every case × candidate × sample, scored by rules and the judge, recorded in the ledger."""
    from benchrun import api

    if shard is not None or run_id_opt is not None:
        _check_shard_options(shard, run_id_opt, spec, resume, estimate, fail_on, min_pass_rate, junit)

    if estimate:
        if resume or spec is None:
            raise UsageError("--estimate needs a run spec file (it estimates a new run), not --resume")
        from benchrun.report.estimate import render_estimate

        est = api.estimate(spec, ledger=open_ledger(ledger), cache=not no_cache, batch=batch)
        if json_out:
            print_json(est.to_dict())
        else:
            render_estimate(out(), est)
        return
    if junit is not None:
        _check_writable(junit)
    led = open_ledger(ledger)
    if resume and batch:
        raise UsageError("--batch applies to a new run; a resumed run keeps how its models were called")
    if shard is not None and run_id_opt is not None and spec is not None:
        if batch:
            raise UsageError("--batch and --shard do not go together yet; give the models `batch: true` in the spec "
                             "or run unsharded")
        prepared = api.prepare_shard(spec, shard, run_id_opt, ledger=led, require_calibrated=require_calibrated,
                                     call_workers=call_workers, unsafe_exec=unsafe_exec)
    elif resume:
        prepared = api.prepare_resume(resume, ledger=led, call_workers=call_workers, unsafe_exec=unsafe_exec,
                                      confirmed=yes, on_credentials=None if json_out else _print_lines)
    else:
        if spec is None:
            raise UsageError("give a run spec file, or --resume RUN_ID")
        prepared = api.prepare_run(spec, ledger=led, require_calibrated=require_calibrated, call_workers=call_workers,
                                   unsafe_exec=unsafe_exec, batch=batch)
    loaded, run_id, n_workers = prepared.loaded, prepared.run_id, prepared.call_workers
    if not json_out:
        from benchrun.ledger.store import redact_url

        how = (f"{n_workers} call worker processes, {loaded.spec.concurrency.global_} calls at most at once"
               if n_workers else "calls in this process")
        err().print(f"run {run_id}: {loaded.spec.name} — ledger {redact_url(led.url)} — {how}", markup=False)
    with ProgressBar(not json_out) as bar:
        hooks = bar.hooks()
        result = api.execute(prepared, cache=not no_cache, progress=hooks["on_progress"], on_start=hooks["on_start"],
                             interrupt_guard=hooks["interrupt_guard"])
    summary = result.data
    from benchrun.report.terminal import render_summary

    if junit is not None:
        _write(junit, api.junit_report(run_id, ledger=led))
    if json_out:
        print_json(summary)
    else:
        # a run that stopped says why once, in the error line below, not also in the summary's header
        render_summary(out(), summary, show_message=result.completed or prepared.shard is not None)
    if prepared.shard is not None:
        _end_shard(prepared.shard, result, loaded.path)
        return
    if not result.completed:
        raise RunAborted(f"run {run_id} stopped: {result.message}. {_resume_advice(result.message, run_id, loaded)}")
    problems = result.gate_failures(fail_on.value if fail_on else None, min_pass_rate)
    if require_calibrated:  # a judge degenerate in this run is untrusted, whatever its calibration
        from benchrun.report.summary import gate_failures

        problems += gate_failures(summary, None, None, require_trusted_judge=True)
    exit_on_gate_failures(problems)


def _check_shard_options(shard: str | None, run_id: str | None, spec: Path | None, resume: str | None,
                         estimate: bool, fail_on: Any, min_pass_rate: float | None, junit: Path | None) -> None:
    if shard is None or run_id is None or spec is None:
        raise UsageError("a sharded run needs a run spec, --shard I/N and --run-id ID (the same id for all N shards)")
    if resume or estimate:
        raise UsageError("--shard runs a shard of a new or unfinished run: rerun the same command to resume it; "
                         "--resume and --estimate do not combine with it")
    if fail_on is not None or min_pass_rate is not None or junit is not None:
        raise UsageError("--fail-on, --min-pass-rate and --junit judge a whole run: apply them after the last shard, "
                         "e.g. `benchrun runs show RUN_ID --fail-on high` (see examples/github-actions-sharded.yml)")


def _end_shard(shard: Any, result: Any, spec_path: str | None) -> None:
    """A shard succeeds (exit 0) when its cells are all recorded, whether or not the other shards are done."""
    own = next((x for x in (result.data.get("shards") or {}).get("shards", []) if x["shard"] == shard.index), None)
    status = own["status"] if own else "unknown"
    if status != "done":
        raise RunAborted(f"shard {shard.label} of run {result.run_id} stopped ({status}): {result.message}. "
                         f"Rerun it with: {shard.command(spec_path, result.run_id)}")


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        err().print(line, markup=False)


def _resume_advice(message: str | None, run_id: str, loaded: Any) -> str:
    """What to do next. A resume reuses the stored snapshot (its api_base, its key variable): it
    cannot fix a wrong endpoint, only outlast one that was down."""
    if message and "unreachable" in message:
        where = loaded.path or "SPEC"
        return (f"If the endpoint was only down, resume once it is back: benchrun run --resume {run_id}. "
                f"If api_base is wrong, fix it in the spec and start a new run (a resume reuses the stored "
                f"snapshot, api_base included): benchrun run {where}")
    return f"Resume with: benchrun run --resume {run_id}"


def _check_writable(path: Path) -> None:
    """Fail before the run, not after it, when the JUnit file cannot be written."""
    if path.is_dir():
        raise UsageError(f"--junit {path} is a directory; give a file name, e.g. --junit report.xml")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--junit {path}: {parent} is not a directory")


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
