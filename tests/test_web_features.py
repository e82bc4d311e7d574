"""`benchrun view` pages of the later features: the tool-call trajectory on the case drill-down, the holistic
row, the tool-use table and the choice-order table on the run page, and the ratings of a pairwise run.

Each run is recorded through the CLI against our test server (tests/fakeserver.py), the way
test_tool_calls.py, test_circular.py and test_pairwise_run.py record theirs; every JSON twin is compared with
what the CLI's ``--json`` prints for the same run (`runs show`, `runs show --case`, `arena`)."""

from __future__ import annotations

import html as html_lib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from conftest import Project
from fakeserver import FakeServer
from test_tool_calls import CASES as TOOL_CASES
from test_tool_calls import RULES as TOOL_RULES
from test_tool_calls import tool_spec

BASE = "http://127.0.0.1:8765"
PWN = "<script>document.documentElement.setAttribute('data-pwned','t')</script>"
# a scripted tool result carrying markup (the dataset is untrusted too), on the multi-step path
MARKUP_RESULT_CASE = {
    "id": "result-markup", "input": "[multistep] Charged twice for INV-1001, refund it please.",
    "tool_results": {"lookup_invoice": {"invoice_id": "INV-1001", "status": f"paid twice {PWN}", "amount": 42.5},
                     "issue_refund": "refund ok"},
    "expected_tool_calls": [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-1001"}},
                            {"name": "issue_refund", "arguments": {"invoice_id": "INV-1001"}}]}
PICKED = ("multistep", "markup", "forbidden", "loop")


def client(ledger: Path) -> TestClient:
    from benchrun.web.app import create_app

    return TestClient(create_app(str(ledger)), base_url=BASE)


def cli_json(project: Project, *args: str) -> Any:
    r, d = project.cli_json(*args)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    return d


