"""Terminal rendering with rich. Only presentation: takes plain dicts, prints."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from benchrun.report.escape import escape as e
from benchrun.report.plain import money as _money


def _pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.1%}"


def _cost(known: float, unpriced: int) -> str:
    """A cost with its unpriced calls: "unknown" when nothing was priced, "$0.0004 +2 unpriced" when part was."""
    if not unpriced:
        return _money(known)
    return "unknown" if known == 0 else f"{_money(known)} +{unpriced} unpriced"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f} ms"


def _shards_line(sh: dict[str, Any]) -> str:
    """"3 of 4 shards done", then each unfinished shard: its status, cells recorded, heartbeat while it runs."""
    rest = []
    for x in sh["shards"]:
        if x["status"] == "done":
            continue
        beat = f", heartbeat {x['heartbeat_age_s']:.0f}s ago" if x.get("heartbeat_age_s") is not None else ""
        where = f" on {e(x['host'])}" if x.get("host") else ""
        rest.append(f"shard {x['shard']}: {e(x['status'])}{where} ({x['recorded']} of {x['cells']} cells{beat})")
    return f"[bold]{sh['line']}[/bold]" + (f" — {'; '.join(rest)}" if rest else "")


def _batches_line(b: dict[str, Any]) -> str:
    """"provider batches: 3 (20 lines, 4 redone synchronously), batch-priced cost $0.0012"."""
    parts = [f"{b['lines']} lines", f"{b['fallback_sync']} redone synchronously"]
    if b.get("pending"):
        parts.append(f"{b['pending']} pending")
    unrecorded = b.get("cost_unrecorded") or 0  # batches collected before their cost was kept
    if unrecorded and not (b["cost_usd"] or b["unpriced"]):
        cost = "not recorded"
    else:
        cost = _cost(b["cost_usd"], b["unpriced"]) + (f" (+{unrecorded} batch(es) not recorded)" if unrecorded else "")
    return f"provider batches: {b['batches']} ({', '.join(parts)}), batch-priced cost {cost}"


def render_summary(console: Console, s: dict[str, Any], show_message: bool = True) -> None:
    """The run summary; ``show_message=False`` when the caller prints why the run stopped itself."""
    c = s["conditions"]
    note = (f"  ({e(c['message'])})" if show_message else "  (why: see the error below)") if c.get("message") else ""
    console.print(f"[bold]Run {e(c['run_id'])}[/bold]  {e(c['name'])}  status: [bold]{e(c['status'])}[/bold]" + note)
    ds, rb, j = c["dataset"], c["rubric"], c["judge"]
    scored = (f"rubric {e(rb['name'])} v{e(rb['version'])} ({e(rb['hash'][:12])})  judge {e(j['model'])} "
              f"(prompt {e(j['prompt_hash'][:12])})" if j is not None else "no judge")
    console.print(
        f"dataset {e(ds['name'])} v{e(ds['version'])} ({e(ds['hash'][:12])})  {scored}  samples/case {c['samples_per_case']}"
    )
    sw = c.get("sweep")
    if sw:
        setup = " ".join(f"{k}={v}" for k, v in (sw.get("setup") or {}).items())
        console.print(f"sweep {e(str(sw.get('id')))}  setup {e(setup)}  (`benchrun sweep --show {e(str(sw.get('id')))}`)")
    cal = s.get("judge_calibration")
    no_judge = j is None
    pw = s.get("pairwise")
    if pw is not None:
        jd = pw.get("judged") or {}
        cal_txt = (f"pairwise judge ({e(str(pw.get('pairs') or 'all_pairs'))}): {jd.get('pairs', 0)} pair(s) judged in "
                   f"both orders now, {jd.get('calls', 0)} call(s) ({jd.get('cached', 0)} cached), cost "
                   f"{_money(jd.get('cost_usd'))}, {jd.get('errors', 0)} failed; rate them: {e(pw['rate_with'])}")
    elif no_judge:
        cal_txt = "scored by rules only (no judge: every case passes when all its rules pass)"
    elif cal:
        verdict = "trusted" if cal.get("trusted") else "[bold yellow]NOT trusted[/bold yellow] (judge scores are unverified)"
        cal_txt = f"judge calibration: {verdict} — {e(cal.get('summary') or '')}"
    else:
        cal_txt = "judge calibration: [yellow]uncalibrated[/yellow] (judge scores are unverified; see `benchrun calibrate`)"
    console.print(cal_txt)
    health = s.get("judge_health") or {}
    if health.get("degenerate"):
        console.print(f"[bold red]DEGENERATE JUDGE[/bold red] — {e(health['message'])}")
    cov = s.get("coverage")
    if cov:
        console.print(f"coverage: JSD {cov['jsd']:.3f} ({cov['band']}) on production sample {e(str(cov['production']))}")
    else:
        console.print("coverage: no coverage report for this dataset version (see `benchrun coverage`)")
    sh = s.get("shards")
    if sh:
        console.print(_shards_line(sh))
    bt = s.get("batches")
    if bt:
        console.print(_batches_line(bt))
    if s["recorded_results"] < s["expected_results"]:
        how = (f"the unfinished shards finish it (`benchrun run SPEC --shard I/{sh['count']} --run-id {e(c['run_id'])}`)"
               if sh else f"finish with `benchrun run --resume {e(c['run_id'])}`")
        console.print(f"[yellow]{s['recorded_results']} of {s['expected_results']} results recorded; {how}[/yellow]")

    from benchrun.report.summary import judge_marker

    marker = judge_marker(s)
    from benchrun.report.fit import Col, fit_table, hidden_note

    cols = [Col("model", 0, "left", text=True, min_width=12, middle=True), Col("pass rate (95% CI)", short="pass rate"),
            Col("passed", 4, short="pass"), Col("failed", 4, short="fail"), Col("errors", short="err"),
            Col("mean judge", 1, short="judge"), Col("candidate cost", 1, short="cand. $"),
            Col("cand./case", 5, short="$/case"), Col("judge cost", 2, short="judge $"), Col("p50", 6),
            Col("p95", 3)]
    if no_judge:
        del cols[8], cols[5]
    mc = bool(s.get("choice_cases"))
    if mc:  # multiple choice: unparsed answers, apart (they are also in "failed")
        cols.insert(4, Col("unparsed", 3, short="unp."))
    rows = []
    for m in s["models"]:
        pr = m["pass_rate"]
        ci = f"{_pct(pr['estimate'])} [{_pct(pr['low'])}, {_pct(pr['high'])}]"
        if m["passed"] + m["failed"] == 0:  # nothing scored: an interval of [0%, 100%] would only look like a result
            ci = f"[red]no answers: {m['errors']} errors[/red]" if m["errors"] else (
                "compared in pairs" if pw is not None else "no results")
        judge = "n/a" if m["mean_judge_score"] is None else f"{m['mean_judge_score']:.2f}"
        if marker and m["mean_judge_score"] is not None:
            judge += f" [bold yellow]({marker})[/bold yellow]"
        cost = _cost(m["candidate_cost_usd"], m["candidate_cost_unknown_calls"])
        jcost = _cost(m["judge_cost_usd"], m["judge_cost_unknown_calls"])
        cells = [e(m["model_key"]), ci, str(m["passed"]), str(m["failed"]),
                 f"[red]{m['errors']}[/red]" if m["errors"] else "0", judge, cost,
                 _money(m["candidate_cost_per_case"]), jcost, _ms(m["latency_p50_ms"]), _ms(m["latency_p95_ms"])]
        if no_judge:
            del cells[8], cells[5]
        if mc:
            cells.insert(4, f"[yellow]{m['unparsed']}[/yellow]" if m["unparsed"] else "0")
        rows.append(cells)
    t, hidden = fit_table(cols, rows, console.width, title="Per model", title_justify="left")
    console.print(t)
    if hidden:
        console.print(f"[dim]{e(hidden_note(hidden, console.width) or '')}[/dim]")
    if mc:
        console.print(f"[dim]{s['choice_cases']} multiple-choice case(s); unparsed = the answer named no choice or "
                      "several (counted in failed too; see `runs show RUN --case ID`)[/dim]")
    methods = sorted({m["pass_rate"].get("method") for m in s["models"] if m["pass_rate"].get("method")})
    if methods:
        console.print("[dim]pass-rate interval: " + e("; ".join(methods)) + "[/dim]")
    console.print("[dim]candidate cost: the model's own calls; judge cost: evaluation overhead (the judge's calls)[/dim]")
    _render_pass_at_k(console, s.get("pass_at_k"))
    _render_circular(console, s.get("circular"))
    _render_tools(console, s.get("tools"))
    render_holistic(console, s.get("holistic"))

    for b in s["breakdown"]:
        hs = b["high_severity_failures"]
        head = f"[bold]{e(b['model_key'])}[/bold]"
        n_all = sum(v["n"] for v in b["by_severity"].values())
        n_err = sum(v["errors"] for v in b["by_severity"].values())
        if n_all and n_err == n_all:
            head += f"  [bold red]no answers: {n_err} errors[/bold red] (nothing was scored; fix the errors and run again)"
        elif hs:
            head += f"  [bold red]DO NOT SHIP: {len(hs)} high-severity case(s) not passed: {e(', '.join(hs[:8]))}"
            head += (" …" if len(hs) > 8 else "") + "[/bold red]"
        else:
            head += "  no high-severity failures"
        console.print(head)
        bt = Table(show_header=True, box=None, pad_edge=False)
        bt.add_column("severity")
        bt.add_column("failed/errors of n", justify="right")
        for sev in ("high", "medium", "low"):
            cnt = b["by_severity"].get(sev)
            if cnt and cnt["n"]:
                bt.add_row(e(sev), f"{cnt['failed']}/{cnt['errors']} of {cnt['n']}")
        console.print(bt)
        cats = (s.get("categories") or {}).get(b["model_key"])
        if cats and cats["n_categories"] > 1:
            mi, ma = cats["micro"], cats["macro"]
            console.print(f"  over {cats['n_categories']} categories: micro {_pct(mi['estimate'])} [{_pct(mi['low'])}, "
                          f"{_pct(mi['high'])}] (every result counts once), macro {_pct(ma['estimate'])} "
                          f"[{_pct(ma['low'])}, {_pct(ma['high'])}] (every category counts once)")
        bad = [(k, v) for k, v in b["by_category"].items() if v["failed"] + v["errors"]]
        worst = bad[:6]
        if worst:
            more = f" … and {len(bad) - len(worst)} more (--json lists all)" if len(bad) > len(worst) else ""
            console.print("  categories: " + e(", ".join(f"{k} {v['failed'] + v['errors']}/{v['n']}" for k, v in worst))
                          + more)
        if b["failure_modes"]:
            console.print("  failure modes: " + e(", ".join(f"{k} {v}" for k, v in b["failure_modes"].items())))
        inj = b.get("injection_suspected") or []
        if inj:
            console.print(f"  [yellow]injection suspected[/yellow] (the answer quotes a verdict or a prompt marker; "
                          f"check the judge was not steered): {len(inj)} case(s): "
                          + e(", ".join(inj[:8]) + (" …" if len(inj) > 8 else "")))


def render_case(console: Console, d: dict[str, Any]) -> None:
    """One case of a run: each model's answer, how it was scored, every rule (extracted answer, why it failed)."""
    console.print(f"[bold]Case {e(d['case_id'])}[/bold]  run {e(d['run_id'])}  {e(d['category'])}  {e(d['severity'])}")
    console.print("input: " + d["input"], markup=False, highlight=False)
    if d["ideal"]:
        console.print("ideal: " + d["ideal"], markup=False, highlight=False)
    for r in d["results"]:
        console.print(f"[bold]{e(r['model_key'])}[/bold] sample {r['sample_index']}: {r['status']}"
                      + (f" (scored by {e(r['scored_by'])})" if r["scored_by"] else ""))
        if r["error"]:
            console.print("  error: " + r["error"], markup=False, highlight=False)
        console.print("  answer: " + (r["answer"] if r["answer"] is not None else "(no answer)"), markup=False,
                      highlight=False)
        for o in r["rules"]:
            line = f"  {'ok  ' if o['passed'] else 'FAIL'} {o['rule']}"
            if o.get("extracted") is not None:
                line += f" — extracted {o['extracted']!r} ({o.get('extracted_by')})"
            if o.get("detail") and not o["passed"]:
                line += f" — {o['detail']}"
            console.print(line, markup=False, highlight=False)
        _render_trajectory(console, r.get("trajectory"))
        j = r["judge"]
        if j is not None:
            txt = (f"score {j['score']}, {'pass' if j['pass'] else 'fail'}, mode {j['failure_mode']} — {j['reason']}"
                   if j["score"] is not None else f"error: {j['error']}")
            console.print("  judge: " + txt, markup=False, highlight=False)


