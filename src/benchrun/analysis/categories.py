"""Pass rates per category (e.g. MMLU's subjects), and their micro and macro averages.

* **micro**: every scored result weighs the same (passed / scored over all categories); the
  interval is Wilson's.
* **macro**: every category weighs the same (the mean of the per-category pass rates), as MMLU is
  usually reported. Interval: Wilson's around the macro mean p̂ with an effective sample size, in the
  style of Korn & Graubard (1998) and of this package's clustered interval: the variance of the
  stratified mean V = Σ p̂ₖ(1 − p̂ₖ)/nₖ / K², n_eff = p̂(1 − p̂)/V (or K²/Σ 1/nₖ when V = 0, every
  category at 0% or 100%), capped at Σ nₖ. Coverage is checked by simulation in
  tests/test_categories.py (0.93-0.99 at nominal 0.95 in the settings simulated, categories of 8-100).

Errors are left out (as in every pass rate here); pure functions over plain rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from benchrun.analysis.stats import Interval, _wilson, wilson_interval

MACRO_METHOD = ("Wilson score around the mean of per-category rates, effective n from the stratified "
                "variance (Korn-Graubard style)")


def macro_interval(counts: list[tuple[int, int]], level: float = 0.95) -> Interval:
    """Macro average of per-category proportions ``(successes, n)`` (categories with n = 0 left out)."""
    cats = [(x, n) for x, n in counts if n > 0]
    if not cats:
        return Interval(float("nan"), 0.0, 1.0, level, MACRO_METHOD)
    k = len(cats)
    est = sum(x / n for x, n in cats) / k
    var = sum((x / n) * (1 - x / n) / n for x, n in cats) / (k * k)
    n_eff = est * (1 - est) / var if var > 0 else k * k / sum(1 / n for _, n in cats)
    n_eff = min(n_eff, float(sum(n for _, n in cats)))
    lo, hi = _wilson(est, n_eff, level)
    return Interval(est, lo, hi, level, MACRO_METHOD)


def category_pass_rates(rows: Iterable[Mapping[str, Any]], order: list[str] | None = None,
                        level: float = 0.95) -> dict[str, dict[str, Any]]:
    """Per model: each category's passed / scored with its Wilson interval, the micro and the macro average."""
    per: dict[str, dict[str, list[int]]] = {}
    for r in rows:
        st = r["status"]
        if st not in ("passed", "failed"):
            continue
        c = per.setdefault(r["model_key"], {}).setdefault(r["category"], [0, 0])
        c[0] += st == "passed"
        c[1] += 1
    keys = [k for k in (order or []) if k in per] + sorted(k for k in per if k not in (order or []))
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        cats = per[key]
        by_cat = {cat: {"passed": x, "scored": n, "pass_rate": wilson_interval(x, n, level)}
                  for cat, (x, n) in sorted(cats.items())}
        xs, ns = sum(x for x, _ in cats.values()), sum(n for _, n in cats.values())
        out[key] = {"categories": by_cat, "micro": wilson_interval(xs, ns, level),
                    "macro": macro_interval(list(map(tuple, cats.values())), level),  # type: ignore[arg-type]
                    "n_categories": len(cats)}
    return out
