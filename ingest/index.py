"""Idempotent ingestion: sources -> chunks -> vectors -> store, with progress and a summary.

For each source we compare the chunk ids it should have with the ids the store
holds: unchanged sources cost nothing, new chunks are embedded and added, and
stale chunks are deleted only after the new ones are in. A run killed at any
point leaves a state that the next run completes to exactly the result of an
uninterrupted run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from ingest.chunk import ChunkConfig, chunk_documents
from rag.errors import SourceError
from rag.progress import progress_bar
from rag.protocols import Embedder, Store
from rag.settings import Settings
from rag.types import Chunk, Document, IngestReport

log = logging.getLogger(__name__)

Loader = Callable[[], list[Document]]


@dataclass(frozen=True)
class SourceJob:
    """A named source and how to read it (reading may raise SourceError)."""

    name: str
    load: Loader


class Indexer:
    """Writes sources into a store through an embedder, idempotently."""

    def __init__(self, embedder: Embedder, store: Store, config: ChunkConfig = ChunkConfig(), *,
                 write_batch: int = Settings.ingest_batch) -> None:
        """Args:
            embedder: turns chunk texts into vectors; its tokenizer sizes the chunks.
            store: where chunks go.
            config: chunk size, overlap and hard limit in word pieces.
            write_batch: chunks embedded and written per step (a kill loses at most one step).
        """
        self.embedder = embedder
        self.store = store
        self.config = config
        self.write_batch = write_batch

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
        plans: list[tuple[str, list[Chunk], set[str]]] = []
        for job in jobs:
            try:
                docs = job.load()
            except SourceError as exc:
                log.info("skipped %s: %s", exc.source, exc)
                report.skipped[exc.source or job.name] = str(exc)
                report.errors[exc.source or job.name] = exc
                continue
            name = docs[0].source if docs else job.name
            chunks = self.chunk(docs)
            if not chunks:
                report.skipped[name] = f"{name} has no text to index"
                continue
            existing = self.store.ids_for(name)  # complete chunks only: a crash may have left halves
            anywhere = _ids_anywhere(self.store, name)
            wanted = {c.id for c in chunks}
            if wanted == existing == anywhere:
                report.unchanged[name] = len(chunks)
                continue
            plans.append((name, [c for c in chunks if c.id not in existing], anywhere - wanted))
            (report.replaced if anywhere - wanted else report.added)[name] = len(chunks)

        todo = [c for _, new, _ in plans for c in new]
        # Longest first: batches of similar length waste the least padding.
        todo.sort(key=lambda c: c.tokens, reverse=True)
        bar = progress_bar(len(todo), desc="Embedding", unit="chunk", enabled=progress)
        for lo in range(0, len(todo), self.write_batch):
            part = todo[lo : lo + self.write_batch]
            self.store.add(part, self.embedder.embed([c.text for c in part]))
            bar.update(len(part))
        bar.close()
        for _, _, stale in plans:
            if stale:
                self.store.delete_ids(sorted(stale))
        return report


def _ids_anywhere(store: Store, source: str) -> set[str]:
    return store.ids_for(source, complete=False)
