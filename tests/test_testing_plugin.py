"""`benchrun.testing`: the ``benchrun_run`` fixture and `assert_passed`, run in a real inner pytest (pytester, a subprocess)
against our fake server, with the runs recorded in a real SQLite ledger."""

from __future__ import annotations

import re

import pytest

import benchrun
from conftest import Project
from fakeserver import FakeServer

pytest_plugins = ["pytester"]


def test_benchrun_run_fixture_records_runs_and_explains_failures(pytester: pytest.Pytester,
                                                                  server: FakeServer) -> None:
    project = Project(pytester.path, server.url)
    spec = project.setup()
    ledger = pytester.path / "ci-ledger.sqlite"
    pytester.makeconftest('pytest_plugins = ["benchrun.testing"]\n')
    pytester.makepyfile(test_evals=f'''
from benchrun.testing import assert_passed

SPEC = {str(spec)!r}


def test_completes(benchrun_run):
    result = benchrun_run(SPEC)
    assert result.passed(min_pass_rate=0.0)


def test_gate_with_helper(benchrun_run):
    assert_passed(benchrun_run(SPEC), fail_on="high")


def test_plain_assert(benchrun_run):
    result = benchrun_run(SPEC)
    assert result.passed(fail_on="high")
''')
    res = pytester.runpytest_subprocess("--benchrun-ledger", str(ledger), "-p", "no:cacheprovider")
    res.assert_outcomes(passed=1, failed=2)
    out = res.stdout.str()
    assert "benchrun run " in out and "did not pass:" in out
    assert "- bad: 2 high-severity case(s) not passed" in out
    # the report section with the run's summary, for both failed tests
    assert len(re.findall(r"^-+ benchrun -+$", out, re.M)) == 2
    assert "Per model" in out and "DO NOT SHIP: 2 high-severity case(s) not passed: case-000, case-003" in out
    runs = benchrun.Ledger(ledger).runs()
    assert len(runs) == 3 and {r.status for r in runs} == {"completed"}
    assert server.stats()["completed"] == 24  # the first run paid; the next two were served from the cache
    newest, middle, oldest = runs  # newest first; the passing test ran first and is shown nowhere
    assert f"Run {newest.id}" in out and f"Run {middle.id}" in out and oldest.id not in out


def test_no_cache_option(pytester: pytest.Pytester, server: FakeServer) -> None:
    project = Project(pytester.path, server.url)
    spec = project.setup()
    pytester.makeconftest('pytest_plugins = ["benchrun.testing"]\n')
    pytester.makepyfile(test_evals=f'''
def test_twice(benchrun_run):
    a = benchrun_run({str(spec)!r})
    b = benchrun_run({str(spec)!r})
    assert a.run_id != b.run_id
''')
    res = pytester.runpytest_subprocess("--benchrun-ledger", str(pytester.path / "l.sqlite"), "--benchrun-no-cache")
    res.assert_outcomes(passed=1)
    assert server.stats()["completed"] == 48  # both runs called the models
