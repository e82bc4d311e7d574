"""The `benchrun` command group: loads each command's module only when that command runs.

`benchrun --help` lists every command from the table below without importing a single command
module; `benchrun COMMAND ...` imports the one module that holds COMMAND (a few typer
declarations; the heavy imports live inside the command functions). This is what keeps
start-up near a bare typer app (see benchmarks/startup.py). The help text in the table is
checked against each command's own docstring by tests/test_cli_structure.py.

Exit codes: 0 done; 1 a quality gate the user set failed; 2 bad input or usage;
3 the run could not complete (provider unreachable, budget exceeded, interrupted).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperOption

from benchrun.cli.common import Group
from benchrun.errors import BenchrunError

try:
    from typer import _click as click  # typer >= 0.2x vendors click
except ImportError:  # older typers use click itself
    import click  # type: ignore[no-redef]

HELP = "Private LLM evaluations: versioned datasets, rule + judge scoring, a reproducibility ledger."


@dataclass(frozen=True)
class Entry:
    """Where a top-level command lives, and the help line `benchrun --help` shows for it."""

    module: str  # benchrun.cli.<module>, whose typer ``app`` declares the command
    help: str


# Order = the order of `benchrun --help`.
COMMANDS: dict[str, Entry] = {
    "run": Entry("run", "Run a spec: every case × candidate × sample, scored by rules and the judge, recorded in the "
                        "ledger."),
    "validate": Entry("dataset", "Check a run spec together with the dataset and rubric it names (no model is called)."),
    "calibrate": Entry("judge", "Compare the judge with human labels: agreement, Cohen's kappa with its 95% CI, weighted "
                                "kappa,\nSpearman, confusion, leniency, failure modes; trusted or not. Uses the run's "
                                "verdicts, or re-judges the\nlabelled items with --judge. Stored in the ledger; `runs "
                                "show` then reports it next to judge scores."),
    "compare": Entry("compare", "Is A better than B? Paired per case: pass-rate gap with intervals, McNemar, judge "
                                "score, flips, power."),
    "reproduce": Entry("compare", "Re-run a recorded run from its stored snapshot and say whether the result "
                                  "reproduced (exit 1 if not)."),
    "diff": Entry("compare", "What differs in two runs' conditions (models, prompts, sampling, dataset, rubric, judge, "
                             "versions)."),
    "shortlist": Entry("compare", "Decision table: exclude by limits (with reasons), rank the rest, mark ties and the "
                                  "quality/cost frontier."),
    "sweep": Entry("sweep", "Run a spec once per combination of setup factors; report each model's score per "
                            "setup, its spread, and\nwhether the gap between the two best models is larger than "
                            "setup noise."),
    "refusals": Entry("refusals", "Ask a judge which answers of a run refuse; stored in the ledger, `runs show` "
                                  "then adds the judge's\nrefusal rate and its agreement with the phrase rules to "
                                  "the holistic row."),
    "arena": Entry("arena", "Which model do people prefer? Bradley-Terry ratings of pairwise battles with "
                            "case-bootstrap intervals."),
    "report": Entry("compare", "One self-contained HTML report (no network needed): conditions, tables, charts, "
                               "per-case drill-down."),
    "runs": Entry("runs", "Read runs recorded in the ledger."),
    "batch": Entry("batch", "Provider batches of a run (batch: true, run --batch)."),
    "dataset": Entry("dataset", "Inspect and validate dataset files."),
    "rubric": Entry("dataset", "Validate rubric files."),
    "labels": Entry("judge", "Human labels for checking the judge: export, annotate, import."),
    "bias": Entry("judge", "Probe the judge for position and verbosity bias."),
    "ledger": Entry("ledger", "Copy runs between ledgers (SQLite, PostgreSQL) and inspect a ledger."),
    "coverage": Entry("coverage", "How far the eval set is from production traffic (Jensen-Shannon divergence over "
                                  "clusters)."),
    "refresh": Entry("coverage", "Propose new eval cases from production, stratified by cluster coverage."),
    "view": Entry("view", "A local web app over the ledger: runs, case drill-down, comparisons, blind labelling "
                          "(JSON twins: add .json)."),
}


def load_command(name: str) -> click.Command:
    """Import the module holding command ``name`` and build its click command from the module's typer app."""
    entry = COMMANDS[name]
    module = importlib.import_module(f"benchrun.cli.{entry.module}")
    group = typer.main.get_group(module.app)
    cmd = group.commands.get(name)
    if cmd is None:  # a table entry naming the wrong module: a bug, caught by tests/test_cli_structure.py
        raise LookupError(f"benchrun.cli.{entry.module} declares no command {name!r}")
    _no_bool_placeholders(cmd)
    return cmd


def _no_bool_placeholders(cmd: click.Command) -> None:
    """On/off flags show no ``<bool>`` type in ``--help`` (typer prints one for every flag, `--help` included)."""
    help_opt = cmd.get_help_option(click.Context(cmd, info_name=cmd.name))
    for p in [*cmd.params, *([help_opt] if help_opt is not None else [])]:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        _no_bool_placeholders(sub)


