"""Dataclasses that cross module boundaries: Document, Chunk, Hit, Citation, Answer."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping

from rag.settings import DEFAULT_COLLECTION

SourceKind = Literal["pdf", "wikipedia", "text", "docx", "html"]


@dataclass(frozen=True)
class Document:
    """One unit of a source that chunks never cross: a PDF page, a Wikipedia section, a text.

    ``source`` is the stable name of the whole source (``report.pdf``,
    ``wikipedia:Alan Turing``); every document of one source shares it, and
    ingesting a source replaces all chunks that carry its name in its ``collection``.
    """

    source: str
    text: str
    kind: SourceKind
    title: str
    url: str | None = None
    section: str | None = None
    page: int | None = None
    meta: Mapping[str, str | int] = field(default_factory=dict)
    collection: str = DEFAULT_COLLECTION

    @classmethod
    def from_text(cls, name: str, text: str, *, title: str | None = None, url: str | None = None) -> "Document":
        """A plain text as one document: the source is ``name``, the title ``title`` or ``name``.

        Args:
            name: the source name (a file name, or the name given to ``add_text``/``/api/documents``).
            text: the whole text.
            title: how citations name it (``name`` when None or empty).
            url: a link for citations.
        """
        return cls(source=name, text=text, kind="text", title=title or name, url=url)


def chunk_id(source: str, section: str | None, page: int | None, start: int, text: str,
             collection: str = DEFAULT_COLLECTION) -> str:
    """Derive a chunk's id from its content, place and collection, so ingesting twice changes nothing.

    The same text in two collections has two ids, so each collection holds its own copy. The
    default collection's ids leave the name out: they are the ids of stores made before
    collections, which therefore migrate without re-embedding.

    Args:
        source: the source name.
        section: the section heading, if any.
        page: the 1-based page number, if any.
        start: character offset of the chunk in its document.
        text: the chunk text.
        collection: the collection the chunk belongs to.

    Returns:
        A 32-character hex digest.
    """
    parts = [source, section or "", str(page or ""), str(start), text]
    if collection != DEFAULT_COLLECTION:
        parts.insert(0, f"collection={collection}")
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def source_key(collection: str, source: str) -> str:
    """One string naming a source within its collection (journal manifests, writes in progress).

    The default collection's key is the bare source name, as before collections.
    """
    return source if collection == DEFAULT_COLLECTION else f"{collection}\x1f{source}"


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough for the embedder, with where it came from."""

    id: str
    source: str
    text: str
    kind: SourceKind
    title: str
    start: int
    end: int
    tokens: int
    url: str | None = None
    section: str | None = None
    page: int | None = None
    collection: str = DEFAULT_COLLECTION

    def metadata(self) -> dict[str, str | int]:
        """Flat metadata for the vector store (no None values: Chroma rejects them)."""
        meta: dict[str, str | int] = {
            "collection": self.collection,
            "source": self.source,
            "kind": self.kind,
            "title": self.title,
            "start": self.start,
            "end": self.end,
            "tokens": self.tokens,
        }
        for key in ("url", "section", "page"):
            value = getattr(self, key)
            if value is not None:
                meta[key] = value
        return meta

    @classmethod
    def from_metadata(cls, id: str, text: str, meta: Mapping[str, Any]) -> "Chunk":
        """Rebuild a chunk from what :meth:`metadata` stored."""
        return cls(
            id=id,
            source=str(meta["source"]),
            text=text,
            kind=meta.get("kind", "text"),
            title=str(meta.get("title", meta["source"])),
            start=int(meta.get("start", 0)),
            end=int(meta.get("end", len(text))),
            tokens=int(meta.get("tokens", 0)),
            url=meta.get("url"),
            section=meta.get("section"),
            page=int(meta["page"]) if meta.get("page") is not None else None,
            collection=str(meta.get("collection") or DEFAULT_COLLECTION),
        )


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its cosine similarity to the query (1.0 = same direction)."""

    chunk: Chunk
    score: float

    @property
    def text(self) -> str:
        return self.chunk.text

    @property
    def source(self) -> str:
        return self.chunk.source

    @property
    def title(self) -> str:
        return self.chunk.title

    @property
    def kind(self) -> SourceKind:
        return self.chunk.kind

    @property
    def url(self) -> str | None:
        return self.chunk.url

    @property
    def section(self) -> str | None:
        return self.chunk.section

    @property
    def page(self) -> int | None:
        return self.chunk.page

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of a hit (documented in the README)."""
        c = self.chunk
        return {
            "id": c.id,
            "score": round(self.score, 6),
            "text": c.text,
            "source": c.source,
            "kind": c.kind,
            "title": c.title,
            "url": c.url,
            "section": c.section,
            "page": c.page,
            "start": c.start,
            "end": c.end,
            "collection": c.collection,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Hit":
        """Rebuild a hit from :meth:`to_dict` (e.g. an HTTP API response); ``tokens`` is not carried, so 0."""
        text = str(data["text"])
        end = data.get("end")
        page = data.get("page")
        chunk = Chunk(id=str(data["id"]), source=str(data["source"]), text=text,
                      kind=data.get("kind") or "text", title=str(data.get("title") or data["source"]),
                      start=int(data.get("start") or 0), end=int(end) if end is not None else len(text), tokens=0,
                      url=data.get("url"), section=data.get("section"), page=int(page) if page is not None else None,
                      collection=str(data.get("collection") or DEFAULT_COLLECTION))
        return cls(chunk=chunk, score=float(data["score"]))


@dataclass(frozen=True)
class SourceInfo:
    """What the store holds for one source."""

    source: str
    kind: SourceKind
    title: str
    chunks: int
    added_at: str
    url: str | None = None
    collection: str = DEFAULT_COLLECTION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SourceInfo":
        """Rebuild from :meth:`to_dict`."""
        return cls(source=str(data["source"]), kind=data.get("kind") or "text", title=str(data.get("title") or ""),
                   chunks=int(data.get("chunks") or 0), added_at=str(data.get("added_at") or ""), url=data.get("url"),
                   collection=str(data.get("collection") or DEFAULT_COLLECTION))


@dataclass(frozen=True)
class CollectionInfo:
    """A collection: its name and how many sources and chunks it holds."""

    name: str
    sources: int
    chunks: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CollectionInfo":
        """Rebuild from :meth:`to_dict`."""
        return cls(name=str(data["name"]), sources=int(data.get("sources") or 0), chunks=int(data.get("chunks") or 0))


@dataclass
class IngestReport:
    """What one ingestion run did, per source."""

    added: dict[str, int] = field(default_factory=dict)
    replaced: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    # The exceptions behind ``skipped``, so the Python API can re-raise the precise type.
    errors: dict[str, Exception] = field(default_factory=dict, repr=False, compare=False)

    @property
    def chunks_written(self) -> int:
        return sum(self.added.values()) + sum(self.replaced.values())

    def merge(self, other: "IngestReport") -> None:
        """Fold another report into this one."""
        self.added.update(other.added)
        self.replaced.update(other.replaced)
        self.unchanged.update(other.unchanged)
        self.skipped.update(other.skipped)
        self.errors.update(other.errors)

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "replaced": self.replaced, "unchanged": self.unchanged, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IngestReport":
        """Rebuild from :meth:`to_dict` (``errors`` is not carried)."""
        return cls(added=dict(data.get("added") or {}), replaced=dict(data.get("replaced") or {}),
                   unchanged=dict(data.get("unchanged") or {}), skipped=dict(data.get("skipped") or {}))


@dataclass(frozen=True)
class Citation:
    """A source an answer cites, numbered as it appears in the answer text."""

    number: int
    hit: Hit
    supported: bool | None = None
    support: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "supported": self.supported, "support": self.support, **self.hit.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Citation":
        """Rebuild from :meth:`to_dict`."""
        return cls(number=int(data["number"]), hit=Hit.from_dict(data), supported=data.get("supported"),
                   support=data.get("support"))


@dataclass(frozen=True)
class Answer:
    """A generated (or extracted) answer with its citations and the evidence it saw."""

    text: str
    citations: list[Citation]
    sources: list[Hit]
    query: str
    generator: str
    prompt_format: str | None = None
    refused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "sources": [h.to_dict() for h in self.sources],
            "query": self.query,
            "generator": self.generator,
            "prompt_format": self.prompt_format,
            "refused": self.refused,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Answer":
        """Rebuild an answer from :meth:`to_dict` (e.g. the HTTP API's ``/api/ask`` response)."""
        return cls(text=str(data["answer"]), citations=[Citation.from_dict(c) for c in data.get("citations") or []],
                   sources=[Hit.from_dict(h) for h in data.get("sources") or []], query=str(data.get("query") or ""),
                   generator=str(data.get("generator") or ""), prompt_format=data.get("prompt_format"),
                   refused=bool(data.get("refused")))


@dataclass(frozen=True)
class Evidence:
    """How strongly retrieved chunks bear on a question (:func:`rag.refuse.assess`); refused below a threshold."""

    score: float
    chunk: float  # the best chunk's cosine to the question
    coverage: float  # IDF-weighted share of the question's words that the best sentence holds
    sentence: float = 0.0  # the best single sentence's cosine to the question
    chunk_coverage: float = 0.0  # the same share for the best single chunk (text, title, section)
    phrases: float = 0.0  # the largest share of the question's word pairs that one sentence holds as pairs
    answerable: float = 0.0  # the answerability reader's best logit: one of the closest sentences says what was asked

    def as_dict(self) -> dict[str, float]:
        return {"score": self.score, "chunk": self.chunk, "coverage": self.coverage, "sentence": self.sentence,
                "chunk_coverage": self.chunk_coverage, "phrases": self.phrases, "answerable": self.answerable}


@dataclass(frozen=True)
class PageRect:
    """A rectangle on a displayed page, as fractions of its width and height from the top left (0..1).

    The viewer (``rag.http.viewer``) draws a cited passage's highlight with these, so the
    boxes fit the page image at any size.
    """

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class Progress:
    """How far the ingestion of a source has come, for a caller that shows it (the page's upload bar).

    ``stage`` is ``reading`` (``done`` of ``total`` pages of a PDF read) or ``embedding``
    (``done`` of ``total`` chunks embedded and written).
    """

    source: str
    stage: Literal["reading", "embedding"]
    done: int
    total: int


@dataclass(frozen=True)
class ConversationTurn:
    """One question and its answer in a saved conversation.

    ``answer`` is the text a follow-up is resolved against; ``markdown`` the answer as the page
    showed it (linked citations, the footer), so a reopened chat looks as it did;
    ``collections`` the collections it was asked within (empty: all), so a reopened chat asks
    them again.
    """

    question: str
    answer: str
    markdown: str = ""
    collections: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversation:
    """A saved chat: its turns, oldest first (``rag.conversations_store``)."""

    id: str
    title: str
    created_at: str
    updated_at: str
    turns: tuple[ConversationTurn, ...] = ()

    @property
    def history(self) -> list[tuple[str, str]]:
        """The (question, answer) pairs ``RAG.ask`` takes as the follow-up context."""
        return [(t.question, t.answer) for t in self.turns]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Conversation":
        """Rebuild from :meth:`to_dict`."""
        return cls(id=str(data["id"]), title=str(data.get("title") or ""), created_at=str(data.get("created_at") or ""),
                   updated_at=str(data.get("updated_at") or ""),
                   turns=tuple(ConversationTurn(str(t["question"]), str(t["answer"]), str(t.get("markdown") or ""),
                                                tuple(str(c) for c in t.get("collections") or ()))
                               for t in data.get("turns") or []))
