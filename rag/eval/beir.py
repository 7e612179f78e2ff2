"""Retrieval quality on a BEIR data set (e.g. SciFact), measured through the product's own path.

The corpus is ingested into a fresh temporary store and every test query goes through
``RAG.search``; the ranked documents are scored with nDCG@k, recall@k and MRR@k as BEIR and
MTEB define them (see ``rag.eval.metrics``).

Two ways to index the corpus:

* ``units="chunks"`` (default): one Document per corpus entry through the product's
  ingestion (``RAG.ingest``), cut by its normal chunking; a document scores as its best chunk.
* ``units="whole"``: one vector per corpus entry, the whole text embedded and cut by the model
  at 256 word pieces, as MTEB does. This reproduces the published MiniLM figures and shows what
  chunking gains or loses against them.

Either way a document's text is MTEB's ``title + " " + text`` and every unit carries the BEIR
doc id as its source name, so hits map back to documents.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from rag.errors import ConfigError
from rag.eval.common import EvalDataError, iter_progress, progress_bar, resolve_settings, temporary_rag
from rag.eval.metrics import ranking_scores
from rag.settings import Settings
from rag.types import Chunk, Document, chunk_id

Units = Literal["whole", "chunks"]
UNITS: tuple[str, ...] = ("chunks", "whole")
# Always reported; callers may add more cutoffs.
DEFAULT_KS: tuple[int, ...] = (10, 100)
# With chunks, a document can fill several of the top places; fetch this many chunks per
# document wanted so that, after keeping each document's best chunk, enough documents remain.
CHUNKS_PER_DOC = 3
METRIC_KEYS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_WRITE_BATCH = 256


@dataclass(frozen=True)
class BeirData:
    """A BEIR data set: corpus (id -> (title, text)), queries (id -> text), qrels (query -> doc -> rel)."""

    name: str
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def doc_text(title: str, text: str) -> str:
    """MTEB's text for a corpus entry: ``title + " " + text``, stripped."""
    return f"{title} {text}".strip()


