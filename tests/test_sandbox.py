"""The sandbox that runs model-written code: hostile programs against real bubblewrap.

Each hostile program tries one thing the threat model (docs/code-execution.md) says it cannot do;
the test checks that it was contained, that the outcome says what happened, and that this test
process and the machine are intact afterwards (we can still fork, the listener saw nothing, no
process of the program survives).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from benchrun.scoring import sandbox as sb
from benchrun.scoring.sandbox import Limits, Sandbox

BWRAP = Sandbox().probe()
needs_bwrap = pytest.mark.skipif(not BWRAP.ok, reason=f"no working bubblewrap: {BWRAP.reason}")


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox(limits=Limits(timeout_s=4))


def marker_processes(marker: str) -> list[int]:
    """Host processes whose command line contains ``marker``."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    out.append(int(d))
        except OSError:
            continue
    return out


def machine_intact() -> None:
    r = subprocess.run([sys.executable, "-c", "print('alive')"], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "alive"


# ----------------------------------------------------------------------------- plain outcomes


@needs_bwrap
@pytest.mark.parametrize(
    ("program", "outcome", "exception", "line"),
    [
        ("def f(x):\n    return x + 1\nassert f(1) == 2\nprint('done')\n", "passed", None, None),
        ("def f(x):\n    return x\nassert f(1) == 1\nassert f(2) == 3, 'f(2)'\n", "failed_assertion", "AssertionError", 4),
        ("x = 1\ny = x / 0\n", "exception", "ZeroDivisionError", 2),
        ("import json\njson.loads('{')\n", "exception", "json.decoder.JSONDecodeError", 2),
        ("def f(:\n    pass\n", "syntax_error", "SyntaxError", 1),
        ("def f():\n    return 1\n      return 2\n", "syntax_error", "IndentationError", 3),
        ("def f():\n\treturn 1\n        return 2\n", "syntax_error", "TabError", 3),
        ("import sys\nsys.exit(0)\nassert False\n", "exited", "SystemExit", 2),
        ("def r(n):\n    return r(n + 1)\nr(0)\n", "exception", "RecursionError", 2),
    ],
)
def test_outcomes(box: Sandbox, program: str, outcome: str, exception: str | None, line: int | None) -> None:
    ex = box.run(program)
    assert ex.isolation == "bwrap"
    assert (ex.outcome, ex.exception, ex.line) == (outcome, exception, line), ex
    assert ex.passed is (outcome == "passed")
    if line is not None:
        assert ex.source_line == program.splitlines()[line - 1].strip()
    assert ex.wall_s > 0 and ex.cpu_s is not None and ex.cpu_s > 0
    assert ex.interpreter and "Python 3" in ex.interpreter


@needs_bwrap
def test_assertion_failure_names_the_test_and_keeps_the_output_tail(box: Sandbox) -> None:
    prog = "print('x' * 10000)\nprint('last line')\nimport sys\nprint('to stderr', file=sys.stderr)\nassert 1 + 1 == 3\n"
    ex = box.run(prog, Limits(timeout_s=4, tail_bytes=100))
    assert ex.outcome == "failed_assertion" and ex.line == 5 and ex.source_line == "assert 1 + 1 == 3"
    assert ex.stdout.endswith("last line\n") and len(ex.stdout) == 100
    assert ex.stdout_bytes == 10001 + len("last line\n")
    assert ex.stderr.endswith("AssertionError\n") and len(ex.stderr) == 100
    assert ex.stderr_bytes > len("to stderr\n") + 100  # the message and the traceback
    assert "assert 1 + 1 == 3" in ex.detail


@needs_bwrap
def test_exiting_early_never_passes(box: Sandbox) -> None:
    """A solution that ends the process before the tests run must not pass (no result from the harness)."""
    ex = box.run("import os\nos._exit(0)\nassert False\n")
    assert ex.outcome == "exited" and ex.exit_code == 0 and not ex.passed
    forged = box.run(
        "import os\nfor fd in sorted(int(f) for f in os.listdir('/proc/self/fd')):\n    if fd > 2:\n        try:\n"
        "            os.write(fd, repr({'outcome': 'passed', 'nonce': 'x'}).encode())\n"
        "        except OSError:\n            pass\nos._exit(0)\n"
    )
    assert forged.outcome == "error" and not forged.passed and "forged" in forged.detail, forged


# ----------------------------------------------------------------------------- hostile programs


@needs_bwrap
def test_network_is_unreachable_even_to_localhost(box: Sandbox) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            try:
                accepted.append(listener.accept())
            except (TimeoutError, OSError):
                continue

    t = threading.Thread(target=accept)
    t.start()
    try:
        prog = (
            "import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "s.sendall(b'stolen')\n"
        )
        ex = box.run(prog)
        dns = box.run("import socket\nsocket.getaddrinfo('pypi.org', 443)\n")
        # control: the same program outside the sandbox does reach the listener
        subprocess.run([sys.executable, "-c", prog], timeout=10, check=True)
    finally:
        t.join()
        listener.close()
    assert ex.outcome == "exception" and ex.exception in ("ConnectionRefusedError", "OSError"), ex
    assert dns.outcome == "exception" and dns.exception == "socket.gaierror"
    assert len(accepted) == 1  # only the unsandboxed control connected


@needs_bwrap
def test_secrets_on_disk_and_in_the_environment_are_not_visible(box: Sandbox, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-live-" + uuid.uuid4().hex
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(secret)
    ledger = tmp_path / "runs" / "ledger.sqlite"
    ledger.parent.mkdir()
    ledger.write_text(secret)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("BENCHRUN_LEDGER", str(ledger))
    prog = f"""
import os, glob
print(dict(os.environ))
found = []
for p in [{str(home / '.ssh' / 'id_ed25519')!r}, {str(ledger)!r}, os.path.expanduser('~/.ssh/id_ed25519'),
          '/root/.ssh/id_rsa', '/etc/passwd', {str(Path.cwd())!r} + '/pyproject.toml']:
    try:
        found.append(open(p).read())
    except OSError as e:
        print('denied', p, type(e).__name__)
for pat in ['/home/*', '/root/*', '/work/*', '/tmp/*', '/proc/1/environ']:
    print(pat, glob.glob(pat))
try:
    print(open('/proc/1/environ').read())
except OSError as e:
    print('no init environ', e)
print('FOUND', found)
assert not found
"""
    ex = box.run(prog)
    assert ex.outcome == "passed", ex
    assert secret not in ex.stdout and secret not in ex.stderr
    env = eval(ex.stdout.splitlines()[0])  # the program's own environment, printed as a dict
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_CTYPE", "PWD"}, env
    assert env["HOME"] == "/tmp" and not any(k.startswith("BENCHRUN") or "KEY" in k for k in env)
    assert "/tmp/* []" in ex.stdout  # an empty working directory, not the host's /tmp


@needs_bwrap
def test_writes_outside_the_working_directory_fail(box: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    prog = f"""
import os
wrote = []
for p in [{str(target)!r}, '/usr/pwned', '/pwned', '/dev/pwned', '/proc/pwned', '/run/benchrun/program.py',
          os.path.expanduser('~') + '/../pwned']:
    try:
        with open(p, 'w') as f:
            f.write('x')
        wrote.append(p)
    except OSError as e:
        print('refused', p, e.strerror)
with open('mine.txt', 'w') as f:  # its own directory is writable
    f.write('ok')
print('WROTE', wrote)
assert wrote == ['/tmp/../pwned'] or wrote == [], wrote
"""
    ex = box.run(prog)
    assert ex.outcome == "passed", (ex.detail, ex.stdout, ex.stderr)
    assert not target.exists() and not Path("/usr/pwned").exists() and not Path("/pwned").exists()


@needs_bwrap
def test_disk_is_bounded(box: Sandbox) -> None:
    big_file = box.run("with open('big', 'wb') as f:\n    f.write(b'x' * (64 * 1024 * 1024))\n",
                       Limits(timeout_s=5, file_size_mb=4))
    assert big_file.outcome == "exception" and big_file.exception == "OSError" and "too large" in (big_file.message or "")
    many = box.run("for i in range(100):\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'x' * (1 << 20))\n",
                   Limits(timeout_s=5, file_size_mb=4, disk_mb=8))
    assert many.outcome == "exception" and "No space left" in (many.message or "")


@needs_bwrap
def test_fork_bomb_is_contained(box: Sandbox) -> None:
    marker = "bomb-" + uuid.uuid4().hex
    prog = f"""
import os, time
n = 0
while True:
    try:
        if os.fork() == 0:
            os.execv('/bin/sh', ['/bin/sh', '-c', 'sleep 300 # {marker}'])
        n += 1
    except OSError:
        time.sleep(0.01)
"""
    ex = box.run(prog, Limits(timeout_s=2, processes=16))
    assert ex.outcome == "timeout" and not ex.passed
    time.sleep(0.2)
    assert marker_processes(marker) == []
    machine_intact()


@needs_bwrap
def test_fork_limit_counts_processes_inside_the_sandbox_only(box: Sandbox) -> None:
    prog = """
import os
kids = 0
try:
    for _ in range(100):
        pid = os.fork()
        if pid == 0:
            import time
            time.sleep(5)
            os._exit(0)
        kids += 1
except BlockingIOError:
    pass
print(kids)
assert kids < 16
"""
    ex = box.run(prog, Limits(timeout_s=4, processes=8))
    assert ex.outcome == "passed", (ex.detail, ex.stderr)
    # the limit is per sandbox: the bootstrap itself, the namespace's init and a few children
    assert 3 <= int(ex.stdout.strip()) < 8


@needs_bwrap
def test_ten_gigabytes_is_a_memory_limit(box: Sandbox) -> None:
    ex = box.run("x = bytearray(10 * 1024 ** 3)\n")
    assert ex.outcome == "memory_limit" and ex.line == 1
    grow = box.run("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n", Limits(timeout_s=10))
    assert grow.outcome == "memory_limit" and grow.line == 3
    machine_intact()


@needs_bwrap
def test_infinite_loop_times_out_and_costs_cpu(box: Sandbox) -> None:
    ex = box.run("while True:\n    pass\n", Limits(timeout_s=1.5))
    assert ex.outcome == "timeout" and "wall-clock" in ex.detail
    assert ex.wall_s >= 1.5 and ex.cpu_s is not None and ex.cpu_s > 0.3
    sleeper = box.run("import time\ntime.sleep(60)\n", Limits(timeout_s=1))
    assert sleeper.outcome == "timeout" and sleeper.cpu_s is not None and sleeper.cpu_s < 0.5


@needs_bwrap
def test_cpu_limit_ends_a_busy_program_before_the_wall_clock(box: Sandbox) -> None:
    ex = box.run("while True:\n    pass\n", Limits(timeout_s=20, cpu_s=1))
    assert ex.outcome == "timeout" and "CPU time limit" in ex.detail and ex.signal == "SIGXCPU"
    assert ex.wall_s < 20


@needs_bwrap
def test_printing_a_gigabyte_is_cut_off(box: Sandbox) -> None:
    ex = box.run("import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n")
    assert ex.outcome == "killed" and "output limit" in ex.detail
    assert len(ex.stdout) == Limits().tail_bytes and ex.stdout_bytes <= 9 * 1024 * 1024
    machine_intact()


@needs_bwrap
@pytest.mark.parametrize("main_waits", [True, False])
def test_children_do_not_outlive_the_sandbox(box: Sandbox, main_waits: bool) -> None:
    marker = "orphan-" + uuid.uuid4().hex
    prog = f"""
import os, subprocess, time
# a daemon: double fork, new session, ignores SIGTERM and SIGHUP
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.execv('/bin/sh', ['/bin/sh', '-c', 'trap "" TERM HUP; sleep 300 # {marker}'])
    os._exit(0)
subprocess.Popen(['/bin/sh', '-c', 'sleep 300 # {marker}'], start_new_session=True)
time.sleep(0.3)
{"time.sleep(60)" if main_waits else "pass"}
"""
    ex = box.run(prog, Limits(timeout_s=2))
    assert ex.outcome == ("timeout" if main_waits else "passed"), (ex.detail, ex.stderr)
    deadline = time.monotonic() + 3
    while marker_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker_processes(marker) == []


@needs_bwrap
def test_killing_the_parent_or_everyone_is_contained(box: Sandbox) -> None:
    me = os.getpid()
    prog = f"""
import os, signal
results = {{}}
for name, pid in [('parent', os.getppid()), ('init', 1), ('host test process', {me}), ('host init', 1)]:
    try:
        os.kill(pid, signal.SIGKILL)
        results[name] = 'sent'
    except OSError as e:
        results[name] = type(e).__name__
try:
    os.kill(-1, signal.SIGKILL)  # every process this user may signal
    results['all'] = 'sent'
except OSError as e:
    results['all'] = type(e).__name__
print(results)
"""
    ex = box.run(prog)
    assert ex.outcome == "passed", (ex.detail, ex.stderr)
    assert "'host test process': 'ProcessLookupError'" in ex.stdout  # our pid does not exist in its namespace
    assert os.getpid() == me
    machine_intact()
    # the sandbox still works after all that
    assert box.run("assert 1 + 1 == 2\n").passed


@needs_bwrap
def test_cannot_escape_through_new_namespaces_or_setuid(box: Sandbox) -> None:
    prog = """
import os, subprocess
r = subprocess.run(['/usr/bin/unshare', '--user', '--map-root-user', 'id'], capture_output=True, text=True)
print('unshare', r.returncode, r.stderr.strip()[:80])
assert r.returncode != 0
try:
    os.setuid(0)
    print('setuid worked')
    became_root = os.getuid() == 0 and os.path.exists('/root')
except OSError:  # uid 0 is not mapped in its namespace
    became_root = False
assert not became_root
"""
    if not shutil.which("unshare"):
        pytest.skip("util-linux unshare not installed")
    ex = box.run(prog)
    assert ex.outcome == "passed", (ex.detail, ex.stdout, ex.stderr)


# ----------------------------------------------------------------------------- parallel, faults, refusal


@needs_bwrap
def test_run_many_is_parallel_bounded_and_ordered(box: Sandbox) -> None:
    progs = [f"import time\ntime.sleep(0.3)\nassert {i} % 3 != 0\n" for i in range(2 * sb.cores() + 1)]
    got = box.run_many(progs, Limits(timeout_s=10))
    assert [g.passed for g in got] == [i % 3 != 0 for i in range(len(progs))]


@needs_bwrap
def test_no_more_programs_run_at_once_than_there_are_cores(box: Sandbox) -> None:
    """Callers may bring any number of threads (the runner's event loop, run_many): the sandbox admits one per core."""
    from concurrent.futures import ThreadPoolExecutor

    def running() -> int:
        n = 0
        for d in os.listdir("/proc"):
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if sb.PROGRAM_PATH.encode() in argv and not argv[0].endswith((b"bwrap", b"setpriv")):
                n += 1  # the interpreter running a program (not bwrap's own processes)
        return n

    seen: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen.append(running())
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    try:
        with ThreadPoolExecutor(max_workers=3 * sb.cores()) as ex:
            got = list(ex.map(lambda _: box.run("import time\ntime.sleep(0.4)\n"), range(3 * sb.cores())))
    finally:
        stop.set()
        t.join()
    assert all(g.passed for g in got)
    assert 1 <= max(seen) <= sb.cores(), (max(seen), sb.cores())


@needs_bwrap
def test_a_failing_sandbox_is_an_error_result_not_an_exception() -> None:
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="fake-bwrap-"))  # readable by the sandbox uid when the tests run as root
    d.chmod(0o755)
    fake = d / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: cannot do that' >&2\nexit 1\n")
    fake.chmod(0o755)
    broken = Sandbox(bwrap=str(fake))
    ex = broken.run("assert True\n")
    assert ex.outcome == "error" and not ex.passed and ex.isolation == "none"
    assert "bwrap could not run" in ex.detail and "cannot do that" in ex.detail and "--unsafe-exec" in ex.detail
    shutil.rmtree(d)


def test_without_bwrap_it_refuses_unless_unsafe(tmp_path: Path) -> None:
    refusing = Sandbox(bwrap="")
    assert refusing.isolation is None
    ex = refusing.run("open('/tmp/should-not-exist-' + 'x', 'w')\n")
    assert ex.outcome == "error" and ex.isolation == "none" and "bubblewrap" in ex.detail
    with pytest.raises(sb.SandboxUnavailable, match="--unsafe-exec"):
        refusing.require()

    unsafe = Sandbox(bwrap="", unsafe=True, limits=Limits(timeout_s=3))
    assert unsafe.isolation == "unsafe-rlimits"
    ok = unsafe.run("import os\nassert os.listdir('.') == []\nassert 'OPENAI_API_KEY' not in os.environ\n")
    assert ok.outcome == "passed" and ok.isolation == "unsafe-rlimits", (ok.detail, ok.stderr)
    assert unsafe.run("x = bytearray(10 * 1024 ** 3)\n").outcome == "memory_limit"
    assert unsafe.run("while True:\n    pass\n", Limits(timeout_s=1)).outcome == "timeout"
    assert unsafe.run("assert 2 + 2 == 5\n").outcome == "failed_assertion"
