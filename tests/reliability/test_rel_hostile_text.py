"""Untrusted text on the terminal (issue 12.6): rich markup and control sequences in data.

Production logs in Llama format (``<s>[INST] ... [/INST]``), case ids like ``[/bold]``, answers with
``[link=https://evil.example]`` or terminal escapes (``\\x1b]0;pwned\\x07`` retitles the window,
``\\x1b[2J`` clears it) go through the real CLI. Commands that print tables run as subprocesses
with ``FORCE_COLOR=1 TTY_COMPATIBLE=1``, so rich renders as for a terminal (styles, hyperlinks):
a ``[link=...]`` read as markup would then come out as an OSC 8 hyperlink. The checks: the command
succeeds, the data is shown literally, and no control sequence but rich's own colours (SGR) reaches
the output.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from benchrun.report.escape import SafeConsole, escape, plain, strip_controls
from conftest import Project, make_cases
from fakeserver import FakeServer

TITLE = "\x1b]0;pwned\x07"  # OSC 0: set the window title
CLEAR = "\x1b[2J"  # CSI 2J: clear the screen
OSC8 = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"  # a raw terminal hyperlink
LINK = "[link=https://evil.example]"
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours and styles
TTY = {"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "COLUMNS": "200"}


def assert_clean(output: str) -> str:
    """No control sequence but SGR colours, no hyperlink, no markup crash; returns the text without colours."""
    assert "MarkupError" not in output and "internal error" not in output, output[-2000:]
    assert "\x1b]" not in output, "an OSC sequence (window title or hyperlink) reached the terminal"
    assert "\x07" not in output and "\x9b" not in output and "\x9d" not in output
    text = SGR.sub("", output)
    assert "\x1b" not in text, repr(text[max(0, text.find("\x1b") - 80): text.find("\x1b") + 80])
    return text


# ----------------------------------------------------------------------------- the helper itself


@pytest.mark.parametrize(("raw", "shown"), [
    (f"a{TITLE}b", "ab"),
    (f"x{CLEAR}y", "xy"),
    (f"pre {OSC8} post", "pre click post"),
    ("\x1b]0;unterminated title", ""),
    ("\x1bP1$tDCS payload\x1b\\after", "after"),
    ("\x9b31mred\x9d0;c1 title\x07", "red"),
    ("\x1bcreset\x1b7saved", "resetsaved"),
    ("keep\n\ttabs\rand\x08back\x00nul\x7f", "keep\n\ttabsandbacknul"),
    ("unicode ünïcödé ✓ [INST]", "unicode ünïcödé ✓ [INST]"),
])
def test_strip_controls(raw: str, shown: str) -> None:
    assert strip_controls(raw) == shown


def test_strip_controls_one_line() -> None:
    assert strip_controls("a\nb\tc\rd", newlines=False) == "a b c d"


@pytest.mark.parametrize("data", ["<s>[INST] refund [/INST]", "[/bold]", f"{LINK}click[/link]", "[red]x", "end\\",
                                  f"[bold]{TITLE}{CLEAR}"])
def test_escaped_data_prints_literally_in_markup(data: str) -> None:
    buf = io.StringIO()
    con = SafeConsole(file=buf, force_terminal=True, color_system="truecolor", width=200)
    con.print(f"[bold]case[/bold] [red]{escape(data)}[/red] [dim]end[/dim]")
    text = assert_clean(buf.getvalue())
    assert text == f"case {strip_controls(data)} end\n"


def test_safe_console_strips_controls_even_without_escape() -> None:
    from rich.table import Table

    buf = io.StringIO()
    con = SafeConsole(file=buf, force_terminal=True, color_system="truecolor", width=200)
    t = Table(title=f"title {TITLE}")
    t.add_column("col")
    t.add_row(f"cell {CLEAR}{OSC8}")
    con.print(t)
    con.print(f"plain {TITLE}", markup=False)
    con.rule(f"rule {CLEAR}")
    con.print(plain(f"text {TITLE}"))
    text = assert_clean(buf.getvalue())
    assert "cell click" in text and "plain" in text and "rule" in text
    # the control: a plain rich Console lets them through
    raw = io.StringIO()
    Console(file=raw, force_terminal=True, width=200, highlight=False).print(f"plain {TITLE}{CLEAR}", markup=False)
    assert "\x1b]0;pwned" in raw.getvalue() and CLEAR in raw.getvalue()


# ----------------------------------------------------------------------------- the real commands


def _tty_cli(project: Project, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return project.cli(*args, env=TTY, subprocess_=True, timeout=timeout)


def test_coverage_shows_llama_format_logs_and_links_literally(project: Project) -> None:
    topics = ["double charge", "card declined abroad", "pin locked", "lost card", "refund status",
              "wrong exchange rate", "transfer pending", "account frozen", "cash withdrawal fee", "top up failed"]
    rows = [{"text": f"<s>[INST] refund {t} [/INST]"} for t in topics]
    rows += [{"text": f"{LINK}card {t}[/link]{TITLE}{CLEAR}"} for t in topics]
    prod = project.root / "prod.jsonl"
    prod.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    project.write_dataset()
    r = _tty_cli(project, "coverage", "--production", "prod.jsonl", "--dataset", "datasets/mini.yaml", "--k", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    out = assert_clean(r.stdout)
    assert_clean(r.stderr)
    assert "[/INST]" in out and LINK in out  # shown as the log has it, not read as markup
    assert "Coverage by cluster" in out  # the table was printed
    # the stored report keeps the text as it was (escaping is for the terminal only)
    r = project.cli("coverage", "history", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 1  # stored before it was printed
    r = _tty_cli(project, "coverage", "history")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "prod.jsonl" in assert_clean(r.stdout)
    # refresh: the table of clusters and why they get new cases, with the same texts
    r = _tty_cli(project, "refresh", "--production", "prod.jsonl", "--dataset", "datasets/mini.yaml", "--k", "2",
                 "--n", "4", "--out", "new_cases.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    out = assert_clean(r.stdout)
    assert_clean(r.stderr)
    assert "Refresh:" in out and "new_cases.yaml" in out
    new = (project.root / "new_cases.yaml").read_text(encoding="utf-8")
    assert "[/INST]" in new or "[link=" in new  # the proposed cases keep the production text as it was


def test_run_summary_runs_show_and_compare_show_hostile_case_ids(project: Project, server: FakeServer) -> None:
    ids = ["[/bold]", f"case-{TITLE}x", f"{LINK}case[/link]", f"case{CLEAR}y", "<s>[INST] c [/INST]", "[red]z"]
    cases = make_cases(len(ids))
    for c, cid in zip(cases, ids, strict=True):
        c["id"], c["severity"] = cid, "high"
    project.write_dataset(cases)
    project.write_rubric()
    spec = project.write_spec()
    spec.write_text(spec.read_text().replace("name: mini", f"name: 'hostile {LINK}x'", 1))
    r = _tty_cli(project, "run", str(spec))  # the bad model fails every high-severity case: DO NOT SHIP list
    assert r.returncode == 0, r.stderr[-3000:]
    out = assert_clean(r.stdout)
    assert "DO NOT SHIP" in out and "[/bold]" in out and f"{LINK}case[/link]" in out and "[red]z" in out
    assert "casey" in out and "case-x" in out  # the control sequences are gone, the rest of the id stays
    run_id = json.loads(project.cli("runs", "list", "--json").stdout)[0]["id"]
    for args in (("runs", "show", run_id), ("runs", "list"), ("compare", "good", "bad", "--run", run_id)):
        r = _tty_cli(project, *args)
        assert r.returncode == 0, (args, r.stderr[-3000:])
        out = assert_clean(r.stdout)
        assert_clean(r.stderr)
        if args[0] == "compare":
            assert "[/bold]" in out and "<s>[INST] c [/INST]" in out  # the flips table
        else:
            assert f"hostile {LINK}x" in out


def test_error_messages_strip_controls(project: Project) -> None:
    project.setup()
    r = _tty_cli(project, "runs", "show", f"nope{TITLE}{CLEAR}[/bold]")
    assert r.returncode == 2, r.stderr
    err = assert_clean(r.stderr)
    assert err.strip().count("\n") == 0 and "nope" in err and "[/bold]" in err
    r = project.cli("runs", "show", "two\nlines\tand a tab")  # an error names data: still one line
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "two lines and a tab" in r.stderr, r.stderr


def test_labels_annotate_with_markup_case_id_and_escapes_in_the_answer(
    project: Project, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv

    project.setup()
    r, summary = project.cli_json("run", str(project.root / "runs" / "mini.yaml"))
    assert r.returncode == 0, r.stderr
    run_id = str(summary["conditions"]["run_id"])
    tpl = project.root / "t.csv"
    assert project.cli("labels", "export", run_id, "--sample", "2", "--out", str(tpl)).returncode == 0
    with tpl.open(encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    comments = [ln for ln in lines if ln.startswith("#")]
    header, *rows = list(csv.reader(io.StringIO("\n".join(ln for ln in lines if not ln.startswith("#")))))
    rows[0][header.index("case_id")] = "[/bold]"
    rows[0][header.index("response")] = f"{LINK}click me[/link] {TITLE}{CLEAR}{OSC8} done"
    buf = io.StringIO()
    buf.write("".join(c + "\n" for c in comments))
    csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows([header, *rows])
    tpl.write_bytes(buf.getvalue().encode())
    monkeypatch.setattr("sys.stdin", io.StringIO("4\ny\n\n\n" * 2))
    r = project.cli("labels", "annotate", str(tpl), "--run", run_id, "--annotator", "ada")
    assert r.returncode == 0, r.stderr
    out = assert_clean(r.stdout)
    assert "case [/bold]" in out and f"{LINK}click me[/link] click done" in out
    assert "labelled 2 item(s)" in out


def test_no_module_bypasses_the_helper() -> None:
    """New printing code uses `escape` and `SafeConsole`, not rich's escape or a bare Console."""
    src = Path(__file__).resolve().parents[2] / "src" / "benchrun"
    offenders = []
    for f in sorted(src.rglob("*.py")):
        if f.name == "escape.py" and f.parent.name == "report":
            continue
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
            if "rich.markup import" in line or re.search(r"(?<![A-Za-z])Console\(", line):
                offenders.append(f"{f.relative_to(src)}:{i}: {line.strip()}")
    assert offenders == []
