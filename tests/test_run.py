"""End-to-end runs through the real CLI, litellm and our OpenAI-compatible server, into a real SQLite ledger."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import BAD, GOOD, JUDGE_PASS, Project, fake_config, make_cases
from fakeserver import FakeServer


def rows(project: Project, run_id: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    out = [dict(r) for r in con.execute("SELECT * FROM result WHERE run_id = ? ORDER BY case_id, model_key, sample_index",
                                        (run_id,))]
    con.close()
    return out


def run_row(project: Project, run_id: str) -> dict[str, Any]:
    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    r = dict(con.execute("SELECT * FROM run WHERE id = ?", (run_id,)).fetchone())
    con.close()
    return r


def test_run_records_everything(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    run_id = summary["conditions"]["run_id"]
    models = {m["model_key"]: m for m in summary["models"]}
    assert models["good"]["passed"] == 6 and models["good"]["failed"] == 0
    assert models["bad"]["passed"] == 0 and models["bad"]["failed"] == 6
    # Wilson 95% for 6/6: lower bound 0.6097 (published: Newcombe 1998 table / scipy binomtest proportion_ci)
    from scipy.stats import binomtest

    ci = binomtest(6, 6).proportion_ci(0.95, method="wilson")
    assert abs(models["good"]["pass_rate"]["low"] - ci.low) < 1e-9
    bd = {b["model_key"]: b for b in summary["breakdown"]}
    assert bd["bad"]["do_not_ship"] and bd["bad"]["high_severity_failures"] == ["case-000", "case-003"]
    assert bd["bad"]["failure_modes"] == {"unsafe_account_action": 6}
    assert not bd["good"]["do_not_ship"]

    res = rows(project, run_id)
    assert len(res) == 12
    one = next(x for x in res if x["model_key"] == "good")
    sent = json.loads(one["messages"])
    assert sent[0] == {"role": "system", "content": "You are a billing assistant."}
    assert sent[1]["content"].startswith("I was charged twice")
    assert one["response_text"] == GOOD
    # server counts whitespace words: the ledger must hold the provider's numbers, not estimates
    assert one["prompt_tokens"] == sum(len(m["content"].split()) for m in sent)
    assert one["completion_tokens"] == len(GOOD.split()) and one["tokens_estimated"] == 0
    assert abs(one["cost_usd"] - (one["prompt_tokens"] * 1.0 + one["completion_tokens"] * 2.0) / 1e6) < 1e-12
    assert one["latency_ms"] > 0 and one["judge_score"] == 5 and one["status"] == "passed"
    # what the server saw equals what the ledger says was sent
    seen = [q for q in server.requests() if q.model == "good"]
    assert any(q.messages == sent for q in seen)

    run = run_row(project, run_id)
    assert run["status"] == "completed"
    snap = json.loads(run["spec_snapshot"])
    assert len(snap["dataset"]["cases"]) == 6 and snap["rubric"]["name"] == "mini"
    assert run["dataset_hash"] == summary["conditions"]["dataset"]["hash"]
    assert json.loads(run["package_versions"])["litellm"]
    assert run["judge_model"] == "openai/judge" and len(run["judge_prompt_hash"]) == 64
    assert {m["key"]: m["resolved_models"] for m in json.loads(run["models"])} == {"good": ["good"], "bad": ["bad"]}
    totals = json.loads(run["totals"])
    assert totals["results"] == 12 and totals["errors"] == 0 and totals["cost_usd"] > 0

    # runs list / show read the same ledger
    _r2, listed = project.cli_json("runs", "list")
    assert listed[0]["id"] == run_id
    _r3, shown = project.cli_json("runs", "show", run_id[:10])
    assert shown["models"] == summary["models"]


def test_cache_hits_and_no_cache(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    assert project.cli("run", str(spec)).returncode == 0
    first = server.stats()["completed"]
    assert first == 24  # 12 answers + 12 judgements
    _r, summary = project.cli_json("run", str(spec))
    assert server.stats()["completed"] == first  # every call served from the ledger's cache
    res = rows(project, summary["conditions"]["run_id"])
    assert all(x["cached"] for x in res)
    assert [m["passed"] for m in summary["models"]] == [6, 0]
    assert project.cli("run", str(spec), "--no-cache").returncode == 0
    assert server.stats()["completed"] == 2 * first


def test_a_cached_rerun_reads_answers_and_verdicts_in_bulk(project: Project, server: FakeServer) -> None:
    """With the cache warm, the runner reads the pending answers AND their judge verdicts ahead, one bulk
    query each (not one lookup per verdict); entries handed over (`cache_entries`, what reproduce's pre-flight
    read) are not read again at all. The results are the first run's, every call served from the cache."""
    import asyncio

    from sqlalchemy import event

    from benchrun import runner
    from benchrun.ledger import Ledger
    from benchrun.reproduce import cache_misses
    from benchrun.spec import load_run_spec

    spec = project.setup()
    _r, first = project.cli_json("run", str(spec))
    calls = server.stats()["completed"]
    loaded = load_run_spec(spec)
    led = Ledger(str(project.ledger))
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM cache" in statement:
            reads.append(statement)

    event.listen(led.engine, "before_cursor_execute", seen)
    run_id = runner.create_run(loaded, led)
    assert asyncio.run(runner.Runner(loaded, led, run_id).execute()).status == "completed"
    assert len(reads) == 2 and all(" IN (" in q for q in reads), reads  # answers, then verdicts: 24 cells' worth
    keep = ("case_id", "model_key", "sample_index", "status", "passed", "judge_score", "response_text", "judge_raw")
    again = [{k: r[k] for k in keep} for r in rows(project, run_id)]
    assert again == [{k: r[k] for k in keep} for r in rows(project, first["conditions"]["run_id"])]
    assert all(r["cached"] for r in rows(project, run_id))
    everything: dict[str, Any] = {}
    assert cache_misses(loaded, led, found=everything) == (0, [])  # what `reproduce --from-cache` checks first
    assert len(everything) == 24
    reads.clear()
    run_id = runner.create_run(loaded, led)
    r = runner.Runner(loaded, led, run_id, cache_entries=everything)
    assert asyncio.run(r.execute()).status == "completed"
    assert reads == []  # nothing read twice
    assert [{k: x[k] for k in keep} for x in rows(project, run_id)] == again
    assert server.stats()["completed"] == calls  # no call made
    led.close()


