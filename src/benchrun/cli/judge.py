"""`benchrun labels`, `benchrun calibrate` and `benchrun bias`: can we trust the judge?

The commands are thin: parse, call `benchrun.judge_trust`, render with
`benchrun.report.judge_trust`. Every command takes ``--json``; every result is stored in the
ledger. Exit codes: 2 for bad input (a malformed labels file, too few labels), 3 when a
provider cannot be reached. See docs/judge-trust.md for what each number means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from benchrun.cli import common
from benchrun.cli.annotate import labels_annotate
from benchrun.cli.common import Group, JsonOpt, LedgerOpt, NoCacheOpt, err, open_ledger, print_json

JudgeOpt = Annotated[
    str | None, typer.Option("--judge", help="Judge with this model (litellm string) instead of the run's judge.")
]
ApiBaseOpt = Annotated[str | None, typer.Option("--api-base", help="API base URL of --judge (OpenAI-compatible).")]
ApiKeyEnvOpt = Annotated[
    str | None, typer.Option("--api-key-env", help="NAME of the environment variable holding --judge's API key.")
]


def _print_json(data: Any) -> None:
    from benchrun.judge_trust import sanitize

    print_json(sanitize(data))


def _warn(lines: list[str]) -> None:
    for w in lines:
        err().print(f"warning: {w}", markup=False)


def _emit(info: dict[str, Any], json_out: bool, line: str) -> None:
    """``info`` as JSON with --json, else the one plain ``line``."""
    if json_out:
        _print_json(info)
    else:
        common.out().print(line, markup=False)


def labels_export(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    sample: Annotated[int, typer.Option("--sample", "-n", help="How many results to label.")] = 100,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV template to write.")] = Path("labels.csv"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stratified sample.")] = 0,
    pairwise: Annotated[bool, typer.Option("--pairwise", help="A pairwise run: write blind pairs (A/B in random "
                                           "order) to vote on instead of single results.")] = False,
    recorded: Annotated[bool, typer.Option("--recorded", help="Write the labels recorded in the ledger (from "
                                           "`benchrun view` and `labels import`) instead of a blank template.")
                        ] = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a blind CSV template of a stratified sample of a run's judged results (by model, category,
    severity and judge verdict) for people to label; with --pairwise, of a pairwise run's judged pairs."""
    from benchrun import judge_trust as jt

    led = open_ledger(ledger)
    if pairwise:
        from benchrun.pairwise_labels import export_pairwise_labels

        info = export_pairwise_labels(led, led.get_run(run_id), sample, out, seed)
        _emit(info, json_out, f"wrote {info['written']} pair(s) to {info['out']} (from {info['judged_pairs']} judged "
              f"pairs, seed {seed}); fill in human_winner (A, B or tie) and annotator, then `benchrun labels import "
              f"{info['out']} --run {info['run_id']}`")
        return
    if recorded:
        info = jt.export_recorded_labels(led, jt.open_run(led, run_id), out)
        _emit(info, json_out, f"wrote {info['written']} recorded label(s) by {len(info['annotators'])} annotator(s) "
              f"to {info['out']} (hash {info['hash'][:12]})")
        return
    info = jt.export_labels(jt.open_run(led, run_id), sample, out, seed)
    if json_out:
        _print_json(info)
        return
    o = common.out()
    o.print(f"wrote {info['written']} item(s) to {info['out']} (from {info['judged_results']} judged results in "
            f"{info['strata']} strata, seed {seed})", markup=False)
    o.print(f"fill in human_score, human_pass, failure_mode and annotator (or use `benchrun labels annotate "
            f"{info['out']} --run {info['run_id']} --annotator NAME`), then `benchrun labels import {info['out']} "
            f"--run {info['run_id']}` and `benchrun calibrate --labels {info['out']} --run {info['run_id']}`",
            markup=False)


