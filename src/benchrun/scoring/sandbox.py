"""Run one model-written Python program in isolation and say what happened.

Model-written code is untrusted (see docs/code-execution.md for the threat model). Each program
runs in its own process tree inside bubblewrap (``bwrap``, what Flatpak uses) with new user,
network, PID, mount, IPC and UTS namespaces; the file system it sees is ``/usr`` (and the
interpreter's prefix) read-only, a fresh size-capped ``/tmp`` as its empty working directory and
nothing else (no home, no project, no ledger, no ``/etc``). Its environment is empty but for
``PATH``, ``HOME=/tmp`` and ``LANG``. rlimits cap CPU time, address space, file size, open files
and processes; a wall-clock timeout kills the whole sandbox (bwrap runs with ``--die-with-parent``
as its own process group, and the PID namespace dies with its init). As root the sandbox runs as
an unprivileged uid (65534): the kernel does not apply RLIMIT_NPROC to uid 0, so a fork bomb
would otherwise be bounded by nothing but the timeout.

Without bwrap (or where it cannot create namespaces) a :class:`Sandbox` refuses to execute
unless it was made with ``unsafe=True``: then the program runs as a plain subprocess with the same
rlimits, clean environment and temporary directory, but it can read whatever this user can, reach
the network and signal this user's processes. Every :class:`Execution` records which isolation
ran it.

Inside the sandbox a small bootstrap (``_BOOT``) sets the rlimits, compiles and runs the program
as ``__main__`` and writes one JSON result (with a per-execution nonce it read from stdin) to a
pipe: the outcome, the exception type, the program line that failed. The program "passed" only
when it ran to its end: exiting early (``sys.exit``, ``os._exit``), being killed or running out of
time or memory never passes.

Executions run in parallel up to the number of cores (one slot per core, whoever calls), separate
from the model-call concurrency, and nothing a program does raises out of :meth:`Sandbox.run`: a
sandbox that cannot start, or any fault of ours, is an ``error`` outcome.
"""

from __future__ import annotations

import ast
import contextlib
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("passed", "failed_assertion", "exception", "syntax_error", "timeout", "memory_limit", "killed", "exited",
            "error")
ISOLATION_BWRAP = "bwrap"
ISOLATION_UNSAFE = "unsafe-rlimits"
PROGRAM_PATH = "/run/benchrun/program.py"  # where the program lives inside the sandbox (read-only)
IN_TMP = "/tmp"  # noqa: S108 - a path inside the sandbox: its own fresh, size-capped tmpfs
IN_SHM = "/dev/shm"  # noqa: S108 - likewise
SANDBOX_UID = 65534  # "nobody": the uid sandboxes run as when benchrun runs as root
_RESULT_MAX = 64 * 1024


class SandboxUnavailable(RuntimeError):
    """No isolation is available and unsafe execution was not allowed."""


@dataclass(frozen=True)
class Limits:
    """What one execution may use. ``cpu_s`` defaults to the wall timeout rounded up, plus one second."""

    timeout_s: float = 10.0
    cpu_s: int | None = None
    memory_mb: int = 1024  # RLIMIT_AS of each process
    file_size_mb: int = 16  # RLIMIT_FSIZE: the largest file a program may write
    disk_mb: int = 64  # size of the sandbox's /tmp (its working directory)
    open_files: int = 64
    processes: int = 16  # RLIMIT_NPROC: processes and threads inside the sandbox
    tail_bytes: int = 4096  # kept of stdout and of stderr (the end)
    max_output_mb: int = 8  # more output than this (stdout + stderr) kills the program

    @property
    def cpu_limit_s(self) -> int:
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1

    def boot_args(self) -> str:
        mb = 1024 * 1024
        return ":".join(str(v) for v in (self.cpu_limit_s, self.memory_mb * mb, self.file_size_mb * mb,
                                         self.open_files, self.processes))


