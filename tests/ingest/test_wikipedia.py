"""fetch_wikipedia through the real ``wikipedia`` package against the fake MediaWiki API."""

from __future__ import annotations

import json
import math
import socket
import threading
import time

import pytest
import requests
import wikipedia

import ingest.wikipedia as wiki_module
from ingest.wikipedia import fetch_wikipedia, split_sections
from rag.errors import AmbiguousTitleError, NetworkError, NotFoundError
from tests.fakes.mediawiki import DATA_DIR, FakeMediaWiki, mediawiki_server  # noqa: F401

SUPER_BOWL_FIRST_SENTENCE = (
    "Super Bowl 50 was an American football game to determine the champion of the "
    "National Football League (NFL) for the 2015 season."
)


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff delays instead of sleeping them."""
    delays: list[float] = []
    monkeypatch.setattr(wiki_module, "_sleep", delays.append)
    return delays


def _squad_paragraphs(title: str) -> list[str]:
    data = json.loads((DATA_DIR / "squad" / "squad-dev-v1.1-half-a.json").read_text(encoding="utf-8"))
    article = next(a for a in data["data"] if a["title"] == title)
    return [p["context"].strip() for p in article["paragraphs"]]


def test_squad_article_gives_one_document_per_section(mediawiki_server: FakeMediaWiki) -> None:
    docs = fetch_wikipedia("Super Bowl 50", api_url=mediawiki_server.api_url)

    paragraphs = _squad_paragraphs("Super_Bowl_50")
    assert len(docs) == 1 + math.ceil((len(paragraphs) - 1) / 3) == 19
    page = mediawiki_server.pages["Super Bowl 50"]
    lead, first = docs[0], docs[1]
    assert lead.section is None
    assert lead.url == "https://en.wikipedia.org/wiki/Super_Bowl_50"
    assert lead.text.startswith(SUPER_BOWL_FIRST_SENTENCE)
    assert first.section == "Section 1"
    assert first.url == "https://en.wikipedia.org/wiki/Super_Bowl_50#Section_1"
    assert first.text == "\n".join(paragraphs[1:4])
    assert docs[-1].section == "Section 18"
    assert docs[-1].url.endswith("#Section_18")
    for doc in docs:
        assert (doc.source, doc.kind, doc.title) == ("wikipedia:Super Bowl 50", "wikipedia", "Super Bowl 50")
        assert doc.meta == {"page_id": page.page_id, "revision_id": page.revision_id, "requested_title": "Super Bowl 50"}
    # One info query, one content query: nothing else, and never a search.
    assert [r["prop"] for r in mediawiki_server.requests] == ["info|pageprops", "extracts|revisions"]
    assert all(r["titles"] == "Super Bowl 50" for r in mediawiki_server.requests)


def test_title_with_comma_keeps_wikipedia_url_form(mediawiki_server: FakeMediaWiki) -> None:
    docs = fetch_wikipedia("Fresno, California", api_url=mediawiki_server.api_url)

    assert docs[0].url == "https://en.wikipedia.org/wiki/Fresno,_California"
    assert docs[2].url == "https://en.wikipedia.org/wiki/Fresno,_California#Section_2"


def test_long_wikitext_article_has_nested_sections_and_no_boilerplate(mediawiki_server: FakeMediaWiki) -> None:
    docs = fetch_wikipedia("United Kingdom", api_url=mediawiki_server.api_url)

    by_section = {d.section: d for d in docs}
    assert len(docs) == 39
    assert by_section[None].text.startswith(
        "The United Kingdom of Great Britain and Northern Ireland, commonly known as the United Kingdom (UK)"
    )
    background = by_section["History > Background"]
    assert background.url == "https://en.wikipedia.org/wiki/United_Kingdom#Background"
    assert "The Royal Greenwich Observatory in London is the defining point of the Prime Meridian." in (
        by_section["Geography"].text
    )
    assert by_section["Etymology and terminology"].url.endswith("#Etymology_and_terminology")
    # "History" itself has no text of its own before "Background": no empty document for it.
    assert "History" not in by_section
    assert all(d.text.strip() == d.text and "\n\n\n" not in d.text for d in docs)
    extract = mediawiki_server.pages["United Kingdom"].extract
    for boilerplate in ("See also", "Further reading", "External links"):
        assert f"== {boilerplate} ==" in extract
        assert boilerplate not in by_section


@pytest.mark.parametrize(
    ("asked", "final"),
    [("UK", "United Kingdom"), ("Alhazen", "Ibn al-Haytham"), ("SB50", "Super Bowl 50"), ("super_Bowl 50", "Super Bowl 50")],
)
def test_redirect_keeps_final_title(mediawiki_server: FakeMediaWiki, asked: str, final: str) -> None:
    docs = fetch_wikipedia(asked, api_url=mediawiki_server.api_url)

    assert {d.title for d in docs} == {final}
    assert {d.source for d in docs} == {f"wikipedia:{final}"}
    assert docs[0].url == "https://en.wikipedia.org/wiki/" + final.replace(" ", "_")
    assert docs[0].meta["requested_title"] == asked
    assert docs[0].meta["page_id"] == mediawiki_server.pages[final].page_id


def test_anchor_is_heading_with_underscores(mediawiki_server: FakeMediaWiki) -> None:
    docs = fetch_wikipedia("Ibn al-Haytham", api_url=mediawiki_server.api_url)

    problem = next(d for d in docs if d.section == "Book of Optics > Alhazen's problem")
    assert problem.url == "https://en.wikipedia.org/wiki/Ibn_al-Haytham#Alhazen's_problem"
    assert "Sources" not in {d.section for d in docs}
    assert "Further reading > Primary" not in {d.section for d in docs}


def test_missing_page_raises_not_found(mediawiki_server: FakeMediaWiki) -> None:
    with pytest.raises(NotFoundError) as caught:
        fetch_wikipedia("Gobbilygook", api_url=mediawiki_server.api_url)

    assert str(caught.value) == (
        "No Wikipedia page is titled 'Gobbilygook'; check the spelling or the exact title on Wikipedia"
    )
    assert caught.value.source == "Gobbilygook"
    assert mediawiki_server.request_count == 1  # a definite answer is not retried


def test_empty_title_raises_not_found_without_a_request(mediawiki_server: FakeMediaWiki) -> None:
    with pytest.raises(NotFoundError, match="cannot be empty"):
        fetch_wikipedia("   ", api_url=mediawiki_server.api_url)
    assert mediawiki_server.request_count == 0


# ingest.wikipedia silences this at import, but pytest drops filters added while collecting.
@pytest.mark.filterwarnings("ignore::bs4.GuessedAtParserWarning")
def test_disambiguation_raises_ambiguous_with_options(mediawiki_server: FakeMediaWiki) -> None:
    with pytest.raises(AmbiguousTitleError) as caught:
        fetch_wikipedia("Bush", api_url=mediawiki_server.api_url)

    expected = list(mediawiki_server.pages["Bush"].disambiguation_options)
    assert len(expected) == 38
    assert caught.value.options == expected
    message = str(caught.value)
    assert message.startswith("'Bush' is a Wikipedia disambiguation page; ask for one of: ")
    assert "Bush (British band), Bush (Canadian band)" in message
    assert expected[9] in message and expected[10] not in message
    assert message.endswith("(and 28 more)")


def test_no_auto_suggest_swap(mediawiki_server: FakeMediaWiki, monkeypatch: pytest.MonkeyPatch) -> None:
    # Show the trap is real: the package's default auto-suggest turns "Super Bowl" into another page.
    monkeypatch.setattr(wikipedia.wikipedia, "API_URL", mediawiki_server.api_url)
    assert wikipedia.page("Super Bowl").title == "Super Bowl 50"
    mediawiki_server.reset()

    with pytest.raises(NotFoundError, match="No Wikipedia page is titled 'Super Bowl';"):
        fetch_wikipedia("Super Bowl", api_url=mediawiki_server.api_url)
    assert all(r.get("list") != "search" for r in mediawiki_server.requests)


def test_two_503s_then_success_retries_with_backoff(mediawiki_server: FakeMediaWiki, backoff: list[float]) -> None:
    mediawiki_server.fail_next(2, status=503)

    docs = fetch_wikipedia("Super Bowl 50", api_url=mediawiki_server.api_url, retries=3)

    assert docs[0].text.startswith(SUPER_BOWL_FIRST_SENTENCE)
    assert backoff == [0.5, 1.0]
    assert mediawiki_server.request_count == 4


def test_non_json_answer_is_retried(mediawiki_server: FakeMediaWiki, backoff: list[float]) -> None:
    mediawiki_server.garbage_next(1)

    docs = fetch_wikipedia("Oxygen", api_url=mediawiki_server.api_url)

    assert docs[0].title == "Oxygen"
    assert backoff == [0.5]
    assert mediawiki_server.request_count == 3


def test_503_every_time_raises_network_error(mediawiki_server: FakeMediaWiki, backoff: list[float]) -> None:
    mediawiki_server.fail_next(3, status=503)

    with pytest.raises(NetworkError) as caught:
        fetch_wikipedia("Super Bowl 50", api_url=mediawiki_server.api_url, retries=3)

    message = str(caught.value)
    assert "'Super Bowl 50'" in message and mediawiki_server.api_url in message
    assert "HTTP 503 after 3 attempt(s)" in message
    assert mediawiki_server.request_count == 3
    assert backoff == [0.5, 1.0]


def test_hang_beyond_timeout_raises_network_error_quickly(
    mediawiki_server: FakeMediaWiki, backoff: list[float]
) -> None:
    mediawiki_server.hang_next(3, seconds=10.0)

    started = time.monotonic()
    with pytest.raises(NetworkError, match=r"no answer within 0\.5 s after 3 attempt"):
        fetch_wikipedia("Super Bowl 50", api_url=mediawiki_server.api_url, timeout=0.5, retries=3)
    elapsed = time.monotonic() - started

    assert 1.4 <= elapsed < 4.0  # three attempts of 0.5 s each, never the 10 s hang
    assert mediawiki_server.request_count == 3


def test_one_hang_then_success(mediawiki_server: FakeMediaWiki, backoff: list[float]) -> None:
    mediawiki_server.hang_next(1, seconds=10.0)

    docs = fetch_wikipedia("Super Bowl 50", api_url=mediawiki_server.api_url, timeout=0.5)

    assert docs[0].text.startswith(SUPER_BOWL_FIRST_SENTENCE)
    assert backoff == [0.5]


def test_closed_port_raises_network_error(backoff: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/w/api.php"

    with pytest.raises(NetworkError, match=r"connection failed .* after 2 attempt") as caught:
        fetch_wikipedia("Oxygen", api_url=url, timeout=2, retries=2)
    assert url in str(caught.value)
    assert backoff == [0.5]


def test_wrong_api_path_is_not_retried(mediawiki_server: FakeMediaWiki, backoff: list[float]) -> None:
    url = mediawiki_server.api_url.replace("/w/api.php", "/api.php")

    with pytest.raises(NetworkError, match="HTTP 404 after 1 attempt"):
        fetch_wikipedia("Oxygen", api_url=url)
    assert backoff == []


def test_concurrent_calls_reach_their_own_servers(mediawiki_server: FakeMediaWiki) -> None:
    original = (wikipedia.wikipedia.API_URL, wikipedia.wikipedia.requests)
    results: dict[str, str] = {}
    with FakeMediaWiki() as other:
        mediawiki_server.hang_next(1, seconds=0.3)  # keeps the first call busy while the second starts

        def fetch(title: str, url: str) -> None:
            results[title] = fetch_wikipedia(title, api_url=url, timeout=5)[0].title

        threads = [
            threading.Thread(target=fetch, args=("Oxygen", mediawiki_server.api_url)),
            threading.Thread(target=fetch, args=("Prime number", other.api_url)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)

        assert results == {"Oxygen": "Oxygen", "Prime number": "Prime number"}
        assert {r["titles"] for r in mediawiki_server.requests} == {"Oxygen"}
        assert {r["titles"] for r in other.requests} == {"Prime number"}
    assert (wikipedia.wikipedia.API_URL, wikipedia.wikipedia.requests) == original
    assert wikipedia.wikipedia.requests is requests


def test_split_sections_paths_and_repeated_anchors() -> None:
    content = "Lead.\n\n\n== A ==\nText a.\n\n\n=== Notes ===\nn1\n\n\n== B ==\n\n\n=== Notes ===\nn2\n\n\n\n\nmore"

    sections = split_sections(content)

    assert [(s.path, s.anchor, s.text) for s in sections] == [
        ((), "", "Lead."),
        (("A",), "A", "Text a."),
        (("A", "Notes"), "Notes", "n1"),
        (("B",), "B", ""),
        (("B", "Notes"), "Notes_2", "n2\n\nmore"),
    ]
