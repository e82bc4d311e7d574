"""Tool-use metrics per model, with intervals (pure: result rows in, plain data out).

Each scored result of a tool-using case carries its tool score (``trajectory.score``, see
`benchrun.scoring.tools`). Per model:

* **tool-call accuracy (name)**: share of results whose expected tools were all called by name
  (in order when the case says ``order: strict``; for ``no_tool_call`` cases: no call at all);
  over results of cases with ``expected_tool_calls`` or ``no_tool_call``;
* **argument accuracy**: of those with the names right and calls expected, the share whose every
  expected call also had matching arguments;
* **invalid-argument rate**: share of results with at least one call whose arguments were not a
  JSON object valid against the tool's parameter schema; over results that made a call;
* **forbidden-call rate**: share of results that called a forbidden tool; over results of cases
  with ``forbidden_tools``;
* **unnecessary-call rate**: share of results with a call that matched no expected call; over
  results of cases with ``expected_tool_calls`` or ``no_tool_call``;
* **tool-call F1**: micro F1 over calls, 2·TP / (2·TP + FP + FN), TP = expected calls matched
  (name and arguments), FP = calls matched to none, FN = expected calls left unmatched.

The rates are proportions over results with cases as clusters, so each gets the Wilson interval
with the design effect of cases (`stats.clustered_wilson_interval`; plain Wilson with one sample
per case). F1 is a ratio of sums, not a proportion of independent trials, so its interval is the
percentile bootstrap over cases (Efron & Tibshirani 1993, ch. 13): cases are drawn with
replacement, `F1_RESAMPLES` times with a fixed seed, taking all their samples along, and the
2.5th and 97.5th percentiles of the resampled F1 are the bounds. Errored results are left out.

When that bootstrap distribution is degenerate (every resample gives the same F1: every case
scored perfectly, no case has a true positive, or all cases counted alike) its percentiles are one
point, which would claim certainty. F1 is then bounded instead through the share of calls that are
correct: F1 = 2·TP / (2·TP + FP + FN) is exactly the share of the counted calls (expected plus made)
that belong to a match, a proportion with cases as clusters, so the interval is
`stats.clustered_wilson_interval` of 2·TP correct out of 2·TP + FP + FN calls per case. With every
case alike its variance estimate is 0 and it falls back to Wilson with n = the number of cases
(times Korn & Graubard's t factor): conservative, since F1 is at least the call-weighted share of
perfect cases (and at most that of cases with any true positive), each a proportion over cases
that Wilson's interval bounds. Its method names this (`F1_DEGENERATE_METHOD`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from benchrun.analysis.stats import Interval, clustered_wilson_interval

F1_RESAMPLES = 2000
F1_METHOD = f"percentile bootstrap over cases ({F1_RESAMPLES:,} resamples, seed 0)"
F1_DEGENERATE_METHOD = ("Wilson bound on the share of calls that are correct, cases as clusters (the bootstrap "
                        "over cases is degenerate: every resample gives the same F1)")
RATES = ("name_accuracy", "argument_accuracy", "invalid_argument_rate", "forbidden_call_rate",
         "unnecessary_call_rate")


def tool_score(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tool score of one result row (None: no trajectory, an error, or unreadable)."""
    raw = row.get("trajectory")
    if not raw or row.get("status") == "error":
        return None
    try:
        traj = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    score = traj.get("score") if isinstance(traj, dict) else None
    return score if isinstance(score, dict) else None


def tool_failure_mode(row: Mapping[str, Any]) -> str | None:
    """The tool failure mode of a failed result (None when it has none)."""
    s = tool_score(row)
    mode = s.get("failure_mode") if s else None
    return mode if isinstance(mode, str) and mode != "none" else None


def f1(tp: int, fp: int, fn: int) -> float:
    """Micro F1 = 2TP / (2TP + FP + FN); NaN when there is nothing to count."""
    d = 2 * tp + fp + fn
    return 2 * tp / d if d else float("nan")


