"""Terminal rendering of comparisons, condition diffs, reproductions and the shortlist (rich).

Only presentation: each function takes the plain dict its builder returns
(`benchrun.report.comparison`, `benchrun.report.shortlist`, `benchrun.reproduce`) and prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"


def _iv_pts(iv: Mapping[str, Any] | None) -> str:
    return "n/a" if not iv else f"[{100 * iv['low']:+.1f}, {100 * iv['high']:+.1f}]"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _p(p: float | None) -> str:
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _signed_money(d: float | None) -> str:
    """"+$0.000120", "-$0.000120", or "$0.000000" for a difference that rounds to nothing (never "$-0.000000")."""
    if d is None:
        return "n/a"
    if abs(d) < 5e-7:
        return "$0.000000"
    return f"{'+' if d > 0 else '-'}${abs(d):.6f}"


def _p_is(p: float | None) -> str:
    """"p = 0.031" or "p < 0.001" (never "p = <0.001")."""
    return "p n/a" if p is None else ("p < 0.001" if p < 0.001 else f"p = {p:.3f}")


def _print_fitted(console: Console, cols: list[Any], rows: list[list[Any]], **table_kw: Any) -> None:
    """A table fitted to the console's width (`benchrun.report.fit`), then the line naming what it hid."""
    from benchrun.report.escape import escape
    from benchrun.report.fit import fit_table, hidden_note

    t, hidden = fit_table(cols, rows, console.width, title_justify="left", **table_kw)
    console.print(t)
    if hidden:
        console.print(f"[dim]{escape(hidden_note(hidden, console.width) or '')}[/dim]")