@dataclass
class Execution:
    """What happened to one program. ``passed`` only when it ran to its end without an exception."""

    outcome: str
    isolation: str
    detail: str = ""
    exception: str | None = None  # type name, e.g. "ZeroDivisionError"
    message: str | None = None
    line: int | None = None  # line of the program where it failed (1-based)
    source_line: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    stdout: str = ""  # the last ``tail_bytes`` of each stream
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    wall_s: float = 0.0
    cpu_s: float | None = None
    interpreter: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


# ----------------------------------------------------------------------------- the bootstrap

# Runs inside the sandbox as ``python -I -S -c _BOOT LIMITS RESULT_FD PROGRAM``. The nonce arrives on stdin (so it is in
# no argv and no file); a result must carry it. It imports as little as it can (os, sys, resource; traceback only after
# a failure): its start-up is paid by every program. The result is a Python literal (no json import).
_BOOT = r'''
import os, resource, sys
def _main():
    cpu, mem, fsize, nofile, nproc = (int(x) for x in sys.argv[1].split(":"))
    fd = int(sys.argv[2]); path = sys.argv[3]
    nonce = sys.stdin.readline().strip()
    try:
        sys.stdin.close()
        os.close(0)
        os.open(os.devnull, os.O_RDONLY)
    except OSError:
        pass
    R = resource
    for res, soft, hard in ((R.RLIMIT_CPU, cpu, cpu + 1), (R.RLIMIT_AS, mem, mem), (R.RLIMIT_FSIZE, fsize, fsize),
                            (R.RLIMIT_NOFILE, nofile, nofile), (R.RLIMIT_NPROC, nproc, nproc), (R.RLIMIT_CORE, 0, 0)):
        R.setrlimit(res, (soft, hard))
    with open(path, encoding="utf-8") as f:
        src = f.read()
    def src_line(n):
        lines = src.splitlines()
        return lines[n - 1].strip()[:500] if n and 0 < n <= len(lines) else None
    def report(d):
        d["nonce"] = nonce
        ru_s, ru_c = R.getrusage(R.RUSAGE_SELF), R.getrusage(R.RUSAGE_CHILDREN)
        d["cpu_s"] = ru_s.ru_utime + ru_s.ru_stime + ru_c.ru_utime + ru_c.ru_stime
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except BaseException:
                pass
        data = repr(d).encode()
        while data:
            data = data[os.write(fd, data):]
        os._exit(0)
    try:
        code = compile(src, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        n = getattr(e, "lineno", None)
        msg = str(getattr(e, "msg", e))[:2000]
        print(f"{type(e).__name__}: {msg} (line {n})", file=sys.stderr)
        report({"outcome": "syntax_error", "exception": type(e).__name__, "message": msg, "line": n,
                "source_line": src_line(n)})
    sys.argv = [path]
    g = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    try:
        exec(code, g)
    except BaseException as e:
        e = e.with_traceback(e.__traceback__.tb_next if e.__traceback__ else None)
        n = None
        tb = e.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == path:
                n = tb.tb_lineno
            tb = tb.tb_next
        t = type(e)
        name = t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
        if isinstance(e, SystemExit):
            outcome = "exited"
        elif isinstance(e, AssertionError):
            outcome = "failed_assertion"
        elif isinstance(e, MemoryError):
            outcome = "memory_limit"
        else:
            outcome = "exception"
        try:
            msg = str(e)[:2000]
        except BaseException:
            msg = "<unprintable>"
        try:
            import traceback
            traceback.print_exception(e, file=sys.stderr)
        except BaseException:
            pass
        code = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else None
        report({"outcome": outcome, "exception": name, "message": msg, "line": n, "source_line": src_line(n),
                "exit_code": code})
    report({"outcome": "passed"})
_main()
'''


# ----------------------------------------------------------------------------- parallelism


def cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_SLOTS = threading.BoundedSemaphore(cores())
_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The shared thread pool, one thread per core, that callers on an event loop hand executions to."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="benchrun-sandbox")
        return _EXECUTOR