def load_beir(directory: str | Path, split: str = "test") -> BeirData:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` of a BEIR data set.

    Args:
        directory: the data set's folder.
        split: which qrels file to read.

    Returns:
        The data, with only the queries that have qrels.

    Raises:
        EvalDataError: a file is missing or not in BEIR's format.
    """
    root = Path(directory)
    if not root.is_dir():
        raise EvalDataError(f"The BEIR folder {str(root)!r} does not exist; give a folder with corpus.jsonl, "
                            "queries.jsonl and qrels/test.tsv")
    corpus = {}
    for line_no, row in _jsonl(root / "corpus.jsonl"):
        doc_id = _field(row, "_id", root / "corpus.jsonl", line_no)
        corpus[doc_id] = (str(row.get("title") or ""), str(row.get("text") or ""))
    queries = {}
    for line_no, row in _jsonl(root / "queries.jsonl"):
        queries[_field(row, "_id", root / "queries.jsonl", line_no)] = _field(row, "text", root / "queries.jsonl",
                                                                             line_no)
    qrels = _read_qrels(root / "qrels" / f"{split}.tsv")
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise EvalDataError(f"{len(missing)} query id(s) of qrels/{split}.tsv are not in queries.jsonl "
                            f"(first: {missing[0]!r}); the files do not belong together")
    if not corpus:
        raise EvalDataError(f"{root / 'corpus.jsonl'} holds no documents; give a non-empty corpus")
    return BeirData(root.name, corpus, {q: queries[q] for q in qrels}, qrels)


def _jsonl(path: Path):
    if not path.is_file():
        raise EvalDataError(f"The BEIR file {str(path)!r} does not exist; a BEIR folder holds corpus.jsonl, "
                            "queries.jsonl and qrels/test.tsv")
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"Line {line_no} of {path} is not JSON ({exc.msg}); "
                                    "each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise EvalDataError(f"Line {line_no} of {path} is not a JSON object; each line must be one")
            yield line_no, row


def _field(row: dict, key: str, path: Path, line_no: int) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise EvalDataError(f"Line {line_no} of {path} has no {key!r}; every entry needs one")
    return str(value)


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise EvalDataError(f"The qrels file {str(path)!r} does not exist; a BEIR folder holds qrels/test.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise EvalDataError(f"Line {line_no} of {path} has {len(row)} column(s); qrels need "
                                    "query-id, corpus-id and score separated by tabs")
            try:
                score = int(row[2])
            except ValueError:
                if line_no == 1:  # the header: query-id corpus-id score
                    continue
                raise EvalDataError(f"Line {line_no} of {path} has score {row[2]!r}; it must be an integer") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    if not qrels:
        raise EvalDataError(f"The qrels file {path} holds no judgements; give a non-empty qrels file")
    return qrels


def evaluate_beir(
    directory: str | Path,
    *,
    settings: Settings | None = None,
    units: Units = "chunks",
    progress: bool = False,
    ks: Sequence[int] = (),
    split: str = "test",
) -> dict[str, Any]:
    """Ingest a BEIR corpus into a fresh store, run every query, and score the rankings.

    Args:
        directory: the BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).
        settings: chunking and embedding settings (environment and defaults when None).
        units: ``"chunks"`` (the product's chunking) or ``"whole"`` (one vector per document).
        progress: show progress bars on stderr.
        ks: cutoffs to report besides 10 and 100.
        split: the qrels split.

    Returns:
        ``ndcg@k``, ``recall@k``, ``mrr@k`` for each cutoff, ``n`` (queries), ``seconds`` (the
        whole run, model load included; ``ingest_seconds`` and ``query_seconds`` split it), and
        the settings and sizes of the run.
    """
    if units not in UNITS:
        raise ConfigError(f"units={units!r} is not one of {', '.join(UNITS)}; e.g. units='chunks'")
    cutoffs = sorted({*DEFAULT_KS, *ks})
    if cutoffs[0] < 1:
        raise ConfigError(f"k={cutoffs[0]} must be at least 1")
    s = resolve_settings(settings)
    started = time.perf_counter()
    data = load_beir(directory, split)
    with temporary_rag(s) as rag:
        rag.embedder  # load the model before the clock starts: ingest_seconds is ingestion alone
        t0 = time.perf_counter()
        if units == "whole":
            n_units, skipped = _index_whole(rag, data, progress)
        else:
            n_units, skipped = _index_chunks(rag, data, progress)
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        depth = cutoffs[-1] * (CHUNKS_PER_DOC if units == "chunks" else 1)
        rankings = {}
        for qid in iter_progress(list(data.queries), total=len(data.queries), desc="Querying", unit="query",
                                 enabled=progress):
            hits = rag.search(data.queries[qid], depth)
            rankings[qid] = _first_per_doc([h.source for h in hits])[: cutoffs[-1]]
        query_s = time.perf_counter() - t0
    scores = ranking_scores(data.qrels, rankings, cutoffs)
    return {
        "eval": "beir",
        "dataset": data.name,
        **scores,
        "n": len(data.qrels),
        "seconds": round(time.perf_counter() - started, 1),
        "units": units,
        "retrieval_mode": s.retrieval_mode,
        "fusion": s.fusion if s.retrieval_mode == "hybrid" else None,
        "keyword_weight": s.keyword_weight if s.retrieval_mode == "hybrid" else None,
        "chunk_tokens": s.chunk_tokens if units == "chunks" else None,
        "chunk_overlap": s.chunk_overlap if units == "chunks" else None,
        "k": cutoffs,
        "depth": depth,
        "documents": len(data.corpus),
        "indexed": n_units,
        "skipped": skipped,
        "ingest_seconds": round(ingest_s, 1),
        "query_seconds": round(query_s, 1),
    }


def _first_per_doc(sources: Sequence[str]) -> list[str]:
    """Doc ids in rank order, each at its best (first) place."""
    seen: set[str] = set()
    out = []
    for s in sources:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _index_chunks(rag: Any, data: BeirData, show: bool) -> tuple[int, int]:
    """The product's ingestion: one Document per corpus entry, its source named by the doc id."""
    from ingest.index import SourceJob

    def job(doc_id: str, title: str, text: str) -> SourceJob:
        doc = Document.from_text(doc_id, doc_text(title, text), title=title)
        return SourceJob(doc_id, lambda: [doc])

    report = rag.ingest([job(d, t, x) for d, (t, x) in data.corpus.items()], progress=show)
    chunks = sum(report.added.values()) + sum(report.replaced.values()) + sum(report.unchanged.values())
    return chunks, len(report.skipped)


def _index_whole(rag: Any, data: BeirData, show: bool) -> tuple[int, int]:
    """One unit per corpus entry, embedded whole; the embedder cuts it at the model's limit as MTEB does."""
    embedder, store = rag.embedder, rag.store
    units = [(d, t, doc_text(t, x)) for d, (t, x) in data.corpus.items() if doc_text(t, x)]
    counts = [len(o) for o in embedder.token_offsets([u[2] for u in units])]
    chunks = [
        Chunk(id=chunk_id(d, None, None, 0, text), source=d, text=text, kind="text", title=t or d,
              start=0, end=len(text), tokens=n)
        for (d, t, text), n in zip(units, counts)
    ]
    # Longest first, like the indexer: batches of similar length waste the least padding.
    chunks.sort(key=lambda c: c.tokens, reverse=True)
    bar = progress_bar(len(chunks), desc="Embedding", unit="doc", enabled=show)
    for lo in range(0, len(chunks), _WRITE_BATCH):
        part = chunks[lo : lo + _WRITE_BATCH]
        store.add(part, embedder.embed([c.text for c in part]))
        bar.update(len(part))
    bar.close()
    return len(chunks), len(data.corpus) - len(units)
