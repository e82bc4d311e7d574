"""Model calls in worker processes (``--call-workers``): who really makes the calls, and what happens
when the run's process or a worker dies, or the user presses Ctrl-C.

Which process sent a request is read off the machine itself: the fake server records each request's
client TCP port, and ``/proc`` says which process owns the socket with that port.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from benchrun import callpool, providers, runner
from benchrun.errors import RunAborted
from benchrun.spec import ModelRef, Retries, load_run_spec
from conftest import GOOD, Project, fake_config, make_cases
from reliability.relsupport import BENCHRUN, ServerProcess

ROOT = Path(__file__).resolve().parents[1]


def socket_ports(pid: int, server_port: int) -> set[int]:
    """Local ports of ``pid``'s TCP connections to ``server_port`` on 127.0.0.1 (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            local, remote, inode = f[1], f[2], f[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))  # a zombie is dead


def through_litellm(spec_path: Path) -> Path:
    """Force every model of a spec onto the litellm transport: call workers serve litellm's calls only."""
    spec = yaml.safe_load(spec_path.read_text())
    for m in [*spec["candidates"], spec["judge"]]:
        m["transport"] = "litellm"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec_path


def children(pid: int) -> list[int]:
    p = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in p.read_text().split()] if p.exists() else []


# --------------------------------------------------------------------------- the pool itself

PROBE = textwrap.dedent("""
    import asyncio, json, os, sys, threading
    sys.path.insert(0, {tests!r})
    from benchrun import callpool, providers
    from benchrun.spec import ModelRef, Retries
    from test_callpool import socket_ports

    url, server_port, other_thread, pad = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
    if other_thread:  # another thread alive: forking now would be unsafe, so the pool must not fork
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    pool = callpool.CallPool(2, 40)
    model = "openai/echo" if pad else "openai/good"  # echo: the answer is the question, as long
    ref = ModelRef(model=model, api_base=url, price={{"input_per_1m": 1, "output_per_1m": 2}}, transport="litellm")
    ep = providers.resolve(ref)

    async def main():
        await pool.attach()
        msgs = [[{{"role": "user", "content": f"question {{i}} " + "x" * pad}}] for i in range(40)]
        results = await asyncio.gather(*(pool.complete(ref, ep, m, {{"temperature": 0}}, 10, Retries())
                                         for m in msgs))
        workers = [w.process.pid for w in pool.workers]
        ports = {{str(pid): sorted(socket_ports(pid, server_port)) for pid in [os.getpid(), *workers]}}
        await pool.detach()
        return results, workers, ports

    results, workers, ports = asyncio.run(main())
    pool.close()
    print(json.dumps({{
        "method": pool.method,
        "texts": [r.text for r in results], "errors": [r.error for r in results],
        "costs": [r.cost_usd for r in results], "ports": ports, "me": os.getpid(), "workers": workers,
    }}))
""").format(tests=str(ROOT / "tests"))


# "long": 40 calls of 300 KB out and 300 KB back at once, 12 MB through the sockets both ways together, which
# could deadlock a run and a worker that each blocked sending while the other's buffer was full.
@pytest.mark.parametrize(("other_thread", "pad"), [(False, 0), (True, 0), (False, 300_000)],
                         ids=["fork", "spawn", "long"])
