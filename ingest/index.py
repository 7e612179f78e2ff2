"""Idempotent, crash-safe ingestion: sources -> chunks -> vectors -> store, with progress and a summary.

Ingestion has two phases. :meth:`Indexer.load` reads and chunks sources and touches no
store, so it runs without the writer lock (a slow or hostile PDF holds nobody up).
:meth:`Indexer.write` compares the chunk ids each source should have with the ids the
store holds (unchanged sources cost nothing), then writes each changed source as one
journaled unit (``ingest.journal``): manifest, new chunks, the upload moved into place,
stale chunks deleted, manifest removed. A run killed at any point leaves every source at
exactly its old or exactly its new version once the journal is recovered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from ingest.chunk import ChunkConfig, chunk_documents
from rag.errors import NameConflictError, SourceError
from rag.progress import progress_bar
from rag.protocols import Embedder, Store
from rag.settings import DEFAULT_COLLECTION, Settings
from rag.types import Chunk, Document, IngestReport, Progress

if TYPE_CHECKING:
    from ingest.files import StagedFile
    from ingest.journal import Journal

log = logging.getLogger(__name__)

Loader = Callable[[], list[Document]]
BatchEmbedder = Callable[[Sequence[Sequence[str]]], Iterator[np.ndarray]]


@dataclass(frozen=True)
class SourceJob:
    """A named source, how to read it (reading may raise SourceError), and the collection it goes into.

    ``file`` is a staged upload (``ingest.files.stage_upload``) that is moved into
    ``files_dir`` in the same transaction as the source's chunks; ``keep``, when there is no
    ``file``, stages one once the source has been read (``ingest.files.keep_copy``: a copy of a
    local file, so its citations can open it), or returns None to keep nothing.
    """

    name: str
    load: Loader
    file: "StagedFile | None" = None
    collection: str = DEFAULT_COLLECTION
    keep: "Callable[[], StagedFile | None] | None" = None


@dataclass(frozen=True)
class LoadedSource:
    """A source read and chunked, not yet written."""

    name: str
    kind: str
    chunks: list[Chunk]
    file: "StagedFile | None" = None
    collection: str = DEFAULT_COLLECTION


class Indexer:
    """Writes sources into a store through an embedder, idempotently."""

    def __init__(self, embedder: Embedder, store: Store, config: ChunkConfig = ChunkConfig(), *,
                 write_batch: int = Settings.ingest_batch, journal: "Journal | None" = None,
                 embed_batches: BatchEmbedder | None = None) -> None:
        """Args:
            embedder: turns chunk texts into vectors; its tokenizer sizes the chunks.
            store: where chunks go.
            config: chunk size, overlap and hard limit in word pieces.
            write_batch: chunks embedded and written per step.
            journal: makes each source's write one crash-safe unit (``ingest.journal``); without
                one a killed run leaves a mix that the next run of the same sources completes.
            embed_batches: embeds all write batches of a run, yielding each batch's vectors in
                order (e.g. on a Ray cluster, ``ingest.distributed``); ``embedder.embed`` per
                batch when None.
        """
        self.embedder = embedder
        self.store = store
        self.config = config
        self.write_batch = write_batch
        self.journal = journal
        self.embed_batches: BatchEmbedder = embed_batches or self._embed_here

    def _embed_here(self, batches: Sequence[Sequence[str]]) -> Iterator[np.ndarray]:
        for texts in batches:
            yield self.embedder.embed(texts)

    def chunk(self, docs: Sequence[Document]) -> list[Chunk]:
        """Chunks of documents, sized by the embedder's tokenizer; duplicate ids dropped."""
        seen: set[str] = set()
        out = []
        for c in chunk_documents(docs, self.embedder.token_offsets, self.config):
            if c.id not in seen:
                seen.add(c.id)
                out.append(c)
        return out

    def run(self, jobs: Iterable[SourceJob], *, progress: bool = False) -> IngestReport:
        """Ingest every source; a source that fails is reported and the batch goes on.

        Args:
            jobs: the sources.
            progress: show a progress bar (on stderr) while embedding.

        Returns:
            What was added, replaced, left unchanged or skipped (with the reason).
        """
        report = IngestReport()
        return self.write(self.load(jobs, report), report, progress=progress)

    def load(self, jobs: Iterable[SourceJob], report: IngestReport) -> list[LoadedSource]:
        """Read and chunk sources without touching the store; failures go into ``report.skipped``.

        Args:
            jobs: the sources.
            report: collects the sources that could not be read.

        Returns:
            The sources that have chunks, in order.
        """
        out = []
        for job in jobs:
            try:
                docs = job.load()
            except SourceError as exc:
                log.info("skipped %s: %s", exc.source, exc)
                report.skipped[exc.source or job.name] = str(exc)
                report.errors[exc.source or job.name] = exc
                continue
            name = docs[0].source if docs else job.name
            # The collection is part of every chunk id, so two collections never share a chunk.
            chunks = self.chunk([replace(d, collection=job.collection) for d in docs])
            if not chunks:
                report.skipped[name] = f"{name} has no text to index"
                continue
            file = job.file if job.file is not None or job.keep is None else job.keep()
            out.append(LoadedSource(name, docs[0].kind, chunks, file, job.collection))
        return out

    def write(self, loaded: Sequence[LoadedSource], report: IngestReport | None = None, *,
              progress: bool = False, on_progress: Callable[[Progress], None] | None = None) -> IngestReport:
        """Write loaded sources: each changed one as a journaled unit (the caller serializes writers).

        Args:
            loaded: from :meth:`load`.
            report: the report to complete (a new one when omitted).
            progress: show a progress bar (on stderr) while embedding.
            on_progress: called after each batch with the chunks embedded so far (``embedding``);
                its source is the one being written, or ``""`` when several are.

        Returns:
            The report.
        """
        report = report if report is not None else IngestReport()
        plans: list[tuple[LoadedSource, list[Chunk], set[str], set[str]]] = []
        kinds: dict[tuple[str, str], str] | None = None
        # One source named twice in a batch (two folders' report.pdf): the last one read wins.
        for item in {(item.collection, item.name): item for item in loaded}.values():
            name, where = item.name, item.collection
            anywhere = self.store.ids_for(name, complete=False, collection=where)
            complete = self.store.ids_for(name, complete=True, collection=where) if anywhere else set()
            if anywhere:
                kinds = kinds if kinds is not None else {(s.collection, s.source): s.kind for s in self.store.sources()}
                held = kinds.get((where, name), item.kind)
                if held != item.kind:
                    _skip(report, NameConflictError(name, _conflict_message(name, held, item.kind)))
                    continue
            wanted = {c.id for c in item.chunks}
            if wanted == complete == anywhere:
                report.unchanged[name] = len(item.chunks)
                if item.file is not None:
                    item.file.commit()  # same chunks: the file alone changes, atomically
                continue
            plans.append((item, [c for c in item.chunks if c.id not in complete], complete, anywhere - wanted))
            (report.replaced if anywhere - wanted else report.added)[name] = len(item.chunks)

        entries = []
        try:
            if self.journal is not None:
                for item, _, old, _ in plans:
                    entries.append(self.journal.begin(self.store, item.name, old=old, new={c.id for c in item.chunks},
                                                      file=item.file, collection=item.collection))
            todo = [c for _, new, _, _ in plans for c in new]
            # Longest first: batches of similar length waste the least padding.
            todo.sort(key=lambda c: c.tokens, reverse=True)
            parts = [todo[lo : lo + self.write_batch] for lo in range(0, len(todo), self.write_batch)]
            vectors = self.embed_batches([[c.text for c in part] for part in parts])
            bar = progress_bar(len(todo), desc="Embedding", unit="chunk", enabled=progress)
            source = plans[0][0].name if len(plans) == 1 else ""
            done = 0
            for part, embedded in zip(parts, vectors, strict=True):
                self.store.add(part, embedded)
                bar.update(len(part))
                done += len(part)
                if on_progress is not None:
                    on_progress(Progress(source, "embedding", done, len(todo)))
            bar.close()
            for i, (item, _, _, stale) in enumerate(plans):
                if item.file is not None:
                    item.file.commit()
                if stale:
                    self.store.delete_ids(sorted(stale))
                if entries:
                    self.journal.finish(entries[i])
        except BaseException:
            for entry in entries:
                if entry.fd is not None:
                    self.journal.abort(self.store, entry)
            raise
        return report


def _skip(report: IngestReport, exc: SourceError) -> None:
    log.info("skipped %s: %s", exc.source, exc)
    report.skipped[exc.source] = str(exc)
    report.errors[exc.source] = exc


def _conflict_message(name: str, held: str, new: str) -> str:
    what = {"pdf": "an uploaded PDF", "text": "a text source", "wikipedia": "a Wikipedia page"}
    return (f"{name} is already {what.get(held, held)}, so {what.get(new, new)} cannot take its name; "
            f"choose another name or delete {name} first")

