"""Dump every candidate sentence of the extractive answer, with its raw features and labels.

    python -m bench.sentence_features IGNORED --store DIR --build            # ingest SQuAD half-a once
    python -m bench.sentence_features OUT.jsonl --store DIR [--max-questions N]

One line per question (spread over half-a by :func:`rag.eval.common.spread_questions`): the
question, its content words and their document frequencies in the store, and for each of the
chunks the product retrieves for the extract (``rag.answer.EXTRACT_DEPTH``): its score, source,
whether it is a gold chunk (``rag.eval.squad.is_hit``), and per sentence its text, MiniLM
cosine to the question, cosine of the sentence joined with its predecessor, centrality (cosine
to the chunk's mean sentence) and whether it contains a gold answer. ``python -m
bench.fit_sentences OUT.jsonl`` fits the sentence ranker on it offline (no re-retrieval).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

SQUAD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad" / "squad-dev-v1.1-half-a.json"


def _r(values) -> list[float]:
    return [round(float(x), 4) for x in values]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--store", required=True)
    ap.add_argument("--squad", default=str(SQUAD))
    ap.add_argument("--max-questions", type=int, default=None)
    ap.add_argument("--build", action="store_true", help="ingest the SQuAD file into the store and exit")
    args = ap.parse_args()

    from ingest.index import SourceJob
    from rag.answer import Answerer
    from rag.eval.common import spread_questions
    from rag.eval.squad import is_hit, load_squad
    from rag.generate.extractive import ExtractiveGenerator
    from rag.generate.sentence_features import sentence_cosines
    from rag.service import RAG
    from rag.settings import Settings
    from rag.text import content_words, stem

    s = Settings.from_env().replace(data_dir=Path(args.store))
    rag = RAG(settings=s)
    data = load_squad(args.squad)
    if args.build:
        print(rag.ingest([SourceJob(d.source, lambda d=d: [d]) for d in data.documents], progress=True),
              file=sys.stderr)
        return
    from tqdm import tqdm

    answerer = Answerer(rag.retriever, ExtractiveGenerator(rag.embedder), s, rag.embedder)
    keywords = rag.store.keywords
    questions = spread_questions(data.questions, args.max_questions)
    # In file order: consecutive questions share their article's chunks, whose sentence vectors
    # are then embedded once (a shuffled order embeds nearly every chunk anew per question).
    with open(args.out, "w", encoding="utf-8") as out:
        for qi, q in enumerate(tqdm(questions, desc="questions")):
            qv = answerer.vector(q.text)
            qwords = sorted(content_words(q.text))
            raw: dict[str, str] = {}
            for w in re.findall(r"[a-z0-9]+", q.text.lower()):
                if stem(w) in qwords:
                    raw.setdefault(stem(w), w)
            n, raw_df = keywords.document_frequencies(list(raw.values()), None)
            found = answerer.retrieve(q.text)
            chunks = []
            for rank, (hit, (texts, vectors)) in enumerate(zip(found.hits, answerer.passages.many(found.hits))):
                if not texts:
                    chunks.append({"score": hit.score, "src": hit.source, "gold": is_hit(hit, q), "sents": []})
                    continue
                cos, pair_cos, centrality = sentence_cosines(vectors, qv)
                folded = [t.casefold() for t in texts]
                chunks.append({
                    "score": round(float(hit.score), 4), "src": hit.source, "gold": is_hit(hit, q),
                    "sents": texts, "cos": _r(cos), "pair_cos": _r(pair_cos),
                    "centrality": _r(centrality),
                    "has": [any(a.casefold() in f for a in q.answers) for f in folded],
                })
            row = {"i": qi, "source": q.source, "q": q.text, "answers": list(q.answers), "words": qwords,
                   "n": n, "df": {w: raw_df.get(raw[w], 0) for w in qwords if w in raw}, "chunks": chunks}
            out.write(json.dumps(row) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
