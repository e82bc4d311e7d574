"""The `benchrun` command line: parse → call → render. Thin on purpose.

Exit codes: 0 done; 1 a quality gate the user set failed; 2 bad input or usage;
3 the run could not complete (provider unreachable, budget exceeded, interrupted).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from benchrun.errors import BenchrunError, RunAborted, UsageError

app = typer.Typer(
    help="Private LLM evaluations: versioned datasets, rule + judge scoring, a reproducibility ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="Read runs recorded in the ledger.", no_args_is_help=True)
dataset_app = typer.Typer(help="Inspect and validate dataset files.", no_args_is_help=True)
rubric_app = typer.Typer(help="Validate rubric files.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(dataset_app, name="dataset")
app.add_typer(rubric_app, name="rubric")

# Piped output (files, CI logs) gets a wide fixed width instead of rich's 80-column fallback.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)

LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", help="SQLAlchemy URL or SQLite path (default: $BENCHRUN_LEDGER or runs/ledger.sqlite)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


class Severity(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _ledger(url: str | None) -> Any:
    from benchrun.ledger import Ledger

    return Ledger(url)


# ----------------------------------------------------------------------------- run


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
) -> None:
    """Run a spec: every case × candidate × sample, scored by rules and the judge, recorded in the ledger."""
    from benchrun import providers, runner
    from benchrun.report.summary import build_summary, gate_failures
    from benchrun.report.terminal import render_summary
    from benchrun.spec import LoadedSpec, load_run_spec

    providers.collect_env_secrets()
    led = _ledger(ledger)
    if resume:
        prior = led.get_run(resume)
        if prior.status == "completed" and not _has_errors(led, prior.id):
            raise UsageError(f"run {prior.id} is already complete; nothing to resume")
        loaded = LoadedSpec.from_snapshot(json.loads(prior.spec_snapshot))
        loaded.path = prior.spec_path
        n_workers = runner.call_workers_for(loaded, call_workers)
        run_id = prior.id
        led.update_run(run_id, status="running", message=None, finished_at=None)
    else:
        if spec is None:
            raise UsageError("give a run spec file, or --resume RUN_ID")
        loaded = load_run_spec(spec)
        n_workers = runner.call_workers_for(loaded, call_workers)
        if require_calibrated:
            _check_calibrated(led, loaded)
        run_id = runner.create_run(loaded, led)
    if not json_out:
        from benchrun.ledger.store import redact_url

        how = (f"{n_workers} call worker processes, {loaded.spec.concurrency.global_} calls at most at once"
               if n_workers else "calls in this process")
        err.print(f"run {run_id}: {loaded.spec.name} — ledger {redact_url(led.url)} — {how}", markup=False)
    outcome = _execute(loaded, led, run_id, use_cache=not no_cache, show_progress=not json_out, call_workers=n_workers)
    summary = build_summary(led, led.get_run(run_id))
    if json_out:
        _print_json(summary)
    else:
        render_summary(out, summary)
    if outcome.status != "completed":
        raise RunAborted(f"run {run_id} stopped: {outcome.message}. Resume with: benchrun run --resume {run_id}")
    problems = gate_failures(summary, fail_on.value if fail_on else None, min_pass_rate)
    if problems:
        for p in problems:
            err.print(f"gate failed: {p}", markup=False)
        raise typer.Exit(1)


def _check_calibrated(led: Any, loaded: Any) -> None:
    from benchrun.report.summary import latest_calibration

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


def _execute(loaded: Any, led: Any, run_id: str, use_cache: bool, show_progress: bool, call_workers: int = 0) -> Any:
    """Run with a progress bar; Ctrl-C, SIGTERM or a crash leave the run marked interrupted."""
    import asyncio
    import time

    from benchrun import runner
    from benchrun.analysis.breakdown import totals
    from benchrun.report.summary import result_dicts

    def _sigterm(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _sigterm)
    progress_ctx: Any = None
    pool: Any = None
    try:
        if call_workers:
            from benchrun.callpool import CallPool

            # before the progress bar's thread exists: the workers are forked
            pool = CallPool(call_workers, loaded.spec.concurrency.global_)
        on_progress = None
        if show_progress and err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            progress_ctx = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}/s"), TextColumn("errors {task.fields[errors]}"),
                TextColumn("cost {task.fields[cost]}"), TimeElapsedColumn(), console=err, transient=False,
            )
            progress_ctx.start()
            task = progress_ctx.add_task("running", total=None, rate="0.0", errors=0, cost="$0")
            t0 = time.perf_counter()

            def on_progress(p: runner.Progress) -> None:
                rate = p.done / max(time.perf_counter() - t0, 1e-9)
                cost = f"${p.cost_usd:.4f}" + (f" (+{p.cost_unknown} unpriced)" if p.cost_unknown else "")
                progress_ctx.update(task, total=p.total, completed=p.done, rate=f"{rate:.1f}", errors=p.errors,
                                    cost=cost)

        r = runner.Runner(loaded, led, run_id, use_cache=use_cache, on_progress=on_progress, pool=pool)
        try:
            outcome = asyncio.run(r.execute())
        except KeyboardInterrupt:
            led.finish_run(run_id, "interrupted", totals(result_dicts(led.results(run_id))), "interrupted by the user")
            raise RunAborted(f"run {run_id} interrupted; resume with: benchrun run --resume {run_id}") from None
        except BenchrunError as e:
            led.finish_run(run_id, "interrupted" if isinstance(e, RunAborted) else "failed",
                           totals(result_dicts(led.results(run_id))), str(e))
            raise
        except Exception as e:
            led.finish_run(run_id, "interrupted", totals(result_dicts(led.results(run_id))),
                           f"crashed: {type(e).__name__}")
            raise
        results = led.results(run_id)
        led.update_run(run_id, models=runner.with_resolved_models(led.get_run(run_id).models, results))
        led.finish_run(run_id, outcome.status, totals(result_dicts(results)), outcome.message)
        return outcome
    finally:
        if progress_ctx is not None:
            progress_ctx.stop()
        if pool is not None:
            pool.close()
        local_model = sys.modules.get("benchrun.local_model")
        if local_model is not None:  # only imported when a local model was started
            local_model.stop_all()
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- runs


@runs_app.command("list")
def runs_list(ledger: LedgerOpt = None, json_out: JsonOpt = False,
              limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 50) -> None:
    """List runs, newest first."""
    from benchrun.report.terminal import render_runs

    led = _ledger(ledger)
    rows = []
    for r in led.list_runs(limit):
        rows.append({
            "id": r.id, "name": r.name, "status": r.status, "created_at": r.created_at.isoformat(),
            "dataset": r.dataset_name, "dataset_version": r.dataset_version, "dataset_hash": r.dataset_hash,
            "models": [m["key"] for m in json.loads(r.models)], "judge": r.judge_model,
            "totals": json.loads(r.totals or "{}"),
        })
    if json_out:
        _print_json(rows)
    else:
        render_runs(out, rows)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    fail_on: Annotated[Severity | None, typer.Option("--fail-on")] = None,
    min_pass_rate: Annotated[float | None, typer.Option("--min-pass-rate", min=0, max=1)] = None,
) -> None:
    """Show a run's conditions, per-model table and failure breakdown."""
    from benchrun.report.summary import build_summary, gate_failures
    from benchrun.report.terminal import render_summary

    led = _ledger(ledger)
    summary = build_summary(led, led.get_run(run_id))
    if json_out:
        _print_json(summary)
    else:
        render_summary(out, summary)
    problems = gate_failures(summary, fail_on.value if fail_on else None, min_pass_rate)
    if problems:
        for p in problems:
            err.print(f"gate failed: {p}", markup=False)
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- files


