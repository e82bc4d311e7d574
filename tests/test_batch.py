"""Provider batch APIs end to end (benchrun.batch): our test server's /v1/files and /v1/batches, through litellm.

Every test runs the real CLI against tests/fakeserver.py and a real SQLite ledger; what was paid for is
counted on the server (each request it answered, synchronously or as a batch line, is one request in
its log).
"""

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

import pytest

from conftest import Project, fake_config
from fakeserver import FakeServer
from reliability import relsupport

pg_server, pg_url, backend_url = relsupport.pg_server, relsupport.pg_url, relsupport.backend_url  # fixtures

COMPARED = ("case_id", "model_key", "sample_index", "status", "passed", "response_text", "prompt_tokens",
            "completion_tokens", "rules_passed", "judge_score", "judge_pass", "judge_reason", "judge_failure_mode",
            "error")


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHRUN_BATCH_POLL_S", "0.05")  # an environment setting of ours, not a patched module


def _select(project: Project, table: str, run_id: str, order: str = "id") -> list[dict[str, Any]]:
    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY {order}", (run_id,))]
    con.close()
    return rows


def _rows(project: Project, run_id: str) -> list[dict[str, Any]]:
    return _select(project, "result", run_id, "case_id, model_key, sample_index")


def _jobs(project: Project, run_id: str) -> list[dict[str, Any]]:
    return _select(project, "batch_job", run_id)


def _lines(project: Project, run_id: str) -> list[dict[str, Any]]:
    return _select(project, "batch_line", run_id)


def _paths(server: FakeServer) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in server.requests():
        out[r.path] = out.get(r.path, 0) + 1
    return out


@pytest.mark.parametrize("samples", [1, 2])
def test_batch_run_equals_sync_run(project: Project, server: FakeServer, samples: int) -> None:
    spec = project.setup(samples=samples)
    r, sync = project.cli_json("run", str(spec), "--no-cache")
    assert r.returncode == 0, r.stderr
    n_sync = server.stats()["total"]
    server.reset()
    r, batched = project.cli_json("run", str(spec), "--no-cache", "--batch")
    assert r.returncode == 0, r.stderr
    a, b = _rows(project, sync["conditions"]["run_id"]), _rows(project, batched["conditions"]["run_id"])
    assert len(a) == len(b) == 12 * samples
    assert [{k: x[k] for k in COMPARED} for x in a] == [{k: x[k] for k in COMPARED} for x in b]
    # every call went through batches: candidates, then the judge; nothing synchronous. Two samples with the same
    # answer ask the judge the same call: one batch line, its answer reused as a cache hit
    assert n_sync == 24 * samples
    assert _paths(server) == {"/v1/batches": 12 * samples + 12}
    assert sum(x["cached"] for x in b) == 0  # the candidates' answers: each its own line
    jobs = _jobs(project, batched["conditions"]["run_id"])
    n = 6 * samples
    assert sorted((j["role"], j["model_key"], j["state"], j["n_lines"]) for j in jobs) == [
        ("candidate", "bad", "collected", n), ("candidate", "good", "collected", n),
        ("judge", "openai/judge", "collected", 12)]
    assert all(j["batch_id"] and j["batch_id"].startswith("batch_") for j in jobs)
    # batch prices: half the spec's price for every call (candidates and judge)
    for x, y in zip(a, b, strict=True):
        assert y["cost_usd"] == pytest.approx(x["cost_usd"] / 2)
        assert y["judge_cost_usd"] == pytest.approx(x["judge_cost_usd"] / 2)


