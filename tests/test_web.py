"""`benchrun view` through Starlette's test client: every JSON route, the token, CSRF, 404s, escaping,
the labelling queue (the `labels export` sample, blind; answers recorded as `labels import` records)."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from fakeserver import FakeServer
from reliability import relsupport
from webkit import EVIL, HUGE, HUGE_CASE, N_CASES, WebRun, config

BASE = "http://127.0.0.1:8765"
pg_server, pg_url = relsupport.pg_server, relsupport.pg_url  # fixtures


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRun]:
    with FakeServer(config()) as srv:
        yield WebRun(tmp_path_factory.mktemp("web"), srv)


@pytest.fixture
def web(recorded: WebRun, tmp_path: Path) -> WebRun:
    """A private copy of the recorded ledger, so writes in one test do not reach another."""
    led = tmp_path / "ledger.sqlite"
    src, dst = sqlite3.connect(recorded.ledger), sqlite3.connect(led)
    with dst:
        src.backup(dst)  # the WAL's pages too (a file copy would miss them)
    src.close()
    dst.close()
    copy = WebRun.__new__(WebRun)
    copy.project, copy.run_id, copy.ledger = recorded.project, recorded.run_id, led
    return copy


def client(web: WebRun, **kw: Any) -> TestClient:
    from benchrun.web.app import create_app

    return TestClient(create_app(str(web.ledger), **kw), base_url=BASE)


def csrf_of(c: TestClient, path: str) -> str:
    import re

    m = re.search(r'<meta name="csrf-token" content="([^"]+)">', c.get(path).text)
    assert m, "page carries no CSRF token"
    return m.group(1)


# ----------------------------------------------------------------------------- read routes


def test_runs_list_and_filters(web: WebRun) -> None:
    c = client(web)
    for path in ("/.json", "/runs.json"):
        d = c.get(path).json()
        assert [r["id"] for r in d["runs"]] == [web.run_id]
        assert d["runs"][0]["models"] == ["good", "bad", "evil"]
    assert c.get("/.json", params={"model": "evil"}).json()["runs"][0]["id"] == web.run_id
    assert c.get("/.json", params={"model": "nobody"}).json()["runs"] == []
    assert c.get("/.json", params={"dataset": "mini", "status": "completed"}).json()["runs"]
    assert c.get("/.json", params={"status": "failed"}).json()["runs"] == []
    assert c.get("/.json", params={"q": web.run_id[:6].upper()}).json()["runs"]
    assert c.get("/.json", params={"q": "zzz-no-such"}).json()["runs"] == []
    day = d["runs"][0]["created_at"][:10]
    assert c.get("/.json", params={"since": day, "until": day}).json()["runs"]
    assert c.get("/.json", params={"since": "2999-01-01"}).json()["runs"] == []
    assert c.get("/.json", params={"until": "2000-01-01"}).json()["runs"] == []
    assert c.get("/.json", params={"since": "yesterday"}).status_code == 400
    page = c.get("/")
    assert page.status_code == 200 and f'href="/runs/{web.run_id}"' in page.text


def test_run_page_is_runs_show(web: WebRun) -> None:
    from benchrun import api

    c = client(web)
    d = c.get(f"/runs/{web.run_id}.json").json()
    with api.Ledger(web.ledger) as led:
        assert d["summary"] == json.loads(json.dumps(led.run(web.run_id).data))
    bad = next(b for b in d["summary"]["breakdown"] if b["model_key"] == "bad")
    assert bad["do_not_ship"] and bad["high_severity_failures"]
    assert len(d["cases"]) == N_CASES
    html = c.get(f"/runs/{web.run_id[:8]}").text  # a unique prefix works as in the CLI
    assert "DO NOT SHIP" in html and "judge calibration: " in html and "coverage: no coverage report" in html
    good = next(m for m in d["summary"]["models"] if m["model_key"] == "good")
    pr = good["pass_rate"]
    assert f"{100 * pr['estimate']:.1f}% [{100 * pr['low']:.1f}%, {100 * pr['high']:.1f}%]" in html


def test_case_page_has_every_answer_side_by_side(web: WebRun) -> None:
    c = client(web)
    d = c.get(f"/runs/{web.run_id}/cases/case-001.json").json()
    assert [r["model_key"] for r in d["results"]] == ["bad", "evil", "good"]
    for r in d["results"]:
        assert r["messages"][0]["role"] == "system" and "ticket 1" in r["messages"][-1]["content"]
        assert r["latency_ms"] is not None and r["cost_usd"] is not None and r["judge"]["reason"]
    bad = next(r for r in d["results"] if r["model_key"] == "bad")
    assert not bad["passed"] and any(not o["passed"] for o in bad["rules"])
    html = c.get(f"/runs/{web.run_id}/cases/case-001").text
    assert html.count('class="answer"') == 3 and "claims an account action" in html


def test_compare_is_benchrun_compare(web: WebRun) -> None:
    from benchrun import api

    c = client(web)
    d = c.get("/compare.json", params={"a": "bad", "b": "good", "run": web.run_id}).json()
    with api.Ledger(web.ledger) as led:
        assert d["compare"] == json.loads(json.dumps(api.compare("bad", "good", run=web.run_id, ledger=led).data))
    flips = d["compare"]["flips"]
    assert flips and [f["severity"] for f in flips] == sorted((f["severity"] for f in flips),
                                                              key=["high", "medium", "low"].index)
    assert d["regressions"] == len(flips)  # bad fails every case good passes
    rev = c.get("/compare.json", params={"a": f"{web.run_id}:good", "b": f"{web.run_id}:bad",
                                         "regressions": "1"}).json()
    assert rev["compare"]["flips"] and rev["shown_flips"] == [] and rev["regressions"] == 0
    html = c.get("/compare", params={"a": "bad", "b": "good", "run": web.run_id, "regressions": "1"}).text
    assert html.count('class="flip ') == len(flips) and "larger than noise" in html.lower()
    assert f'href="/compare.json?a=bad&amp;b=good&amp;run={web.run_id}&amp;regressions=1"' in html  # its JSON twin


def test_unknown_ids_are_404(web: WebRun) -> None:
    c = client(web)
    for path in ("/runs/nosuchrun", "/runs/nosuchrun.json", f"/runs/{web.run_id}/cases/no-such-case",
                 f"/runs/{web.run_id}/cases/no-such-case.json", "/runs/nosuchrun/cases/case-001",
                 "/runs/nosuchrun/label", "/runs/nosuchrun/label.json", "/calibrations/999999",
                 "/calibrations/999999.json", "/compare.json?a=nosuchrun:good&b=nosuchrun:bad",
                 "/compare?a=good&b=bad&run=nosuchrun"):
        r = c.get(path)
        assert r.status_code == 404, path
    assert "no run 'nosuchrun'" in c.get("/runs/nosuchrun.json").json()["error"]
    assert c.get("/compare.json?a=good").status_code == 400


# ----------------------------------------------------------------------------- escaping


def test_model_written_markup_renders_as_text(web: WebRun) -> None:
    c = client(web)
    html = c.get(f"/runs/{web.run_id}/cases/case-001").text
    assert "<script>document" not in html and "</script></script>" not in html
    assert "&lt;script&gt;document.documentElement.setAttribute(&#39;data-pwned&#39;,&#39;1&#39;)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html and "<img src=x" not in html
    assert "\x1b" not in html and "\\x1b[31mred\\x1b[0m" in html  # ANSI escapes shown, not sent to the browser
    assert html.count("<script") == 1  # ours: <script src="/static/app.js">
    r = c.get(f"/runs/{web.run_id}/cases/case-001.json").json()
    assert next(x for x in r["results"] if x["model_key"] == "evil")["answer"] == EVIL  # JSON keeps the exact text
    huge = c.get(f"/runs/{web.run_id}/cases/{HUGE_CASE}").text
    assert HUGE in huge
    csp = c.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


# ----------------------------------------------------------------------------- safety


def test_host_header_must_be_loopback_without_token(web: WebRun) -> None:
    from benchrun.web.app import create_app

    app = create_app(str(web.ledger))
    assert TestClient(app, base_url="http://localhost:8765").get("/.json").status_code == 200
    assert TestClient(app, base_url="http://rebind.example:8765").get("/.json").status_code == 400


def test_token_checked_on_every_request(web: WebRun) -> None:
    token = "t0ken-" + "x" * 20
    c = client(web, token=token, allowed_hosts=None)
    for path in ("/", "/.json", f"/runs/{web.run_id}.json", f"/runs/{web.run_id}/cases/case-001.json",
                 "/compare.json?a=good&b=bad&run=" + web.run_id, f"/runs/{web.run_id}/label.json",
                 "/calibrations.json", "/static/app.js", "/runs/nosuchrun"):
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers={"Authorization": "Bearer wrong-token-xxxxxxxxxx"}).status_code == 401
        assert c.get(path, headers={"Authorization": f"Bearer {token}"}).status_code in (200, 404), path
    assert c.post(f"/runs/{web.run_id}/label", json={}).status_code == 401
    first = c.get(f"/runs/{web.run_id}?token={token}&x=1", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == f"/runs/{web.run_id}?x=1"
    assert "httponly" in first.headers["set-cookie"].lower() and "samesite=strict" in first.headers["set-cookie"].lower()
    assert c.get(f"/runs/{web.run_id}.json").status_code == 200  # the cookie now carries it
    c.cookies.clear()
    assert c.get(f"/runs/{web.run_id}.json").status_code == 401


def _item(c: TestClient, web: WebRun, annotator: str = "ann") -> dict[str, Any]:
    return c.get(f"/runs/{web.run_id}/label.json", params={"annotator": annotator}).json()["item"]


def _answer(item: dict[str, Any], annotator: str = "ann", **kw: Any) -> dict[str, Any]:
    return {"item_id": item["item_id"], "annotator": annotator, "human_score": 4, "human_pass": True,
            "failure_mode": "none", "note": None, **kw}


def test_writes_need_the_csrf_token(web: WebRun) -> None:
    from benchrun import judge_trust as jt
    from benchrun.ledger import Ledger

    c = client(web)
    url = f"/runs/{web.run_id}/label"
    item = _item(c, web)
    body = _answer(item)
    assert c.post(url, json=body).status_code == 403
    assert c.post(url, json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    token = csrf_of(c, url)
    assert c.post(url, json=body, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"}).status_code == 403
    assert c.post(url, content=json.dumps(body), headers={"X-CSRF-Token": token,
                                                          "Content-Type": "text/plain"}).status_code == 415
    led = Ledger(str(web.ledger))
    assert jt.stored_labels(led, jt.open_run(led, web.run_id)) == []
    ok = c.post(url, json=body, headers={"X-CSRF-Token": token, "Origin": BASE})
    assert ok.status_code == 200, ok.text
    labels = jt.stored_labels(led, jt.open_run(led, web.run_id))
    assert [(lab.item_id, lab.annotator, lab.human_score, lab.human_pass) for lab in labels] == \
        [(item["item_id"], "ann", 4, True)]


def test_read_only_refuses_writes(web: WebRun) -> None:
    c = client(web, read_only=True)
    url = f"/runs/{web.run_id}/label"
    token = csrf_of(c, url)
    body = _answer(_item(c, web))
    r = c.post(url, json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 403 and "read-only" in r.json()["error"]
    assert c.post(f"/runs/{web.run_id}/calibrate", json={}, headers={"X-CSRF-Token": token}).status_code == 403
    assert c.get(f"/runs/{web.run_id}.json").status_code == 200


def test_cli_refuses_open_host_without_token(web: WebRun) -> None:
    r = web.project.cli("view", "--host", "0.0.0.0", "--ledger", str(web.ledger), env={"BENCHRUN_VIEW_TOKEN": ""})
    assert r.returncode == 2 and "--token" in r.stderr and "Traceback" not in r.stderr
    r = web.project.cli("view", "--host", "0.0.0.0", "--token", "short", "--ledger", str(web.ledger))
    assert r.returncode == 2 and "at least 16" in r.stderr


# ----------------------------------------------------------------------------- labelling


def test_queue_is_the_labels_export_sample_and_blind(web: WebRun, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    r = web.project.cli("labels", "export", web.run_id, "--sample", "10", "--seed", "3", "--out", str(out),
                        "--ledger", str(web.ledger))
    assert r.returncode == 0, r.stderr
    from benchrun.io import load_csv

    exported = [row["item_id"] for _, row in load_csv(out, restore_formulas=True)[1]]
    c = client(web)
    url = f"/runs/{web.run_id}/label"
    token = csrf_of(c, url)
    seen = []
    for _ in range(len(exported)):
        q = c.get(url + ".json", params={"annotator": "ann", "n": 10, "seed": 3}).json()
        item = q["item"]
        assert set(item) == {"item_id", "case_id", "input", "ideal", "response"}  # no model, no verdict
        page = c.get(url, params={"annotator": "ann", "n": 10, "seed": 3}).text
        # the item, before the form (whose scale says "4 good"); ids are hex and may hold "bad" by chance
        shown = page.split('id="label-form"')[0].replace(item["item_id"], "").replace(web.run_id, "")
        for k in ("good", "bad", "evil", "claims an account action", "follows policy"):
            assert k not in shown, k
        seen.append(item["item_id"])
        resp = c.post(url, json=_answer(item, human_pass=False, human_score=2), headers={"X-CSRF-Token": token})
        assert resp.status_code == 200
        assert resp.json()["reveal"]["model_key"] in ("good", "bad", "evil")  # shown once answered
    assert seen == exported
    done = c.get(url + ".json", params={"annotator": "ann", "n": 10, "seed": 3}).json()
    assert done["item"] is None and done["progress"]["done"] == done["progress"]["total"] == 10
    other = c.get(url + ".json", params={"annotator": "second", "n": 10, "seed": 3}).json()
    assert other["item"]["item_id"] == exported[0]  # each annotator gets the whole queue


def test_bad_answers_are_refused_with_a_reason(web: WebRun) -> None:
    c = client(web)
    url = f"/runs/{web.run_id}/label"
    token = csrf_of(c, url)
    item = _item(c, web)
    h = {"X-CSRF-Token": token}
    for body, words in ((_answer(item, human_score=7), "human_score must be an integer 1-5"),
                        (_answer(item, failure_mode="made_up"), "not in the rubric"),
                        (_answer(item, annotator=" "), "give your name"),
                        (_answer(item, item_id="item-000000000000"), "unknown item id"),
                        (_answer(item, human_pass="maybe"), "human_pass must be")):
        r = c.post(url, json=body, headers=h)
        assert r.status_code == 400 and words in r.json()["error"], (body, r.text)
    assert c.get(url + ".json", params={"annotator": "ann"}).json()["progress"]["labels_recorded"] == 0


def test_browser_labels_are_labels_import_records_and_calibrate_like_the_cli(web: WebRun, tmp_path: Path) -> None:
    from benchrun import judge_trust as jt
    from benchrun.ledger import Ledger

    c = client(web)
    url = f"/runs/{web.run_id}/label"
    token = csrf_of(c, url)
    h = {"X-CSRF-Token": token}
    led = Ledger(str(web.ledger))
    ctx = jt.open_run(led, web.run_id)
    answered = ctx.answered()
    rows = []
    for _ in range(24):
        item = _item(c, web)
        r = answered[item["item_id"]]
        # a human who agrees with the judge except on the evil model's answers
        human_pass = ctx.rule_pass(r) if r.model_key != "evil" else False
        body = _answer(item, human_pass=human_pass, human_score=5 if human_pass else 2,
                       failure_mode="none" if human_pass else "wrong_policy")
        assert c.post(url, json=body, headers=h).status_code == 200
        rows.append({"item_id": item["item_id"], "case_id": r.case_id, "human_score": body["human_score"],
                     "human_pass": "yes" if human_pass else "no", "failure_mode": body["failure_mode"],
                     "annotator": "ann", "note": ""})
    # the records are the ones `labels import` makes: a `labels` report with the same row fields
    reps = led.reports("labels", run_id=web.run_id)
    assert len(reps) == 24 and all(json.loads(x.payload)["path"] == "browser:ann" for x in reps)
    labels_csv = tmp_path / "same.csv"
    with labels_csv.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    imp = web.project.cli("labels", "import", str(labels_csv), "--run", web.run_id, "--ledger", str(web.ledger))
    assert imp.returncode == 0, imp.stderr
    imported = json.loads(led.reports("labels", run_id=web.run_id)[0].payload)["rows"]
    browser = [json.loads(x.payload)["rows"][0] for x in reps]
    assert sorted(imported, key=lambda x: x["item_id"]) == sorted(browser, key=lambda x: x["item_id"])
    assert len(jt.stored_labels(led, ctx)) == 24  # the import replaced, not doubled, the same labels
    so_far = c.get(url + ".json", params={"annotator": "ann"}).json()["agreement"]
    cal = c.post(f"/runs/{web.run_id}/calibrate", json={}, headers=h)
    assert cal.status_code == 200, cal.text
    web_cal = cal.json()
    cli = web.project.cli("calibrate", "--labels", str(labels_csv), "--run", web.run_id, "--ledger",
                          str(web.ledger), "--json")
    assert cli.returncode == 0, cli.stderr
    cli_cal = json.loads(cli.stdout)
    assert web_cal["n"] == cli_cal["n"] == so_far["n"] == 24
    assert web_cal["kappa"] == pytest.approx(cli_cal["kappa"]) and so_far["kappa"] == pytest.approx(cli_cal["kappa"])
    assert [so_far["low"], so_far["high"]] == pytest.approx(cli_cal["kappa_interval"])
    assert web_cal["labels_hash"] == cli_cal["labels_hash"]
    # `labels export --recorded` writes them back out: the same labels (same hash) for `calibrate --labels`
    back = tmp_path / "back.csv"
    exp = web.project.cli("labels", "export", web.run_id, "--recorded", "--out", str(back), "--ledger",
                          str(web.ledger), "--json")
    assert exp.returncode == 0, exp.stderr
    assert json.loads(exp.stdout)["hash"] == web_cal["labels_hash"]
    again = web.project.cli("calibrate", "--labels", str(back), "--run", web.run_id, "--ledger", str(web.ledger),
                            "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["labels_hash"] == web_cal["labels_hash"]
    assert len(led.reports("calibration", run_id=web.run_id)) == 3
    listed = c.get("/calibrations.json", params={"run": web.run_id}).json()["calibrations"]
    one = c.get(f"/calibrations/{listed[-1]['report_id']}.json").json()
    assert one["kappa"] == pytest.approx(web_cal["kappa"])
    page = c.get(f"/calibrations/{listed[-1]['report_id']}").text
    conf = web_cal["report"]["pass_confusion"]
    assert f"Cohen's kappa (pass/fail) {web_cal['kappa']:.2f}" in page
    assert (f'<th>human fail</th><td class="num">{conf[0][0]}</td><td class="num">{conf[0][1]}</td>') in page
    assert 'id="failure-modes"' in page


def test_calibrate_now_with_too_few_labels_says_so(web: WebRun) -> None:
    c = client(web)
    url = f"/runs/{web.run_id}/label"
    h = {"X-CSRF-Token": csrf_of(c, url)}
    assert c.post(url, json=_answer(_item(c, web)), headers=h).status_code == 200
    r = c.post(f"/runs/{web.run_id}/calibrate", json={}, headers=h)
    assert r.status_code == 400 and "20" in r.json()["error"]


# ----------------------------------------------------------------------------- PostgreSQL


def test_postgresql_ledger(recorded: WebRun, pg_url: str) -> None:
    """The same routes over a PostgreSQL ledger (the run copied there with `benchrun ledger copy`)."""
    from benchrun import judge_trust as jt
    from benchrun.ledger import Ledger
    from benchrun.web.app import create_app

    r = recorded.project.cli("ledger", "copy", "--from", str(recorded.ledger), "--to", pg_url)
    assert r.returncode == 0, r.stderr
    c = TestClient(create_app(pg_url), base_url=BASE)
    rid = recorded.run_id
    assert [x["id"] for x in c.get("/.json").json()["runs"]] == [rid]
    assert len(c.get(f"/runs/{rid}.json").json()["cases"]) == N_CASES
    assert len(c.get(f"/runs/{rid}/cases/case-001.json").json()["results"]) == 3
    assert c.get("/compare.json", params={"a": "bad", "b": "good", "run": rid}).json()["compare"]["flips"]
    assert c.get("/runs/nosuchrun.json").status_code == 404
    url = f"/runs/{rid}/label"
    item = _item(c, recorded)
    ok = c.post(url, json=_answer(item, annotator="pg"), headers={"X-CSRF-Token": csrf_of(c, url)})
    assert ok.status_code == 200, ok.text
    led = Ledger(pg_url)
    assert [(lab.item_id, lab.annotator) for lab in jt.stored_labels(led, jt.open_run(led, rid))] == \
        [(item["item_id"], "pg")]
    led.close()


def test_benchrun_view_serves_and_checks_the_token(web: WebRun) -> None:
    """The real command in a subprocess: prints its URL, serves the JSON twins, wants the token."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "view-token-" + "y" * 16
    exe = str(Path(sys.executable).parent / "benchrun")
    proc = subprocess.Popen([exe, "view", "--ledger", str(web.ledger), "--port", str(port), "--read-only"],
                            env={**os.environ, "BENCHRUN_VIEW_TOKEN": token}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/.json"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                raise AssertionError("served without the token")
            except urllib.error.HTTPError as e:
                assert e.code == 401
                break
            except urllib.error.URLError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "benchrun view did not start"
                time.sleep(0.2)
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert [r["id"] for r in json.loads(resp.read())["runs"]] == [web.run_id]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out and "read-only" in out
    assert token not in out + err


def test_coverage_pages(web: WebRun) -> None:
    """A coverage report built by the real `coverage_table` and stored as `benchrun coverage` stores it."""
    import numpy as np

    from benchrun.coverage.history import store_report
    from benchrun.coverage.report import coverage_table, headline

    report = coverage_table(
        cluster_ids=[0, 1, 2], prod_labels=np.array([0, 0, 1, 1, 2, 2, 2]), prod_weights=np.ones(7),
        eval_labels=np.array([0, 0, 1]), eval_outside=np.array([False, False, False]), eval_ids=["c1", "c2", "c3"],
        eval_added=[None, None, None], cluster_labels={0: "refunds", 1: "<b>invoices</b>", 2: "\x1b[2Jcards"},
        representatives={2: ["my card <script>x</script>"]}, floor_draws=20)
    report.update(production={"source": "prod.jsonl", "hash": "p" * 64, "unit": "query"},
                  dataset={"name": "mini", "version": "1.0", "hash": "d" * 64})
    report["headline"] = headline(report)
    rid = store_report(str(web.ledger), report)
    c = client(web)
    listed = c.get("/coverage.json").json()["reports"]
    assert [r["id"] for r in listed] == [rid] and listed[0]["uncovered_clusters"] == 1
    one = c.get(f"/coverage/{rid}.json").json()
    assert one["score"]["jsd"] == pytest.approx(report["score"]["jsd"]) and len(one["clusters"]) == 3
    html = c.get(f"/coverage/{rid}").text
    assert "&lt;b&gt;invoices&lt;/b&gt;" in html and "my card &lt;script&gt;" in html and "\\x1b[2Jcards" in html
    assert html.count('class="cluster ') == 3
    assert c.get("/coverage/999999").status_code == 404 and c.get("/coverage/x.json").status_code == 404


def test_run_page_draws_the_report_chart(web: WebRun) -> None:
    from benchrun.ledger import Ledger
    from benchrun.report.data import report_data

    c = client(web)
    d = c.get(f"/runs/{web.run_id}.json").json()
    led = Ledger(str(web.ledger))
    assert d["chart_points"] == report_data(led, led.get_run(web.run_id))["chart_points"]
    html = c.get(f"/runs/{web.run_id}").text
    assert 'id="chart-quality-cost"' in html and html.count('class="point-label"') == 3


def test_per_item_shares_the_queue_between_annotators(web: WebRun) -> None:
    c = client(web)
    url = f"/runs/{web.run_id}/label"
    h = {"X-CSRF-Token": csrf_of(c, url)}
    params = {"n": 6, "seed": 1, "per_item": 1}
    first = [c.get(url + ".json", params={**params, "annotator": "a"}).json()["item"]["item_id"]]
    assert c.post(url, json=_answer({"item_id": first[0]}, annotator="a"), headers=h).status_code == 200
    b_next = c.get(url + ".json", params={**params, "annotator": "b"}).json()
    assert b_next["item"]["item_id"] != first[0]  # already labelled by one annotator: not shown to b
    assert b_next["progress"]["done"] == 0 and b_next["progress"]["left"] == 5
    two = c.get(url + ".json", params={**params, "per_item": 2, "annotator": "b"}).json()
    assert two["item"]["item_id"] == first[0]  # two annotators per item asked: b sees it too
    assert c.get(url + ".json", params={**params, "per_item": 0, "annotator": "b"}).status_code == 400


def test_diff_is_benchrun_diff(web: WebRun) -> None:
    import yaml

    spec = web.project.root / "runs" / "mini.yaml"
    data = yaml.safe_load(spec.read_text())
    data["sampling"]["temperature"] = 0.5
    other = web.project.root / "runs" / "mini-warm.yaml"
    other.write_text(yaml.safe_dump(data, sort_keys=False))
    r = web.project.cli("run", str(other), "--ledger", str(web.ledger))
    assert r.returncode == 0, r.stderr[-2000:]
    c = client(web)
    second = next(x["id"] for x in c.get("/.json").json()["runs"] if x["id"] != web.run_id)
    d = c.get("/diff.json", params={"a": web.run_id, "b": second}).json()
    cli = web.project.cli("diff", web.run_id, second, "--ledger", str(web.ledger), "--json")
    assert cli.returncode == 0 and d == json.loads(cli.stdout)
    assert any(x["section"] == "sampling" and x["affects_scores"] for x in d["differences"])
    html = c.get("/diff", params={"a": web.run_id, "b": second}).text
    assert f"{len(d['differences'])} difference(s)" in html
    assert c.get("/diff.json", params={"a": web.run_id, "b": "nosuchrun"}).status_code == 404


def test_rules_only_run_renders_and_has_no_label_queue(web: WebRun) -> None:
    import yaml

    data = yaml.safe_load((web.project.root / "runs" / "mini.yaml").read_text())
    del data["rubric"], data["judge"]
    spec = web.project.root / "runs" / "rules-only.yaml"
    spec.write_text(yaml.safe_dump({**data, "name": "rules-only"}, sort_keys=False))
    r = web.project.cli("run", str(spec), "--ledger", str(web.ledger))
    assert r.returncode == 0, r.stderr[-2000:]
    c = client(web)
    rid = next(x["id"] for x in c.get("/.json", params={"q": "rules-only"}).json()["runs"])
    page = c.get(f"/runs/{rid}")
    assert page.status_code == 200 and "rules only" in page.text and 'id="label-link"' not in page.text
    assert c.get(f"/runs/{rid}/cases/case-000").status_code == 200
    q = c.get(f"/runs/{rid}/label.json", params={"annotator": "a"})
    assert q.status_code == 400 and "scored by rules only" in q.json()["error"]
    assert "scored by rules only" in c.get(f"/runs/{rid}/label").text


def test_reveal_on_request(web: WebRun) -> None:
    from benchrun import judge_trust as jt
    from benchrun.ledger import Ledger

    c = client(web)
    item = _item(c, web)
    rv = c.get(f"/runs/{web.run_id}/label/reveal/{item['item_id']}").json()
    led = Ledger(str(web.ledger))
    r = jt.open_run(led, web.run_id).answered()[item["item_id"]]
    assert rv["model_key"] == r.model_key and rv["judge_score"] == r.judge_score
    assert c.get(f"/runs/{web.run_id}/label/reveal/item-000000000000").status_code == 400
    assert c.get(f"/runs/nosuchrun/label/reveal/{item['item_id']}").status_code == 404


def test_several_samples_show_pass_at_k(web: WebRun) -> None:
    import yaml

    data = yaml.safe_load((web.project.root / "runs" / "mini.yaml").read_text())
    spec = web.project.root / "runs" / "two-samples.yaml"
    spec.write_text(yaml.safe_dump({**data, "name": "two-samples", "samples": 2}, sort_keys=False))
    r = web.project.cli("run", str(spec), "--ledger", str(web.ledger))
    assert r.returncode == 0, r.stderr[-2000:]
    c = client(web)
    rid = next(x["id"] for x in c.get("/.json", params={"q": "two-samples"}).json()["runs"])
    pk = c.get(f"/runs/{rid}.json").json()["summary"]["pass_at_k"]["models"]["good"]["2"]
    html = c.get(f"/runs/{rid}").text
    assert 'id="pass-at-k"' in html and "pass@2" in html
    assert f"{100 * pk['estimate']:.1f}% [{100 * pk['low']:.1f}%, {100 * pk['high']:.1f}%]" in html
    case = c.get(f"/runs/{rid}/cases/case-000.json").json()
    assert sorted((x["model_key"], x["sample_index"]) for x in case["results"]) == \
        [(k, i) for k in ("bad", "evil", "good") for i in (0, 1)]
