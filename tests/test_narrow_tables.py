"""Tables fit 80 columns (a pipe, a CI log) and keep their wide form at 160 (issue 14, item 3).

The real CLI in a subprocess (stdout a pipe, COLUMNS set as a CI runner would), at both widths.
"""

from __future__ import annotations

import io
from typing import Any

from benchrun.coverage.history import store_report
from conftest import Project

BOX = set("│┃┏┓┗┛┡┩└┘━─╇┳┻╋┼")


def _table_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if BOX & set(ln)]


def _setup(project: Project) -> str:
    spec = project.setup(candidates=[
        {"model": "openai/good", "alias": "support-assistant-prompt-v2-long-name", "api_base": project.url,
         "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
        {"model": "openai/bad", "alias": "bad", "api_base": project.url,
         "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}}])
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    ds = summary["conditions"]["dataset"]
    store_report(str(project.ledger), {
        "score": {"jsd": 0.534, "band": "refresh"}, "production": {"source": "production-2026-11-hr-portal.jsonl",
                                                                   "hash": "ab" * 32},
        "dataset": {"name": ds["name"], "version": ds["version"], "hash": ds["hash"]}, "headline": "JSD 0.534",
        "uncovered": {"clusters": 30, "production_share": 0.4}})
    return summary["conditions"]["run_id"]


def _at_80_and_160(project: Project, cmd: tuple[str, ...]) -> tuple[Any, Any, list[str]]:
    """The command at 80 and at 160 columns (a subprocess, stdout a pipe): both succeed and no table line is
    wider than its terminal. Returns both results and the 80-column table lines."""
    narrow = project.cli(*cmd, env={"COLUMNS": "80"}, subprocess_=True)
    wide = project.cli(*cmd, env={"COLUMNS": "160"}, subprocess_=True)
    assert narrow.returncode == 0 and wide.returncode == 0, (cmd, narrow.stderr, wide.stderr)
    lines = _table_lines(narrow.stdout)
    assert lines and max(len(ln) for ln in lines) <= 80, (cmd, narrow.stdout)
    assert max(len(ln) for ln in _table_lines(wide.stdout)) <= 160, (cmd, wide.stdout)
    return narrow, wide, lines


def test_tables_fit_80_columns_and_stay_wide_at_160(project: Project) -> None:
    run_id = _setup(project)
    commands = [("runs", "show", run_id), ("runs", "list"), ("shortlist", run_id), ("coverage", "history")]
    seen: dict[tuple[str, ...], tuple[str, str]] = {}
    for cmd in commands:
        narrow, wide, _ = _at_80_and_160(project, cmd)
        seen[cmd[:2]] = (narrow.stdout, wide.stdout)
    show80, show160 = seen[("runs", "show")]
    # wide: every column with its full header, nothing hidden; narrow: what was hidden is said, names cut with "…"
    for h in ("pass rate (95% CI)", "passed", "failed", "errors", "mean judge", "candidate cost", "judge cost", "p95"):
        assert h in show160
    assert "hidden at" not in show160 and "hidden at 80 columns: " in show80
    # a model key is cut in the middle: its start and its end (where versions differ) stay readable
    assert any(ln.split()[0] == "suppor…g-name" for ln in _table_lines(show80)), show80
    for h in ("pass rate", "err", "judge", "cand. $", "judge $"):  # the costs stay at 80, apart
        assert h in _table_lines(show80)[0]
    list80, _ = seen[("runs", "list")]
    assert sum(run_id in ln for ln in _table_lines(list80)) == 1  # the id whole, on one line: rows do not wrap
    sl80, sl160 = seen[("shortlist", run_id)]
    assert "judge $/1k" in sl160 and "hidden at" not in sl160 and "hidden at 80 columns: " in sl80
    hist80, hist160 = seen[("coverage", "history")]
    assert any(ln.rstrip(" │").endswith("30") for ln in _table_lines(hist80))
    assert "production-2026-11-hr-portal.jsonl" in hist160


def test_fit_table_drops_by_priority() -> None:
    from rich.console import Console

    from benchrun.report.fit import Col, fit_table

    cols = [Col("name", 0, "left", text=True, min_width=6), Col("a", 2), Col("b", 1), Col("c", 3)]
    rows = [["x" * 40, "1" * 10, "2" * 10, "3" * 10]]
    con = Console(width=200, record=True, file=io.StringIO())
    t, hidden = fit_table(cols, rows, 200)
    assert hidden == []
    t, hidden = fit_table(cols, rows, 40)
    assert hidden == ["c"]  # the highest number first, only as many as needed
    t, hidden = fit_table(cols, rows, 30)
    assert hidden == ["c", "a"]  # then the next; "b" (priority 1) kept
    ids = [Col("model", 0, "left", text=True, min_width=9, middle=True), Col("n")]
    t2, _ = fit_table(ids, [["smollm2-prompt-v1", "1"], ["smollm2-prompt-v2", "2"]], 16)
    con2 = Console(width=100, record=True, file=io.StringIO())
    con2.print(t2)
    shown = con2.export_text()
    assert "smollm…pt-v1 " in shown and "smollm…pt-v2 " in shown  # cut in the middle, the two stay apart
    con.print(t)
    text = con.export_text()
    assert "2" * 10 in text and "…" in text and max(len(ln) for ln in text.splitlines()) <= 30


def test_compare_reproduce_and_diff_fit_80_columns(project: Project) -> None:
    """`compare`, `reproduce` and `diff` print fitted tables too: at 80 columns no table line is wider, and
    what was hidden is named; at 160 the full headers are back."""
    spec = project.setup(candidates=[
        {"model": "openai/good", "alias": "support-assistant-prompt-v2-long-name", "api_base": project.url},
        {"model": "openai/bad", "alias": "bad", "api_base": project.url}])
    r, s1 = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    run1 = s1["conditions"]["run_id"]
    project.write_spec(candidates=[
        {"model": "openai/good", "alias": "support-assistant-prompt-v2-long-name", "api_base": project.url},
        {"model": "openai/bad", "alias": "bad", "api_base": project.url}],
        sampling={"temperature": 0.7, "max_tokens": 64, "seed": 1})
    r, s2 = project.cli_json("run", str(spec))
    run2 = s2["conditions"]["run_id"]
    commands = [("compare", "support-assistant-prompt-v2-long-name", "bad", "--run", run1),
                ("reproduce", run1, "--from-cache"), ("diff", run1, run2), ("run", str(spec), "--estimate")]
    _, cmp = project.cli_json("compare", "support-assistant-prompt-v2-long-name", "bad", "--run", run1)
    boot = cmp["comparison"]["bootstrap"]
    whole = f"[{100 * boot['low']:+.1f}, {100 * boot['high']:+.1f}]"
    for cmd in commands:
        narrow, wide, lines = _at_80_and_160(project, cmd)
        if cmd[0] == "compare":
            assert "Flips (6): cases that pass for one model and fail for the other" in narrow.stdout
            assert "pass rate (6 paired cases)" in wide.stdout
            assert any(whole in ln for ln in lines), narrow.stdout  # an interval's numbers are never cut
        if cmd[0] == "reproduce":
            assert "hidden at 80 columns: " in narrow.stdout and "Δ p50" in narrow.stdout
            assert "answers changed" in wide.stdout and "hidden at" not in wide.stdout
            # each row on one line: the model key cut in the middle, the pass rates whole
            assert sum("100.0% → 100.0%" in ln for ln in lines) == 1, narrow.stdout
        if cmd[0] == "run":
            assert "Calls, tokens and cost" in narrow.stdout and "hidden at 80 columns: " in narrow.stdout
        if cmd[0] == "diff":
            assert any("temperature" in ln and "0.7" in ln for ln in lines), narrow.stdout
