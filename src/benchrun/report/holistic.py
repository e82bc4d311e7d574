"""The holistic table as text cells: one row per measure, one column per model (terminal and HTML).

Takes the plain dict of `benchrun.analysis.holistic.holistic_table` and returns plain strings;
the caller escapes them for its medium (`report.escape` for the terminal, Jinja2 autoescape in HTML).
"""

from __future__ import annotations

import json
from typing import Any


def _pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.1%}"


def _rate(d: dict[str, Any] | None) -> str:
    if not d:
        return "—"
    return f"{_pct(d['estimate'])} [{_pct(d['low'])}, {_pct(d['high'])}] ({d['hits']}/{d['n']})"


def _num(iv: dict[str, Any] | None, unit: str = "", fmt: str = "{:,.0f}") -> str:
    if not iv:
        return "—"
    f = fmt.format
    star = " *" if "too small" in (iv.get("method") or "") else ""
    return f"{f(iv['estimate'])}{unit} [{f(iv['low'])}, {f(iv['high'])}]{star}"


def _judge(j: dict[str, Any] | None) -> str:
    if j is None:
        return "scored by rules only"
    kappa = f", kappa {j['kappa']:.2f}" if isinstance(j.get("kappa"), (int, float)) else ""
    n = f", n {j['n']}" if j.get("n") else ""
    return f"{j['status']}{kappa}{n}"


ROWS: tuple[tuple[str, Any], ...] = (
    ("accuracy (pass rate)", lambda m: _rate(m["accuracy"])),
    ("refusal rate", lambda m: _rate(m["refusal"])),
    ("refusal rate, judge check", lambda m: _rate(m.get("refusal_judge"))),
    ("phrase rules agree with the judge", lambda m: _rate(m.get("refusal_rules_agree_with_judge"))),
    ("correct refusal (should_refuse: true)", lambda m: _rate(m["correct_refusal"])),
    ("over-refusal (should_refuse: false)", lambda m: _rate(m["over_refusal"])),
    ("length median, tokens", lambda m: _num(m["length_tokens"]["median"])),
    ("length p90, tokens", lambda m: _num(m["length_tokens"]["p90"])),
    ("length median, words", lambda m: _num(m["length_words"]["median"])),
    ("length p90, words", lambda m: _num(m["length_words"]["p90"])),
    ("over max_words", lambda m: _rate(m["over_max_words"])),
    ("consistency (samples agree on pass/fail)", lambda m: _rate(m["consistency"])),
    ("answer agreement (rule-scored)", lambda m: _rate(m["answer_agreement"])),
    ("error rate", lambda m: _rate(m["error"])),
    ("unparsed (multiple choice)", lambda m: _rate(m["unparsed"])),
    ("latency p50", lambda m: _num(m["latency_ms"]["p50"], " ms")),
    ("latency p95", lambda m: _num(m["latency_ms"]["p95"], " ms")),
    ("cost per 1,000 cases", lambda m: ("unknown" if m["cost_unknown_calls"] else "—") if m["cost_per_1k_cases"]
     is None else _num(m["cost_per_1k_cases"], "", "${:,.4f}")),
    ("judge calibration", lambda m: _judge(m["judge_calibration"])),
)


def holistic_rows(h: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(model keys, rows): each row is ``[measure, cell per model]``; a measure no model has is left out."""
    models = h["models"]
    keys = [m["model_key"] for m in models]
    rows = []
    for label, cell in ROWS:
        cells = [cell(m) for m in models]
        if all(c == "—" for c in cells):
            continue
        rows.append([label, *cells])
    return keys, rows


def method_notes(h: dict[str, Any]) -> list[str]:
    """One line per interval method and the refusal detector (what the table's numbers mean)."""
    names = {"proportions": "rates", "consistency": "consistency", "quantiles": "lengths and latency",
             "cost": "cost", "refusal_detector": "refusal detector"}
    notes = [f"{names.get(k, k)}: {v}" for k, v in h["methods"].items()]
    rc = h.get("refusal_check")
    if rc:
        notes.append(f"refusal judge check: {rc['judge']} (`benchrun refusals`, ledger report {rc['report_id']})")
    if "too small" not in json.dumps(h["models"]):
        return notes
    return [*notes, "*: too few results for the order-statistic interval at that level: one end is the sample "
            "minimum or maximum (coverage below 95%)"]