class LazyGroup(Group):
    """A typer group whose commands are imported on first use.

    ``get_command`` answers with a placeholder (name and help only) until the command is
    resolved for running or for its own ``--help``; the top-level help listing and shell
    completion never import a command module.
    """

    def __init__(self, *, lazy: dict[str, Entry], **kw: Any) -> None:
        super().__init__(**kw)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(n for n in self.commands if n not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = self.lazy.get(cmd_name)
        if entry is None:
            return None
        return TyperCommand(name=cmd_name, help=entry.help, callback=None)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.rich_markup_mode != "rich":  # TYPER_USE_RICH=0: typer's plain click layout
            super().format_help(ctx, formatter)
            return
        _print_top_help(self, ctx)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in self.lazy and args[0] not in self.commands:
            self.commands[args[0]] = load_command(args[0])
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.UsageError as e:
            # TyperGroup suggests close matches among loaded commands only; offer every command
            from difflib import get_close_matches

            if args and "Did you mean" not in e.message:
                matches = get_close_matches(args[0], list(self.list_commands(ctx)))
                if matches:
                    e.message = f"{e.message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in matches)}?"
            raise


app = LazyGroup(name="benchrun", lazy=COMMANDS, help=HELP, no_args_is_help=True)


def _print_top_help(group: LazyGroup, ctx: click.Context) -> None:
    """`benchrun --help` drawn as typer draws a group's help (same panels, styles and widths), from rich's parts.

    typer's own renderer, ``typer.rich_utils``, imports rich's Markdown, Syntax, Traceback and Pretty for
    features this page never uses: about 0.1 s of a 0.3 s start-up on a 2-core machine (issue 15's
    target is 0.25 s). Command pages (`benchrun run --help`) still use typer's renderer.
    tests/test_cli_structure.py checks this page against ``typer.rich_utils.rich_format_help``, byte for
    byte, plain and coloured, at several widths; it covers what this group has: options without
    arguments or panels of their own, commands without deprecation.
    """
    from rich.columns import Columns
    from rich.highlighter import RegexHighlighter
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
    from rich.theme import Theme

    from benchrun.report.escape import SafeConsole

    class _Options(RegexHighlighter):  # typer.rich_utils.OptionHighlighter
        highlights: ClassVar[list[str]] = [r"(^|\W)(?P<switch>\-\w+)(?![a-zA-Z0-9])", r"(^|\W)(?P<option>\-\-[\w\-]+)(?![a-zA-Z0-9])",
                      r"(?P<types>\<[^\>]+\>)", r"(?P<usage>Usage: )"]

    env = os.environ.get
    width = env("TERMINAL_WIDTH")
    force = True if env("GITHUB_ACTIONS") or env("FORCE_COLOR") or env("PY_COLORS") else None
    hl = _Options()
    console = SafeConsole(
        theme=Theme({"option": "bold cyan", "switch": "bold green", "negative_option": "bold magenta",
                     "negative_switch": "bold red", "types": "bold yellow", "types_sep": "dim", "usage": "yellow"}),
        highlighter=hl, color_system="auto", width=int(width) if width and width.isdigit() else None,
        force_terminal=False if env("_TYPER_FORCE_DISABLE_TERMINAL") else force)
    console.print(Padding(hl(group.get_usage(ctx)), 1), style="bold")
    first = (group.help or "").split("\n\n")[0].replace("\n", " ").strip()
    console.print(Padding(hl(Text.from_markup(first)), (0, 1, 1, 1)))

    options = Table(highlight=True, show_header=False, expand=True, box=None, show_lines=False, leading=0,
                    pad_edge=False, padding=(0, 1))
    for param in group.get_params(ctx):
        if isinstance(param, TyperOption) and not param.hidden:
            longs = ",".join(o for o in param.opts if "--" in o)
            shorts = ",".join(o for o in param.opts if "--" not in o)
            options.add_row(hl(longs), hl(shorts), Text(""), Text(""), Text(style="bold yellow", overflow="fold"),
                            Columns([hl(Text.from_markup(" ".join(param.help.split())))] if param.help else []))
    if options.row_count:
        console.print(Panel(options, border_style="dim", title="Options", title_align="left"))

    commands = [c for n in group.list_commands(ctx) if (c := group.get_command(ctx, n)) is not None and not c.hidden]
    table = Table(highlight=False, show_header=False, expand=True, box=None, show_lines=False, leading=0,
                  pad_edge=False, padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True, width=max((len(c.name or "") for c in commands), default=0))
    table.add_column("Description", justify="left", no_wrap=False, ratio=10)
    for c in commands:
        table.add_row(Text(c.name or ""), hl(Text.from_markup((c.short_help or c.help or "").split("\n\n")[0].strip())))
    if table.row_count:
        console.print(Panel(table, border_style="dim", title="Commands", title_align="left"))


# ----------------------------------------------------------------------------- entry point


def _click_exception_types() -> tuple[type[BaseException], ...]:
    """Usage-error classes: typer >= 0.2x vendors click (``typer._click``); older typers use click itself."""
    types: list[type[BaseException]] = []
    try:
        from typer._click import exceptions as vendored

        types.append(vendored.ClickException)
    except ImportError:
        pass
    if "click" in sys.modules:  # only a click someone imported can raise
        types.append(sys.modules["click"].ClickException)
    return tuple(types)


def _redact(text: str) -> str:
    """Remove credentials from a message we print: every key-like environment value, and every secret
    registered while the command ran (API keys read through ``api_key_env``, ledger URL passwords)."""
    from benchrun.providers import SECRETS, collect_env_secrets

    collect_env_secrets()
    return SECRETS.redact(text) or ""


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors and documented exit codes, never a traceback for user faults."""
    click_errors = _click_exception_types()
    try:
        rv = app.main(args=argv, standalone_mode=False, prog_name="benchrun")
        if isinstance(rv, int):  # click returns an Exit's code instead of raising when not standalone
            return rv
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except typer.Abort:
        _err().print("aborted")
        return 3
    except click_errors as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `benchrun` (or a bare group): the help is the message
            return 2
        fmt = getattr(e, "format_message", None)
        _err().print(f"error: {fmt() if fmt else e}", markup=False)
        ctx = getattr(e, "ctx", None)
        if ctx is not None:
            _err().print(f"see: {ctx.command_path} --help", markup=False)
        return 2
    except BenchrunError as e:
        _err().print(f"error: {_one_line(_redact(str(e)))}", markup=False)
        return e.exit_code
    except KeyboardInterrupt:
        _err().print("interrupted")
        return 3
    except Exception as e:  # a bug: still one line, unless debugging
        from benchrun.ledger.store import error_reason, is_disk_full

        if is_disk_full(e):  # not a bug: the ledger's disk filled up (a run in progress was marked if it could be)
            _err().print(f"error: the ledger's disk is full ({_one_line(_redact(error_reason(e)))}); free space and retry "
                         "(an interrupted run resumes with `benchrun run --resume RUN_ID`)", markup=False)
            return 3
        if os.environ.get("BENCHRUN_DEBUG"):
            raise
        _err().print(f"internal error: {type(e).__name__}: {_one_line(_redact(str(e)))} (set BENCHRUN_DEBUG=1 for a traceback)",
                     markup=False)
        return 1
    return 0


# the collector's first threshold in the `benchrun` process (see `console`): 700 by default; 10,000 / 20,000 /
# 50,000 gave 0.90x / 0.88x / 0.88x the wall time of a 4,000-result replay here (set by a wrapper script before
# `console`), so the middle one
GC_THRESHOLD_0 = 20_000


def console() -> None:
    """The `benchrun` console script and `python -m benchrun.cli`: `main`, then the process ends.

    After `main` returns, a normal interpreter exit frees every module and object one by one (SQLAlchemy's,
    pydantic's, the run's results): 0.2-0.5 s after a 1-case run or a replay of 4,000 results on a 2-core
    machine (docs/performance.md, eighth pass), spent on nothing a user needs. So, when no other thread is
    alive, what a normal exit does that matters is done here: the handlers registered with `atexit` run
    (logging, multiprocessing's children, temporary directories, the local model server), the ledger closes its
    connections (`benchrun.ledger.store.close_all`: SQLite checkpoints and removes a WAL ledger's ``-wal`` /
    ``-shm`` files), output is flushed, and the process ends (``os._exit``). With another thread alive, or
    under ``BENCHRUN_DEBUG``, the exit is the normal one. `main` itself (called in-process by tests and the
    Python API) never exits.

    Before `main`, the cyclic garbage collector's first threshold goes from Python's 700 to `GC_THRESHOLD_0`
    (the other two stay 10, 10): a command allocates hundreds of thousands of long-lived objects (its imports,
    a dataset, a run's results), and with the default a full collection walks them all over and over. Memory
    is still reclaimed as before (reference counting; cycles at the next, rarer collection). Measured, A/B wall
    medians: a replay of 4,000 results 0.91x, a 1-case run 0.96x, `--help` 0.96x (docs/performance.md, ninth
    pass). A process policy, so here and not in `main`: the Python API leaves the caller's collector alone.
    """
    import gc

    if gc.get_threshold() == (700, 10, 10):  # Python's default: a caller that tuned its own is left alone
        gc.set_threshold(GC_THRESHOLD_0, 10, 10)
    code = main()
    import threading

    if threading.active_count() > 1 or os.environ.get("BENCHRUN_DEBUG"):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()  # what a normal exit runs after joining the (here: no) other threads
    store = sys.modules.get("benchrun.ledger.store")
    if store is not None:  # a command that never opened a ledger does not import it
        store.close_all()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: Python's own exit reports a failed flush as status 120
            code = code or 120
    os._exit(code)


def _one_line(text: str) -> str:
    """An error names data (ids, paths, answers); a newline or control sequence in it must not break the line."""
    from benchrun.report.escape import strip_controls

    return strip_controls(text, newlines=False)


def _err() -> Any:
    from benchrun.cli.common import err

    return err()
