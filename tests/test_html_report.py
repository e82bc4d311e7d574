"""`benchrun report --html`: one self-contained file, rendered in headless Chromium (Debian's chromium package)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import GOOD, Project, fake_config, make_cases
from fakeserver import FakeServer

EVIL_INPUT = 'Is <script>alert("pwned")</script> & <b>this</b> refunded? (ticket 99)'
EVIL_ANSWER = '<img src="http://example.com/x.png"> <script>alert("answer")</script> ' + GOOD


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    p = Tags()
    p.feed(html)
    return p.tags


@pytest.fixture
def report_run(project: Project, server: FakeServer) -> tuple[Project, str]:
    cfg = fake_config()
    cfg["rules"].insert(2, {"model": "good", "contains": "ticket 99", "reply": EVIL_ANSWER})
    server.set_config(cfg)
    cases = make_cases(6)
    cases.append({**cases[0], "id": "case-evil", "input": EVIL_INPUT})
    project.write_dataset(cases)
    project.write_rubric()
    spec = project.write_spec()
    r, summary = project.cli_json("run", str(spec))
    assert r.returncode == 0, r.stderr
    return project, summary["conditions"]["run_id"]


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium")
    assert exe is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chromium-profile'}"]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=180, check=False)


def test_report_is_self_contained_and_escaped(report_run: tuple[Project, str], tmp_path: Path) -> None:
    project, run_id = report_run
    out = tmp_path / "out" / "report.html"
    r = project.cli("report", run_id, "--html", str(out), "--compare", "good,bad", "--shortlist")
    assert r.returncode == 0, r.stderr
    html = out.read_text(encoding="utf-8")
    found = tags(html)
    # nothing is fetched: no external resources, links only within the page
    assert not [t for t, a in found if t in ("link", "img", "iframe", "object", "embed")]
    assert all(a.get("src") is None for t, a in found if t == "script")
    assert all((a.get("href") or "#").startswith("#") for t, a in found if t == "a")
    # our two scripts and nothing the ledger smuggled in
    assert [t for t, _ in found].count("script") == 2
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=&#34;http://example.com/x.png&#34;&gt;" in html
    assert '<script>alert("' not in html
    ids = {a.get("id") for _, a in found}
    for needed in ("conditions-table", "models-table", "breakdown-table", "chart-quality-cost", "chart-severity",
                   "compare-table", "compare-groups", "flips-table", "shortlist-table", "case-case-evil", "case-case-000"):
        assert needed in ids, needed
    # the scatter has one point per model, each with its interval
    points = [a for t, a in found if t == "circle" and a.get("class") == "point"]
    assert sorted(a["data-key"] or "" for a in points) == ["bad", "good"]
    assert sum(1 for t, a in found if t == "line" and a.get("class") == "ci") == 2
    # without --compare/--shortlist those sections are left out
    plain = tmp_path / "plain.html"
    assert project.cli("report", run_id, "--html", str(plain)).returncode == 0
    plain_ids = {a.get("id") for _, a in tags(plain.read_text())}
    assert "compare-table" not in plain_ids and "shortlist-table" not in plain_ids and "models-table" in plain_ids


def test_report_usage_errors(report_run: tuple[Project, str], tmp_path: Path) -> None:
    project, run_id = report_run
    r = project.cli("report", run_id, "--html", str(tmp_path / "x.html"), "--compare", "good")
    assert r.returncode == 2 and "--compare needs two model keys" in r.stderr
    r = project.cli("report", run_id, "--html", str(tmp_path / "x.html"), "--compare", "good,nope")
    assert r.returncode == 2 and "has no model 'nope'" in r.stderr
    r = project.cli("report", run_id)
    assert r.returncode == 2 and "--html" in r.stderr


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install -y chromium); cannot render the report")
def test_report_renders_in_headless_chromium(report_run: tuple[Project, str], tmp_path: Path) -> None:
    project, run_id = report_run
    out = tmp_path / "report.html"
    r = project.cli("report", run_id, "--html", str(out), "--compare", "good,bad", "--shortlist")
    assert r.returncode == 0, r.stderr
    dom = _chromium(["--dump-dom", out.resolve().as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    d = dom.stdout
    # the inline script ran to its end and built the legend and the case counter
    assert 'data-rendered="yes"' in d
    legend: list[Any] = re.findall(r'<span class="legend-item">.*?</span>', d)
    assert len(legend) == 2 and any("good: " in x for x in legend)
    assert re.search(r'id="case-count"[^>]*>7 of 7 cases shown<', d)
    # charts and tables are in the rendered DOM
    assert d.count('<circle class="point"') == 2 and 'id="chart-severity"' in d
    assert len(re.findall(r'<rect class="bar" data-severity="high"', d)) == 1  # only bad fails high-severity cases
    for table in ("conditions-table", "models-table", "compare-table", "flips-table", "shortlist-table"):
        assert f'id="{table}"' in d
    # the injected markup stayed text: the DOM still holds exactly our two script elements
    assert len(re.findall(r"<script[ >]", d)) == 2
    assert "&lt;script&gt;alert(\"pwned\")&lt;/script&gt;" in d
    shot = tmp_path / "report.png"
    s = _chromium(["--window-size=1280,2000", "--hide-scrollbars", f"--screenshot={shot}", out.resolve().as_uri()],
                  tmp_path)
    assert s.returncode == 0, s.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_report_of_a_run_that_never_recorded_model_versions(report_run: tuple[Project, str], tmp_path: Path) -> None:
    """A run that stopped before its end (killed, interrupted) has no resolved model versions in its models
    row; its HTML report still renders (it failed with UndefinedError 'resolved_models')."""
    import json
    import sqlite3

    project, run_id = report_run
    con = sqlite3.connect(project.ledger)
    models = [{k: v for k, v in m.items() if k != "resolved_models"}
              for m in json.loads(con.execute("SELECT models FROM run WHERE id = ?", (run_id,)).fetchone()[0])]
    con.execute("UPDATE run SET models = ?, status = 'interrupted' WHERE id = ?", (json.dumps(models), run_id))
    con.commit()
    con.close()
    out = tmp_path / "r.html"
    r = project.cli("report", run_id, "--html", str(out))
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "served as" not in html and "interrupted" in html and "model good" in html
