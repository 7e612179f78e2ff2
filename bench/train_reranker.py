"""Train the extract's cross-encoder (rag.generate.rerank) on the dump of ``bench.sentence_features``.

    python -m bench.train_reranker DUMP.jsonl [--out rag/generate/sentence_reranker.npz] [--epochs 1]
    python -m bench.train_reranker DUMP.jsonl --heldout [--epochs 2]

The dump holds, per SQuAD half-a question, the candidate sentences of the chunks the product
retrieves for the extract, with their features and whether each holds a gold answer. Each
training step shows the model one question with one gold sentence and seven wrong ones (the
feature ranker's four best wrong sentences, the hardest, and three at random) and lowers a
softmax cross-entropy: the gold sentence should get the highest logit. Only the low-rank
adapters (rank ``rag.generate.rerank.RANK`` on every linear layer of MiniLM's six blocks) and
the head are trained; the written ``.npz`` holds just those, in float16 (the head in float32).

``--heldout`` trains on the even articles only (and fits the feature ranker there too), then
scores the odd ones as the product would (:meth:`rag.generate.extractive.ExtractiveGenerator.rank`:
the feature ranker's best ``RERANK_TOP`` reread, ``RERANK_WEIGHT`` x logit added) and prints the
best sentence's hit rate with and without the reranker, and for a grid of weights and runner-up
bars the extract's figures (holds an answer / median words / sentence precision); the grid is
also chosen on one half of the odd articles and scored on the other, both ways, so the chosen
rule is itself held out. Without it the model is trained on every question and written to
``--out`` (the product's file).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from statistics import median

import numpy as np

from bench.fit_sentences import fit, load
from rag.generate.rerank import ALPHA, RANK, WEIGHTS_FILE, encode_pairs, mean_pool

GROUP_NEGATIVES_HARD, GROUP_NEGATIVES_RANDOM, BATCH, LR = 4, 3, 4, 5e-4


def _model(blocks: int | None = None):
    """MiniLM with trainable LoRA adapters on its blocks' linear layers, a linear head, and the tokenizer.

    ``blocks``: adapt only the last this many blocks (all when None); the others stay MiniLM's own,
    so their output can be computed once per input (``bench.train_answerability --blocks``).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from rag.embed import bundled_model_dir

    class LoRA(torch.nn.Module):
        def __init__(self, base: torch.nn.Linear) -> None:
            super().__init__()
            self.base = base
            self.A = torch.nn.Parameter(torch.randn(RANK, base.in_features) / math.sqrt(base.in_features))
            self.B = torch.nn.Parameter(torch.zeros(base.out_features, RANK))

        def forward(self, x):
            return self.base(x) + (x @ self.A.T @ self.B.T) * (ALPHA / RANK)

    directory = bundled_model_dir()
    tok = AutoTokenizer.from_pretrained(directory)
    enc = AutoModel.from_pretrained(directory)
    for p in enc.parameters():
        p.requires_grad_(False)
    first = 0 if blocks is None else enc.config.num_hidden_layers - blocks
    targets = [name for name, m in enc.named_modules() if isinstance(m, torch.nn.Linear) and ".layer." in name
               and int(name.split(".layer.")[1].split(".")[0]) >= first]
    for name in targets:
        parent, _, child = name.rpartition(".")
        setattr(enc.get_submodule(parent), child, LoRA(enc.get_submodule(name)))
    return enc, torch.nn.Linear(enc.config.hidden_size, 1), tok


def _scorer(enc, head, tok):
    """Logits of one question's sentences, encoded and pooled exactly as the product scores them."""
    import torch

    def score(question: str, title: str, texts: list[str]):
        batch = encode_pairs(tok, question, [(title, t) for t in texts])
        return head(mean_pool(enc(**batch).last_hidden_state, batch["attention_mask"])).squeeze(-1)

    return score, torch


