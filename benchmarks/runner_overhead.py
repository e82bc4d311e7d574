"""Runner overhead: N cases against our OpenAI-compatible test server at fixed latency.

Prints the wall time of the run (ledger writes on, cache off), the ideal, and
their ratio. Every case makes two calls (the candidate's answer, then the
judge's verdict), each holding one of the `concurrency` slots, so the ideal is
    cases × 2 calls × latency / concurrency
The brief's single-call figure (cases × latency / concurrency) is printed too.

    python benchmarks/runner_overhead.py [--cases 2000] [--latency-ms 200] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")

JUDGE = '{"score": 5, "pass": true, "reason": "ok", "failure_mode": "none"}'


def start_server(tmp: Path, latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    cfg = {"latency_ms": latency_ms, "rules": [{"model": "judge", "reply": JUDGE}],
           "default_reply": "Please open a ticket with the billing team."}
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    port_file = tmp / "port"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakeserver.py"), "--port", "0", "--config",
                             str(tmp / "cfg.json"), "--port-file", str(port_file)])
    for _ in range(200):
        if port_file.exists() and port_file.read_text().strip():
            return proc, f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("test server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    from benchrun import providers, runner
    from benchrun.ledger import Ledger
    from benchrun.spec import load_run_spec

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        proc, url = start_server(tmp, args.latency_ms)
        try:
            cases = [{"id": f"c{i:05d}", "input": f"Why was I charged twice? (order {i})", "severity": "medium",
                      "must_not": ["I have refunded"]} for i in range(args.cases)]
            (tmp / "d.yaml").write_text(yaml.safe_dump({"name": "bench", "version": "1", "cases": cases}))
            rubric = yaml.safe_load((ROOT / "tests" / "data" / "bench_rubric.yaml").read_text())
            (tmp / "r.yaml").write_text(yaml.safe_dump(rubric))
            spec = {"name": "bench", "dataset": "d.yaml", "rubric": "r.yaml",
                    "candidates": [{"model": "openai/cand", "api_base": url, "price": {"input_per_1m": 1, "output_per_1m": 1}}],
                    "judge": {"model": "openai/judge", "api_base": url, "price": {"input_per_1m": 1, "output_per_1m": 1}},
                    "concurrency": {"global": args.concurrency, "per_model": args.concurrency},
                    "cache": False, "timeout_s": 30}
            (tmp / "s.yaml").write_text(yaml.safe_dump(spec))
            loaded = load_run_spec(tmp / "s.yaml")
            ledger = Ledger(str(tmp / "ledger.sqlite"))
            run_id = runner.create_run(loaded, ledger)
            r = runner.Runner(loaded, ledger, run_id, use_cache=False)
            providers.setup_litellm()  # importing litellm takes seconds; it is start-up, not per-call overhead
            t0, c0 = time.perf_counter(), time.process_time()
            outcome = asyncio.run(r.execute())
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            n_rows = len(ledger.cells(run_id))
        finally:
            proc.terminate()
            proc.wait()
    lat = args.latency_ms / 1000
    ideal_calls = args.cases * 2 * lat / args.concurrency
    ideal_brief = args.cases * lat / args.concurrency
    print(f"cases={args.cases} latency={args.latency_ms:.0f}ms concurrency={args.concurrency} status={outcome.status} "
          f"results_written={n_rows} errors={outcome.progress.errors}")
    print(f"wall time                         {wall:8.2f} s   (runner process CPU {cpu:.2f} s = "
          f"{1000 * cpu / (2 * args.cases):.2f} ms per call; load average {os.getloadavg()[0]:.2f})")
    print(f"ideal, 2 calls per case           {ideal_calls:8.2f} s   ratio {wall / ideal_calls:5.2f}x  (target <= 1.15x)")
    print(f"ideal, 1 call per case (brief)    {ideal_brief:8.2f} s   ratio {wall / ideal_brief:5.2f}x")


if __name__ == "__main__":
    main()