def render_compare(console: Console, d: dict[str, Any], *, warnings: bool = True) -> None:
    """The comparison; ``warnings=False`` when the caller has already printed ``d["warnings"]`` (to stderr)."""
    from benchrun.report.escape import escape
    from benchrun.report.fit import Col

    a, b, c = d["a"], d["b"], d["comparison"]
    console.print(f"[bold]Compare[/bold] A = {escape(a['name'])} (run {a['run_id']})  vs  "
                  f"B = {escape(b['name'])} (run {b['run_id']})")
    for w in d["warnings"] if warnings else []:
        console.print(f"[bold red]WARNING: {escape(w)}[/bold red]")
    console.print(f"[bold]{escape(d['verdict'])}[/bold]")
    cols = [Col("measure", 0, "left", text=True, min_width=22), Col("A"), Col("B"), Col("A − B"),
            Col("95% interval")]  # the interval's numbers are never cut; its method is named below the table
    rows: list[list[Any]] = []
    boot, se_iv = c["bootstrap"], c["se_interval"]
    rows.append([f"pass rate ({c['n_pairs']} paired cases)", _pct(c["pass_rate_a"]), _pct(c["pass_rate_b"]),
                 _pts(c["difference"]) + " pts", _iv_pts(boot)])
    rows.append(["  standard-error interval", "", "", "", _iv_pts(se_iv)])
    test = c.get("test")
    if test:
        rows.append([escape(test["method"]) + " (decides the verdict)", f"{test['a_better']} better",
                     f"{test['b_better']} better", _p_is(test["p_value"]), ""])
    sc = c["score"]
    if sc:
        iv = sc["interval"]
        rows.append([f"mean judge score ({sc['n_pairs']} cases)", _num(sc["mean_a"]), _num(sc["mean_b"]),
                     _num(sc["difference"], "+.2f"), "n/a" if not iv else f"[{iv['low']:+.2f}, {iv['high']:+.2f}]"])
    _print_fitted(console, cols, rows, title="Paired comparison (A − B)")
    methods = [f"pass rate: {(boot or {}).get('method') or 'bootstrap'}",
               f"standard error: {(se_iv or {}).get('method') or c['se_method']}"]
    if sc and sc.get("interval"):
        methods.append(f"judge score: {sc['interval'].get('method') or 'paired t'}, {_p_is(sc['p_value'])}")
    console.print("[dim]intervals: " + escape("; ".join(methods)) + "[/dim]")
    pw = d["power"]
    if pw["sentence"]:
        console.print(escape(pw["sentence"]))
    elif pw["min_detectable_difference"] is not None:
        console.print(f"smallest gap these cases detect with 80% power: about "
                      f"{100 * pw['min_detectable_difference']:.0f} points ({escape(pw['basis'])})")
    for n in c["notes"]:
        console.print(f"[dim]note: {escape(n)}[/dim]")
    gcols = [Col("group", 0, "left", text=True, min_width=14), Col("pairs", 3), Col("A", 4), Col("B", 4),
             Col("A − B (pts)", short="A−B"), Col("bootstrap", 2, short="boot."), Col("p", 5), Col("p adj. (BH)", short="p adj."),
             Col("", 0, "left")]
    grows: list[list[Any]] = []
    for grp in d["by_group"]:
        gc = grp["comparison"]
        flag = "too few pairs" if grp["too_few_pairs"] else ("larger than noise" if grp.get("flagged") else "")
        grows.append([f"{grp['dimension']}: {escape(grp['group'])}", str(gc["n_pairs"]), _pct(gc["pass_rate_a"]),
                      _pct(gc["pass_rate_b"]), _pts(gc["difference"]), _iv_pts(gc["bootstrap"]),
                      _p(grp.get("p_value")), _p(grp.get("p_adjusted")), flag])
    _print_fitted(console, gcols, grows, title="Per category and severity")
    console.print("[dim]per-group flags: Benjamini-Hochberg adjusted over the groups with enough pairs[/dim]")
    if d["flips"]:
        fcols = [Col("severity", 0, "left"), Col("case", 0, "left", text=True, min_width=12, middle=True),
                 Col("category", 1, "left", text=True, min_width=10), Col("A", 0, "left"), Col("B", 0, "left")]
        frows = [[fl["severity"], escape(fl["case_id"]), escape(fl["category"]),
                  "pass" if fl["a_passed"] else "[red]fail[/red]", "pass" if fl["b_passed"] else "[red]fail[/red]"]
                 for fl in d["flips"]]
        _print_fitted(console, fcols, frows, title=f"Flips ({len(d['flips'])}): cases that pass for one model and "
                      "fail for the other, most severe first")
    else:
        console.print("no flips: the models pass and fail the same cases")
    if d["multi_sample"]:
        ks = sorted({int(k) for s in d["multi_sample"].values() for k in s["pass_at_k"]})
        mcols = [Col("model", 0, "left", text=True, min_width=12, middle=True),
                 *[Col(f"pass@{k}", 0 if k == 1 else 2) for k in ks], *[Col(f"pass^{k}", 3) for k in ks],
                 Col("consistency", 1, short="consist."), Col("inconsistent cases", 1, short="inconsistent")]
        mrows = [[escape(name), *[_pct(s["pass_at_k"].get(str(k))) for k in ks],
                  *[_pct(s["pass_hat_k"].get(str(k))) for k in ks], _pct(s["mean_consistency"]),
                  f"{s['inconsistent_cases']} of {s['n_cases']}"] for name, s in d["multi_sample"].items()]
        _print_fitted(console, mcols, mrows, title="Several samples per case")
    pk = d.get("pass_at_k")
    if pk and pk["differences"]:
        a, b = d["a"]["name"], d["b"]["name"]
        pcols = [Col("k"), Col(escape(a), 0, text=True, min_width=6, middle=True),
                 Col(escape(b), 0, text=True, min_width=6, middle=True), Col("difference", short="diff."),
                 Col("interval", 0, text=True, min_width=16), Col("p", 1), Col("problems", 2, short="n")]
        prows: list[list[Any]] = []
        for diff in pk["differences"]:
            k = str(diff["k"])
            ma, mb = pk["models"][a].get(k), pk["models"][b].get(k)
            lvl = f"{100 * diff['confidence']:.0f}%"
            prows.append([k, _pct(ma["estimate"]) if ma else "n/a", _pct(mb["estimate"]) if mb else "n/a",
                          _pts(diff["difference"]), f"{lvl} {_pts(diff['low'])} to {_pts(diff['high'])}",
                          _p(diff["p_value"]) + (" *" if diff["larger_than_noise"] else ""), str(diff["n_problems"])])
        _print_fitted(console, pcols, prows, title=f"pass@k, paired by problem ({escape(a)} − {escape(b)})")
        console.print(f"{pk['estimator']}; interval: paired percentile bootstrap over problems; p: exact paired "
                      "sign-flip test on per-problem pass@k (* = larger than noise at this level)", markup=False)


def _short(v: Any, n: int = 60) -> str:
    s = "—" if v is None else str(v)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def render_diff(console: Console, d: dict[str, Any]) -> None:
    from benchrun.report.escape import escape, strip_controls

    n = len(d["differences"])
    console.print(f"[bold]Conditions[/bold] A = run {d['run_a']}  vs  B = run {d['run_b']}: {n} difference(s), "
                  f"{d['score_relevant_differences']} of them can change scores")
    if n:
        from rich.text import Text

        from benchrun.report.fit import Col

        cols = [Col("section", 1, "left"), Col("field", 0, "left", text=True, min_width=12),
                Col("A", 0, "left", text=True, min_width=10), Col("B", 0, "left", text=True, min_width=10)]
        rows = [[Text(strip_controls(v), style="bold" if x["affects_scores"] else "dim")
                 for v in (x["section"], x["field"], _short(x["a"]), _short(x["b"]))] for x in d["differences"]]
        _print_fitted(console, cols, rows)
    if d["cases"]:
        cs = d["cases"]
        console.print(f"dataset cases: {len(cs['only_a'])} only in A, {len(cs['only_b'])} only in B, "
                      f"{len(cs['changed'])} changed" + (f" ({', '.join(cs['changed'][:10])})" if cs["changed"] else ""))
    console.print("same: " + (", ".join(d["same_sections"]) or "nothing"))
    sw = d.get("sweep")
    if sw:
        style = "bold red" if sw["other_differences"] else "bold"
        console.print(f"[{style}]{escape(sw['sentence'])}[/{style}]")


