"""The page in headless Chromium: ask, watch the answer stream in, open a citation at its PDF page.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: ``apt-get install chromium
chromium-driver``) and the ``selenium`` package; skips without them, fails under CI=true.
Screenshots go to ``artifacts/`` (gitignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.rag.http.conftest import FACTS
from tests.ui.conftest import wait as _wait

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "artifacts"


def test_upload_ask_and_open_the_cited_page_in_the_browser(browser, ui_server, facts_pdf: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(ui_server.url)

    # Upload through the Documents tab: per-file result, and the sources table updates.
    tab = _wait(lambda: next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                             if b.text.strip() == "Documents"), what="the Documents tab")
    tab.click()
    file_input = _wait(lambda: browser.find_element(By.CSS_SELECTOR, "#pdf-files input[type=file]"),
                       what="the file input")
    file_input.send_keys(str(facts_pdf))
    _wait(lambda: "facts" in browser.find_element(By.ID, "pdf-files").text, what="the file to be listed")
    browser.find_element(By.ID, "upload-button").click()
    _wait(lambda: "facts.pdf — added, 8 chunk(s)" in browser.find_element(By.ID, "upload-results").text, 120,
          "the upload result")
    _wait(lambda: "facts.pdf" in browser.find_element(By.ID, "sources-table").text, 30, "the sources table")
    browser.save_screenshot(str(ARTIFACTS / "ui-documents.png"))

    # Ask in the Chat tab; the answer streams in, then its [n] link to the PDF page.
    next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == "Chat").click()
    _, question, word = FACTS[1]
    box = _wait(lambda: browser.find_element(By.CSS_SELECTOR, "#question textarea"), what="the question box")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    link = _wait(lambda: browser.find_element(By.CSS_SELECTOR, '#chat a[href*="/view/facts.pdf?page=2&chunk="]'),
                 what="a citation link to facts.pdf page 2 in the viewer")
    chat_text = browser.find_element(By.ID, "chat").text
    assert word in chat_text and "Answered by" in chat_text
    panel = browser.find_element(By.ID, "sources-panel").text
    assert "facts.pdf" in panel and "page 2" in panel and "similarity" in panel
    assert browser.find_element(By.CSS_SELECTOR, "#question textarea").get_attribute("value") == ""

    # A follow-up: the page sends the conversation, and shows the retrieval query it led to.
    box.send_keys("Since when have scientists measured it?")
    box.send_keys(Keys.ENTER)
    _wait(lambda: "searched for:" in browser.find_element(By.ID, "chat").text, what="the follow-up answer")
    chat_text = browser.find_element(By.ID, "chat").text
    assert "every summer since 1980" in chat_text and "previous turn" in chat_text
    browser.save_screenshot(str(ARTIFACTS / "ui-answer.png"))

    # The citation opens the uploaded PDF at page 2 in the viewer, the cited passage boxed.
    handles = set(browser.window_handles)
    link.click()
    new = _wait(lambda: set(browser.window_handles) - handles or None, 10, "the viewer tab")
    browser.switch_to.window(new.pop())
    _wait(lambda: "/view/facts.pdf" in browser.current_url, 30, "the viewer to open")
    assert "page=2" in browser.current_url and browser.current_url.endswith("#cited")
    image = _wait(lambda: browser.find_element(By.CSS_SELECTOR, "#sheet img"), 30, "the page image")
    _wait(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image), 30,
          "the page image to load")
    boxes = browser.find_elements(By.CSS_SELECTOR, "#sheet .hl")
    assert boxes and all(b.is_displayed() and b.size["width"] > 0 for b in boxes)
    assert "Page 2 of 8" in browser.find_element(By.TAG_NAME, "header").text
    browser.save_screenshot(str(ARTIFACTS / "ui-citation.png"))
