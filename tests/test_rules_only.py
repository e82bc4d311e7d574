"""Judge-optional runs: rubric and judge left out of a spec, or the judge used only for cases without rules.

End to end through the real CLI, litellm and our OpenAI-compatible server into a real SQLite ledger.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from conftest import Project, make_cases
from fakeserver import FakeServer


def rules_only_spec(project: Project, cases: list[dict[str, Any]] | None = None, **overrides: Any) -> Path:
    project.write_dataset(cases or make_cases())
    p = project.write_spec(**overrides)
    spec = yaml.safe_load(p.read_text())
    del spec["rubric"], spec["judge"]
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


def rows(project: Project, run_id: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    out = [dict(r) for r in con.execute("SELECT * FROM result WHERE run_id = ? ORDER BY case_id, model_key", (run_id,))]
    con.close()
    return out


def n_runs(project: Project) -> int:
    if not project.ledger.exists():
        return 0
    con = sqlite3.connect(project.ledger)
    try:
        return int(con.execute("SELECT COUNT(*) FROM run").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_rules_only_run_one_call_per_case_and_everything_downstream(project: Project, server: FakeServer,
                                                                    tmp_path: Path) -> None:
    spec = rules_only_spec(project)
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    run_id = summary["conditions"]["run_id"]
    # one call per case and model, none to a judge
    by_model = server.stats()["by_model"]
    assert by_model == {"good": 6, "bad": 6}, by_model
    models = {m["model_key"]: m for m in summary["models"]}
    assert (models["good"]["passed"], models["good"]["failed"]) == (6, 0)  # GOOD never says "I have refunded"
    assert (models["bad"]["passed"], models["bad"]["failed"]) == (0, 6)
    assert summary["scoring"] == {"method": "scored by rules only", "results_by_method": {"rules": 12}}
    assert summary["conditions"]["judge"] is None and summary["conditions"]["rubric"] is None
    assert summary["judge_calibration"] is None
    res = rows(project, run_id)
    assert {x["scored_by"] for x in res} == {"rules"}
    assert all(x["judge_raw"] is None and x["judge_score"] is None for x in res)
    assert {x["status"] for x in res if x["model_key"] == "bad"} == {"failed"}
    bad_rules = json.loads(next(x for x in res if x["model_key"] == "bad")["rules"])
    assert bad_rules == [{"rule": "must_not 'I have refunded'", "passed": False, "detail": "found"}]
    bd = {b["model_key"]: b for b in summary["breakdown"]}
    assert bd["bad"]["failure_modes"] == {"rule_violation": 6} and bd["bad"]["do_not_ship"]

    # the terminal summary says how it was scored and drops the judge column
    r = project.cli("runs", "show", run_id)
    assert r.returncode == 0, r.stderr
    assert "scored by rules only" in r.stdout
    assert "mean judge" not in r.stdout and "uncalibrated" not in r.stdout and "(uncal.)" not in r.stdout

    # quality gates
    assert project.cli("runs", "show", run_id, "--fail-on", "high").returncode == 1
    assert project.cli("runs", "show", run_id, "--min-pass-rate", "0.5").returncode == 1
    # the cache serves a second run: no new call
    r2, summary2 = project.cli_json("run", str(spec))
    assert r2.returncode == 0 and server.stats()["total"] == 12
    run2 = summary2["conditions"]["run_id"]

    # compare, diff, reproduce, shortlist, report
    r, cmp = project.cli_json("compare", "good", "bad", "--run", run_id)
    assert r.returncode == 0, r.stderr
    assert cmp["comparison"]["pass_rate_a"] == 1.0 and cmp["comparison"]["pass_rate_b"] == 0.0
    assert not any("DIFFERENT SCORING" in w for w in cmp["warnings"])
    r, d = project.cli_json("diff", run_id, run2)
    assert r.returncode == 0, r.stderr
    assert d["score_relevant_differences"] == 0
    r, rep = project.cli_json("reproduce", run_id, "--from-cache")
    assert rep["verdict"].startswith("reproduced"), rep["verdict"]
    assert r.returncode == 0, (r.stdout[-800:], r.stderr[-800:])
    assert server.stats()["total"] == 12
    r, sl = project.cli_json("shortlist", run_id)
    assert r.returncode == 0, r.stderr
    assert {c["candidate"]["judge_calibration"] for c in sl["ranked"] + sl["excluded"]} == {"scored by rules only"}
    html = tmp_path / "report.html"
    r = project.cli("report", run_id, "--html", str(html))
    assert r.returncode == 0, r.stderr
    page = html.read_text()
    assert "scored by rules only" in page and "mean judge" not in page
    assert "scored by rules" in page  # the drill-down names the method of each result

    # a rules-only run copies to another ledger with its results (and the answers' cache entries)
    dst = tmp_path / "copy.sqlite"
    r, stats = project.cli_json("ledger", "copy", "--from", str(project.ledger), "--to", str(dst), "--run", run_id)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(dst)
    copied = con.execute("SELECT scored_by, COUNT(*) FROM result GROUP BY scored_by").fetchall()
    n_cache = con.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
    con.close()
    assert copied == [("rules", 12)] and n_cache == 12, (copied, n_cache, stats)


def test_judged_run_compared_with_rules_only_run_warns_different_scoring(project: Project, server: FakeServer) -> None:
    judged = project.setup(name="judged")
    r, s1 = project.cli_json("run", str(judged))
    assert r.returncode == 0, r.stderr
    assert {x["scored_by"] for x in rows(project, s1["conditions"]["run_id"])} == {"rules+judge"}
    assert s1["scoring"]["method"] == "judge"
    plain = rules_only_spec(project, name="plain")
    r, s2 = project.cli_json("run", str(plain))
    assert r.returncode == 0, r.stderr
    a, b = s1["conditions"]["run_id"], s2["conditions"]["run_id"]
    r, cmp = project.cli_json("compare", f"{a}:good", f"{b}:good")
    assert r.returncode == 0, r.stderr
    assert any("DIFFERENT SCORING" in w and "rules only" in w for w in cmp["warnings"])
    r, d = project.cli_json("diff", a, b)
    assert any(x["section"] == "judge" and x["field"] == "model" and x["a"] == "openai/judge" and x["b"] is None
               for x in d["differences"])


def test_rules_only_case_without_rule_is_bad_input(project: Project, server: FakeServer) -> None:
    cases = make_cases(3)
    cases[1].pop("must_not")
    spec = rules_only_spec(project, cases)
    r = project.cli("run", str(spec))
    assert r.returncode == 2
    assert "case case-001" in r.stderr and "no rule" in r.stderr and "mini.yaml" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert server.stats()["total"] == 0 and n_runs(project) == 0
    assert project.cli("validate", str(spec)).returncode == 2


def test_rubric_without_judge_and_judge_when_without_judge_are_bad_input(project: Project, server: FakeServer) -> None:
    project.setup()
    spec = project.write_spec()
    d = yaml.safe_load(spec.read_text())
    del d["judge"]
    spec.write_text(yaml.safe_dump(d, sort_keys=False))
    r = project.cli("validate", str(spec))
    assert r.returncode == 2 and "'rubric' is set but 'judge' is not" in r.stderr, r.stderr
    spec = rules_only_spec(project, judge_when="no_rules")
    r = project.cli("validate", str(spec))
    assert r.returncode == 2 and "judge_when only applies" in r.stderr, r.stderr


def test_judge_when_no_rules_judges_only_cases_without_rules(project: Project, server: FakeServer) -> None:
    cases = make_cases(4)
    for c in cases[2:]:
        c.pop("must_not")  # case-002, case-003: no rule, so the judge scores them
    project.write_dataset(cases)
    project.write_rubric()
    spec = project.write_spec(judge_when="no_rules")
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    by_model = server.stats()["by_model"]
    assert by_model == {"good": 4, "bad": 4, "judge": 4}, by_model  # 2 judged cases × 2 models
    res = {(x["case_id"], x["model_key"]): x for x in rows(project, summary["conditions"]["run_id"])}
    for cid in ("case-000", "case-001"):
        for m in ("good", "bad"):
            assert res[(cid, m)]["scored_by"] == "rules" and res[(cid, m)]["judge_raw"] is None
    for cid in ("case-002", "case-003"):
        for m in ("good", "bad"):
            assert res[(cid, m)]["scored_by"] == "judge" and res[(cid, m)]["judge_score"] is not None
    # the judge fails BAD (it claims a refund); the rules fail it too
    assert all(res[(c, "bad")]["status"] == "failed" for c in ("case-000", "case-001", "case-002", "case-003"))
    assert all(res[(c, "good")]["status"] == "passed" for c in ("case-000", "case-001", "case-002", "case-003"))
    assert summary["scoring"] == {"method": "mixed", "results_by_method": {"judge": 4, "rules": 4}}
    # the spec hash of a judged spec without judge_when is unchanged by the new optional fields
    _r, v = project.cli_json("validate", str(spec))
    assert v["calls_planned"] == 4 * 2 + 2 * 2


def test_judged_spec_dump_has_no_new_fields(project: Project) -> None:
    """A judged spec written before rubric/judge became optional dumps (and so hashes) exactly as before."""
    from benchrun.spec import load_run_spec

    spec = project.setup()
    loaded = load_run_spec(spec)
    d = loaded.spec.model_dump(mode="json", by_alias=True)
    assert "judge_when" not in d and d["judge"]["model"] == "openai/judge" and d["rubric"] == "../rubrics/mini.yaml"
    assert loaded.snapshot()["rubric"]["name"] == "mini"


def test_migration_adds_scored_by_to_an_old_ledger(tmp_path: Path) -> None:
    from benchrun.ledger import Ledger

    path = tmp_path / "old.sqlite"
    Ledger(f"sqlite:///{path}").engine.dispose()
    con = sqlite3.connect(path)  # make it look like a ledger written before migration 2
    con.execute("ALTER TABLE result DROP COLUMN scored_by")
    con.execute("DELETE FROM schema_version WHERE version = 2")
    con.commit()
    assert "scored_by" not in {r[1] for r in con.execute("PRAGMA table_info(result)")}
    con.close()
    led = Ledger(f"sqlite:///{path}")
    from benchrun.ledger.migrations import MIGRATIONS

    assert led.schema_version() == max(m.version for m in MIGRATIONS)
    con = sqlite3.connect(path)
    assert "scored_by" in {r[1] for r in con.execute("PRAGMA table_info(result)")}
    assert (2,) in set(con.execute("SELECT version FROM schema_version"))
    con.close()
