"""The CLI's shape: nothing below it imports it, no import cycles, lazy command loading that
keeps `--help` free of the heavy libraries, and a help table that matches the commands."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import typer

from benchrun.cli.app import COMMANDS, load_command

SRC = Path(__file__).resolve().parents[1] / "src"
CLI_MODULES = ("run", "runs", "dataset", "judge", "compare", "coverage", "ledger", "arena", "view", "batch",
               "sweep", "refusals")

# What `benchrun --help` and `benchrun COMMAND --help` must not import: our pydantic and SQLModel
# models, the ledger, the provider gateway, and the heavy libraries behind them.
FORBIDDEN = ("numpy", "pydantic", "litellm", "sentence_transformers", "jsonschema", "torch", "sklearn", "scipy",
             "sqlalchemy", "sqlmodel", "openai", "httpx", "aiohttp", "benchrun.spec", "benchrun.ledger", "benchrun.providers",
             "benchrun.runner", "benchrun.coverage")


def _modules() -> dict[str, Path]:
    out = {}
    for p in (SRC / "benchrun").rglob("*.py"):
        parts = p.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(path: Path) -> set[str]:
    """Every module an import statement names, at module level or inside a function (lazy imports count)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            if node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for imp in _imports(path):
            while imp and imp not in mods:
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                deps.add(imp)
        graph[name] = deps
    return graph


def test_nothing_below_the_cli_imports_it() -> None:
    graph = _graph()
    offenders = []
    for name, deps in graph.items():
        if name == "benchrun.cli" or name.startswith("benchrun.cli."):
            continue
        offenders += [f"{name} imports {d}" for d in deps if d == "benchrun.cli" or d.startswith("benchrun.cli.")]
    assert "benchrun.execution" in graph["benchrun.reproduce"], "the scan misses imports inside functions"
    assert offenders == []


def test_no_import_cycles_between_modules() -> None:
    """Lazy imports included. A package's submodules importing the package itself are not a cycle of
    concepts (``benchrun.ledger`` re-exports ``benchrun.ledger.store``), so edges to one's own package
    are left out."""
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in _graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert "benchrun.api" in graph["benchrun.cli.compare"], "the graph misses imports inside functions"
    assert cycles == []


def test_help_table_matches_the_commands() -> None:
    """`benchrun --help` is built from COMMANDS without importing a command; each line must be the
    command's own first help paragraph, and every command a module declares must be in the table."""
    for name, entry in COMMANDS.items():
        cmd = load_command(name)
        assert cmd.name == name
        assert inspect.cleandoc(cmd.help or "").split("\n\n")[0] == entry.help, name
    declared = {}
    for mod in CLI_MODULES:
        group = typer.main.get_group(importlib.import_module(f"benchrun.cli.{mod}").app)
        declared.update({n: mod for n in group.commands})
    assert declared == {n: e.module for n, e in COMMANDS.items()}


_PROBE = """
import contextlib, io, json, sys
from benchrun.cli import main
forbidden, commands = json.loads(sys.argv[1])
report = []
for argv in commands:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main([*argv, "--help"])
    report.append({"argv": argv, "code": code, "usage": "Usage:" in buf.getvalue(),
                   "forbidden": [m for m in forbidden if m in sys.modules],
                   "cli_modules": sorted(m for m in sys.modules if m.startswith("benchrun.cli."))})
print(json.dumps(report))
"""


def _probe(commands: list[list[str]]) -> list[dict[str, object]]:
    r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([FORBIDDEN, commands])], capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout))


def test_help_imports_nothing_heavy() -> None:
    """One fresh interpreter runs every `--help` in turn: modules only accumulate, so a clean list after
    each step means no `--help` imported a forbidden module."""
    groups = {"runs": ["list", "show"], "dataset": ["info", "validate"], "rubric": ["validate"],
              "labels": ["export", "import", "annotate"], "bias": ["position", "verbosity"], "ledger": ["copy", "info"]}
    commands = [[], *([n] for n in COMMANDS), *([g, s] for g, subs in groups.items() for s in subs)]
    report = _probe(commands)
    assert len(report) == len(commands)
    for step in report:
        assert step["code"] == 0 and step["usage"], step
        assert step["forbidden"] == [], step


def test_top_level_help_loads_no_command_module() -> None:
    first, second = _probe([[], ["run"]])
    assert first["cli_modules"] == ["benchrun.cli.app", "benchrun.cli.common"]
    assert second["cli_modules"] == ["benchrun.cli.app", "benchrun.cli.common", "benchrun.cli.run"]


# typer's own rendering of a group equal to ours (same help, same commands and help lines, same --help option)
_TYPER_PAGE = """
from typer.core import TyperCommand
from benchrun.cli.app import COMMANDS, HELP
from benchrun.cli.common import Group
ref = Group(name="benchrun", help=HELP, no_args_is_help=True,
            commands={n: TyperCommand(name=n, help=e.help, callback=None) for n, e in COMMANDS.items()})
ref.main(args=["--help"], prog_name="benchrun")
"""


