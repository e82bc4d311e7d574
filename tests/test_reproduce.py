"""`benchrun reproduce` end to end against the real test server and a real SQLite ledger."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from scipy import stats

from benchrun.analysis.compare import Outcome, paired_compare
from conftest import BAD, GOOD, JUDGE_FAIL, JUDGE_PASS, Project, fake_config, make_cases
from fakeserver import FakeServer


def completed(server: FakeServer) -> int:
    return int(server.stats()["completed"])


def n_runs(project: Project) -> int:
    con = sqlite3.connect(project.ledger)
    n = con.execute("SELECT COUNT(*) FROM run").fetchone()[0]
    con.close()
    return int(n)


def outcomes(project: Project, run_id: str, key: str) -> list[Outcome]:
    con = sqlite3.connect(project.ledger)
    out = [Outcome(c, i, None if st == "error" else st == "passed", sc, cat, sev)
           for c, i, st, sc, cat, sev in con.execute(
               "SELECT case_id, sample_index, status, judge_score, category, severity FROM result "
               "WHERE run_id = ? AND model_key = ?", (run_id, key))]
    con.close()
    return out


@pytest.fixture
def original(project: Project) -> str:
    spec = project.setup()
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    return str(summary["conditions"]["run_id"])


def test_identical_server_reproduces_with_fresh_calls(project: Project, server: FakeServer, original: str) -> None:
    before = completed(server)
    r, d = project.cli_json("reproduce", original)
    assert r.returncode == 0, r.stderr
    assert completed(server) - before == 24  # 12 fresh answers + 12 fresh judgements: the cache was not read
    assert d["reproduced"] is True and d["verdict"].startswith("reproduced within noise")
    assert d["mode"] == "fresh calls" and d["original_run"] == original
    assert {c["kind"]: c["status"] for c in d["file_checks"]} == {"spec": "same", "dataset": "same", "rubric": "same"}
    for m in d["models"]:
        assert m["flips"] == [] and m["answers_changed"] == 0 and m["answers_compared"] == 6
        assert m["comparison"]["difference"] == 0
        assert m["resolved_models"]["changed"] is False
        assert m["cost_usd"]["delta"] == pytest.approx(0, abs=1e-12)  # same tokens, same prices
    assert d["conditions"]["score_relevant_differences"] == 0
    # the reproduction is a run of its own, linked to the original by a stored report
    new = d["reproduction_run"]
    con = sqlite3.connect(project.ledger)
    subj, summ = con.execute("SELECT subject, summary FROM report WHERE kind='reproduction' AND run_id=?",
                             (new,)).fetchone()
    h_old, h_new = (con.execute("SELECT spec_hash FROM run WHERE id=?", (x,)).fetchone()[0] for x in (original, new))
    con.close()
    assert subj == original and summ == d["verdict"] and h_old == h_new

    # the provider now reports a new model version, answers unchanged: still reproduced, version change shown
    server.set_config(fake_config(resolved_model="good-2026-02-01"))
    r, d = project.cli_json("reproduce", original)
    assert r.returncode == 0 and d["reproduced"] is True
    changed = {m["model_key"]: m["resolved_models"] for m in d["models"]}
    assert changed["good"] == {"original": ["good"], "reproduction": ["good-2026-02-01"], "changed": True}
    t = project.cli("reproduce", original)
    assert "model version changed" in t.stdout and "reproduced within noise" in t.stdout


def test_from_cache_makes_no_calls(project: Project, server: FakeServer, original: str) -> None:
    before = completed(server)
    r, d = project.cli_json("reproduce", original, "--from-cache")
    assert r.returncode == 0, r.stderr
    assert completed(server) == before and server.stats()["total"] == before
    assert d["reproduced"] is True and d["mode"] == "from-cache"
    assert any("replayed from the response cache" in n for n in d["notes"])

    # a cache entry gone: refuse before running anything, say which call is missing
    con = sqlite3.connect(project.ledger)
    con.execute("DELETE FROM cache WHERE key IN (SELECT key FROM cache WHERE model = 'openai/judge' LIMIT 1)")
    con.commit()
    con.close()
    runs = n_runs(project)
    r = project.cli("reproduce", original, "--from-cache")
    assert r.returncode == 2
    assert "1 call(s)" in r.stderr and "not in the cache" in r.stderr and "judge verdict" in r.stderr
    assert n_runs(project) == runs and completed(server) == before


def test_changed_dataset_file_runs_from_snapshot(project: Project, server: FakeServer, original: str) -> None:
    project.write_dataset(make_cases(8))  # two more cases on disk than the run recorded
    r, d = project.cli_json("reproduce", original)
    assert r.returncode == 0, r.stderr
    checks = {c["kind"]: c for c in d["file_checks"]}
    assert checks["dataset"]["status"] == "changed" and checks["rubric"]["status"] == "same"
    assert checks["spec"]["status"] == "changed"  # the spec hash covers the dataset hash
    assert "re-running from the stored snapshot" in checks["dataset"]["message"]
    assert "differ" in d["ran_from"]
    con = sqlite3.connect(project.ledger)
    n, h = con.execute("SELECT (SELECT COUNT(*) FROM result WHERE run_id = r.id), dataset_hash FROM run r WHERE id=?",
                       (d["reproduction_run"],)).fetchone()
    h0 = con.execute("SELECT dataset_hash FROM run WHERE id=?", (original,)).fetchone()[0]
    con.close()
    assert n == 12 and h == h0  # the recorded 6 cases, not today's 8
    t = project.cli("reproduce", original)
    assert "CHANGED since the run" in t.stdout

    (project.root / "datasets" / "mini.yaml").unlink()
    r, d = project.cli_json("reproduce", original)
    assert r.returncode == 0 and {c["kind"]: c["status"] for c in d["file_checks"]}["dataset"] == "missing"


def test_changed_model_answer_is_not_reproduced(project: Project, server: FakeServer, original: str) -> None:
    server.set_config({"rules": [
        {"model": "judge", "contains": "I have refunded", "reply": JUDGE_FAIL},
        {"model": "judge", "reply": JUDGE_PASS},
        {"model": "good", "reply": BAD},  # good now answers like bad
        {"model": "bad", "reply": BAD},
    ]})
    r, d = project.cli_json("reproduce", original)
    assert r.returncode == 1, r.stderr
    assert d["reproduced"] is False and d["verdict"].startswith("NOT reproduced")
    m = {x["model_key"]: x for x in d["models"]}
    good = m["good"]
    assert len(good["flips"]) == 6 and good["answers_changed"] == 6
    assert [f["severity"] for f in good["flips"]][:2] == ["high", "high"]
    assert all(f["a_passed"] is False and f["b_passed"] is True for f in good["flips"])
    exp = paired_compare(outcomes(project, d["reproduction_run"], "good"), outcomes(project, original, "good"),
                         name_a="reproduction", name_b="original")
    assert good["comparison"]["difference"] == pytest.approx(exp.difference) == pytest.approx(-1.0)
    assert exp.mcnemar is not None and good["comparison"]["mcnemar"]["p_value"] == pytest.approx(exp.mcnemar.p_value)
    # two models, so two pass-rate tests: Holm doubles the smaller p (2/2^6 = 0.031 -> 0.0625); with only 6 cases
    # the pass-rate move alone is not beyond noise at the family level, but every judge score moved by the same amount
    assert good["p_adjusted"]["pass_rate"] == pytest.approx(min(1.0, 2 * stats.binomtest(0, 6).pvalue))
    assert not any("pass rate moved" in x for x in good["reasons"])
    assert any("mean judge score moved" in x for x in good["reasons"])
    assert m["bad"]["reproduced"] is True and m["bad"]["flips"] == []
    t = project.cli("reproduce", original)
    assert t.returncode == 1 and "NOT reproduced" in t.stdout and "pass→fail" in t.stdout


def test_reproduce_unknown_run_is_usage_error(project: Project) -> None:
    project.setup()
    r = project.cli("reproduce", "nope")
    assert r.returncode == 2 and "no run 'nope'" in r.stderr


_REPLAYED = ("case_id", "model_key", "sample_index", "status", "passed", "judge_score", "judge_pass", "judge_reason",
             "judge_failure_mode", "judge_raw", "judge_reasks", "judge_error", "judge_cache_keys", "messages",
             "response_text", "rules", "rules_passed", "error")


def result_rows(project: Project, run_id: str) -> list[tuple[object, ...]]:
    con = sqlite3.connect(project.ledger)
    out = con.execute(f"SELECT {', '.join(_REPLAYED)} FROM result WHERE run_id = ? "  # fixed column names
                      "ORDER BY case_id, model_key, sample_index", (run_id,)).fetchall()
    con.close()
    return out


def test_from_cache_replays_reasked_verdicts_exactly(project: Project, server: FakeServer) -> None:
    """A judge whose first reply never parses: the replay serves the re-ask from the cache and every row comes out
    as the original's (the pre-flight's parse of the first reply, handed to the runner, words the same re-ask)."""
    server.set_config(fake_config(rules=[
        {"model": "judge", "contains": "Your reply was not valid", "reply": JUDGE_PASS},
        {"model": "judge", "reply": "Looks fine to me!"},
        {"model": "good", "reply": GOOD}, {"model": "bad", "reply": BAD},
    ]))
    spec = project.setup()
    _r, summary = project.cli_json("run", str(spec))
    original = str(summary["conditions"]["run_id"])
    before = completed(server)
    r, d = project.cli_json("reproduce", original, "--from-cache")
    assert r.returncode == 0, r.stderr
    assert completed(server) == before and d["reproduced"] is True
    old, new = result_rows(project, original), result_rows(project, d["reproduction_run"])
    assert len(old) == 12 and new == old
    assert all(row[_REPLAYED.index("judge_reasks")] == 1 for row in new)  # every verdict came from its re-ask
    assert {(row[_REPLAYED.index("model_key")], row[_REPLAYED.index("status")]) for row in new} == {
        ("good", "passed"), ("bad", "failed")}


def test_from_cache_checks_the_reask_a_structured_judge_needs(project: Project, server: FakeServer) -> None:
    """With structured output a reply holding two JSON objects is invalid (re-asked), though a free-text judge
    would read its last object: the pre-flight parses as the runner does, so a missing re-ask is a miss, not a call."""
    server.set_config(fake_config(rules=[
        {"model": "judge", "contains": "Your reply was not valid", "reply": JUDGE_PASS},
        {"model": "judge", "reply": '{"note": "draft"} ' + JUDGE_PASS},
        {"model": "good", "reply": GOOD}, {"model": "bad", "reply": BAD},
    ]))
    judge = {"model": "openai/judge", "api_base": project.url, "structured_output": "json_schema",
             "price": {"input_per_1m": 0.5, "output_per_1m": 0.5}}
    spec = project.setup(judge=judge)
    _r, summary = project.cli_json("run", str(spec))
    original = str(summary["conditions"]["run_id"])
    assert {row[_REPLAYED.index("judge_reasks")] for row in result_rows(project, original)
            if row[_REPLAYED.index("model_key")] == "good"} == {1}
    con = sqlite3.connect(project.ledger)
    con.execute("DELETE FROM cache WHERE model = 'openai/judge' AND key IN "
                "(SELECT json_extract(judge_cache_keys, '$[1]') FROM result WHERE run_id = ? AND model_key = 'good' "
                "ORDER BY case_id LIMIT 1)", (original,))
    assert con.total_changes == 1
    con.commit()
    con.close()
    before, runs = completed(server), n_runs(project)
    r = project.cli("reproduce", original, "--from-cache")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "1 call(s)" in r.stderr and "judge re-ask" in r.stderr
    assert n_runs(project) == runs and completed(server) == before


def test_from_cache_walks_only_the_selected_cases(project: Project, server: FakeServer) -> None:
    """A run of a `select`ed subset replays from the cache: the cases it never asked are not misses."""
    spec = project.setup(select={"limit": 2})
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    run_id = str(summary["conditions"]["run_id"])
    before = server.stats()["total"]
    r, d = project.cli_json("reproduce", run_id, "--from-cache")
    assert r.returncode == 0, r.stderr
    assert d["reproduced"] is True and d["mode"] == "from-cache" and server.stats()["total"] == before
    assert [m["comparison"]["difference"] for m in d["models"]] == [0, 0]
    con = sqlite3.connect(project.ledger)
    per_run = dict(con.execute("SELECT run_id, COUNT(*) FROM result GROUP BY run_id").fetchall())
    con.close()
    assert per_run[run_id] == 4 and per_run[d["reproduction_run"]] == 4  # 2 cases × 2 candidates, each time


def test_a_replay_from_the_cache_does_not_load_the_http_client(project: Project, server: FakeServer,
                                                               original: str) -> None:
    """A replay makes no call, so it does not pay for importing aiohttp (~0.1 s of CPU, issue 15)."""
    code = ("import sys\nfrom benchrun.cli import main\ntry:\n"
            f"    main(['reproduce', {original!r}, '--from-cache', '--json'])\nexcept SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\nprint('MODS', ' '.join(sorted(sys.modules)))")
    before = server.stats()["total"]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                       cwd=project.root, env={**os.environ, "BENCHRUN_LEDGER": str(project.ledger)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"reproduced": true' in r.stdout and server.stats()["total"] == before
    mods = set(next(x for x in r.stdout.splitlines() if x.startswith("MODS ")).split()[1:])
    assert "benchrun.runner" in mods and "benchrun.openai_http" in mods
    assert sorted(m for m in mods if m.split(".")[0] in {"aiohttp", "litellm"}) == []