# ----------------------------------------------------------------------------- the sandbox


@dataclass
class _Probe:
    ok: bool
    interpreter: str | None = None
    prefix_bind: str | None = None
    version: str | None = None
    reason: str = ""


_SETPRIV = shutil.which("setpriv")
_PROBES: dict[tuple[Any, ...], _Probe] = {}
_PROBE_LOCK = threading.Lock()


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def _interpreter_candidates(python: str | None) -> list[str]:
    if python is not None:
        return [python]
    base = getattr(sys, "_base_executable", None) or sys.executable
    out: list[str] = []
    for p in (base, sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if p and os.path.exists(p):
            rp = os.path.realpath(p)
            if rp not in out:
                out.append(rp)
    return out


def _prefix_of(interpreter: str) -> str | None:
    """The directory to bind for an interpreter outside /usr (``<prefix>/bin/python3`` → ``<prefix>``)."""
    rp = os.path.realpath(interpreter)
    if rp.startswith("/usr/"):
        return None
    return str(Path(rp).parent.parent)


class Sandbox:
    """Runs programs; see the module docstring. Cheap to make; the first run probes bwrap once per process."""

    def __init__(self, *, unsafe: bool = False, limits: Limits | None = None, python: str | None = None,
                 bwrap: str | None = None, site_packages: bool = False) -> None:
        self.unsafe = unsafe
        # -S: no site-packages, the standard library only (and 10 ms less start-up per program)
        self.py_flags = ["-I"] if site_packages else ["-I", "-S"]
        self.limits = limits or Limits()
        self.python = python
        self.bwrap = bwrap if bwrap is not None else shutil.which("bwrap")
        self.run_as_uid = SANDBOX_UID if os.geteuid() == 0 else None

    # -------------------------------------------------------------- availability

    def probe(self) -> _Probe:
        """Whether bwrap works here, and with which interpreter (cached per process)."""
        key = (self.bwrap, self.python, self.run_as_uid)
        with _PROBE_LOCK:
            hit = _PROBES.get(key)
            if hit is not None:
                return hit
            if not self.bwrap:
                p = _Probe(False, reason="bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt install bubblewrap)")
            else:
                p = _Probe(False, reason="no interpreter ran inside bwrap")
                for interp in _interpreter_candidates(self.python):
                    prefix = _prefix_of(interp)
                    cmd = [*self._bwrap_argv(interp, prefix, None), interp, *self.py_flags, "-c", "import sys; print(sys.version)"]
                    try:
                        r = subprocess.run(self._as_user(cmd), capture_output=True, text=True, timeout=30, check=False, cwd="/",
                                           env={"PATH": "/usr/bin:/bin"}, **self._user_kwargs())
                    except (OSError, subprocess.SubprocessError) as e:
                        p = _Probe(False, reason=f"bwrap failed to start: {e}")
                        continue
                    if r.returncode == 0 and r.stdout.strip():
                        p = _Probe(True, interp, prefix, r.stdout.strip().split()[0])
                        break
                    p = _Probe(False, reason=f"bwrap could not run {interp}: {(r.stderr or r.stdout).strip()[:300]}")
            _PROBES[key] = p
            return p

    @property
    def isolation(self) -> str | None:
        """``bwrap``, ``unsafe-rlimits`` or None (nothing may run)."""
        if self.probe().ok:
            return ISOLATION_BWRAP
        return ISOLATION_UNSAFE if self.unsafe else None

    def require(self) -> str:
        """The isolation that will be used; raises :class:`SandboxUnavailable` when none may be."""
        iso = self.isolation
        if iso is None:
            raise SandboxUnavailable(
                f"cannot sandbox model-written code: {self.probe().reason}. Install bubblewrap, or pass "
                "--unsafe-exec to run it as a plain subprocess with rlimits only (it can then read your files "
                "and reach the network)"
            )
        return iso

    # -------------------------------------------------------------- running

    def run(self, program: str, limits: Limits | None = None) -> Execution:
        """Run ``program`` (Python source) and classify the outcome. Never raises for anything the program does."""
        lim = limits or self.limits
        with _SLOTS:
            try:
                iso = self.require()
            except SandboxUnavailable as e:
                return Execution("error", "none", detail=str(e), limits=asdict(lim))
            try:
                return self._run(program, lim, iso)
            except Exception as e:  # a fault of ours or of the machine: this result is an error, the run goes on
                return Execution("error", iso, detail=f"sandbox failed: {type(e).__name__}: {e}"[:1000],
                                 limits=asdict(lim))

    def run_many(self, programs: Iterable[str], limits: Limits | None = None) -> list[Execution]:
        """Run several programs in parallel (one per core), results in the given order."""
        progs = list(programs)
        with ThreadPoolExecutor(max_workers=max(1, min(cores(), len(progs)))) as ex:
            return list(ex.map(lambda p: self.run(p, limits), progs))

    def _user_kwargs(self) -> dict[str, Any]:
        """Popen arguments that drop root to the sandbox uid (when setpriv is missing: see :meth:`_as_user`)."""
        if self.run_as_uid is None or _SETPRIV:
            return {}
        return {"user": self.run_as_uid, "group": self.run_as_uid, "extra_groups": []}

    def _as_user(self, argv: list[str]) -> list[str]:
        """``argv`` run as the sandbox uid. util-linux's setpriv drops root in the child; Popen's own ``user=``
        does the same but forces a full fork() of this (large) process instead of vfork(): ~5-10 ms a program."""
        if self.run_as_uid is None or not _SETPRIV:
            return argv
        uid = str(self.run_as_uid)
        return [_SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]

    def _bwrap_argv(self, interp: str, prefix: str | None, lim: Limits | None) -> list[str]:
        assert self.bwrap is not None
        lim = lim or self.limits
        mb = 1024 * 1024
        argv = [self.bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                "--new-session", "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
        for d in ("/bin", "/lib", "/lib32", "/lib64", "/sbin"):
            if os.path.islink(d):
                argv += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                argv += ["--ro-bind", d, d]
        if prefix is not None:
            argv += ["--ro-bind", prefix, prefix]
        argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
                 "--size", str(16 * mb), "--tmpfs", IN_SHM,
                 "--size", str(lim.disk_mb * mb), "--tmpfs", IN_TMP]
        return argv

    def _run(self, program: str, lim: Limits, iso: str) -> Execution:
        nonce = secrets.token_hex(16)
        res_r, res_w = os.pipe()
        cleanup: list[Any] = []
        progfile = tempfile.TemporaryFile()
        cleanup.append(progfile.close)
        try:
            progfile.write(program.encode("utf-8", "replace"))  # a lone surrogate becomes "?"
            progfile.flush()
            progfile.seek(0)
            if iso == ISOLATION_BWRAP:
                probe = self.probe()
                assert probe.interpreter is not None
                interp = probe.interpreter
                argv = self._bwrap_argv(interp, probe.prefix_bind, lim)
                argv += ["--ro-bind-data", str(progfile.fileno()), PROGRAM_PATH, "--remount-ro", "/",
                         "--chdir", IN_TMP, "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
                         "--setenv", "HOME", IN_TMP, "--setenv", "TMPDIR", IN_TMP, "--setenv", "LANG", "C.UTF-8",
                         "--", interp, *self.py_flags, "-c", _BOOT, lim.boot_args(), str(res_w), PROGRAM_PATH]
                env: dict[str, str] = {"PATH": "/usr/bin:/bin"}
                cwd = "/"
                pass_fds: tuple[int, ...] = (res_w, progfile.fileno())
                kwargs = self._user_kwargs()
                interp_desc = f"{interp} (Python {probe.version})"
            else:
                interp = sys.executable
                work = tempfile.mkdtemp(prefix="benchrun-exec-")
                progdir = tempfile.mkdtemp(prefix="benchrun-prog-")
                cleanup.append(lambda: shutil.rmtree(work, ignore_errors=True))
                cleanup.append(lambda: shutil.rmtree(progdir, ignore_errors=True))
                path = os.path.join(progdir, "program.py")
                with open(path, "w", encoding="utf-8", errors="replace") as f:
                    f.write(program)
                argv = [interp, *self.py_flags, "-c", _BOOT, lim.boot_args(), str(res_w), path]
                env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
                cwd = work
                pass_fds = (res_w,)
                kwargs = {}
                interp_desc = f"{interp} (Python {sys.version.split()[0]})"
            started = time.monotonic()
            if iso == ISOLATION_BWRAP:
                argv = self._as_user(argv)
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=pass_fds, env=env, cwd=cwd, start_new_session=True, close_fds=True,
                                    **kwargs)
        except BaseException:
            os.close(res_r)
            os.close(res_w)
            for fn in reversed(cleanup):
                fn()
            raise
        os.close(res_w)
        progfile.close()
        try:
            return self._supervise(proc, res_r, nonce, lim, iso, started, interp_desc)
        finally:
            if proc.returncode is None:  # _supervise failed before reaping: kill and reap here
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, 0)
                proc.returncode = -1
            for s in (proc.stdin, proc.stdout, proc.stderr):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()
            with contextlib.suppress(OSError):
                os.close(res_r)
            for fn in reversed(cleanup):
                fn()

    def _supervise(self, proc: subprocess.Popen[bytes], res_r: int, nonce: str, lim: Limits, iso: str,
                   started: float, interp: str) -> Execution:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        with contextlib.suppress(OSError):
            proc.stdin.write((nonce + "\n").encode())
            proc.stdin.close()
        deadline = started + lim.timeout_s
        max_out = lim.max_output_mb * 1024 * 1024
        tails = {"stdout": bytearray(), "stderr": bytearray()}
        counts = {"stdout": 0, "stderr": 0}
        result = bytearray()
        sel = selectors.DefaultSelector()
        pidfd = os.pidfd_open(proc.pid)
        try:
            sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
            sel.register(proc.stderr.fileno(), selectors.EVENT_READ, "stderr")
            sel.register(res_r, selectors.EVENT_READ, "result")
            sel.register(pidfd, selectors.EVENT_READ, "exit")
            killed_for: str | None = None
            cpu_seen = 0.0  # CPU of the sandbox's process tree, sampled from /proc while it runs
            exited = False
            open_streams = 3
            while not (exited and open_streams == 0):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if not exited:
                        killed_for = "timeout"
                    break  # exited, but a descendant outside any sandbox (unsafe mode) still holds a pipe
                if time.monotonic() - started > 0.2:
                    cpu_seen = max(cpu_seen, _tree_cpu(proc.pid))
                for key, _ in sel.select(timeout=min(remaining, 0.25)):
                    name = key.data
                    if name == "exit":
                        exited = True
                        sel.unregister(pidfd)
                        deadline = min(deadline, time.monotonic() + 0.5)  # grace to drain the pipes
                        continue
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fd)
                        open_streams -= 1
                        continue
                    if name == "result":
                        if len(result) < _RESULT_MAX:
                            result += chunk[: _RESULT_MAX - len(result)]
                        continue
                    counts[name] += len(chunk)
                    tail = tails[name]
                    tail += chunk
                    if len(tail) > lim.tail_bytes:
                        del tail[: len(tail) - lim.tail_bytes]
                if counts["stdout"] + counts["stderr"] > max_out:
                    killed_for = "output"
                    break
            # Kill the whole process group before reaping its leader, so the group id cannot have been reused.
            # Under bwrap this ends the sandbox (its PID namespace dies with its init); in unsafe mode it also ends
            # descendants left in the group.
            if killed_for is not None:
                cpu_seen = max(cpu_seen, _tree_cpu(proc.pid))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            sel.close()
            os.close(pidfd)
        wall = time.monotonic() - started
        # bwrap does not reap the program itself, so wait4's usage misses it: the bootstrap reports its own (with its
        # reaped children); without a report, the last /proc sample of the tree (a lower bound) stands in.
        cpu = max(usage.ru_utime + usage.ru_stime, cpu_seen)
        ex = Execution("error", iso, stdout=_text(tails["stdout"]), stderr=_text(tails["stderr"]),
                       stdout_bytes=counts["stdout"], stderr_bytes=counts["stderr"], wall_s=round(wall, 4),
                       cpu_s=round(cpu, 4), interpreter=interp, limits=asdict(lim))
        if killed_for == "timeout":
            ex.outcome, ex.detail = "timeout", f"wall-clock timeout after {lim.timeout_s:g} s; the sandbox was killed"
            return ex
        if killed_for == "output":
            ex.outcome = "killed"
            ex.detail = f"output limit: more than {lim.max_output_mb} MB on stdout/stderr; the sandbox was killed"
            return ex
        code = proc.returncode
        rep = _parse_result(bytes(result), nonce)
        if rep is not None:
            if isinstance(rep.get("cpu_s"), (int, float)):
                ex.cpu_s = round(max(float(rep["cpu_s"]), cpu), 4)
            ex.outcome = rep["outcome"]
            for k in ("exception", "message", "line", "source_line", "exit_code"):
                if rep.get(k) is not None:
                    setattr(ex, k, rep[k])
            ex.detail = _describe(ex)
            return ex
        # no (valid) result: the program ended the process itself or was killed
        sig: int | None = None
        if code < 0:
            sig = -code
        elif iso == ISOLATION_BWRAP and code > 128:
            sig = code - 128  # bwrap reports a command killed by signal N as exit status 128 + N
        if iso == ISOLATION_BWRAP and code == 1 and _text(tails["stderr"]).startswith("bwrap:"):
            ex.outcome, ex.detail = "error", f"sandbox failed to start: {_text(tails['stderr']).strip()[:300]}"
            return ex
        if sig is not None:
            ex.signal = _signal_name(sig)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim.cpu_limit_s):
                ex.outcome, ex.detail = "timeout", f"CPU time limit ({lim.cpu_limit_s} s) exceeded"
            else:
                ex.outcome, ex.detail = "killed", f"killed by {ex.signal}"
            return ex
        ex.exit_code = code
        if result:
            ex.outcome, ex.detail = "error", "the program wrote a result that is not the harness's (forged or garbled)"
        else:
            ex.outcome, ex.detail = "exited", f"the process exited with code {code} before the program finished"
        return ex


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (and their reaped children), from /proc."""
    total, seen, todo = 0, set(), [pid]
    while todo and len(seen) < 4096:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children", "rb") as f:
                    todo.extend(int(x) for x in f.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return total / _TICK


def _text(b: bytes | bytearray) -> str:
    return bytes(b).decode("utf-8", "replace")


def _parse_result(raw: bytes, nonce: str) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        d = ast.literal_eval(raw.decode("utf-8", "replace"))  # literals only: nothing is evaluated
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(d, dict) or d.get("nonce") != nonce or d.get("outcome") not in OUTCOMES:
        return None
    return d


def _describe(ex: Execution) -> str:
    where = f" at line {ex.line}" if ex.line else ""
    src = f": {ex.source_line}" if ex.source_line else ""
    msg = f" ({ex.message})" if ex.message else ""
    if ex.outcome == "passed":
        return "ran to the end"
    if ex.outcome == "failed_assertion":
        return f"assertion failed{where}{src}{msg}"
    if ex.outcome == "syntax_error":
        return f"{ex.exception}{where}{msg}"
    if ex.outcome == "memory_limit":
        return f"MemoryError{where} (address-space limit {ex.limits.get('memory_mb')} MB)"
    if ex.outcome == "exited":
        return f"exited{where} with code {ex.exit_code} before the program finished"
    return f"{ex.exception}{where}{msg}"
