"""Answers to markdown: linked inline citations, the footer, the sources panel, the API payload."""

from __future__ import annotations

from rag.types import Answer, Chunk, Citation, Hit
from ui.render import answer_markdown, answer_payload, escape_md, sources_markdown


def _hit(**kw) -> Hit:
    fields = dict(id="c1", source="paper.pdf", text="The classifier is a *random* forest [sic].", kind="pdf",
                  title="paper.pdf", start=0, end=40, tokens=12, page=2)
    fields.update(kw)
    return Hit(Chunk(**fields), score=0.8123)


def _link(hit: Hit) -> str | None:
    return f"/files/{hit.source}#page={hit.page}" if hit.chunk.kind == "pdf" else hit.url


PDF_HIT = _hit()
WIKI_HIT = _hit(id="c2", source="wikipedia:Python (programming language)", kind="wikipedia",
                title="Python (programming language)", page=None, section="History",
                url="https://en.wikipedia.org/wiki/Python_(programming_language)#History",
                text="Python was conceived in the late 1980s.")


def _answer(**kw) -> Answer:
    fields = dict(text="It is a random forest [1], conceived long ago [2]. Not [3].",
                  citations=[Citation(1, PDF_HIT), Citation(2, WIKI_HIT)], sources=[PDF_HIT, WIKI_HIT],
                  query="classifier used", generator="extract")
    fields.update(kw)
    return Answer(**fields)


def test_inline_citations_link_to_pdf_page_and_wikipedia_section() -> None:
    md = answer_markdown(_answer(), "classifier used", link=_link)
    assert "[\\[1\\]](/files/paper.pdf#page=2)" in md
    assert "[\\[2\\]](https://en.wikipedia.org/wiki/Python_%28programming_language%29#History)" in md
    assert "Not \\[3\\]." in md  # an uncited number stays plain text
    assert "Answered by extract" in md and "searched for" not in md


def test_footer_shows_the_retrieval_query_only_when_it_differs() -> None:
    md = answer_markdown(_answer(), "and what classifier do they use?", link=_link)
    assert "searched for: “classifier used”" in md


def test_sources_panel_has_title_place_passage_score_link() -> None:
    md = sources_markdown(_answer(), link=_link)
    assert "**[1] paper.pdf** — page 2" in md
    assert "similarity 0.812" in md
    assert "[open PDF at page 2](/files/paper.pdf#page=2)" in md
    assert "> The classifier is a \\*random\\* forest \\[sic\\]." in md
    assert "**[2] Python (programming language)** — § History" in md
    assert "[open on Wikipedia](https://en.wikipedia.org/wiki/Python_%28programming_language%29#History)" in md


def test_unsupported_citation_is_flagged() -> None:
    answer = _answer(citations=[Citation(1, PDF_HIT, supported=False, support=0.1), Citation(2, WIKI_HIT, True, 0.9)])
    md = sources_markdown(answer, link=_link)
    assert md.count("may not support") == 1 and md.index("may not support") < md.index("[2]")


def test_refusal_lists_retrieved_passages() -> None:
    answer = _answer(text="The indexed documents don't answer this.", citations=[], refused=True)
    assert "none cited" in sources_markdown(answer, link=_link)
    assert "do not answer" in answer_markdown(answer, "q", link=_link)
    assert "No passages" in sources_markdown(_answer(citations=[], sources=[]))


def test_document_text_cannot_inject_markup() -> None:
    # (the URL's ":" is escaped too now: see the next test)
    assert escape_md("<script>x</script> [a](http://evil)") == "\\<script\\>x\\</script\\> \\[a\\](http\\://evil)"


def test_urls_in_document_text_are_shown_as_text_not_links() -> None:
    text = "See http://evil.example/x, HTTPS://evil.example, www.evil.example or mail bob@evil.example."
    escaped = escape_md(text)
    assert escaped == ("See http\\://evil.example/x, HTTPS\\://evil.example, www\\.evil.example or mail "
                       "bob\\@evil.example.")
    hit = _hit(id="t1", source="notes.txt", kind="text", title="notes.txt", text=text, page=None)
    answer = _answer(text=f"{text} [1]", citations=[Citation(number=1, hit=hit, supported=True)], sources=[hit])
    for md in (answer_markdown(answer, "q", link=lambda h: None), sources_markdown(answer, link=lambda h: None)):
        assert "p://" not in md and "S://" not in md and "www.e" not in md and "b@e" not in md


def test_payload_adds_links_and_markdown() -> None:
    data = answer_payload(_answer(), "q", link=_link)
    assert data["done"] is True
    assert [c["link"] for c in data["citations"]] == ["/files/paper.pdf#page=2", WIKI_HIT.url]
    assert data["citations"][0]["page"] == 2 and data["citations"][0]["source"] == "paper.pdf"
    assert data["sources"][1]["link"] == WIKI_HIT.url
    assert data["markdown"].startswith("It is a random forest") and "### Sources" in data["sources_markdown"]


def test_times_sizes_and_generators_in_plain_words() -> None:
    from datetime import datetime, timezone

    from rag.generate import plain_name
    from ui.render import human_size, relative_time

    now = datetime(2026, 3, 12, 12, 0, 0, tzinfo=timezone.utc)
    assert relative_time("2026-03-12T11:59:50+00:00", now) == "just now"
    assert relative_time("2026-03-12T11:57:00+00:00", now) == "3 minutes ago"
    assert relative_time("2026-03-12T11:59:00", now) == "1 minute ago"  # naive: UTC
    assert relative_time("2026-03-12T07:00:00+00:00", now) == "5 hours ago"
    assert relative_time("2026-03-11T10:00:00+00:00", now) == "yesterday"
    assert relative_time("2025-12-01T10:00:00+00:00", now) == "1 Dec 2025"
    assert relative_time("not a time", now) == "not a time"
    assert [human_size(n) for n in (None, 812, 14_336, 3_355_443)] == ["", "812 bytes", "14 KB", "3.2 MB"]
    assert plain_name("extractive") == "extracts from your documents"
    assert plain_name("smollm2:gptq") == "SmolLM2 135M (gptq; tiny, slow on a CPU)"
    assert plain_name("gptq:TheBloke/Llama-2-7B-Chat-GPTQ") == "Llama 2 7B Chat GPTQ"
    assert plain_name("llamacpp:tinyllama.Q4_K_M.gguf") == "tinyllama.Q4_K_M via llama.cpp"
    assert plain_name("openai:qwen2.5@http://127.0.0.1:8080/v1") == "qwen2.5 via an OpenAI-compatible server"
    md = answer_markdown(_answer(generator="extractive"), "classifier used")
    assert "Answered by extracts from your documents" in md and "extractive" not in md


def test_errors_name_the_fix_of_the_surface_they_are_shown_on() -> None:
    from rag.errors import EncryptedPDFError, user_message
    from ingest.pdf import PASSWORD_HINTS

    exc = EncryptedPDFError("a.pdf", "a.pdf is encrypted", hints=PASSWORD_HINTS)
    assert str(exc) == user_message(exc) == user_message(exc, "cli")
    assert str(exc) == "a.pdf is encrypted; pass its password with --password"
    assert user_message(exc, "page") == ("a.pdf is encrypted; type its password in the Password field and click "
                                         "Add files again")
    assert "--" not in user_message(exc, "api") and "'password'" in user_message(exc, "api")
