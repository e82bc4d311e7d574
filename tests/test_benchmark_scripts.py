"""The speed benchmarks of issue 15 still run: each script, at a tiny size, finishes and prints its ratios.

Nothing here times anything (tests never assert wall-clock times); this only keeps the scripts from
rotting when the code they drive changes (ledger_throughput.py once called a `Runner` method that no
longer existed, and nothing noticed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(script: str, *args: str) -> str:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                       timeout=300, env=env, cwd=ROOT, check=False)
    assert r.returncode == 0, (script, r.stdout[-2000:], r.stderr[-2000:])
    return r.stdout


@pytest.mark.parametrize("mode", [[], ["--rules-only"]], ids=["judged", "rules-only"])
def test_runner_overhead_runs(mode: list[str]) -> None:
    out = bench("runner_overhead.py", "--cases", "24", "--latency-ms", "5", "--concurrency", "8", *mode)
    assert "status=completed results_written=24 errors=0" in out and "litellm imported by the run=False" in out
    assert re.search(r"ratio +\d+\.\d{3}x +\(target <= 1\.0[58]x: (met|NOT met)\)", out), out


def test_cache_replay_runs() -> None:
    out = bench("cache_replay.py", "--cases", "10")
    assert re.search(r"replay of 20 results .* results/s +target/rate", out), out


def test_startup_runs() -> None:
    out = bench("startup.py", "--repeat", "1", "--replay-cases", "10")
    for label in ("benchrun --help", "benchrun dataset validate", "benchrun run, 1 case", "benchrun reproduce --from-cache"):
        assert label in out, (label, out)


def test_ledger_throughput_runs() -> None:
    out = bench("ledger_throughput.py", "--rows", "20", "--writers", "1", "--backends", "sqlite")
    for path in ("bare 1 txn/row", "add_result", "runner thread", "runner +2 cache"):
        assert re.search(rf"sqlite +1 +{re.escape(path)} +\d+", out), (path, out)


def test_peers_runs_benchrun_alone_when_no_peer_is_installed() -> None:
    out = bench("peers.py", "--inspect", "", "--promptfoo", "", "--repeat", "1", "--cases", "12", "--latency-ms", "5",
                "--concurrency", "4")
    assert "inspect_ai: not found" in out and "promptfoo: not found" in out, out
    assert re.search(r"benchrun +min +\d+\.\d{3} s +median", out), out
    for work in ("rules only, one call per case", "answer + judge per case"):  # each checked by the server's counts
        assert re.search(rf"12 cases, {re.escape(work)}, 5 ms, 4 in flight: ideal 0\.\d\d s[^\n]*\n +benchrun +\d+\.\d\d s +\d+\.\d\dx",
                         out), (work, out)
