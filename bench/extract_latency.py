"""What the extract's cross-encoder costs per question: choosing the sentences with and without it.

    python -m bench.extract_latency [--articles 4] [--questions 200]

Indexes the first ``--articles`` articles of SQuAD half-a in a temporary store, retrieves the
product's chunks for ``--questions`` of their questions, then times
:meth:`rag.generate.extractive.ExtractiveGenerator.select` on the same hits with the features
alone and with the reranker, alternating per question so both see the same machine load.
Sentence vectors are cached before timing (an answer embeds them during retrieval's evidence
check anyway), so the figures are the ranking's own cost. Prints p50 / p95 in milliseconds
and the ratio, and what the refusal's answerability reader (:func:`rag.refuse.answerability`)
adds to every answer, extract or language model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import SQUAD_HALF_A, setup_offline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=4)
    ap.add_argument("--questions", type=int, default=200)
    args = ap.parse_args()
    setup_offline()
    from rag.answer import Answerer
    from rag.eval.answers import squad_rag
    from rag.eval.common import resolve_settings, spread_questions
    from rag.eval.squad import load_squad
    from rag.generate.extractive import ExtractiveGenerator
    from rag.generate.rerank import SentenceReranker
    from rag.refuse import answerability, sentence_cosines

    s = resolve_settings(None)
    data = load_squad(SQUAD_HALF_A, limit_articles=args.articles)
    questions = spread_questions(data.questions, args.questions)
    with squad_rag(data, s) as rag:
        plain = ExtractiveGenerator(rag.embedder)
        reread = ExtractiveGenerator(rag.embedder, reranker=SentenceReranker.shared(), passages=plain.passages)
        answerer = Answerer(rag.retriever, plain, s, rag.embedder)
        asked = []
        for q in questions:
            found = answerer.retrieve(q.text)
            vector = answerer.vector(q.text)
            plain.select(q.text, found.hits, question_vector=vector)  # caches the sentence vectors
            reread.select(q.text, found.hits, question_vector=vector)  # first call loads nothing new
            asked.append((q.text, found.hits, vector))
        times: dict[str, list[float]] = {"features": [], "with reranker": [], "answerability": []}
        reader = answerer.reader
        for text, hits, vector in asked:
            for name, gen in (("features", plain), ("with reranker", reread)):
                started = time.perf_counter()
                gen.select(text, hits, question_vector=vector)
                times[name].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            answerability(text, hits, plain.passages, sentence_cosines(plain.passages, hits, vector), reader)
            times["answerability"].append((time.perf_counter() - started) * 1000)
    for name, ms in times.items():
        print(f"{name:14s} p50 {np.percentile(ms, 50):7.1f} ms   p95 {np.percentile(ms, 95):7.1f} ms")
    ratio = np.percentile(times["with reranker"], 50) / np.percentile(times["features"], 50)
    print(f"{len(asked)} questions; with the reranker / features alone (p50): {ratio:.1f} x")


if __name__ == "__main__":
    main()
