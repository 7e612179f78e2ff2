"""Fit the extractive generator's sentence ranker offline on the dump of ``bench.sentence_features``.

    python -m bench.fit_sentences DUMP.jsonl [--l2 X] [--print-weights]

Each question's distinct candidate sentences get the features of
:func:`rag.generate.sentence_features.candidate_features` (the product's own function). A
linear score is fitted listwise: a softmax over a question's candidates, maximising the
probability of the sentences that contain a gold answer (questions with none are left out
of the fit, not of the figures). Two-fold cross-fit by article (fit on the even articles,
score the odd ones, and the other way round) gives held-out figures; the weights printed
at the end are fitted on every question. Figures: top-1 sentence contains a gold answer,
top-1 from a gold chunk, and for the second-sentence rules (add the runner-up when its
probability is at least T; ``chunk@T/S``, the product's rule: at least T, or S x T for a
sentence of the best one's own chunk), contains / median words / sentence precision.
"""

from __future__ import annotations

import argparse
import json
from statistics import median

import numpy as np

from rag.generate.sentence_features import FEATURES, candidate_features

# The hand-weighted score the product used before the fit, in the same feature space.
OLD = {"cosine": 1.0, "overlap": 1.0, "chunk_score": 1.0, "context": 0.5, "type_match": 0.2, "centrality": -0.6}


