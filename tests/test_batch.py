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

COMPARED = ("case_id", "model_key", "sample_index", "status", "passed", "response_text", "prompt_tokens",
            "completion_tokens", "rules_passed", "judge_score", "judge_pass", "judge_reason", "judge_failure_mode",
            "error")


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHRUN_BATCH_POLL_S", "0.05")  # an environment setting of ours, not a patched module


def _rows(project: Project, run_id: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM result WHERE run_id = ? ORDER BY case_id, model_key, "
                                         "sample_index", (run_id,))]
    con.close()
    return rows


def _jobs(project: Project, run_id: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM batch_job WHERE run_id = ? ORDER BY id", (run_id,))]
    con.close()
    return rows


def _lines(project: Project, run_id: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM batch_line WHERE run_id = ? ORDER BY id", (run_id,))]
    con.close()
    return rows


def _paths(server: FakeServer) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in server.requests():
        out[r.path] = out.get(r.path, 0) + 1
    return out


def test_batch_run_equals_sync_run(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    r, sync = project.cli_json("run", str(spec), "--no-cache")
    assert r.returncode == 0, r.stderr
    n_sync = server.stats()["total"]
    server.reset()
    r, batched = project.cli_json("run", str(spec), "--no-cache", "--batch")
    assert r.returncode == 0, r.stderr
    a, b = _rows(project, sync["conditions"]["run_id"]), _rows(project, batched["conditions"]["run_id"])
    assert len(a) == len(b) == 12
    assert [{k: x[k] for k in COMPARED} for x in a] == [{k: x[k] for k in COMPARED} for x in b]
    # every call went through batches: candidates, then the judge; nothing synchronous
    assert _paths(server) == {"/v1/batches": n_sync}
    jobs = _jobs(project, batched["conditions"]["run_id"])
    assert sorted((j["role"], j["model_key"], j["state"], j["n_lines"]) for j in jobs) == [
        ("candidate", "bad", "collected", 6), ("candidate", "good", "collected", 6), ("judge", "openai/judge", "collected", 12)]
    assert all(j["batch_id"] and j["batch_id"].startswith("batch_") for j in jobs)
    # batch prices: half the spec's price for every call (candidates and judge)
    for x, y in zip(a, b, strict=True):
        assert y["cost_usd"] == pytest.approx(x["cost_usd"] / 2)
        assert y["judge_cost_usd"] == pytest.approx(x["judge_cost_usd"] / 2)