def test_failed_and_expired_lines_fall_back_to_sync_calls(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    r, sync = project.cli_json("run", str(spec), "--no-cache")
    assert r.returncode == 0, r.stderr
    server.reset()
    # case-001's lines fail (status 500 in the error file); case-002's are never run and their batches expire
    server.set_config(fake_config(batch={"fail_contains": "(ticket 1)", "expire_contains": "(ticket 2)"}))
    r, batched = project.cli_json("run", str(spec), "--no-cache", "--batch")
    assert r.returncode == 0, r.stderr
    run_id = batched["conditions"]["run_id"]
    a, b = _rows(project, sync["conditions"]["run_id"]), _rows(project, run_id)
    assert [{k: x[k] for k in COMPARED} for x in a] == [{k: x[k] for k in COMPARED} for x in b]
    lines = {(ln["custom_id"], ln["state"], ln["fallback"]) for ln in _lines(project, run_id)}
    states: dict[str, int] = {}
    for _, st, fb in lines:
        states[f"{st}/{fb}"] = states.get(f"{st}/{fb}", 0) + 1
    # 12 candidate lines: 2 failed + 2 expired, both redone synchronously; the judge batch holds the 8 answered
    assert states == {"ok/None": 8 + 8, "failed/sync": 2, "expired/sync": 2}
    cand_jobs = [j for j in _jobs(project, run_id) if j["role"] == "candidate"]
    assert {json.loads(j["counts"])["provider_status"] for j in cand_jobs} == {"expired"}
    # on the server: the failed lines ran once in the batch and once synchronously, the expired ones only
    # synchronously, and the 4 redone answers were judged synchronously
    by_path: dict[str, list[str]] = {}
    for rec in server.requests():
        by_path.setdefault(rec.path, []).append(rec.outcome)
    assert sorted(by_path["/v1/batches"]) == sorted(["500"] * 2 + ["ok"] * 16)
    assert sorted(by_path["/v1/chat/completions"]) == ["ok"] * 8
    for row in b:
        attempts = json.loads(row["attempts"])
        if "(ticket 1)" in row["messages"] or "(ticket 2)" in row["messages"]:
            assert attempts and "called synchronously" in attempts[0]["error"], attempts
            kind = "failed" if "(ticket 1)" in row["messages"] else "expired"
            assert f"line {kind}" in attempts[0]["error"]
            assert row["cost_usd"] == pytest.approx(next(x["cost_usd"] for x in a if x["case_id"] == row["case_id"]
                                                         and x["model_key"] == row["model_key"]))  # sync price
        else:
            assert attempts == []


@pytest.mark.parametrize("how", ["fail_batch", "reject_create"])
def test_whole_batch_failure_falls_back_for_every_line(project: Project, server: FakeServer, how: str) -> None:
    """A batch that fails validation, or that the provider refuses to create: every call is made synchronously."""
    spec = project.setup()
    server.set_config(fake_config(batch={how: True}))
    r, batched = project.cli_json("run", str(spec), "--no-cache", "--batch")
    assert r.returncode == 0, r.stderr
    run_id = batched["conditions"]["run_id"]
    assert [row["status"] for row in _rows(project, run_id)].count("passed") == 6
    assert {(ln["state"], ln["fallback"]) for ln in _lines(project, run_id)} == {("failed", "sync")}
    # no batch line ran; each call was made once, synchronously
    st = server.stats()
    assert _paths(server) == {"/v1/chat/completions": 24}
    assert set(st["completed_by_prompt_key"].values()) == {1}
    jobs = _jobs(project, run_id)
    first_attempt = json.loads(_rows(project, run_id)[0]["attempts"])[0]["error"]
    if how == "reject_create":
        assert {j["state"] for j in jobs} == {"failed"} and all(j["batch_id"] is None for j in jobs)
        assert all("creating the batch failed" in j["message"] and "batches are disabled" in j["message"]
                   for j in jobs)
        assert st["batch_calls"]["batches_list"] >= 1  # it looked for a batch created despite the error first
        assert "batch not submitted" in first_attempt
    else:
        assert {j["state"] for j in jobs} == {"collected"}
        assert {json.loads(j["counts"])["provider_status"] for j in jobs} == {"failed"}
        assert all("failed validation" in j["message"] for j in jobs)  # the provider's errors, recorded
        assert "line failed (batch failed: the batch failed validation" in first_attempt


def _wait_for(pred: Any, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.mark.parametrize("phase", ["candidate", "judge"])
def test_sigkill_while_batches_pending_then_resume_pays_nothing_twice(project: Project, server: FakeServer,
                                                                       phase: str) -> None:
    """Killed while the candidates' batches (or the judge's, once the answers were in) are pending: `batch
    status` and `run --resume` pick them up; on the server every call was answered once, none resubmitted."""
    spec = project.setup()
    r, sync = project.cli_json("run", str(spec), "--no-cache")
    assert r.returncode == 0, r.stderr
    server.reset()
    server.set_config(fake_config(batch={"delay_s": 3}))
    env = {**os.environ, "BENCHRUN_LEDGER": str(project.ledger), "COLUMNS": "200", "BENCHRUN_BATCH_POLL_S": "0.05"}
    exe = Path(sys.executable).parent / "benchrun"
    proc = subprocess.Popen([str(exe), "run", str(spec), "--no-cache", "--batch", "--json"], cwd=project.root,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    want = {"candidate": 2, "judge": 1}[phase]  # batches of that role in progress
    try:
        def pending() -> bool:
            if not project.ledger.exists():
                return False
            try:
                jobs = [j for r in _run_ids(project) if r != sync["conditions"]["run_id"] for j in _jobs(project, r)]
            except sqlite3.OperationalError:  # the tables are not there yet
                return False
            return sum(1 for j in jobs if j["role"] == phase and j["state"] == "in_progress") == want

        _wait_for(pending)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert server.stats()["batch_calls"]["batches_create"] == {"candidate": 2, "judge": 3}[phase]
    run_id = next(r for r in _run_ids(project) if r != sync["conditions"]["run_id"])
    assert _rows(project, run_id) == []  # killed while batches were pending
    # `batch status` refreshes the states at the provider and submits nothing
    r, status = project.cli_json("batch", "status", run_id)
    assert r.returncode == 0, r.stderr
    expected = [("candidate", {"submitted": 6})] * 2
    if phase == "judge":
        expected = [("candidate", {"ok": 6})] * 2 + [("judge", {"submitted": 12})]
    assert sorted((j["role"], j["lines"]) for j in status) == expected
    # the pending ones as the provider reports them now (the server's delay may have passed meanwhile)
    assert {j["state"] for j in status if j["role"] == phase} <= {"in_progress", "completed"}
    r = project.cli("batch", "status", run_id)
    assert r.returncode == 0 and "not yet collected" in r.stdout and run_id in r.stdout
    # as if the process had died between the provider creating the last batch and the ledger recording its id
    con = sqlite3.connect(project.ledger)
    with con:
        con.execute("UPDATE batch_job SET state = 'creating', batch_id = NULL WHERE id = "
                    "(SELECT MAX(id) FROM batch_job WHERE run_id = ?)", (run_id,))
    con.close()
    r, resumed = project.cli_json("run", "--resume", run_id, "--no-cache")
    assert r.returncode == 0, r.stderr
    assert resumed["conditions"]["status"] == "completed"
    a, b = _rows(project, sync["conditions"]["run_id"]), _rows(project, run_id)
    assert [{k: x[k] for k in COMPARED} for x in a] == [{k: x[k] for k in COMPARED} for x in b]
    st = server.stats()
    assert st["batch_calls"]["batches_create"] == 3  # the two candidate batches, then the judge's; none again
    assert st["batch_calls"]["batches_list"] >= 1  # the unrecorded batch was found by its token
    assert st["batch_calls"]["files_create"] == 3
    assert _paths(server) == {"/v1/batches": 24}  # every call answered once, in a batch; nothing synchronous
    assert set(st["completed_by_prompt_key"].values()) == {1}
    assert {j["state"] for j in _jobs(project, run_id)} == {"collected"}


def _run_ids(project: Project) -> list[str]:
    con = sqlite3.connect(project.ledger)
    ids = [r[0] for r in con.execute("SELECT id FROM run ORDER BY created_at")]
    con.close()
    return ids


def test_spec_hash_does_not_depend_on_batch(project: Project) -> None:
    spec = project.setup()
    r, sync = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    r, batched = project.cli_json("run", str(spec), "--batch")
    assert r.returncode == 0, r.stderr
    assert sync["conditions"]["spec_hash"] == batched["conditions"]["spec_hash"]
    # the second run's calls were all in the cache: no batch was needed
    assert _jobs(project, batched["conditions"]["run_id"]) == []
    r = project.cli("batch", "status", batched["conditions"]["run_id"])
    assert r.returncode == 0 and "has no provider batches" in r.stdout
    r = project.cli("batch", "status", "no-such-run")
    assert r.returncode == 2 and "no-such-run" in r.stderr and "Traceback" not in r.stderr


def test_batch_price_from_the_price_map() -> None:
    """litellm's map lists batch rates for gpt-4o-mini; models without them are charged half the sync price."""
    from benchrun import prices, providers
    from benchrun.batch import batch_cost
    from benchrun.spec import ModelRef

    ref = ModelRef(model="openai/gpt-4o-mini")
    ep = providers.Endpoint("openai/gpt-4o-mini", None, "x", transport="openai")
    entry = prices.price_map()["gpt-4o-mini"]
    expected = 1000 * entry["input_cost_per_token_batches"] + 500 * entry["output_cost_per_token_batches"]
    assert batch_cost(ref, ep, 1000, 500) == pytest.approx(expected)
    litellm = providers.setup_litellm()
    sync_p, sync_c = litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=500)
    assert expected < sync_p + sync_c
    priced = ModelRef(model="openai/x", price={"input_per_1m": 3.0, "output_per_1m": 5.0})
    assert batch_cost(priced, ep, 1000, 500) == pytest.approx((1000 * 3.0 + 500 * 5.0) / 1e6 / 2)
    assert batch_cost(ModelRef(model="openai/unknown-model-xyz"),
                      providers.Endpoint("openai/unknown-model-xyz", None, "x", transport="openai"), 10, 10) is None


def test_budget_batches_a_round_only_when_its_worst_case_fits(project: Project, server: FakeServer) -> None:
    spec = project.setup(budget_usd=10.0)
    r, roomy = project.cli_json("run", str(spec), "--no-cache", "--batch")
    assert r.returncode == 0, r.stderr
    assert len(_jobs(project, roomy["conditions"]["run_id"])) == 3
    server.reset()
    # far below the worst case of the candidates' batch (12 lines at max_tokens 64): it is not submitted, and the
    # calls go synchronously under the budget control, which stops the run before the cap
    spec = project.write_spec(budget_usd=0.0002)
    r, tight = project.cli_json("run", str(spec), "--no-cache", "--batch")
    assert r.returncode == 3, r.stderr
    assert tight["conditions"]["status"] == "budget_exceeded"
    assert _jobs(project, tight["conditions"]["run_id"]) == []
    assert "/v1/batches" not in _paths(server) and server.stats()["batch_calls"] == {}


def test_estimate_uses_batch_prices(project: Project) -> None:
    spec = project.setup()
    r, sync = project.cli_json("run", str(spec), "--estimate")
    assert r.returncode == 0, r.stderr
    r, batched = project.cli_json("run", str(spec), "--estimate", "--batch")
    assert r.returncode == 0, r.stderr
    for a, b in zip(sync["candidates"], batched["candidates"], strict=True):
        assert b["worst_case_cost_usd"] == pytest.approx(a["worst_case_cost_usd"] / 2)
        assert b["worst_case_cost_usd"] > 0
        assert (a["price_source"], b["price_source"]) == ("spec", "spec, batch")
        assert b["input_per_1m"] == a["input_per_1m"] / 2 and b["output_per_1m"] == a["output_per_1m"] / 2
    assert batched["judge"]["price_source"] == "spec, batch"


def test_progress_says_what_the_run_waits_for(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    server.set_config(fake_config(batch={"delay_s": 0.5}))
    r = project.cli("run", str(spec), "--batch")  # stderr is not a terminal here: plain progress lines
    assert r.returncode == 0, r.stderr
    wait = r.stderr.find("progress: waiting for provider batches: 12 lines in_progress")
    assert 0 <= wait < r.stderr.find("progress: 12/12 cells"), r.stderr


def test_polls_that_fail_while_the_server_is_down_do_not_stop_the_run(tmp_path: Path) -> None:
    """The provider unreachable for a few polls of a long wait: the run keeps polling and completes, paying once."""
    import socket

    with socket.socket() as s:  # a fixed port, so the server comes back where the spec points
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = FakeServer(fake_config(batch={"delay_s": 2}), port=port).start()
    try:
        project = Project(tmp_path, srv.url)
        spec = project.setup()
        env = {**os.environ, "BENCHRUN_LEDGER": str(project.ledger), "BENCHRUN_BATCH_POLL_S": "0.2"}
        proc = subprocess.Popen([str(Path(sys.executable).parent / "benchrun"), "run", str(spec), "--batch", "--json"],
                                cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: srv.stats()["batch_calls"].get("batches_create", 0) == 2)
            srv.stop()
            time.sleep(2.5)  # polls fail meanwhile (connection refused)
            srv.start()
            out, errs = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, errs
        assert json.loads(out)["conditions"]["status"] == "completed"
        st = srv.stats()
        assert st["batch_calls"]["batches_create"] == 3
        assert set(st["completed_by_prompt_key"].values()) == {1} and len(st["completed_by_prompt_key"]) == 24
    finally:
        srv.stop()


def test_ledger_copy_carries_the_batches(project: Project, server: FakeServer, backend_url: str) -> None:
    """`ledger copy` (SQLite -> SQLite or PostgreSQL) brings a batch run's jobs and lines: `batch status` on the copy
    says what it says on the source, without asking the provider anything; copying again changes nothing."""
    spec = project.setup()
    server.set_config(fake_config(batch={"fail_contains": "(ticket 1)", "expire_contains": "(ticket 2)"}))
    r, batched = project.cli_json("run", str(spec), "--no-cache", "--batch")
    assert r.returncode == 0, r.stderr
    run_id = batched["conditions"]["run_id"]
    dst = backend_url
    r, stats = project.cli_json("ledger", "copy", "--from", str(project.ledger), "--to", dst)
    assert r.returncode == 0, r.stderr
    jobs, lines = _jobs(project, run_id), _lines(project, run_id)
    assert len(jobs) == 3 and len(lines) == 12 + 8
    assert (stats["batch_jobs_written"], stats["batch_lines_written"]) == (3, 20)

    def without_ids(status: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(({k: v for k, v in j.items() if k != "id"} for j in status), key=lambda j: j["token"])

    server.reset()
    r, here = project.cli_json("batch", "status", run_id)
    assert r.returncode == 0, r.stderr
    r, there = project.cli_json("batch", "status", run_id, "--ledger", dst)
    assert r.returncode == 0, r.stderr
    assert without_ids(there) == without_ids(here)
    # each candidate's batch: case-001's line failed, case-002's expired, 4 answered; the judge's: the 8 answered
    assert sorted((j["role"], tuple(sorted(j["lines"].items()))) for j in there) == [
        ("candidate", (("expired", 1), ("failed", 1), ("ok", 4)))] * 2 + [("judge", (("ok", 8),))]
    assert server.requests() == []  # every batch was collected: nothing to ask the provider
    copied = relsupport.query(dst, "SELECT j.token, l.custom_id, l.state, l.fallback FROM batch_line l "
                              "JOIN batch_job j ON j.id = l.job_id WHERE l.run_id = :r ORDER BY 1, 2", r=run_id)
    by_id = {j["id"]: j["token"] for j in jobs}
    assert copied == sorted((by_id[ln["job_id"]], ln["custom_id"], ln["state"], ln["fallback"]) for ln in lines)
    r, again = project.cli_json("ledger", "copy", "--from", str(project.ledger), "--to", dst)
    assert r.returncode == 0, r.stderr
    assert not again["changed"] and (again["batch_jobs_written"], again["batch_lines_written"]) == (0, 0)


def test_runs_show_says_what_was_batched(project: Project, server: FakeServer) -> None:
    """`runs show` (terminal and --json): how many batches, lines batched, lines redone synchronously and what the
    batch-answered calls cost, which equals the cost of the result rows whose calls were all answered in batches."""
    spec = project.setup()
    server.set_config(fake_config(batch={"fail_contains": "(ticket 1)", "expire_contains": "(ticket 2)"}))
    r, batched = project.cli_json("run", str(spec), "--no-cache", "--batch")
    assert r.returncode == 0, r.stderr
    run_id = batched["conditions"]["run_id"]
    r, shown = project.cli_json("runs", "show", run_id)
    assert r.returncode == 0, r.stderr
    rows = _rows(project, run_id)
    in_batches = [x for x in rows if json.loads(x["attempts"]) == []]  # candidate and judge call both batch-answered
    assert len(in_batches) == 8
    expected_cost = sum(x["cost_usd"] + x["judge_cost_usd"] for x in in_batches)
    assert 0 < expected_cost < 1  # shown as $0.0000
    b = shown["batches"]
    assert (b["batches"], b["lines"], b["fallback_sync"], b["pending"], b["unpriced"]) == (3, 20, 4, 0, 0)
    assert b["cost_usd"] == pytest.approx(expected_cost)
    text = project.cli("runs", "show", run_id).stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("provider batches:"))
    assert line == (f"provider batches: 3 (20 lines, 4 redone synchronously), batch-priced cost "
                    f"${expected_cost:.4f}"), line
    # a run without batches says nothing about them
    r, sync = project.cli_json("run", str(spec), "--no-cache")
    assert r.returncode == 0, r.stderr
    r, plain = project.cli_json("runs", "show", sync["conditions"]["run_id"])
    assert plain["batches"] is None
    assert "provider batches" not in project.cli("runs", "show", sync["conditions"]["run_id"]).stdout