def _dataset_info(path: Path) -> dict[str, Any]:
    from benchrun.spec import load_dataset

    ds = load_dataset(path)
    return {
        "file": str(path), "name": ds.name, "version": ds.version, "description": ds.description, "hash": ds.hash,
        "cases": len(ds.cases),
        "by_severity": dict(Counter(c.severity for c in ds.cases).most_common()),
        "by_category": dict(Counter(c.category for c in ds.cases).most_common()),
        "by_provenance": dict(Counter(c.provenance.source for c in ds.cases).most_common()),
    }


@dataset_app.command("info")
def dataset_info(file: Path, json_out: JsonOpt = False) -> None:
    """Name, version, hash and counts by category, severity and provenance."""
    from benchrun.report.terminal import render_dataset_info

    info = _dataset_info(file)
    if json_out:
        _print_json(info)
    else:
        render_dataset_info(out, info)


@dataset_app.command("validate")
def dataset_validate(file: Path, json_out: JsonOpt = False) -> None:
    """Check a dataset file; exit 2 with a one-line message naming the line or case id if it is malformed."""
    info = _dataset_info(file)
    if json_out:
        _print_json({"valid": True, "file": str(file), "cases": info["cases"], "hash": info["hash"]})
    else:
        out.print(f"{file}: valid, {info['cases']} cases, hash {info['hash'][:12]}", markup=False)