def test_the_workers_make_the_calls_and_exit_when_closed(tmp_path: Path, other_thread: bool, pad: int) -> None:
    cfg = fake_config(latency_ms=100)
    cfg["rules"].insert(0, {"model": "echo", "reply": "{last_user}"})
    srv = ServerProcess(tmp_path, cfg)
    try:
        server_port = int(srv.base.rsplit(":", 1)[1])
        r = subprocess.run([sys.executable, "-c", PROBE, srv.url, str(server_port), "1" if other_thread else "0",
                            str(pad)],
                           capture_output=True, text=True, timeout=180, check=False)
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        log = srv.get("/requests")
    finally:
        srv.close()
    assert out["method"] == ("spawn" if other_thread else "fork")
    assert out["errors"] == [None] * 40
    assert out["texts"] == ([f"question {i} " + "x" * pad for i in range(40)] if pad else [GOOD] * 40)
    assert all(c is not None and c > 0 for c in out["costs"])  # priced in the worker from the spec's price
    assert len(log) == 40
    # every request came from a worker's socket, none from the run's process, and both workers did work
    owner = {port: int(pid) for pid, ports in out["ports"].items() for port in ports}
    senders = [owner.get(q["client_port"]) for q in log]
    assert None not in senders, "a request came from a socket no probed process owns"
    assert out["me"] not in senders
    assert set(senders) == set(out["workers"])
    # close() ended them
    assert not any(alive(pid) for pid in out["workers"])


def test_a_worker_that_dies_idle_still_stops_the_pool() -> None:
    """A worker killed while it holds no call loses nothing, but the run must not go on a worker short without
    saying so: the next call fails with the worker's death (the run ends interrupted and can be resumed)."""
    pool = callpool.CallPool(2, 4)
    ref = ModelRef(model="openai/good", api_base="http://127.0.0.1:9/v1", transport="litellm")
    dead = pool.workers[0].process.pid

    async def main() -> str:
        await pool.attach()
        os.kill(dead, signal.SIGKILL)
        for _ in range(200):  # its socket closes: the listener sees it
            if pool.workers[0].dead:
                break
            await asyncio.sleep(0.05)
        try:
            await pool.complete(ref, providers.resolve(ref), [{"role": "user", "content": "hi"}], {}, 5, Retries())
        except RunAborted as e:
            return str(e)
        finally:
            await pool.detach()
        return "no error"

    try:
        msg = asyncio.run(main())
    finally:
        pool.close()
    assert msg.startswith(f"call worker process {dead} exited (exit code -9) with 0 calls outstanding"), msg
    assert not any(alive(w.process.pid) for w in pool.workers)


def test_auto_uses_workers_only_where_they_pay() -> None:
    assert callpool.auto_workers(2000, 32, any_local=False, cpus=2) == 4  # one per 8 calls in flight
    assert callpool.auto_workers(2000, 16, any_local=False, cpus=2) == 2
    assert callpool.auto_workers(2000, 20, any_local=False, cpus=2) == 3
    assert callpool.auto_workers(2000, 1000, any_local=False, cpus=16) == callpool.AUTO_MAX_WORKERS
    assert callpool.auto_workers(100, 32, any_local=False, cpus=2) == 0  # too small a run to pay for a fork
    assert callpool.auto_workers(2000, 4, any_local=False, cpus=2) == 0  # one loop is nowhere near busy
    assert callpool.auto_workers(2000, 32, any_local=True, cpus=2) == 0  # the local model sets the pace
    assert callpool.auto_workers(2000, 32, any_local=False, cpus=1) == 0


def test_the_global_limit_is_shared_out_between_the_workers() -> None:
    assert callpool.split_slots(32, 4) == [8, 8, 8, 8]
    assert callpool.split_slots(7, 3) == [3, 2, 2]
    assert callpool.split_slots(2, 4) == [1, 1]  # never a worker without a slot
    assert sum(callpool.split_slots(33, 8)) == 33


