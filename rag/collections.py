"""Collections: named groups of sources, so a question can ask only some documents.

Every source belongs to exactly one collection (:data:`rag.settings.DEFAULT_COLLECTION`,
``default``, when none is named). A source is identified by its collection *and* its name:
``report.pdf`` in ``team-a`` and ``report.pdf`` in ``team-b`` are two sources with their
own chunks (the collection is part of each chunk id, :func:`rag.types.chunk_id`), their own
stored file and their own journal entry, so writing one never touches the other. Ingesting
the same thing twice into one collection still changes nothing.

A search, an answer, a follow-up and the refusal's word statistics are restricted to the
asked collections inside the stores themselves (a Chroma ``where`` filter, a tantivy term
filter), never by filtering results afterwards, so another collection's chunks cannot
surface, even as padding of a short list.

This module holds the naming rule (:func:`check_name`), the reading of a ``collection``
argument (:func:`read_scope`, :func:`write_target`), the listing (:func:`summarize`) and the
scoped view :class:`Collection` that ``RAG.collection(name)`` returns.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from rag.errors import InvalidCollectionError, UnknownCollectionError
from rag.settings import DEFAULT_COLLECTION, Settings
from rag.types import CollectionInfo, SourceInfo

if TYPE_CHECKING:
    from pathlib import Path

    from rag.service import RAG
    from rag.types import Answer, Hit, IngestReport

# Lower-case letters, digits, '-' and '_', starting with a letter or digit: safe as a folder
# name (stored files live in files/<collection>/), in a URL path and in a shell.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")

Names = str | Sequence[str] | None


def check_name(name: str, settings: Settings | None = None) -> str:
    """``name`` when it is a valid collection name.

    Args:
        name: the name given.
        settings: for ``max_collection_chars`` (the defaults when None).

    Returns:
        The name, unchanged.

    Raises:
        InvalidCollectionError: one sentence naming the value and the rule.
    """
    limit = (settings or Settings).max_collection_chars
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > limit:
        shown = repr(name if not isinstance(name, str) or len(name) <= 40 else name[:37] + "...")
        raise InvalidCollectionError(
            f"The collection name {shown} is not valid: use 1 to {limit} lower-case letters, digits, '-' or '_', "
            f"starting with a letter or digit (e.g. team-a)")
    return name


def names_of(collection: Names, settings: Settings | None = None) -> tuple[str, ...] | None:
    """A ``collection`` argument (one name, several, or None for all) as checked, distinct names, or None."""
    if collection is None:
        return None
    names = [collection] if isinstance(collection, str) else list(collection)
    if not names:
        return None
    limit = (settings or Settings).max_collection_filters
    if len(names) > limit:
        raise InvalidCollectionError(f"{len(names)} collections were named; name at most {limit} at once, or raise "
                                     "RAG_MAX_COLLECTION_FILTERS")
    return tuple(dict.fromkeys(check_name(n, settings) for n in names))


def read_scope(collection: Names, infos: Sequence[SourceInfo], settings: Settings | None = None
               ) -> tuple[str, ...] | None:
    """The collections a search or answer is restricted to: None (all), or names that exist.

    Args:
        collection: what the caller asked (None or empty: every collection).
        infos: the sources the store holds (``Store.sources()``), which say which collections exist.
        settings: the name limits.

    Raises:
        InvalidCollectionError: a name breaks the rule.
        UnknownCollectionError: a name holds no source; the message lists the existing ones.
    """
    names = names_of(collection, settings)
    if names is None:
        return None
    existing = sorted({i.collection for i in infos})
    missing = [n for n in names if n not in existing]
    if missing:
        raise UnknownCollectionError(unknown_message(missing[0], existing))
    return names


def unknown_message(name: str, existing: Iterable[str]) -> str:
    """The sentence for a collection that does not exist, listing the ones that do."""
    existing = list(existing)
    listed = ", ".join(existing) if existing else "none yet (ingest with --collection NAME, or collection=...)"
    return f"There is no collection named {name!r}; existing collections: {listed}"


def write_target(collection: str | None, settings: Settings | None = None) -> str:
    """The one collection a write goes into: ``collection`` checked, or the default one."""
    if collection is None or collection == "":
        return DEFAULT_COLLECTION
    if not isinstance(collection, str):
        raise InvalidCollectionError(f"A source goes into one collection; name one, not {len(collection)}")
    return check_name(collection, settings)


def summarize(infos: Sequence[SourceInfo]) -> list[CollectionInfo]:
    """Every collection that holds a source, with its source and chunk counts, by name."""
    agg: dict[str, list[int]] = {}
    for info in infos:
        counts = agg.setdefault(info.collection, [0, 0])
        counts[0] += 1
        counts[1] += info.chunks
    return [CollectionInfo(name, n, chunks) for name, (n, chunks) in sorted(agg.items())]


class Collection:
    """``RAG.collection(name)``: the facade with every read and write bound to one collection.

    Example:
        >>> team_a = RAG("data").collection("team-a")
        >>> team_a.add_text("The deadline is March 3.", name="plan.txt")
        >>> team_a.ask("When is the deadline?").citations[0].hit.chunk.collection
        'team-a'
    """

    def __init__(self, rag: "RAG", name: str) -> None:
        """Args:
            rag: the facade.
            name: the collection (it need not exist until something is written into it).
        """
        self.rag = rag
        self.name = check_name(name, rag.settings)

    def __repr__(self) -> str:
        return f"Collection({self.name!r})"

    def search(self, query: str, k: int | None = None, *, sources: Sequence[str] | None = None) -> "list[Hit]":
        """``RAG.search`` within this collection."""
        return self.rag.search(query, k, sources=sources, collection=self.name)

    def ask(self, question: str, history: Sequence[tuple[str, str]] | None = None, *, k: int | None = None,
            sources: Sequence[str] | None = None) -> "Answer":
        """``RAG.ask`` within this collection (follow-ups and citations stay inside it)."""
        return self.rag.ask(question, history, k=k, sources=sources, collection=self.name)

    def ask_stream(self, question: str, history: Sequence[tuple[str, str]] | None = None, *,
                   k: int | None = None, sources: Sequence[str] | None = None) -> "Iterator[str | Answer]":
        """``RAG.ask_stream`` within this collection."""
        return self.rag.ask_stream(question, history, k=k, sources=sources, collection=self.name)

    def add_pdf(self, path: "str | Path", *, password: str | None = None) -> "IngestReport":
        """``RAG.add_pdf`` into this collection."""
        return self.rag.add_pdf(path, password=password, collection=self.name)

    def add_files(self, paths: "Sequence[str | Path]", *, password: str | None = None,
                  progress: bool = False) -> "IngestReport":
        """``RAG.add_files`` into this collection."""
        return self.rag.add_files(paths, password=password, progress=progress, collection=self.name)

    def add_text(self, text: str, *, name: str, title: str | None = None, url: str | None = None) -> "IngestReport":
        """``RAG.add_text`` into this collection."""
        return self.rag.add_text(text, name=name, title=title, url=url, collection=self.name)

    def add_wikipedia(self, *titles: str, progress: bool = False) -> "IngestReport":
        """``RAG.add_wikipedia`` into this collection."""
        return self.rag.add_wikipedia(*titles, progress=progress, collection=self.name)

    def upload(self, path: "str | Path", *, name: str | None = None, password: str | None = None) -> "IngestReport":
        """``RAG.upload`` into this collection."""
        return self.rag.upload(path, name=name, password=password, collection=self.name)

    def sources(self) -> list[SourceInfo]:
        """The sources of this collection."""
        return self.rag.sources(collection=self.name)

    def delete(self, source: str) -> int:
        """Delete one source of this collection; returns its chunk count."""
        return self.rag.delete(source, collection=self.name)

    def drop(self) -> CollectionInfo:
        """Delete the whole collection (``RAG.delete_collection``)."""
        return self.rag.delete_collection(self.name)
