"""Failure paths say what happened, once, and send people the right way (issue 14, item 8)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from benchrun.errors import tidy_provider_error
from conftest import Project, fake_config
from fakeserver import FakeServer

DEAD = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, connections are refused


def test_tidy_provider_error() -> None:
    raw = ("gave up after 3 attempts: InternalServerError: litellm.InternalServerError: InternalServerError: "
           "OpenAIException - Connection error.")
    assert tidy_provider_error(raw) == "gave up after 3 attempts: InternalServerError: Connection error."
    assert tidy_provider_error("RateLimitError: litellm.RateLimitError: slow down") == "RateLimitError: slow down"
    assert tidy_provider_error("the judge's answer is not JSON") == "the judge's answer is not JSON"


def test_unreachable_model_gets_no_verdict_and_honest_advice(tmp_path: Path) -> None:
    with FakeServer(fake_config()) as srv:
        project = Project(tmp_path, srv.url)
        project.write_dataset()
        project.write_rubric()
        spec = project.write_spec(candidates=[
            {"model": "openai/good", "alias": "good", "api_base": srv.url},
            {"model": "openai/bad", "alias": "bad", "api_base": DEAD}])
        r = project.cli("run", str(spec))
        assert r.returncode == 3, r.stderr
        bad_row = next(ln for ln in r.stdout.splitlines() if ln.lstrip("│| ").startswith("bad "))
        assert "no answers: 6 errors" in bad_row and "[0.0%, 100.0%]" not in bad_row
        assert "DO NOT SHIP" not in r.stdout  # the only high-severity "failures" are errors of a model that never answered
        assert "bad  no answers: 6 errors" in r.stdout
        both = r.stdout + r.stderr
        assert both.count("Connection error") == 1 and "litellm." not in both and "OpenAIException" not in both
        # a resume reuses the stored snapshot: the advice says when it helps and when to start a new run
        assert "start a new run" in r.stderr and f"benchrun run {spec}" in r.stderr and "--resume" in r.stderr
        run_id = r.stdout.split()[1]
        shown = project.cli("runs", "show", run_id).stdout  # the ledger keeps why it stopped
        assert "unreachable" in shown and "DO NOT SHIP" not in shown
        out = tmp_path / "r.html"
        assert project.cli("report", run_id, "--html", str(out)).returncode == 0
        html = out.read_text()
        assert "no answers: 6 errors" in html and "DO NOT SHIP" not in html


def test_unset_key_variable_writes_nothing_and_validate_warns(project: Project) -> None:
    spec = project.setup(judge={"model": "openai/judge", "api_base": project.url, "api_key_env": "BENCHRUN_T_NO_KEY"})
    r = project.cli("run", str(spec))
    assert r.returncode == 2
    assert "BENCHRUN_T_NO_KEY is not set" in r.stderr and "nothing was run or recorded" in r.stderr
    if project.ledger.exists():
        con = sqlite3.connect(project.ledger)
        try:
            tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            assert "run" not in tables or con.execute("SELECT count(*) FROM run").fetchone()[0] == 0
        finally:
            con.close()
    v = project.cli("validate", str(spec))
    assert v.returncode == 0 and "valid" in v.stdout
    assert "warning: model openai/judge: environment variable BENCHRUN_T_NO_KEY is not set" in v.stderr
    _, info = project.cli_json("validate", str(spec))
    assert len(info["warnings"]) == 1
    r = project.cli("run", str(spec), env={"BENCHRUN_T_NO_KEY": "sk-test-123"})
    assert r.returncode == 0, r.stderr
    assert project.cli_json("validate", str(spec), env={"BENCHRUN_T_NO_KEY": "sk-test-123"})[1]["warnings"] == []
