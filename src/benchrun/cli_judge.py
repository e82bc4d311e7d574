"""``benchrun labels``, ``benchrun calibrate`` and ``benchrun bias``: can we trust the judge?

Mount on the main app with ``register(app)``. The commands are thin: parse, call
`benchrun.judge_trust`, render. Every command takes ``--json``; every result is
stored in the ledger. Exit codes follow `benchrun.cli`: 2 for bad input (a
malformed labels file, too few labels), 3 when a provider cannot be reached.
See docs/judge-trust.md for what each number means.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", help="SQLAlchemy URL or SQLite path (default: $BENCHRUN_LEDGER or runs/ledger.sqlite)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
JudgeOpt = Annotated[
    str | None, typer.Option("--judge", help="Judge with this model (litellm string) instead of the run's judge.")
]
ApiBaseOpt = Annotated[str | None, typer.Option("--api-base", help="API base URL of --judge (OpenAI-compatible).")]
ApiKeyEnvOpt = Annotated[
    str | None, typer.Option("--api-key-env", help="NAME of the environment variable holding --judge's API key.")
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read the response cache.")]


def _consoles() -> tuple[Any, Any]:
    from rich.console import Console

    return Console(highlight=False), Console(stderr=True, highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    from benchrun.judge_trust import sanitize

    sys.stdout.write(json.dumps(sanitize(data), indent=2, default=str) + "\n")


def _ledger(url: str | None) -> Any:
    from benchrun.ledger import Ledger

    return Ledger(url)


def _warn(lines: list[str]) -> None:
    _, err = _consoles()
    for w in lines:
        err.print(f"warning: {w}", markup=False)


def _iv(iv: dict[str, Any] | None, pct: bool = False) -> str:
    if not iv or iv.get("estimate") is None:
        return "n/a"
    f = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:.2f}")
    return f"{f(iv['estimate'])} (95% CI {f(iv['low'])} to {f(iv['high'])})"


def _num(x: Any, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


# ----------------------------------------------------------------------------- labels


def labels_export(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    sample: Annotated[int, typer.Option("--sample", "-n", help="How many results to label.")] = 100,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV template to write.")] = Path("labels.csv"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stratified sample.")] = 0,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a blind CSV template of a stratified sample of a run's judged results (by model, category,
    severity and judge verdict) for people to label."""
    from benchrun import judge_trust as jt

    led = _ledger(ledger)
    info = jt.export_labels(jt.open_run(led, run_id), sample, out, seed)
    if json_out:
        _print_json(info)
        return
    o, _ = _consoles()
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

    led = _ledger(ledger)
    info = jt.import_labels(led, jt.open_run(led, run), file)
    if json_out:
        _print_json(info)
        return
    o, _ = _consoles()
    o.print(f"{file}: valid; {info['summary']}; {info['items_with_judge_verdict']} item(s) have a judge verdict; "
            f"stored as report {info['report_id']}", markup=False)
    if info["skipped_blank"]:
        o.print(f"{info['skipped_blank']} blank row(s) skipped", markup=False)


_HUMAN = ("human_score", "human_pass", "failure_mode", "annotator", "note")


def _save_rows(path: Path, comments: list[str], header: list[str], rows: list[dict[str, str]]) -> None:
    import csv

    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        for c in comments:
            fh.write(f"# {c}\n")
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow([r.get(h, "") for h in header])
    os.replace(tmp, path)


