"""The whole page in headless Chromium, as a new user goes through it: upload a PDF and watch its
progress, ask, open the highlighted citation, ask a follow-up, see a source added meanwhile appear,
reopen the saved chat, continue and rename it, ask one collection only (a new chat asks all again,
the reopened one its own), delete a source and then a whole collection after confirming.

Screenshots go to ``$RAG_SCREENSHOTS`` (default: ``artifacts/walkthrough/``, gitignored, as the other
browser tests' screenshots).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rag import RAG
from tests.pdfgen import make_pdf
from tests.rag.http.conftest import FACTS, fact_pages
from tests.ui.conftest import wait

# About 20 s on a quiet 2-core machine: in the default run, so CI walks the page every time.
pytestmark = [pytest.mark.browser]

FILLER = ("The harbour ledger of Velmora lists the ship number {n}, its cargo of salt and timber, "
          "and the day it left the quay. ") * 6


@pytest.fixture
def shots() -> Path:
    folder = Path(os.environ.get("RAG_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "artifacts" / "walkthrough")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _no_error(browser) -> None:
    """No error toast is on the page: a user never sees one on this walk."""
    shown = browser.execute_script("return [...document.querySelectorAll('.toast-body')]"
                                   ".filter(t => t.querySelector('.toast-title.error')).map(t => t.innerText)")
    assert not shown, f"the page showed an error: {shown}"


def _tab(browser, name: str) -> None:
    from selenium.webdriver.common.by import By

    _no_error(browser)
    wait(lambda: next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                      if b.text.strip() == name), what=f"the {name} tab").click()


def _choose(browser, elem_id: str, label_part: str) -> None:
    """Pick the option of a Gradio dropdown whose label holds ``label_part``."""
    from selenium.webdriver.common.by import By

    box = wait(lambda: browser.find_element(By.CSS_SELECTOR, f"#{elem_id} input"), what=f"the {elem_id} box")
    _no_error(browser)
    box.click()
    option = wait(lambda: next(o for o in browser.find_elements(By.CSS_SELECTOR, "li[role=option]")
                               if label_part in o.text and o.is_displayed()), 30, f"{label_part!r} in {elem_id}")
    option.click()


def _text(browser, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, elem_id).text


def test_walkthrough(browser, embedder, tmp_path: Path, shots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from rag.http.app import create_server

    pdf = tmp_path / "upload" / "facts.pdf"
    pdf.parent.mkdir()
    make_pdf(fact_pages() + [FILLER.format(n=n) for n in range(1, 25)], pdf, title="Facts")
    rag = RAG(tmp_path / "data", page_refresh_seconds=2, ingest_batch=8)
    started = time.monotonic()
    with create_server(rag, "127.0.0.1", 0) as server:
        browser.get(server.url)

        # 1. Upload: the bar names the file and its pages, then its chunks; the buttons are off meanwhile.
        _tab(browser, "Documents")
        wait(lambda: browser.find_element(By.CSS_SELECTOR, "#pdf-files input[type=file]")).send_keys(str(pdf))
        wait(lambda: "facts" in _text(browser, "pdf-files"), what="the file to be listed")
        upload = browser.find_element(By.ID, "upload-button")
        upload.click()
        seen, disabled = set(), False
        deadline = time.monotonic() + 300
        while "facts.pdf — added" not in _text(browser, "upload-results"):
            assert time.monotonic() < deadline, "the upload did not finish"
            words = browser.execute_script("return document.body.innerText")
            seen |= {line.strip() for line in words.splitlines() if "facts.pdf (1 of 1)" in line}
            disabled = disabled or upload.get_attribute("disabled") is not None
            if any("embedded" in line for line in seen) and not (shots / "1-upload-progress.png").exists():
                browser.save_screenshot(str(shots / "1-upload-progress.png"))
            time.sleep(0.05)
        assert disabled, "the Add files button stayed enabled during the upload"
        assert any("embedded" in s for s in seen), seen
        print("\nprogress seen:", sorted(seen))
        assert upload.get_attribute("disabled") is None
        wait(lambda: "facts.pdf" in _text(browser, "sources-table"), 30, "the sources table")
        table = _text(browser, "sources-table")
        assert "just now" in table and "KB" in table  # relative time and size, not ISO and bytes
        browser.save_screenshot(str(shots / "2-documents.png"))

        # 2. Ask: the answer cites page 2 through the viewer, in plain words.
        _tab(browser, "Chat")
        _, question, word = FACTS[1]
        box = wait(lambda: browser.find_element(By.CSS_SELECTOR, "#question textarea"), what="the question box")
        box.send_keys(question + Keys.ENTER)
        link = wait(lambda: browser.find_element(By.CSS_SELECTOR, '#chat a[href*="/view/facts.pdf?page=2&chunk="]'),
                    120, "the citation of page 2")
        assert word in _text(browser, "chat") and "Answered by extracts from your documents" in _text(browser, "chat")
        browser.save_screenshot(str(shots / "3-answer.png"))

        # 3. The citation opens the page with the passage boxed, visibly.
        home = browser.current_window_handle
        handles = set(browser.window_handles)
        link.click()
        viewer = wait(lambda: set(browser.window_handles) - handles or None, 10, "the viewer tab").pop()
        browser.switch_to.window(viewer)
        image = wait(lambda: browser.find_element(By.CSS_SELECTOR, "#sheet img"), 30, "the page image")
        wait(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image), 30,
             "the page image to load")
        boxes = browser.find_elements(By.CSS_SELECTOR, "#sheet .hl")
        sheet = browser.find_element(By.ID, "sheet").rect
        assert boxes and all(b.is_displayed() for b in boxes)
        for b in boxes:
            r = b.rect
            assert r["width"] > 20 and r["height"] > 5
            assert sheet["x"] <= r["x"] and r["x"] + r["width"] <= sheet["x"] + sheet["width"] + 1
            assert sheet["y"] <= r["y"] and r["y"] + r["height"] <= sheet["y"] + sheet["height"] + 1
        browser.save_screenshot(str(shots / "4-viewer.png"))
        browser.close()
        browser.switch_to.window(home)

        # 4. A follow-up uses the conversation.
        box.send_keys("Since when have scientists measured it?" + Keys.ENTER)
        wait(lambda: "searched for:" in _text(browser, "chat"), 120, "the follow-up answer")
        assert "Since when have scientists measured it?" in _text(browser, "chat")

        # 5. A source added elsewhere meanwhile (as `rag ingest` through this server does) shows up by itself.
        rag.add_text("The Oressa beekeepers harvest lavender honey every August.", name="bees.txt",
                     collection="team-b")
        _tab(browser, "Documents")
        wait(lambda: "bees.txt" in _text(browser, "sources-table"), 30, "the new source without a refresh")
        assert "team-b" in _text(browser, "sources-table")

        # 6. The chat was saved: start a new one, reopen it, and continue it.
        _tab(browser, "Chat")
        next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "New conversation").click()
        wait(lambda: "Zentara" not in _text(browser, "chat"), 30, "the chat to clear")
        _choose(browser, "saved-list", "How much ice thickness")
        browser.find_element(By.ID, "open-chat").click()
        wait(lambda: "Since when have scientists measured it?" in _text(browser, "chat"), 30, "the reopened chat")
        assert "Reopened" in _text(browser, "saved-status")
        box.send_keys("Where does its ice end now?" + Keys.ENTER)
        wait(lambda: _text(browser, "chat").count("searched for:") == 2, 120, "the follow-up of the reopened chat")
        assert "Zentara" in _text(browser, "chat").rsplit("searched for:", 1)[1]  # resolved against the old turns
        assert len(rag.conversations.list()) == 1 and len(rag.conversations.list()[0].turns) == 3
        title = browser.find_element(By.CSS_SELECTOR, "#chat-title textarea, #chat-title input")
        title.send_keys("Glacier questions")
        browser.find_element(By.ID, "rename-chat").click()
        wait(lambda: "Glacier questions" in _text(browser, "saved-status"), 30, "the rename")
        assert rag.conversations.list()[0].title == "Glacier questions"
        browser.save_screenshot(str(shots / "5-reopened-chat.png"))

        # 7. Ask only the collection team-b: the glacier PDF (in default) is no longer cited.
        _choose(browser, "ask-collections", "team-b")
        box.send_keys(Keys.ESCAPE)
        wait(lambda: "Asking only: team-b." in _text(browser, "ask-collections"), 30, "the collection choice")
        before = _text(browser, "chat").count("Answered by")
        box.send_keys("When do the beekeepers harvest lavender honey?" + Keys.ENTER)
        wait(lambda: _text(browser, "chat").count("Answered by") > before, 120, "the answer within team-b")
        last = _text(browser, "chat").rsplit("When do the beekeepers harvest lavender honey?", 1)[1]
        assert "August" in last and "Zentara" not in last
        assert not browser.find_elements(By.CSS_SELECTOR, '#sources-panel a[href*="facts.pdf"]')
        browser.save_screenshot(str(shots / "6-one-collection.png"))
        # The chat remembers what each turn asked: a new one asks all again, reopened it asks team-b.
        saved = rag.conversations.list()[0]
        assert [t.collections for t in saved.turns] == [(), (), (), ("team-b",)]
        next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "New conversation").click()
        wait(lambda: "Asking all collections." in _text(browser, "ask-collections"), 30, "the new chat asking all")
        _choose(browser, "saved-list", "Glacier questions")
        browser.find_element(By.ID, "open-chat").click()
        wait(lambda: "Asking only: team-b." in _text(browser, "ask-collections"), 30, "the reopened chat's collection")
        assert "lavender honey" in _text(browser, "chat")

        # 8. Delete a source: it asks first.
        _tab(browser, "Documents")
        _choose(browser, "delete-choice", "bees.txt")
        browser.find_element(By.ID, "delete-button").click()
        confirm = wait(lambda: browser.find_element(By.ID, "confirm-delete-button"), 10, "the confirmation")
        wait(lambda: confirm.is_displayed(), 10, "the confirmation to show")
        assert "bees.txt" in _text(browser, "confirm-delete")
        browser.save_screenshot(str(shots / "7-confirm-delete.png"))
        assert "bees.txt" in [s.source for s in rag.sources()]  # nothing deleted before the answer
        confirm.click()
        wait(lambda: "Deleted bees.txt" in _text(browser, "delete-results").replace("*", ""), 60, "the deletion")
        wait(lambda: "bees.txt" not in _text(browser, "sources-table"), 30, "the table without it")
        assert [s.source for s in rag.sources()] == ["facts.pdf"]

        # 9. Delete a whole collection, also after confirming: its sources and their kept files go.
        _choose(browser, "delete-choice", "the whole collection default")
        browser.find_element(By.ID, "delete-button").click()
        wait(lambda: "Delete the whole collection default" in _text(browser, "confirm-delete").replace("*", ""),
             10, "the collection's confirmation")
        assert [s.source for s in rag.sources()] == ["facts.pdf"]
        confirm = browser.find_element(By.ID, "confirm-delete-button")
        wait(lambda: confirm.is_displayed(), 10, "the confirmation to show")
        confirm.click()
        wait(lambda: "Deleted the collection default: 1 source(s)" in _text(browser, "delete-results").replace("*", ""),
             60, "the collection's deletion")
        assert rag.sources() == [] and not list((rag.settings.files_dir / "default").glob("facts.pdf"))
        # The page's timer ticks meanwhile with the deleted choice still shown: it must not error.
        time.sleep(2.5)
        _no_error(browser)
    print(f"\nwalkthrough: {time.monotonic() - started:.0f} s; screenshots in {shots}")
