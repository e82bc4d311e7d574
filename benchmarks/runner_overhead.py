"""Runner overhead: N cases against our OpenAI-compatible test server at fixed latency.

Prints the wall time of the run (ledger writes on, cache off), the ideal, and
their ratio. Every case makes two calls (the candidate's answer, then the
judge's verdict), each holding one of the `concurrency` slots, so the ideal is
    cases × 2 calls × latency / concurrency
The brief's single-call figure (cases × latency / concurrency) is printed too.
`--rules-only` drops rubric and judge from the spec (a run scored by its rules alone): one call per
case, so the ideal is cases × latency / concurrency (target <= 1.10x).

The calls are made as `benchrun run` makes them: `--transport openai` (the default for these
`openai/...` models with an `api_base`) makes them over aiohttp in the run's own process;
`--transport litellm` makes them through litellm, and then `--call-workers auto` (the default) forks
worker processes for them when the run is big enough (see benchrun.callpool); `--call-workers 0`
keeps them in the run's own process. Forking the workers counts in the wall time. Also printed: the CPU
per call in the run's process and in the workers, and the mean call latency litellm saw, which
splits the overhead into time inside the calls (litellm, the event loops, the server) and outside.

`--reference` also times the same calls (answer then judge, `concurrency` cases at a time) with
nothing around them, in one process: through raw aiohttp (the engine of the OpenAI-compatible transport:
the floor for the run), raw httpx, and bare `litellm.acompletion` (what any litellm-based runner starts from).

    python benchmarks/runner_overhead.py [--cases 2000] [--latency-ms 200] [--concurrency 32]
                                         [--transport openai|litellm] [--call-workers auto] [--reference] [--rules-only]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
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


ANSWER = "Please open a ticket with the billing team."


def start_server(tmp: Path, latency_ms: float, rules: list[dict[str, str]] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The test server as its own process: every answer `ANSWER`, the judge's `JUDGE` (or ``rules``)."""
    cfg = {"latency_ms": latency_ms, "rules": rules if rules is not None else [{"model": "judge", "reply": JUDGE}],
           "default_reply": ANSWER}
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


async def bare_calls(url: str, n_cases: int, concurrency: int, how: str, judged: bool = True) -> tuple[float, float]:
    """The same calls with nothing around them: per case an answer then a judge call, `concurrency` cases at
    a time, in this one process; through raw aiohttp (the engine of benchrun's OpenAI-compatible transport),
    raw httpx or bare litellm.acompletion. Returns (wall seconds, CPU seconds of this process)."""
    import aiohttp
    import httpx
    import litellm

    sem = asyncio.Semaphore(concurrency)
    # 16 clients in turn, as benchrun.openai_http does: one httpcore pool's CPU per call grows with the calls
    # in flight on it (12 ms per call at 128 in flight with one client, 2 ms with 8)
    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=2 * concurrency)) for _ in range(16)]
    turn = iter(range(10**9))
    async with contextlib.AsyncExitStack() as stack:
        for c in clients:
            await stack.enter_async_context(c)
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))

        async def call(model: str, text: str) -> None:
            msgs = [{"role": "user", "content": text}]
            if how == "aiohttp":
                async with session.post(f"{url}/chat/completions", json={"model": model, "messages": msgs},
                                        headers={"Authorization": "Bearer x"}) as resp:
                    resp.raise_for_status()
                    await resp.json()
            elif how == "httpx":
                client = clients[next(turn) % len(clients)]
                r = await client.post(f"{url}/chat/completions", json={"model": model, "messages": msgs},
                                      headers={"Authorization": "Bearer x"})
                r.raise_for_status()
                r.json()
            else:
                await litellm.acompletion(model=f"openai/{model}", messages=msgs, api_base=url, api_key="x",
                                          num_retries=0, max_retries=0, timeout=30)

        async def case(i: int) -> None:
            async with sem:
                await call("cand", f"Why was I charged twice? (order {i})")
                if judged:
                    await call("judge", f"Judge the answer to order {i}")

        await case(-1)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(case(i) for i in range(n_cases)))
        return time.perf_counter() - t0, time.process_time() - c0


def verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--transport", choices=("openai", "litellm"), default="openai",
                    help="the transport every model of the spec uses (default openai: aiohttp in this process)")
    ap.add_argument("--call-workers", default="auto",
                    help="processes making the model calls, as `benchrun run --call-workers` (default auto)")
    ap.add_argument("--rules-only", action="store_true",
                    help="no rubric and no judge: every case scored by its rules, one call per case")
    ap.add_argument("--reference", action="store_true",
                    help="also time the same calls through raw aiohttp, raw httpx and bare litellm in one process")
    args = ap.parse_args()

    from benchrun import callpool, providers, runner
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
                    "candidates": [{"model": "openai/cand", "api_base": url, "transport": args.transport,
                                    "price": {"input_per_1m": 1, "output_per_1m": 1}}],
                    "judge": {"model": "openai/judge", "api_base": url, "transport": args.transport,
                              "price": {"input_per_1m": 1, "output_per_1m": 1}},
                    "concurrency": {"global": args.concurrency, "per_model": args.concurrency},
                    "cache": False, "timeout_s": 30}
            if args.rules_only:
                del spec["rubric"], spec["judge"]
            (tmp / "s.yaml").write_text(yaml.safe_dump(spec))
            loaded = load_run_spec(tmp / "s.yaml")
            ledger = Ledger(str(tmp / "ledger.sqlite"))
            run_id = runner.create_run(loaded, ledger)
            if args.transport == "litellm":
                providers.setup_litellm()  # importing litellm takes seconds; it is start-up, not per-call overhead
            else:  # the OpenAI-compatible transport imports aiohttp at its first request (~0.1-0.25 s of CPU, two
                # SSL contexts included): start-up too, counted by startup.py's 1-case run, not here
                import aiohttp  # noqa: F401
            t0, c0 = time.perf_counter(), time.process_time()
            k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            n_workers = runner.call_workers_for(loaded, args.call_workers)
            pool = callpool.CallPool(n_workers, loaded.spec.concurrency.global_) if n_workers else None  # forking it is part of the run's time
            try:
                r = runner.Runner(loaded, ledger, run_id, use_cache=False, pool=pool)
                outcome = asyncio.run(r.execute())
            finally:
                if pool is not None:
                    pool.close()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            k1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the call workers, joined by close()
            worker_cpu = (k1.ru_utime + k1.ru_stime) - (k0.ru_utime + k0.ru_stime)
            rows = ledger.results(run_id)
            n_rows = len(rows)
            lat_ms = [x for r in rows for x in (r.latency_ms, r.judge_latency_ms) if x is not None]
            litellm_in_run = "litellm" in sys.modules  # before the references import it
            refs = {how: asyncio.run(bare_calls(url, args.cases, args.concurrency, how, not args.rules_only))
                    for how in (("aiohttp", "httpx", "litellm") if args.reference else ())}
        finally:
            proc.terminate()
            proc.wait()
    lat = args.latency_ms / 1000
    per_case = 1 if args.rules_only else 2
    ideal_calls = args.cases * per_case * lat / args.concurrency
    ideal_brief = args.cases * lat / args.concurrency
    print(f"cases={args.cases} latency={args.latency_ms:.0f}ms concurrency={args.concurrency} "
          f"transport={args.transport} status={outcome.status} results_written={n_rows} "
          f"errors={outcome.progress.errors} litellm imported by the run={litellm_in_run}")
    calls = per_case * args.cases
    if args.rules_only and any(r.judge_raw is not None or r.scored_by != "rules" for r in rows):
        raise SystemExit("--rules-only run called a judge")
    print(f"call workers {n_workers}" + (" (calls made in the run's own process)" if not n_workers else ""))
    print(f"wall time                         {wall:8.2f} s   (CPU per call: run process {1000 * cpu / calls:.2f} ms"
          f" + call workers {1000 * worker_cpu / calls:.2f} ms; load average {os.getloadavg()[0]:.2f})")
    mean_lat = sum(lat_ms) / max(len(lat_ms), 1)
    busy = len(lat_ms) * mean_lat / 1000 / args.concurrency
    print(f"mean call latency as the run saw it {mean_lat:.1f} ms (server: {args.latency_ms:.0f} ms); those calls "
          f"alone fill {busy:.2f} s of the {args.concurrency} slots, so {wall - busy:.2f} s is outside the calls")
    if args.rules_only:
        target = 1.05 if args.concurrency <= 32 else 1.15
        print(f"ideal, 1 call per case (rules only) {ideal_calls:6.2f} s   ratio {wall / ideal_calls:5.3f}x  "
              f"(target <= {target}x: {verdict(wall / ideal_calls, target)})")
    else:
        target = 1.08 if args.concurrency <= 32 else 1.15
        print(f"ideal, 2 calls per case           {ideal_calls:8.2f} s   ratio {wall / ideal_calls:5.3f}x  "
              f"(target <= {target}x: {verdict(wall / ideal_calls, target)})")
        print(f"ideal, 1 call per case (brief)    {ideal_brief:8.2f} s   ratio {wall / ideal_brief:5.2f}x")
    for how, (t, ref_cpu) in refs.items():
        label = {"aiohttp": "raw aiohttp", "httpx": "raw httpx", "litellm": "bare litellm"}[how]
        print(f"reference: same calls, {label:<12} {t:8.2f} s   ratio {t / ideal_calls:5.3f}x  "
              f"(CPU per call {1000 * ref_cpu / calls:.2f} ms; the runner took {wall / t:.2f}x this)")


if __name__ == "__main__":
    main()