def render_reproduce(console: Console, d: dict[str, Any]) -> None:
    from benchrun.report.escape import escape
    from benchrun.report.fit import Col

    console.print(f"[bold]Reproduction[/bold] of run {d['original_run']} as run {d['reproduction_run']} "
                  f"({d['mode']})")
    for fc in d.get("file_checks", []):
        style = "" if fc["status"] == "same" else "bold yellow"
        console.print(escape(fc["message"]), style=style)
    cols = [Col("model", 0, "left", text=True, min_width=10, middle=True), Col("pass rate"),
            Col("Δ pts [95% CI]", 0, short="Δ pts"), Col("test p (Holm adj.)", 1, short="p (Holm)"), Col("flips"),
            Col("answers changed", 2, short="changed"), Col("Δ mean judge", 3, short="Δ judge"), Col("Δ cost", 4),
            Col("Δ p50", 6), Col("Δ p95", 5), Col("version", 1, short="ver.")]
    rows: list[list[Any]] = []
    for m in d["models"]:
        c = m["comparison"]
        sc = c["score"]
        ver = m["resolved_models"]
        rows.append([
            escape(m["model_key"]), f"{_pct(m['pass_rate_original'])} → {_pct(m['pass_rate_reproduction'])}",
            f"{_pts(c['difference'])} {_iv_pts(c['bootstrap'])}",
            ("n/a" if not c.get("test") else f"{_p(c['test']['p_value'])} ({_p((m.get('p_adjusted') or {}).get('pass_rate'))})"),
            str(len(m["flips"])),
            f"{m['answers_changed']}/{m['answers_compared']}",
            _num(sc["difference"], "+.2f") if sc else "n/a",
            _signed_money(m["cost_usd"]["delta"]),
            "n/a" if m["latency_p50_ms"]["delta"] is None else f"{m['latency_p50_ms']['delta']:+.0f} ms",
            "n/a" if m["latency_p95_ms"]["delta"] is None else f"{m['latency_p95_ms']['delta']:+.0f} ms",
            "[red]changed[/red]" if ver["changed"] else "same",
        ])
    _print_fitted(console, cols, rows, title="Reproduction − original")
    for m in d["models"]:
        if m["version_note"]:
            console.print(f"[yellow]{escape(m['model_key'])}: {escape(m['version_note'])}[/yellow]")
        if m["flips"]:
            console.print(f"[bold]{escape(m['model_key'])} flips[/bold] (most severe first): " + ", ".join(
                f"{escape(f['case_id'])} ({f['severity']}: {'pass→fail' if f['b_passed'] else 'fail→pass'})"
                for f in m["flips"][:20]) + (" …" if len(m["flips"]) > 20 else ""))
    cond = d["conditions"]
    if cond["differences"]:
        console.print("conditions that differ: " + ", ".join(
            f"{x['section']}.{escape(x['field'])}" for x in cond["differences"][:12]))
    for n in d["notes"]:
        console.print(f"[dim]note: {escape(n)}[/dim]")
    style = "bold green" if d["reproduced"] else "bold red"
    console.print(escape(d["verdict"]), style=style)