def text_of(page: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded (to find what a reader sees)."""
    return html_lib.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.fixture(scope="module")
def tool_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, str]]:
    with FakeServer({"rules": TOOL_RULES, "default_reply": "OK"}) as srv:
        project = Project(tmp_path_factory.mktemp("webtools"), srv.url)
        cases = [c for c in TOOL_CASES if c["id"] in PICKED] + [MARKUP_RESULT_CASE]
        summary = cli_json(project, "run", str(tool_spec(project, cases)))
        yield project, summary["conditions"]["run_id"]


# ----------------------------------------------------------------------------- case drill-down: trajectories


def test_case_twin_has_the_trajectory_runs_show_case_prints(tool_run: tuple[Project, str]) -> None:
    project, run_id = tool_run
    c = client(project.ledger)
    for case_id in (*PICKED, MARKUP_RESULT_CASE["id"]):
        d = c.get(f"/runs/{run_id}/cases/{case_id}.json").json()
        cli = cli_json(project, "runs", "show", run_id, "--case", case_id)
        assert [r["trajectory"] for r in d["results"]] == [r["trajectory"] for r in cli["results"]]
        assert all(r["trajectory"]["steps"] for r in d["results"])
    ms = c.get(f"/runs/{run_id}/cases/multistep.json").json()["results"][0]["trajectory"]
    assert [s["role"] for s in ms["steps"]] == ["assistant", "tool", "assistant", "tool", "assistant"]


def test_case_page_shows_each_step_call_result_and_how_it_ended(tool_run: tuple[Project, str]) -> None:
    project, run_id = tool_run
    c = client(project.ledger)
    d = c.get(f"/runs/{run_id}/cases/multistep.json").json()
    page = c.get(f"/runs/{run_id}/cases/multistep").text
    seen = text_of(page)
    for r in d["results"]:
        t = r["trajectory"]
        assert f"{t['n_steps']} model turn(s) of at most {t['max_steps']}, ended {t['end']}" in seen
        assert f"failure mode {t['score']['failure_mode']}" in seen
    assert page.count('class="trajectory"') == len(d["results"]) == 2
    steps = d["results"][0]["trajectory"]["steps"]
    assert steps[0]["content"] in seen  # the assistant's text of turn 1 ("Let me check.")
    for st in steps:
        if st["role"] == "assistant":
            for tc in st["tool_calls"]:
                assert tc["arguments"] in seen and f"call #{tc['index']}" in seen
        else:
            assert st["content"] in seen and f"tool result for call #{st['call_index']} ({st['name']})" in seen
    # a failure: the forbidden refund is named as such, with the score's failure mode
    fb = c.get(f"/runs/{run_id}/cases/forbidden").text
    assert "FORBIDDEN" in fb and "failure mode forbidden_tool_call" in text_of(fb)
    loop = c.get(f"/runs/{run_id}/cases/loop.json").json()["results"][0]["trajectory"]
    assert loop["end"] == "loop" and "ended loop" in text_of(c.get(f"/runs/{run_id}/cases/loop").text)


def test_model_and_dataset_markup_in_a_trajectory_renders_as_text(tool_run: tuple[Project, str]) -> None:
    project, run_id = tool_run
    c = client(project.ledger)
    page = c.get(f"/runs/{run_id}/cases/markup").text
    assert len(re.findall(r"<script[ >]", page)) == 1  # only the page's own /static/app.js
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page  # the assistant's text in the trajectory
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the tool arguments the model wrote
    assert "arguments do not match the tool" in page  # the scorer's reason, shown beside the call
    res = c.get(f"/runs/{run_id}/cases/result-markup").text
    assert len(re.findall(r"<script[ >]", res)) == 1 and "data-pwned" in res
    assert "&lt;script&gt;document.documentElement" in res  # the scripted tool result, as text


# ----------------------------------------------------------------------------- run page: holistic and tools


def test_run_twin_and_page_show_holistic_row_and_tool_table(tool_run: tuple[Project, str]) -> None:
    from benchrun.report.holistic import holistic_rows
    from benchrun.report.terminal import TOOL_COLUMNS

    project, run_id = tool_run
    c = client(project.ledger)
    d = c.get(f"/runs/{run_id}.json").json()
    cli = cli_json(project, "runs", "show", run_id)
    assert d["summary"]["holistic"] == cli["holistic"] and d["summary"]["tools"] == cli["tools"]
    assert d["summary"]["tools"] is not None and d["arena"] is None and d["summary"]["circular"] is None
    page = c.get(f"/runs/{run_id}").text
    assert 'id="holistic-table"' in page and 'id="tools-table"' in page and 'id="arena"' not in page
    seen = text_of(page)
    keys, rows = holistic_rows(cli["holistic"])
    assert rows and keys == ["fast", "lite"]
    for row in rows:  # every cell of the table `runs show` prints
        assert row[0] in seen and all(cell in seen for cell in row[1:])
    for key, m in cli["tools"]["models"].items():
        for k, _ in TOOL_COLUMNS:
            v = m[k]
            if v["estimate"] is not None:
                assert f"{100 * v['estimate']:.1f}% [{100 * v['low']:.1f}%, {100 * v['high']:.1f}%]" in seen, (key, k)
        assert f'data-model="{key}"' in page
    assert "forbidden_tool_call" in seen  # the failure modes column


# ----------------------------------------------------------------------------- run page: choice order


def test_run_page_shows_the_choice_order_table(tmp_path: Path) -> None:
    from test_circular import K, _project, _rules

    with FakeServer({"rules": _rules()}) as srv:
        project, spec = _project(tmp_path, srv, shuffle_choices=K)
        run_id = cli_json(project, "run", str(spec))["conditions"]["run_id"]
    c = client(project.ledger)
    d = c.get(f"/runs/{run_id}.json").json()
    cli = cli_json(project, "runs", "show", run_id)
    circ = d["summary"]["circular"]
    assert circ == cli["circular"] and circ["orders"] == K
    page = c.get(f"/runs/{run_id}").text
    assert f"Choice order: each case asked under {K} orders" in page
    seen = text_of(page)
    for key, m in circ["models"].items():
        for part in ("original", "circular", "order_sensitive"):
            iv = m[part]
            assert f"{100 * iv['estimate']:.1f}% [{100 * iv['low']:.1f}%, {100 * iv['high']:.1f}%]" in seen, (key, part)
    first = circ["models"]["first"]  # always "A": right only where the answer was shown first
    assert first["circular"]["estimate"] == 0 and first["order_sensitive"]["estimate"] > 0


# ----------------------------------------------------------------------------- run page: pairwise ratings


@pytest.fixture(scope="module")
def pairwise_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, str]]:
    """A pairwise run of alpha, beta, gamma on 8 cases, a judge that prefers beta's answer (test_pairwise_run)."""
    from test_pairwise_run import A_SECTION, B_SECTION, PREFER_BETA, fixed_answers, verdict, write_project

    cfg = {"rules": [
        {"model": "^judge-pref$", "regex": A_SECTION.replace("([\\s\\S]*?)", PREFER_BETA), "reply": verdict("A")},
        {"model": "^judge-pref$", "regex": B_SECTION.replace("([\\s\\S]*?)", PREFER_BETA), "reply": verdict("B")},
        {"model": "^judge-pref$", "reply": verdict("tie")}, *fixed_answers()]}
    with FakeServer(cfg) as srv:
        project = Project(tmp_path_factory.mktemp("webpairs"), srv.url)
        run_id = cli_json(project, "run", str(write_project(project, 8, "judge-pref")))["conditions"]["run_id"]
        yield project, run_id


def test_pairwise_run_page_shows_the_arena_of_benchrun_arena(pairwise_run: tuple[Project, str]) -> None:
    project, run_id = pairwise_run
    arena = cli_json(project, "arena", run_id)
    c = client(project.ledger)
    d = c.get(f"/runs/{run_id}.json").json()
    assert d["arena"] == arena and arena["models"][0]["model"] == "beta"
    page = c.get(f"/runs/{run_id}").text
    seen = text_of(page)
    assert 'id="arena-table"' in page and 'id="arena-matrix"' in page
    for m in arena["models"]:
        lo, hi = m["rank_interval"]
        rank = str(lo) if lo == hi else f"{lo}-{hi}"
        iv = m["interval"]
        row = re.search(rf'<tr class="arena-row" data-model="{m["model"]}">(.*?)</tr>', page)
        assert row, m["model"]
        cells = [text_of(x).strip() for x in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))]
        assert cells[:5] == [str(m["rank"]), m["model"], f"{m['rating']:.0f}",
                             f"[{iv['low']:.0f}, {iv['high']:.0f}]", rank]
        assert cells[6] == f"{m['wins']}/{m['losses']}/{m['ties']}"
    for cell in arena["matrix"]:
        w = f"{100 * cell['win_rate']:.1f}% [{100 * cell['interval']['low']:.1f}%, {100 * cell['interval']['high']:.1f}%]"
        assert w in seen, cell
    (j,) = arena["judges"]
    lo, hi = j["consistency_interval"]
    assert (f"judge {j['judge']}: position consistency {100 * j['consistency']:.1f}% "
            f"[{100 * lo:.1f}%, {100 * hi:.1f}%] over {j['pairs']} pairs") in seen
    assert "no human votes" in seen


