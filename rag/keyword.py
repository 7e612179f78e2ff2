"""The BM25 keyword index on tantivy, kept next to the Chroma store.

Chroma has no keyword search. This index holds the same chunk ids as the vector store;
:class:`rag.store.CombinedStore` writes and deletes both in the same operations so they
never disagree for long, and ingestion repairs any difference a crash left (see
``ingest/index.py``). Each ``add`` and ``delete_ids`` is one tantivy commit: a kill before it
loses that call's changes whole, exactly as a rolled-back SQLite transaction did.

tantivy (the Rust engine, through its official Python bindings) prunes with block-max WAND,
so a query costs about the work of its top k rather than of every chunk that shares a word
with it (python -m bench.query_latency). Only ids are stored; the texts live in Chroma,
which is what an index is rebuilt from (:func:`rag.store.CombinedStore.rebuild_keywords`).

One writer at a time: tantivy allows one writer per index directory, across processes. It is
taken for each write and let go at its commit, so two ``RAG`` objects in one process (which
share one opened index) or two processes take turns, a second waiting up to
``Settings.keyword_lock_timeout``. Readers never take it; each search first picks up any
commit made since the last one, by this process or another.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

from rag.errors import StoreError
from rag.settings import DEFAULT_COLLECTION
from rag.text import QUERY_STOP_WORDS
from rag.types import Chunk

log = logging.getLogger(__name__)

_MAX_TERMS = 64
_IDF_FLOOR = 1e-6  # FTS5's: a word in half the chunks or more still matches, with next to no weight
_ANALYZER = "rag_stems"  # tokenizer name registered on every index opened here
# Bump when the schema or the analysis changes: an index of another version is rebuilt from
# Chroma on open (rag.store.open_keyword_index). 2: the collection field; 3: Porter stems.
_SCHEMA_VERSION = "3"


def keyword_text(chunk: Chunk) -> str:
    """What the keyword index matches on: the chunk with its title and section."""
    return "\n".join(part for part in (chunk.title, chunk.section, chunk.text) if part)


def _tantivy():
    try:
        import tantivy
    except ImportError as exc:  # a core dependency; only a broken install lacks it
        from rag.errors import MissingDependencyError

        raise MissingDependencyError("the keyword index needs the tantivy package; reinstall rag (pip install rag)") from exc
    return tantivy


def _surface_analyzer():
    """Unicode word splitting, lower case, accents folded: FTS5's unicode61 with remove_diacritics."""
    t = _tantivy()
    b = t.TextAnalyzerBuilder(t.Tokenizer.simple()).filter(t.Filter.remove_long(40))
    return b.filter(t.Filter.lowercase()).filter(t.Filter.ascii_fold()).build()


_SURFACE = None
_STEMMERS = threading.local()  # a PyStemmer object is not safe to share between threads


def _surface():
    global _SURFACE
    if _SURFACE is None:
        _SURFACE = _surface_analyzer()
    return _SURFACE


def stem_words(words: Sequence[str]) -> list[str]:
    """Martin Porter's original stemmer over words already split and folded (:func:`query_terms`).

    The stemmer FTS5's ``porter`` tokenizer had, not tantivy's Snowball English (Porter2):
    the index before this one was ranked with it, and on the tuning sets it ranks as well or
    better (README, Retrieval; ``python -m bench.keyword_quality``).
    """
    stemmer = getattr(_STEMMERS, "porter", None)
    if stemmer is None:
        try:
            import Stemmer
        except ImportError as exc:  # a core dependency; only a broken install lacks it
            from rag.errors import MissingDependencyError

            raise MissingDependencyError("the keyword index needs the PyStemmer package; reinstall rag "
                                         "(pip install rag)") from exc
        stemmer = _STEMMERS.porter = Stemmer.Stemmer("porter")
    return stemmer.stemWords(list(words))


def index_text(text: str) -> str:
    """``text`` as the index stores it: its words split, folded and stemmed, joined by spaces."""
    return " ".join(stem_words(_surface().analyze(text)))


def query_terms(query: str) -> list[str]:
    """The words a keyword search looks for: distinct, lower-cased, without :data:`~rag.text.QUERY_STOP_WORDS`.

    Split, lower-cased and accent-folded as the index's analyzer does, before stemming. A
    query of stop words only keeps them all (``"to be or not to be"``); at most 64 terms.
    """
    words = _surface().analyze(query)
    kept = [w for w in words if w not in QUERY_STOP_WORDS] or words
    return list(dict.fromkeys(kept))[:_MAX_TERMS]


