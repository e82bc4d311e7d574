"""A run as a compact GitHub-flavoured Markdown summary (`benchrun report RUN_ID --markdown`).

Meant for a pull-request comment or ``$GITHUB_STEP_SUMMARY``: the per-model table with 95%
intervals, the high-severity failures (do-not-ship), and with a baseline run the paired
comparison of each shared model and its verdict.

Names, case ids, judge reasons come from datasets, specs and model answers: untrusted. `md` makes
them inert text in Markdown (no table break, no code span, no link, no emphasis, no raw HTML,
no ``@mention`` that would notify someone): it escapes what CommonMark treats as markup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from benchrun.report.plain import money as _money

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones that start markup
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def md(text: Any, limit: int = 200) -> str:
    """Untrusted text as inert inline Markdown, on one line, at most ``limit`` characters."""
    s = " ".join(_CONTROL.sub(" ", str(text)).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("@", "@\u2060")  # a word joiner after @: GitHub links no mention


def ident(text: Any) -> str:
    """A run id or hash in a code span: only word characters, dots, colons and dashes survive."""
    return "`" + re.sub(r"[^\w.:-]", "?", str(text))[:80] + "`"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def _pts(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:+.1f} pts"


def markdown_summary(summary: Mapping[str, Any], comparisons: Sequence[Mapping[str, Any]] = (),
                     gate_failures: Sequence[str] = ()) -> str:
    """The Markdown of a run summary (`benchrun.report.summary.build_summary`), with optional baseline
    comparisons (`benchrun.report.comparison.compare_payload`, this run as A, the baseline as B)."""
    c = summary["conditions"]
    ds, rb, j = c["dataset"], c["rubric"], c["judge"]
    lines = [f"## benchrun: {md(c['name'])} (run {ident(c['run_id'])}, {md(c['status'])})", ""]
    cal = summary.get("judge_calibration")
    cal_txt = ("uncalibrated" if not cal else ("calibrated, trusted" if cal.get("trusted") else
                                                "calibrated, NOT trusted"))
    scoring = (f"rubric {md(rb['name'])} v{md(rb['version'])} · judge {md(j['model'])} ({cal_txt})"
               if rb is not None and j is not None else "scored by rules only")
    lines.append(f"dataset {md(ds['name'])} v{md(ds['version'])} ({ident(ds['hash'][:12])}) · {scoring} · "
                 f"{c['samples_per_case']} sample(s) per case")
    if summary["recorded_results"] < summary["expected_results"]:
        lines.append("")
        lines.append(f"**Incomplete:** {summary['recorded_results']} of {summary['expected_results']} results "
                     "recorded.")
    judged = rb is not None and j is not None  # rules only: no judge columns (rather than empty ones)
    head = ["model", "pass rate (95% CI)", "passed", "failed", "errors", *(["mean judge"] if judged else []),
            "candidate cost", *(["judge cost"] if judged else [])]
    lines += ["", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for m in summary["models"]:
        pr = m["pass_rate"]
        scored = m["passed"] + m["failed"]
        ci = f"{_pct(pr['estimate'])} [{_pct(pr['low'])}, {_pct(pr['high'])}]" if scored else "n/a"
        judge = "n/a" if m["mean_judge_score"] is None else f"{m['mean_judge_score']:.2f}"
        cost = _money(m["candidate_cost_usd"]) + (f" + {m['candidate_cost_unknown_calls']} unpriced"
                                                   if m["candidate_cost_unknown_calls"] else "")
        jcost = _money(m["judge_cost_usd"]) + (f" + {m['judge_cost_unknown_calls']} unpriced"
                                               if m["judge_cost_unknown_calls"] else "")
        cells = [md(m["model_key"]), ci, str(m["passed"]), str(m["failed"]), str(m["errors"]),
                 *([judge] if judged else []), cost, *([jcost] if judged else [])]
        lines.append("| " + " | ".join(cells) + " |")
    methods = sorted({m["pass_rate"].get("method") for m in summary["models"] if m["pass_rate"].get("method")})
    if methods:
        lines += ["", f"<sub>interval: {md('; '.join(methods))}</sub>"]
    bad = [b for b in summary["breakdown"] if b["high_severity_failures"]]
    lines += ["", "### High-severity failures", ""]
    if not bad:
        lines.append("None.")
    for b in bad:
        hs = b["high_severity_failures"]
        shown = ", ".join(md(x, 80) for x in hs[:20]) + (f" and {len(hs) - 20} more" if len(hs) > 20 else "")
        lines.append(f"- **{md(b['model_key'])}: do not ship**, {len(hs)} case(s) not passed: {shown}")
    if comparisons:
        base = comparisons[0]["b"]["run_id"]
        lines += ["", f"### Against baseline run {ident(base)}", "",
                  "| model | this run | baseline | difference (95% CI) | p | verdict |", "|---|---:|---:|---:|---:|---|"]
        for p in comparisons:
            cmp = p["comparison"]
            iv = cmp.get("bootstrap") or cmp.get("se_interval")
            diff = _pts(cmp.get("difference"))
            if iv:
                diff += f" [{_pts(iv['low'])}, {_pts(iv['high'])}]"
            test = cmp.get("test") or {}
            pv = test.get("p_value")
            lines.append(f"| {md(p['a']['model_key'])} | {_pct(cmp.get('pass_rate_a'))} | "
                         f"{_pct(cmp.get('pass_rate_b'))} | {diff} | {'n/a' if pv is None else f'{pv:.3g}'} | "
                         f"{'**' if p['larger_than_noise'] else ''}{md(p['verdict'], 300)}"
                         f"{'**' if p['larger_than_noise'] else ''} |")
        for p in comparisons:
            for w in p["warnings"]:
                lines += ["", f"> **Warning:** {md(w, 600)}"]
    if gate_failures:
        lines += ["", "### Quality gates failed", ""]
        lines += [f"- {md(g, 300)}" for g in gate_failures]
    return "\n".join(lines) + "\n"
