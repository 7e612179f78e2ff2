"""Train the refusal's answerability reader (rag.refuse.answerability) on ``bench.refusal_features`` dumps.

    python -m bench.train_answerability DUMP.jsonl [...] [--out rag/generate/sentence_answerability.npz]
    python -m bench.train_answerability DUMP.jsonl [...] --heldout OUT.json

The dumps hold, per SQuAD half-a question and store configuration, the first five hits with
the question's own article (``/a``) and without it (``/u``). From each case the reader's input
is taken exactly as the product takes it (:func:`rag.refuse.closest_sentences`: the 8 sentences
closest to the question, with their chunk's title), and each pair is labelled 1 when the
sentence holds a gold answer and the question's article is in the store, else 0: every
sentence of a store without the question's article is a negative, which is what the reader has
to learn, on-topic text that does not say what was asked. Cases where another source answers
the question (:func:`rag.eval.refusals.answered_elsewhere`) are left out. The model is the
extract's cross-encoder architecture (``bench.train_reranker``: LoRA adapters on MiniLM and a
linear head), trained with a binary cross-entropy per pair, so its logit has an absolute
scale (the listwise reranker's has none).

``--heldout OUT.json`` trains twice, on the even and on the odd articles (by first appearance
in the dumps), and writes each question's logits from the model that did not see its
article, keyed as ``bench.fit_refusals`` reads them (``--answerable OUT.json``); nothing is
written to the package.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

from bench.train_reranker import _model, save, step_once
from rag.generate.rerank import ANSWERABILITY_FILE, encode_pairs, mean_pool

BATCH, LR, POSITIVE_WEIGHT = 16, 5e-4, 2.0


def rows(paths: list[str]):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def cases(row: dict):
    """``(config/case, candidates)`` of one dumped question, candidates as the product picks them."""
    from rag.cite import chunk_sentences
    from rag.refuse import closest_sentences

    for key, case in row.items():
        if "/" in key:
            yield key, closest_sentences([chunk_sentences(t) for t in case["text"]], case["titles"], case["sent_cos"])


def _plain(text: str) -> str:
    """Lower-case words joined by single spaces (how a gold answer is looked for in a sentence)."""
    return " ".join(re.findall(r"\w+", text.lower()))


def key_of(row: dict, case: str) -> str:
    return f'{row["i"]}|{row["q"]}|{case}'


def article_parity(paths: list[str]) -> dict[str, int]:
    order: dict[str, int] = {}
    for r in rows(paths):
        order.setdefault(r["source"], len(order))
    return {a: i % 2 for a, i in order.items()}


def training_pairs(paths: list[str], keep=lambda source: True) -> list[tuple[str, str, str, float]]:
    """Distinct ``(question, title, sentence, label)`` of the questions whose article ``keep`` accepts."""
    from bench.fit_refusals import elsewhere

    labels: dict[tuple[str, str, str], float] = {}
    for r in rows(paths):
        if not keep(r["source"]):
            continue
        answers = [_plain(a) for a in r["answers"]]
        for key, candidates in cases(r):
            unanswerable = key.endswith("/u")
            if unanswerable and elsewhere(r, r[key]):
                continue
            for title, text in candidates:
                label = 0.0 if unanswerable else float(any(a and a in _plain(text) for a in answers))
                k = (r["q"], title, text)
                labels[k] = max(labels.get(k, 0.0), label)
    return [(q, t, s, y) for (q, t, s), y in labels.items()]


def train(pairs: list[tuple[str, str, str, float]], epochs: float, seed: int = 0):
    """The adapters and head after ``epochs`` passes of binary cross-entropy over ``pairs``."""
    import torch

    enc, head, tok = _model()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    params = [p for p in enc.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    steps = int(epochs * len(pairs) / BATCH)
    order: list[int] = []
    started = time.perf_counter()
    for step in range(steps):
        if not order:
            order = list(range(len(pairs)))
            rng.shuffle(order)
        batch = [pairs[order.pop()] for _ in range(min(BATCH, len(order)))]
        inputs = encode_pairs(tok, [q for q, *_ in batch], [(t, s) for _, t, s, _ in batch])
        logits = head(mean_pool(enc(**inputs).last_hidden_state, inputs["attention_mask"])).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.tensor([y for *_, y in batch]), pos_weight=torch.tensor(POSITIVE_WEIGHT))
        step_once(opt, loss, step, steps, started, LR)
    enc.eval()
    return enc, head


def heldout(paths: list[str], epochs: float, out: Path) -> None:
    import tempfile

    from rag.generate.rerank import SentenceReranker

    parity = article_parity(paths)
    logits: dict[str, list[float]] = {}
    for fold in (0, 1):
        pairs = training_pairs(paths, lambda source: parity[source] == fold)
        print(f"fold {fold}: {len(pairs)} pairs, {int(sum(p[3] for p in pairs))} positive", file=sys.stderr)
        enc, head = train(pairs, epochs)
        with tempfile.TemporaryDirectory() as tmp:
            save(enc, head, Path(tmp) / "fold.npz")
            reader = SentenceReranker(Path(tmp) / "fold.npz")
        for r in rows(paths):
            if parity[r["source"]] != fold:
                for key, candidates in cases(r):
                    logits[key_of(r, key)] = [float(x) for x in reader.score(r["q"], candidates)]
    out.write_text(json.dumps(logits), encoding="utf-8")
    print(f"wrote held-out logits of {len(logits)} cases to {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dumps", nargs="+")
    ap.add_argument("--out", type=Path, default=ANSWERABILITY_FILE)
    ap.add_argument("--epochs", type=float, default=None, help="passes over the pairs (2 per fold held out, 1.2 on all)")
    ap.add_argument("--heldout", type=Path, default=None, help="write held-out logits here instead of a model")
    args = ap.parse_args()
    if args.heldout:
        heldout(args.dumps, args.epochs or 2.0, args.heldout)
        return
    pairs = training_pairs(args.dumps)
    print(f"{len(pairs)} pairs, {int(sum(p[3] for p in pairs))} positive", file=sys.stderr)
    enc, head = train(pairs, args.epochs or 1.2)
    save(enc, head, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
