"""The facade: one object that ingests, searches, lists and deletes over one data directory."""

from __future__ import annotations

import dataclasses
import logging
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from rag.collections import Collection, Names, read_scope, summarize, unknown_message, write_target
from rag.errors import NotFoundError, SourceError, UnknownCollectionError, some_of
from rag.settings import DEFAULT_COLLECTION, Settings
from rag.types import CollectionInfo, Document, Hit, IngestReport, Progress, SourceInfo, source_key

if TYPE_CHECKING:
    from rag.types import Answer

log = logging.getLogger(__name__)

EXTRACTIVE_NOTICE = "No language model is configured: answers are extracts from your documents."


class RAG:
    """Question answering over your own documents.

    Every source is in a collection (``default`` unless one is named); every read takes a
    ``collection`` (one name, a list, or None for all) and every write one name
    (``rag.collections``); ``rag.collection("team-a")`` is a view bound to one.

    Example:
        >>> rag = RAG(data_dir="data")
        >>> rag.add_pdf("paper.pdf")
        >>> rag.add_pdf("plan.pdf", collection="team-a")
        >>> for hit in rag.search("what classifier is used?", k=3, collection="team-a"):
        ...     print(hit.score, hit.title, hit.page)
    """

    def __init__(self, data_dir: str | Path | None = None, *, settings: Settings | None = None, **overrides) -> None:
        """Open the store in ``data_dir`` (created on first write).

        Args:
            data_dir: where the store lives; ``RAG_DATA_DIR`` or ``./data`` when omitted.
            settings: a full settings object; environment and defaults when omitted.
            **overrides: single settings to change, e.g. ``chunk_tokens=128``.
        """
        base = settings or Settings.from_env()
        changes = {k: v for k, v in overrides.items() if v is not None}
        if data_dir is not None:
            changes["data_dir"] = Path(data_dir)
        self.settings = base.replace(**changes) if changes else base
        self._write_lock = threading.RLock()

    # Heavy parts load on first use, so listing or deleting sources never loads MiniLM.
    @cached_property
    def embedder(self):
        from rag.embed import embedder_for

        return embedder_for(self.settings)

    @cached_property
    def store(self):
        from rag.store import ChromaStore, CombinedStore, open_keyword_index

        s = self.settings
        vectors = ChromaStore(s.store_dir, collection=s.collection, url=s.chroma_url or None)
        # A store made before collections: every chunk into the default one, once, before the
        # keyword index (whose new schema has the field) is rebuilt from it below.
        vectors.migrate()
        store = CombinedStore(vectors, open_keyword_index(
            s.data_dir / "keyword" / f"{s.collection}.tantivy", vectors,
            legacy=s.data_dir / "keyword" / f"{s.collection}.sqlite3", writer_heap_mb=s.keyword_writer_heap_mb,
            writer_threads=s.keyword_writer_threads, lock_timeout=s.keyword_lock_timeout))
        # A write a killed process left unfinished is settled before anything reads the store:
        # each source is back to its old version or forward to its new one (ingest.journal).
        from ingest.files import sweep_staging

        with self._write_lock:
            self.journal.recover(store)
            sweep_staging(s.files_dir)
        return store

    @cached_property
    def journal(self):
        """The write journal that makes each source's ingestion or deletion one crash-safe unit."""
        from ingest.journal import Journal

        return Journal(self.settings.data_dir / "journal", self.settings.files_dir)

    @cached_property
    def conversations(self):
        """The saved conversations of this data directory (``rag.conversations_store.ConversationStore``)."""
        from rag.conversations_store import ConversationStore

        return ConversationStore(self.settings.data_dir / "conversations", self.settings)

    @cached_property
    def retriever(self):
        from rag.retrieve import Retriever

        s = self.settings
        return Retriever(self.embedder, self.store, mode=s.retrieval_mode, fusion=s.fusion,
                         keyword_weight=s.keyword_weight, candidates=s.fusion_candidates)

    @cached_property
    def indexer(self):
        from ingest.chunk import ChunkConfig
        from ingest.index import Indexer

        s = self.settings
        config = ChunkConfig(size=s.chunk_tokens, overlap=s.chunk_overlap, limit=self.embedder.max_tokens)
        embed_batches = None
        if s.ray_address:
            from ingest.distributed import RayBatchEmbedder

            # Each node keeps the int8 export in its own cache (RAG_CACHE_DIR there, or its default).
            embed_batches = RayBatchEmbedder(s.ray_address, model_dir=s.model_dir or None,
                                             doc_encoder=s.doc_encoder).embed_batches
        return Indexer(self.embedder, self.store, config, write_batch=s.ingest_batch, journal=self.journal,
                       embed_batches=embed_batches)

    @cached_property
    def generator(self):
        """The answer generator ``settings.llm`` names (built on first use; see ``rag.generate.make_generator``)."""
        from rag.generate import make_generator, parse_llm

        kind, _ = parse_llm(self.settings.llm, self.settings)
        return make_generator(self.settings, embedder=self.embedder if kind == "extractive" else None)

    @cached_property
    def answerer(self):
        """Retrieve -> prompt -> generate -> cite, over this store and ``generator``."""
        from rag.answer import Answerer

        return Answerer(self.retriever, self.generator, self.settings, self.embedder)

    @property
    def generator_notice(self) -> str | None:
        """One sentence to show users about how answers are made, or None.

        Extractive: answers are extracts. A GPTQ model without a CUDA GPU: generation is slow
        (~1 token/s). SmolLM2: a tiny model, slow on CPU. Reading this never loads a model.
        """
        from rag.generate import notice, parse_llm

        kind, _ = parse_llm(self.settings.llm, self.settings)
        if kind == "extractive":
            return EXTRACTIVE_NOTICE
        loaded = self.__dict__.get("generator")
        if loaded is not None:
            return loaded.warning
        return notice(self.settings)

    # -- answering --------------------------------------------------------------------------
    def ask(self, question: str, history: Sequence[tuple[str, str]] | None = None, *, k: int | None = None,
            sources: Sequence[str] | None = None, collection: Names = None) -> "Answer":
        """Answer a question from the indexed documents, with citations.

        Args:
            question: the question.
            history: earlier (user, assistant) turns, oldest first; the question may refer
                back to them ("Who founded it?").
            k: how many chunks to retrieve (``settings.top_k`` when omitted).
            sources: only use these sources.
            collection: only use this collection (or these); None: all. Retrieval, follow-ups,
                citations and the refusal's word statistics stay inside them.

        Returns:
            The answer: text with ``[n]`` citations, the citations, the sources seen, the
            retrieval query used, the generator and prompt format, and whether it refused
            (text exactly ``rag.prompt.NO_ANSWER``).

        Raises:
            InvalidCollectionError: a collection name breaks the naming rule.
            UnknownCollectionError: a named collection does not exist.
            NotFoundError: a name in ``sources`` is not indexed there.
        """
        scope = self.scope(collection)
        return self.answerer.ask(question, history, k=k, sources=self.checked(sources, scope), collections=scope)

    def ask_stream(self, question: str, history: Sequence[tuple[str, str]] | None = None, *,
                   k: int | None = None, sources: Sequence[str] | None = None,
                   collection: Names = None) -> "Iterator[str | Answer]":
        """Like :meth:`ask`, yielding text pieces as they are written and finally the complete Answer.

        The final ``Answer.text`` may differ from the joined pieces: citations are renumbered
        in order of first use and markers that point to no source are dropped, so show it in
        place of the streamed text.
        """
        collections = self.scope(collection)  # checked now, not at the first next()
        sources = self.checked(sources, collections)
        return self.answerer.stream(question, history, k=k, sources=sources, collections=collections)

    # -- ingestion -------------------------------------------------------------------------
    def ingest(self, jobs: Iterable, *, progress: bool = False,
               on_progress: "Callable[[Progress], None] | None" = None) -> IngestReport:
        """Ingest prepared source jobs (see ``ingest.index.SourceJob``); failures are reported, not raised.

        Sources are read (PDF extraction, Wikipedia fetches) and chunked without the write
        lock, so a slow source holds no other write up; the store is compared and written under
        it, so two ingestions of one source that run at once end as one version.

        Args:
            jobs: the sources (``file_job``, ``wikipedia_job``, ...).
            progress: show a progress bar on stderr while embedding.
            on_progress: called as chunks are embedded (``rag.types.Progress``); reading progress
                comes from the jobs (``file_job(on_progress=...)``).
        """
        from rag.types import IngestReport as Report

        report = Report()
        loaded = self.indexer.load(jobs, report)
        try:
            with self._write_lock:
                return self.indexer.write(loaded, report, progress=progress, on_progress=on_progress)
        finally:
            for item in loaded:  # a copy kept but not committed (a name conflict, a failure) goes
                if item.file is not None:
                    item.file.discard()

    def pdf_job(self, path: str | Path, *, password: str | None = None, name: str | None = None,
                file=None, collection: str | None = None):
        """A source job that reads one PDF under this service's size, page, content and time limits.

        Args:
            path: the PDF.
            password: tried on an encrypted file.
            name: the source name (default: the file name).
            file: the ``ingest.files.StagedFile`` at ``path``, moved into ``files_dir`` with the
                source's chunks; found by itself when ``path`` lies in the staging area.
            collection: the collection it goes into (default: ``default``).
        """
        from ingest.files import staged_in
        from ingest.index import SourceJob
        from ingest.pdf import read_pdf

        s, path, where = self.settings, Path(path), write_target(collection, self.settings)
        file = file if file is not None else staged_in(s.files_dir, path, where)
        return SourceJob(name or path.name, lambda: read_pdf(path, password=password, name=name, settings=s), file=file,
                         collection=where, keep=self._keeper(path, name or path.name, file, where))

    def file_job(self, path: str | Path, *, password: str | None = None, name: str | None = None, file=None,
                 collection: str | None = None, on_progress: "Callable[[Progress], None] | None" = None):
        """A source job for any file we read: PDF, Word, HTML, Markdown or text, told apart by content.

        Args:
            path: the file.
            password: tried on an encrypted PDF.
            name: the source name (default: the file name).
            file: the staged upload at ``path`` (see :meth:`pdf_job`).
            collection: the collection it goes into (default: ``default``).
            on_progress: called as a PDF's pages are read (``rag.types.Progress``, ``reading``).
        """
        from ingest.files import staged_in
        from ingest.formats import read_file, sniff
        from ingest.index import SourceJob
        from ingest.pdf import read_pdf

        s, path, where = self.settings, Path(path), write_target(collection, self.settings)
        file = file if file is not None else staged_in(s.files_dir, path, where)

        source = name or path.name
        on_page = (lambda done, total: on_progress(Progress(source, "reading", done, total))) if on_progress else None

        def load() -> list[Document]:
            if sniff(path) == "pdf":
                return read_pdf(path, password=password, name=name, settings=s, on_page=on_page)
            return read_file(path, name=name, max_bytes=s.max_pdf_bytes)

        return SourceJob(name or path.name, load, file=file, collection=where,
                         keep=self._keeper(path, name or path.name, file, where))

    def _keeper(self, path: Path, name: str, file, collection: str) -> "Callable[[], object] | None":
        """How a job keeps a copy of a local file it reads (``settings.keep_files``), or None."""
        if file is not None or not self.settings.keep_files:
            return None
        from ingest.files import keep_copy

        return lambda: keep_copy(self.settings.files_dir, path, name, collection)

    def wikipedia_job(self, title: str, *, collection: str | None = None):
        """A source job that fetches one Wikipedia page from the configured MediaWiki API into ``collection``."""
        from ingest.index import SourceJob
        from ingest.wikipedia import fetch_wikipedia

        s = self.settings
        return SourceJob(title, lambda: fetch_wikipedia(title, api_url=s.wikipedia_api_url, timeout=s.wikipedia_timeout),
                         collection=write_target(collection, s))

    def add_pdfs(self, paths: Sequence[str | Path], *, password: str | None = None,
                 progress: bool = False, collection: str | None = None) -> IngestReport:
        """Ingest PDF files; a file that cannot be read is reported in ``skipped`` and the rest go on.

        Args:
            paths: PDF files.
            password: tried on encrypted files.
            progress: show a progress bar.
            collection: the collection they go into (default: ``default``).

        Returns:
            The ingestion report.
        """
        return self.ingest([self.pdf_job(p, password=password, collection=collection) for p in paths],
                           progress=progress)

    def add_files(self, paths: Sequence[str | Path], *, password: str | None = None,
                  progress: bool = False, collection: str | None = None) -> IngestReport:
        """Ingest files of any format we read (PDF, .docx, HTML, Markdown, text), told apart by content.

        Args:
            paths: the files; one that cannot be read is reported in ``skipped`` and the rest go on.
            password: tried on encrypted PDFs.
            progress: show a progress bar.
            collection: the collection they go into (default: ``default``).

        Returns:
            The ingestion report.
        """
        return self.ingest([self.file_job(p, password=password, collection=collection) for p in paths],
                           progress=progress)

    def add_pdf(self, path: str | Path, *, password: str | None = None, collection: str | None = None) -> IngestReport:
        """Ingest one PDF.

        Args:
            path: the file.
            password: its password, if encrypted.
            collection: the collection it goes into (default: ``default``).

        Returns:
            The ingestion report.

        Raises:
            SourceError: the file is encrypted, scanned, broken or too large.
        """
        return _raise_skipped(self.add_pdfs([path], password=password, collection=collection))

    def add_wikipedia(self, *titles: str, progress: bool = False, collection: str | None = None) -> IngestReport:
        """Ingest Wikipedia pages by exact title (redirects are followed, suggestions never).

        Args:
            *titles: page titles.
            progress: show a progress bar.
            collection: the collection they go into (default: ``default``).

        Returns:
            The ingestion report; with one title, a failure raises instead.
        """
        jobs = [self.wikipedia_job(t, collection=collection) for t in titles]
        report = self.ingest(jobs, progress=progress)
        return _raise_skipped(report) if len(titles) == 1 else report

    def upload(self, path: str | Path, *, name: str | None = None, password: str | None = None,
               collection: str | None = None, on_progress: "Callable[[Progress], None] | None" = None) -> IngestReport:
        """Store and ingest a file a client sent: the one write path of the page and the HTTP API.

        The file is staged under a safe name and read without the write lock; its chunks and
        the move of the file into ``settings.files_dir`` are then one journaled unit under the
        lock, so after any crash, or two uploads of one name at once, the stored file is the
        one whose chunks are indexed. A refused upload never replaces a good stored copy.

        Args:
            path: the received file (a temporary file of the web server).
            name: the name the client gave it (default: ``path``'s name); its safe form
                (``ingest.files.upload_name``) is the source name.
            password: tried on an encrypted PDF.
            collection: the collection it goes into (default: ``default``); its file is kept in
                that collection's folder (``ingest.files.collection_dir``).
            on_progress: called as pages are read and chunks embedded (``rag.types.Progress``).

        Returns:
            The ingestion report, keyed by the source name; a refused file is in ``skipped``.

        Raises:
            UnreadableSourceError: the content is none of the formats we read (PDF, Word, HTML,
                Markdown, text), or the name promises another one than the content is.
            InvalidNameError: the name has no usable base name (``..``, ``x.pdf/..``).
        """
        from ingest.files import stage_upload

        where = write_target(collection, self.settings)
        staged = stage_upload(self.settings.files_dir, path, name if name is not None else Path(path).name,
                              collection=where)
        try:
            return self.ingest([self.file_job(staged.path, password=password, name=staged.name, file=staged,
                                              collection=where, on_progress=on_progress)], on_progress=on_progress)
        finally:
            staged.discard()  # nothing left after a commit; a refused or failed upload leaves no copy

    def add_text(self, text: str, *, name: str, title: str | None = None, url: str | None = None,
                 collection: str | None = None) -> IngestReport:
        """Ingest plain text under a source name (re-adding the same name replaces it).

        Args:
            text: the text.
            name: the source name.
            title: the title shown in citations (default: the name).
            url: a link for citations.
            collection: the collection it goes into (default: ``default``).

        Returns:
            The ingestion report.
        """
        from ingest.index import SourceJob

        where = write_target(collection, self.settings)
        if not text.strip():
            raise SourceError(name, f"The text for {name!r} is empty; nothing to index")
        doc = Document(source=name, text=text, kind="text", title=title or name, url=url)
        return _raise_skipped(self.ingest([SourceJob(name, lambda: [doc], collection=where)]))

    # -- retrieval and management ---------------------------------------------------------------
    def search(self, query: str, k: int | None = None, *, sources: Sequence[str] | None = None,
               collection: Names = None) -> list[Hit]:
        """The chunks most similar to ``query`` by cosine similarity, best first.

        Args:
            query: the question or search words.
            k: how many hits (``settings.top_k`` when omitted).
            sources: restrict to these source names.
            collection: restrict to this collection (or these); None: all.

        Returns:
            Hits with text, cosine score, and source (title, url, section, file, page, collection).

        Raises:
            InvalidCollectionError: a collection name breaks the naming rule.
            UnknownCollectionError: a named collection does not exist.
            NotFoundError: a name in ``sources`` is not indexed there.
        """
        scope = self.scope(collection)
        return self.retriever.search(query, k or self.settings.top_k, sources=self.checked(sources, scope),
                                     collections=scope)

    def collection(self, name: str) -> Collection:
        """A view of this facade bound to one collection (it need not exist before its first write).

        Raises:
            InvalidCollectionError: the name breaks the naming rule.
        """
        return Collection(self, name)

    def checked(self, sources: Sequence[str] | None, scope: Sequence[str] | None) -> list[str] | None:
        """A read's source filter as stored, every name checked against the collections searched.

        Raises:
            NotFoundError: a name matches no source there (see :func:`check_sources`).
        """
        if not sources:
            return None
        return check_sources(list(sources), [i for i in self.store.sources() if scope is None or i.collection in scope])

    def scope(self, collection: Names) -> tuple[str, ...] | None:
        """The checked collections a read is restricted to (None: all); see ``rag.collections.read_scope``."""
        if collection is None or (not isinstance(collection, str) and not list(collection)):
            return None
        return read_scope(collection, self.store.sources(), self.settings)

    def collections(self) -> list[CollectionInfo]:
        """Every collection that holds a source, with its source and chunk counts, by name."""
        return summarize(self.sources())

    def sources(self, *, collection: Names = None) -> list[SourceInfo]:
        """What is indexed: one entry per source with its collection, chunk count and when it was added.

        Args:
            collection: only the sources of this collection (or these); None: all.
        """
        store = self.store
        live = self.journal.live()
        scope = self.scope(collection)
        infos = [i for i in store.sources() if scope is None or i.collection in scope]
        if not live:
            return infos
        # A source being written now is listed as it was before (not at all when it is new).
        out = []
        for info in infos:
            key = source_key(info.collection, info.source)
            if key not in live:
                out.append(info)
            elif live[key]:
                out.append(dataclasses.replace(info, chunks=live[key]))
        return out

    def delete(self, source: str, *, collection: str | None = None) -> int:
        """Delete a source, all its chunks and its stored upload (if any).

        Args:
            source: the source name as listed by ``sources()``; a bare Wikipedia title works too.
            collection: the collection it is in (default: ``default``); the same name in other
                collections is left alone.

        Returns:
            The number of chunks deleted.

        Raises:
            NotFoundError: no such source in that collection.
        """
        where = write_target(collection, self.settings)
        with self._write_lock:
            for name in (source, f"wikipedia:{source}"):
                n = self._delete_source(name, where)
                if n:
                    return n
        infos = self.sources(collection=where) if where in {i.collection for i in self.store.sources()} else []
        known = some_of([s.source for s in infos]) if infos else "none yet"
        inside = "" if where == DEFAULT_COLLECTION else f" in the collection {where!r}"
        hints = {"cli": "`rag sources` lists them all"} if len(infos) > 10 else None
        raise NotFoundError(source, f"No source named {source!r} is indexed{inside}; indexed sources{inside}: "
                                    f"{known}", hints=hints)

    def delete_collection(self, name: str) -> CollectionInfo:
        """Delete every source of a collection, with their chunks and stored files.

        Each source goes as its own journaled unit, so a deletion cut short leaves whole
        sources; running it again finishes it.

        Args:
            name: the collection.

        Returns:
            What was removed: the collection's name, source count and chunk count.

        Raises:
            InvalidCollectionError: the name breaks the naming rule.
            UnknownCollectionError: no such collection; the message lists the existing ones.
        """
        where = write_target(name, self.settings)
        with self._write_lock:
            infos = [i for i in self.store.sources() if i.collection == where]
            if not infos:
                raise UnknownCollectionError(unknown_message(where, [c.name for c in self.collections()]))
            chunks = sum(self._delete_source(info.source, where) for info in infos)
        return CollectionInfo(where, len(infos), chunks)

    def _delete_source(self, name: str, collection: str) -> int:
        """Delete one source of ``collection`` as a journaled unit (caller holds the write lock); its chunk count."""
        store = self.store
        ids = store.ids_for(name, complete=False, collection=collection)
        if not ids:
            return 0
        kind = next((i.kind for i in store.sources() if i.source == name and i.collection == collection), None)
        # Chunks and the stored upload go as one unit: a crash midway finishes the deletion.
        kept = kind != "wikipedia"  # any file we read may have a stored copy
        entry = self.journal.begin(store, name, old=ids, new=set(), delete=True,
                                   remove=name if kept else None, collection=collection)
        try:
            store.delete_ids(sorted(ids))
            if kept:
                from ingest.files import collection_dir, remove_file

                remove_file(collection_dir(self.settings.files_dir, collection), name)
        except BaseException:
            self.journal.abort(store, entry)
            raise
        self.journal.finish(entry)
        return len(ids)