def test_top_level_help_is_typers_page_byte_for_byte() -> None:
    """`benchrun --help` is drawn by app._print_top_help, not typer.rich_utils (0.1 s of imports, issue 15):
    the page must be the one typer draws for the same group, plain and coloured, at several widths."""
    for columns in ("50", "80", "132", "200"):
        for colour in ({}, {"FORCE_COLOR": "1"}):
            env = {"PATH": "", "COLUMNS": columns, **colour}
            ours = subprocess.run([sys.executable, "-m", "benchrun.cli", "--help"], capture_output=True, env=env,
                                  timeout=60, check=False)
            ref = subprocess.run([sys.executable, "-c", _TYPER_PAGE], capture_output=True, env=env, timeout=60,
                                 check=False)
            assert ours.returncode == 0 and ref.returncode == 0, (ours.stderr, ref.stderr)
            text = re.sub(rb"\x1b\[[0-9;]*m", b"", ref.stdout)
            assert b"Commands" in text and b"reproduce" in text and b"--help" in text
            assert (b"\x1b[" in ref.stdout) == bool(colour)
            assert ours.stdout == ref.stdout, (columns, colour)
    probe = ("import sys\nfrom benchrun.cli import main\nmain(['--help'])\n"
             "print(sorted(m for m in sys.modules if m.startswith(('typer.rich_utils', 'rich.markdown', 'rich.syntax'))))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_bare_benchrun_prints_the_help_and_no_empty_error() -> None:
    for argv in ([], ["runs"]):
        r = subprocess.run([sys.executable, "-m", "benchrun.cli", *argv], capture_output=True, text=True,
                           env={"PATH": "", "COLUMNS": "100"}, timeout=60, check=False)
        assert r.returncode == 2 and "Usage: benchrun" in r.stdout and "Commands" in r.stdout, (argv, r)
        assert r.stderr == "", (argv, r.stderr)


def test_probe_sees_heavy_imports() -> None:
    """The probe is able to fail: a command that does load the spec module shows up."""
    r = subprocess.run([sys.executable, "-c", "import sys, benchrun.spec; "
                        f"print([m for m in {FORBIDDEN!r} if m in sys.modules])"],
                       capture_output=True, text=True, timeout=60, check=True)
    assert "benchrun.spec" in r.stdout and "pydantic" in r.stdout


def test_only_the_provider_gateway_calls_models() -> None:
    """Every call to a model API (chat, embeddings, files and batches) goes through providers.py or its
    OpenAI-compatible transport openai_http.py: no other module calls litellm's request functions or
    opens an HTTP client."""
    import re

    calls = re.compile(r"litellm\.(a?completion|acreate_file|acreate_batch|aretrieve_batch|alist_batches|"
                       r"afile_content|a?embedding|acancel_batch)\(|httpx\.(Async)?Client\(|aiohttp\.ClientSession\(")
    gateway = {SRC / "benchrun" / "providers.py", SRC / "benchrun" / "openai_http.py"}
    offenders = [f"{p.relative_to(SRC)}:{n}" for p in sorted((SRC / "benchrun").rglob("*.py")) if p not in gateway
                 for n, line in enumerate(p.read_text().splitlines(), 1) if calls.search(line)]
    assert offenders == []
    assert calls.search((SRC / "benchrun" / "providers.py").read_text())  # the pattern does find the gateway's calls


def test_console_exit_keeps_exit_handlers_output_and_codes(tmp_path: Path) -> None:
    """`cli.app.console` ends the process without the interpreter's teardown: exit handlers still run, output
    is flushed, the exit code is main's, and the ledger's SQLite connections are closed (a WAL ledger keeps no
    ``-wal`` / ``-shm`` file, as after a normal exit); with another thread alive the exit is the normal one."""
    prog = ("import atexit, sys, threading, time\n"
            "atexit.register(lambda: print('EXIT-HANDLER-RAN', flush=True))\n"
            "if sys.argv[1] == 'thread':\n"
            "    threading.Thread(target=lambda: (time.sleep(0.5), print('THREAD-DONE', flush=True))).start()\n"
            "sys.argv = ['benchrun', *sys.argv[2:]]\n"
            "print('unflushed', end='')\n"
            "from benchrun.cli.app import console\n"
            "console()\n")
    for mode in ("alone", "thread"):
        (tmp_path / mode).mkdir()
        ledger = tmp_path / mode / "l.sqlite"  # a new ledger: this listing creates it, in WAL mode
        ok = subprocess.run([sys.executable, "-c", prog, mode, "runs", "list", "--ledger", str(ledger), "--json"],
                            capture_output=True, text=True, timeout=60, check=False)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("unflushed") and "EXIT-HANDLER-RAN" in ok.stdout, ok.stdout
        assert ("THREAD-DONE" in ok.stdout) == (mode == "thread")
        assert sorted(p.name for p in ledger.parent.iterdir()) == ["l.sqlite"]  # created, then closed
        bad = subprocess.run([sys.executable, "-c", prog, mode, "runs", "show", "no-such-run", "--ledger", str(ledger)],
                             capture_output=True, text=True, timeout=60, check=False)
        assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "EXIT-HANDLER-RAN" in bad.stdout, bad


def test_console_raises_the_collectors_first_threshold_and_main_leaves_it(capsys: object) -> None:
    """The `benchrun` process runs with the cyclic collector's first threshold at `GC_THRESHOLD_0` (fewer full
    collections over a command's long-lived objects); a threshold the caller set is kept, and `main` (called
    in-process by tests and the Python API) does not touch the caller's collector."""
    import gc

    from benchrun.cli.app import GC_THRESHOLD_0, main

    prog = ("import atexit, gc, sys\n"
            "if sys.argv[1] == 'tuned':\n"
            "    gc.set_threshold(500, 5, 5)\n"
            "atexit.register(lambda: print('GC', gc.get_threshold(), flush=True))\n"
            "sys.argv = ['benchrun', '--help']\n"
            "from benchrun.cli.app import console\n"
            "console()\n")
    for mode, want in (("default", (GC_THRESHOLD_0, 10, 10)), ("tuned", (500, 5, 5))):
        r = subprocess.run([sys.executable, "-c", prog, mode], capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        assert f"GC {want}" in r.stdout, (mode, r.stdout[-500:])
    assert GC_THRESHOLD_0 > 700
    before = gc.get_threshold()
    assert main(["--help"]) == 0
    assert gc.get_threshold() == before
