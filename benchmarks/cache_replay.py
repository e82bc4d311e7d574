"""Replay from the cache: `benchrun reproduce RUN --from-cache` of a run of N cases x 2 models.

Records a run against our OpenAI-compatible test server (`tests/fakeserver.py`, its own process, no
latency; answer + judge per cell, so 4 x N calls), then times the replay as a real `benchrun`
process from start to exit: every answer and verdict comes from the ledger's response cache, every
result is scored and written to the ledger, and the reproduction report is built and stored.

Printed: wall time and CPU time (user + system) of the replay process, results per second of each,
the ratio to the target (issue 15: >= 2,000 results/s), and the load average before and after
(the machine is shared: the CPU figure is the steadier one). ``--repeat`` replays the same run
several times (each replay is a new run in the ledger) and prints every figure plus the best.

    python benchmarks/cache_replay.py [--cases 2000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import BENCHRUN, CPU, start_server, timed, write_project

TARGET = 2000.0  # results per second


def record(tmp: Path, url: str, n_cases: int, env: dict[str, str]) -> str:
    """Record the run to replay: N cases x 2 candidates, answer + judge each, concurrency 64."""
    spec = write_project(tmp, url, n_cases, ["a", "b"], 64)
    t, r = timed([BENCHRUN, "run", str(spec), "--json"], env, tmp)
    if r.returncode != 0:
        raise SystemExit(f"recording the run failed: {r.stderr[-2000:]}")
    print(f"(recorded the run to replay: {n_cases} cases x 2 models, {4 * n_cases} calls at latency 0, "
          f"concurrency 64: {t:.1f} s)")
    return str(json.loads(r.stdout)["conditions"]["run_id"])


def replay(run_id: str, env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """One `reproduce --from-cache` process: ``(wall s, CPU s)``; exits on failure."""
    wall, r = timed([BENCHRUN, "reproduce", run_id, "--from-cache", "--json"], env, cwd)
    if r.returncode not in (0, 1):  # 1: "not reproduced", still a finished replay
        raise SystemExit(f"replay failed: {r.stderr[-2000:]}")
    d = json.loads(r.stdout)
    if d["mode"] != "from-cache" or not d["reproduced"]:
        raise SystemExit(f"replay did not reproduce the run: {d['verdict']}")
    return wall, CPU[-1]


def line(label: str, seconds: float, n_results: int) -> str:
    rate = n_results / seconds
    return f"{label:<10} {seconds:6.2f} s  {rate:7.0f} results/s  target/rate {TARGET / rate:5.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    la = os.getloadavg()
    print(f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; {os.cpu_count()} cores")
    n_results = 2 * args.cases
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        proc, url = start_server(tmp)
        try:
            led = {**env, "BENCHRUN_LEDGER": str(tmp / "replay.db")}
            run_id = record(tmp, url, args.cases, led)
            proc.terminate()  # a replay makes no call: the server is not needed (and takes no CPU) from here
            proc.wait()
            walls, cpus = [], []
            for _ in range(args.repeat):
                wall, cpu = replay(run_id, led, tmp)
                walls.append(wall)
                cpus.append(cpu)
                print(f"replay of {n_results} results (load {os.getloadavg()[0]:.2f}): "
                      f"{line('wall', wall, n_results)};  {line('CPU', cpu, n_results)}")
            if args.repeat > 1:
                print(f"best: {line('wall', min(walls), n_results)};  {line('CPU', min(cpus), n_results)}")
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