def search_terms(query: str) -> list[str]:
    """The indexed terms a query is matched on: :func:`query_terms`, stemmed, each once."""
    return list(dict.fromkeys(stem_words(query_terms(query))))


def idf_ratio(n_docs: int, n: int) -> float:
    """The boost that turns tantivy's term weight into classic BM25's: its IDF over Lucene's.

    Lucene (so tantivy) weighs a term held by ``n`` of ``N`` chunks by log(1 + (N - n + 0.5) / (n + 0.5)),
    which stays near log 2 for a word in every other chunk; Robertson and Spärck Jones's BM25
    (and SQLite FTS5, the index before this one) by log((N - n + 0.5) / (n + 0.5)), floored at a
    millionth, which gives such words next to nothing and lets the rare words of a question
    decide. Measured with ``python -m bench.keyword_quality`` (README, Retrieval).

    Args:
        n_docs: chunks in the index (N).
        n: chunks holding the term (tantivy's count, which may include chunks deleted since).

    Returns:
        The factor to multiply the term's tantivy score by; 1.0 for a term no chunk holds.
    """
    if n <= 0 or n_docs <= 0:
        return 1.0
    # Deleted chunks still count in ``n`` until their segment is merged away.
    n = min(n, n_docs)
    lucene = math.log1p((n_docs - n + 0.5) / (n + 0.5))
    classic = max(math.log((n_docs - n + 0.5) / (n + 0.5)), _IDF_FLOOR)
    return classic / lucene