# ----------------------------------------------------------------------------- in chromium


def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: ``$BENCHRUN_ARTEFACTS/web`` (CI artefacts), else the test's directory."""
    d = Path(os.environ["BENCHRUN_ARTEFACTS"]) / "web" if os.environ.get("BENCHRUN_ARTEFACTS") else tmp_path
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_trajectory_and_tool_tables_in_chromium(tool_run: tuple[Project, str], tmp_path: Path) -> None:
    from test_web_browser import _why

    if _why is not None:
        pytest.skip(_why)
    from selenium.webdriver.common.by import By

    from test_web_browser import _pwned, chromium, serve

    project, run_id = tool_run
    shots = screenshots(tmp_path)
    with chromium(tmp_path / "profile") as browser, serve(project.ledger) as base:
        browser.get(base + f"/runs/{run_id}")
        assert len(browser.find_elements(By.CSS_SELECTOR, "tr.tools-row")) == 2
        assert "accuracy (pass rate)" in browser.find_element(By.ID, "holistic-table").text
        browser.find_element(By.LINK_TEXT, "markup").click()
        traj = browser.find_elements(By.CSS_SELECTOR, "section.trajectory")
        assert [t.get_attribute("data-model") for t in traj] == ["fast", "lite"]
        args = traj[0].find_element(By.CSS_SELECTOR, "pre.tool-args").text
        assert json.loads(args) == {"invoice_id": "<script>alert(1)</script>"}  # the model's arguments, as text
        assert traj[0].find_element(By.CSS_SELECTOR, "pre.step-text").text == "<img src=x onerror=alert(2)>"
        assert browser.find_elements(By.CSS_SELECTOR, "section.trajectory img") == []
        browser.save_screenshot(str(shots / "case-trajectory.png"))
        browser.get(base + f"/runs/{run_id}/cases/result-markup")
        results = browser.find_elements(By.CSS_SELECTOR, "section.trajectory pre.tool-result")
        assert results and PWN in results[0].text
        assert _pwned(browser) is None  # nothing the model or the dataset wrote ran