def test_a_replay_reads_each_runs_results_once(project: Project, server: FakeServer) -> None:
    """`reproduce --from-cache` reads the reproduction's result rows once (to record its totals) and hands them to
    the report (`RunOutcome.rows`), which equals the rows read afterwards; the report is the same as one built
    from a fresh read."""
    from sqlalchemy import event

    from benchrun.ledger import Ledger
    from benchrun.reproduce import reproduce, reproduction_diff

    spec = project.setup()
    _r, first = project.cli_json("run", str(spec))
    run_id = first["conditions"]["run_id"]
    led = Ledger(str(project.ledger))
    full_reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        s = " ".join(statement.split())
        if s.startswith("SELECT result.id,") and s.endswith("FROM result WHERE result.run_id = ? ORDER BY result.id"):
            full_reads.append(s)  # `Ledger.result_rows`: every column of a run's results

    event.listen(led.engine, "before_cursor_execute", seen)
    diff = reproduce(led, run_id, from_cache=True)
    event.remove(led.engine, "before_cursor_execute", seen)
    assert diff["reproduced"], diff["verdict"]
    assert len(full_reads) == 2, full_reads  # the reproduction's (its totals) and the original's (the report)
    new_id = diff["reproduction_run"]
    again = reproduction_diff(led, led.get_run(run_id), led.get_run(new_id), from_cache=True)
    assert again == {k: v for k, v in diff.items() if k in again}
    # the rows are kept only when asked for: a plain run does not hold a big run's rows after its totals
    from benchrun import runner
    from benchrun.execution import execute_run
    from benchrun.spec import load_run_spec

    loaded = load_run_spec(spec)
    plain = execute_run(loaded, led, runner.create_run(loaded, led))
    kept_id = runner.create_run(loaded, led)
    kept = execute_run(loaded, led, kept_id, keep_rows=True)
    assert plain.status == kept.status == "completed" and plain.rows is None
    assert kept.rows == led.result_rows(kept_id) and len(kept.rows) == len(led.result_rows(run_id))
    led.close()


def test_samples_are_independent_in_cache(project: Project, server: FakeServer) -> None:
    spec = project.setup(samples=3)
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0
    res = rows(project, summary["conditions"]["run_id"])
    assert len(res) == 6 * 2 * 3
    answers = [q for q in server.requests() if q.model in ("good", "bad")]
    assert len(answers) == 36  # three real calls per case and model, not one call served thrice