def labels_annotate(
    file: Annotated[Path, typer.Argument(help="Template written by `labels export` (labels are written into it).")],
    run: Annotated[str, typer.Option("--run", help="The run the template was exported from (for the rubric).")],
    annotator: Annotated[str, typer.Option("--annotator", "-a", help="Your name or initials.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write labels here instead of into FILE.")] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Label items one at a time in the terminal: shows the rubric, the request, the reference and the
    response; asks for score, pass and failure mode. Progress is saved after every item; enter q to stop."""
    from benchrun import judge_trust as jt
    from benchrun.errors import BadInput
    from benchrun.io import load_csv
    from benchrun.labels import TEMPLATE_COLUMNS

    annotator = annotator.strip()
    if not annotator:
        raise BadInput(None, "--annotator", "give a non-empty name")
    led = _ledger(ledger)
    ctx = jt.open_run(led, run)
    rubric = ctx.rubric
    header, csv_rows, comments = load_csv(file)
    for col in ("item_id", "response"):
        if col not in header:
            raise BadInput(file, len(comments) + 1, f"CSV header has no '{col}' column; use a `labels export` template")
    header = list(header) + [c for c in TEMPLATE_COLUMNS if c not in header]
    rows = [dict(r) for _, r in csv_rows]
    known = ctx.answered()
    items: dict[str, dict[str, str]] = {}
    done: set[str] = set()
    for line, r in csv_rows:
        iid = r.get("item_id", "").strip()
        if iid not in known:
            raise BadInput(file, f"line {line} item {iid}", "unknown item id: it matches no result of this run")
        items.setdefault(iid, r)
        if r.get("annotator", "").strip() == annotator and r.get("human_score", "").strip():
            done.add(iid)
    todo = [i for i in items if i not in done]
    target = out or file
    o, _ = _consoles()
    o.print(f"Rubric {rubric.name} v{rubric.version}. Criteria:", markup=False)
    for c in rubric.criteria:
        o.print(f"  - {c.name}: {c.description}", markup=False)
    o.print("Scale: " + "; ".join(f"{k} = {v}" for k, v in sorted(rubric.scale.items())), markup=False)
    o.print(f"{len(done)} of {len(items)} item(s) already labelled by {annotator}; {len(todo)} to go. "
            "Enter q to stop (progress is saved).", markup=False)

    def ask(prompt: str) -> str | None:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        line = sys.stdin.readline()
        if line == "":
            return None  # end of input
        value = line.strip()
        return None if value.lower() == "q" else value

    modes = list(rubric.failure_modes)
    labelled = 0
    for n, iid in enumerate(todo, start=1):
        src = items[iid]
        o.rule(f"item {n}/{len(todo)}  case {src.get('case_id', '')}")
        for title, key in (("REQUEST", "input"), ("REFERENCE", "ideal"), ("RESPONSE", "response")):
            if src.get(key, "").strip():
                o.print(f"{title}:\n{src[key]}\n", markup=False)
        score: int | None = None
        while score is None:
            v = ask("score 1-5: ")
            if v is None:
                break
            if v in {"1", "2", "3", "4", "5"}:
                score = int(v)
            else:
                o.print("  enter a whole number from 1 to 5", markup=False)
        if score is None:
            break
        passed: str | None = None
        while passed is None:
            v = ask("pass? y/n: ")
            if v is None:
                break
            if v.lower() in ("y", "yes", "n", "no"):
                passed = "yes" if v.lower().startswith("y") else "no"
            else:
                o.print("  enter y or n", markup=False)
        if passed is None:
            break
        mode: str | None = None
        menu = ", ".join(f"{i}={m}" for i, m in enumerate(modes, start=1))
        while mode is None:
            v = ask(f"failure mode ({menu}; Enter = none): ")
            if v is None:
                break
            if v == "":
                mode = "none"
            elif v.isdigit() and 1 <= int(v) <= len(modes):
                mode = modes[int(v) - 1]
            elif v in modes:
                mode = v
            else:
                o.print(f"  enter a number 1-{len(modes)} or one of: {', '.join(modes)}", markup=False)
        if mode is None:
            break
        note = ask("note (optional): ")
        values = {"human_score": str(score), "human_pass": passed, "failure_mode": mode, "annotator": annotator,
                  "note": note or ""}
        blank = next((r for r in rows if r.get("item_id", "").strip() == iid
                      and all(not r.get(k, "").strip() for k in _HUMAN)), None)
        if blank is not None:
            blank.update(values)
        else:
            rows.append({**{k: src.get(k, "") for k in ("item_id", "case_id", "input", "ideal", "response")},
                         **values})
        _save_rows(target, comments, header, rows)
        labelled += 1
        if note is None:
            break
    o.print(f"labelled {labelled} item(s) this session; {len(done) + labelled} of {len(items)} done by {annotator}; "
            f"saved to {target}", markup=False)


# ----------------------------------------------------------------------------- calibrate


def _render_calibration(info: dict[str, Any]) -> None:
    from rich.table import Table

    o, _ = _consoles()
    rep = info["report"]
    style = "bold green" if info["trusted"] else "bold red"
    o.print(f"[{style}]judge {info['judge_model']}: {info['verdict'].upper()}[/{style}]")
    o.print(f"{info['verdict_reason']}", markup=False)
    k = rep["kappa"]
    o.print(f"items {rep['n']} (labels {info['labels']} by {len(info['annotators'])} annotator(s), "
            f"hash {info['labels_hash'][:12]}; judge verdicts: {info['judge_source']})", markup=False)
    t = Table(show_header=True, header_style="bold")
    t.add_column("measure")
    t.add_column("value")
    t.add_row("percent agreement (pass/fail)", _iv(rep["percent_agreement"], pct=True))
    t.add_row("Cohen's kappa (pass/fail)", _iv(k["interval"]) if k["interval"] else (k["note"] or "n/a"))
    t.add_row("quadratic-weighted kappa (1-5)", _num(rep["weighted_kappa"]) + (
        f"  ({rep['weighted_kappa_note']})" if rep.get("weighted_kappa_note") else ""))
    sp = rep["spearman"]
    t.add_row("Spearman rho (scores)", _num(sp["value"]) + (
        f"  p={sp['p_value']:.3g}" if sp.get("p_value") is not None else "") + (
        f"  ({sp['note']})" if sp.get("note") else ""))
    t.add_row("leniency (judge - human score)", _iv(rep["leniency"]))
    t.add_row("judge / human pass rate", f"{rep['judge_pass_rate']:.0%} / {rep['human_pass_rate']:.0%}")
    pc = rep["pass_confusion"]
    t.add_row("confusion (rows human, cols judge)",
              f"fail: {pc[0][0]} / {pc[0][1]}   pass: {pc[1][0]} / {pc[1][1]}   "
              f"false pass {rep['false_pass']}, false fail {rep['false_fail']}")
    ha = rep.get("human_agreement")
    if ha:
        t.add_row("human-human agreement (ceiling)",
                  f"alpha scores {_num(ha['alpha_score_ordinal'])}, alpha pass {_num(ha['alpha_pass_nominal'])}, "
                  f"Fleiss pass {_num(ha['fleiss_pass'])} over {ha['n_items']} item(s)")
    o.print(t)
    if rep["failure_modes"]:
        ft = Table("failure mode", "human", "judge", "both", "precision", "recall", header_style="bold")
        for f in rep["failure_modes"]:
            ft.add_row(f["mode"], str(f["human_count"]), str(f["judge_count"]), str(f["both"]),
                       _num(f["precision"]), _num(f["recall"]))
        o.print(ft)
    if info["items_without_verdict"]:
        o.print(f"{len(info['items_without_verdict'])} labelled item(s) have no judge verdict and were left out",
                markup=False)
    o.print(f"stored as report {info['report_id']}", markup=False)


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
    from benchrun import judge_trust as jt

    led = _ledger(ledger)
    info = jt.calibrate_run(led, jt.open_run(led, run), labels, threshold=threshold, judge=judge, api_base=api_base,
                            api_key_env=api_key_env, use_cache=not no_cache)
    _warn(info["self_preference"])
    if json_out:
        _print_json(info)
        return
    _warn(info["report"]["warnings"])
    _render_calibration(info)


# ----------------------------------------------------------------------------- bias


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

    led = _ledger(ledger)
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
    o, _ = _consoles()
    rep = info["report"]
    o.print(f"position bias of judge {info.get('judge_model') or '(unnamed)'}: {info['summary']}", markup=False)
    o.print(f"consistency {_iv(rep['consistency'], pct=True)}; first position won both orders in "
            f"{rep['biased_first']:.0%} of pairs, second in {rep['biased_second']:.0%}", markup=False)
    o.print(f"first-position win rate {_iv(rep['first_position_win_rate'], pct=True)} over "
            f"{rep['decisive_verdicts']} decisive verdict(s) (0.5 = no preference)", markup=False)
    if rep["labelled"]:
        o.print(f"accuracy vs {rep['labelled']} label(s): first order {_iv(rep['accuracy_first_order'], pct=True)}, "
                f"both-orders rule {_iv(rep['accuracy_both_orders'], pct=True)}", markup=False)
    if info.get("wins_both_orders"):
        o.print(f"wins (both-orders rule): {info['wins_both_orders']}; A-first only: {info['wins_first_order_only']}",
                markup=False)
    if info.get("errors"):
        o.print(f"{len(info['errors'])} pair(s) could not be judged and were left out", markup=False)
    o.print(f"stored as report {info['report_id']}", markup=False)


def bias_verbosity(
    run: Annotated[str, typer.Option("--run", help="Run whose answers are padded and re-judged.")],
    sample: Annotated[int, typer.Option("--sample", "-n", help="How many answers to pad.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stratified sample.")] = 0,
    labels: Annotated[Path | None, typer.Option("--labels", help="Human labels: sample from them and report the "
                                                "length-score partial correlation.")] = None,
    judge: JudgeOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    no_cache: NoCacheOpt = False,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Verbosity bias: pad answers with no new information (restated question, repeated list, filler),
    re-judge them with the run's rubric, report how often padding raised the score (flagged above 10%)."""
    from benchrun import judge_trust as jt

    led = _ledger(ledger)
    info = jt.verbosity_from_run(led, jt.open_run(led, run), sample=sample, seed=seed, labels_path=labels,
                                 judge=judge, api_base=api_base, api_key_env=api_key_env, use_cache=not no_cache)
    _warn(info["self_preference"])
    if json_out:
        _print_json(info)
        return
    o, _ = _consoles()
    rep = info["report"]
    style = "bold red" if info["flagged"] else "bold green"
    o.print(f"[{style}]verbosity bias of judge {info['judge_model']}: "
            f"{'FLAGGED' if info['flagged'] else 'not flagged'}[/{style}]")
    o.print(f"padded variant scored higher for {_iv(rep['failure_rate'], pct=True)} of {rep['n']} item(s) "
            f"(flagged above {rep['flag_above']:.0%})", markup=False)
    for v, iv in rep["per_variant"].items():
        o.print(f"  {v}: {_iv(iv, pct=True)}", markup=False)
    o.print(f"mean score inflation {_iv(rep['inflation'])}", markup=False)
    lp = rep.get("length_partial")
    if lp:
        val = lp["value"]
        o.print(f"length vs judge score, controlling for the human score: r = {_num(val)} over {lp['n']} item(s)"
                + (f" ({lp['note']})" if lp.get("note") else ""), markup=False)
    for note in rep.get("notes") or []:
        o.print(note, markup=False)
    o.print(f"stored as report {info['report_id']}", markup=False)


# ----------------------------------------------------------------------------- mounting


def register(app: typer.Typer) -> None:
    """Add ``labels``, ``calibrate`` and ``bias`` to the main app (idempotent)."""
    if any(getattr(c, "name", None) == "calibrate" for c in app.registered_commands):
        return
    labels_app = typer.Typer(help="Human labels for checking the judge: export, annotate, import.",
                             no_args_is_help=True)
    labels_app.command("export")(labels_export)
    labels_app.command("import")(labels_import)
    labels_app.command("annotate")(labels_annotate)
    bias_app = typer.Typer(help="Probe the judge for position and verbosity bias.", no_args_is_help=True)
    bias_app.command("position")(bias_position)
    bias_app.command("verbosity")(bias_verbosity)
    app.add_typer(labels_app, name="labels")
    app.add_typer(bias_app, name="bias")
    app.command("calibrate")(calibrate_cmd)
