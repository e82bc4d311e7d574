"""A small spec end to end through the real embedded local model (llama.cpp server + SmolLM2-135M)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import yaml

from conftest import RUBRIC, Project, make_cases

pytestmark = pytest.mark.slow


def children_of(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def test_local_model_run_end_to_end(tmp_path: Path) -> None:
    project = Project(tmp_path, url="unused")
    project.write_dataset(make_cases(2))
    project.write_rubric(dict(RUBRIC, judge_prompt=RUBRIC["judge_prompt"] + "\nAnswer with JSON only."))
    spec = project.write_spec(
        name="local",
        candidates=[{"model": "local/smollm2-135m", "alias": "smol"}],
        judge={"model": "local/smollm2-135m", "structured_output": "llama_cpp", "sampling": {"max_tokens": 48}},
        sampling={"temperature": 0, "max_tokens": 24, "seed": 1},
        timeout_s=120,
    )
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    assert summary["conditions"]["status"] == "completed"
    con = sqlite3.connect(project.ledger)
    con.row_factory = sqlite3.Row
    rows = [dict(x) for x in con.execute("SELECT * FROM result")]
    assert len(rows) == 2
    for row in rows:
        assert row["model"] == "local/smollm2-135m"
        assert row["response_text"] and row["response_text"].strip()
        assert row["prompt_tokens"] > 10 and 0 < row["completion_tokens"] <= 24 and row["tokens_estimated"] == 0
        assert row["cost_usd"] == 0.0 and row["judge_cost_usd"] == 0.0  # local: free, and known to be free
        assert row["latency_ms"] > 0 and row["judge_latency_ms"] > 0
        assert row["resolved_model"] == "smollm2-135m"
        # grammar-constrained JSON: the tiny judge's verdict always parses
        assert row["judge_error"] is None and 1 <= row["judge_score"] <= 5, row["judge_raw"]
        assert row["status"] in ("passed", "failed")
    # answers at temperature 0 are repeatable: a --no-cache re-run gives the same text
    r2, s2 = project.cli_json("run", str(spec), "--no-cache")
    assert r2.returncode == 0, r2.stderr
    again = dict(con.execute("SELECT case_id, response_text FROM result WHERE run_id = ?",
                             (s2["conditions"]["run_id"],)).fetchall())
    assert again == {row["case_id"]: row["response_text"] for row in rows}
    con.close()
    assert children_of(os.getpid()) == []  # the server was stopped


def test_dead_local_server_is_resumable(tmp_path: Path) -> None:
    """A model file that cannot load: a clear one-line message, exit 3, and a run that can be resumed."""
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 1024)
    project = Project(tmp_path, url="unused")
    project.write_dataset(make_cases(1))
    project.write_rubric()
    spec = project.write_spec(name="local", candidates=[{"model": "local/smollm2-135m"}],
                              judge={"model": "local/smollm2-135m"})
    r = project.cli("run", str(spec), env={"BENCHRUN_LOCAL_MODEL_PATH": str(bad)})
    assert r.returncode == 3, r.stderr
    assert "local" in r.stderr.lower() and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # the run line and the one-line error
    con = sqlite3.connect(project.ledger)
    run_id, status = con.execute("SELECT id, status FROM run").fetchone()
    con.close()
    assert status == "interrupted"
    assert yaml.safe_load(spec.read_text())["name"] == "local"
    r = project.cli("run", "--resume", run_id)  # with the real model the same run completes
    assert r.returncode == 0, r.stderr
    assert children_of(os.getpid()) == []
