"""The chunker over real corpora: never over MiniLM's limit, nothing lost, sentence-aware."""

from __future__ import annotations

import json

import pytest

from ingest.chunk import ChunkConfig, chunk_documents
from ingest.pdf import read_pdf
from rag.errors import SourceError
from rag.types import Document
from tests.conftest import require_shared


def _squad_docs() -> list[Document]:
    data = json.loads(require_shared("squad", "squad-dev-v1.1-half-a.json").read_text())
    return [
        Document(source=a["title"], text=p["context"], kind="wikipedia", title=a["title"], section=f"p{i}")
        for a in data["data"]
        for i, p in enumerate(a["paragraphs"])
    ]


def _wikitext_docs() -> list[Document]:
    from tests.fakes.mediawiki import build_pages

    require_shared("wiki", "wikitext")
    return [Document(source=t, text=p.extract, kind="wikipedia", title=t) for t, p in build_pages().items() if p.extract]


def _pdf_docs() -> list[Document]:
    docs = []
    for path in sorted(require_shared("pdfs").rglob("*.pdf")):
        try:
            docs += read_pdf(path)
        except SourceError:
            pass
    return docs


@pytest.fixture(scope="module")
def real_corpora() -> list[Document]:
    """SQuAD paragraphs, Wikipedia pages and every shared PDF (read once: the PDFs take seconds)."""
    return _squad_docs() + _wikitext_docs() + _pdf_docs()


@pytest.mark.parametrize("size,overlap", [(254, 0), (200, 32), (64, 16)])
def test_no_chunk_of_the_real_corpora_exceeds_the_limit(embedder, real_corpora: list[Document], size: int,
                                                        overlap: int) -> None:
    docs = real_corpora
    chunks = chunk_documents(docs, embedder.token_offsets, ChunkConfig(size=size, overlap=overlap, limit=254))
    assert len(chunks) > len(docs) // 2
    # Count independently, with the tokenizer the model itself reads through.
    counts = embedder.count_tokens([c.text for c in chunks])
    assert max(counts) <= embedder.max_tokens == 254
    assert all(c.tokens == n for c, n in zip(chunks, counts))
    # The size is a target the chunker honours, not just the hard limit.
    assert sum(n <= size for n in counts) / len(counts) > 0.99


def test_chunks_cover_every_character_and_point_back_into_their_document(embedder) -> None:
    docs = _wikitext_docs()[:4]
    chunks = chunk_documents(docs, embedder.token_offsets, ChunkConfig(size=120, overlap=24))
    by_source = {d.source: d for d in docs}
    covered: dict[str, set[int]] = {d.source: set() for d in docs}
    for c in chunks:
        doc = by_source[c.source]
        assert doc.text[c.start : c.end] == c.text
        covered[c.source].update(range(c.start, c.end))
    for d in docs:
        missing = [i for i, ch in enumerate(d.text) if not ch.isspace() and i not in covered[d.source]]
        assert missing == [], f"{d.source}: {len(missing)} characters never chunked"


def test_chunks_end_at_sentence_boundaries_and_overlap_by_whole_sentences(embedder) -> None:
    sentences = [f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(60)]
    doc = Document(source="s", text=" ".join(sentences), kind="text", title="s")
    chunks = chunk_documents([doc], embedder.token_offsets, ChunkConfig(size=60, overlap=15))
    assert len(chunks) > 5
    for c in chunks:
        assert c.text.startswith("Sentence number") and c.text.endswith("detail.")
        assert c.tokens <= 60
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end, "consecutive chunks should share the overlap sentences"


def test_a_sentence_longer_than_the_size_is_cut_at_word_starts(embedder) -> None:
    words = " ".join(f"unpunctuated{i}" for i in range(900))
    doc = Document(source="long", text=words, kind="text", title="long")
    chunks = chunk_documents([doc], embedder.token_offsets, ChunkConfig(size=100, overlap=10))
    assert len(chunks) >= 10
    for c in chunks:
        assert c.tokens <= 100
        assert c.start == 0 or doc.text[c.start - 1] == " "


def test_chunk_ids_are_stable_and_depend_on_content(embedder) -> None:
    doc = Document(source="a.pdf", text="One. Two. Three.", kind="pdf", title="a.pdf", page=1)
    first = chunk_documents([doc], embedder.token_offsets)
    again = chunk_documents([doc], embedder.token_offsets)
    changed = chunk_documents([Document(**{**doc.__dict__, "text": "One. Two. Four."})], embedder.token_offsets)
    assert [c.id for c in first] == [c.id for c in again]
    assert first[0].id != changed[0].id
    assert first[0].page == 1 and first[0].title == "a.pdf"