# ----------------------------------------------------------------------------- pairwise voting in the browser


def test_pairwise_votes_in_the_browser_are_labels_import_records(pairwise_run: tuple[Project, str],
                                                                  tmp_path: Path) -> None:
    import csv
    import sqlite3

    from benchrun.ledger import Ledger
    from benchrun.pairwise_labels import latest_votes
    from test_pairwise_run import fill_votes

    project, run_id = pairwise_run
    led = tmp_path / "ledger.sqlite"  # a private copy: the votes below stay out of the other tests
    src, dst = sqlite3.connect(project.ledger), sqlite3.connect(led)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    c = client(led)
    exported = tmp_path / "pairs.csv"
    r, _ = project.cli_json("labels", "export", run_id, "--pairwise", "--sample", "6", "--out", str(exported),
                            "--ledger", str(led))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader([x for x in exported.read_text().splitlines() if not x.startswith("#")]))

    def pick(a: str, b: str) -> str:
        return "A" if "BETA" in a else "B" if "BETA" in b else "tie"

    page = c.get(f"/runs/{run_id}/label", params={"annotator": "ann", "n": 6})
    assert page.status_code == 200 and 'id="pair"' in page.text
    blanked = re.sub(r'<pre class="text" id="response-[ab]">.*?</pre>', "", page.text, flags=re.S)
    assert not any(m in blanked for m in ("alpha", "beta", "gamma"))  # blind: no model name outside the answers
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text).group(1)  # type: ignore[union-attr]
    headers = {"X-CSRF-Token": csrf}
    for i, row in enumerate(rows[:5]):  # the queue walks the exported sample, in its order, A and B as shown there
        q = c.get(f"/runs/{run_id}/label.json", params={"annotator": "ann", "n": 6}).json()
        item = q["item"]
        assert (item["item_id"], item["response_a"], item["response_b"]) == \
            (row["item_id"], row["response_a"], row["response_b"])
        assert q["progress"]["done"] == i and q["position"] == i + 1
        winner = pick(item["response_a"], item["response_b"])
        out = c.post(f"/runs/{run_id}/label", json={"item_id": item["item_id"], "annotator": "ann",
                                                    "winner": winner.lower()}, headers=headers)
        assert out.status_code == 200, out.text
        shown = out.json()["reveal"]
        assert winner == "tie" or shown[winner] == "beta"
    assert c.post(f"/runs/{run_id}/label", json={"item_id": rows[0]["item_id"], "annotator": "ann",
                                                 "winner": "A"}, headers=headers).status_code == 200  # a change of mind
    for bad in ({"winner": "C"}, {"item_id": "nope"}, {"annotator": ""}, {"annotator": "x\x1by"}):
        body = {"item_id": rows[0]["item_id"], "annotator": "ann", "winner": "A", **bad}
        assert c.post(f"/runs/{run_id}/label", json=body, headers=headers).status_code == 400, bad
    assert c.post(f"/runs/{run_id}/label", json={"item_id": rows[0]["item_id"], "annotator": "ann", "winner": "A"}
                  ).status_code == 403  # no CSRF token
    store = Ledger(str(led))
    browser_votes = latest_votes(store, store.get_run(run_id))
    assert len(browser_votes) == 5
    # the same votes through a filled-in file and `labels import` are the same records
    fill_votes(exported, "ann", pick)
    with exported.open() as fh:  # the first pair as changed in the browser (A), the sixth left blank
        table = list(csv.DictReader(x for x in fh if not x.startswith("#")))
    table[0]["human_winner"] = "A"
    table[5]["human_winner"] = table[5]["annotator"] = ""
    with exported.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]), quoting=csv.QUOTE_ALL)
        w.writeheader()
        w.writerows(table)
    r, _ = project.cli_json("labels", "import", str(exported), "--run", run_id, "--ledger", str(led))
    assert r.returncode == 0, r.stderr + r.stdout
    imported = latest_votes(store, store.get_run(run_id))
    key = lambda v: (v["item_id"], v["annotator"])  # noqa: E731
    assert sorted(imported, key=key) == sorted(browser_votes, key=key)
    arena = cli_json(project, "arena", run_id, "--ledger", str(led))
    assert arena["human_agreement"]["votes"] == 5
    page = c.get(f"/runs/{run_id}/label", params={"annotator": "ann", "n": 6}).text
    assert "judge vs people so far on 5 vote(s)" in page and "1 left for you" in page


