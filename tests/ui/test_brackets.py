"""Brackets in document text ("[0, 1]", "[2][3]") never become citations: over HTTP (/api/ask) and the page (/ask)."""

from __future__ import annotations

import httpx

from rag.cite import WORD_JOINER
from tests.rag.test_cite import BUDGET_Q, PATH_Q, bracket_store, check_bracket_answers


def test_document_brackets_never_cite_over_http_and_on_the_page(rag, ui_server, client) -> None:
    bracket_store(rag)
    api = [httpx.post(f"{ui_server.url}api/ask", json={"question": q}, timeout=120).json() for q in (PATH_Q, BUDGET_Q)]
    check_bracket_answers(*api)
    page = [client.predict(q, api_name="/ask") for q in (PATH_Q, BUDGET_Q)]
    check_bracket_answers(*page)
    shown = page[0]["markdown"].replace(WORD_JOINER, "")
    assert "\\[0, 1\\]" in shown and "γ : \\[1\\]" not in shown  # escaped as text, not a linked [1]
    assert "2024 \\[2\\]\\[3\\]" in page[1]["markdown"].replace(WORD_JOINER, "")
