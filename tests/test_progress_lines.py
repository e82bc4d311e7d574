"""Without a terminal, a run prints plain progress lines on stderr (issue 14, item 9: 15 silent minutes in CI)."""

from __future__ import annotations

import re
from itertools import pairwise

from conftest import Project, make_cases

LINE = re.compile(r"^progress: (\d+)/(\d+) cells \((\d+)%\), errors (\d+), cost \$[\d.]+, elapsed \d+m\d\ds$")


def _lines(stderr: str) -> list[re.Match[str]]:
    return [m for ln in stderr.splitlines() if (m := LINE.match(ln))]


def test_progress_lines_when_not_a_terminal(project: Project) -> None:
    project.write_dataset(make_cases(20))
    project.write_rubric()
    spec = project.write_spec()
    r = project.cli("run", str(spec))  # stderr is a pipe here, not a terminal
    assert r.returncode == 0, r.stderr
    lines = _lines(r.stderr)
    done = [int(m.group(1)) for m in lines]
    assert done == sorted(done) and done[-1] == 40 and all(int(m.group(2)) == 40 for m in lines)
    # every 10% of the 40 cells (4 cells) at least, not a line per cell, with the default 30 s
    assert 10 <= len(lines) <= 12, r.stderr
    assert all(b - a <= 4 for a, b in pairwise(done))
    # every N seconds: with 0 s, a line per finished cell
    r = project.cli("run", str(spec), "--no-cache", env={"BENCHRUN_PROGRESS_SECONDS": "0"})
    assert [int(m.group(1)) for m in _lines(r.stderr)] == list(range(1, 41))
    # --json keeps stderr quiet
    r = project.cli("run", str(spec), "--json")
    assert _lines(r.stderr) == []