def render_runs(console: Console, runs: list[dict[str, Any]]) -> None:
    from benchrun.report.fit import Col, fit_table, hidden_note

    cols = [Col("id", 0, "left"), Col("name", 2, "left", text=True, min_width=8), Col("status", 0, "left"),
            Col("created", 3, "left"), Col("dataset", 4, "left", text=True, min_width=10),
            Col("models", 1, "left", text=True, min_width=10), Col("results", 5, short="n"),
            Col("cost (all calls)", 2, short="cost")]
    rows = [[e(r["id"]), e(r["name"]), e(r["status"]) + (" (repro)" if r.get("reproduction_of") else ""),
             r["created_at"][:16].replace("T", " "),
             e(f"{r['dataset']} v{r['dataset_version']}"), e(", ".join(r["models"])),
             str(r["totals"].get("results", "")), _money(r["totals"].get("cost_usd"))] for r in runs]
    t, hidden = fit_table(cols, rows, console.width, title="Runs")
    console.print(t)
    if hidden:
        console.print(f"[dim]{e(hidden_note(hidden, console.width) or '')}[/dim]")
    repros = [r for r in runs if r.get("reproduction_of")]
    if repros:
        console.print("[dim](repro) = a reproduction: " + e(", ".join(f"{r['id']} of {r['reproduction_of']}"
                                                               for r in repros[:5])) + (" …" if len(repros) > 5 else "")
                      + "[/dim]")


