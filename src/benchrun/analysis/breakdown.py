"""Per-model summaries and failure breakdowns over result rows (plain dicts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from benchrun.analysis.stats import Interval, clustered_wilson_interval, percentile
from benchrun.analysis.tools import tool_failure_mode

SEVERITIES = ("high", "medium", "low")


@dataclass
class ModelSummary:
    model_key: str
    model: str
    results: int
    passed: int
    failed: int
    errors: int
    pass_rate: Interval  # over scored results (passed + failed); errors shown apart; .method says which interval
    pass_rate_errors_as_fail: float | None
    mean_judge_score: float | None
    judged: int
    cost_usd: float  # known part, candidate + judge calls (what the evaluation spent in all)
    cost_unknown_calls: int  # calls whose price nobody knows: the total is then a lower bound
    cost_per_case: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    tokens_estimated: int
    retries: int
    scored_cases: int = 0  # cases with at least one scored (non-error) sample
    max_samples_per_case: int = 0
    design_effect: float | None = None  # variance inflation from samples of one case being alike (1 = independent)
    n_effective: float | None = None  # scored samples / design effect: independent samples the data are worth
    # Candidate cost (what serving this model costs) and judge cost (evaluation overhead), apart:
    # a candidate 6x cheaper than another must not look the same price because both were judged.
    candidate_cost_usd: float = 0.0
    candidate_cost_unknown_calls: int = 0
    candidate_cost_per_case: float | None = None
    judge_cost_usd: float = 0.0
    judge_cost_unknown_calls: int = 0
    judge_cost_per_case: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pass_rate"] = asdict(self.pass_rate)
        return d


@dataclass
class Breakdown:
    model_key: str
    by_severity: dict[str, dict[str, int]] = field(default_factory=dict)
    by_category: dict[str, dict[str, int]] = field(default_factory=dict)
    failure_modes: dict[str, int] = field(default_factory=dict)
    high_severity_failures: list[str] = field(default_factory=list)  # case ids (failed or error)
    injection_suspected: list[str] = field(default_factory=list)  # case ids whose answer tries to steer the judge

    @property
    def do_not_ship(self) -> bool:
        return bool(self.high_severity_failures)


def _get(r: Mapping[str, Any] | Any, k: str) -> Any:
    # a plain dict (`Ledger.result_rows`) first: isinstance against the Mapping ABC is the slow part of a summary
    return r[k] if type(r) is dict or isinstance(r, Mapping) else getattr(r, k)


def _opt(r: Mapping[str, Any] | Any, k: str) -> Any:
    """A column older rows (or hand-made ones) may lack."""
    return r.get(k) if type(r) is dict or isinstance(r, Mapping) else getattr(r, k, None)


def summarize(rows: Iterable[Mapping[str, Any] | Any], order: list[str] | None = None,
              level: float = 0.95) -> list[ModelSummary]:
    """One summary per model key, in ``order`` (e.g. the spec's candidate order), then first-seen order.

    ``pass_rate`` is over scored samples (errors excluded). With one sample per case it is the
    Wilson interval; with several samples per case the samples of a case are correlated (same
    question), so the interval treats cases as clusters (`clustered_wilson_interval`:
    design-effect-adjusted Wilson) and ``pass_rate.method`` says so. Treating 10 samples of
    each case as independent covered the true rate only 67-81% of the time (issue 13).
    """
    groups: dict[str, list[Any]] = {k: [] for k in order or []}
    for r in rows:
        groups.setdefault(_get(r, "model_key"), []).append(r)
    out = []
    for key, rs in groups.items():
        if not rs:
            continue
        passed = sum(1 for r in rs if _get(r, "status") == "passed")
        failed = sum(1 for r in rs if _get(r, "status") == "failed")
        errors = sum(1 for r in rs if _get(r, "status") == "error")
        scores = [_get(r, "judge_score") for r in rs if _get(r, "judge_score") is not None]
        part_cost = {"cost_usd": 0.0, "judge_cost_usd": 0.0}
        part_unknown = {"cost_usd": 0, "judge_cost_usd": 0}
        for r in rs:
            for col, answered in (("cost_usd", "response_text"), ("judge_cost_usd", "judge_raw")):
                v = _get(r, col)
                if v is None:
                    if _get(r, answered) is not None:
                        part_unknown[col] += 1
                else:
                    part_cost[col] += float(v)
        cost = part_cost["cost_usd"] + part_cost["judge_cost_usd"]
        unknown = part_unknown["cost_usd"] + part_unknown["judge_cost_usd"]
        cases = len({_get(r, "case_id") for r in rs})
        per_case_of = {col: part_cost[col] / cases if cases and not part_unknown[col] else None for col in part_cost}
        per_case: dict[Any, list[int]] = {}
        for r in rs:
            st = _get(r, "status")
            if st in ("passed", "failed"):
                cnt = per_case.setdefault(_get(r, "case_id"), [0, 0])
                cnt[0] += st == "passed"
                cnt[1] += 1
        clustered = clustered_wilson_interval([c for c, _ in per_case.values()], [n for _, n in per_case.values()],
                                              level)
        lat = [float(_get(r, "latency_ms")) for r in rs if _get(r, "latency_ms") is not None and _get(r, "error") is None]
        out.append(
            ModelSummary(
                model_key=key,
                model=_get(rs[0], "model"),
                results=len(rs),
                passed=passed,
                failed=failed,
                errors=errors,
                pass_rate=clustered.interval,
                pass_rate_errors_as_fail=passed / len(rs) if rs else None,
                mean_judge_score=sum(scores) / len(scores) if scores else None,
                judged=len(scores),
                cost_usd=cost,
                cost_unknown_calls=unknown,
                cost_per_case=cost / cases if cases and not unknown else None,
                latency_p50_ms=percentile(lat, 50),
                latency_p95_ms=percentile(lat, 95),
                prompt_tokens=sum(int(_get(r, "prompt_tokens") or 0) for r in rs),
                completion_tokens=sum(int(_get(r, "completion_tokens") or 0) for r in rs),
                tokens_estimated=sum(1 for r in rs if _get(r, "tokens_estimated")),
                retries=sum(int(_get(r, "retries") or 0) + int(_get(r, "judge_retries") or 0) for r in rs),
                scored_cases=clustered.cases,
                max_samples_per_case=max((n for _, n in per_case.values()), default=0),
                design_effect=clustered.design_effect,
                n_effective=clustered.n_effective,
                candidate_cost_usd=part_cost["cost_usd"],
                candidate_cost_unknown_calls=part_unknown["cost_usd"],
                candidate_cost_per_case=per_case_of["cost_usd"],
                judge_cost_usd=part_cost["judge_cost_usd"],
                judge_cost_unknown_calls=part_unknown["judge_cost_usd"],
                judge_cost_per_case=per_case_of["judge_cost_usd"],
            )
        )
    return out


def breakdown(rows: Iterable[Mapping[str, Any] | Any], order: list[str] | None = None) -> list[Breakdown]:
    """Failures per model by severity, category and failure mode; high severity first."""
    per: dict[str, Breakdown] = {}
    rows = list(rows)
    if order:
        rank = {k: i for i, k in enumerate(order)}
        rows.sort(key=lambda r: rank.get(_get(r, "model_key"), len(rank)))
    for r in rows:
        key = _get(r, "model_key")
        b = per.setdefault(key, Breakdown(key, by_severity={s: {"n": 0, "failed": 0, "errors": 0} for s in SEVERITIES}))
        st = _get(r, "status")
        sev, cat = _get(r, "severity"), _get(r, "category")
        for bucket in (b.by_severity.setdefault(sev, {"n": 0, "failed": 0, "errors": 0}),
                       b.by_category.setdefault(cat, {"n": 0, "failed": 0, "errors": 0})):
            bucket["n"] += 1
            if st == "failed":
                bucket["failed"] += 1
            elif st == "error":
                bucket["errors"] += 1
        if st == "failed":
            mode = _get(r, "judge_failure_mode")
            if mode and mode != "none":
                b.failure_modes[mode] = b.failure_modes.get(mode, 0) + 1
            elif _opt(r, "trajectory") and (tmode := tool_failure_mode({"trajectory": _opt(r, "trajectory"),
                                                                        "status": st})) is not None:  # wrong_tool, ...
                b.failure_modes[tmode] = b.failure_modes.get(tmode, 0) + 1
            elif _get(r, "rules_passed") is False:
                b.failure_modes["rule_violation"] = b.failure_modes.get("rule_violation", 0) + 1
            else:
                b.failure_modes["low_score"] = b.failure_modes.get("low_score", 0) + 1
        if _opt(r, "injection_suspected") and _get(r, "case_id") not in b.injection_suspected:
            b.injection_suspected.append(_get(r, "case_id"))
        if sev == "high" and st in ("failed", "error"):
            cid = _get(r, "case_id")
            if cid not in b.high_severity_failures:
                b.high_severity_failures.append(cid)
    for b in per.values():
        b.injection_suspected.sort()
        b.failure_modes = dict(Counter(b.failure_modes).most_common())
        b.by_category = dict(sorted(b.by_category.items(), key=lambda kv: (-(kv[1]["failed"] + kv[1]["errors"]), kv[0])))
    return list(per.values())


def totals(rows: Iterable[Mapping[str, Any] | Any]) -> dict[str, Any]:
    """Run-level totals stored with the run."""
    rows = list(rows)
    sums = summarize(rows)
    lat = [float(_get(r, "latency_ms")) for r in rows if _get(r, "latency_ms") is not None and _get(r, "error") is None]
    return {
        "results": len(rows),
        "errors": sum(s.errors for s in sums),
        "cost_usd": round(sum(s.cost_usd for s in sums), 6),
        "cost_unknown_calls": sum(s.cost_unknown_calls for s in sums),
        "candidate_cost_usd": round(sum(s.candidate_cost_usd for s in sums), 6),
        "judge_cost_usd": round(sum(s.judge_cost_usd for s in sums), 6),
        "prompt_tokens": sum(s.prompt_tokens for s in sums),
        "completion_tokens": sum(s.completion_tokens for s in sums),
        "judge_tokens": sum(int(_get(r, "judge_prompt_tokens") or 0) + int(_get(r, "judge_completion_tokens") or 0)
                            for r in rows),
        "latency_p50_ms": percentile(lat, 50),
        "latency_p95_ms": percentile(lat, 95),
        "retries": sum(s.retries for s in sums),
    }
