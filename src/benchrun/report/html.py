"""The self-contained HTML report: one file, inline CSS, inline SVG charts, a little inline JS, no network.

`render_report(data)` takes the plain dict built by `benchrun.report.data.report_data` and returns
HTML text. Every value from the ledger (answers, inputs, judge reasons) goes through Jinja2's
autoescaping; the SVG charts are built here from numbers, with labels escaped by `markupsafe`.
"""

from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup, escape

SEVERITIES = ("high", "medium", "low")
_PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d")


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def nice_ticks(vmax: float, n: int = 4) -> tuple[list[float], int]:
    """Axis ticks from 0 past ``vmax`` in steps of 1, 2, 2.5 or 5 × 10^k (about ``n`` steps), and the
    number of decimals that shows every tick exactly: $0, $0.005, $0.01 … rather than $0.00858, $0.0172."""
    if not vmax > 0 or not math.isfinite(vmax):
        return [0.0, 0.25, 0.5, 0.75, 1.0], 2
    raw = vmax / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-12))
    count = math.ceil(vmax / step * (1 - 1e-12))
    if count * step <= vmax:
        count += 1
    decimals = max(0, -math.floor(math.log10(step) + 1e-12) + (1 if round(step / mag, 6) == 2.5 else 0))
    return [round(i * step, decimals + 2) for i in range(count + 1)], decimals


