"""Fixtures for the UI: the real app on a free loopback port, gradio_client sessions, test PDFs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# One topic per page: a fact, the question that finds it, a word only that page has; two more
# sentences on the same topic, so an extract quotes only that page.
FACTS = [
    ("The lighthouse keeper Marta Velasquez painted the lighthouse tower bright red in 1911.",
     "Who painted the lighthouse tower red?", "Velasquez"),
    ("The Zentara glacier lost forty meters of ice thickness between 1980 and 2020.",
     "How much ice thickness did the Zentara glacier lose?", "Zentara"),
    ("Chef Ottavio Brenn invented the saffron pumpkin risotto at his restaurant in Bergamo.",
     "Who invented the saffron pumpkin risotto?", "Brenn"),
    ("The Corvid-9 satellite was launched from Kourou to map the salinity of the oceans.",
     "What does the Corvid-9 satellite map?", "Corvid"),
    ("The chess prodigy Ilse Marnow won the regional chess championship at the age of eleven.",
     "At what age did Ilse Marnow win the chess championship?", "Marnow"),
    ("Beekeepers in the valley of Oressa harvest their lavender honey every August.",
     "When do the beekeepers of Oressa harvest lavender honey?", "Oressa"),
    ("The violin maker Tomas Greeve carved his violins from maple wood seasoned for thirty years.",
     "What wood did the violin maker Tomas Greeve use?", "Greeve"),
    ("The Halvard railway tunnel under the mountain pass is nine kilometers long.",
     "How long is the Halvard railway tunnel?", "Halvard"),
]
MORE = [
    "The Velasquez lighthouse stands on a granite cliff above the harbour. Velasquez kept its lamp lit for forty years.",
    "Scientists have measured the Zentara glacier every summer since 1980. The Zentara ice now ends in a lake.",
    "Brenn opened his Bergamo restaurant in 1975. Brenn cooks the risotto with pumpkin from his own garden.",
    "Corvid-9 weighs two tonnes and carries a microwave radiometer. The Corvid-9 mission is planned to last seven years.",
    "Marnow learned chess from her grandfather in Graz. Marnow later became an international master.",
    "The Oressa valley has more than two hundred hives. Oressa honey is sold at the market in the spring.",
    "Greeve worked in a small workshop in Cremona. A Greeve violin takes about three months to make.",
    "Construction of the Halvard tunnel took eleven years. Halvard trains cross the pass in six minutes.",
]


def fact_pages() -> list[str]:
    """The text of each page of ``facts.pdf``."""
    return [f"{fact} {more}" for (fact, _, _), more in zip(FACTS, MORE)]


@pytest.fixture
def facts_pdf(tmp_path: Path) -> Path:
    """``facts.pdf``: page N holds FACTS[N-1] and nothing else."""
    from tests.pdfgen import make_pdf

    path = tmp_path / "upload" / "facts.pdf"
    path.parent.mkdir()
    make_pdf(fact_pages(), path, title="Facts")
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
