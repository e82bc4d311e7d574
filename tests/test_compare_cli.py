"""`benchrun compare / diff / shortlist` end to end: real CLI, real server, real SQLite; numbers checked
against compare.py on rows read straight from SQLite and against statsmodels."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
import yaml

import benchrun.report.shortlist
from benchrun.analysis.compare import Outcome, breakdown_compare, flips, paired_compare, power_sentence
from conftest import BAD, GOOD, JUDGE_FAIL, JUDGE_PASS, Project, make_cases
from fakeserver import FakeServer


def mixed_config(**extra: Any) -> dict[str, Any]:
    """good fails only ticket 7; bad passes only ticket 7 (so 9 + 1 discordant cases out of 10)."""
    cfg: dict[str, Any] = {
        "rules": [
            {"model": "judge", "contains": "I have refunded", "reply": JUDGE_FAIL},
            {"model": "judge", "reply": JUDGE_PASS},
            {"model": "good", "contains": "(ticket 7)", "reply": BAD},
            {"model": "good", "reply": GOOD},
            {"model": "bad", "contains": "(ticket 7)", "reply": GOOD},
            {"model": "bad", "reply": BAD},
        ],
        "default_reply": "OK",
    }
    cfg.update(extra)
    return cfg


def db_outcomes(project: Project, run_id: str, key: str) -> list[Outcome]:
    con = sqlite3.connect(project.ledger)
    out = [Outcome(c, i, None if st == "error" else st == "passed", sc, cat, sev)
           for c, i, st, sc, cat, sev in con.execute(
               "SELECT case_id, sample_index, status, judge_score, category, severity FROM result "
               "WHERE run_id = ? AND model_key = ? ORDER BY case_id, sample_index", (run_id, key))]
    con.close()
    return out


def run_spec(project: Project, spec: Any, *extra: str) -> str:
    r, summary = project.cli_json("run", str(spec), *extra)
    assert r.returncode == 0, r.stderr
    return summary["conditions"]["run_id"]


@pytest.fixture
def mixed(project: Project, server: FakeServer) -> Project:
    server.set_config(mixed_config())
    project.write_dataset(make_cases(10))
    project.write_rubric()
    project.write_spec()
    return project


def test_compare_within_run_matches_compare_py_and_statsmodels(mixed: Project) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    run_id = run_spec(mixed, mixed.root / "runs" / "mini.yaml")
    r, d = mixed.cli_json("compare", "good", "bad", "--run", run_id[:12])
    assert r.returncode == 0, r.stderr
    oa, ob = db_outcomes(mixed, run_id, "good"), db_outcomes(mixed, run_id, "bad")
    exp = paired_compare(oa, ob, name_a="good", name_b="bad")
    c = d["comparison"]
    assert c["n_pairs"] == 10
    assert c["pass_rate_a"] == pytest.approx(exp.pass_rate_a) and c["pass_rate_b"] == pytest.approx(exp.pass_rate_b)
    assert c["difference"] == pytest.approx(exp.difference)
    assert exp.bootstrap is not None and exp.se_interval is not None and exp.mcnemar is not None
    assert c["bootstrap"]["low"] == pytest.approx(exp.bootstrap.low)
    assert c["bootstrap"]["high"] == pytest.approx(exp.bootstrap.high)
    assert c["se_interval"]["low"] == pytest.approx(exp.se_interval.low)
    # McNemar against statsmodels on the 2x2 table counted independently from SQLite
    pa = {o.case_id: o.passed for o in oa}
    pb = {o.case_id: o.passed for o in ob}
    table = [[sum(pa[k] and pb[k] for k in pa), sum(pa[k] and not pb[k] for k in pa)],
             [sum(not pa[k] and pb[k] for k in pa), sum(not pa[k] and not pb[k] for k in pa)]]
    assert table[0][1] == c["mcnemar"]["a_only"] and table[1][0] == c["mcnemar"]["b_only"]
    assert c["mcnemar"]["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert d["larger_than_noise"] == exp.larger_than_noise and d["verdict"] == exp.verdict
    # judge score difference equals a paired t-test over the same rows
    from scipy.stats import ttest_rel

    sa = [o.score for o in oa]
    sb = [o.score for o in ob]
    assert c["score"]["difference"] == pytest.approx(sum(sa) / 10 - sum(sb) / 10)
    assert c["score"]["p_value"] == pytest.approx(ttest_rel(sa, sb).pvalue)
    # flips: all ten, high severity first
    exp_flips = flips(oa, ob)
    assert [f["case_id"] for f in d["flips"]] == [f.case_id for f in exp_flips]
    assert [f["severity"] for f in d["flips"]][:4] == ["high"] * 4
    # per category / severity equal breakdown_compare
    groups = breakdown_compare(oa, ob, name_a="good", name_b="bad")
    assert [(g["dimension"], g["group"], g["comparison"]["difference"]) for g in d["by_group"]] == \
        [(g.dimension, g.group, pytest.approx(g.comparison.difference)) for g in groups]
    assert [(g["flagged"], g["p_adjusted"]) for g in d["by_group"]] == [(g.flagged, g.p_adjusted) for g in groups]
    assert d["multi_sample"] is None and d["warnings"] == []

    # the terminal rendering says the same things
    t = mixed.cli("compare", "good", "bad", "--run", run_id)
    assert t.returncode == 0, t.stderr
    assert exp.verdict.split(";")[0][:40] in " ".join(t.stdout.split())
    assert "Flips (10)" in t.stdout and "McNemar" in t.stdout


def test_compare_reverse_and_power_sentence_when_within_noise(mixed: Project, server: FakeServer) -> None:
    # good2 is the same model as good: no discordant case -> within noise, with a power sentence
    spec = mixed.write_spec(candidates=[
        {"model": "openai/good", "alias": "good", "api_base": mixed.url},
        {"model": "openai/good", "alias": "good2", "api_base": mixed.url, "sampling": {"temperature": 0.0, "seed": 2}},
    ])
    run_id = run_spec(mixed, spec)
    r, d = mixed.cli_json("compare", "good2", "good", "--run", run_id)
    assert r.returncode == 0, r.stderr
    assert d["larger_than_noise"] is False and d["flips"] == []
    c = d["comparison"]
    assert d["power"]["sentence"] == power_sentence(10, c["pass_rate_a"], c["pass_rate_b"])


def test_compare_across_runs_same_and_different_dataset(mixed: Project, server: FakeServer) -> None:
    spec = mixed.root / "runs" / "mini.yaml"
    run1 = run_spec(mixed, spec)
    server.set_config(mixed_config(rules=[
        {"model": "judge", "contains": "I have refunded", "reply": JUDGE_FAIL},
        {"model": "judge", "reply": JUDGE_PASS},
        {"model": "good", "regex": r"\(ticket [0-2]\)", "reply": BAD},
        {"model": "good", "reply": GOOD},
        {"model": "bad", "reply": BAD},
    ]))
    run2 = run_spec(mixed, spec, "--no-cache")
    r, d = mixed.cli_json("compare", f"{run2}:good", f"{run1}:good")
    assert r.returncode == 0, r.stderr
    assert d["warnings"] == [] and d["dataset"]["same_hash"] is True
    exp = paired_compare(db_outcomes(mixed, run2, "good"), db_outcomes(mixed, run1, "good"))
    assert d["comparison"]["difference"] == pytest.approx(exp.difference) == pytest.approx(-0.2)
    assert d["a"]["name"] != d["b"]["name"]

    # a new dataset version: drop two cases, change one, add one -> only shared ids, loudly
    cases = make_cases(10)[2:]
    cases[0]["input"] = "Completely different question (ticket 2)."
    cases.append({**make_cases(11)[10]})
    mixed.write_dataset(cases)
    run3 = run_spec(mixed, spec)
    r, d = mixed.cli_json("compare", f"{run3}:good", f"{run1}:good")
    assert r.returncode == 0, r.stderr
    assert d["warnings"] and d["warnings"][0].startswith("DIFFERENT DATASETS")
    assert d["dataset"]["shared"] == 8 and d["dataset"]["only_a"] == 1 and d["dataset"]["only_b"] == 2
    assert d["dataset"]["shared_but_changed"] == ["case-002"]
    assert d["comparison"]["n_pairs"] == 8
    t = mixed.cli("compare", f"{run3}:good", f"{run1}:good")
    assert "WARNING: DIFFERENT DATASETS" in t.stderr

    # bad references are one-line usage errors (exit 2)
    bad = mixed.cli("compare", "good", "nope", "--run", run1)
    assert bad.returncode == 2 and "has no model 'nope'" in bad.stderr
    amb = mixed.cli("compare", run1, run2)
    assert amb.returncode == 2 and "has 2 models" in amb.stderr


def test_compare_several_samples(mixed: Project) -> None:
    from benchrun.analysis.compare import multi_sample_summary

    spec = mixed.write_spec(samples=3)
    run_id = run_spec(mixed, spec)
    r, d = mixed.cli_json("compare", "good", "bad", "--run", run_id)
    assert r.returncode == 0, r.stderr
    assert "cluster-robust" in d["comparison"]["se_method"]
    ms = d["multi_sample"]["good"]
    exp = multi_sample_summary(db_outcomes(mixed, run_id, "good"), (1, 3, 5))
    assert ms["pass_at_k"]["1"] == pytest.approx(exp.pass_at_k[1])
    assert ms["pass_hat_k"]["3"] == pytest.approx(exp.pass_hat_k[3])
    assert ms["pass_at_k"]["5"] is None  # no case has 5 samples
    assert ms["mean_consistency"] == pytest.approx(exp.mean_consistency)
    t = mixed.cli("compare", "good", "bad", "--run", run_id)
    assert "pass^3" in t.stdout


def test_diff_shows_prompt_and_sampling_changes(mixed: Project) -> None:
    spec = mixed.root / "runs" / "mini.yaml"
    run1 = run_spec(mixed, spec)
    raw = yaml.safe_load(spec.read_text())
    raw["prompt"]["system"] = "You are a careful billing assistant."
    raw["sampling"]["temperature"] = 0.7
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    run2 = run_spec(mixed, spec)
    r, d = mixed.cli_json("diff", run1, run2)
    assert r.returncode == 0, r.stderr
    fields = {(x["section"], x["field"]): (x["a"], x["b"]) for x in d["differences"]}
    assert fields[("prompts", "good.system")] == ("You are a billing assistant.", "You are a careful billing assistant.")
    assert ("prompts", "good.hash") in fields and ("prompts", "bad.hash") in fields
    assert fields[("sampling", "good.temperature")] == (0, 0.7)
    assert ("dataset", "hash") not in fields and "dataset" in d["same_sections"] and "judge" in d["same_sections"]
    assert d["score_relevant_differences"] >= 5
    t = mixed.cli("diff", run1, run2)
    assert t.returncode == 0 and "good.temperature" in t.stdout and "can change scores" in t.stdout
    same = mixed.cli_json("diff", run1, run1)[1]
    assert same["differences"] == []


def test_shortlist_limits_ranks_and_ties(mixed: Project) -> None:
    # 20 cases: good and bad disagree on all of them (19 + 1). With the fixture's 10 (9 + 1, McNemar p = 0.021)
    # Holm over the 3 pairs of candidates could not call them different (adjusted p = 0.064), rightly.
    mixed.write_dataset(make_cases(20))
    spec = mixed.write_spec(candidates=[
        {"model": "openai/good", "alias": "good", "api_base": mixed.url,
         "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
        {"model": "openai/good", "alias": "good2", "api_base": mixed.url,
         "price": {"input_per_1m": 3.0, "output_per_1m": 6.0}},
        {"model": "openai/bad", "alias": "bad", "api_base": mixed.url,
         "price": {"input_per_1m": 0.1, "output_per_1m": 0.1}},
    ])
    run_id = run_spec(mixed, spec)
    r, d = mixed.cli_json("shortlist", run_id)
    assert r.returncode == 0, r.stderr
    ranked = {x["candidate"]["key"]: x for x in d["ranked"]}
    # good and good2 answer identically: tied, same rank, cheaper first; bad is worse beyond noise
    assert ranked["good"]["rank"] == ranked["good2"]["rank"] == 1 and ranked["bad"]["rank"] == 3
    assert [x["candidate"]["key"] for x in d["ranked"]][:2] == ["good", "good2"]
    assert ranked["good"]["tied_with"] == ["good2"] and ranked["bad"]["tied_with"] == []
    # every pair is tested with the exact paired test and Holm-adjusted over the 3 pairs (statsmodels independently)
    from statsmodels.stats.multitest import multipletests

    keys = ["good", "good2", "bad"]
    pairs = [(x, y) for i, x in enumerate(keys) for y in keys[i + 1:]]
    raw = [paired_compare(db_outcomes(mixed, run_id, x), db_outcomes(mixed, run_id, y)).test.p_value for x, y in pairs]
    _, holm, _, _ = multipletests(raw, method="holm")
    got = {frozenset((t["a"], t["b"])): t for t in d["comparisons"]}
    for (x, y), p, adj in zip(pairs, raw, holm, strict=True):
        t = got[frozenset((x, y))]
        assert t["p_value"] == pytest.approx(p) and t["p_adjusted"] == pytest.approx(adj)
        assert t["tied"] is bool(adj >= 0.05) and "McNemar" in t["method"]
    assert not got[frozenset(("good", "bad"))]["tied"]
    # cost per 1k: candidate calls only, from SQLite
    con = sqlite3.connect(mixed.ledger)
    costs = [c for (c,) in con.execute("SELECT cost_usd FROM result WHERE run_id = ? AND model_key = 'good'", (run_id,))]
    con.close()
    assert ranked["good"]["candidate"]["cost_per_1k_cases"] == pytest.approx(1000 * sum(costs) / len(costs))
    assert ranked["good"]["candidate"]["local"] is True  # the server is on 127.0.0.1
    assert ranked["good"]["candidate"]["input_price_per_1m"] == 1.0 and ranked["good"]["candidate"]["price_source"] == "spec"
    assert ranked["good"]["candidate"]["judge_calibration"] == "uncalibrated"
    assert ranked["good"]["candidate"]["coverage_note"].startswith("no coverage report")
    assert ranked["bad"]["pareto"] and ranked["good"]["pareto"] and not ranked["good2"]["pareto"]

    r, d = mixed.cli_json("shortlist", run_id, "--max-high-severity", "0", "--min-pass-rate", "0.5")
    assert [x["candidate"]["key"] for x in d["ranked"]] == ["good", "good2"]
    (ex,) = d["excluded"]
    assert ex["candidate"]["key"] == "bad"
    assert any("7 high-severity failure(s)" in x for x in ex["reasons"])
    assert any("pass rate 5.0% below the minimum 50.0%" in x for x in ex["reasons"])

    r = mixed.cli("shortlist", run_id, "--max-cost-per-1k", "0.000001")
    assert r.returncode == 1 and "no candidate meets the limits" in r.stderr
    assert "excluded good:" in " ".join(r.stdout.split())

    r, d = mixed.cli_json("shortlist", run_id, "--weights", "quality=1,cost=1")
    assert d["method"].startswith("weighted") and all(x["score"] is not None for x in d["ranked"])
    bad_w = mixed.cli("shortlist", run_id, "--weights", "quality=high")
    assert bad_w.returncode == 2 and "--weights" in bad_w.stderr


def test_shortlist_across_runs_and_unknown_model_info(mixed: Project) -> None:
    spec = mixed.root / "runs" / "mini.yaml"
    run1 = run_spec(mixed, spec)
    run2 = run_spec(mixed, spec)
    r, d = mixed.cli_json("shortlist", run1, run2)
    assert r.returncode == 0, r.stderr
    keys = {x["candidate"]["key"] for x in d["ranked"]}
    assert keys == {f"{run1}:good", f"{run1}:bad", f"{run2}:good", f"{run2}:bad"}
    c = next(x["candidate"] for x in d["ranked"] if x["candidate"]["key"] == f"{run1}:good")
    assert c["context_window"] is None  # litellm does not know "openai/good"
    assert d["warnings"] == []
    t = mixed.cli("shortlist", run1, run2)
    assert t.returncode == 0 and "Shortlist" in t.stdout


def test_model_info_for_a_known_model() -> None:
    import litellm

    info = benchrun.report.shortlist.model_info("gpt-4o-mini")
    exp = litellm.get_model_info("gpt-4o-mini")
    assert info["context_window"] == exp["max_input_tokens"]
    assert info["input_per_1m"] == pytest.approx(exp["input_cost_per_token"] * 1e6)
    assert benchrun.report.shortlist.model_info("local/smollm2-135m")["context_window"] is None
    assert benchrun.report.shortlist.is_local("openai/x", "http://localhost:8080/v1")
    assert not benchrun.report.shortlist.is_local("gpt-4o-mini", None)


def test_json_output_is_strict_json(mixed: Project) -> None:
    run_id = run_spec(mixed, mixed.root / "runs" / "mini.yaml")
    r = mixed.cli("compare", "good", "bad", "--run", run_id, "--json")
    json.loads(r.stdout, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(f"non-JSON constant {c}")))
