"""Provider faults at high rates: nothing is lost, every retry is recorded, the outcome equals a fault-free run.

The fake server injects faults deterministically (a hash of seed, prompt and attempt number), so a
faulted run is reproducible and can be compared cell by cell with a run against the same server
without faults. Every kind the server knows is used, each at rate 0.3, in groups (all ten kinds at
0.3 at once would fail ~97% of requests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import GOOD, JUDGE_PASS, Project, fake_config, make_cases
from fakeserver import FakeServer
from reliability.relsupport import query

SEED = 20261122
GROUPS: dict[str, list[dict[str, Any]]] = {
    "rate_limits": [{"kind": "429", "rate": 0.3, "seed": SEED, "retry_after": 0.2},
                    {"kind": "429", "rate": 0.3, "seed": SEED + 1}],
    "server_errors": [{"kind": k, "rate": 0.3, "seed": SEED + i} for i, k in enumerate(("500", "502", "503"))],
    "connection": [{"kind": "reset", "rate": 0.3, "seed": SEED}, {"kind": "timeout", "rate": 0.3, "seed": SEED + 1}],
    "bodies": [{"kind": k, "rate": 0.3, "seed": SEED + i} for i, k in enumerate(("malformed", "truncated", "empty"))],
}


def config(faults: list[dict[str, Any]]) -> dict[str, Any]:
    """The fixture server's rules plus judges that break the answer schema.

    Case 2: the judge's first verdict is not JSON, its re-ask is valid. Case 5: the judge never answers
    in the schema (a judge error: never a pass). These are content, not transport faults, so the
    fault-free run has them too.
    """
    cfg = fake_config(faults=faults, timeout_sleep_s=3)
    cfg["rules"] = [
        {"model": "judge", "contains": "ticket 5)", "reply": '{"score": 9, "verdict": "fine"}'},
        {"model": "judge", "contains": "Your reply was not valid", "reply": JUDGE_PASS},
        {"model": "judge", "contains": "ticket 2)", "reply": "Looks fine to me!"},
        *cfg["rules"],
    ]
    return cfg


def run_once(tmp: Path, faults: list[dict[str, Any]],
             call_workers: int = 0) -> tuple[Project, FakeServer, str, list[dict[str, Any]]]:
    server = FakeServer(config(faults)).start()
    project = Project(tmp, server.url)
    project.write_dataset(make_cases(12))
    project.write_rubric()
    spec = project.write_spec(concurrency={"global": 8, "per_model": 8}, timeout_s=1.0,
                              retries={"attempts": 20, "backoff_base_s": 0.005, "backoff_max_s": 0.02})
    r, summary = project.cli_json("run", str(spec), "--call-workers", str(call_workers))
    assert r.returncode == 0, r.stderr
    run_id = summary["conditions"]["run_id"]
    import sqlite3

    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    rows = [dict(x) for x in con.execute("SELECT * FROM result WHERE run_id = ?", (run_id,))]
    con.close()
    return project, server, run_id, rows


def cell(r: dict[str, Any]) -> tuple[str, str, int]:
    return (r["case_id"], r["model_key"], r["sample_index"])


def outcome(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["status"], r["passed"], r["rules_passed"], r["judge_score"], r["judge_pass"], r["judge_failure_mode"],
            r["response_text"], r["judge_reasks"])


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    _project, server, _run_id, rows = run_once(tmp_path_factory.mktemp("baseline"), [])
    server.stop()
    assert all(r["retries"] == 0 and r["judge_retries"] == 0 for r in rows)
    return {cell(r): outcome(r) for r in rows}


# Calls made in the run's own process (0), and in worker processes (2: retries, backoff, Retry-After and
# timeouts then happen in the workers; the outcome and the ledger must not tell the difference).
@pytest.mark.parametrize(("group", "call_workers"),
                         [(g, 0) for g in sorted(GROUPS)] + [("rate_limits", 2), ("connection", 2), ("bodies", 2)])
def test_faults_change_nothing_but_the_retries(tmp_path: Path, group: str, call_workers: int,
                                               baseline: dict[tuple[str, str, int], tuple[Any, ...]]) -> None:
    project, server, _run_id, rows = run_once(tmp_path, GROUPS[group], call_workers)
    try:
        log = server.requests()
    finally:
        server.stop()
    assert query(f"sqlite:///{project.ledger}", "SELECT status FROM run") == [("completed",)]
    # every kind of fault in the group really fired, often
    fired = {q.outcome for q in log} - {"ok"}
    assert fired == {f["kind"] for f in GROUPS[group]}, fired
    n_faults = sum(1 for q in log if q.outcome != "ok")
    assert n_faults >= 0.2 * len(log)

    # nothing lost, nothing different: the same outcome in every cell as without faults
    assert len(rows) == len(baseline) == 24
    assert {cell(r): outcome(r) for r in rows} == baseline

    # every retried call is recorded: failed attempts in the ledger == faults the server injected
    assert sum(r["retries"] + r["judge_retries"] for r in rows) == n_faults
    for r in rows:
        name = r["model"].split("/", 1)[1]
        msgs = json.loads(r["messages"])
        sent = [q for q in log if q.model == name and q.messages == msgs]
        assert len(sent) == r["retries"] + 1, (cell(r), [q.outcome for q in sent])
        attempts = json.loads(r["attempts"])
        assert len(attempts) == r["retries"] and all(a["retryable"] for a in attempts)
        assert [q.outcome for q in sent][-1] == "ok"
    judge_requests = sum(1 for q in log if q.model == "judge")
    assert judge_requests == sum(r["judge_retries"] + 1 + r["judge_reasks"] for r in rows)

    # no case counts as passed unless it was really answered and judged
    for r in rows:
        if r["status"] == "passed":
            assert r["response_text"] == GOOD and r["error"] is None and r["judge_error"] is None
            verdict = json.loads(r["judge_raw"])
            assert verdict["pass"] is True and verdict["score"] == r["judge_score"] >= 4
    errors = [r for r in rows if r["status"] == "error"]
    assert [cell(r) for r in errors] == [("case-005", "good", 0)]  # the judge that never answers in the schema
    assert errors[0]["passed"] is None and "after one re-ask" in errors[0]["judge_error"]
