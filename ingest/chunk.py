"""Document -> Chunk[]: sentence-aware, token-aware, never over the embedder's limit.

Pure apart from the tokenizer it is given. Sizes are counted in the embedder's
own word pieces, because MiniLM silently drops everything past 256 of them.

What is not content (:mod:`ingest.clean`: repeated page headers and footers, page numbers,
table-of-contents lines) is left out of the sentences that chunks are cut from, so no chunk
starts or ends with it, and a chunk too short to answer anything is not indexed when its
source has other chunks. Chunk offsets still point into the unchanged page text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from ingest import clean
from rag.settings import EMBEDDER_MAX_TOKENS, Settings
from rag.text import sentence_spans
from rag.types import Chunk, Document, chunk_id

OffsetsFn = Callable[[Sequence[str]], list[list[tuple[int, int]]]]


@dataclass(frozen=True)
class ChunkConfig:
    """How to cut: target size and overlap in word pieces, and the hard limit."""

    size: int = Settings.chunk_tokens
    overlap: int = Settings.chunk_overlap
    limit: int = EMBEDDER_MAX_TOKENS


def chunk_documents(docs: Sequence[Document], offsets: OffsetsFn, config: ChunkConfig = ChunkConfig()) -> list[Chunk]:
    """Cut documents into chunks of at most ``config.size`` word pieces.

    Chunks end at sentence boundaries where they can; a sentence longer than the
    size is cut at word boundaries. Consecutive chunks share up to
    ``config.overlap`` word pieces of whole sentences.

    Args:
        docs: the documents; chunks never cross from one to the next.
        offsets: the embedder's tokenizer, as character spans of word pieces per text.
        config: size, overlap and hard limit in word pieces.

    Returns:
        The chunks, in document order, each within ``config.limit`` word pieces.
    """
    docs = [d for d in docs if d.text.strip()]
    all_offsets = offsets([d.text for d in docs])
    repeated = clean.repeated_edge_lines(docs)
    chunks: list[Chunk] = []
    for doc, toks in zip(docs, all_offsets):
        # Page furniture is a PDF's: Wikipedia and text sources are chunked whole.
        segments = clean.content_segments(doc.text, clean.noise_spans(doc, repeated)) if doc.kind == "pdf" else None
        for start, end in _cut(doc.text, toks, config, segments):
            chunks.append(_make_chunk(doc, start, end, 0))
    # A PDF's fragments (a caption, a figure label) are not indexed on their own, unless nothing else is.
    substantial = [c for c in chunks if c.kind != "pdf" or clean.words(c.text) >= clean.MIN_CHUNK_WORDS]
    chunks = substantial or chunks
    # Re-count each chunk on its own text: the hard limit is a promise, not an estimate.
    counts = [len(t) for t in offsets([c.text for c in chunks])]
    result: list[Chunk] = []
    for chunk, n in zip(chunks, counts):
        if n <= config.limit:
            result.append(replace(chunk, tokens=n))
        else:
            result.extend(_split_hard(chunk, offsets, config.limit))
    return result


def _cut(text: str, toks: list[tuple[int, int]], config: ChunkConfig,
         segments: Sequence[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """Character spans of the chunks of one document, cut from the sentences of its content ``segments``."""
    size = min(config.size, config.limit)
    units: list[tuple[int, int, int]] = []  # (start, end, tokens) of sentences or sentence pieces
    ti = 0
    if segments is None:
        segments = [(0, len(text))]
    sentences = [(a + s, a + e) for a, b in segments for s, e in sentence_spans(text[a:b])]
    for s, e in sentences:
        while ti < len(toks) and toks[ti][0] < s:  # word pieces of a noise line between segments
            ti += 1
        first = ti
        while ti < len(toks) and toks[ti][0] < e:
            ti += 1
        sentence_toks = toks[first:ti]
        if len(sentence_toks) <= size:
            units.append((s, e, len(sentence_toks)))
        else:
            units.extend(_split_long(text, s, e, sentence_toks, size, config.overlap))
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units) and total + units[j][2] <= size:
            total += units[j][2]
            j += 1
        j = max(j, i + 1)
        spans.append((units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        # Step back over whole trailing sentences that fit in the overlap.
        back, k = 0, j
        while k - 1 > i and back + units[k - 1][2] <= config.overlap:
            back += units[k - 1][2]
            k -= 1
        i = k
    return spans


def _split_long(
    text: str, s: int, e: int, toks: list[tuple[int, int]], size: int, overlap: int
) -> list[tuple[int, int, int]]:
    """Cut one over-long sentence into windows of at most ``size`` word pieces at word starts."""
    pieces: list[tuple[int, int, int]] = []
    i = 0
    n = len(toks)
    while i < n:
        j = min(i + size, n)
        if j < n:
            # Back off to a word start so no word piece is cut from its word.
            k = j
            while k > i + size // 2 and not _starts_word(text, toks[k][0]):
                k -= 1
            j = k if k > i + size // 2 else j
        pieces.append((toks[i][0], toks[j - 1][1], j - i))
        if j >= n:
            break
        i = max(j - overlap, i + 1) if overlap else j
        while i < j and not _starts_word(text, toks[i][0]):
            i += 1
    return pieces


def _starts_word(text: str, pos: int) -> bool:
    return pos == 0 or text[pos - 1].isspace()


def _make_chunk(doc: Document, start: int, end: int, tokens: int) -> Chunk:
    body = doc.text[start:end]
    return Chunk(
        id=chunk_id(doc.source, doc.section, doc.page, start, body, doc.collection),
        source=doc.source,
        text=body,
        kind=doc.kind,
        title=doc.title,
        start=start,
        end=end,
        tokens=tokens,
        url=doc.url,
        section=doc.section,
        page=doc.page,
        collection=doc.collection,
    )


def _split_hard(chunk: Chunk, offsets: OffsetsFn, limit: int) -> list[Chunk]:
    """Last resort for a chunk whose own tokenization exceeds the limit: cut by word pieces."""
    toks = offsets([chunk.text])[0]
    step = max(limit - 8, 1)
    out = []
    for i in range(0, len(toks), step):
        part = toks[i : i + step]
        start, end = chunk.start + part[0][0], chunk.start + part[-1][1]
        body = chunk.text[part[0][0] : part[-1][1]]
        out.append(
            replace(chunk, id=chunk_id(chunk.source, chunk.section, chunk.page, start, body, chunk.collection),
                    text=body, start=start, end=end, tokens=len(part))
        )
    return out
