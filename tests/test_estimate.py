"""`benchrun run SPEC --estimate` / `benchrun.estimate`: counted before any call, checked against the real
run that follows on our test server.

The server is told to send no ``usage``, so the ledger records benchrun's own tiktoken counts of
exactly what was sent and received: the estimate's candidate prompt tokens must equal them, and
after one run (the history the expectation is based on) the expected cost must equal the cost of
an identical second run.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

import benchrun
from conftest import Project, fake_config
from fakeserver import FakeServer


def recorded(project: Project, run_id: str) -> dict[str, dict[str, Any]]:
    con = sqlite3.connect(project.ledger)
    out: dict[str, dict[str, Any]] = {}
    for key, pt, ct, cost, jpt, jct, jcost in con.execute(
            "SELECT model_key, SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), SUM(judge_prompt_tokens), "
            "SUM(judge_completion_tokens), SUM(judge_cost_usd) FROM result WHERE run_id = ? GROUP BY model_key",
            (run_id,)):
        out[key] = {"pt": pt, "ct": ct, "cost": cost, "jpt": jpt, "jct": jct, "jcost": jcost}
    con.close()
    return out


def test_estimate_calls_nothing_and_bounds_the_run_that_follows(project: Project, server: FakeServer) -> None:
    server.set_config(fake_config(no_usage=True))
    spec = project.setup(judge={"model": "openai/judge", "api_base": project.url, "sampling": {"max_tokens": 64},
                                "price": {"input_per_1m": 0.5, "output_per_1m": 0.5}})
    r, est = project.cli_json("run", str(spec), "--estimate")
    assert r.returncode == 0, r.stderr
    assert server.stats()["total"] == 0 and benchrun.Ledger(project.ledger).runs() == []  # nothing called or run
    cands = {c["key"]: c for c in est["candidates"]}
    assert [(c["calls"], c["cached_calls"]) for c in cands.values()] == [(6, 0), (6, 0)]
    assert est["judge"]["calls"] == 12 and est["judge"]["reask_calls_worst"] == 12 and est["calls"] == 24
    # no history yet: the expectation is unknown, the worst case is not
    assert est["expected_cost_usd"] is None and cands["good"]["completion_tokens_expected"] is None
    assert cands["good"]["completion_tokens_worst"] == 6 * 64
    assert est["judge"]["prompt_tokens_without_answers"] and not cands["good"]["prompt_tokens_without_answers"]

    result = benchrun.run(spec, ledger=project.ledger)
    assert server.stats()["completed"] == est["calls"]  # as many calls as estimated (no re-ask was needed)
    got = recorded(project, result.run_id)
    judge_pt = sum(g["jpt"] for g in got.values())
    judge_cost = sum(g["jcost"] for g in got.values())
    for key, c in cands.items():
        assert c["prompt_tokens"] == got[key]["pt"]  # the same tiktoken count of the same messages
        assert got[key]["ct"] <= c["completion_tokens_worst"]
        assert got[key]["cost"] <= c["worst_case_cost_usd"]
        assert c["price_source"] == "spec" and c["input_per_1m"] == 1.0 and c["output_per_1m"] == 2.0
    assert judge_pt <= est["judge"]["prompt_tokens_worst"]
    assert judge_cost <= est["judge"]["worst_case_cost_usd"]
    assert sum(g["cost"] + g["jcost"] for g in got.values()) <= est["worst_case_cost_usd"]

    # now the ledger has answers of these models: the expectation is the recorded answer length
    again = benchrun.estimate(spec, ledger=project.ledger, cache=False)
    assert server.stats()["completed"] == est["calls"]
    second = benchrun.run(spec, ledger=project.ledger, cache=False)  # the same deterministic answers, paid again
    got2 = recorded(project, second.run_id)
    for c in again.candidates:
        assert c.completion_tokens_expected == got2[c.key]["ct"]
        assert c.expected_cost_usd == pytest.approx(got2[c.key]["cost"], rel=1e-12)
    j = again.judge
    assert not j.prompt_tokens_without_answers
    actual_jpt = sum(g["jpt"] for g in got2.values())
    # the judge prompt holds the answer: counted apart, tokens can merge at the seam (at most 1 per call here)
    assert abs(j.prompt_tokens - actual_jpt) <= j.calls
    assert j.completion_tokens_expected == sum(g["jct"] for g in got2.values())
    assert j.expected_cost_usd == pytest.approx(sum(g["jcost"] for g in got2.values()), rel=0.01)

    # with the cache on, everything is cached now: nothing to pay, and a cached run indeed calls nothing
    cached = benchrun.estimate(spec, ledger=project.ledger)
    assert cached.calls == 0 and [c.cached_calls for c in cached.roles] == [6, 6, 12]
    assert cached.expected_cost_usd == 0.0 and cached.worst_case_cost_usd == 0.0
    before = server.stats()["completed"]
    benchrun.run(spec, ledger=project.ledger)
    assert server.stats()["completed"] == before


def test_unknown_price_stays_unknown_and_litellm_prices_are_used(project: Project, server: FakeServer) -> None:
    import litellm

    project.write_dataset()
    project.write_rubric()
    spec = project.write_spec(candidates=[
        {"model": "openai/gpt-4o-mini", "alias": "mini", "api_base": server.url},
        {"model": "openai/no-such-model-anywhere", "alias": "mystery", "api_base": server.url},
    ])
    est = benchrun.estimate(spec, ledger=project.ledger)
    mini, mystery = est.candidates
    info = litellm.model_cost["gpt-4o-mini"]
    assert mini.price_source == "litellm"
    assert mini.input_per_1m == pytest.approx(info["input_cost_per_token"] * 1e6, rel=1e-12)
    assert mini.output_per_1m == pytest.approx(info["output_cost_per_token"] * 1e6, rel=1e-12)
    assert mini.worst_case_cost_usd == pytest.approx(
        (mini.prompt_tokens * mini.input_per_1m + mini.completion_tokens_worst * mini.output_per_1m) / 1e6)
    assert mystery.price_source == "unknown" and mystery.worst_case_cost_usd is None
    assert est.worst_case_cost_usd is None and est.unknown_prices == ["mystery"]
    r = project.cli("run", str(spec), "--estimate")
    assert r.returncode == 0, r.stderr
    assert "price unknown for mystery" in r.stdout and "worst case unknown" in r.stdout
    assert "nothing was called" in r.stdout and server.stats()["total"] == 0


def test_estimate_without_max_tokens_has_no_worst_case(project: Project, server: FakeServer) -> None:
    spec = project.setup(sampling={"temperature": 0})
    est = benchrun.estimate(spec, ledger=project.ledger)
    assert all(c.completion_tokens_worst is None and c.worst_case_cost_usd is None for c in est.candidates)
    assert est.judge.prompt_tokens_worst is None  # the judge reads answers of unbounded length
    assert any("no worst case" in n for n in est.notes)


def test_estimate_refuses_resume_and_bad_specs(project: Project, server: FakeServer) -> None:
    r = project.cli("run", "--resume", "abc", "--estimate")
    assert r.returncode == 2 and "--estimate needs a run spec file" in r.stderr
    project.write_dataset()
    project.write_rubric()
    bad = project.write_spec(samples=0)
    r = project.cli("run", str(bad), "--estimate")
    assert r.returncode == 2 and r.stderr.startswith(f"error: {bad}")
    assert server.stats()["total"] == 0