@pytest.mark.parametrize("workers", ["0", "3", "fast"], ids=["in-process", "3-workers", "openai-transport"])
def test_calls_in_flight_never_exceed_the_limits(tmp_path: Path, workers: str) -> None:
    """The server counts the requests it is serving at once, in all and per model: never more than the spec's
    global and per-model limits, however the calls are made; and the global limit is reached, so it is what
    bounds the run (with call workers, more units are under way than calls may be in flight)."""
    srv = ServerProcess(tmp_path, fake_config(latency_ms=60, latency_jitter_ms=40))
    try:
        project = Project(tmp_path, srv.url)
        project.write_dataset(make_cases(60))
        project.write_rubric()
        spec_path = project.write_spec(concurrency={"global": 7, "per_model": 5})
        if workers != "fast":  # "fast": the OpenAI-compatible transport, in the run's process
            through_litellm(spec_path)
        spec = yaml.safe_load(spec_path.read_text())
        spec["judge"]["concurrency"] = 3
        (project.root / "runs" / "mini.yaml").write_text(yaml.safe_dump(spec))
        r = project.cli("run", "runs/mini.yaml", "--call-workers", "0" if workers == "fast" else workers, "--json",
                        subprocess_=True)
        assert r.returncode == 0, r.stderr[-2000:]
        stats = srv.get("/stats")
    finally:
        srv.close()
    assert stats["completed"] == 60 * 2 * 2  # every cell answered and judged once
    assert stats["max_in_flight"] == 7
    per_model = stats["max_in_flight_by_model"]
    assert set(per_model) == {"good", "bad", "judge"}
    assert per_model["good"] <= 5 and per_model["bad"] <= 5
    assert per_model["judge"] == 3


def test_call_workers_must_be_auto_or_a_count(project: Project) -> None:
    spec = through_litellm(project.setup())
    for bad in ("-1", "two"):
        r = project.cli("run", str(spec), "--call-workers", bad)
        assert r.returncode == 2, (bad, r.stderr)
        assert r.stderr.strip().count("\n") == 0 and "--call-workers" in r.stderr and "Traceback" not in r.stderr
    assert not project.ledger.exists() or _count(project.ledger, "SELECT COUNT(*) FROM run") == 0
    loaded = load_run_spec(spec)  # global concurrency 4: no more workers than slots to share out
    assert runner.call_workers_for(loaded, "9") == 4
    assert runner.call_workers_for(loaded, "3") == 3
    assert runner.call_workers_for(loaded, "0") == 0
    # the OpenAI-compatible transport makes its calls in the run's own process: no workers, whatever was asked
    fast = load_run_spec(project.write_spec(name="fast"))
    assert {ref.key: runner.providers.transport_for(ref) for ref in [*fast.spec.candidates, fast.spec.judge]} == \
        {"good": "openai", "bad": "openai", "openai/judge": "openai"}
    assert runner.call_workers_for(fast, "3") == 0 and runner.call_workers_for(fast, "auto") == 0


# --------------------------------------------------------------------------- deaths and Ctrl-C in a real run

CASES = 40


