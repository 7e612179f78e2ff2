"""Fixtures shared by the tests of rag/: a fake OpenAI-compatible server."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.fakes.openai_server import FakeServer, openai_server


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A loopback chat-completions server (tests/fakes/openai_server.py) for one test."""
    with openai_server() as state:
        yield state
