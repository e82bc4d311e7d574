"""Per-category pass rates with micro and macro averages (analysis/categories.py)."""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from benchrun.analysis.categories import category_pass_rates, macro_interval


def _rows(spec: dict[str, tuple[int, int]], key: str = "m") -> list[dict]:
    out = []
    for cat, (x, n) in spec.items():
        out += [{"model_key": key, "category": cat, "status": "passed"} for _ in range(x)]
        out += [{"model_key": key, "category": cat, "status": "failed"} for _ in range(n - x)]
    return out


def test_micro_and_macro_differ_when_categories_differ_in_size() -> None:
    rows = _rows({"big": (90, 100), "small": (1, 10)})
    rows.append({"model_key": "m", "category": "small", "status": "error"})  # errors are not scored
    [res] = category_pass_rates(rows).values()
    assert abs(res["micro"].estimate - 91 / 110) < 1e-12
    assert abs(res["macro"].estimate - (0.9 + 0.1) / 2) < 1e-12
    assert res["categories"]["small"]["scored"] == 10
    ci = binomtest(1, 10).proportion_ci(0.95, method="wilson")  # independent Wilson interval
    got = res["categories"]["small"]["pass_rate"]
    assert abs(got.low - ci.low) < 1e-9 and abs(got.high - ci.high) < 1e-9
    assert res["micro"].method.startswith("Wilson") and "stratified" in res["macro"].method
    # an independent check of the macro interval: statsmodels' Wilson interval at the effective n
    from statsmodels.stats.proportion import proportion_confint

    v = (0.9 * 0.1 / 100 + 0.1 * 0.9 / 10) / 4
    n_eff = 0.5 * 0.5 / v
    lo, hi = proportion_confint(0.5 * n_eff, n_eff, method="wilson")
    assert abs(res["macro"].low - lo) < 1e-9 and abs(res["macro"].high - hi) < 1e-9


def test_macro_interval_covers_by_simulation() -> None:
    """95% nominal: coverage of the true macro mean over 4,000 simulated evaluations per setting."""
    rng = np.random.default_rng(17)
    settings = [([0.9, 0.5, 0.7, 0.3], [20, 20, 20, 20]), ([0.95, 0.6], [50, 10]),
                ([0.99, 0.97, 0.8, 0.5, 0.25], [30, 40, 25, 60, 20]), ([0.5, 0.5, 0.5], [10, 10, 10]),
                ([0.6, 0.9, 0.4], [100, 8, 30]), ([0.25] * 57, [20] * 57)]
    for ps, ns in settings:
        truth = float(np.mean(ps))
        xs = rng.binomial(ns, ps, size=(4000, len(ps)))
        hits = 0
        for row in xs:
            iv = macro_interval(list(zip(row.tolist(), ns, strict=True)))
            hits += iv.low <= truth <= iv.high
        cover = hits / 4000
        assert 0.93 <= cover <= 0.985, (ps, ns, cover)


def test_macro_of_nothing_is_undefined() -> None:
    iv = macro_interval([(0, 0)])
    assert iv.estimate != iv.estimate and (iv.low, iv.high) == (0.0, 1.0)
