"""`benchrun sweep`: setup sensitivity end to end (a 2 x 2 sweep against our server) and the pure rule."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchrun.analysis.sweep import setup_sensitivity, unexplained_differences
from conftest import BAD, GOOD, Project, fake_config
from fakeserver import FakeServer
from test_rules_only import n_runs

TERSE = "Be terse."


def sweep_project(project: Project, server: FakeServer) -> Path:
    """Rules-only spec; with the prompt file v2 ("Be terse.") model good gets cases 0 and 1 wrong."""
    server.set_config(fake_config(rules=[
        {"model": "good", "regex": r"Be terse[\s\S]*ticket [01]\)", "reply": BAD},
        {"model": "good", "reply": GOOD}, {"model": "bad", "reply": BAD}]))
    project.write_dataset()
    p = project.write_spec()
    spec = yaml.safe_load(p.read_text())
    del spec["rubric"], spec["judge"]
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    (project.root / "runs" / "v2.yaml").write_text(yaml.safe_dump(
        {"version": "2", "system": TERSE, "template": "{{ input }}"}))
    return p


def test_two_by_two_sweep_end_to_end(project: Project, server: FakeServer) -> None:
    spec = sweep_project(project, server)
    r, d = project.cli_json("sweep", str(spec), "--vary", "prompt=1,v2.yaml", "--vary", "temperature=0,0.7")
    assert r.returncode == 0, r.stderr
    assert [s["setup"] for s in d["setups"]] == [
        {"prompt": "1", "temperature": "0"}, {"prompt": "1", "temperature": "0.7"},
        {"prompt": "v2.yaml", "temperature": "0"}, {"prompt": "v2.yaml", "temperature": "0.7"}]
    assert server.stats()["total"] == 4 * 12  # each setup is its own run of 6 cases x 2 models
    # every run is a normal run, tagged in its snapshot, with the setup's temperature and prompt
    con = sqlite3.connect(project.ledger)
    snaps = {rid: json.loads(s) for rid, s in con.execute("SELECT id, spec_snapshot FROM run")}
    con.close()
    assert {s["sweep"]["id"] for s in snaps.values()} == {d["sweep_id"]}
    for st in d["setups"]:
        sp = snaps[st["run_id"]]["spec"]
        assert sp["sampling"]["temperature"] == float(st["setup"]["temperature"])
        assert sp["prompt"]["system"] == (TERSE if st["setup"]["prompt"] == "v2.yaml" else
                                          "You are a billing assistant.")
        assert st["models"]["good"]["passed"] == (4 if st["setup"]["prompt"] == "v2.yaml" else 6)
        assert st["models"]["bad"]["passed"] == 0
    sens = {m["model_key"]: m for m in d["sensitivity"]["models"]}
    assert sens["good"]["mean"] == pytest.approx((1 + 1 + 4 / 6 + 4 / 6) / 4)
    assert sens["good"]["range"] == pytest.approx(2 / 6)
    assert sens["good"]["sd"] == pytest.approx(float(np.std([1, 1, 4 / 6, 4 / 6], ddof=1)))
    assert sens["bad"]["range"] == 0 and sens["bad"]["sd"] == 0
    assert d["sensitivity"]["best"] == "good" and d["sensitivity"]["larger_than_setup_noise"] is True

    # diff between two runs of the sweep names the one factor that varied
    ids = [s["run_id"] for s in d["setups"]]
    r, df = project.cli_json("diff", ids[0], ids[1])
    assert df["sweep"]["varied"] == ["temperature"] and df["sweep"]["other_differences"] == []
    r = project.cli("diff", ids[0], ids[2])
    assert "the one factor that varied is prompt (1 -> v2.yaml)" in " ".join(r.stdout.split())
    r, df = project.cli_json("diff", ids[0], ids[3])
    assert df["sweep"]["varied"] == ["prompt", "temperature"]

    # the table in the terminal; a re-run sweep is served from the cache; --show reports a recorded sweep
    r = project.cli("sweep", str(spec), "--vary", "prompt=1,v2.yaml", "--vary", "temperature=0,0.7")
    assert r.returncode == 0, r.stderr
    assert "Spread across setups" in r.stdout and "more than either model moves" in " ".join(r.stdout.split())
    assert r.stderr.count("setup prompt=") == 4 and "temperature=0.7: run " in r.stderr  # one line per run
    assert server.stats()["total"] == 48
    r = project.cli("runs", "show", ids[1])
    assert f"sweep {d['sweep_id']}  setup prompt=1 temperature=0.7" in r.stdout
    r, shown = project.cli_json("sweep", "--show", d["sweep_id"])
    assert r.returncode == 0 and shown["sensitivity"] == d["sensitivity"]


def test_sweep_refuses_runs_that_differ_beyond_its_factors(project: Project, server: FakeServer) -> None:
    import benchrun
    from benchrun.errors import UsageError
    from benchrun.sweep_runs import apply_setup

    spec = sweep_project(project, server)
    res = benchrun.sweep(spec, {"temperature": [0, 0.7]}, ledger=project.ledger)
    assert len(res.run_ids) == 2 and res.stopped is None
    # a run tagged into the same sweep but on a changed dataset (one case's input edited)
    loaded = benchrun.load_spec(spec)
    odd = apply_setup(loaded, {"temperature": "0"})
    odd.dataset.cases[0].input = "Something else entirely?"
    odd.sweep = {"id": res.sweep_id, "factors": ["temperature"], "setup": {"temperature": "0.7"}}
    benchrun.run(odd, ledger=project.ledger)
    with pytest.raises(UsageError, match="besides the factors it varies"):
        benchrun.sweep_report(res.sweep_id, ledger=project.ledger)
    r = project.cli("sweep", "--show", res.sweep_id)
    assert r.returncode == 2 and "refusing to compare" in r.stderr and "Traceback" not in r.stderr


def test_sweep_budget_covers_the_whole_sweep(project: Project, server: FakeServer) -> None:
    spec = sweep_project(project, server)
    # one run of 12 answers costs about $0.0006 fresh; $0.0008 cannot pay for two
    r = project.cli("sweep", str(spec), "--vary", "temperature=0,0.7,1", "--budget-usd", "0.0008", "--no-cache")
    assert r.returncode == 3, (r.stdout[-1500:], r.stderr[-1500:])
    assert "sweep stopped early" in r.stderr
    con = sqlite3.connect(project.ledger)
    spent = con.execute("SELECT SUM(cost_usd) FROM result WHERE cached = 0").fetchone()[0]
    statuses = [s for (s,) in con.execute("SELECT status FROM run ORDER BY created_at")]
    con.close()
    assert spent <= 0.0008 and statuses[0] == "completed" and len(statuses) == 2 and statuses[1] != "completed"
    r = project.cli("sweep", str(spec), "--vary", "temperature=0,0.7", "--budget-usd", "0")
    assert r.returncode == 2 and "more than $0" in r.stderr


@pytest.mark.parametrize("vary,what", [("colour=red,blue", "unknown factor 'colour'"),
                                       ("temperature", "not FACTOR=VALUE"),
                                       ("temperature=hot,0", "not a number"),
                                       ("fewshot=0,50", "fewshot needs 50 exemplars"),
                                       ("prompt=1,nope", "neither the spec's prompt version")])
def test_bad_factors_are_bad_input_with_nothing_recorded(project: Project, server: FakeServer, vary: str,
                                                         what: str) -> None:
    spec = sweep_project(project, server)
    r = project.cli("sweep", str(spec), "--vary", vary)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert what in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert n_runs(project) == 0 and server.stats()["total"] == 0


def test_fewshot_factor_sends_exemplars(project: Project, server: FakeServer) -> None:
    spec = sweep_project(project, server)  # make_cases gives every case an ideal answer (the exemplars)
    r, d = project.cli_json("sweep", str(spec), "--vary", "fewshot=0,2")
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(project.ledger)
    n_msgs = {rid: len(json.loads(m)) for rid, m in con.execute(
        "SELECT run_id, messages FROM result WHERE case_id = 'case-000' AND model_key = 'good'")}
    con.close()
    ids = [s["run_id"] for s in d["setups"]]
    assert n_msgs[ids[0]] == 2 and n_msgs[ids[1]] == 2 + 2 * 2  # system + question; plus two exemplar turns
    r, df = project.cli_json("diff", ids[0], ids[1])
    assert df["sweep"]["varied"] == ["fewshot"] and df["sweep"]["other_differences"] == []


# --------------------------------------------------------------------------- the pure rule


def test_setup_sensitivity_gap_within_noise() -> None:
    out = setup_sensitivity({"a": {"s1": 0.80, "s2": 0.70}, "b": {"s1": 0.72, "s2": 0.74}, "c": {"s1": 0.1, "s2": None}})
    assert out["best"] == "a" and out["second"] == "b"
    assert out["gap"] == pytest.approx(0.75 - 0.73)
    assert out["larger_than_setup_noise"] is False and "NOT more than setup noise" in out["verdict"]
    c = next(m for m in out["models"] if m["model_key"] == "c")
    assert c["range"] is None and c["setups"] == 1  # one scored setup: no spread, not ranked


def test_unexplained_differences_attribute_fields_to_factors() -> None:
    diffs = [{"section": "sampling", "field": "good.temperature", "affects_scores": True},
             {"section": "prompts", "field": "good.hash", "affects_scores": True},
             {"section": "dataset", "field": "hash", "affects_scores": True},
             {"section": "spec", "field": "budget_usd", "affects_scores": False}]
    assert unexplained_differences(diffs, ["temperature", "prompt"]) == ["dataset.hash"]
    assert unexplained_differences(diffs[:2], ["temperature"]) == ["prompts.good.hash"]


@pytest.mark.parametrize("k", [2, 3, 4])
def test_setup_noise_flag_on_pure_noise_fires_rarely(k: int) -> None:
    """Two equally good models, k setups that change nothing: the pass rates differ by sampling noise
    alone, and the flag must fire at most 5% of the time (the range alone fires ~20% with k = 2)."""
    rng = np.random.default_rng(7 + k)
    fired, range_only, reps = 0, 0, 4000
    for _ in range(reps):
        n = {m: {f"s{i}": float(rng.integers(30, 80)) for i in range(k)} for m in ("a", "b")}
        scores = {m: {s: float(rng.binomial(int(v), 0.7) / v) for s, v in n[m].items()} for m in n}
        fired += bool(setup_sensitivity(scores, n)["larger_than_setup_noise"])
        range_only += bool(setup_sensitivity(scores)["larger_than_setup_noise"])
    assert fired / reps <= 0.05, fired / reps
    if k == 2:
        assert range_only / reps > 0.1  # why the sampling condition is there


def test_setup_noise_flag_finds_a_real_gap() -> None:
    """A 15-point gap with setups that move each model by a few points is found most of the time."""
    rng = np.random.default_rng(3)
    found, reps = 0, 1000
    for _ in range(reps):
        n = {m: {f"s{i}": 200.0 for i in range(4)} for m in ("a", "b")}
        true = {"a": [0.85, 0.83, 0.86, 0.84], "b": [0.70, 0.69, 0.71, 0.68]}
        scores = {m: {f"s{i}": float(rng.binomial(200, p) / 200) for i, p in enumerate(true[m])} for m in n}
        found += bool(setup_sensitivity(scores, n)["larger_than_setup_noise"])
    assert found / reps > 0.8, found / reps


def test_prompt_sweep_refuses_a_candidate_with_its_own_prompt(project: Project, server: FakeServer) -> None:
    spec = sweep_project(project, server)
    d = yaml.safe_load(spec.read_text())
    d["candidates"][1]["prompt"] = {"version": "x", "template": "{{ input }}"}
    spec.write_text(yaml.safe_dump(d, sort_keys=False))
    r = project.cli("sweep", str(spec), "--vary", "prompt=1,v2.yaml")
    assert r.returncode == 2 and "model bad" in r.stderr and "its own prompt" in r.stderr
    assert n_runs(project) == 0


def test_judged_spec_sweeps_the_candidates_not_the_judge(project: Project, server: FakeServer) -> None:
    spec = project.setup()  # with rubric and judge
    r, d = project.cli_json("sweep", str(spec), "--vary", "temperature=0,0.7")
    assert r.returncode == 0, r.stderr
    ids = [s["run_id"] for s in d["setups"]]
    r, df = project.cli_json("diff", *ids)
    assert df["sweep"]["varied"] == ["temperature"] and df["sweep"]["other_differences"] == []
    assert not [x for x in df["differences"] if x["section"] == "judge"]  # the judge's sampling is its own
    assert d["sensitivity"]["best"] == "good"