def test_retries_recorded_and_retry_after_honoured(project: Project, server: FakeServer) -> None:
    server.set_config(fake_config(faults=[
        {"kind": "429", "model": "good", "first_n": 1, "retry_after": 0.3},
        {"kind": "503", "model": "bad", "first_n": 2},
    ]))
    spec = project.setup()
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    res = rows(project, summary["conditions"]["run_id"])
    good = [x for x in res if x["model_key"] == "good"]
    bad = [x for x in res if x["model_key"] == "bad"]
    assert all(x["retries"] == 1 and x["status"] == "passed" for x in good)
    attempt = json.loads(good[0]["attempts"])[0]
    assert "RateLimitError" in attempt["error"] and attempt["wait_s"] >= 0.3  # waited what the server asked
    assert all(x["retries"] == 2 and x["status"] == "failed" for x in bad)
    # the final results equal a fault-free run
    assert [m["passed"] for m in summary["models"]] == [6, 0]


def test_exhausted_retries_are_errors_never_passes(project: Project, server: FakeServer) -> None:
    server.set_config(fake_config(faults=[{"kind": "500", "model": "good", "contains": "ticket 1)", "first_n": 99}]))
    spec = project.setup()
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0
    good = next(m for m in summary["models"] if m["model_key"] == "good")
    assert good["errors"] == 1 and good["passed"] == 5
    res = [x for x in rows(project, summary["conditions"]["run_id"]) if x["status"] == "error"]
    assert len(res) == 1 and res[0]["passed"] is None and res[0]["retries"] == 2
    assert "gave up after 3 attempts" in res[0]["error"]
    # a gate counts the error as not passed
    r2 = project.cli("runs", "show", summary["conditions"]["run_id"], "--min-pass-rate", "0.9")
    assert r2.returncode == 1 and "good: pass rate 83.3%" in r2.stderr


def test_judge_reask_then_error(project: Project, server: FakeServer) -> None:
    server.set_config(fake_config(rules=[
        {"model": "judge", "contains": "Your reply was not valid", "reply": JUDGE_PASS},
        {"model": "judge", "reply": "Looks fine to me!"},
        {"model": "good", "reply": GOOD}, {"model": "bad", "reply": BAD},
    ]))
    spec = project.setup()
    _, summary = project.cli_json("run", str(spec))
    res = rows(project, summary["conditions"]["run_id"])
    good = [x for x in res if x["model_key"] == "good"]
    assert all(x["judge_reasks"] == 1 and x["status"] == "passed" for x in good)
    # now the judge never answers in the schema: a recorded judge error, never a pass
    server.set_config(fake_config(rules=[{"model": "judge", "reply": '{"score": 9}'},
                                         {"model": "good", "reply": GOOD}, {"model": "bad", "reply": BAD}]))
    _r, summary = project.cli_json("run", str(spec), "--no-cache")  # the cache would replay the good verdicts
    res = rows(project, summary["conditions"]["run_id"])
    good = [x for x in res if x["model_key"] == "good"]
    assert all(x["status"] == "error" and x["passed"] is None for x in good)
    assert "after one re-ask" in good[0]["judge_error"]
    bad = [x for x in res if x["model_key"] == "bad"]
    assert all(x["status"] == "failed" for x in bad)  # its rule failed: the outcome is known without the judge


def test_estimated_tokens_and_unknown_cost(project: Project, server: FakeServer) -> None:
    server.set_config(fake_config(no_usage=True))
    project.write_dataset()
    project.write_rubric()
    spec = project.write_spec(candidates=[{"model": "openai/good", "alias": "good", "api_base": project.url}],
                              judge={"model": "openai/judge", "api_base": project.url})
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0
    res = rows(project, summary["conditions"]["run_id"])
    assert all(x["tokens_estimated"] == 1 and x["prompt_tokens"] > 0 and x["completion_tokens"] > 0 for x in res)
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base")
    assert res[0]["completion_tokens"] == len(enc.encode(GOOD))
    assert all(x["cost_usd"] is None for x in res)  # nobody knows a price for "openai/good": unknown, not zero
    m = summary["models"][0]
    assert m["cost_unknown_calls"] == 12 and m["cost_per_case"] is None