def check_sources(names: Sequence[str], indexed: Sequence[SourceInfo]) -> list[str]:
    """The indexed source names a search's or a question's filter means; refuse names of nothing indexed.

    Without the check a misspelt or just-deleted name would restrict the search to nothing, and
    the answer would read as if the documents did not answer.

    Args:
        names: the names asked for; a bare Wikipedia title matches its ``wikipedia:`` source.
        indexed: what is indexed (``RAG.sources()``, within the collections searched).

    Returns:
        The names as stored (a bare Wikipedia title with its ``wikipedia:`` prefix).

    Raises:
        NotFoundError: naming every missing name (or the first ten and how many more) and some
            of the indexed ones.
    """
    known = {s.source for s in indexed}
    missing = [n for n in names if n not in known and f"wikipedia:{n}" not in known]
    if not missing:
        return [n if n in known else f"wikipedia:{n}" for n in names]
    listed = [s.source for s in indexed]
    what = (f"The source {missing[0]!r} is" if len(missing) == 1
            else f"The sources {some_of([repr(m) for m in missing])} are")
    raise NotFoundError(missing[0], f"{what} not indexed; indexed sources: {some_of(listed) if listed else 'none yet'}",
                        hints={"cli": "use the names `rag sources` lists", "page": "choose them from the list",
                               "api": "use the names GET /api/sources lists"})


def _raise_skipped(report: IngestReport) -> IngestReport:
    if report.skipped:
        name, reason = next(iter(report.skipped.items()))
        raise report.errors.get(name) or SourceError(name, reason)
    return report
