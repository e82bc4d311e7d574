"""`benchrun labels annotate`: label a `labels export` template item by item in the terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from benchrun.cli import common
from benchrun.cli.common import LedgerOpt, open_ledger

_HUMAN = ("human_score", "human_pass", "failure_mode", "annotator", "note")


def _save_rows(path: Path, comments: list[str], header: list[str], rows: list[dict[str, str]]) -> None:
    from benchrun.io import csv_cell_out, csv_writer

    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        for c in comments:
            fh.write(f"# {c}\n")
        w = csv_writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([csv_cell_out(r.get(h, "")) for h in header])
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
    from benchrun.report.escape import escape, strip_controls

    annotator = annotator.strip()
    if not annotator:
        raise BadInput(None, "--annotator", "give a non-empty name")
    led = open_ledger(ledger)
    ctx = jt.open_run(led, run)
    rubric = ctx.rubric
    header, csv_rows, comments = load_csv(file, restore_formulas=True)
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
    o = common.out()
    o.print(f"Rubric {rubric.name} v{rubric.version}. Criteria:", markup=False)
    for c in rubric.criteria:
        o.print(f"  - {c.name}: {c.description}", markup=False)
    o.print("Scale: " + "; ".join(f"{k} = {v}" for k, v in sorted(rubric.scale.items())), markup=False)
    o.print(f"{len(done)} of {len(items)} item(s) already labelled by {annotator}; {len(todo)} to go. "
            "Enter q to stop (progress is saved).", markup=False)

    def ask(prompt: str) -> str | None:
        sys.stdout.write(strip_controls(prompt, newlines=False))
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
        o.rule(f"item {n}/{len(todo)}  case {escape(src.get('case_id', ''))}")
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
