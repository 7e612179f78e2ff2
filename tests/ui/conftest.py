"""Fixtures for the UI: the real app on a free loopback port, gradio_client sessions, test PDFs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# One fact per page, on unrelated topics, with the question that finds it and a word that proves it.
FACTS = [
    ("The lighthouse keeper Marta Velasquez painted the lighthouse tower bright red in 1911.",
     "Who painted the lighthouse tower red?", "Velasquez"),
    ("The Zentara glacier lost forty meters of ice thickness between 1980 and 2020.",
     "How much ice thickness did the Zentara glacier lose?", "Zentara"),
    ("Chef Ottavio Brenn invented the saffron pumpkin risotto at his restaurant in Bergamo.",
     "Who invented the saffron pumpkin risotto?", "Brenn"),
    ("The Corvid-9 satellite was launched from Kourou to map the salinity of the oceans.",
     "What does the Corvid-9 satellite map?", "salinity"),
    ("The chess prodigy Ilse Marnow won the regional chess championship at the age of eleven.",
     "At what age did Ilse Marnow win the chess championship?", "Marnow"),
    ("Beekeepers in the valley of Oressa harvest their lavender honey every August.",
     "When do the beekeepers of Oressa harvest lavender honey?", "Oressa"),
    ("The violin maker Tomas Greeve carved his violins from maple wood seasoned for thirty years.",
     "What wood did the violin maker Tomas Greeve use?", "Greeve"),
    ("The Halvard railway tunnel under the mountain pass is nine kilometers long.",
     "How long is the Halvard railway tunnel?", "Halvard"),
]


@pytest.fixture
def facts_pdf(tmp_path: Path) -> Path:
    """``facts.pdf``: page N holds FACTS[N-1] and nothing else."""
    from tests.pdfgen import make_pdf

    path = tmp_path / "upload" / "facts.pdf"
    path.parent.mkdir()
    make_pdf([fact for fact, _, _ in FACTS], path, title="Facts")
    return path


@pytest.fixture
def ui_server(rag):
    """The real app (FastAPI + Gradio + /files) over a fresh store, on a free 127.0.0.1 port."""
    from ui.app import create_server

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
