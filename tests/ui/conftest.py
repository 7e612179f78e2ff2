"""Fixtures for the page: the real app with Gradio on a free loopback port, gradio_client sessions."""

from __future__ import annotations

import json
import os
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
