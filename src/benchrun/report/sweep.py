"""The sweep report from the ledger: each model's pass rate per setup and the setup-noise verdict.

Refuses (`UsageError`) runs that are not of one sweep, or that differ in a condition that can
change scores other than the factors the sweep varies (`analysis.sweep.unexplained_differences`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from benchrun.errors import UsageError
from benchrun.ledger import Ledger
from benchrun.ledger.tables import Run


def sweep_tag(run: Run) -> dict[str, Any] | None:
    """The ``{"id", "factors", "setup"}`` tag a run of a sweep carries in its snapshot (None otherwise)."""
    tag = json.loads(run.spec_snapshot).get("sweep")
    return tag if isinstance(tag, dict) and isinstance(tag.get("setup"), dict) else None


def sweep_diff(a: Run, b: Run, differences: list[dict[str, Any]]) -> dict[str, Any] | None:
    """For two runs of one sweep: the factor(s) that varied between them and anything else that differs."""
    from benchrun.analysis.sweep import unexplained_differences, varied_factors

    ta, tb = sweep_tag(a), sweep_tag(b)
    if ta is None or tb is None or ta.get("id") != tb.get("id"):
        return None
    varied = varied_factors(ta["setup"], tb["setup"])
    other = unexplained_differences(differences, varied)
    if other:
        sentence = (f"runs of sweep {ta['id']} that differ in more than its factors: {', '.join(other[:6])}; "
                    "their scores are not comparable as a setup change")
    elif len(varied) == 1:
        f = varied[0]
        sentence = f"sweep {ta['id']}: the one factor that varied is {f} ({ta['setup'][f]} -> {tb['setup'][f]})"
    elif not varied:
        sentence = f"sweep {ta['id']}: the same setup"
    else:
        sentence = f"sweep {ta['id']}: {len(varied)} factors varied: {', '.join(varied)}"
    return {"sweep_id": ta["id"], "setup_a": ta["setup"], "setup_b": tb["setup"], "varied": varied,
            "other_differences": other, "sentence": sentence}


def find_sweep_runs(led: Ledger, sweep_id: str, limit: int = 5000) -> list[Run]:
    """The runs of a sweep, oldest first."""
    runs = [r for r in led.list_runs(limit) if (sweep_tag(r) or {}).get("id") == sweep_id]
    if not runs:
        raise UsageError(f"no run of sweep {sweep_id!r} in this ledger")
    return sorted(runs, key=lambda r: r.created_at)


def sweep_payload(led: Ledger, runs: list[Run], level: float = 0.95) -> dict[str, Any]:
    """Per model its pass rate (with interval) in each setup, the spread across setups and the verdict."""
    from benchrun.analysis.breakdown import summarize
    from benchrun.analysis.sweep import setup_label, setup_sensitivity
    from benchrun.report.comparison import conditions_diff, model_keys, rows_of

    if not runs:
        raise UsageError("no run to report")
    tags = [sweep_tag(r) for r in runs]
    first = tags[0]
    if first is None or any(t is None or t["id"] != first["id"] for t in tags):
        raise UsageError("these runs are not all of one sweep; give the runs of one `benchrun sweep`")
    factors = list(first["factors"])
    for run, tag in zip(runs[1:], tags[1:], strict=True):
        assert tag is not None
        d = sweep_diff(runs[0], run, conditions_diff(runs[0], run)["differences"])
        if d is not None and d["other_differences"]:
            raise UsageError(f"runs {runs[0].id} and {run.id} of sweep {first['id']} differ in "
                             f"{', '.join(d['other_differences'][:6])} besides the factors it varies "
                             f"({', '.join(factors)}); refusing to compare them")
    per_model: dict[str, dict[str, float | None]] = {}
    sizes: dict[str, dict[str, float | None]] = {}
    setups_out = []
    for run, tag in zip(runs, tags, strict=True):
        assert tag is not None
        label = setup_label(tag["setup"], factors)
        models = {}
        for s in summarize(rows_of(led, run.id), model_keys(run), level):
            scored = s.passed + s.failed
            per_model.setdefault(s.model_key, {})[label] = s.pass_rate.estimate if scored else None
            sizes.setdefault(s.model_key, {})[label] = s.n_effective if scored else None
            models[s.model_key] = {"pass_rate": asdict(s.pass_rate) if scored else None, "passed": s.passed,
                                   "scored": scored, "errors": s.errors}
        setups_out.append({"label": label, "setup": tag["setup"], "run_id": run.id, "status": run.status,
                           "models": models})
    return {"sweep_id": first["id"], "factors": factors, "setups": setups_out,
            "sensitivity": setup_sensitivity(per_model, sizes, level)}