def test_known_model_cost_from_litellm_map(project: Project, server: FakeServer) -> None:
    project.write_dataset(make_cases(2))
    project.write_rubric()
    spec = project.write_spec(candidates=[{"model": "openai/gpt-4o-mini", "api_base": project.url}],
                              judge={"model": "openai/judge", "api_base": project.url})
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0
    res = rows(project, summary["conditions"]["run_id"])
    for x in res:  # gpt-4o-mini list price: $0.15 / 1M input, $0.60 / 1M output
        assert abs(x["cost_usd"] - (x["prompt_tokens"] * 0.15 + x["completion_tokens"] * 0.60) / 1e6) < 1e-12


def test_budget_stops_cleanly(project: Project, server: FakeServer) -> None:
    spec = project.setup(budget_usd=0.001, judge={"model": "openai/judge", "api_base": project.url,
                                                   "price": {"input_per_1m": 0.5, "output_per_1m": 0.5},
                                                   "sampling": {"max_tokens": 50}})
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 3
    assert "budget cap" in r.stderr and "--resume" in r.stderr
    run_id = summary["conditions"]["run_id"]
    run = run_row(project, run_id)
    assert run["status"] == "budget_exceeded"
    spent = sum((x["cost_usd"] or 0) + (x["judge_cost_usd"] or 0) for x in rows(project, run_id))
    assert 0 < spent <= 0.001
    assert len(rows(project, run_id)) < 12


