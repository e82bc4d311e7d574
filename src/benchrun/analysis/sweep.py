"""Setup sensitivity: is the gap between models larger than what changing the setup does to each?

Pure functions. A sweep runs one spec under several setups (prompt version, temperature, few-shot
count, ...); `setup_sensitivity` takes each model's pass rate per setup and reports the spread
across setups (range and sample SD) and whether the gap between the two best models (by their
mean over setups) exceeds the spread of either. The rule is descriptive, not a test: a gap smaller
than one model's own swing across reasonable setups says the ranking depends on the setup
(the practitioner's question "is that larger than setup noise?"). `factor_of` and
`unexplained_differences` attribute the recorded condition differences of two runs to the
sweep's factors, so that runs which differ in anything else are refused.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

SAMPLING_FACTORS = ("temperature", "top_p", "seed", "max_tokens")
FACTORS = ("prompt", "fewshot", *SAMPLING_FACTORS)


def setup_label(setup: Mapping[str, Any], factors: Sequence[str]) -> str:
    """``prompt=v1 temperature=0`` for a setup, in the sweep's factor order."""
    return " ".join(f"{f}={setup[f]}" for f in factors)


def varied_factors(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The factors whose values differ between two setups, in ``a``'s order."""
    return [f for f in a if a.get(f) != b.get(f)]


def factor_of(section: str, field: str) -> str | None:
    """The sweep factor a recorded condition difference (a `conditions_diff` row) belongs to, or None."""
    if section == "prompts":
        return "fewshot" if field.startswith("fewshot") else "prompt"
    if section == "sampling":
        param = field.rsplit(".", 1)[-1]
        return param if param in SAMPLING_FACTORS else None
    return None


def unexplained_differences(differences: Sequence[Mapping[str, Any]], varied: Sequence[str]) -> list[str]:
    """Score-relevant differences of two runs that the factors in ``varied`` do not explain (``section.field``)."""
    out = []
    for d in differences:
        if not d.get("affects_scores"):
            continue
        f = factor_of(str(d["section"]), str(d["field"]))
        if f is None or f not in varied:
            out.append(f"{d['section']}.{d['field']}")
    return out


def _se_of_mean(per: Mapping[str, float | None], sizes: Mapping[str, float | None]) -> float | None:
    """Sampling SE of a model's mean pass rate over setups: sqrt(Σ_s p_s(1 − p_s)/n_s) / k (setups independent)."""
    terms = []
    for k, p in per.items():
        n = sizes.get(k)
        if p is None or n is None or n <= 0:
            continue
        terms.append(p * (1 - p) / n)
    return math.sqrt(math.fsum(terms)) / len(terms) if terms else None


def setup_sensitivity(scores: Mapping[str, Mapping[str, float | None]],
                      sizes: Mapping[str, Mapping[str, float | None]] | None = None,
                      level: float = 0.95) -> dict[str, Any]:
    """Per model: its score in each setup, mean, range (max − min) and sample SD (n − 1) across setups;
    then the two best models by mean and whether their gap exceeds the range (and the SD) of either.

    ``scores`` maps model key -> setup label -> pass rate (None: no scored result in that setup; left out).
    A model needs scores in at least two setups for a spread; ``larger_than_setup_noise`` is None when
    fewer than two models have one.

    With ``sizes`` (model -> setup -> effective number of scored results), the gap must also exceed
    sampling noise: gap > z · sqrt(SE_a² + SE_b²), each SE that of the mean over setups with the
    binomial variance p(1 − p)/n per setup. With few setups the range alone is a weak yardstick
    (with two setups and two equal models the gap beats both ranges about 20% of the time); the
    sampling condition keeps the flag on pure noise under 5% (tests/test_sweep.py simulates it).
    Treating the setups' results as independent overstates the SE when the same cases are reused,
    so the condition is conservative.
    """
    models = []
    for key, per in scores.items():
        vals = [float(v) for v in per.values() if v is not None and not math.isnan(v)]
        models.append({
            "model_key": key,
            "scores": dict(per),
            "setups": len(vals),
            "mean": statistics.fmean(vals) if vals else None,
            "range": (max(vals) - min(vals)) if len(vals) >= 2 else None,
            "sd": statistics.stdev(vals) if len(vals) >= 2 else None,
            "best_setup": max((k for k, v in per.items() if v is not None), key=lambda k: per[k] or 0.0, default=None),
            "worst_setup": min((k for k, v in per.items() if v is not None), key=lambda k: per[k] or 0.0,
                               default=None),
        })
    ranked = sorted((m for m in models if m["range"] is not None), key=lambda m: (-m["mean"], m["model_key"]))
    out: dict[str, Any] = {"models": models, "best": None, "second": None, "gap": None, "sampling_noise": None,
                           "larger_than_setup_noise": None, "larger_than_setup_sd": None, "verdict": None,
                           "method": "gap = difference of the two best models' mean pass rates over setups; "
                                     "setup noise = each model's range (max - min) across setups; the SD "
                                     "(sample, n - 1) is shown too; with result counts, the gap must also exceed "
                                     "z x the sampling SE of the difference of the means"}
    if len(ranked) < 2:
        out["verdict"] = "fewer than two models scored in two or more setups: no setup-noise comparison"
        return out
    a, b = ranked[0], ranked[1]
    gap = a["mean"] - b["mean"]
    spread = max(a["range"], b["range"])
    beyond = gap > spread
    sampling = None
    if sizes is not None:
        from benchrun.analysis.stats import z_for

        se_a, se_b = (_se_of_mean(scores[m["model_key"]], sizes.get(m["model_key"], {})) for m in (a, b))
        if se_a is not None and se_b is not None:
            sampling = z_for(level) * math.sqrt(se_a**2 + se_b**2)
    out.update(best=a["model_key"], second=b["model_key"], gap=gap,
               larger_than_setup_noise=beyond and (sampling is None or gap > sampling),
               larger_than_setup_sd=gap > max(a["sd"], b["sd"]), sampling_noise=sampling)
    pts = f"{100 * gap:.1f} points"
    if beyond and sampling is not None and gap <= sampling:
        out["verdict"] = (f"{a['model_key']} leads {b['model_key']} by {pts}, more than either moves across setups "
                          f"but NOT more than sampling noise ({100 * sampling:.1f} points at {level:.0%})")
    elif beyond:
        out["verdict"] = (f"{a['model_key']} leads {b['model_key']} by {pts}, more than either model moves across "
                          f"setups (ranges {100 * a['range']:.1f} and {100 * b['range']:.1f} points)"
                          + ("" if sampling is None else f" and than sampling noise ({100 * sampling:.1f} points)"))
    else:
        widest = a if a["range"] >= b["range"] else b
        out["verdict"] = (f"{a['model_key']} leads {b['model_key']} by {pts}, NOT more than setup noise: "
                          f"{widest['model_key']} moves {100 * widest['range']:.1f} points across setups")
    return out
