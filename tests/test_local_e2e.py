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
    # Children that already exist (e.g. multiprocessing's resource tracker, kept by the session after an in-process
    # run with call workers) are not this run's; every process this run started must be gone at the end.
    before = set(children_of(os.getpid()))
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
    assert set(children_of(os.getpid())) - before == set()  # the server was stopped


def test_dead_local_server_is_resumable(tmp_path: Path) -> None:
    """A model file that cannot load: a clear one-line message, exit 3, and a run that can be resumed."""
    before = set(children_of(os.getpid()))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 1024)
    project = Project(tmp_path, url="unused")
    project.write_dataset(make_cases(1))
    project.write_rubric()
    spec = project.write_spec(name="local", candidates=[{"model": "local/smollm2-135m"}],
                              judge={"model": "local/smollm2-135m", "structured_output": "llama_cpp",
                                     "sampling": {"max_tokens": 48}},
                              sampling={"temperature": 0, "max_tokens": 24}, timeout_s=120)
    r = project.cli("run", str(spec), env={"BENCHRUN_LOCAL_MODEL_PATH": str(bad)})
    assert r.returncode == 3, r.stderr
    assert "local" in r.stderr.lower() and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # the run line and the one-line error
    con = sqlite3.connect(project.ledger)
    run_id, status = con.execute("SELECT id, status FROM run").fetchone()
    con.close()
    assert status == "interrupted"
    assert yaml.safe_load(spec.read_text())["name"] == "local"
    r, summary = project.cli_json("run", "--resume", run_id)  # with the real model the same run completes
    assert r.returncode == 0, r.stderr
    assert summary["conditions"]["status"] == "completed" and summary["totals"]["errors"] == 0
    assert set(children_of(os.getpid())) - before == set()


def test_server_dying_mid_run_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    project = Project(tmp_path, url="unused")
    project.write_dataset(make_cases(8))
    project.write_rubric()
    spec = project.write_spec(name="local", candidates=[{"model": "local/smollm2-135m"}],
                              judge={"model": "local/smollm2-135m", "structured_output": "llama_cpp",
                                     "sampling": {"max_tokens": 32}},
                              sampling={"temperature": 0, "max_tokens": 48}, timeout_s=120,
                              retries={"attempts": 2, "backoff_base_s": 0.1, "backoff_max_s": 0.2},
                              concurrency={"global": 1, "per_model": 1})
    env = {**os.environ, "BENCHRUN_LEDGER": str(project.ledger)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "benchrun"), "run", str(spec)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    killed = None
    while time.time() < deadline and killed is None:
        time.sleep(0.2)
        if not project.ledger.exists():
            continue
        con = sqlite3.connect(project.ledger)
        try:
            n = con.execute("SELECT COUNT(*) FROM result").fetchone()[0]
        except sqlite3.OperationalError:
            n = 0
        con.close()
        servers = children_of(proc.pid)
        if n >= 2 and servers:
            os.kill(servers[0], signal.SIGKILL)
            killed = servers[0]
    assert killed is not None, "the run never got going"
    _, err = proc.communicate(timeout=120)  # never a hang
    assert proc.returncode == 3, err
    assert "local model server" in err and "died" in err and "--resume" in err and "Traceback" not in err
    con = sqlite3.connect(project.ledger)
    run_id, status = con.execute("SELECT id, status FROM run").fetchone()
    con.close()
    assert status == "interrupted"
    r, summary = project.cli_json("run", "--resume", run_id)
    assert r.returncode == 0, r.stderr
    assert summary["recorded_results"] == 8 and summary["conditions"]["status"] == "completed"
