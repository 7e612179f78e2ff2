"""Choose the extract's constants on the shipped cross-encoder: reread weight, runner-up bars, short answers.

    python -m bench.extract_rule DUMP.jsonl [--logits CACHE.npz]

DUMP is ``bench.sentence_features``' dump (``--max-questions 500``: the questions ``rag eval
answers --max-questions 500`` asks). The shipped cross-encoder (``rag.generate.rerank``)
rereads each question's best ``RERANK_TOP`` candidates by the shipped feature weights, once
(``--logits`` keeps its logits for the next run); then every point of
``bench.train_reranker.GRID`` (weight, runner-up bar, same-chunk share, short-answer words) is
scored with the product's own rule (``rule_figures``: ``reread``, ``runner_ups``, ``completed``):

* the product's constants and the ones before, on every question;
* a cross-fit by article: the point chosen (most answers held with precision >= 0.85 and median
  words <= 40) on the even articles, scored on the odd ones, and back.

The cross-encoder itself was trained on SQuAD half-a (``bench.train_reranker``), so only the
cross-fit of the rule is held out; ``bench.train_reranker --heldout`` holds out the model too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.fit_sentences import load
from bench.train_reranker import GRID, choose, rule_figures

BEFORE = (0.5, 0.25, 0.33, 0)


def reread_logits(rows: list[dict], cache: Path | None) -> None:
    """Set each row's ``s``, ``top`` and ``c`` as the product computes them (logits cached in ``cache``)."""
    from rag.generate.extractive import RERANK_TOP, WEIGHTS
    from rag.generate.sentence_features import FEATURES

    w = np.array([WEIGHTS.get(f, 0.0) for f in FEATURES])
    for r in rows:
        r["s"] = r["X"] @ w
        r["top"] = np.argsort(-r["s"], kind="stable")[:RERANK_TOP]
    if cache is not None and cache.is_file():
        saved = np.load(cache, allow_pickle=True)["logits"]
        for r, c in zip(rows, saved):
            r["c"] = np.asarray(c)
        return
    from rag.generate.rerank import SentenceReranker

    model = SentenceReranker.shared()
    for n, r in enumerate(rows):
        title = r["source"].split(":", 1)[-1]
        r["c"] = model.score(r["q"], [(title, r["texts"][i]) for i in r["top"]])
        if n % 100 == 0:
            print(f"  reread {n}/{len(rows)}", flush=True)
    if cache is not None:
        np.savez(cache, logits=np.array([r["c"] for r in rows], dtype=object))


def show(label: str, got: tuple[float, float, float]) -> None:
    print(f"{label}: holds {got[0]:.3f}, median words {got[1]:g}, precision {got[2]:.3f}")


def main() -> None:
    from rag.generate.extractive import ADD_SENTENCE, RERANK_WEIGHT, SAME_CHUNK, SHORT_ANSWER

    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--logits", type=Path, default=None, help="cache of the cross-encoder's logits (.npz)")
    args = ap.parse_args()
    rows = load(args.dump)
    reread_logits(rows, args.logits)
    product = (RERANK_WEIGHT, ADD_SENTENCE, SAME_CHUNK, SHORT_ANSWER)
    print(f"{len(rows)} questions; weight, add, same chunk, short words")
    show(f"before {BEFORE}", rule_figures(rows, *BEFORE))
    show(f"product {product}", rule_figures(rows, *product))
    articles = list(dict.fromkeys(r["source"] for r in rows))
    parity = {a: i % 2 for i, a in enumerate(articles)}
    pooled = {"chosen": np.zeros(3), "before": np.zeros(3), "product": np.zeros(3)}
    for fold in (0, 1):
        fit = [r for r in rows if parity[r["source"]] == fold]
        test = [r for r in rows if parity[r["source"]] != fold]
        point = choose(fit)
        for name, at in (("chosen", point), ("before", BEFORE), ("product", product)):
            got = rule_figures(test, *at)
            pooled[name] += np.array(got) * len(test) / len(rows)
            show(f"  fit on {'even' if fold == 0 else 'odd'} articles, scored on the others: {name} {at}", got)
    for name, got in pooled.items():
        show(f"cross-fit, question-weighted: {name}", tuple(got))
    print(f"({len(GRID)} grid points)")


if __name__ == "__main__":
    main()
