"""benchrun in a pytest suite: a ``benchrun_run`` fixture and `assert_passed`.

Enable it in a ``conftest.py``::

    pytest_plugins = ["benchrun.testing"]

then::

    def test_billing_assistant(benchrun_run):
        result = benchrun_run("runs/billing-support.yaml")
        assert result.passed(fail_on="high")

Each run is recorded in the ledger (``--benchrun-ledger``, else ``$BENCHRUN_LEDGER``, else
``runs/ledger.sqlite``), like `benchrun run`. When a test that made runs fails, pytest's report
gets a "benchrun" section with each run's summary table and failure breakdown, so the reason is
in the CI log. `assert_passed` fails with the quality gates that did not hold.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from benchrun.api import RunResult

_RUNS_KEY = pytest.StashKey[list["RunResult"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchrun")
    group.addoption("--benchrun-ledger", default=None,
                    help="Ledger for benchrun_run (SQLite path or SQLAlchemy URL; default: $BENCHRUN_LEDGER or "
                         "runs/ledger.sqlite).")
    group.addoption("--benchrun-no-cache", action="store_true", default=False,
                    help="benchrun_run does not read the response cache.")


def summary_text(result: RunResult, width: int = 120) -> str:
    """The run's terminal summary (what `benchrun runs show` prints), as plain text."""
    from benchrun.report.escape import SafeConsole  # control sequences in data never reach the log
    from benchrun.report.terminal import render_summary

    buf = io.StringIO()
    render_summary(SafeConsole(file=buf, width=width, no_color=True, highlight=False, soft_wrap=True), result.data)
    return buf.getvalue()


def assert_passed(result: RunResult, fail_on: str | None = None, min_pass_rate: float | None = None) -> None:
    """Fail the test, naming every quality gate that did not hold and showing the summary."""
    problems = result.gate_failures(fail_on, min_pass_rate)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise AssertionError(f"benchrun run {result.run_id} did not pass:\n{lines}\n\n{summary_text(result)}")


@pytest.fixture
def benchrun_run(request: pytest.FixtureRequest) -> Iterator[Callable[..., RunResult]]:
    """Run a spec (path or `LoadedSpec`) with `benchrun.run` and return its `RunResult`."""
    from benchrun import api

    ledger = request.config.getoption("--benchrun-ledger")
    cache = not request.config.getoption("--benchrun-no-cache")
    made: list[RunResult] = []
    request.node.stash[_RUNS_KEY] = made

    def run(spec: str | Path | Any, **kw: Any) -> RunResult:
        kw.setdefault("ledger", ledger)
        kw.setdefault("cache", cache)
        result = api.run(spec, **kw)
        made.append(result)
        return result

    yield run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    runs = item.stash.get(_RUNS_KEY, None)
    if report.when == "call" and report.failed and runs:
        report.sections.append(("benchrun", "\n".join(summary_text(r) for r in runs)))