def step_once(opt, loss, step: int, steps: int, started: float, lr: float = LR) -> None:
    """One optimiser step on ``loss``: warm up over 30 steps, then decay linearly; progress every 50."""
    loss.backward()
    for g in opt.param_groups:
        g["lr"] = lr * min(1.0, (step + 1) / 30) * max(0.05, 1 - step / steps)
    opt.step()
    opt.zero_grad()
    if step % 50 == 0:
        print(f"step {step}/{steps}  loss {loss.item():.3f}  {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)


def train(rows: list[dict], w: np.ndarray, epochs: float, seed: int = 0):
    """The adapters and head after ``epochs`` passes over ``rows`` (questions with a gold sentence only)."""
    enc, head, tok = _model()
    score, torch = _scorer(enc, head, tok)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    params = [p for p in enc.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    usable = [r for r in rows if r["has"].any()]
    rng.shuffle(usable)
    steps = int(epochs * len(usable) / BATCH)
    started = time.perf_counter()
    for step in range(steps):
        loss = 0.0
        for k in range(BATCH):
            r = usable[(step * BATCH + k) % len(usable)]
            s = r["X"] @ w
            gold = [i for i in range(len(s)) if r["has"][i]]
            wrong = sorted((i for i in range(len(s)) if not r["has"][i]), key=lambda i: -s[i])
            rest = wrong[GROUP_NEGATIVES_HARD:]
            group = ([rng.choice(gold)] + wrong[:GROUP_NEGATIVES_HARD]
                     + rng.sample(rest, min(GROUP_NEGATIVES_RANDOM, len(rest))))
            logits = score(r["q"], r["title"], [r["texts"][i] for i in group])
            loss = loss + torch.nn.functional.cross_entropy(logits.unsqueeze(0), torch.tensor([0]))
        step_once(opt, loss / BATCH, step, steps, started)
    enc.eval()
    return enc, head, score, torch


def save(enc, head, path: Path) -> None:
    state = {k: v.detach().numpy().astype(np.float16) for k, v in enc.named_parameters() if v.requires_grad}
    state["head.weight"] = head.weight.detach().numpy().astype(np.float32)
    state["head.bias"] = head.bias.detach().numpy().astype(np.float32)
    np.savez_compressed(path, **state)


def rule_figures(rows: list[dict], weight: float, add: float, same: float,
                 short: int | None = None) -> tuple[float, float, float]:
    """(holds an answer, median words, sentence precision) of the product's pick with these constants.

    Rows hold the candidates in document order (``bench.fit_sentences.load``) with ``s`` (feature
    scores), ``top`` (the reread candidates) and ``c`` (their logits); ``short`` defaults to the
    product's :data:`rag.generate.extractive.SHORT_ANSWER`.
    """
    from rag.generate.extractive import SHORT_ANSWER, completed, reread, runner_ups

    short = SHORT_ANSWER if short is None else short
    contains, words, picked, precise = 0, [], 0, 0
    for r in rows:
        s = reread(r["s"], r["top"], r["c"], weight)
        p = np.exp(s - s.max())
        p /= p.sum()
        order = np.argsort(-s, kind="stable")
        take = [order[i] for i in runner_ups(p[order], r["hit"][order], add_sentence=add, same_chunk=same)]
        take = completed(take, dict(enumerate(r["words"].tolist())), dict(enumerate(r["hit"].tolist())), short=short)
        contains += bool(r["has"][take].any())
        words.append(int(r["words"][take].sum()))
        picked += len(take)
        precise += int(r["gold"][take].sum())
    return contains / len(rows), median(words), precise / max(picked, 1)


GRID = [(wt, add, same, short) for wt in (0.0, 0.5, 0.75, 1.0, 1.5) for add in (0.15, 0.2, 0.25, 0.3)
        for same in (0.25, 0.33, 0.5) for short in (0, 15, 20, 25)]


def choose(rows: list[dict]) -> tuple[float, float, float, int]:
    """The grid point with the most answers held among those with precision >= 0.85 and median words <= 40
    (when none qualifies, the one closest to qualifying)."""
    def key(point: tuple[float, float, float, int]) -> tuple[bool, float]:
        c, words, prec = rule_figures(rows, *point)
        ok = prec >= 0.85 and words <= 40
        return ok, c if ok else c - 2 * max(0.0, 0.85 - prec) - 0.01 * max(0.0, words - 40)

    return max(GRID, key=key)


def heldout(rows: list[dict], epochs: float) -> None:
    from rag.generate.extractive import RERANK_TOP

    articles = list(dict.fromkeys(r["source"] for r in rows))
    parity = {a: i % 2 for i, a in enumerate(articles)}
    even = [r for r in rows if parity[r["source"]] == 0]
    odd = [r for r in rows if parity[r["source"]] == 1]
    w = fit(even, 0.1)
    enc, head, score, torch = train(even, w, epochs)
    with torch.inference_mode():
        for r in odd:
            r["s"] = r["X"] @ w
            r["top"] = np.argsort(-r["s"], kind="stable")[:RERANK_TOP]
            r["c"] = score(r["q"], r["title"], [r["texts"][i] for i in r["top"]]).numpy()
    print(f"trained on {len(even)} questions of the even articles, scored on {len(odd)} of the odd ones")
    print(f"best sentence holds an answer: features {np.mean([r['has'][r['top'][0]] for r in odd]):.3f}, "
          f"cross-encoder alone {np.mean([r['has'][r['top'][int(np.argmax(r['c']))]] for r in odd]):.3f}")
    for point in GRID:
        c, words, prec = rule_figures(odd, *point)
        print(f"  weight {point[0]:g}, add {point[1]:g}, same chunk {point[2]:g}, short {point[3]}: holds {c:.3f}, "
              f"words {words:g}, precision {prec:.3f}")
    odd_articles = list(dict.fromkeys(r["source"] for r in odd))
    half = {a: i % 2 for i, a in enumerate(odd_articles)}
    total = np.zeros(3)
    for fold in (0, 1):
        fit_rows = [r for r in odd if half[r["source"]] == fold]
        test = [r for r in odd if half[r["source"]] != fold]
        point = choose(fit_rows)
        got = rule_figures(test, *point)
        print(f"chosen on odd half {fold}: weight {point[0]:g}, add {point[1]:g}, same chunk {point[2]:g}, "
              f"short {point[3]}; on the other half: holds {got[0]:.3f}, words {got[1]:g}, precision {got[2]:.3f}")
        total += np.array(got) * len(test) / len(odd)
    print(f"held out twice over (question-weighted): holds {total[0]:.3f}, words {total[1]:.1f}, precision {total[2]:.3f}")
    point = choose(odd)
    print(f"chosen on every odd article (the product's constants): weight {point[0]:g}, add {point[1]:g}, "
          f"same chunk {point[2]:g}, short {point[3]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    ap.add_argument("--epochs", type=float, default=None, help="passes over the questions (2 held out, 1 on all)")
    ap.add_argument("--heldout", action="store_true", help="train on even articles, report on odd ones; write nothing")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = load(args.dump)
    for r in rows:
        r["title"] = r["source"].split(":", 1)[-1]
    if args.heldout:
        heldout(rows, args.epochs or 2.0)
        return
    enc, head, _, _ = train(rows, fit(rows, 0.1), args.epochs or 1.0)
    save(enc, head, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
