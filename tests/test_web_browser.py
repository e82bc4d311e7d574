"""`benchrun view` in a real browser (Debian's chromium driven by Selenium through chromedriver).

Opens the runs list, a run page, a drill-down and a compare page; labels five items with the keyboard
only and checks the ledger rows; checks that a model answer holding a script tag (and an onerror
image, and a javascript: link) renders as text and runs nothing. Screenshots go to
``$BENCHRUN_ARTEFACTS/web`` (default: the test's temporary directory).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer
from webkit import WebRun, config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

try:
    import selenium  # noqa: F401

    _why = None if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists() else \
        "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
except ImportError:
    _why = "selenium is not installed (pip install -e '.[dev]')"

pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebRun, str]]:
    """A recorded run, and `benchrun view`'s app over it served by uvicorn on 127.0.0.1."""
    with FakeServer(config()) as srv:
        web = WebRun(tmp_path_factory.mktemp("webui"), srv)
    with serve(web.ledger) as base:
        yield web, base


@contextlib.contextmanager
def serve(ledger: Path) -> Iterator[str]:
    """`benchrun view`'s app over ``ledger`` served by uvicorn on 127.0.0.1; yields its base URL."""
    import uvicorn

    from benchrun.web.app import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(str(ledger)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """Headless Debian chromium through chromedriver, with its profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("BENCHRUN_ARTEFACTS")
    d = Path(base) / "web" if base else tmp_path_factory.mktemp("screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _pwned(driver: Any) -> Any:
    return driver.execute_script("return document.documentElement.getAttribute('data-pwned')")


def test_pages_in_chromium(served: tuple[WebRun, str], browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    web, base = served
    browser.get(base + "/")
    assert browser.find_elements(By.CSS_SELECTOR, "tr.run-row")
    browser.save_screenshot(str(shots / "runs.png"))
    browser.find_element(By.LINK_TEXT, web.run_id).click()
    assert browser.find_element(By.ID, "run-id").text == web.run_id
    assert "DO NOT SHIP" in browser.find_element(By.ID, "breakdown").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.model-row")) == 3
    browser.save_screenshot(str(shots / "run.png"))
    browser.find_element(By.LINK_TEXT, "case-001").click()
    answers = browser.find_elements(By.CSS_SELECTOR, "article.answer")
    assert [a.get_attribute("data-model") for a in answers] == ["bad", "evil", "good"]
    evil = answers[1].find_element(By.CSS_SELECTOR, "pre.answer-text").text
    assert evil.startswith("<script>document.documentElement.setAttribute('data-pwned','1')</script></script>")
    assert "javascript:" in evil and "\\x1b[31mred" in evil  # shown as text
    assert browser.find_elements(By.CSS_SELECTOR, "article.answer a") == []  # the javascript: link is no link
    assert browser.find_elements(By.CSS_SELECTOR, "article.answer img") == []
    assert _pwned(browser) is None  # nothing the model wrote ran
    browser.save_screenshot(str(shots / "case.png"))
    browser.get(base + f"/runs/{web.run_id}/cases/case-003")  # the 1 MB line
    assert len(browser.find_elements(By.CSS_SELECTOR, "pre.answer-text")[1].get_attribute("textContent")) == 1_000_000
    browser.get(base + f"/runs/{web.run_id}")
    browser.find_element(By.ID, "compare-link").click()
    assert "larger than noise" in browser.find_element(By.ID, "verdict").text.lower()
    flips = browser.find_elements(By.CSS_SELECTOR, "tr.flip")
    sev = [f.find_element(By.TAG_NAME, "td").text for f in flips]
    assert sev and sev == sorted(sev, key=["high", "medium", "low"].index)
    browser.save_screenshot(str(shots / "compare.png"))
    browser.find_element(By.NAME, "regressions").click()
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    _wait(browser, lambda d: "regressions=1" in d.current_url and d.find_elements(By.ID, "flips"))
    assert "regressions only: 0 of" in browser.find_element(By.TAG_NAME, "main").text  # good (A) never fails where bad passes
    assert browser.find_elements(By.CSS_SELECTOR, "tr.flip") == []


def _wait(driver: Any, cond: Any, timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(cond)


def test_label_five_items_with_the_keyboard(served: tuple[WebRun, str], browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from benchrun import judge_trust as jt
    from benchrun.ledger import Ledger

    web, base = served
    browser.get(base + f"/runs/{web.run_id}/label")
    browser.find_element(By.ID, "annotator").send_keys("kbd", Keys.ENTER)
    typed: list[tuple[str, int, bool, str, str]] = []
    for i in range(5):
        # an item page ready: the annotator form before it is "ready" too (it has no item), and the first wait
        # could see it before its submission had loaded the next page
        _wait(browser, lambda d: d.execute_script(
            "return document.documentElement.getAttribute('data-ready') && document.getElementById('item') !== null"))
        item = browser.find_element(By.ID, "item")
        item_id = item.get_attribute("data-item")
        assert browser.find_element(By.ID, "reveal").is_displayed() is False  # blind until answered
        score, passed = 1 + i % 5, i % 2 == 0
        keys = [str(score), "p" if passed else "f", "m", "m", "n"]  # m twice: the rubric's second mode
        note = f"note {i}"
        if i == 4:  # this time the annotator chooses to see model and verdict first (r): the note says so
            ActionChains(browser).send_keys_to_element(browser.find_element(By.TAG_NAME, "body"), "r").perform()
            _wait(browser, lambda d: d.find_element(By.ID, "reveal").is_displayed())
            assert browser.find_element(By.ID, "reveal-model").text in ("good", "bad", "evil")
        ActionChains(browser).send_keys_to_element(browser.find_element(By.TAG_NAME, "body"), *keys).perform()
        ActionChains(browser).send_keys(note, Keys.ESCAPE, Keys.ENTER).perform()
        _wait(browser, lambda d, iid=item_id: d.execute_script(
            "return document.documentElement.getAttribute('data-saved')") == iid)
        assert browser.find_element(By.ID, "reveal").is_displayed()
        assert browser.find_element(By.ID, "reveal-model").text in ("good", "bad", "evil")
        if i == 0:
            browser.save_screenshot(str(shots / "label.png"))
        typed.append((item_id, score, passed, "unsafe_account_action",
                      ("[saw model and judge verdict before answering] " if i == 4 else "") + note))
        ActionChains(browser).send_keys(Keys.ENTER).perform()  # next
        _wait(browser, lambda d, iid=item_id: d.execute_script(
            "var e = document.getElementById('item'); return e === null || e.dataset.item !== arguments[0]", iid))
    src, copy = sqlite3.connect(web.ledger), web.ledger.with_name("check.sqlite")
    with sqlite3.connect(copy) as dst:
        src.backup(dst)
    src.close()
    led = Ledger(str(copy))
    got = [(lab.item_id, lab.human_score, lab.human_pass, lab.failure_mode, lab.note)
           for lab in jt.stored_labels(led, jt.open_run(led, web.run_id)) if lab.annotator == "kbd"]
    assert got == typed
    assert _pwned(browser) is None
    assert "5 of" in browser.find_element(By.ID, "progress").text