def _schema():
    t = _tantivy()
    sb = t.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("source", stored=False, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("collection", stored=False, tokenizer_name="raw", index_option="basic")
    # Frequencies, no positions: BM25 needs no more, and no query here is a phrase.
    sb.add_text_field("body", stored=False, tokenizer_name=_ANALYZER, index_option="freq")
    return sb.build()


def index_exists(path: str | Path) -> bool:
    """Whether ``path`` holds a tantivy index of the current schema."""
    path = Path(path)
    return (path / "meta.json").is_file() and (path / "rag-schema").is_file() and \
        (path / "rag-schema").read_text().strip() == _SCHEMA_VERSION


class _Shared:
    """One directory's opened tantivy Index, shared by every KeywordIndex on it in the process."""

    def __init__(self, path: Path, writer_heap_mb: int, writer_threads: int) -> None:
        t = _tantivy()
        self.path = path
        self.schema = _schema()
        fresh = not index_exists(path)
        if fresh and path.exists() and any(path.iterdir()):
            # Not an index of this schema (an older one, or a build cut short): start over; the
            # caller rebuilds it from the vector store (rag.store.open_keyword_index).
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        self.created = fresh
        try:
            self.index = t.Index(self.schema, path=str(path), reuse=not fresh)
        except Exception as exc:
            raise StoreError(f"Could not open the keyword index at {path} ({exc}); delete that folder to "
                             "rebuild it from the vector store") from exc
        # Stemmed in Python (index_text): the index only splits what it is given at spaces.
        self.index.register_tokenizer(_ANALYZER, t.TextAnalyzerBuilder(t.Tokenizer.whitespace()).build())
        # Reloads are ours (after each commit here, and on the next search after one elsewhere):
        # no watcher thread per open index polling meta.json.
        self.index.config_reader(reload_policy="Manual")
        if fresh:
            (path / "rag-schema").write_text(_SCHEMA_VERSION)
        self.heap = writer_heap_mb * 2**20 * writer_threads
        self.threads = writer_threads
        self.lock = threading.Lock()  # one write (add or delete, up to its commit) at a time
        self.refs = 0
        self.seen_meta = self._meta_mtime()

    def _meta_mtime(self) -> int:
        try:
            return os.stat(self.path / "meta.json").st_mtime_ns
        except OSError:
            return 0

    def searcher(self):
        # A commit by another process shows on the next search, not after the reader's own
        # polling delay: one stat per query.
        mtime = self._meta_mtime()
        if mtime != self.seen_meta:
            self.seen_meta = mtime
            self.index.reload()
        return self.index.searcher()

    def open_writer(self, timeout: float):
        """A writer for one write; waits up to ``timeout`` seconds while another process holds the lock."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.index.writer(heap_size=self.heap, num_threads=self.threads)
            except ValueError as exc:
                if "LockBusy" not in str(exc):
                    raise StoreError(f"Could not write the keyword index at {self.path} ({exc})") from exc
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"The keyword index at {self.path} is being written by another process (a running "
                        "`rag serve`, or an ingestion); retry when it is done, or send the change through "
                        "the server") from exc
                time.sleep(0.05)

    def committed(self) -> None:
        self.index.reload()
        self.seen_meta = self._meta_mtime()


_OPEN: dict[Path, _Shared] = {}
_OPEN_LOCK = threading.Lock()


class KeywordIndex:
    """Chunk ids, sources and texts in a tantivy index, ranked by BM25."""

    def __init__(self, path: str | Path, *, writer_heap_mb: int | None = None, writer_threads: int | None = None,
                 lock_timeout: float | None = None) -> None:
        """Open (or create) the index directory.

        Args:
            path: the index directory.
            writer_heap_mb: tantivy's indexing memory per writer thread (it writes a segment when full).
            writer_threads: indexing threads of the writer.
            lock_timeout: seconds to wait for another process's writer to let go before a write fails.
            Each None takes its ``Settings.keyword_*`` default.
        """
        from rag.settings import Settings

        writer_heap_mb = Settings.keyword_writer_heap_mb if writer_heap_mb is None else writer_heap_mb
        writer_threads = Settings.keyword_writer_threads if writer_threads is None else writer_threads
        self.path = Path(path).resolve()
        self._timeout = Settings.keyword_lock_timeout if lock_timeout is None else lock_timeout
        with _OPEN_LOCK:
            shared = _OPEN.get(self.path)
            if shared is None:
                shared = _OPEN[self.path] = _Shared(self.path, writer_heap_mb, writer_threads)
            shared.refs += 1
        self._s = shared
        self._closed = False
        self._t = _tantivy()

    def _write(self, apply) -> None:
        # A writer per write, not one held open: opening one costs well under a millisecond next
        # to the commit's fsync, and holding none between writes lets another process (an
        # ingestion beside a reader, a test's CLI run) write the same index in turn, as SQLite did.
        s = self._s
        with s.lock:
            writer = s.open_writer(self._timeout)
            try:
                apply(writer)
                writer.commit()
            except Exception as exc:
                try:
                    writer.rollback()
                except Exception as inner:  # the error may have taken the writer with it
                    log.debug("tantivy rollback failed: %s", inner)
                del writer  # releases the lock
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"Could not write the keyword index at {s.path} ({exc})") from exc
            # Let the merges this commit started finish, else their segments would stay unmerged
            # and every search would visit more of them; consuming the writer releases the lock.
            try:
                writer.wait_merging_threads()
            except Exception as exc:  # a failed merge loses nothing: the segments stay as they were
                log.debug("tantivy merge failed: %s", exc)
            s.committed()

    @property
    def created(self) -> bool:
        """Whether this process created the index directory (it was missing or of an older schema)."""
        return self._s.created

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Index chunks; an id already present is replaced, never duplicated (ids derive from content)."""
        self._add(chunks, replace=True)

    def _add(self, chunks: Sequence[Chunk], *, replace: bool) -> None:
        # replace=False skips the delete per id: only for a rebuild into an empty index.
        if not chunks:
            return
        Document = self._t.Document

        def apply(writer) -> None:
            for chunk in chunks:
                if replace:
                    # Deletes apply to documents committed or added before them, so this keeps one copy.
                    writer.delete_documents_by_term("id", chunk.id)
                writer.add_document(Document(id=chunk.id, source=chunk.source, collection=chunk.collection,
                                             body=index_text(keyword_text(chunk))))

        self._write(apply)

    def delete_ids(self, ids: Iterable[str]) -> None:
        """Remove chunks by id (unknown ids are ignored)."""
        ids = list(ids)
        if not ids:
            return

        def apply(writer) -> None:
            for id_ in ids:
                writer.delete_documents_by_term("id", id_)

        self._write(apply)

    def _ids(self, query, *, everything: bool = False) -> set[str]:
        searcher = self._s.searcher()
        # Count first: the top-n collector sizes its heap by the limit, and a source is a few
        # chunks among possibly millions.
        n = searcher.num_docs if everything else searcher.search(query, limit=1, count=True).count
        if n == 0:
            return set()
        hits = searcher.search(query, limit=n, count=False).hits
        return {searcher.doc(addr)["id"][0] for _, addr in hits}

    def ids_for(self, source: str, *, collection: str = DEFAULT_COLLECTION) -> set[str]:
        """Ids of every indexed chunk of ``source`` in ``collection``."""
        Q, Occur, schema = self._t.Query, self._t.Occur, self._s.schema
        return self._ids(Q.boolean_query([(Occur.Must, Q.term_query(schema, "source", source)),
                                          (Occur.Must, Q.term_query(schema, "collection", collection))]))

    def _scope(self, sources: Sequence[str] | None, collections: Sequence[str] | None):
        """The filter query for chunks of ``sources`` within ``collections``, or None for everything."""
        Q, Occur, schema = self._t.Query, self._t.Occur, self._s.schema
        parts = [Q.term_set_query(schema, field, list(values))
                 for field, values in (("source", sources), ("collection", collections)) if values]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else Q.boolean_query([(Occur.Must, p) for p in parts])

    def all_ids(self) -> set[str]:
        """Every indexed chunk id."""
        return self._ids(self._t.Query.all_query(), everything=True)

    def count(self) -> int:
        """Number of indexed chunks."""
        return int(self._s.searcher().num_docs)

    def search(self, query: str, k: int, sources: Sequence[str] | None = None,
               collections: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best chunks for ``query`` by BM25.

        Args:
            query: free text.
            k: how many to return.
            sources: only chunks of these sources, when given.
            collections: only chunks of these collections, when given.

        Returns:
            (chunk id, BM25 score) pairs, best first; higher is better.
        """
        terms = search_terms(query)
        if not terms or k < 1:
            return []
        Q, Occur, schema = self._t.Query, self._t.Occur, self._s.schema
        searcher = self._s.searcher()
        n_docs = int(searcher.num_docs)
        clauses = []
        for term in terms:
            clause = Q.term_query(schema, "body", term, index_option="freq")
            # tantivy weighs a term by Lucene's IDF; the boost turns it into BM25's own (idf_ratio).
            weight = idf_ratio(n_docs, int(searcher.doc_freq("body", term)))
            clauses.append((Occur.Should, clause if weight == 1.0 else Q.boost_query(clause, weight)))
        q = Q.boolean_query(clauses)
        scope = self._scope(sources, collections)
        if scope is not None:
            # A filter, not a scoring clause: scored 0 so BM25 stays the body's alone.
            q = Q.boolean_query([(Occur.Must, q), (Occur.Must, Q.const_score_query(scope, 0.0))])
        # count=False: counting every match would visit them all and undo the top-k pruning.
        hits = searcher.search(q, limit=k, count=False).hits
        return [(searcher.doc(addr)["id"][0], float(score)) for score, addr in hits]

    def document_frequencies(self, words: Sequence[str], sources: Sequence[str] | None = None,
                             collections: Sequence[str] | None = None) -> tuple[int, dict[str, int]]:
        """How many chunks there are, and how many of them hold each word (as BM25 matches it).

        Args:
            words: single words; each is matched as the index analyzes it (stemmed, case- and accent-folded).
            sources: count only chunks of these sources, when given.
            collections: count only chunks of these collections, when given.

        Returns:
            ``(chunks, {word: chunks holding it})``; a word with no searchable characters counts 0.
        """
        Q, Occur, schema = self._t.Query, self._t.Occur, self._s.schema
        only = self._scope(sources, collections)
        searcher = self._s.searcher()

        def count(query) -> int:
            if only is not None:
                query = Q.boolean_query([(Occur.Must, query), (Occur.Must, only)])
            return int(searcher.search(query, limit=1, count=True).count)

        total = count(Q.all_query()) if only is not None else int(searcher.num_docs)
        out: dict[str, int] = {}
        for word in dict.fromkeys(words):
            terms = list(dict.fromkeys(stem_words(_surface().analyze(word))))
            if not terms:
                out[word] = 0
                continue
            clauses = [(Occur.Must, Q.term_query(schema, "body", t)) for t in terms]
            out[word] = count(clauses[0][1] if len(clauses) == 1 else Q.boolean_query(clauses))
        return total, out

    def close(self) -> None:
        """Let go of the index (the last one open on the directory in this process drops it)."""
        if self._closed:
            return
        self._closed = True
        with _OPEN_LOCK:
            self._s.refs -= 1
            if self._s.refs <= 0:
                _OPEN.pop(self.path, None)