def render_dataset_info(console: Console, info: dict[str, Any]) -> None:
    console.print(f"[bold]{e(info['name'])}[/bold] v{e(info['version'])}  hash {info['hash']}")
    if info.get("description"):
        console.print(info["description"], markup=False)  # SafeConsole strips control sequences
    console.print(f"{info['cases']} cases")
    for dim in ("severity", "category", "provenance"):
        counts = info[f"by_{dim}"]
        console.print(f"  by {dim}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), markup=False)


def _render_circular(console: Console, circ: dict[str, Any] | None) -> None:
    """shuffle_choices: per model, accuracy under the dataset's choice order and under all K orders."""
    if not circ:
        return
    from benchrun.report.fit import Col, fit_table, hidden_note

    def iv(x: dict[str, Any] | None) -> str:
        return "n/a" if x is None else f"{_pct(x['estimate'])} [{_pct(x['low'])}, {_pct(x['high'])}]"

    k = circ["orders"]
    cols = [Col("model", 0, "left", text=True, min_width=12, middle=True),
            Col("original order (95% CI)", short="original"), Col(f"all {k} orders (circular)", short="circular"),
            Col("order-sensitive", 1, short="sensitive"), Col("cases", 2, short="n"), Col("errored", 3, short="err")]
    rows = [[e(key), iv(m["original"]), iv(m["circular"]), iv(m["order_sensitive"]), str(m["cases"]),
             str(m["errored_cases"])] for key, m in circ["models"].items()]
    t, hidden = fit_table(cols, rows, console.width, title=f"Choice order: each case asked under {k} orders",
                          title_justify="left")
    console.print(t)
    if hidden:
        console.print(f"[dim]{e(hidden_note(hidden, console.width) or '')}[/dim]")
    console.print(f"[dim]{e(circ['method'])}; order-sensitive = right in the dataset's order, wrong in another "
                  "(position bias of the candidate)[/dim]")


def _render_pass_at_k(console: Console, pk: dict[str, Any] | None) -> None:
    """pass@k per model for a few k (1, 5, 10 and the largest; --json has every k and every case)."""
    if not pk:
        return
    from rich.table import Table

    all_ks = sorted({int(k) for per in pk["models"].values() for k in per})
    if not all_ks:
        return
    ks = [k for k in all_ks if k in (1, 5, 10) or k == all_ks[-1]]
    t = Table(title="pass@k (several samples per case)", title_justify="left")
    t.add_column("model")
    for k in ks:
        t.add_column(f"pass@{k}", justify="right")
    for key, per in pk["models"].items():
        cells = []
        for k in ks:
            v = per.get(str(k))
            cells.append("n/a" if v is None else f"{_pct(v['estimate'])} [{_pct(v['low'])}, {_pct(v['high'])}]")
        t.add_row(e(key), *cells)
    console.print(t)
    console.print("[dim]pass@k: " + e(pk["method"]) + "[/dim]")


TOOL_COLUMNS = (("name_accuracy", "tool name acc."), ("argument_accuracy", "argument acc."),
                ("invalid_argument_rate", "invalid args"), ("forbidden_call_rate", "forbidden calls"),
                ("unnecessary_call_rate", "unnecessary calls"), ("f1", "tool-call F1"))


def _render_tools(console: Console, tools: dict[str, Any] | None) -> None:
    """Tool-use metrics per model, each with its 95% interval and n (--json has the counts)."""
    if not tools:
        return
    t = Table(title="Tool use (95% intervals)", title_justify="left")
    t.add_column("model")
    for _, label in TOOL_COLUMNS:
        t.add_column(label, justify="right")
    t.add_column("steps (mean/max)", justify="right")
    for key, m in tools["models"].items():
        cells = []
        for k, _ in TOOL_COLUMNS:
            v = m[k]
            n = v.get("n", v.get("cases"))
            cells.append("n/a" if v["estimate"] is None else
                         f"{_pct(v['estimate'])} [{_pct(v['low'])}, {_pct(v['high'])}] n={n}")
        steps = "n/a" if m["mean_steps"] is None else f"{m['mean_steps']:.1f}/{m['max_steps']}"
        t.add_row(e(key), *cells, steps)
    console.print(t)
    console.print("[dim]tool rates: " + e(tools["methods"]["rates"]) + "; F1 (micro over calls): "
                  + e(tools["methods"]["f1"]) + "[/dim]")


def _render_trajectory(console: Console, traj: dict[str, Any] | None) -> None:
    """A tool-using case's trajectory, step by step (model-written text printed literally, never as markup)."""
    if not traj:
        return
    console.print(f"  trajectory: {traj.get('n_steps')} step(s), ended {traj.get('end')}", markup=False,
                  highlight=False)
    for st in traj.get("steps", []):
        if st.get("role") == "assistant":
            if st.get("content"):
                console.print("    assistant: " + str(st["content"]), markup=False, highlight=False)
            for c in st.get("tool_calls", []):
                console.print(f"    call #{c.get('index')}: {c.get('name')}({c.get('arguments')})", markup=False,
                              highlight=False)
        else:
            console.print(f"    result #{st.get('call_index')} ({st.get('name')}): {st.get('content')}", markup=False,
                          highlight=False)
    score = traj.get("score") or {}
    for c in score.get("calls", []):
        if c.get("invalid_reason"):
            console.print(f"    call #{c['index']} invalid: {c['invalid_reason']}", markup=False, highlight=False)


def render_holistic(console: Console, h: dict[str, Any] | None, title: str = "Holistic row (95% intervals)") -> None:
    """The holistic table (`report/holistic.py`): measures as rows, models as columns, methods below."""
    if not h or not h.get("models"):
        return
    from benchrun.report.holistic import holistic_rows, method_notes

    keys, rows = holistic_rows(h)
    t = Table(title=title, title_justify="left")
    t.add_column("measure")
    for k in keys:
        t.add_column(e(k), justify="right")
    for row in rows:
        t.add_row(*(e(c) for c in row))
    console.print(t)
    for note in method_notes(h):
        console.print("[dim]" + e(note) + "[/dim]")


def render_batches(console: Console, run_id: str, jobs: list[dict[str, Any]]) -> None:
    """`benchrun batch status`: one line per provider batch of a run."""
    if not jobs:
        console.print(f"run {run_id} has no provider batches", markup=False)
        return
    t = Table(title=f"Batches of run {e(run_id)}", title_justify="left")
    for c in ("batch", "role", "model", "state", "lines", "answered", "sync fallback", "updated"):
        t.add_column(c)
    for j in jobs:
        lines = j["lines"]
        t.add_row(e(j["batch_id"] or "(not created)"), e(j["role"]), e(j["model_key"]), e(j["state"]),
                  str(j["n_lines"]), str(lines.get("ok", 0)),
                  str(sum(v for k, v in lines.items() if k in ("failed", "expired", "cancelled"))),
                  e(str(j["updated_at"])[:19].replace("T", " ")))
    console.print(t)
    pending = [j for j in jobs if j["state"] not in ("collected", "abandoned")]
    if pending:
        console.print(f"{len(pending)} batch(es) not yet collected: benchrun run --resume {run_id} waits for them "
                      "and finishes the run (nothing is submitted twice)", markup=False)