def load(path: str) -> list[dict]:
    """Per question: its article, the candidates' feature matrix, labels and word counts."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            chunks = [(c["sents"], c.get("cos", []), c.get("pair_cos", []), c.get("centrality", []))
                      for c in r["chunks"]]
            cands = candidate_features(r["q"], chunks, [c["score"] for c in r["chunks"]])
            if not cands:
                continue
            answers = [a.casefold() for a in r["answers"]]
            has = np.array([any(a in c.text.casefold() for a in answers) for c in cands])
            gold = np.array([r["chunks"][c.hit]["gold"] for c in cands])
            rows.append({"source": r["source"], "X": np.array([c.features for c in cands]), "has": has,
                         "gold": gold, "words": np.array([len(c.text.split()) for c in cands]),
                         "hit": np.array([c.hit for c in cands]),
                         "texts": [c.text for c in cands], "q": r["q"]})
    return rows


def fit(rows: list[dict], l2: float, iters: int = 400, label: str = "has") -> np.ndarray:
    """Listwise softmax weights (on the raw features) by full-batch gradient descent with Adam.

    ``label``: ``has`` (the sentence holds a gold answer) or ``gold`` (and its chunk is a gold chunk).
    """
    X = np.vstack([r["X"] for r in rows])
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-9
    ys = [r["has"] & r["gold"] if label == "gold" else r["has"] for r in rows]
    train = [((r["X"] - mu) / sd, y) for r, y in zip(rows, ys) if y.any()]
    w = np.zeros(len(FEATURES))
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, iters + 1):
        g = l2 * w
        for Z, y in train:
            s = Z @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            q = p * y / (p[y].sum())
            g += Z.T @ (p - q) / len(train)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= 0.05 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return w / sd


def probabilities(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    s = X @ w
    p = np.exp(s - s.max())
    return p / p.sum()


def pick(r: dict, p: np.ndarray, rule: str, t) -> list[int]:
    """The candidates a stop rule answers with, best first.

    ``chunk@(t, s)``: :meth:`rag.generate.extractive.ExtractiveGenerator.select`: each runner-up
    (up to three in all) whose probability is at least t, or s x t when it is a sentence of the
    best one's chunk.

    ``top1``: the best only. ``add@t``: then each runner-up (up to three in all) while its
    probability is at least t. ``same@t``: when the best one's probability is below t, the next
    best sentences of the same chunk join it (up to three in all). ``mass@t``: runners-up
    join until the picked probabilities sum to t (up to three).
    """
    order = list(np.argsort(-p, kind="stable"))
    take = order[:1]
    if rule == "top3":
        take = order[:3]
    elif rule == "add":
        for i in order[1:3]:
            if p[i] < t:
                break
            take.append(i)
    elif rule == "chunk":
        from rag.generate.extractive import runner_ups

        bar, share = t
        take = [order[i] for i in runner_ups(p[order], r["hit"][order], add_sentence=bar, same_chunk=share)]
    elif rule == "same" and p[order[0]] < t:
        take += [i for i in order[1:] if r["hit"][i] == r["hit"][order[0]]][:2]
    elif rule == "mass":
        for i in order[1:3]:
            if p[take].sum() >= t:
                break
            take.append(i)
    return take


RULES = [("top1", None)] + [(k, t) for k in ("add", "same", "mass") for t in (0.1, 0.15, 0.2, 0.25, 0.35)] + [
    ("chunk", (t, s)) for t in (0.2, 0.25, 0.3) for s in (0.5, 0.4, 0.33)]


def figures(rows: list[dict], w: np.ndarray, rules=RULES) -> dict:
    out = {}
    for rule, t in rules:
        contains, words, picked, precise = 0, [], 0, 0
        for r in rows:
            p = probabilities(r["X"], w)
            take = pick(r, p, rule, t)
            contains += bool(r["has"][take].any())
            words.append(int(r["words"][take].sum()))
            picked += len(take)
            precise += int(r["gold"][take].sum())
        key = rule if t is None else f"{rule}@{t[0]}/{t[1]}" if isinstance(t, tuple) else f"{rule}@{t}"
        out[key] = {"contains": round(contains / len(rows), 3), "words": median(words),
                    "precision": round(precise / picked, 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--by-question", action="store_true", help="two folds by question, not by article")
    ap.add_argument("--label", choices=("has", "gold"), default="has")
    ap.add_argument("--drop", nargs="*", default=[], help="features left out (weight 0)")
    ap.add_argument("--print-weights", action="store_true")
    args = ap.parse_args()
    rows = load(args.dump)
    keep = np.array([f not in args.drop for f in FEATURES])
    for r in rows:
        r["X"] = r["X"] * keep
    articles = list(dict.fromkeys(r["source"] for r in rows))
    parity = {a: i % 2 for i, a in enumerate(articles)}
    if len(articles) < 2 or args.by_question:  # a dump too small to span articles: split by question
        for i, r in enumerate(rows):
            r["source"] = f"{r['source']}#{i}"
        parity = {r["source"]: i % 2 for i, r in enumerate(rows)}
    old = np.array([OLD.get(f, 0.0) for f in FEATURES])
    print(f"{len(rows)} questions, {len(articles)} articles, "
          f"ceiling (a candidate holds an answer) {np.mean([r['has'].any() for r in rows]):.3f}")
    base = figures(rows, old * 30, [("top1", None), ("top3", None)])
    print("old weights (the product before: its best three), all questions:", json.dumps(base))
    from rag.generate.extractive import ADD_SENTENCE, SAME_CHUNK, WEIGHTS

    now = np.array([WEIGHTS.get(f, 0.0) for f in FEATURES]) * keep
    product = ("chunk", (ADD_SENTENCE, SAME_CHUNK))
    print("the product's weights now, all questions:",
          json.dumps(figures(rows, now, [("top1", None), ("add", 0.15), product])))
    held: dict[str, list] = {}
    for fold in (0, 1):
        train = [r for r in rows if parity[r["source"]] == fold]
        test = [r for r in rows if parity[r["source"]] != fold]
        w = fit(train, args.l2, label=args.label)
        res = figures(test, w)
        print(f"fit on {'even' if fold == 0 else 'odd'} articles ({len(train)} questions), held-out top1:",
              json.dumps(res["top1"]))
        for k, v in res.items():
            held.setdefault(k, []).append((v, len(test)))
    print("held-out, both folds (question-weighted):")
    for k, parts in held.items():
        n = sum(x for _, x in parts)
        print(f"  {k}: " + ", ".join(f"{m} {sum(v[m] * x for v, x in parts) / n:.3f}" for m in ("contains", "precision"))
              + f", words {[v['words'] for v, _ in parts]}")
    if args.print_weights:
        w = fit(rows, args.l2, label=args.label)
        print("all questions (in-sample) top1:", json.dumps(figures(rows, w)["top1"]))
        print("WEIGHTS = {")
        for f, x in zip(FEATURES, w):
            print(f'    "{f}": {x:.4f},')
        print("}")


if __name__ == "__main__":
    main()
