"""Dump per-question refusal features for several store configurations (for fitting rules offline).

    python -m bench.refusal_features IGNORED --store DIR --build [PATH ...] [--limit N]   # ingest once
    python -m bench.refusal_features OUT.jsonl --store DIR --configs NAME=[PATH[,PATH...]][@LIMIT] ...
        [--max-questions N] [--shift K] [--no-sentences] [--no-reader]

One persistent store (DIR) holds SQuAD half-a and the distractors; each configuration
restricts retrieval to its own sources (SQuAD + its distractors), so the store is embedded
once for all of them. Each line holds, per configuration and case (``NAME/a`` answerable,
``NAME/u`` own article left out): the hit cosines, sources and titles, the question words each
top-5 sentence and each chunk holds, the words' document frequencies in the configuration's
sources, the chunk ids, BM25's own top 5 (ids and scores) and the dense list's best two cosines
in that scope, the question's gold answers (for
``rag.eval.refusals.answered_elsewhere``), and (without --no-sentences, slow on a busy CPU) the
sentences' cosines, the phrase share (:func:`rag.refuse.phrase_share`) and the answerability
reader's best logit (:func:`rag.refuse.answerability`), which the product's evidence reads.
``python -m bench.train_answerability`` trains that reader on these dumps.
``python -m bench.fit_refusals OUT.jsonl ...`` scores rules on them; the product's rule
(:func:`rag.refuse.assess`) gives the same scores as ``rag eval refusals --dump``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

SQUAD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad" / "squad-dev-v1.1-half-a.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--store", required=True)
    ap.add_argument("--configs", nargs="*", default=["squad="], help="name=path[,path...][@limit] ...")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-sentences", action="store_true", help="skip sentence vectors (slow on a busy CPU)")
    ap.add_argument("--no-reader", action="store_true",
                    help="skip the shipped answerability reader's logit (a dump to train a new reader on)")
    ap.add_argument("--max-questions", type=int, default=None)
    ap.add_argument("--shift", type=int, default=0,
                    help="take the question this many places after each evenly spread one (0: those rag eval asks)")
    ap.add_argument("--build", nargs="*", default=None, help="ingest these distractor paths (all records) and exit")
    args = ap.parse_args()

    from ingest.index import SourceJob
    from rag.eval.distractors import load_distractors
    from rag.eval.squad import is_hit, load_squad
    from rag.generate.extractive import ExtractiveGenerator
    from rag.text import content_words, stem as _stem
    from rag.keyword import keyword_text
    from rag.service import RAG
    from rag.settings import Settings

    s = Settings.from_env().replace(data_dir=Path(args.store))
    rag = RAG(settings=s)
    data = load_squad(SQUAD)
    if args.build is not None:
        docs = list(data.documents) + (load_distractors(args.build, limit=args.limit).documents if args.build else [])
        by_source: dict[str, list] = {}
        for d in docs:
            by_source.setdefault(d.source, []).append(d)
        rep = rag.ingest([SourceJob(src, lambda ds=ds: ds) for src, ds in by_source.items()], progress=True)
        print(rep, file=sys.stderr)
        return
    from rag.answer import Answerer
    from rag.cite import chunk_sentences
    from rag.refuse import answerability, phrase_share

    squad_sources = [d.source for d in data.documents]
    configs = {}
    for spec in args.configs:  # name=path[,path...][@limit]
        name, _, paths = spec.partition("=")
        paths, _, limit = paths.partition("@")
        extra = load_distractors(paths.split(","), limit=int(limit) if limit else None).sources if paths else []
        configs[name] = squad_sources + extra
    questions = data.questions
    if args.max_questions and args.max_questions < len(questions):
        step = len(questions) / args.max_questions
        if not 0 <= args.shift < step:
            sys.exit(f"--shift {args.shift} must be from 0 to {int(step)} (below the spacing of the questions)")
        questions = [questions[int(i * step) + args.shift] for i in range(args.max_questions)]
    extractor = ExtractiveGenerator(rag.embedder)
    answerer = Answerer(rag.retriever, extractor, s, rag.embedder)
    keywords = rag.store.keywords
    from tqdm import tqdm

    with open(args.out, "w", encoding="utf-8") as out:
        for qi, q in enumerate(tqdm(questions, desc="questions")):
            qv = answerer.vector(q.text)
            qwords = sorted(content_words(q.text))
            raw = {}
            for w in re.findall(r"[a-z0-9]+", q.text.lower()):
                if _stem(w) in qwords:
                    raw.setdefault(_stem(w), w)
            row = {"i": qi, "source": q.source, "q": q.text, "words": qwords, "answers": list(q.answers)}
            for cname, scope in configs.items():
                for case, sources in (("a", scope), ("u", [x for x in scope if x != q.source])):
                    found = answerer.retrieve(q.text, sources=sources)
                    hits = found.hits
                    per_hit = ([(chunk_sentences(h.text), None) for h in hits[:5]] if args.no_sentences
                               else answerer.passages.many(hits[:5]))
                    n, raw_df = keywords.document_frequencies(list(raw.values()), sources)
                    # BM25's and the dense list's own best (do they agree; how far ahead is each one's best?)
                    keyword = rag.store.keyword_query(q.text, 5, sources)
                    dense = rag.store.nearest(qv, 2, sources=sources)
                    df = {w: raw_df[raw[w]] for w in qwords}
                    row[cname + "/" + case] = {
                        "cos": [round(h.score, 4) for h in hits],
                        "src": [h.source for h in hits],
                        "sent_cos": [[round(float(x), 4) for x in (v @ qv)] if v is not None and len(v) else []
                                     for _, v in per_hit],
                        "sent_words": [[sorted(content_words(t) & set(qwords)) for t in texts] for texts, _ in per_hit],
                        "chunk_words": [sorted(content_words(keyword_text(h.chunk)) & set(qwords)) for h in hits],
                        "text": [h.text for h in hits[:5]],
                        "titles": [h.chunk.title for h in hits[:5]],
                        "answerable": None if args.no_sentences or args.no_reader else answerability(
                            q.text, hits, answerer.passages, [v @ qv for _, v in per_hit], answerer.reader),
                        "n": n, "df": df, "ids": [h.chunk.id for h in hits[:5]],
                        "keyword_ids": [i for i, _ in keyword],
                        "keyword_scores": [round(float(x), 4) for _, x in keyword],
                        "dense_cos": [round(float(x), 4) for _, x in dense],
                        "phrases": None if args.no_sentences else phrase_share(q.text, hits, answerer.passages, qv),
                        "hit": any(is_hit(h, q) for h in hits) if case == "a" else False,
                    }
            out.write(json.dumps(row) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