def labels_import(
    file: Annotated[Path, typer.Argument(help="Labels file (.csv or .jsonl).")],
    run: Annotated[str, typer.Option("--run", help="The run whose results were labelled.")],
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate a labels file against a run and its rubric, and record it (with its hash) in the ledger."""
    from benchrun import judge_trust as jt

    led = open_ledger(ledger)
    run_row = led.get_run(run)
    if led.pair_judgements(run_row.id):  # a pairwise run: the file holds votes on pairs
        from benchrun.pairwise_labels import import_pairwise_labels

        pinfo = import_pairwise_labels(led, run_row, file)
        _emit(pinfo, json_out, f"{file}: valid; {pinfo['summary']}; stored as report {pinfo['report_id']}; "
              f"see `benchrun arena {run_row.id}` (--human for the people's ratings)")
        return
    info = jt.import_labels(led, jt.open_run(led, run), file)
    if json_out:
        _print_json(info)
        return
    o = common.out()
    o.print(f"{file}: valid; {info['summary']}; {info['items_with_judge_verdict']} item(s) have a judge verdict; "
            f"stored as report {info['report_id']}", markup=False)
    if info["skipped_blank"]:
        o.print(f"{info['skipped_blank']} blank row(s) skipped", markup=False)


def calibrate_cmd(
    labels: Annotated[Path, typer.Option("--labels", help="Filled-in labels file (.csv or .jsonl).")],
    run: Annotated[str, typer.Option("--run", help="The run whose results were labelled.")],
    judge: JudgeOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Trusted when the 95% CI of kappa is above this.")] = 0.6,
    no_cache: NoCacheOpt = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare the judge with human labels: agreement, Cohen's kappa with its 95% CI, weighted kappa,
    Spearman, confusion, leniency, failure modes; trusted or not. Uses the run's verdicts, or re-judges the
    labelled items with --judge. Stored in the ledger; `runs show` then reports it next to judge scores."""
    from benchrun import api
    from benchrun.report.judge_trust import render_calibration

    info = api.calibrate(run, labels, threshold=threshold, judge=judge, api_base=api_base, api_key_env=api_key_env,
                         cache=not no_cache, ledger=open_ledger(ledger)).data
    _warn(info["self_preference"])
    if json_out:
        _print_json(info)
        return
    _warn(info["report"]["warnings"])
    render_calibration(common.out(), info)


def bias_position(
    run: Annotated[str | None, typer.Option("--run", help="Run holding the two models' answers.")] = None,
    a: Annotated[str | None, typer.Option("--a", help="Model key of answer A.")] = None,
    b: Annotated[str | None, typer.Option("--b", help="Model key of answer B.")] = None,
    verdicts: Annotated[Path | None, typer.Option("--verdicts", help="Recorded both-order verdicts (.jsonl/.csv).")] = None,
    judge: JudgeOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    save_verdicts: Annotated[
        Path | None, typer.Option("--save-verdicts", help="Write the pair verdicts to this CSV (add labels, re-read "
                                  "with --verdicts for accuracy).")] = None,
    no_cache: NoCacheOpt = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Position bias of pairwise judging: judge A vs B in both orders (or read recorded verdicts) and report
    consistency, the first-position win rate and, with labels, accuracy with and without the both-orders rule."""
    from benchrun import judge_trust as jt
    from benchrun.errors import UsageError
    from benchrun.report.judge_trust import render_position

    led = open_ledger(ledger)
    if verdicts is not None:
        if run or a or b or save_verdicts:
            raise UsageError("give either --verdicts FILE or --run RUN_ID --a KEY --b KEY, not both")
        if api_base or api_key_env:
            raise UsageError("--api-base / --api-key-env only apply when judging a run's pairs")
        info = jt.position_from_file(led, verdicts, judge)
    else:
        if not (run and a and b):
            raise UsageError("give --run RUN_ID --a KEY --b KEY (two models of the run), or --verdicts FILE")
        info = jt.position_from_run(led, jt.open_run(led, run), a, b, judge=judge, api_base=api_base,
                                    api_key_env=api_key_env, use_cache=not no_cache, save_verdicts=save_verdicts)
    _warn(info.get("self_preference") or [])
    if json_out:
        _print_json(info)
        return
    render_position(common.out(), info)


def bias_verbosity(
    run: Annotated[str, typer.Option("--run", help="Run whose answers are padded and re-judged.")],
    sample: Annotated[int, typer.Option("--sample", "-n", help="How many answers to pad.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stratified sample.")] = 0,
    labels: Annotated[Path | None, typer.Option("--labels", help="Human labels: sample from them and report the "
                                                "length-score rank partial correlation.")] = None,
    judge: JudgeOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    no_cache: NoCacheOpt = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Verbosity bias: pad answers with no new information (restated question, repeated list, filler), judge
    them and the unpadded answer again with the run's rubric, report how often padding scored higher, equal or
    lower (flagged when an exact sign test finds higher beats lower and the net rate exceeds 10%)."""
    from benchrun import judge_trust as jt
    from benchrun.report.judge_trust import render_verbosity

    led = open_ledger(ledger)
    info = jt.verbosity_from_run(led, jt.open_run(led, run), sample=sample, seed=seed, labels_path=labels,
                                 judge=judge, api_base=api_base, api_key_env=api_key_env, use_cache=not no_cache)
    _warn(info["self_preference"])
    if json_out:
        _print_json(info)
        return
    render_verbosity(common.out(), info)


app = typer.Typer()
labels_app = typer.Typer(cls=Group, help="Human labels for checking the judge: export, annotate, import.", no_args_is_help=True)
labels_app.command("export")(labels_export)
labels_app.command("import")(labels_import)
labels_app.command("annotate")(labels_annotate)
bias_app = typer.Typer(cls=Group, help="Probe the judge for position and verbosity bias.", no_args_is_help=True)
bias_app.command("position")(bias_position)
bias_app.command("verbosity")(bias_verbosity)
app.add_typer(labels_app, name="labels")
app.add_typer(bias_app, name="bias")
app.command("calibrate")(calibrate_cmd)