def bootstrap_f1(per_case: list[tuple[int, int, int]], level: float = 0.95, resamples: int = F1_RESAMPLES,
                 seed: int = 0) -> Interval:
    """Micro F1 over cases (each ``(tp, fp, fn)`` summed over its samples) with a percentile bootstrap
    interval over cases, or the Wilson bound when the bootstrap is degenerate (see the module's docstring)."""
    import numpy as np

    tp = sum(c[0] for c in per_case)
    fp = sum(c[1] for c in per_case)
    fn = sum(c[2] for c in per_case)
    est = f1(tp, fp, fn)
    if not per_case or est != est:
        return Interval(est, 0.0, 1.0, level, F1_METHOD)
    arr = np.asarray(per_case, dtype=float)
    g = len(per_case)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, g, size=(resamples, g))
    counts = np.zeros((resamples, g))
    np.add.at(counts, (np.repeat(np.arange(resamples), g), idx.ravel()), 1.0)
    sums = counts @ arr  # resamples x (tp, fp, fn)
    denom = 2 * sums[:, 0] + sums[:, 1] + sums[:, 2]
    vals = np.where(denom > 0, 2 * sums[:, 0] / np.where(denom > 0, denom, 1), np.nan)
    vals = vals[~np.isnan(vals)]
    if not len(vals) or float(vals.min()) == float(vals.max()):  # one point: bound it instead (module doc)
        cp = clustered_wilson_interval([2 * c[0] for c in per_case], [2 * c[0] + c[1] + c[2] for c in per_case],
                                       level)
        return Interval(est, cp.interval.low, cp.interval.high, level, F1_DEGENERATE_METHOD)
    alpha = (1 - level) / 2
    lo, hi = float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha))
    return Interval(est, lo, hi, level, F1_METHOD)


def _rate(per_case: dict[str, list[bool]]) -> dict[str, Any]:
    cases = [v for v in per_case.values() if v]
    cp = clustered_wilson_interval([sum(v) for v in cases], [len(v) for v in cases])
    iv = cp.interval
    return {"estimate": None if cp.samples == 0 else iv.estimate, "low": iv.low, "high": iv.high,
            "successes": sum(sum(v) for v in cases), "n": cp.samples, "cases": cp.cases, "method": iv.method}


def tool_metrics(rows: Iterable[Mapping[str, Any]], order: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per model: the rates and F1 above (each ``{estimate, low, high, n, ...}``), failure modes and steps."""
    acc: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = tool_score(r)
        if s is None:
            continue
        key, case = str(r.get("model_key")), str(r.get("case_id"))
        m = acc.setdefault(key, {k: {} for k in RATES} | {"f1": {}, "modes": {}, "steps": [], "results": 0})
        m["results"] += 1
        m["modes"][s.get("failure_mode", "none")] = m["modes"].get(s.get("failure_mode", "none"), 0) + 1
        try:
            traj = json.loads(r["trajectory"]) if isinstance(r.get("trajectory"), str) else r.get("trajectory") or {}
            m["steps"].append(int(traj.get("n_steps", 0)))
        except (ValueError, TypeError):
            pass
        scored = s.get("name_ok") is not None
        if scored:
            m["name_accuracy"].setdefault(case, []).append(bool(s["name_ok"]))
            m["unnecessary_call_rate"].setdefault(case, []).append(bool(s.get("unnecessary")))
        if s.get("args_ok") is not None:
            m["argument_accuracy"].setdefault(case, []).append(bool(s["args_ok"]))
        if s.get("calls"):
            m["invalid_argument_rate"].setdefault(case, []).append(bool(s.get("invalid")))
        if s.get("has_forbidden"):
            m["forbidden_call_rate"].setdefault(case, []).append(bool(s.get("forbidden")))
        if scored or s.get("calls"):
            t = m["f1"].setdefault(case, [0, 0, 0])
            t[0] += int(s.get("tp", 0))
            t[1] += int(s.get("fp", 0))
            t[2] += int(s.get("fn", 0))
    keys = [k for k in (order or []) if k in acc] + sorted(k for k in acc if k not in (order or []))
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        m = acc[key]
        entry: dict[str, Any] = {k: _rate(m[k]) for k in RATES}
        per_case = [tuple(v) for v in m["f1"].values()]
        iv = bootstrap_f1(per_case)  # type: ignore[arg-type]
        tp, fp, fn = (sum(c[i] for c in per_case) for i in range(3))
        entry["f1"] = {"estimate": None if iv.estimate != iv.estimate else iv.estimate, "low": iv.low,
                       "high": iv.high, "tp": tp, "fp": fp, "fn": fn, "cases": len(per_case), "method": iv.method}
        steps = sorted(m["steps"])
        entry["results"] = m["results"]
        entry["failure_modes"] = dict(sorted(m["modes"].items(), key=lambda kv: (-kv[1], kv[0])))
        entry["mean_steps"] = sum(steps) / len(steps) if steps else None
        entry["max_steps"] = steps[-1] if steps else None
        out[key] = entry
    return out
