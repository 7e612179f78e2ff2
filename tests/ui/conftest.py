"""Fixtures for the page: the real app with Gradio on a free loopback port, gradio_client sessions."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.rag.http.conftest import FACTS, MORE, fact_pages, facts_pdf  # noqa: E402,F401  (facts_pdf: a fixture)


@pytest.fixture
def ui_server(rag):
    """The real app (FastAPI + Gradio + /files) over a fresh store, on a free 127.0.0.1 port."""
    from rag.http.app import create_server

    server = create_server(rag, "127.0.0.1", 0).start()
    yield server
    server.stop()


@pytest.fixture
def client(ui_server):
    """A gradio_client session on the server."""
    yield from _client(ui_server.url)


def _client(url: str) -> Iterator[Any]:
    from gradio_client import Client

    c = Client(url, verbose=False, download_files=False)
    try:
        yield c
    finally:
        c.close()


def raw_call(base_url: str, api_name: str, data: list[Any], timeout: float = 120) -> tuple[str, Any]:
    """Call an endpoint the way curl does (POST /gradio_api/call/NAME, then read its event stream).

    Returns:
        ("complete", output list) or ("error", message).
    """
    base = base_url.rstrip("/")
    with httpx.Client(timeout=timeout) as http:
        r = http.post(f"{base}/gradio_api/call/{api_name}", json={"data": data})
        r.raise_for_status()
        event_id = r.json()["event_id"]
        event = None
        with http.stream("GET", f"{base}/gradio_api/call/{api_name}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = line.split(":", 1)[1].strip()
                    try:
                        return event, json.loads(payload)
                    except json.JSONDecodeError:
                        return event, payload
    raise AssertionError(f"no result from {api_name}")


# -- headless Chromium (the browser tests) ---------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")


def _require(ok: bool, reason: str) -> None:
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI must have it)")
        pytest.skip(reason)


@pytest.fixture
def browser():
    _require(CHROMIUM.exists(), f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)")
    _require(CHROMEDRIVER.exists(), f"{CHROMEDRIVER} is absent (apt-get install chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _require(False, "the selenium package is not installed (pip install selenium)")
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager: no telemetry
    profile = tempfile.mkdtemp(prefix="rag-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # the page is still rendering
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")
