"""What every command module shares: options, consoles, JSON printing, gates, SIGTERM handling.

Light on purpose: `benchrun COMMAND --help` imports this module, so it imports typer and the
standard library only; rich consoles are made on first use.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from rich.console import Console

    from benchrun.ledger import Ledger

LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", help="SQLAlchemy URL or SQLite path (default: $BENCHRUN_LEDGER or runs/ledger.sqlite)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read the response cache.")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Call what the stored snapshot names even where its key variables "
                                      "or hosts differ from the spec file on disk, or that file is absent.")]


class Group(TyperGroup):
    """A typer group whose ``--help`` flag defaults to False instead of None.

    typer >= 0.2x coerces every option value that is not already a bool through a pydantic
    TypeAdapter; a group's absent ``--help`` flag is None, so `benchrun runs list --help` would
    import pydantic (~40 ms) just to read "not given". With False it is a bool and skipped.
    """

    def get_help_option(self, ctx: Any) -> Any:
        opt = super().get_help_option(ctx)
        if opt is not None and opt.default is None:
            opt.default = False
        if opt is not None and opt.metavar is None:  # no "<bool>" beside --help
            opt.metavar = ""
        return opt


class Severity(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


_consoles: dict[str, Console] = {}


def out() -> Console:
    """Standard output (a `SafeConsole`: control sequences in data never reach the terminal; markup
    in data still needs ``benchrun.report.escape.escape``). Piped output (files, CI logs) gets a wide fixed width instead of rich's 80 columns."""
    key = f"out:{os.environ.get('COLUMNS')}"  # rich reads COLUMNS once, when the console is made
    if key not in _consoles:
        from benchrun.report.escape import SafeConsole

        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
        _consoles[key] = SafeConsole(highlight=False, soft_wrap=True, width=width)
    return _consoles[key]


def err() -> Console:
    """Standard error: progress, warnings, one-line errors."""
    if "err" not in _consoles:
        from benchrun.report.escape import SafeConsole

        _consoles["err"] = SafeConsole(stderr=True, highlight=False, soft_wrap=True)
    return _consoles["err"]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def open_ledger(url: str | None, read_only: bool = False) -> Ledger:
    """The ledger; ``read_only`` for commands that only read (a read-only file can still be listed)."""
    from benchrun.ledger import Ledger

    return Ledger(url, read_only=read_only)


def show_credentials(run: Any, from_cache: bool = False) -> None:
    """Print which variables a stored snapshot reads and which hosts it calls (`benchrun.credentials.assess`)."""
    import json

    from benchrun.credentials import assess
    from benchrun.spec import RunSpec

    try:  # the spec part only: the routes are the candidates' and the judge's (a dataset can be thousands of cases)
        spec = RunSpec.model_validate(json.loads(run.spec_snapshot)["spec"])
    except (ValueError, KeyError, TypeError):
        return  # an unreadable snapshot: the command itself reports it
    for line in assess(run, spec).lines(from_cache):
        err().print(line, markup=False)


def exit_on_gate_failures(problems: list[str]) -> None:
    """Print each failed quality gate and exit 1; nothing when every gate passed."""
    if problems:
        for p in problems:
            err().print(f"gate failed: {p}", markup=False)
        raise typer.Exit(1)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a run executes, SIGTERM (a CI job cancelled, `kill`) stops it like Ctrl-C: marked interrupted, resumable."""

    def _sigterm(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ProgressBar:
    """A rich progress bar on stderr for a run, started by `execute_run`'s ``on_start`` hook.

    On a terminal, a live bar. Elsewhere (CI logs, files) one plain progress line on stderr every
    ``BENCHRUN_PROGRESS_SECONDS`` seconds (default 30) or every 10% of the cells, whichever comes
    first, and at the end; with ``--json`` nothing. Use it as a context manager so the bar stops
    however the run ends, before the error is printed.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and err().is_terminal
        self.lines = enabled and not self.enabled
        try:
            self.every_s = float(os.environ.get("BENCHRUN_PROGRESS_SECONDS", "30"))
        except ValueError:
            self.every_s = 30.0
        self._last_line = (0.0, -1)  # (time, tenth of the cells) of the last line printed
        self._last_counts: tuple[int, int] | None = None
        self._progress: Any = None
        self._task: Any = None
        self._t0 = 0.0
        self._waited = False
        self._last_wait = (0.0, "")

    def _line(self, p: Any) -> None:
        """A plain progress line when it is due (not a terminal)."""
        import time

        now = time.perf_counter()
        if not self._t0:
            self._t0 = now
            self._last_line = (now, -1)
        tenth = (10 * p.done) // p.total if p.total else 0
        due = p.done == p.total or tenth > self._last_line[1] or now - self._last_line[0] >= self.every_s
        if not due or (p.done, p.total) == self._last_counts:
            return
        self._last_line, self._last_counts = (now, tenth), (p.done, p.total)
        el = int(now - self._t0)
        cost = f"${p.cost_usd:.4f}" + (f" (+{p.cost_unknown} unpriced)" if p.cost_unknown else "")
        pct = f" ({p.done / p.total:.0%})" if p.total else ""
        err().print(f"progress: {p.done}/{p.total} cells{pct}, errors {p.errors}, cost {cost}, "
                    f"elapsed {el // 60}m{el % 60:02d}s", markup=False, soft_wrap=True)

    def start(self) -> None:
        if self.lines and not self._t0:  # elapsed time counts from the start of the run, not the first cell
            import time

            self._t0 = time.perf_counter()
            self._last_line = (self._t0, -1)
        if not self.enabled or self._progress is not None:
            return
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/s"), TextColumn("errors {task.fields[errors]}"),
            TextColumn("cost {task.fields[cost]}"), TimeElapsedColumn(), console=err(), transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("running", total=None, rate="0.0", errors=0, cost="$0")
        self._t0 = time.perf_counter()

    def update(self, p: Any) -> None:
        if getattr(p, "waiting", None) is not None:  # before the cells start: e.g. provider batches pending
            self._waiting(p.waiting)
            return
        if self.lines:
            self._line(p)
            return
        if self._progress is None:
            return
        if self._waited:
            self._progress.update(self._task, description="running")
            self._waited = False
        import time

        rate = p.done / max(time.perf_counter() - self._t0, 1e-9)
        cost = f"${p.cost_usd:.4f}" + (f" (+{p.cost_unknown} unpriced)" if p.cost_unknown else "")
        self._progress.update(self._task, total=p.total, completed=p.done, rate=f"{rate:.1f}", errors=p.errors,
                              cost=cost)

    def _waiting(self, what: str) -> None:
        """What the run waits for: in the bar's description, or a plain line when it changes (at most every
        ``BENCHRUN_PROGRESS_SECONDS`` otherwise)."""
        import time

        if self._progress is not None:
            from benchrun.report.escape import escape

            self._progress.update(self._task, description=escape(what))  # provider states are not ours
            self._waited = True
        elif self.lines:
            now = time.perf_counter()
            if what != self._last_wait[1] or now - self._last_wait[0] >= self.every_s:
                self._last_wait = (now, what)
                err().print(f"progress: {what}", markup=False, soft_wrap=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hooks(self) -> dict[str, Any]:
        """Keyword arguments for `execute_run` / `reproduce`: progress, start and the SIGTERM guard."""
        return {"on_progress": self.update if self.enabled or self.lines else None, "on_start": self.start,
                "interrupt_guard": sigterm_as_interrupt}