def render_shortlist(console: Console, d: dict[str, Any]) -> None:
    from rich.table import Table

    from benchrun.report.escape import escape

    for w in d["warnings"]:
        console.print(f"[bold red]WARNING: {escape(w)}[/bold red]")
    from benchrun.report.fit import Col, fit_table, hidden_note

    cols = [Col("rank"), Col("candidate", 0, "left", text=True, min_width=12, middle=True),
            Col("pass rate (95% CI)", short="pass rate"), Col("high sev", 1, short="hi sev"),
            Col("mean judge", 3, short="judge"),
            Col("candidate $/1k", 1, short="cand $/1k"), Col("judge $/1k", 4), Col("p50", 6), Col("p95", 2),
            Col("context", 7), Col("$/1M in/out", 7), Col("where", 5, "left"), Col("frontier", 2, short="front"),
            Col("tied with", 1, "left", text=True, min_width=8, short="tied")]
    rows = []
    for r in d["ranked"]:
        c = r["candidate"]
        pr = c["pass_rate"]
        judge = "n/a" if c["mean_judge_score"] is None else f"{c['mean_judge_score']:.2f} ({c['judge_calibration']})"
        price = ("n/a" if c["input_price_per_1m"] is None else
                 f"{c['input_price_per_1m']:g}/{_num(c['output_price_per_1m'], 'g')}")
        rows.append([str(r["rank"]) + (f" ({r['score']:.2f})" if r["score"] is not None else ""), escape(c["key"]),
                  f"{_pct(pr['estimate'])} [{_pct(pr['low'])}, {_pct(pr['high'])}]",
                  str(c["high_severity_failures"]), escape(judge),
                  "unknown" if c["cost_per_1k_cases"] is None else f"${c['cost_per_1k_cases']:.4f}",
                  "unknown" if c.get("judge_cost_per_1k_cases") is None else f"${c['judge_cost_per_1k_cases']:.4f}",
                  _num(c["latency_p50_ms"], ",.0f"), _num(c["latency_p95_ms"], ",.0f"),
                  _num(c["context_window"], ",d") if c["context_window"] else "n/a", price,
                  "local" if c["local"] else "hosted", "*" if r["pareto"] else "",
                  escape(", ".join(r["tied_with"]))])
    t, hidden = fit_table(cols, rows, console.width, title="Shortlist", title_justify="left",
                          caption=escape(d["method"]), caption_justify="left")
    console.print(t)
    if hidden:
        console.print(f"[dim]{escape(hidden_note(hidden, console.width) or '')}[/dim]")
    if d["ranked"]:
        console.print("coverage: " + escape(d["ranked"][0]["candidate"]["coverage_note"] or "n/a"))
    comps = d.get("comparisons") or []
    if comps:
        q = Table(title="Quality tests between candidates", title_justify="left",
                  caption=escape(d.get("tie_rule") or ""), caption_justify="left")
        for col in ("pair", "test", "p", "p adj. (Holm)", ""):
            q.add_column(col, justify="right" if col.startswith("p") and col != "pair" else "left")
        for x in comps:
            q.add_row(f"{escape(x['a'])} / {escape(x['b'])}", escape(x["method"]), _p(x["p_value"]),
                      _p(x["p_adjusted"]), "tied" if x["tied"] else "different")
        console.print(q)
    for e in d["excluded"]:
        console.print(f"[red]excluded[/red] {escape(e['candidate']['key'])}: {escape('; '.join(e['reasons']))}")
    for n in d["notes"]:
        console.print(f"[dim]note: {escape(n)}[/dim]")
    from benchrun.report.terminal import render_holistic

    render_holistic(console, d.get("holistic"), "Holistic row of the candidates (95% intervals)")


def render_sweep(console: Console, d: dict[str, Any]) -> None:
    """A sweep: each model's pass rate per setup, its spread across setups, and the setup-noise verdict."""
    from rich.table import Table

    from benchrun.report.escape import escape

    sens = d["sensitivity"]
    console.print(f"[bold]Sweep {escape(d['sweep_id'])}[/bold]  factors: {escape(', '.join(d['factors']))}  "
                  f"{len(d['setups'])} setup(s)")
    t = Table(title="Pass rate per setup (95% CI)", title_justify="left")
    t.add_column("setup")
    t.add_column("run")
    keys = [m["model_key"] for m in sens["models"]]
    for k in keys:
        t.add_column(escape(k), justify="right")
    for st in d["setups"]:
        cells = []
        for k in keys:
            m = st["models"].get(k)
            pr = m and m["pass_rate"]
            cells.append("n/a" if not pr else f"{pr['estimate']:.1%} [{pr['low']:.1%}, {pr['high']:.1%}]")
        t.add_row(escape(st["label"]), escape(st["run_id"] or "not run"), *cells)
    console.print(t)
    s = Table(title="Spread across setups", title_justify="left")
    for col in ("model", "mean", "range", "SD", "best setup", "worst setup"):
        s.add_column(col, justify="left" if col in ("model", "best setup", "worst setup") else "right")
    for m in sens["models"]:
        def pts(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.1f} pts"

        s.add_row(escape(m["model_key"]), "n/a" if m["mean"] is None else f"{m['mean']:.1%}", pts(m["range"]),
                  pts(m["sd"]), escape(m["best_setup"] or ""), escape(m["worst_setup"] or ""))
    console.print(s)
    console.print(f"[bold]{escape(sens['verdict'] or '')}[/bold]")
    console.print(f"[dim]{escape(sens['method'])}[/dim]")
