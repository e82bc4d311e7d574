"""benchrun side by side with its peers (inspect_ai, promptfoo) on the same work, against the same test server.

Every tool is run as its own process, timed from its start to its exit (start-up, imports and its own log or
database included), against our OpenAI-compatible test server (`tests/fakeserver.py`, a separate process):

* **1-case run**: one case, the candidate's answer and then a judge call on it, at latency 0; each run writes a
  new store (benchrun: a new ledger; inspect_ai: a new log directory; promptfoo: a new config directory, its
  SQLite database, with its cache off). Printed: min and median over ``--repeat`` runs.
* **throughput**: ``--cases`` cases (default 2,000) at ``--latency-ms`` (default 200 ms) with at most
  ``--concurrency`` calls in flight (default 32), rules-only (one call per case, checked by a substring rule)
  and judged (answer + judge per case). The ideal is cases x calls per case x latency / concurrency; printed
  as wall / ideal. Each tool's start-up is inside its wall time (benchrun's in-process figure, without it, is
  `runner_overhead.py`'s).

Each run is checked against the server's own counters before its time is printed: exactly the expected number
of completed calls (no cache hit, no retry hidden in the figure), and no more than ``--concurrency`` in flight
at once (the server's ``max_in_flight``). The peers' settings that give the same work: inspect_ai
``--max-samples N --max-connections N`` (one sample holds one call at a time) with its ``openai-api`` provider
(chat completions), a substring scorer or ``model_graded_qa``; promptfoo ``--max-concurrency N`` with
``not-contains`` and ``llm-rubric`` assertions. Where their scorers differ from benchrun's (inspect's grader
wants ``GRADE: C``), the server answers each judge in its own format, so every tool parses a passing verdict.

The peers are not dependencies of benchrun and this script installs nothing. Give their executables, or have
them on PATH; a peer not found is reported as such and skipped. To install them beside the project:

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install inspect-ai
    npm install --prefix /tmp/pf promptfoo

    python benchmarks/peers.py [--inspect /tmp/peers/bin/inspect] [--promptfoo /tmp/pf/node_modules/.bin/promptfoo]
                               [--cases 2000] [--latency-ms 200] [--concurrency 32] [--repeat 3] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCHRUN = str(Path(sys.executable).parent / "benchrun")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from runner_overhead import ANSWER, JUDGE, start_server  # noqa: E402

from fakeserver import http_json  # noqa: E402

VERDICT_JSON = JUDGE  # the verdict format benchrun's judge and promptfoo's llm-rubric parse
VERDICT_INSPECT = "The answer is helpful.\n\nGRADE: C"  # inspect_ai's model_graded_qa
RULES = [{"model": "^judge$", "reply": VERDICT_JSON}, {"model": "^grader$", "reply": VERDICT_INSPECT}]
RULE_TEXT = "I have refunded"  # every tool checks that the answer does not contain this


def inputs(n: int) -> list[str]:
    return [f"Why was I charged twice? (order {i})" for i in range(n)]


class Server:
    """The test server as its own process; its config is replaced per workload (POST /config)."""

    def __init__(self, tmp: Path) -> None:
        self.proc, self.url = start_server(tmp, 0, RULES)  # runner_overhead.py's, with a rule per judge format
        self.base = self.url.removesuffix("/v1")

    def set_latency(self, latency_ms: float) -> None:
        http_json(self.base + "/config", {"latency_ms": latency_ms, "default_reply": ANSWER, "rules": RULES})

    def reset(self) -> None:
        http_json(self.base + "/reset", {})

    def stats(self) -> dict[str, object]:
        return http_json(self.base + "/stats")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


# ----------------------------------------------------------------------------- the three tools, same work


def benchrun_cmd(work: Path, url: str, n: int, judged: bool, concurrency: int) -> tuple[list[str], dict[str, str]]:
    cases = [{"id": f"c{i:05d}", "input": text, "severity": "medium", "must_not": [RULE_TEXT]}
             for i, text in enumerate(inputs(n))]
    (work / "d.yaml").write_text(yaml.safe_dump({"name": "bench", "version": "1", "cases": cases}))
    price = {"input_per_1m": 1, "output_per_1m": 1}
    spec: dict[str, object] = {
        "name": "bench", "dataset": "d.yaml",
        "candidates": [{"model": "openai/cand", "api_base": url, "price": price}],
        "concurrency": {"global": concurrency, "per_model": concurrency}, "cache": False, "timeout_s": 60}
    if judged:
        (work / "r.yaml").write_text((ROOT / "tests" / "data" / "bench_rubric.yaml").read_text())
        spec["rubric"] = "r.yaml"
        spec["judge"] = {"model": "openai/judge", "api_base": url, "price": price}
    (work / "s.yaml").write_text(yaml.safe_dump(spec))
    return [BENCHRUN, "run", str(work / "s.yaml"), "--json"], {"BENCHRUN_LEDGER": str(work / "ledger.sqlite")}


INSPECT_TASK = '''
import json
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import CORRECT, INCORRECT, Score, accuracy, model_graded_qa, scorer


@scorer(metrics=[accuracy()])
def must_not_contain(text):
    async def score(state, target):
        return Score(value=INCORRECT if text in state.output.completion else CORRECT)
    return score


@task
def bench():
    rows = json.load(open({inputs!r}))
    from inspect_ai.solver import generate
    return Task(dataset=[Sample(input=t, target="ticket") for t in rows], solver=generate(),
                scorer={scorer})
'''


def inspect_cmd(exe: str, work: Path, url: str, n: int, judged: bool,
                concurrency: int) -> tuple[list[str], dict[str, str]]:
    (work / "inputs.json").write_text(json.dumps(inputs(n)))
    scorer = ('[must_not_contain(' + repr(RULE_TEXT) + '), model_graded_qa(model="openai-api/fake/grader")]' if judged
              else 'must_not_contain(' + repr(RULE_TEXT) + ')')
    (work / "task.py").write_text(INSPECT_TASK.format(inputs=str(work / "inputs.json"), scorer=scorer))
    return ([exe, "eval", "task.py",  # relative: inspect_ai globs it (cwd is work)
             "--model", "openai-api/fake/cand", "--log-dir", str(work / "logs"),
             "--display", "none", "--max-connections", str(concurrency), "--max-samples", str(concurrency),
             "--max-retries", "0", "--no-log-realtime"],
            {"FAKE_BASE_URL": url, "FAKE_API_KEY": "x", "INSPECT_LOG_LEVEL": "warning"})


def promptfoo_cmd(exe: str, work: Path, url: str, n: int, judged: bool,
                  concurrency: int) -> tuple[list[str], dict[str, str]]:
    asserts: list[dict[str, str]] = [{"type": "not-contains", "value": RULE_TEXT}]
    if judged:
        asserts.append({"type": "llm-rubric", "value": "The answer helps the customer with a double charge"})
    cfg = {"prompts": ["{{input}}"],
           "providers": [{"id": "openai:chat:cand", "config": {"apiBaseUrl": url, "apiKey": "x"}}],
           "defaultTest": {"assert": asserts,
                           "options": {"provider": {"id": "openai:chat:judge",
                                                    "config": {"apiBaseUrl": url, "apiKey": "x"}}}},
           "tests": [{"vars": {"input": t}} for t in inputs(n)]}
    (work / "promptfooconfig.yaml").write_text(yaml.safe_dump(cfg))
    return ([exe, "eval", "-c", str(work / "promptfooconfig.yaml"), "--no-cache", "--no-progress-bar",
             "--max-concurrency", str(concurrency), "-o", str(work / "out.json")],
            {"PROMPTFOO_CONFIG_DIR": str(work / "pfhome"), "PROMPTFOO_DISABLE_TELEMETRY": "1",
             "PROMPTFOO_DISABLE_UPDATE": "1", "PROMPTFOO_DISABLE_SHARING": "1", "NODE_NO_WARNINGS": "1"})


Tool = Callable[[Path, str, int, bool, int], tuple[list[str], dict[str, str]]]


def run_once(server: Server, name: str, make: Tool, tmp: Path, n: int, judged: bool, concurrency: int) -> float:
    """One timed process of one tool; checks the server saw exactly the calls the work needs. Returns wall s."""
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp))
    cmd, extra = make(work, server.url, n, judged, concurrency)
    server.reset()
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=work, env={**os.environ, **extra}, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    st = server.stats()
    want = n * (2 if judged else 1)
    if r.returncode not in (0, 100) or st["completed"] != want or st["total"] != want:  # 100: promptfoo, a test failed
        raise SystemExit(f"{name}: exit {r.returncode}, the server completed {st['completed']} of {st['total']} "
                         f"calls (expected {want}); stderr: {r.stderr[-1500:]}")
    if int(st["max_in_flight"]) > concurrency:  # type: ignore[call-overload]
        raise SystemExit(f"{name}: {st['max_in_flight']} calls in flight at once, more than {concurrency}")
    shutil.rmtree(work, ignore_errors=True)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inspect", default=shutil.which("inspect"), help="inspect_ai's `inspect` executable")
    ap.add_argument("--promptfoo", default=shutil.which("promptfoo"), help="promptfoo's executable")
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3, help="1-case runs per tool (min and median printed)")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    tools: dict[str, Tool] = {"benchrun": benchrun_cmd}
    for name, exe, make in (("inspect_ai", args.inspect, inspect_cmd), ("promptfoo", args.promptfoo, promptfoo_cmd)):
        if exe and Path(exe).exists():
            tools[name] = lambda w, u, n, j, c, exe=exe, make=make: make(exe, w, u, n, j, c)
        else:
            print(f"{name}: not found (give --{name.split('_')[0]} PATH; see this script's docstring), skipped")
    la = os.getloadavg()
    print(f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = Server(tmp)
        try:
            print(f"1-case run (answer + judge, latency 0, a new store each run), process start to exit, "
                  f"{args.repeat} runs each:")
            ones = {}
            for _ in range(args.repeat):  # the tools in turn, so a drift in the machine's speed hits all of them
                for name, make in tools.items():
                    ones.setdefault(name, []).append(run_once(server, name, make, tmp, 1, True, 4))
            for name, t in ones.items():
                print(f"  {name:<11} min {min(t):6.3f} s  median {statistics.median(t):6.3f} s"
                      f"  ({min(t) / min(ones['benchrun']):4.1f}x benchrun's min)")
            if args.skip_throughput:
                return
            server.set_latency(args.latency_ms)
            lat = args.latency_ms / 1000
            for judged in (False, True):
                calls = 2 if judged else 1
                ideal = args.cases * calls * lat / args.concurrency
                print(f"{args.cases} cases, {'answer + judge' if judged else 'rules only, one call'} per case, "
                      f"{args.latency_ms:.0f} ms, {args.concurrency} in flight: ideal {ideal:.2f} s "
                      "(whole process, start-up included)")
                for name, make in tools.items():
                    wall = run_once(server, name, make, tmp, args.cases, judged, args.concurrency)
                    print(f"  {name:<11} {wall:7.2f} s   {wall / ideal:5.2f}x the ideal")
        finally:
            server.close()
    la = os.getloadavg()
    print(f"load average after {la[0]:.2f}")


if __name__ == "__main__":
    main()