@rubric_app.command("validate")
def rubric_validate(file: Path, json_out: JsonOpt = False) -> None:
    """Check a rubric file (scale, failure modes, pass rule, judge template and answer schema)."""
    from benchrun.spec import load_rubric

    rb = load_rubric(file)
    if json_out:
        _print_json({"valid": True, "file": str(file), "name": rb.name, "version": rb.version, "hash": rb.hash,
                     "judge_prompt_hash": rb.judge_prompt_hash, "pass_rule": rb.pass_rule.describe()})
    else:
        out.print(f"{file}: valid rubric {rb.name} v{rb.version}, hash {rb.hash[:12]}, pass = {rb.pass_rule.describe()}",
                  markup=False)


@app.command()
def validate(spec: Path, json_out: JsonOpt = False) -> None:
    """Check a run spec together with the dataset and rubric it names (no model is called)."""
    from benchrun.spec import load_run_spec

    loaded = load_run_spec(spec)
    n = len(loaded.cases())
    info = {"valid": True, "file": str(spec), "spec_hash": loaded.spec_hash, "dataset_hash": loaded.dataset.hash,
            "rubric_hash": loaded.rubric.hash, "cases": n, "dataset_cases": len(loaded.dataset.cases),
            "candidates": [c.key for c in loaded.spec.candidates], "samples": loaded.spec.samples,
            "calls_planned": n * len(loaded.spec.candidates) * loaded.spec.samples * 2}
    if json_out:
        _print_json(info)
    else:
        out.print(f"{spec}: valid; {info['cases']} cases × {len(info['candidates'])} candidates × "
                  f"{info['samples']} samples; spec hash {info['spec_hash'][:12]}", markup=False)


# ----------------------------------------------------------------------------- other command groups

from benchrun import cli_compare, cli_judge, cli_ledger  # noqa: E402 - registered after the core commands; light imports only
from benchrun.coverage import cli as coverage_cli  # noqa: E402

cli_judge.register(app)
cli_compare.register(app)
cli_ledger.register(app)  # `ledger copy`, `ledger info`
app.add_typer(coverage_cli.build_app())  # `coverage` and `refresh`


# ----------------------------------------------------------------------------- entry point


def _click_exception_types() -> tuple[type[BaseException], ...]:
    """Usage-error classes: typer >= 0.2x vendors click (``typer._click``); older typers use click itself."""
    types: list[type[BaseException]] = []
    try:
        from typer._click import exceptions as vendored

        types.append(vendored.ClickException)
    except ImportError:
        pass
    try:
        import click

        types.append(click.ClickException)
    except ImportError:
        pass
    return tuple(types)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors and documented exit codes, never a traceback for user faults."""
    from benchrun.providers import SECRETS, collect_env_secrets

    collect_env_secrets()  # every command: any error printed below is redacted of credentials in the environment
    click_errors = _click_exception_types()
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="benchrun")
        if isinstance(rv, int):  # click returns an Exit's code instead of raising when not standalone
            return rv
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except typer.Abort:
        err.print("aborted")
        return 3
    except click_errors as e:
        fmt = getattr(e, "format_message", None)
        err.print(f"error: {fmt() if fmt else e}", markup=False)
        ctx = getattr(e, "ctx", None)
        if ctx is not None:
            err.print(f"see: {ctx.command_path} --help", markup=False)
        return 2
    except BenchrunError as e:
        err.print(f"error: {SECRETS.redact(str(e))}", markup=False)
        return e.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 3
    except Exception as e:  # a bug: still one line, unless debugging
        if os.environ.get("BENCHRUN_DEBUG"):
            raise
        err.print(f"internal error: {type(e).__name__}: {SECRETS.redact(str(e))} (set BENCHRUN_DEBUG=1 for a traceback)",
                  markup=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