def test_vote_on_three_pairs_with_the_keyboard_in_chromium(pairwise_run: tuple[Project, str], tmp_path: Path) -> None:
    from test_web_browser import _why

    if _why is not None:
        pytest.skip(_why)
    import sqlite3

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from benchrun.ledger import Ledger
    from benchrun.pairwise_labels import judged_items, latest_votes, vote_record
    from test_web_browser import chromium, serve

    project, run_id = pairwise_run
    led = tmp_path / "ledger.sqlite"
    src, dst = sqlite3.connect(project.ledger), sqlite3.connect(led)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    typed = []
    shots = screenshots(tmp_path)
    with chromium(tmp_path / "profile") as browser, serve(led) as base:
        browser.get(base + f"/runs/{run_id}")
        browser.execute_script("document.getElementById('arena').scrollIntoView()")
        browser.save_screenshot(str(shots / "run-pairwise.png"))
        browser.find_element(By.ID, "label-link").click()
        browser.find_element(By.ID, "annotator").send_keys("kbd", Keys.ENTER)
        for key, shown in (("a", "A"), ("b", "B"), ("t", "tie")):
            WebDriverWait(browser, 30).until(lambda d: d.execute_script(  # a pair page ready, not the annotator form
                "return document.documentElement.getAttribute('data-ready') && document.getElementById('pair') !== null"))
            pair = browser.find_element(By.ID, "pair")
            item_id = pair.get_attribute("data-item")
            assert not browser.find_element(By.ID, "reveal").is_displayed()  # blind until voted
            ActionChains(browser).send_keys(key).perform()
            WebDriverWait(browser, 30).until(lambda d, iid=item_id: d.execute_script(
                "return document.documentElement.getAttribute('data-saved')") == iid)
            assert browser.find_element(By.ID, "reveal-a").text in ("alpha", "beta", "gamma")
            typed.append((item_id, shown))
            if len(typed) == 1:
                browser.save_screenshot(str(shots / "label-pairwise.png"))
            ActionChains(browser).send_keys(Keys.ENTER).perform()
            WebDriverWait(browser, 30).until(lambda d, iid=item_id: d.execute_script(
                "var e = document.getElementById('pair'); return e === null || e.dataset.item !== arguments[0]", iid))
        assert "3 of" in browser.find_element(By.ID, "progress").text
    store = Ledger(str(led))
    run = store.get_run(run_id)
    items = judged_items(store, run)
    assert latest_votes(store, run) == [vote_record(run.id, i, items[i], shown, "kbd") for i, shown in typed]
