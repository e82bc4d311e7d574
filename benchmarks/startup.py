"""Start-up cost: each command as a fresh process, against a bare interpreter (`python -c pass`).

Prints the median wall time of N runs of each and its ratio to `python -c pass`:

* `import benchrun` and `import benchrun; benchrun.run` (the public API: names load lazily);
* `benchrun --help`, `benchrun run --help`;
* `benchrun dataset validate datasets/billing-support.yaml`;
* a 1-case run against the test server (tests/fakeserver.py as its own process, no latency),
  into a fresh SQLite ledger each time.

Targets of issue 16 (on this machine): --help under 0.25 s, dataset validate under 0.6 s, the
1-case run under 1.5 s. Tests never assert these; this script only measures.

    python benchmarks/startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "benchrun"


def timed(argv: list[str], repeat: int, env: dict[str, str], cwd: Path, setup: object = None) -> float:
    times = []
    for _ in range(repeat):
        if callable(setup):
            setup()
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {r.returncode}: {r.stderr[-500:]}")
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port_file = tmp / "port"
        cfg = tmp / "cfg.json"
        cfg.write_text(json.dumps({"rules": [{"model": "judge", "reply": '{"score": 5, "pass": true, "reason": "ok", '
                                                                         '"failure_mode": "none"}'}],
                                   "default_reply": "Please open a ticket."}))
        server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fakeserver.py"), "--port", "0", "--config",
                                   str(cfg), "--port-file", str(port_file)], stdout=subprocess.DEVNULL)
        try:
            t0 = time.time()
            while not port_file.exists():
                if time.time() - t0 > 30:
                    raise SystemExit("the test server did not start")
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
            spec = yaml.safe_load((ROOT / "runs" / "billing-support.yaml").read_text())
            spec["dataset"] = str(ROOT / "datasets" / "billing-support.yaml")
            spec["rubric"] = str((ROOT / "runs" / spec["rubric"]).resolve())
            spec["candidates"] = [{"model": "openai/cand", "api_base": url, "price": {"input_per_1m": 1,
                                                                                     "output_per_1m": 1}}]
            spec["judge"] = {"model": "openai/judge", "api_base": url, "price": {"input_per_1m": 1, "output_per_1m": 1}}
            spec["samples"] = 1
            spec["select"] = {"limit": 1}
            spec_path = tmp / "one.yaml"
            spec_path.write_text(yaml.safe_dump(spec))
            ledger = tmp / "ledger.sqlite"

            def fresh_ledger() -> None:
                for p in tmp.glob("ledger.sqlite*"):
                    p.unlink()

            rows = [
                ("python -c pass", [sys.executable, "-c", "pass"], None),
                ("import benchrun", [sys.executable, "-c", "import benchrun"], None),
                ("import benchrun; benchrun.run", [sys.executable, "-c", "import benchrun; benchrun.run"], None),
                ("benchrun --help", [str(BIN), "--help"], None),
                ("benchrun run --help", [str(BIN), "run", "--help"], None),
                ("benchrun dataset validate (example)", [str(BIN), "dataset", "validate",
                                                         str(ROOT / "datasets" / "billing-support.yaml")], None),
                ("benchrun run (1 case, test server)", [str(BIN), "run", str(spec_path), "--ledger", str(ledger),
                                                        "--no-cache"], fresh_ledger),
            ]
            base = None
            print(f"{'command':40} {'median s':>9} {'x bare':>7}")
            for name, argv, setup in rows:
                t = timed(argv, args.repeat, env, tmp, setup)
                base = base or t
                print(f"{name:40} {t:9.3f} {t / base:7.1f}")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
