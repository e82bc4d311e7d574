"""The embedded local model server: real GGUF model, real llama-cpp server, real litellm calls.

Tests that change process-global state (a running server, environment variables) run the
code in a child Python process, so they cannot disturb each other or the rest of the suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchrun import local_model as lm
from benchrun.errors import BadInput, RunAborted

MODEL = "local/smollm2-135m"
SRC = str(Path(lm.__file__).resolve().parents[1])
CHILD_TIMEOUT = 180  # a guard against hangs; the children normally finish in seconds


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, limit: float = 30.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def _run_child(code: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env={**os.environ, **(env or {})},
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def endpoint() -> Iterator[lm.LocalEndpoint]:
    ep = lm.ensure_server(MODEL)
    yield ep
    lm.stop_all()


def test_model_strings() -> None:
    assert lm.is_local(MODEL)
    assert not lm.is_local("openai/gpt-4o-mini")
    assert MODEL in lm.LOCAL_MODELS
    with pytest.raises(BadInput, match="unknown local model 'local/nope'; use one of: local/smollm2-135m"):
        lm.local_spec("local/nope")


def test_packaged_model_file_is_found_and_verified() -> None:
    path = lm.model_path(MODEL)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert path.read_bytes()[:4] == b"GGUF"


@pytest.mark.slow
def test_answers_through_litellm(endpoint: lm.LocalEndpoint) -> None:
    import litellm

    assert endpoint.litellm_model == "openai/smollm2-135m"
    assert endpoint.api_base == f"http://127.0.0.1:{endpoint.port}/v1"
    r = litellm.completion(
        messages=[{"role": "user", "content": "Say hello."}], max_tokens=16, temperature=0, **endpoint.litellm_kwargs()
    )
    text = r.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    # A chat answer, not a raw continuation of the ChatML prompt.
    assert "<|im_start|>" not in text and "<|im_end|>" not in text
    assert not text.lstrip().lower().startswith(("user", "assistant"))
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 16


@pytest.mark.slow
def test_concurrent_async_calls_queue_and_all_answer(endpoint: lm.LocalEndpoint) -> None:
    """The server runs one generation at a time; concurrent requests must wait, not be cut off."""
    import litellm

    async def ask(q: str) -> tuple[str, int]:
        r = await litellm.acompletion(
            messages=[{"role": "user", "content": q}], max_tokens=12, temperature=0, **endpoint.litellm_kwargs()
        )
        return r.choices[0].message.content, r.usage.completion_tokens

    async def main() -> list[tuple[str, int]]:
        return await asyncio.gather(*(ask(q) for q in ("Say hi.", "Name a fruit.", "Name a color.")))

    for text, tokens in asyncio.run(main()):
        assert text.strip()
        assert 0 < tokens <= 12


@pytest.mark.slow
def test_chat_template_is_the_ggufs(endpoint: lm.LocalEndpoint) -> None:
    log = endpoint.log_path.read_text(errors="replace")
    assert log.startswith("$ " + sys.executable + " -m llama_cpp.server --model ")
    assert "Using gguf chat template" in log


@pytest.mark.slow
def test_reuse_across_threads_and_coroutines(endpoint: lm.LocalEndpoint) -> None:
    assert lm.ensure_server(MODEL).pid == endpoint.pid
    with ThreadPoolExecutor(max_workers=4) as pool:
        pids = set(pool.map(lambda _: lm.ensure_server(MODEL).pid, range(8)))
    assert pids == {endpoint.pid}

    async def many() -> set[int]:
        eps = await asyncio.gather(*(lm.ensure_server_async(MODEL) for _ in range(6)))
        return {e.pid for e in eps}

    assert asyncio.run(many()) == {endpoint.pid}
    lm.check_alive(endpoint)  # still alive after the event loop and its executor are gone


@pytest.mark.slow
def test_concurrent_starts_give_one_server_and_stop_all_cleans_up() -> None:
    out = _run_child(
        """
        import asyncio, json
        from benchrun import local_model as lm
        async def main():
            eps = await asyncio.gather(*(lm.ensure_server_async("local/smollm2-135m") for _ in range(5)))
            return sorted({e.pid for e in eps})
        pids = asyncio.run(main())
        lm.stop_all()
        print(json.dumps(pids))
        """
    )
    assert out.returncode == 0, out.stderr
    pids = json.loads(out.stdout)
    assert len(pids) == 1
    assert not _alive(pids[0])


@pytest.mark.slow
def test_stop_all_leaves_no_process() -> None:
    out = _run_child(
        """
        from benchrun import local_model as lm
        ep = lm.ensure_server("local/smollm2-135m")
        lm.stop_all()
        lm.stop_all()  # idempotent
        print(ep.pid)
        """
    )
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout)
    assert not _alive(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


@pytest.mark.slow
def test_server_stops_at_normal_exit_without_explicit_stop() -> None:
    out = _run_child(
        """
        from benchrun import local_model as lm
        print(lm.ensure_server("local/smollm2-135m").pid)
        """
    )
    assert out.returncode == 0, out.stderr
    assert _wait_gone(int(out.stdout))


@pytest.mark.slow
def test_ctrl_c_stops_benchrun_and_the_server() -> None:
    """SIGINT to the foreground process group, as a terminal's Ctrl-C does."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import time
                from benchrun import local_model as lm
                print(lm.ensure_server("local/smollm2-135m").pid, flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert _alive(pid)
        os.killpg(child.pid, signal.SIGINT)
        child.wait(timeout=CHILD_TIMEOUT)
        assert "KeyboardInterrupt" in (child.stderr.read() if child.stderr else "")
        assert _wait_gone(pid)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.slow
def test_sigkilled_benchrun_leaves_no_orphan() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import time
                from benchrun import local_model as lm
                print(lm.ensure_server("local/smollm2-135m").pid, flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = -1
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert _alive(pid)
        child.kill()  # SIGKILL: no atexit, no finally
        child.wait()
        assert _wait_gone(pid), "the server outlived a SIGKILLed parent"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if pid > 0 and _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_truncated_model_file_aborts_with_log_tail(tmp_path: Path) -> None:
    real = lm.model_path(MODEL)
    bad = tmp_path / "truncated.gguf"
    with real.open("rb") as f:
        bad.write_bytes(f.read(5_000_000))
    out = _run_child(
        """
        from benchrun import local_model as lm
        from benchrun.errors import RunAborted
        try:
            lm.ensure_server("local/smollm2-135m")
        except RunAborted as e:
            print(e.exit_code, str(e))
        else:
            print("started")
        """,
        env={lm.ENV_MODEL_PATH: str(bad), lm.ENV_LOG: str(tmp_path / "server.log")},
    )
    assert out.returncode == 0, out.stderr
    code, _, msg = out.stdout.strip().partition(" ")
    assert code == "3"
    assert "\n" not in msg
    assert "local model server for local/smollm2-135m exited with code" in msg
    assert f"the model file {bad} may be corrupt or truncated" in msg
    assert f"log {tmp_path / 'server.log'}:" in msg
    assert "failed to load model" in msg.lower()  # llama.cpp's own reason, picked out of the log


def test_not_a_gguf_or_missing_file_is_reported_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("hello")
    monkeypatch.setenv(lm.ENV_MODEL_PATH, str(text))
    with pytest.raises(
        RunAborted, match=r"is not a GGUF file \(starts with b'hell'\); unset BENCHRUN_LOCAL_MODEL_PATH"
    ):
        lm.model_path(MODEL)
    monkeypatch.setenv(lm.ENV_MODEL_PATH, str(tmp_path / "absent.gguf"))
    with pytest.raises(RunAborted, match=r"absent.gguf \(from BENCHRUN_LOCAL_MODEL_PATH\) not found"):
        lm.model_path(MODEL)


def test_bad_settings_are_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lm.ENV_N_CTX, "lots")
    with pytest.raises(BadInput, match="BENCHRUN_LOCAL_N_CTX='lots' must be a positive integer"):
        lm.server_command(MODEL, Path("m.gguf"), 1234)
    monkeypatch.setenv(lm.ENV_N_CTX, "4096")
    cmd = lm.server_command(MODEL, Path("m.gguf"), 1234)
    assert cmd[cmd.index("--n_ctx") + 1] == "4096"
    assert cmd[cmd.index("--n_threads") + 1] == str(max(1, len(os.sched_getaffinity(0)) // 2))
    monkeypatch.setenv(lm.ENV_N_THREADS, "3")
    cmd = lm.server_command(MODEL, Path("m.gguf"), 1234)
    assert cmd[cmd.index("--n_threads") + 1] == cmd[cmd.index("--n_threads_batch") + 1] == "3"


def test_missing_server_package_names_the_install_command() -> None:
    # -S: no site-packages at all, so llama_cpp (and the rest of the extra) cannot be imported.
    out = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            textwrap.dedent(
                f"""
                import sys
                sys.path.insert(0, {SRC!r})
                from benchrun import local_model as lm
                from benchrun.errors import RunAborted
                try:
                    lm.ensure_server("local/smollm2-135m")
                except RunAborted as e:
                    print(str(e))
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    assert "llama_cpp" in out.stdout
    assert out.stdout.strip().endswith(
        "are not installed (llama_cpp, uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings); "
        "install with: pip install 'benchrun[local]'"
    )


class _Impostor(BaseHTTPRequestHandler):
    """Another program on the port we wanted, even answering /v1/models with our alias."""

    posts = 0

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "smollm2-135m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        type(self).posts += 1
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_port_taken_moves_to_another_port() -> None:
    impostor = ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    taken = impostor.server_address[1]
    thread = threading.Thread(target=impostor.serve_forever, daemon=True)
    thread.start()
    try:
        out = _run_child(
            f"""
            import json, urllib.request
            from benchrun import local_model as lm
            ep = lm.ensure_server("local/smollm2-135m", port={taken})
            req = urllib.request.Request(
                ep.api_base + "/chat/completions",
                data=json.dumps({{"model": "smollm2-135m", "max_tokens": 8,
                                  "messages": [{{"role": "user", "content": "Hi"}}]}}).encode(),
                headers={{"Content-Type": "application/json"}},
            )
            answer = json.loads(urllib.request.urlopen(req, timeout=120).read())
            log = ep.log_path.read_text(errors="replace")
            lm.stop_all()
            print(json.dumps({{"port": ep.port, "usage": answer["usage"],
                              "first_try_failed": "address already in use" in log.lower()}}))
            """
        )
    finally:
        impostor.shutdown()
        impostor.server_close()
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["first_try_failed"]  # the collision really happened and was handled
    assert result["port"] != taken
    assert result["usage"]["completion_tokens"] > 0
    assert _Impostor.posts == 0


@pytest.mark.slow
def test_port_reserved_by_silent_listener_is_skipped() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        out = _run_child(
            f"""
            from benchrun import local_model as lm
            ep = lm.ensure_server("local/smollm2-135m", port={taken})
            lm.check_alive(ep)
            lm.stop_all()
            print(ep.port)
            """
        )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) != taken


@pytest.mark.slow
def test_server_killed_mid_use_is_reported_and_replaced() -> None:
    import litellm

    ep = lm.ensure_server(MODEL)
    try:
        lm.check_alive(ep)
        os.kill(ep.pid, signal.SIGKILL)
        assert _wait_gone(ep.pid)  # a zombie (counted as gone) until check_alive reaps it
        # litellm maps "connection refused" to InternalServerError("... Connection error."), not APIConnectionError.
        with pytest.raises(
            (litellm.exceptions.APIConnectionError, litellm.exceptions.InternalServerError), match="Connection error"
        ):
            litellm.completion(
                messages=[{"role": "user", "content": "Hi"}], max_tokens=4, num_retries=0, **ep.litellm_kwargs()
            )
        with pytest.raises(RunAborted) as info:
            lm.check_alive(ep)
        msg = str(info.value)
        assert msg.startswith(f"local model server for {MODEL} died (killed by signal 9, pid {ep.pid}); log ")
        assert "\n" not in msg
        assert info.value.exit_code == 3
        assert not _alive(ep.pid)
        again = lm.ensure_server(MODEL)
        assert again.pid != ep.pid
        lm.check_alive(again)
    finally:
        lm.stop_all()


def _pids_with_env(marker: str) -> list[int]:
    """Processes whose environment contains ``marker`` (a unique value set for one test)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker.encode() in f.read() and _alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_ctrl_c_while_the_server_is_starting_leaves_no_process(tmp_path: Path) -> None:
    marker = f"BENCHRUN_TEST_MARKER_{os.getpid()}_{time.monotonic_ns()}"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from benchrun import local_model as lm
                lm.check_installed(); lm.model_path("local/smollm2-135m")  # warm up the file checks
                print("go", flush=True)
                lm.ensure_server("local/smollm2-135m")
                print("ready", flush=True)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, marker: "1", lm.ENV_LOG: str(tmp_path / "server.log")},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "go"
        # Wait until the server process exists (it inherits the marker), then press "Ctrl-C".
        end = time.monotonic() + 30
        while time.monotonic() < end and not [p for p in _pids_with_env(marker) if p != child.pid]:
            time.sleep(0.02)
        servers = [p for p in _pids_with_env(marker) if p != child.pid]
        assert servers, "the server process never appeared"
        os.killpg(child.pid, signal.SIGINT)
        child.wait(timeout=CHILD_TIMEOUT)
        rest = child.stdout.read()
        assert "ready" not in rest  # loading the model takes ~1 s, so the interrupt lands during the start
        assert "KeyboardInterrupt" in (child.stderr.read() if child.stderr else "")
        assert all(_wait_gone(p) for p in servers)
        assert _pids_with_env(marker) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.slow
def test_not_ready_in_time_aborts_and_leaves_no_process(tmp_path: Path) -> None:
    marker = f"BENCHRUN_TEST_MARKER_{os.getpid()}_{time.monotonic_ns()}"
    out = _run_child(
        """
        from benchrun import local_model as lm
        from benchrun.errors import RunAborted
        try:
            lm.ensure_server("local/smollm2-135m")
        except RunAborted as e:
            print(str(e))
        else:
            print("started")
        """,
        env={marker: "1", lm.ENV_START_TIMEOUT: "0.05", lm.ENV_LOG: str(tmp_path / "server.log")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(
        "local model server for local/smollm2-135m was not ready after 0.05 s "
        f"(set BENCHRUN_LOCAL_START_TIMEOUT to wait longer); log {tmp_path / 'server.log'}: $ "
    )
    assert _pids_with_env(marker) == []


@pytest.mark.slow
def test_temp_log_is_removed_after_a_clean_stop_and_kept_after_a_death() -> None:
    out = _run_child(
        """
        import os, signal, time
        from benchrun import local_model as lm
        from benchrun.errors import RunAborted
        clean = lm.ensure_server("local/smollm2-135m")
        lm.stop_all()
        dead = lm.ensure_server("local/smollm2-135m")
        os.kill(dead.pid, signal.SIGKILL)
        while True:
            try:
                lm.check_alive(dead)
            except RunAborted:
                break
            time.sleep(0.05)
        lm.stop_all()
        print(clean.log_path.exists(), dead.log_path.exists(), clean.log_path != dead.log_path)
        dead.log_path.unlink()
        """,
        env={lm.ENV_LOG: ""},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"]
