"""Presenting coverage reports: the terminal heatmap, an HTML or PNG chart, JSON.

This is the only module of `benchrun.coverage` that prints or writes charts.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from benchrun.errors import UsageError
from benchrun.report.escape import SafeConsole, escape, strip_controls

_STATUS_STYLE = {
    "uncovered": "bold white on rgb(170,30,30)",
    "thin": "black on rgb(235,180,60)",
    "covered": "black on rgb(120,190,120)",
    "over": "white on rgb(60,100,170)",
}
_BAND_STYLE = {"good": "bold green", "watch": "bold yellow", "refresh": "bold red"}


def _plural(unit: str) -> str:
    return "queries" if unit == "query" else unit + "s"


def _console(console: Console | None) -> Console:
    return console or SafeConsole()


def _heat(share: float, vmax: float) -> str:
    """Background style whose intensity grows with ``share / vmax``."""
    t = 0.0 if vmax <= 0 else min(1.0, share / vmax)
    r = int(255 - t * (255 - 30))
    g = int(255 - t * (255 - 90))
    b = int(255 - t * (255 - 160))
    fg = "white" if t > 0.5 else "black"
    return f"{fg} on rgb({r},{g},{b})"


def coverage_renderable(report: dict[str, Any], max_rows: int = 25, width: int | None = None) -> Table:
    """A rich table: one row per cluster, shares shaded like a heatmap, status coloured.

    With ``width`` it fits that many columns (`benchrun.report.fit`): the example query and the
    label are cut with an ellipsis, then the least needed columns go; ``table.hidden`` lists them.
    """
    from benchrun.report.fit import Col, fit_table

    clusters = report["clusters"]
    vmax = max([c["production_share"] for c in clusters] + [c["eval_share"] for c in clusters] + [1e-9])
    unit = report["production"]["unit"]
    cols = [Col("id"), Col("label", 0, "left", text=True, min_width=14), Col("prod %"), Col("eval %"),
            Col("eval n", 2, short="n"), Col("status", 1, "left"), Col("newest case", 3, "left", short="newest"),
            Col("example production query", 4, "left", text=True, min_width=20, short="example query")]
    rows: list[list[Any]] = []
    for c in clusters[:max_rows]:
        ps, es = c["production_share"], c["eval_share"]
        rows.append([
            "~" if c["id"] < 0 else str(c["id"]),
            escape(c["label"]),
            Text(f"{100 * ps:5.1f}", style=_heat(ps, vmax)),
            Text(f"{100 * es:5.1f}", style=_heat(es, vmax)),
            str(c["eval_count"]),
            Text(strip_controls(c["status"]), style=_STATUS_STYLE.get(c["status"], "")),
            escape(c["newest_eval_added"] or "-"),
            escape(strip_controls((c["representatives"] or [""])[0], newlines=False)),
        ])
    if len(clusters) > max_rows:
        rest = clusters[max_rows:]
        rows.append([
            "",
            f"... {len(rest)} more clusters",
            f"{100 * sum(c['production_share'] for c in rest):5.1f}",
            f"{100 * sum(c['eval_share'] for c in rest):5.1f}",
            str(sum(c["eval_count"] for c in rest)),
            "",
            "",
            "",
        ])
    out = report["outside_production"]
    if out["count"]:
        rows.append(["", "outside production", "0.0", f"{100 * out['share']:5.1f}", str(out["count"]), "", "", ""])
    t, hidden = fit_table(cols, rows, width or 100_000,
                          title=f"Coverage by cluster ({len(clusters)} clusters of production {_plural(unit)})",
                          header_style="bold")
    t.hidden = hidden  # type: ignore[attr-defined]
    return t


def print_coverage(report: dict[str, Any], console: Console | None = None, max_rows: int = 25) -> None:
    """Headline, heatmap table and notes on how far to trust the number."""
    con = _console(console)
    s = report["score"]
    if s.get("within_noise"):  # a random sample of as many cases would score the same: say so before the band
        con.print(escape(report["headline"]))
    con.print(
        Text.assemble(
            ("JSD ", "bold"),
            (f"{s['jsd']:.3f}", _BAND_STYLE.get(s["band"], "bold")),
            (f"  {s['band'].upper()}", _BAND_STYLE.get(s["band"], "bold")),
            f"  (divergence, base 2; good < {s['thresholds']['good_below']:g}, "
            f"refresh > {s['thresholds']['refresh_above']:g})",
        )
    )
    if not s.get("within_noise"):
        con.print(escape(report["headline"]))
    table = coverage_renderable(report, max_rows, width=con.width)
    con.print(table)
    _hidden(con, table.hidden)  # type: ignore[attr-defined]
    d, p = report["dataset"], report["production"]
    con.print(
        f"dataset {escape(d['name'])} v{escape(d['version'])} ({d['n_cases']} cases, {escape(d['hash'][:12])}) vs "
        f"production {escape(p['source'])} ({p['units']} {_plural(p['unit'])}, {p['rows_used']}/{p['rows_read']} rows "
        f"used; {escape(p['skipped_summary'])})"
    )
    con.print(
        f"a random sample of {d['n_cases']} production {_plural(p['unit'])} would score about {s['floor_median']:.3f} "
        f"(95% below {s['floor_p95']:.3f}); differences below that are sampling noise"
    )
    out = report["outside_production"]
    if out["count"]:
        ids = ", ".join(out["case_ids"][:10]) + (" ..." if out["count"] > 10 else "")
        con.print(f"outside production ({out['count']}): {escape(ids)}")
    prm = report["params"]
    if prm.get("stability_jsd") is not None:
        con.print(f"k-means fitted on a sample of {prm['fit_sample_size']} of {p['units']} {_plural(p['unit'])}, "
                  f"all assigned; a fit on another sample gives cluster shares at JSD {prm['stability_jsd']:.4f}")
    cost = report.get("cost")
    if cost:
        usd = "unknown (no price for this model)" if cost["embedding_usd"] is None else f"${cost['embedding_usd']:.4f}"
        est = ", estimated" if cost["tokens_estimated"] else ""
        con.print(f"embedding cost {usd}: {cost['embedding_tokens']} tokens{est} in {cost['embedding_requests']} "
                  f"requests ({cost['embedding_retries']} retried)")


def _hidden(con: Console, hidden: list[str]) -> None:
    from benchrun.report.fit import hidden_note

    note = hidden_note(hidden, con.width)
    if note:
        con.print(Text(note, style="dim"))


def print_refresh(result: dict[str, Any], console: Console | None = None) -> None:
    """Which clusters got how many new cases, and why."""
    from benchrun.report.fit import Col, fit_table

    con = _console(console)
    cols = [Col("unit", 0, "left"), Col("label", 0, "left", text=True, min_width=14), Col("prod %", 2),
            Col("eval %", 2), Col("new"), Col("why", 1, "left", text=True, min_width=24)]
    rows = [[escape(u["unit"]), escape(u["label"]), f"{100 * u['production_share']:.1f}",
             f"{100 * u['eval_share']:.1f}", str(u["allocated"]), escape(u["why"])]
            for u in result["units"] if u["allocated"] != 0]
    t, hidden = fit_table(cols, rows, con.width,
                          title=f"Refresh: {result['n_selected']} of {result['n_requested']} candidates",
                          header_style="bold")
    con.print(t)
    _hidden(con, hidden)
    if result["out_path"]:
        con.print(f"wrote {result['n_selected']} candidate cases to {escape(result['out_path'])}; review them and fill in 'ideal'")


def print_json(obj: Any, file: Any = None) -> None:
    """Pretty JSON on stdout (or ``file``)."""
    (file or sys.stdout).write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def print_error(message: str) -> None:
    """One line on stderr, never wrapped to the console width (scripts and CI logs read it)."""
    SafeConsole(stderr=True, soft_wrap=True).print(Text(" ".join(strip_controls(message).split()), style="bold red"))


def _bars_svg(report: dict[str, Any], max_rows: int) -> str:
    rows = report["clusters"][:max_rows]
    out = report["outside_production"]
    items = [(("~" if c["id"] < 0 else str(c["id"])) + " " + c["label"], c["production_share"], c["eval_share"]) for c in rows]
    if out["count"]:
        items.append(("outside production", 0.0, out["share"]))
    vmax = max([p for _, p, _ in items] + [e for _, _, e in items] + [1e-9])
    left, width, row_h = 300, 520, 26
    h = 40 + row_h * len(items)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 80}" height="{h}" font-family="sans-serif" font-size="12">',
        '<rect x="300" y="6" width="12" height="10" fill="#1f5aa0"/><text x="316" y="15">production share</text>',
        '<rect x="440" y="6" width="12" height="10" fill="#e08a1e"/><text x="456" y="15">eval share</text>',
    ]
    for i, (label, p, e) in enumerate(items):
        y = 30 + i * row_h
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{html.escape(label[:45])}</text>')
        pw, ew = width * p / vmax, width * e / vmax
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{pw:.1f}" height="9" fill="#1f5aa0"/>')
        parts.append(f'<rect x="{left}" y="{y + 12}" width="{ew:.1f}" height="9" fill="#e08a1e"/>')
        parts.append(f'<text x="{left + max(pw, ew) + 4:.1f}" y="{y + 16}">{100 * p:.1f}% / {100 * e:.1f}%</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_html(report: dict[str, Any], path: str | Path, max_rows: int = 80) -> Path:
    """A self-contained HTML page: score, bar chart of production vs eval share, cluster table."""
    s, d, p = report["score"], report["dataset"], report["production"]
    rows = []
    for c in report["clusters"][:max_rows]:
        reps = "<br>".join(html.escape(r) for r in c["representatives"])
        rows.append(
            f"<tr class='{c['status']}'><td>{'~' if c['id'] < 0 else c['id']}</td><td>{html.escape(c['label'])}</td>"
            f"<td>{100 * c['production_share']:.1f}%</td><td>{100 * c['eval_share']:.1f}%</td>"
            f"<td>{c['eval_count']}</td><td>{c['status']}</td><td>{c['newest_eval_added'] or '-'}</td><td>{reps}</td></tr>"
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>benchrun coverage: {html.escape(d['name'])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }} td, th {{ border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; }}
tr.uncovered td:nth-child(6) {{ background: #b22; color: white; }} tr.thin td:nth-child(6) {{ background: #eb3; }}
tr.covered td:nth-child(6) {{ background: #7b7; }} tr.over td:nth-child(6) {{ background: #36a; color: white; }}
.score {{ font-size: 1.4em; }}
</style></head><body>
<h1>Coverage of {html.escape(d['name'])} v{html.escape(str(d['version']))}</h1>
<p class="score">JSD {s['jsd']:.3f} &mdash; <b>{s['band']}</b>
(Jensen-Shannon divergence, base 2; good &lt; {s['thresholds']['good_below']:g}, refresh &gt; {s['thresholds']['refresh_above']:g})</p>
<p>{html.escape(report['headline'])}</p>
<p>Production: {html.escape(p['source'])}, {p['units']} {_plural(p['unit'])} ({html.escape(p['skipped_summary'])}).
A random sample of {d['n_cases']} production {_plural(p['unit'])} would score about {s['floor_median']:.3f}.</p>
{_bars_svg(report, max_rows)}
<h2>Clusters</h2>
<table><tr><th>id</th><th>label</th><th>production</th><th>eval</th><th>eval n</th><th>status</th><th>newest case</th>
<th>representative production queries</th></tr>
{''.join(rows)}
</table></body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def write_png(report: dict[str, Any], path: str | Path, max_rows: int = 40) -> Path:
    """A PNG bar chart of production vs eval share per cluster (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--png needs matplotlib (pip install matplotlib); --html needs nothing extra") from None
    rows = report["clusters"][:max_rows]
    labels = [("~" if c["id"] < 0 else str(c["id"])) + " " + c["label"][:40] for c in rows]
    ps = [100 * c["production_share"] for c in rows]
    es = [100 * c["eval_share"] for c in rows]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.5))
    y = list(range(len(rows)))
    ax.barh([v - 0.2 for v in y], ps, height=0.4, label="production share", color="#1f5aa0")
    ax.barh([v + 0.2 for v in y], es, height=0.4, label="eval share", color="#e08a1e")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("% of traffic / of eval cases")
    s = report["score"]
    ax.set_title(f"{report['dataset']['name']}: JSD {s['jsd']:.3f} ({s['band']})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def print_history(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    """The stored coverage reports as a table, newest first (the JSD trend)."""
    from benchrun.report.fit import Col, fit_table

    console = console or SafeConsole()
    if not rows:
        console.print("no coverage reports in this ledger yet (run `benchrun coverage --production F --dataset F`)")
        return
    cols = [Col("id"), Col("when", 2, "left"), Col("dataset", 0, "left", text=True, min_width=12),
            Col("production", 1, "left", text=True, min_width=12), Col("JSD"), Col("band", 0, "left"),
            Col("uncovered clusters", short="uncovered")]
    body = [[str(r["id"]), escape(r["created_at"][:16].replace("T", " ")),
             escape(f"{r['dataset']} v{r['dataset_version']} ({r['dataset_hash'][:12]})"), escape(str(r["production"])),
             f"{r['jsd']:.3f}", escape(r["band"]), "n/a" if r["uncovered_clusters"] is None else str(r["uncovered_clusters"])]
            for r in rows]
    t, hidden = fit_table(cols, body, console.width, title="Coverage history (newest first)")
    console.print(t)
    _hidden(console, hidden)