def quality_cost_svg(points: list[dict[str, Any]], width: int = 640, height: int = 360) -> Markup:
    """Scatter of pass rate (with its 95% interval as a vertical bar) against candidate cost per 1k cases.

    Unknown cost is drawn in a separate band on the right labelled "cost unknown", never at 0.
    """
    left, right, top, bottom = 64, 24, 20, 48
    unknown = [p for p in points if p.get("cost_per_1k") is None]
    known = [p for p in points if p.get("cost_per_1k") is not None]
    band = 90 if unknown else 0
    plot_w = width - left - right - band
    plot_h = height - top - bottom
    ticks, decimals = nice_ticks(max([p["cost_per_1k"] for p in known] + [0.0]))
    xmax = ticks[-1]

    def x_of(c: float) -> float:
        return left + plot_w * c / xmax

    def y_of(q: float) -> float:
        return top + plot_h * (1 - q)

    parts: list[str] = [
        f'<svg id="chart-quality-cost" class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="pass rate versus cost per 1000 cases">'
    ]
    for q in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(q)
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" />')
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{int(q * 100)}%</text>')
    for c in ticks:
        parts.append(f'<text class="tick" x="{x_of(c):.1f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle">${c:,.{decimals}f}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" />')
    parts.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" />')
    parts.append(f'<text class="label" x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                 "candidate cost per 1,000 cases (USD)</text>")
    parts.append(f'<text class="label" transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
                 'text-anchor="middle">pass rate (95% CI)</text>')
    if unknown:
        bx = left + plot_w + 10
        parts.append(f'<rect class="unknown-band" x="{bx}" y="{top}" width="{band - 10}" height="{plot_h}" />')
        parts.append(f'<text class="tick" x="{bx + (band - 10) / 2:.1f}" y="{top + plot_h + 16}" '
                     'text-anchor="middle">cost unknown</text>')
    for i, p in enumerate(points):
        q = p.get("pass_rate")
        if q is None or (isinstance(q, float) and math.isnan(q)):
            continue
        colour = _PALETTE[i % len(_PALETTE)]
        if p.get("cost_per_1k") is None:
            x = left + plot_w + 10 + (band - 10) * (i + 1) / (len(points) + 1)
        else:
            x = x_of(p["cost_per_1k"])
        key = escape(p["key"])
        lo, hi = p.get("low"), p.get("high")
        if lo is not None and hi is not None:
            parts.append(f'<line class="ci" x1="{x:.1f}" x2="{x:.1f}" y1="{y_of(lo):.1f}" y2="{y_of(hi):.1f}" '
                         f'stroke="{colour}" />')
        cost_txt = "unknown" if p.get("cost_per_1k") is None else f"${p['cost_per_1k']:.4f}"
        parts.append(f'<circle class="point" data-key="{key}" cx="{x:.1f}" cy="{y_of(q):.1f}" r="6" fill="{colour}">'
                     f"<title>{key}: {_fmt_pct(q)} [{_fmt_pct(lo)}, {_fmt_pct(hi)}], {cost_txt} per 1k</title></circle>")
        parts.append(f'<text class="point-label" x="{x + 9:.1f}" y="{y_of(q) - 8:.1f}">{key}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - labels went through escape(); the rest are numbers and constants


def severity_svg(breakdown: list[dict[str, Any]], width: int = 640) -> Markup:
    """Horizontal stacked bars per model: cases not passed (failed + errors) per severity, out of n."""
    colours = {"high": "#b91c1c", "medium": "#f59e0b", "low": "#94a3b8"}
    row_h, left, top = 28, 140, 24
    height = top + row_h * max(1, len(breakdown)) + 20
    total_max = max([sum(b["by_severity"].get(s, {}).get("n", 0) for s in SEVERITIES) for b in breakdown] + [1])
    plot_w = width - left - 20
    parts = [f'<svg id="chart-severity" class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="failures by severity">']
    lx = left
    for s in SEVERITIES:
        parts.append(f'<rect x="{lx}" y="4" width="12" height="12" fill="{colours[s]}" />'
                     f'<text class="tick" x="{lx + 16}" y="14">{s} not passed</text>')
        lx += 130
    for i, b in enumerate(breakdown):
        y = top + i * row_h
        parts.append(f'<text class="tick" x="{left - 8}" y="{y + 17}" text-anchor="end">{escape(b["model_key"])}</text>')
        parts.append(f'<rect class="bar-bg" x="{left}" y="{y + 4}" width="{plot_w}" height="{row_h - 8}" />')
        x = float(left)
        for s in SEVERITIES:
            cnt = b["by_severity"].get(s) or {"n": 0, "failed": 0, "errors": 0}
            bad = cnt["failed"] + cnt["errors"]
            if not bad:
                continue
            w = plot_w * bad / total_max
            parts.append(f'<rect class="bar" data-severity="{s}" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" '
                         f'height="{row_h - 8}" fill="{colours[s]}"><title>{escape(b["model_key"])}: {bad} of '
                         f'{cnt["n"]} {s}-severity results not passed</title></rect>')
            x += w
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - labels went through escape(); the rest are numbers and constants


_TEMPLATE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>benchrun report {{ c.run_id }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #111827; background: #f8fafc; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; } h2 { font-size: 1.15rem; margin-top: 32px; border-bottom: 1px solid #e5e7eb; }
table { border-collapse: collapse; width: 100%; background: white; margin: 8px 0; font-size: 0.9rem; }
th, td { border: 1px solid #e5e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f5f9; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #b91c1c; font-weight: 600; } .muted { color: #6b7280; } .ok { color: #15803d; }
.verdict { font-weight: 600; padding: 8px; background: #eef2ff; border-left: 4px solid #4f46e5; }
.status-passed { color: #15803d; } .status-failed { color: #b91c1c; } .status-error { color: #a16207; }
.chart { background: white; border: 1px solid #e5e7eb; margin: 8px 8px 8px 0; }
.chart .grid { stroke: #e5e7eb; } .chart .axis { stroke: #374151; } .chart .tick { font-size: 11px; fill: #374151; }
.chart .label { font-size: 12px; fill: #111827; } .chart .ci { stroke-width: 3; opacity: .5; }
.chart .point-label { font-size: 12px; fill: #111827; } .chart .unknown-band { fill: #f3f4f6; }
.chart .bar-bg { fill: #f8fafc; stroke: #e5e7eb; }
details.case { background: white; border: 1px solid #e5e7eb; margin: 4px 0; padding: 4px 8px; }
details.case > summary { cursor: pointer; }
pre { white-space: pre-wrap; word-break: break-word; background: #f8fafc; padding: 6px; margin: 4px 0; }
.filters { margin: 8px 0; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
#chart-legend span { margin-right: 16px; } #chart-legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
</style>
</head>
<body>
<main>
<h1>Run {{ c.run_id }} — {{ c.name }}</h1>
<p>status <b>{{ c.status }}</b>{% if c.message %} ({{ c.message }}){% endif %} · created {{ c.created_at }}
{% if c.finished_at %} · finished {{ c.finished_at }}{% endif %}</p>
{% if s.recorded_results < s.expected_results %}
<p class="warn">{{ s.recorded_results }} of {{ s.expected_results }} results recorded: the run is incomplete.</p>
{% endif %}

<h2 id="conditions">Run conditions</h2>
<table id="conditions-table">
<tr><th>dataset</th><td>{{ c.dataset.name }} v{{ c.dataset.version }} <span class="muted">{{ c.dataset.hash }}</span></td></tr>
{% if c.judge %}
<tr><th>rubric</th><td>{{ c.rubric.name }} v{{ c.rubric.version }} <span class="muted">{{ c.rubric.hash }}</span></td></tr>
<tr><th>judge</th><td>{{ c.judge.model }} · prompt <span class="muted">{{ c.judge.prompt_hash }}</span> · sampling {{ c.judge.sampling | tojson }}</td></tr>
{% endif %}
<tr><th>judge calibration</th><td>{% if not c.judge %}scored by rules only (no judge){% elif s.judge_calibration %}{% if s.judge_calibration.trusted %}trusted{% else %}<span class="warn">NOT trusted</span>{% endif %}: {{ s.judge_calibration.summary }}{% else %}<span class="warn">uncalibrated</span> — judge scores are unverified{% endif %}</td></tr>
{% if health.degenerate %}<tr id="judge-health"><th>judge health</th><td><span class="warn"><b>DEGENERATE JUDGE</b></span> — {{ health.message }}</td></tr>{% endif %}
<tr><th>coverage</th><td>{% if s.coverage %}JSD {{ "%.3f" | format(s.coverage.jsd or 0) }} ({{ s.coverage.band }}) vs {{ s.coverage.production }}{% else %}no coverage report for this dataset version{% endif %}</td></tr>
<tr><th>samples per case</th><td>{{ c.samples_per_case }}</td></tr>
{% for m in c.models %}
<tr><th>model {{ m.key }}</th><td>{{ m.model }}{% if m.api_base %} @ {{ m.api_base }}{% endif %} · prompt <span class="muted">{{ c.prompt_hashes[m.key] }}</span> · sampling {{ c.sampling[m.key] | tojson }}{% if m.get("resolved_models") %} · served as {{ m.get("resolved_models") | join(", ") }}{% endif %}</td></tr>
{% endfor %}
<tr><th>spec hash</th><td class="muted">{{ c.spec_hash }}</td></tr>
<tr><th>git commit</th><td>{{ c.git_commit or "unknown" }}</td></tr>
<tr><th>packages</th><td>{% for k, v in c.package_versions.items() %}{{ k }} {{ v }}{% if not loop.last %} · {% endif %}{% endfor %}</td></tr>
</table>

<h2 id="models">Per model</h2>
<table id="models-table">
<tr><th>model</th><th>pass rate (95% CI)</th><th>passed</th><th>failed</th>{% if s.choice_cases %}<th>unparsed</th>{% endif %}<th>errors</th>{% if c.judge %}<th>mean judge</th>{% endif %}<th>candidate cost</th><th>candidate cost/case</th>{% if c.judge %}<th>judge cost (evaluation)</th>{% endif %}<th>p50</th><th>p95</th></tr>
{% for m in s.models %}
<tr><td>{{ m.model_key }}</td>
<td class="num">{% if m.passed + m.failed == 0 %}<span class="warn">{% if m.errors %}no answers: {{ m.errors }} errors{% else %}no results{% endif %}</span>{% else %}{{ pct(m.pass_rate.estimate) }} [{{ pct(m.pass_rate.low) }}, {{ pct(m.pass_rate.high) }}]{% endif %}</td>
<td class="num">{{ m.passed }}</td><td class="num">{{ m.failed }}</td>{% if s.choice_cases %}<td class="num">{{ m.unparsed }}</td>{% endif %}<td class="num{% if m.errors %} warn{% endif %}">{{ m.errors }}</td>
{% if c.judge %}<td class="num">{{ "n/a" if m.mean_judge_score is none else "%.2f" | format(m.mean_judge_score) }}{% if marker and m.mean_judge_score is not none %} <span class="warn">({{ marker }})</span>{% endif %}</td>{% endif %}
<td class="num">{{ money(m.candidate_cost_usd) }}{% if m.candidate_cost_unknown_calls %} + {{ m.candidate_cost_unknown_calls }} unpriced{% endif %}</td>
<td class="num">{{ money(m.candidate_cost_per_case) }}</td>
{% if c.judge %}<td class="num">{{ money(m.judge_cost_usd) }}{% if m.judge_cost_unknown_calls %} + {{ m.judge_cost_unknown_calls }} unpriced{% endif %}</td>{% endif %}
<td class="num">{{ ms(m.latency_p50_ms) }}</td><td class="num">{{ ms(m.latency_p95_ms) }}</td></tr>
{% endfor %}
</table>
{% set methods = s.models | map(attribute="pass_rate") | map(attribute="method") | reject("none") | unique | list %}
{% if methods %}<p class="muted">pass-rate interval: {{ methods | join("; ") }}</p>{% endif %}
{% if s.tools %}
<h2 id="tools">Tool use</h2>
<table id="tools-table">
<tr><th>model</th><th>tool name accuracy</th><th>argument accuracy</th><th>invalid-argument rate</th><th>forbidden-call rate</th><th>unnecessary-call rate</th><th>tool-call F1</th><th>steps (mean/max)</th><th>failure modes</th></tr>
{% for key, tm in s.tools.models.items() %}
<tr><td>{{ key }}</td>
{% for k in ["name_accuracy", "argument_accuracy", "invalid_argument_rate", "forbidden_call_rate", "unnecessary_call_rate", "f1"] %}{% set v = tm[k] %}<td class="num">{% if v.estimate is none %}n/a{% else %}{{ pct(v.estimate) }} [{{ pct(v.low) }}, {{ pct(v.high) }}]{% endif %}</td>{% endfor %}
<td class="num">{% if tm.mean_steps is none %}n/a{% else %}{{ "%.1f" | format(tm.mean_steps) }}/{{ tm.max_steps }}{% endif %}</td>
<td>{% for mode, n in tm.failure_modes.items() %}{{ mode }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% endfor %}
</table>
<p class="muted">rates: {{ s.tools.methods.rates }}; F1 (micro over calls): {{ s.tools.methods.f1 }}</p>
{% endif %}

{% if arena %}
<h2 id="arena">Pairwise ratings</h2>
{% if arena.get("error") %}<p class="warn">{{ arena.error }}</p>{% else %}
<p>{{ arena.battles }} battles on {{ arena.cases }} cases, rated from {{ arena.rated }}. {{ arena.method }}; {{ arena.tie_rule }}.</p>
{% for j in arena.judges %}<p id="arena-judge">judge {{ j.judge }}: position consistency {{ pct(j.consistency) }} [{{ pct(j.consistency_interval[0]) }}, {{ pct(j.consistency_interval[1]) }}] over {{ j.pairs }} pairs judged in both orders; ties under the both-orders rule {{ pct(j.tie_share) }}</p>{% endfor %}
{% set ha = arena.human_agreement %}
<p id="arena-human">{% if ha %}judge vs people on {{ ha.votes }} vote(s): agreement without ties {% if ha.agreement_without_ties %}{{ pct(ha.agreement_without_ties.estimate) }} [{{ pct(ha.agreement_without_ties.low) }}, {{ pct(ha.agreement_without_ties.high) }}]{% else %}n/a{% endif %} ({{ ha.decisive_votes }} decisive), with ties {{ pct(ha.agreement_with_ties.estimate) }} [{{ pct(ha.agreement_with_ties.low) }}, {{ pct(ha.agreement_with_ties.high) }}]; Cohen's kappa over A/B/tie {% if ha.kappa.value is none %}n/a ({{ ha.kappa.note }}){% else %}{{ "%.2f" | format(ha.kappa.value) }}{% if ha.kappa.interval %} [{{ "%.2f" | format(ha.kappa.interval.low) }}, {{ "%.2f" | format(ha.kappa.interval.high) }}]{% endif %}{% endif %}{% else %}<span class="warn">no human votes</span> — the pairwise judge is uncalibrated (`benchrun labels export RUN_ID --pairwise`){% endif %}</p>
<table id="arena-table">
<tr><th>rank</th><th>model</th><th>rating</th><th>95% interval</th><th>rank range</th><th>battles</th><th>W/L/T</th><th>win rate</th><th>tied with</th></tr>
{% for m in arena.models %}<tr><td class="num">{{ m.rank }}</td><td>{{ m.model }}</td><td class="num">{{ "%.0f" | format(m.rating) }}</td><td class="num">{% if m.interval.low is none %}n/a{% else %}[{{ "%.0f" | format(m.interval.low) }}, {{ "%.0f" | format(m.interval.high) }}]{% endif %}</td><td class="num">{{ m.rank_interval[0] }}-{{ m.rank_interval[1] }}</td><td class="num">{{ m.battles }}</td><td class="num">{{ m.wins }}/{{ m.losses }}/{{ m.ties }}</td><td class="num">{{ pct(m.win_rate) }}</td><td>{{ m.tied_with | join(", ") }}</td></tr>
{% endfor %}</table>
{% if arena.length_controlled %}<table id="arena-lc"><tr><th>model</th><th>vs</th><th>battles</th><th>raw win rate</th><th>length-controlled win rate</th></tr>
{% for x in arena.length_controlled %}<tr><td>{{ x.model }}</td><td>{{ x.baseline }}</td><td class="num">{{ x.battles }}</td><td class="num">{{ pct(x.raw_win_rate.estimate) }} [{{ pct(x.raw_win_rate.low) }}, {{ pct(x.raw_win_rate.high) }}]</td><td class="num">{% if x.lc_win_rate %}{{ pct(x.lc_win_rate.estimate) }} [{{ pct(x.lc_win_rate.low) }}, {{ pct(x.lc_win_rate.high) }}]{% else %}n/a{% endif %}</td></tr>
{% endfor %}</table>{% endif %}
{% endif %}
{% endif %}

<h2 id="charts">Quality vs cost</h2>
{{ scatter }}
<div id="chart-legend" class="muted"></div>
<p class="muted">Dots: pass rate over scored results; bars: its 95% interval (method above the chart). Cost: candidate calls only (judge excluded), per 1,000 answers.</p>

<h2 id="breakdown">Failure breakdown</h2>
{{ severity_chart }}
<table id="breakdown-table">
<tr><th>model</th><th>high-severity not passed</th><th>by category (not passed / n)</th><th>failure modes</th></tr>
{% for b in s.breakdown %}
<tr><td>{{ b.model_key }}</td>
<td>{% set n_all = b.by_severity.values() | sum(attribute="n") %}{% set n_err = b.by_severity.values() | sum(attribute="errors") %}{% if n_all and n_err == n_all %}<span class="warn">no answers: {{ n_err }} errors</span>{% elif b.high_severity_failures %}<span class="warn">DO NOT SHIP: {{ b.high_severity_failures | join(", ") }}</span>{% else %}<span class="ok">none</span>{% endif %}</td>
<td>{% for k, v in b.by_category.items() %}{{ k }} {{ v.failed + v.errors }}/{{ v.n }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{% for k, v in b.failure_modes.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% else %}—{% endfor %}{% if b.injection_suspected %}<br><span class="warn">injection suspected: {{ b.injection_suspected | join(", ") }}</span>{% endif %}</td></tr>
{% endfor %}
</table>

{% if cmp %}
<h2 id="compare">Compare {{ cmp.a.name }} vs {{ cmp.b.name }}</h2>
{% for w in cmp.warnings %}<p class="warn">WARNING: {{ w }}</p>{% endfor %}
<p class="verdict">{{ cmp.verdict }}</p>
{% set k = cmp.comparison %}
<table id="compare-table">
<tr><th>measure</th><th>A</th><th>B</th><th>A − B</th><th>95% interval</th></tr>
<tr><td>pass rate ({{ k.n_pairs }} paired cases)</td><td class="num">{{ pct(k.pass_rate_a) }}</td><td class="num">{{ pct(k.pass_rate_b) }}</td>
<td class="num">{{ pts(k.difference) }} pts</td><td>bootstrap {{ ivpts(k.bootstrap) }}; SE {{ ivpts(k.se_interval) }} ({{ k.se_method }})</td></tr>
{% if k.test %}<tr><td>{{ k.test.method }}</td><td class="num">{{ k.test.a_better }} A better</td><td class="num">{{ k.test.b_better }} B better</td><td class="num">{{ p_is(k.test.p_value) }}</td><td>decides the verdict</td></tr>{% endif %}
{% if k.score %}<tr><td>mean judge score ({{ k.score.n_pairs }} cases)</td><td class="num">{{ "%.2f" | format(k.score.mean_a) }}</td><td class="num">{{ "%.2f" | format(k.score.mean_b) }}</td>
<td class="num">{{ "%+.2f" | format(k.score.difference) }}</td><td>{% if k.score.interval %}[{{ "%+.2f" | format(k.score.interval.low) }}, {{ "%+.2f" | format(k.score.interval.high) }}]{% endif %} {{ p_is(k.score.p_value) }}</td></tr>{% endif %}
</table>
{% if cmp.power.sentence %}<p>{{ cmp.power.sentence }}</p>{% elif cmp.power.min_detectable_difference is not none %}<p>Smallest gap these cases detect with 80% power: about {{ "%.0f" | format(100 * cmp.power.min_detectable_difference) }} points.</p>{% endif %}
{% for n in k.notes %}<p class="muted">note: {{ n }}</p>{% endfor %}
<table id="compare-groups">
<tr><th>group</th><th>pairs</th><th>A</th><th>B</th><th>A − B</th><th>bootstrap</th><th>p</th><th>p adjusted (BH)</th><th></th></tr>
{% for g in cmp.by_group %}{% set gc = g.comparison %}
<tr><td>{{ g.dimension }}: {{ g.group }}</td><td class="num">{{ gc.n_pairs }}</td><td class="num">{{ pct(gc.pass_rate_a) }}</td><td class="num">{{ pct(gc.pass_rate_b) }}</td>
<td class="num">{{ pts(gc.difference) }}</td><td>{{ ivpts(gc.bootstrap) }}</td><td class="num">{{ pval(g.p_value) }}</td><td class="num">{{ pval(g.p_adjusted) }}</td>
<td>{% if g.too_few_pairs %}<span class="muted">too few pairs</span>{% elif g.flagged %}larger than noise{% endif %}</td></tr>
{% endfor %}
</table>
<table id="flips-table">
<tr><th>severity</th><th>case</th><th>category</th><th>{{ cmp.a.name }}</th><th>{{ cmp.b.name }}</th></tr>
{% for f in cmp.flips %}<tr><td>{{ f.severity }}</td><td><a href="#case-{{ f.case_id }}">{{ f.case_id }}</a></td><td>{{ f.category }}</td>
<td class="status-{{ 'passed' if f.a_passed else 'failed' }}">{{ "pass" if f.a_passed else "fail" }}</td>
<td class="status-{{ 'passed' if f.b_passed else 'failed' }}">{{ "pass" if f.b_passed else "fail" }}</td></tr>
{% else %}<tr><td colspan="5" class="muted">no flips: the models pass and fail the same cases</td></tr>{% endfor %}
</table>
{% endif %}

{% if sl %}
<h2 id="shortlist">Shortlist</h2>
{% for w in sl.warnings %}<p class="warn">WARNING: {{ w }}</p>{% endfor %}
<p class="muted">{{ sl.method }}</p>
<table id="shortlist-table">
<tr><th>rank</th><th>candidate</th><th>pass rate (95% CI)</th><th>high sev</th><th>mean judge</th><th>candidate $/1k cases</th><th>judge $/1k cases</th><th>p50</th><th>p95</th><th>context</th><th>$/1M in/out</th><th>where</th><th>frontier</th><th>tied with</th></tr>
{% for r in sl.ranked %}{% set cd = r.candidate %}
<tr><td class="num">{{ r.rank }}</td><td>{{ cd.key }}</td><td class="num">{{ pct(cd.pass_rate.estimate) }} [{{ pct(cd.pass_rate.low) }}, {{ pct(cd.pass_rate.high) }}]</td>
<td class="num">{{ cd.high_severity_failures }}</td><td>{{ "n/a" if cd.mean_judge_score is none else "%.2f" | format(cd.mean_judge_score) }} ({{ cd.judge_calibration }})</td>
<td class="num">{{ "unknown" if cd.cost_per_1k_cases is none else "$%.4f" | format(cd.cost_per_1k_cases) }}</td>
<td class="num">{{ "unknown" if cd.judge_cost_per_1k_cases is none else "$%.4f" | format(cd.judge_cost_per_1k_cases) }}</td>
<td class="num">{{ ms(cd.latency_p50_ms) }}</td><td class="num">{{ ms(cd.latency_p95_ms) }}</td>
<td class="num">{{ cd.context_window or "n/a" }}</td>
<td class="num">{{ "n/a" if cd.input_price_per_1m is none else cd.input_price_per_1m }}/{{ "n/a" if cd.output_price_per_1m is none else cd.output_price_per_1m }}</td>
<td>{{ "local" if cd.local else "hosted" }}</td><td>{{ "yes" if r.pareto else "" }}</td><td>{{ r.tied_with | join(", ") }}</td></tr>
{% endfor %}
</table>
{% if sl.comparisons %}<p class="muted">ties: {{ sl.tie_rule }}</p>
<table id="shortlist-tests">
<tr><th>pair</th><th>test</th><th>p</th><th>p adjusted (Holm)</th><th></th></tr>
{% for t in sl.comparisons %}<tr><td>{{ t.a }} / {{ t.b }}</td><td>{{ t.method }}</td><td class="num">{{ pval(t.p_value) }}</td><td class="num">{{ pval(t.p_adjusted) }}</td><td>{{ "tied" if t.tied else "different" }}</td></tr>
{% endfor %}
</table>{% endif %}
{% for e in sl.excluded %}<p class="warn">excluded {{ e.candidate.key }}: {{ e.reasons | join("; ") }}</p>{% endfor %}
{% for n in sl.notes %}<p class="muted">note: {{ n }}</p>{% endfor %}
{% endif %}

<h2 id="cases">Cases</h2>
<div class="filters">
<label>search <input id="case-search" type="search" placeholder="case id, category, text"></label>
<label><input id="only-failing" type="checkbox"> only cases with a failure or error</label>
<span id="case-count" class="muted"></span>
</div>
<div id="case-list">
{% for case in cases %}
<details class="case" id="case-{{ case.id }}" data-statuses="{{ case.statuses | join(' ') }}">
<summary><b>{{ case.id }}</b> · {{ case.category }} · {{ case.severity }} ·
{% for m in case.models %}{% for smp in m.samples %}<span class="status-{{ smp.status }}">{{ m.key }}{% if smp.sample %}#{{ smp.sample }}{% endif %}: {{ smp.status }}</span> {% endfor %}{% endfor %}</summary>
<div><b>input</b><pre>{{ case.input }}</pre>{% if case.ideal %}<b>ideal</b><pre>{{ case.ideal }}</pre>{% endif %}</div>
{% for m in case.models %}{% for smp in m.samples %}
<div class="answer" data-model="{{ m.key }}"><b>{{ m.key }}</b>{% if smp.sample %} sample {{ smp.sample }}{% endif %} — <span class="status-{{ smp.status }}">{{ smp.status }}</span>
{% if smp.latency_ms is not none %}<span class="muted"> · {{ "%.0f" | format(smp.latency_ms) }} ms</span>{% endif %}
<pre>{{ smp.answer if smp.answer is not none else "(no answer)" }}</pre>
{% if smp.error %}<p class="warn">error: {{ smp.error }}</p>{% endif %}
{% if smp.rules %}<ul>{% for r in smp.rules %}<li class="{{ 'ok' if r.passed else 'warn' }}">{{ r.rule }}: {{ "ok" if r.passed else "FAILED" }}{% if r.extracted is defined and r.extracted is not none %} · extracted <code>{{ r.extracted }}</code> ({{ r.extracted_by }}){% endif %}{% if r.detail %} — {{ r.detail }}{% endif %}</li>{% endfor %}</ul>{% endif %}
{% if smp.trajectory %}<div class="trajectory"><p class="muted">trajectory: {{ smp.trajectory.n_steps }} step(s), ended {{ smp.trajectory.end }}</p><ol>
{% for st in smp.trajectory.steps %}{% if st.role == "assistant" %}<li>assistant{% if st.content %}: <pre>{{ st.content }}</pre>{% endif %}{% for tc in st.tool_calls %}<div>call #{{ tc.index }} <code>{{ tc.name }}</code> <code>{{ tc.arguments }}</code></div>{% endfor %}</li>{% else %}<li>tool result #{{ st.call_index }} (<code>{{ st.name }}</code>): <pre>{{ st.content }}</pre></li>{% endif %}
{% endfor %}</ol>{% if smp.trajectory.score %}{% for tc in smp.trajectory.score.calls %}{% if tc.invalid_reason is defined %}<p class="warn">call #{{ tc.index }} invalid: {{ tc.invalid_reason }}</p>{% endif %}{% endfor %}{% endif %}</div>{% endif %}
{% if smp.scored_by %}<p class="muted">scored by {{ smp.scored_by }}</p>{% endif %}
{% if smp.scored_by != "rules" %}<p>judge: {% if smp.judge_score is not none %}score {{ smp.judge_score }}, {{ "pass" if smp.judge_pass else "fail" }}, mode {{ smp.failure_mode }} — {{ smp.judge_reason }}{% elif smp.judge_error %}<span class="warn">{{ smp.judge_error }}</span>{% else %}—{% endif %}{% if smp.injection_suspected %} <span class="warn">injection suspected: {{ smp.injection_suspected }}</span>{% endif %}</p>{% endif %}
</div>
{% endfor %}{% endfor %}
</details>
{% endfor %}
</div>
</main>
<script id="report-data" type="application/json">{{ js_data | tojson }}</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var legend = document.getElementById("chart-legend");
  data.points.forEach(function (p, i) {
    var span = document.createElement("span");
    span.className = "legend-item";
    var dot = document.createElement("i");
    dot.style.background = data.palette[i % data.palette.length];
    span.appendChild(dot);
    var cost = p.cost_per_1k === null ? "cost unknown" : "$" + p.cost_per_1k.toFixed(4) + "/1k";
    var rate = p.pass_rate === null ? "n/a" : (100 * p.pass_rate).toFixed(1) + "%";
    span.appendChild(document.createTextNode(p.key + ": " + rate + ", " + cost));
    legend.appendChild(span);
  });
  var search = document.getElementById("case-search");
  var only = document.getElementById("only-failing");
  var count = document.getElementById("case-count");
  var cases = Array.prototype.slice.call(document.querySelectorAll("details.case"));
  function apply() {
    var q = search.value.toLowerCase();
    var shown = 0;
    cases.forEach(function (el) {
      var st = el.getAttribute("data-statuses");
      var ok = (!q || el.textContent.toLowerCase().indexOf(q) >= 0) &&
               (!only.checked || st.indexOf("failed") >= 0 || st.indexOf("error") >= 0);
      el.style.display = ok ? "" : "none";
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + cases.length + " cases shown";
  }
  search.addEventListener("input", apply);
  only.addEventListener("change", apply);
  if (location.hash.indexOf("#case-") === 0) {
    var target = document.getElementById(location.hash.slice(1));
    if (target) { target.open = true; }
  }
  apply();
  document.documentElement.setAttribute("data-rendered", "yes");
})();
</script>
</body>
</html>
"""


def render_report(data: dict[str, Any]) -> str:
    """Render the report dict (see `benchrun.report.data.report_data`) to one HTML document."""
    from jinja2 import Environment, StrictUndefined

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)

    def money(x: float | None) -> str:
        return "unknown" if x is None else (f"${x:.4f}" if x < 1 else f"${x:,.2f}")

    def ms(x: float | None) -> str:
        return "n/a" if x is None else f"{x:,.0f} ms"

    def pts(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:+.1f}"

    def ivpts(iv: dict[str, Any] | None) -> str:
        return "n/a" if not iv else f"[{100 * iv['low']:+.1f}, {100 * iv['high']:+.1f}]"

    def pval(p: float | None) -> str:
        return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")

    from benchrun.report.summary import judge_marker

    def p_is(p: float | None) -> str:
        return "p n/a" if p is None else ("p < 0.001" if p < 0.001 else f"p = {p:.3f}")

    tpl = env.from_string(_TEMPLATE)
    s = data["summary"]
    return tpl.render(
        s=s, health=s.get("judge_health") or {"degenerate": False, "message": None}, marker=judge_marker(s), c=s["conditions"], cases=data["cases"], cmp=data.get("compare"), sl=data.get("shortlist"),
        arena=data.get("arena"),
        scatter=quality_cost_svg(data["chart_points"]), severity_chart=severity_svg(s["breakdown"]),
        js_data={"points": data["chart_points"], "palette": list(_PALETTE)},
        pct=_fmt_pct, money=money, ms=ms, pts=pts, ivpts=ivpts, pval=pval, p_is=p_is,
    )
