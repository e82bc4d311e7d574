"""Start-up and replay: `benchrun --help`, a 1-case run, and replaying a run from the cache.

Each figure is a real `benchrun` process, timed from start to exit (wall clock), against our
OpenAI-compatible test server (`tests/fakeserver.py`, a separate process, no latency):

* `benchrun --help`                              target <= 0.25 s
* `benchrun dataset validate` of the example dataset   target <= 0.6 s (issue 16)
* `benchrun run` of a 1-case spec (fresh ledger; the answer and the judge's verdict are
  written to it before the process exits)        target <= 1.0 s (issue 15; issue 16: 1.5 s)
* `benchrun reproduce RUN --from-cache` of a run of 2,000 cases x 2 models: results replayed
  per second of the whole command (4,000 results)  target >= 2,000 results/s

Printed as ratios to the targets and to `python -c pass` (the interpreter's own start-up floor).
`--repeat N` times the two start-up commands N times each (min and median are printed).

    python benchmarks/startup.py [--repeat 3] [--replay-cases 2000] [--skip-replay]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCHRUN = str(Path(sys.executable).parent / "benchrun")


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The test server as its own process, no latency (the same start-up as runner_overhead.py's)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from runner_overhead import start_server as start_with_latency

    return start_with_latency(tmp, 0)


def write_project(tmp: Path, url: str, n_cases: int, candidates: list[str], concurrency: int) -> Path:
    cases = [{"id": f"c{i:05d}", "input": f"Why was I charged twice? (order {i})", "severity": "medium",
              "must_not": ["I have refunded"]} for i in range(n_cases)]
    (tmp / f"d{n_cases}.yaml").write_text(yaml.safe_dump({"name": "bench", "version": "1", "cases": cases}))
    rubric = yaml.safe_load((ROOT / "tests" / "data" / "bench_rubric.yaml").read_text())
    (tmp / "r.yaml").write_text(yaml.safe_dump(rubric))
    price = {"input_per_1m": 1, "output_per_1m": 1}
    spec = {"name": "bench", "dataset": f"d{n_cases}.yaml", "rubric": "r.yaml",
            "candidates": [{"model": f"openai/{c}", "api_base": url, "price": price} for c in candidates],
            "judge": {"model": "openai/judge", "api_base": url, "price": price},
            "concurrency": {"global": concurrency, "per_model": concurrency}, "timeout_s": 30}
    path = tmp / f"s{n_cases}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


CPU: list[float] = []  # CPU seconds (user + system) of each timed child, in order


def timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append((k1.ru_utime + k1.ru_stime) - (k0.ru_utime + k0.ru_stime))
    return wall, r


FLOOR: list[float] = []  # `python -c pass`, the interpreter's own start-up


def show(label: str, times: list[float], target: float, issue_target: str = "") -> None:
    lo, med = min(times), statistics.median(times)
    cpu = min(CPU[-len(times):])
    vs_floor = f"  {lo / min(FLOOR):5.1f}x python -c pass" if FLOOR else ""
    print(f"{label:<40} wall min {lo:6.3f} s  median {med:6.3f} s  (CPU min {cpu:5.3f} s)   "
          f"min/target {lo / target:5.2f}x  (target <= {target} s{issue_target}){vs_floor}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--replay-cases", type=int, default=2000)
    ap.add_argument("--skip-replay", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        proc, url = start_server(tmp)
        try:
            floor = [timed([sys.executable, "-c", "pass"], env, tmp)[0] for _ in range(args.repeat)]
            show("python -c pass (interpreter floor)", floor, 0.25)
            FLOOR.extend(floor)
            helps = []
            for _ in range(args.repeat):
                t, r = timed([BENCHRUN, "--help"], env, tmp)
                assert r.returncode == 0, r.stderr
                helps.append(t)
            show("benchrun --help", helps, 0.25)
            validates = []
            for _ in range(args.repeat):
                t, r = timed([BENCHRUN, "dataset", "validate", str(ROOT / "datasets" / "billing-support.yaml")], env, tmp)
                assert r.returncode == 0, r.stderr
                validates.append(t)
            show("benchrun dataset validate (example)", validates, 0.6, "; issue 16")

            one = write_project(tmp, url, 1, ["cand"], 4)
            runs = []
            for i in range(args.repeat):
                t, r = timed([BENCHRUN, "run", str(one), "--json"], {**env, "BENCHRUN_LEDGER": str(tmp / f"one{i}.db")},
                             tmp)
                assert r.returncode == 0, r.stderr[-2000:]
                assert json.loads(r.stdout)["models"][0]["passed"] == 1
                runs.append(t)
            show("benchrun run, 1 case (answer + judge)", runs, 1.0, "; issue 16: <= 1.5 s")

            if not args.skip_replay:  # the same record and replay as benchmarks/cache_replay.py
                from cache_replay import TARGET, record, replay

                n = args.replay_cases
                led = {**env, "BENCHRUN_LEDGER": str(tmp / "replay.db")}
                run_id = record(tmp, url, n, led)
                t_rep, cpu = replay(run_id, led, tmp)
                results = 2 * n
                rate = results / t_rep
                print(f"{'benchrun reproduce --from-cache':<44} {t_rep:6.2f} s for {results} results: {rate:7.0f} "
                      f"results/s   target/rate {TARGET / rate:5.2f}x  (target >= {TARGET:.0f}/s; CPU {cpu:.2f} s)")
        finally:
            proc.terminate()
            proc.wait()
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
