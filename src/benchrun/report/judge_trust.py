"""Terminal rendering of the judge-trust reports: calibration, position bias, verbosity bias (rich).

Only presentation: each function takes the plain dict `benchrun.judge_trust` returns and prints it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _iv(iv: dict[str, Any] | None, pct: bool = False) -> str:
    if not iv or iv.get("estimate") is None:
        return "n/a"
    f = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:.2f}")
    return f"{f(iv['estimate'])} (95% CI {f(iv['low'])} to {f(iv['high'])})"


def _counts(d: Any) -> str:
    """{"good": 3, "tie": 9} as "good 3, tie 9" (not a Python dict)."""
    if isinstance(d, dict):
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"
    return str(d)


def _num(x: Any, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def render_calibration(o: Console, info: dict[str, Any]) -> None:
    """The calibration verdict, the agreement table and the failure-mode table."""
    from rich.table import Table

    from benchrun.report.escape import escape

    rep = info["report"]
    style = "bold green" if info["trusted"] else "bold red"
    o.print(f"[{style}]judge {escape(info['judge_model'])}: {escape(info['verdict'].upper())}[/{style}]")
    o.print(f"{info['verdict_reason']}", markup=False)
    k = rep["kappa"]
    o.print(f"items {rep['n']} (labels {info['labels']} by {len(info['annotators'])} annotator(s), "
            f"hash {info['labels_hash'][:12]}; judge verdicts: {info['judge_source']})", markup=False)
    t = Table(show_header=True, header_style="bold")
    t.add_column("measure")
    t.add_column("value")
    t.add_row("percent agreement (pass/fail)", _iv(rep["percent_agreement"], pct=True))
    t.add_row("Cohen's kappa (pass/fail)", _iv(k["interval"]) if k["interval"] else escape(k["note"] or "n/a"))
    if k.get("method"):
        t.add_row("  kappa interval", escape(k["method"]))
    t.add_row("quadratic-weighted kappa (1-5)", _num(rep["weighted_kappa"]) + (
        f"  ({escape(rep['weighted_kappa_note'])})" if rep.get("weighted_kappa_note") else ""))
    sp = rep["spearman"]
    t.add_row("Spearman rho (scores)", _num(sp["value"]) + (
        f"  p={sp['p_value']:.3g}" if sp.get("p_value") is not None else "") + (
        f"  ({escape(sp['note'])})" if sp.get("note") else ""))
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
            ft.add_row(escape(f["mode"]), str(f["human_count"]), str(f["judge_count"]), str(f["both"]),
                       _num(f["precision"]), _num(f["recall"]))
        o.print(ft)
    if info["items_without_verdict"]:
        o.print(f"{len(info['items_without_verdict'])} labelled item(s) have no judge verdict and were left out",
                markup=False)
    o.print(f"stored as report {info['report_id']}", markup=False)


def render_position(o: Console, info: dict[str, Any]) -> None:
    """Position-bias summary: consistency, first-position win rate, accuracy with labels."""
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
        o.print(f"wins (both-orders rule): {_counts(info['wins_both_orders'])}; "
                f"A-first only: {_counts(info['wins_first_order_only'])}", markup=False)
    if info.get("errors"):
        o.print(f"{len(info['errors'])} pair(s) could not be judged and were left out", markup=False)
    o.print(f"stored as report {info['report_id']}", markup=False)


def render_verbosity(o: Console, info: dict[str, Any]) -> None:
    """Verbosity-bias summary: padded vs unpadded shares, the sign test, the noise floor, per variant, inflation."""
    from benchrun.report.escape import escape

    rep = info["report"]
    style = "bold red" if info["flagged"] else "bold green"
    o.print(f"[{style}]verbosity bias of judge {escape(info['judge_model'])}: "
            f"{'FLAGGED' if info['flagged'] else 'not flagged'}[/{style}]")
    sh = rep["padded"]
    o.print(f"padded vs unpadded score over {rep['n']} item(s): higher {_iv(sh['higher'], pct=True)}, "
            f"equal {_iv(sh['equal'], pct=True)}, lower {_iv(sh['lower'], pct=True)}", markup=False)
    o.print(f"net (higher - lower) {rep['net_rate']:+.0%}; {rep['test_method']}: p = {rep['p_value']:.3g} "
            f"(flagged when p < {1 - rep['level']:.2g} and net > {rep['flag_above']:.0%})", markup=False)
    nf = rep.get("noise_floor")
    if nf:
        o.print(f"noise floor (same answer judged again): higher {_iv(nf['higher'], pct=True)}, "
                f"equal {_iv(nf['equal'], pct=True)}, lower {_iv(nf['lower'], pct=True)}", markup=False)
    for v, sv in rep["per_variant"].items():
        o.print(f"  {v}: higher {_iv(sv['higher'], pct=True)}, lower {_iv(sv['lower'], pct=True)}", markup=False)
    if rep.get("repetitive_list_rate"):
        o.print(f"secondary, MT-Bench repetitive-list rate (list variant above the first judgement, includes "
                f"noise): {_iv(rep['repetitive_list_rate'], pct=True)}", markup=False)
    o.print(f"mean score inflation {_iv(rep['inflation'])}", markup=False)
    lp = rep.get("length_partial")
    if lp:
        val = lp["value"]
        o.print(f"length vs judge score, controlling for the human score (Spearman partial): rho = {_num(val)} "
                f"over {lp['n']} item(s)"
                + (f" ({lp['note']})" if lp.get("note") else ""), markup=False)
    for note in rep.get("notes") or []:
        o.print(note, markup=False)
    o.print(f"stored as report {info['report_id']}", markup=False)