def test_exit_codes_and_one_line_errors(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    r = project.cli("run", str(spec), "--fail-on", "high")
    assert r.returncode == 1 and "bad: 2 high-severity" in r.stderr
    bad = project.root / "runs" / "broken.yaml"
    bad.write_text("name: x\ncandidates: [\n")
    r = project.cli("run", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "broken.yaml:line" in r.stderr and "Traceback" not in r.stderr
    r = project.cli("runs", "show", "nope")
    assert r.returncode == 2 and "no run 'nope'" in r.stderr
    r = project.cli("runs", "show")  # usage errors: exit 2, one message, the help hint
    assert r.returncode == 2 and "Missing argument" in r.stderr and "Traceback" not in r.stderr
    # unreachable provider: exit 3, resumable
    project.write_spec(name="dead", candidates=[{"model": "openai/good", "alias": "good",
                                                 "api_base": "http://127.0.0.1:9/v1"}],
                       retries={"attempts": 1, "backoff_base_s": 0, "backoff_max_s": 0})
    r = project.cli("run", str(project.root / "runs" / "dead.yaml"))
    assert r.returncode == 3 and "unreachable" in r.stderr and "--resume" in r.stderr


def test_bad_input_leaves_ledger_unchanged(project: Project) -> None:
    spec = project.setup()
    assert project.cli("run", str(spec)).returncode == 0
    before = project.ledger.read_bytes()
    cases = make_cases(3)
    cases[1]["severity"] = "urgent"
    project.write_dataset(cases)
    r = project.cli("run", str(spec))
    assert r.returncode == 2 and "case case-001" in r.stderr
    con = sqlite3.connect(project.ledger)
    assert con.execute("SELECT COUNT(*) FROM run").fetchone()[0] == 1
    con.close()
    assert len(before) > 0


def test_secrets_never_stored_or_printed(project: Project, server: FakeServer) -> None:
    key = "sk-test-SUPERSECRET-0123456789"
    project.write_dataset()
    project.write_rubric()
    spec = project.write_spec(candidates=[{"model": "openai/good", "alias": "good", "api_base": project.url,
                                           "api_key_env": "MY_PROVIDER_API_KEY"}])
    env = {"MY_PROVIDER_API_KEY": key, "OPENAI_API_KEY": key + "-2"}
    r = project.cli("run", str(spec), "--json", env=env)
    assert r.returncode == 0
    blob = project.ledger.read_bytes()
    for f in project.root.rglob("ledger.sqlite*"):
        blob += f.read_bytes()
    assert key.encode() not in blob and key not in r.stdout + r.stderr  # stored or printed nowhere
    # a missing key names the variable, not a value
    r = project.cli("run", str(spec), env={"MY_PROVIDER_API_KEY": ""})
    assert r.returncode == 2 and "MY_PROVIDER_API_KEY is not set" in r.stderr


def test_resume_after_kill_pays_nothing_twice(tmp_path: Path) -> None:
    """SIGKILL a run mid-way, resume it: every cell once, no completed call paid twice."""
    cfg = fake_config(latency_ms=150)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    port_file = tmp_path / "port"
    srv = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fakeserver.py"), "--port", "0",
                            "--config", str(cfg_path), "--port-file", str(port_file)])
    try:
        for _ in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
        project = Project(tmp_path, url)
        project.write_dataset(make_cases(20))
        project.write_rubric()
        spec = project.write_spec(concurrency={"global": 2, "per_model": 2})
        env = {**os.environ, "BENCHRUN_LEDGER": str(project.ledger)}
        exe = Path(sys.executable).parent / "benchrun"
        proc = subprocess.Popen([str(exe), "run", str(spec), "--json"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            time.sleep(0.2)
            if project.ledger.exists():
                con = sqlite3.connect(project.ledger)
                try:
                    n = con.execute("SELECT COUNT(*) FROM result").fetchone()[0]
                except sqlite3.OperationalError:
                    n = 0
                con.close()
                if n >= 8:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        con = sqlite3.connect(project.ledger)
        run_id, status = con.execute("SELECT id, status FROM run").fetchone()
        done_before = con.execute("SELECT COUNT(*) FROM result").fetchone()[0]
        recorded = [(m, json.loads(msgs)) for m, msgs in con.execute("SELECT model, messages FROM result")]
        con.close()
        assert status == "running" and 8 <= done_before < 40  # killed: nobody could mark it
        r = project.cli("run", "--resume", run_id, "--json")
        assert r.returncode == 0, r.stderr
        con = sqlite3.connect(project.ledger)
        cells = con.execute("SELECT case_id, model_key, sample_index, COUNT(*) FROM result GROUP BY 1, 2, 3").fetchall()
        assert len(cells) == 40 and all(c[3] == 1 for c in cells)
        assert con.execute("SELECT status FROM run").fetchone()[0] == "completed"
        con.close()
        import urllib.request

        stats = json.loads(urllib.request.urlopen(url.replace("/v1", "/stats")).read())
        log = json.loads(urllib.request.urlopen(url.replace("/v1", "/requests")).read())
        log = log["requests"] if isinstance(log, dict) else log
        # a call whose answer was recorded before the kill was never made again
        for model, msgs in recorded:
            name = model.split("/", 1)[1]
            assert sum(1 for q in log if q["model"] == name and q["messages"] == msgs and q["completed"]) == 1
        # only calls in flight at the moment of SIGKILL (at most the concurrency, 2) can have been paid twice
        dup = sum(v - 1 for v in stats["completed_by_prompt_key"].values())
        assert dup <= 2, stats["completed_by_prompt_key"]
        assert len(stats["completed_by_prompt_key"]) == 40 + 40  # 40 answers, 40 distinct judgements
    finally:
        srv.kill()
        srv.wait()


def test_require_calibrated(project: Project, server: FakeServer) -> None:
    from benchrun.ledger import Ledger
    from benchrun.spec import load_rubric

    spec = project.setup()
    r = project.cli("run", str(spec), "--require-calibrated")
    assert r.returncode == 2 and "uncalibrated" in r.stderr
    assert server.stats()["total"] == 0  # refused before any call
    rb = load_rubric(project.root / "rubrics" / "mini.yaml")
    led = Ledger(str(project.ledger))
    key = {"judge_model": "openai/judge", "judge_prompt_hash": rb.judge_prompt_hash, "rubric_hash": rb.hash}
    led.add_report("calibration", {"trusted": False, "kappa": 0.31, "n": 120}, summary="kappa 0.31 (n=120)", **key)
    r = project.cli("run", str(spec), "--require-calibrated")
    assert r.returncode == 2 and "not trusted" in r.stderr and "kappa 0.31" in r.stderr
    led.add_report("calibration", {"trusted": True, "kappa": 0.82, "n": 150}, summary="kappa 0.82 (n=150)", **key)
    r, summary = project.cli_json("run", str(spec), "--require-calibrated")
    assert r.returncode == 0
    assert summary["judge_calibration"]["trusted"] is True and summary["judge_calibration"]["kappa"] == 0.82
    # a calibration of another rubric version does not apply
    other = {**key, "rubric_hash": "0" * 64}
    led2 = Ledger(str(project.ledger))
    led2.add_report("calibration", {"trusted": True, "kappa": 0.9, "n": 200}, summary="other", **other)
    _, summary = project.cli_json("runs", "show", summary["conditions"]["run_id"])
    assert summary["judge_calibration"]["kappa"] == 0.82


def test_summary_is_qualified_by_coverage(project: Project, server: FakeServer) -> None:
    from benchrun.coverage.history import store_report
    from benchrun.spec import load_dataset

    spec = project.setup()
    _, summary = project.cli_json("run", str(spec))
    assert summary["coverage"] is None
    ds = load_dataset(project.root / "datasets" / "mini.yaml")
    report = {"score": {"jsd": 0.05, "band": "good", "thresholds": [0.1, 0.25]},
              "production": {"source": "prod.jsonl", "hash": "ab" * 32}, "dataset": {"name": ds.name, "hash": ds.hash},
              "headline": "JSD 0.050 (good)", "uncovered": []}
    store_report(str(project.ledger), report)
    run_id = summary["conditions"]["run_id"]
    _, shown = project.cli_json("runs", "show", run_id)
    assert shown["coverage"]["jsd"] == 0.05 and shown["coverage"]["band"] == "good"
    assert shown["coverage"]["production"].startswith("prod.jsonl")
    text = project.cli("runs", "show", run_id).stdout
    assert "coverage: JSD 0.050 (good) on production sample prod.jsonl" in text


def test_ctrl_c_marks_interrupted_and_resume_completes(tmp_path: Path) -> None:
    with FakeServer(fake_config(latency_ms=100)) as srv:
        project = Project(tmp_path, srv.url)
        project.write_dataset(make_cases(20))
        project.write_rubric()
        spec = project.write_spec(concurrency={"global": 2, "per_model": 2})
        env = {**os.environ, "BENCHRUN_LEDGER": str(project.ledger)}
        exe = Path(sys.executable).parent / "benchrun"
        proc = subprocess.Popen([str(exe), "run", str(spec)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and srv.stats()["completed"] < 6:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        assert "interrupted" in err and "benchrun run --resume" in err and "Traceback" not in err
        con = sqlite3.connect(project.ledger)
        run_id, status = con.execute("SELECT id, status FROM run").fetchone()
        n_before = con.execute("SELECT COUNT(*) FROM result").fetchone()[0]
        con.close()
        assert status == "interrupted" and n_before < 40
        r = project.cli("run", "--resume", run_id)
        assert r.returncode == 0, r.stderr
        con = sqlite3.connect(project.ledger)
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT case_id || model_key) FROM result").fetchone() == (40, 40)
        assert con.execute("SELECT status FROM run").fetchone()[0] == "completed"
        con.close()


def test_recorded_package_versions_equal_importlib_metadatas(tmp_path: Path) -> None:
    """`runner.metadata_version` reads only the header block: equal to ``Distribution.version`` for every installed
    distribution and for header blocks written in ways the long description could hide (CRLF, folded and
    lower-case headers, a blank-looking body line, no body, no Version)."""
    from importlib import metadata

    from benchrun.runner import dist_version, metadata_version, package_versions

    dists = list(metadata.distributions())
    assert len(dists) > 20
    for d in dists:
        assert metadata_version(d) == d.version, d.metadata["Name"]
    texts = {
        "crlf": "Metadata-Version: 2.1\r\nName: a\r\nVersion: 1.2.3\r\n\r\nVersion: 9\r\n",
        "folded": "Metadata-Version: 2.1\nName: a\nSummary: one\n  two\nversion:   4.5 \n\nbody\n\nVersion: 9\n",
        "late": "Metadata-Version: 2.1\nName: a\nSummary: s\n\n\nVersion: 9\n",
        "only-headers": "Name: a\nVersion: 0.0.1",
        "twice": "Name: a\nVersion: 1\nVersion: 2\n\nx",
    }
    for label, text in texts.items():
        info = tmp_path / f"{label}-1.dist-info"
        info.mkdir()
        (info / "METADATA").write_bytes(text.encode())
        d = metadata.PathDistribution(info)
        assert metadata_version(d) == d.version, label
    versions = package_versions()
    assert versions["pydantic"] == dist_version("pydantic") == metadata.version("pydantic")
    assert set(versions) >= {"python", "benchrun", "pydantic", "sqlmodel"}