def _count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return int(con.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _start(tmp: Path, srv: ServerProcess) -> tuple[Project, subprocess.Popen[str]]:
    project = Project(tmp, srv.url)
    project.write_dataset(make_cases(CASES))
    project.write_rubric()
    spec = through_litellm(project.write_spec(concurrency={"global": 8, "per_model": 8}, timeout_s=30))
    return project, _run(project, "run", str(spec))


def _run(project: Project, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "BENCHRUN_LEDGER": str(project.ledger)}
    return subprocess.Popen([BENCHRUN, *args, "--call-workers", "2", "--json"], cwd=project.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_results(project: Project, proc: subprocess.Popen[str], n: int) -> list[int]:
    """Wait for ``n`` results; the run's two call workers."""
    deadline = time.monotonic() + 120
    while _count(project.ledger, "SELECT COUNT(*) FROM result") < n:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)
    workers = children(proc.pid)
    assert len(workers) == 2, workers  # the two call workers (the fake server is not its child)
    return workers


def _reap(pids: list[int]) -> None:
    """After a failed assertion: do not leave workers behind."""
    for p in pids:
        if alive(p):
            os.kill(p, signal.SIGKILL)


def _gone(pids: list[int], within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


def _resume_and_check(project: Project, srv: ServerProcess, run_id: str) -> None:
    before = srv.get("/stats")["total"]
    proc = _run(project, "run", "--resume", run_id)
    out, errs = proc.communicate(timeout=300)
    assert proc.returncode == 0, errs[-2000:]
    assert json.loads(out)["conditions"]["run_id"] == run_id
    # every cell exactly once, and nothing asked twice that was answered before (the cache)
    assert _count(project.ledger, "SELECT COUNT(*) FROM result") == 2 * CASES
    assert _count(project.ledger, "SELECT COUNT(*) FROM (SELECT DISTINCT case_id, model_key FROM result)") == 2 * CASES
    assert _count(project.ledger, "SELECT COUNT(*) FROM run WHERE status = 'completed'") == 1
    # nothing recorded was asked again (the cache); at most the calls in flight when it stopped were paid twice
    completed = srv.get("/stats")["completed_by_prompt_key"]
    repaid = sum(n - 1 for n in completed.values())
    assert repaid <= 8, f"{repaid} calls paid twice; at most the 8 in flight may be"
    assert srv.get("/stats")["total"] > before


def _run_id(project: Project) -> str:
    con = sqlite3.connect(project.ledger)
    try:
        return str(con.execute("SELECT id FROM run").fetchone()[0])
    finally:
        con.close()


def _stop_midway_then_resume(tmp_path: Path, stop: Callable[[Project, subprocess.Popen[str], list[int]], None]) -> None:
    """Start a run with two call workers; after 10 results ``stop`` ends it (and checks how); then resume it.

    At 250 ms a call the run needs about 5 s, so on a loaded machine it is still far from done when stopped."""
    srv = ServerProcess(tmp_path, fake_config(latency_ms=250))
    workers: list[int] = []
    try:
        project, proc = _start(tmp_path, srv)
        workers = _wait_results(project, proc, 10)
        stop(project, proc, workers)
        assert _gone(workers), "call workers outlived the run"
        if proc.returncode == 3:  # stopped, not killed: it marked itself interrupted
            assert _count(project.ledger, "SELECT COUNT(*) FROM run WHERE status = 'interrupted'") == 1
        else:  # killed: its workers made no call after it died, so the server's log stops growing
            time.sleep(0.5)
            n = srv.get("/stats")["total"]
            time.sleep(1.0)
            assert srv.get("/stats")["total"] == n
        _resume_and_check(project, srv, _run_id(project))
    finally:
        _reap(workers)
        srv.close()


def test_killing_the_run_stops_its_workers_at_once_and_resume_completes(tmp_path: Path) -> None:
    def stop(_project: Project, proc: subprocess.Popen[str], _workers: list[int]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL

    _stop_midway_then_resume(tmp_path, stop)


def test_a_dead_worker_stops_the_run_as_interrupted_and_resume_completes(tmp_path: Path) -> None:
    def stop(project: Project, proc: subprocess.Popen[str], workers: list[int]) -> None:
        os.kill(workers[0], signal.SIGKILL)
        _out, errs = proc.communicate(timeout=60)
        assert proc.returncode == 3, errs[-2000:]
        assert f"call worker process {workers[0]} exited" in errs and "Traceback" not in errs
        assert _count(project.ledger, "SELECT COUNT(*) FROM result") < 2 * CASES
        assert _count(project.ledger, "SELECT COUNT(*) FROM result WHERE status = 'passed' AND response_text IS NULL") \
            == 0

    _stop_midway_then_resume(tmp_path, stop)


def test_ctrl_c_interrupts_the_run_and_its_workers(tmp_path: Path) -> None:
    def stop(_project: Project, proc: subprocess.Popen[str], _workers: list[int]) -> None:
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole foreground group gets it
        _out, errs = proc.communicate(timeout=60)
        assert proc.returncode == 3, errs[-2000:]
        assert "interrupted" in errs and "Traceback" not in errs

    _stop_midway_then_resume(tmp_path, stop)
