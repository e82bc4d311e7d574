"""What a CI job reads: `benchrun run --junit FILE` and `benchrun report RUN_ID --markdown`.

The JUnit file is parsed with xml.etree and checked against the shape of the JUnit XML schema CI
systems read (Jenkins' junit-4.xsd: element nesting and order, required and allowed attributes,
numeric types), validated by the xmlschema library against tests/data/junit-jenkins.xsd (those rules
written as an XML Schema), and read back by junitparser. The Markdown is rendered by a real CommonMark parser (markdown-it-py, with GFM
tables) to check that hostile names and answers stay inert text.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

import benchrun
from conftest import BAD, GOOD, JUDGE_FAIL, JUDGE_PASS, Project, make_cases
from fakeserver import FakeServer

# ----------------------------------------------------------------------------- the JUnit schema's shape
# From junit-4.xsd (Jenkins / dtkit): element -> (required attributes, allowed attributes, allowed children)
_DEC = re.compile(r"^-?\d+(\.\d+)?$")
_INT = re.compile(r"^\d+$")
SCHEMA: dict[str, tuple[set[str], set[str], list[str]]] = {
    "testsuites": (set(), {"name", "time", "tests", "failures", "disabled", "errors"}, ["testsuite"]),
    "testsuite": ({"name", "tests"}, {"name", "tests", "failures", "errors", "time", "disabled", "skipped",
                                      "timestamp", "hostname", "id", "package", "file", "log", "url", "version"},
                  ["properties", "testcase", "system-out", "system-err"]),
    "properties": (set(), set(), ["property"]),
    "property": ({"name", "value"}, {"name", "value"}, []),
    "testcase": ({"name"}, {"name", "assertions", "time", "classname", "status", "file", "line"},
                 ["skipped", "error", "failure", "system-out", "system-err"]),
    "failure": (set(), {"message", "type"}, []),
    "error": (set(), {"message", "type"}, []),
    "skipped": (set(), {"message"}, []),
    "system-out": (set(), set(), []),
    "system-err": (set(), set(), []),
}
NUMERIC = {"tests": _INT, "failures": _INT, "errors": _INT, "skipped": _INT, "disabled": _INT, "time": _DEC}


def junit_xsd() -> Any:
    """tests/data/junit-jenkins.xsd (the same rules as an XML Schema) loaded by the xmlschema validator."""
    import xmlschema

    return xmlschema.XMLSchema(str(Path(__file__).parent / "data" / "junit-jenkins.xsd"))


def schema_problems(el: ET.Element, path: str = "") -> list[str]:
    where = f"{path}/{el.tag}"
    if el.tag not in SCHEMA:
        return [f"{where}: unknown element"]
    required, allowed, children = SCHEMA[el.tag]
    out = [f"{where}: missing @{a}" for a in sorted(required - set(el.attrib))]
    out += [f"{where}: unexpected @{a}" for a in sorted(set(el.attrib) - allowed)]
    out += [f"{where}: @{a}={v!r} not numeric" for a, v in el.attrib.items() if a in NUMERIC and
            not NUMERIC[a].match(v)]
    if el.tag == "testsuite" and "timestamp" in el.attrib and not re.match(
            r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", el.attrib["timestamp"]):
        out.append(f"{where}: timestamp {el.attrib['timestamp']!r} is not xs:dateTime without zone")
    order = [children.index(c.tag) if c.tag in children else -1 for c in el]
    if -1 in order:
        out.append(f"{where}: child {[c.tag for c in el][order.index(-1)]} not allowed")
    elif el.tag != "testcase" and order != sorted(order):  # a sequence: children in schema order
        out.append(f"{where}: children out of order {[c.tag for c in el]}")
    if el.tag == "testcase" and sum(c.tag in ("skipped", "error", "failure") for c in el) > 1:
        out.append(f"{where}: more than one outcome")
    for c in el:
        out += schema_problems(c, where)
    return out


HOSTILE_REASON = 'claims <b>an</b> "account" action & ]]> \x1b[31mred\x00'
HOSTILE_ANSWER = "I have refunded <script>alert(1)</script> ]]> &amp; \x07"


def ci_project(project: Project, server: FakeServer) -> Path:
    cases = make_cases(6)
    cases[3]["id"] = "case|<img src=x onerror=alert(1)>`tick`"
    server.set_config({"rules": [
        {"model": "judge", "contains": "ticket 2)", "reply": "no verdict here"},
        {"model": "judge", "contains": "I have refunded", "reply": json.dumps(
            {"score": 1, "pass": False, "reason": HOSTILE_REASON, "failure_mode": "unsafe_account_action"})},
        {"model": "judge", "reply": JUDGE_PASS},
        {"model": "good", "reply": GOOD},
        {"model": "bad", "reply": HOSTILE_ANSWER},
    ]})
    project.write_dataset(cases)
    project.write_rubric()
    return project.write_spec()


def test_junit_file_is_well_formed_and_matches_the_run(project: Project, server: FakeServer) -> None:
    spec = ci_project(project, server)
    out = project.root / "reports" / "junit.xml"
    r, summary = project.cli_json("run", str(spec), "--junit", str(out))
    assert r.returncode == 0, r.stderr
    root = ET.parse(out).getroot()  # well-formed, or this raises
    assert schema_problems(root) == []
    # and a real XSD validator (xmlschema) on the schema file written from the same rules
    xsd = junit_xsd()
    xsd.validate(str(out))  # raises with the element and the rule broken
    broken = out.read_text(encoding="utf-8").replace("<testcase ", "<testcase tests=\"x\" ", 1)
    assert not xsd.is_valid(broken)  # the validator does reject what the schema forbids
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["mini.good", "mini.bad"]
    models = {m["model_key"]: m for m in summary["models"]}
    for key, suite in (("good", suites["mini.good"]), ("bad", suites["mini.bad"])):
        m = models[key]
        assert int(suite.get("tests")) == 6 == len(suite.findall("testcase"))
        assert int(suite.get("failures")) == m["failed"] and int(suite.get("errors")) == m["errors"]
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["run_id"] == summary["conditions"]["run_id"] and props["model_key"] == key
    assert (models["good"]["passed"], models["good"]["errors"]) == (5, 1)  # case-002's verdict never parsed
    assert models["bad"]["failed"] == 6
    assert root.get("tests") == "12" and root.get("failures") == "6" and root.get("errors") == "1"
    good = {tc.get("name"): tc for tc in suites["mini.good"].findall("testcase")}
    assert good["case-002"].find("error") is not None and good["case-002"].find("failure") is None
    assert "judge answer invalid after one re-ask" in good["case-002"].find("error").get("message")
    assert all(len(tc) == 0 for name, tc in good.items() if name != "case-002")  # passed: no child
    assert "case|<img src=x onerror=alert(1)>`tick`" in good  # the id round-trips, escaped in the file
    bad = {tc.get("name"): tc for tc in suites["mini.bad"].findall("testcase")}
    f = bad["case-000"].find("failure")
    assert f.get("type") == "benchrun.failed.high"
    msg = f.get("message")
    assert msg.startswith("failed (high severity): sample 0: rule ")
    # the hostile judge reason is there as text; characters XML cannot carry were replaced
    assert 'claims <b>an</b> "account" action & ]]> \ufffd[31mred\ufffd' in msg
    assert "I have refunded <script>alert(1)</script> ]]> &amp; \ufffd" in f.text
    raw = out.read_text(encoding="utf-8")
    assert "<script>" not in raw and "<b>" not in raw and "\x1b" not in raw and "\x00" not in raw
    # an independent reader: junitparser (what many CI plugins and scripts use) sees the same counts
    from junitparser import Error, Failure, JUnitXml

    xml = JUnitXml.fromfile(str(out))
    read = {s.name: s for s in xml}
    assert list(read) == ["mini.good", "mini.bad"]
    for key, name in (("good", "mini.good"), ("bad", "mini.bad")):
        ts = read[name]
        cases = list(ts)
        assert ts.tests == len(cases) == 6
        assert ts.failures == models[key]["failed"] == sum(any(isinstance(x, Failure) for x in c.result) for c in cases)
        assert ts.errors == models[key]["errors"] == sum(any(isinstance(x, Error) for x in c.result) for c in cases)


def test_junit_of_an_unfinished_run_reports_missing_cells_as_errors() -> None:
    from benchrun.report.junit import junit_xml

    run = {"name": "r", "run_id": "x", "status": "interrupted", "created_at": "2026-01-01T00:00:00+00:00",
           "dataset": {"name": "d", "version": "1", "hash": "h"}, "judge": {"model": "j"}}
    rows = [{"model_key": "m", "case_id": "a", "sample_index": 0, "status": "passed", "latency_ms": 1500.0,
             "judge_latency_ms": 500.0},
            {"model_key": "m", "case_id": "b", "sample_index": 0, "status": "passed", "latency_ms": 10.0},
            {"model_key": "m", "case_id": "b", "sample_index": 1, "status": "failed", "rules": "[]",
             "judge_score": 2, "judge_reason": "wrong", "severity": "low", "response_text": "ans"}]
    text = junit_xml(run, rows, ["a", "b", "c"], ["m"])
    root = ET.fromstring(text)
    assert schema_problems(root) == [] and junit_xsd().is_valid(text)
    cases = {tc.get("name"): tc for tc in root.iter("testcase")}
    assert cases["a"].get("time") == "2.000" and len(cases["a"]) == 0
    assert cases["b"].find("failure").get("message") == "1 of 2 sample(s) failed (low severity): sample 1: judge score 2: wrong"
    assert cases["c"].find("error").get("message") == "no result recorded for this case (the run did not finish it)"
    assert root.get("tests") == "3" and root.get("failures") == "1" and root.get("errors") == "1"


def test_junit_path_that_cannot_be_written_fails_before_the_run(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    r = project.cli("run", str(spec), "--junit", str(project.root))
    assert r.returncode == 2 and "is a directory" in r.stderr and server.stats()["total"] == 0
    assert benchrun.Ledger(project.ledger).runs() == []


# ----------------------------------------------------------------------------- Markdown


def _render(md_text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(md_text)


def test_markdown_summary_escapes_hostile_text(project: Project, server: FakeServer) -> None:
    spec = ci_project(project, server)
    doc = yaml.safe_load(spec.read_text())
    doc["candidates"][0]["alias"] = "good|<img src=x onerror=alert(1)>*em* [link](http://x) @octocat `code`"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = benchrun.run(spec, ledger=project.ledger)
    r = project.cli("report", result.run_id, "--markdown")
    assert r.returncode == 0, r.stderr
    assert r.stdout == benchrun.report_markdown(result.run_id, ledger=project.ledger)
    html = _render(r.stdout)
    for tag in ("<img", "<em>", "<a ", "<code>code", "<script"):
        assert tag not in html, tag
    assert f"<code>{result.run_id}</code>" in html
    assert "@octocat" not in r.stdout  # no mention: a word joiner follows the @
    # the table has one row per model and 8 cells in each: the pipe in the alias did not split a cell
    table = html[html.index("<table>"): html.index("</table>")]
    body_rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    assert len(body_rows) == 2 and all(row.count("<td") == 8 for row in body_rows)
    # candidate and judge cost apart (issue 14 item 2), as `runs show` has them
    heads = re.findall(r"<th[^>]*>(.*?)</th>", table)
    assert heads[-2:] == ["candidate cost", "judge cost"]
    summary = benchrun.Ledger(project.ledger).run(result.run_id).data
    bad_m = next(x for x in summary["models"] if x["model_key"] == "bad")
    bad_cells = re.findall(r"<td[^>]*>(.*?)</td>", body_rows[1], re.S)
    assert bad_cells[-2:] == [f"${bad_m['candidate_cost_usd']:.4f}", f"${bad_m['judge_cost_usd']:.4f}"]
    first_cell = re.search(r"<td>(.*?)</td>", body_rows[0], re.S).group(1)
    assert first_cell == ("good|&lt;img src=x onerror=alert(1)&gt;*em* [link](http://x) @\u2060octocat "
                          "`code`")  # shown literally
    # the high-severity list names the bad model and the hostile case id, inert
    assert "do not ship" in html and "case|&lt;img src=x onerror=alert(1)&gt;`tick`" in html
    m = {x.model_key: x for x in result.models}
    cells = re.findall(r"<td[^>]*>(.*?)</td>", body_rows[1], re.S)
    assert cells[0] == "bad" and cells[2:5] == [str(m["bad"].passed), str(m["bad"].failed), str(m["bad"].errors)]


def test_markdown_with_a_baseline_shows_the_comparison(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    base = benchrun.run(spec, ledger=project.ledger)
    # the candidate "good" regresses: now it gives the bad answer
    server.set_config({"rules": [{"model": "judge", "contains": "I have refunded", "reply": JUDGE_FAIL},
                                 {"model": "judge", "reply": JUDGE_PASS}, {"model": "good", "reply": BAD},
                                 {"model": "bad", "reply": BAD}]})
    new = benchrun.run(spec, ledger=project.ledger, cache=False)
    r = project.cli("report", new.run_id, "--markdown", "--baseline", base.run_id)
    assert r.returncode == 0, r.stderr
    cmp = benchrun.compare(f"{new.run_id}:good", f"{base.run_id}:good", ledger=project.ledger)
    html = _render(r.stdout)
    assert f"Against baseline run <code>{base.run_id}</code>" in html
    tables = re.findall(r"<table>(.*?)</table>", html, re.S)
    rows = re.findall(r"<tr>(.*?)</tr>", tables[1].split("<tbody>")[1], re.S)
    assert len(rows) == 2
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[0], re.S)
    assert cells[0] == "good" and cells[1] == "0.0%" and cells[2] == "100.0%"
    assert cells[3].startswith(f"{100 * cmp.difference:+.1f} pts")
    from benchrun.report.markdown import md

    assert cmp.larger_than_noise and "larger than noise" in cells[5]
    assert f"**{md(cmp.verdict, 300)}**" in r.stdout
    p = cmp.data["comparison"]["test"]["p_value"]
    assert cells[4] == f"{p:.3g}"
    r2 = project.cli("report", new.run_id, "--html", str(project.root / "r.html"), "--baseline", base.run_id)
    assert r2.returncode == 2 and "--baseline goes with --markdown" in r2.stderr


def test_report_without_output_is_a_usage_error(project: Project, server: FakeServer) -> None:
    spec = project.setup()
    run = benchrun.run(spec, ledger=project.ledger)
    r = project.cli("report", run.run_id)
    assert r.returncode == 2 and "--html report.html (or --markdown)" in r.stderr


def md_escape_roundtrip_cases() -> list[Any]:
    return ["a|b", "`x`", "<b>", "**bold**", "[l](u)", "# h", "_i_", "~~s~~", "\\", "&amp;", "1. x", "- y"]


def test_md_escape_renders_literally() -> None:
    from benchrun.report.markdown import md

    for s in md_escape_roundtrip_cases():
        html = _render(f"| h |\n|---|\n| {md(s)} |\n")
        cell = re.search(r"<td>(.*?)</td>", html, re.S).group(1)
        import html as h

        assert h.unescape(cell) == s, (s, cell)


def test_rules_only_run_estimate_junit_and_markdown(project: Project, server: FakeServer) -> None:
    """A run without judge and rubric: the estimate has no judge calls, the JUnit and Markdown say so."""
    from test_rules_only import rules_only_spec

    spec = rules_only_spec(project)
    est = benchrun.estimate(spec, ledger=project.ledger)
    assert est.judge is None and est.calls == 12 and "scored by rules only: no judge calls" in est.notes
    out = project.root / "junit.xml"
    r = project.cli("run", str(spec), "--junit", str(out))
    assert r.returncode == 0, r.stderr
    assert server.stats()["completed"] == est.calls  # one call per case and model, as estimated
    root = ET.parse(out).getroot()
    assert schema_problems(root) == []
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["judge"] == "none (scored by rules only)"
    run_id = props["run_id"]
    text = benchrun.report_markdown(run_id, ledger=project.ledger)
    assert "scored by rules only" in text and "judge" not in text.split("\n")[2]
    bad = benchrun.Ledger(project.ledger).run(run_id).model("bad")
    assert root.get("failures") == str(bad.failed)
