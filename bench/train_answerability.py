"""Train the refusal's answerability reader (rag.refuse.answerability) on ``bench.refusal_features`` dumps.

    python -m bench.train_answerability DUMP.jsonl [...] [--out rag/generate/sentence_answerability.npz]
        [--logits LOGITS.json [--score DUMP.jsonl ...]]
    python -m bench.train_answerability DUMP.jsonl [...] --heldout OUT.json [--score DUMP.jsonl ...]
    ... [--blocks K]      adapt only MiniLM's last K blocks (the frozen ones' output cached: faster)

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
in the dumps), and writes every scored question's logits from both models, keyed as
``bench.fit_refusals --folds OUT.json`` reads them: it fits the threshold on each model's own
articles and scores the others with the same model, the product's procedure on documents the
reader never saw. Nothing is written to the package.
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


def train(pairs: list[tuple[str, str, str, float]], epochs: float, seed: int = 0, blocks: int | None = None):
    """The adapters and head after ``epochs`` passes of binary cross-entropy over ``pairs``.

    ``blocks``: adapt only MiniLM's last this many blocks. The blocks below them do not change,
    so their output is computed once per pair (:class:`FrozenBelow`) and every step runs only the
    adapted blocks: several times faster on a CPU, so more pairs fit in the same time.

    Returns:
        ``(encoder, head, tokenizer)``.
    """
    import torch

    enc, head, tok = _model(blocks)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    params = [p for p in enc.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    steps = int(epochs * len(pairs) / BATCH)
    below = FrozenBelow(enc, tok, pairs, blocks) if blocks else None
    order: list[int] = []
    started = time.perf_counter()
    for step in range(steps):
        if not order:
            order = list(range(len(pairs)))
            rng.shuffle(order)
        batch = [order.pop() for _ in range(min(BATCH, len(order)))]
        logits = head(mean_pool(*_hidden(enc, tok, pairs, batch, below))).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.tensor([pairs[i][3] for i in batch]), pos_weight=torch.tensor(POSITIVE_WEIGHT))
        step_once(opt, loss, step, steps, started, LR)
    enc.eval()
    return enc, head, tok


class FrozenBelow:
    """MiniLM's frozen lower blocks' output for a list of pairs, computed once; any model whose
    adapters start above them finishes it (:meth:`top`), equal to ``enc(**inputs).last_hidden_state``
    (checked on the first batch)."""

    def __init__(self, enc, tok, pairs, blocks: int) -> None:
        import torch

        self.first = len(enc.encoder.layer) - blocks
        self.cached: list = []
        started = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(pairs), 64):
                chunk = pairs[start:start + 64]
                inputs = encode_pairs(tok, [q for q, *_ in chunk], [(t, s) for _, t, s, *_ in chunk])
                mask = inputs["attention_mask"]
                embedded = enc.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs["token_type_ids"])
                hidden = self._run(enc, embedded, mask, enc.encoder.layer[:self.first])
                self.cached += [hidden[i, :int(n)].clone() for i, n in enumerate(mask.sum(1))]
                if start == 0:
                    whole = self._run(enc, hidden, mask, enc.encoder.layer[self.first:])
                    assert torch.allclose(whole, enc(**inputs).last_hidden_state, atol=1e-4), "split forward differs"
        print(f"cached {self.first} frozen blocks' output of {len(pairs)} pairs in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)

    @staticmethod
    def _run(enc, hidden, mask, layers):
        from transformers.masking_utils import create_bidirectional_mask

        full = create_bidirectional_mask(config=enc.config, inputs_embeds=hidden, attention_mask=mask)
        for layer in layers:
            hidden = layer(hidden, full)
        return hidden

    def top(self, enc, batch: list[int]):
        """``(last hidden state, attention mask)`` of the pairs at ``batch`` through ``enc``'s upper blocks."""
        import torch

        rows = [self.cached[i] for i in batch]
        mask = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        hidden = torch.zeros(len(rows), mask.shape[1], rows[0].shape[1])
        for i, r in enumerate(rows):
            hidden[i, :len(r)], mask[i, :len(r)] = r, 1
        return self._run(enc, hidden, mask, enc.encoder.layer[self.first:]), mask


def _hidden(enc, tok, pairs, batch: list[int], below: FrozenBelow | None):
    """``(last hidden state, attention mask)`` of the pairs at ``batch``: over the cached lower
    blocks when ``below`` holds them, else the whole model."""
    if below:
        return below.top(enc, batch)
    inputs = encode_pairs(tok, [pairs[i][0] for i in batch], [(pairs[i][1], pairs[i][2]) for i in batch])
    return enc(**inputs).last_hidden_state, inputs["attention_mask"]


def case_logits(enc, head, tok, wanted: dict[str, list[tuple[str, str, str]]], distinct: list[tuple[str, str, str]],
                below: FrozenBelow | None = None) -> dict[str, list[float]]:
    """The trained model's logits of every case of :func:`scored_cases`, each distinct pair scored once,
    as the product scores it."""
    import torch

    out: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(distinct), 64):
            batch = list(range(start, min(start + 64, len(distinct))))
            out += head(mean_pool(*_hidden(enc, tok, distinct, batch, below))).squeeze(-1).tolist()
    value = dict(zip(distinct, out))
    return {k: [value[p] for p in ps] for k, ps in wanted.items()}


def scored_cases(paths: list[str]) -> tuple[dict[str, list[tuple[str, str, str]]], list[tuple[str, str, str]]]:
    """Each dumped case's ``(question, title, sentence)`` pairs, keyed as ``bench.fit_refusals`` reads
    logits, and the distinct pairs among them (the cases of one question share most)."""
    wanted = {key_of(r, key): [(r["q"], t, s) for t, s in candidates]
              for r in rows(paths) for key, candidates in cases(r)}
    return wanted, sorted({p for ps in wanted.values() for p in ps})


def heldout(paths: list[str], epochs: float, out: Path, blocks: int | None = None,
            scored: list[str] | None = None) -> None:
    """Train one reader per article parity and write every scored case's logits from both.

    ``out`` holds ``{"0": {case: logits}, "1": {case: logits}}``: fold ``f``'s model saw only the
    questions of the articles of parity ``f`` (in ``paths``), so its logits on the other parity's
    articles are what the product's reader gives on documents it never saw
    (``bench.fit_refusals --folds``); ``scored`` are the dumps whose cases are scored (``paths``
    when None; questions of a dump used for training are then in-sample for their own fold).
    """
    scored = scored or paths
    parity = article_parity(scored + paths)
    wanted, distinct = scored_cases(scored)
    logits: dict[str, dict[str, list[float]]] = {}
    below = None
    for fold in (0, 1):
        pairs = training_pairs(paths, lambda source: parity[source] == fold)
        print(f"fold {fold}: {len(pairs)} pairs, {int(sum(p[3] for p in pairs))} positive", file=sys.stderr)
        enc, head, tok = train(pairs, epochs, blocks=blocks)
        if blocks and below is None:  # the frozen blocks are MiniLM's own in both folds: cache them once
            below = FrozenBelow(enc, tok, distinct, blocks)
        logits[str(fold)] = case_logits(enc, head, tok, wanted, distinct, below)
    out.write_text(json.dumps(logits), encoding="utf-8")
    print(f"wrote both folds' logits of {len(wanted)} cases ({len(distinct)} distinct pairs) to {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dumps", nargs="+")
    ap.add_argument("--out", type=Path, default=ANSWERABILITY_FILE)
    ap.add_argument("--epochs", type=float, default=None, help="passes over the pairs (2 per fold held out, 1.2 on all)")
    ap.add_argument("--heldout", type=Path, default=None, help="write both folds' logits here instead of a model")
    ap.add_argument("--score", nargs="*", default=None,
                    help="the dumps to score with --heldout or --logits (the training dumps when omitted)")
    ap.add_argument("--logits", type=Path, default=None,
                    help="also write the trained model's logits of the scored dumps' cases here (fit_refusals --answerable)")
    ap.add_argument("--blocks", type=int, default=None, help="adapt only MiniLM's last this many blocks (all when omitted)")
    args = ap.parse_args()
    if args.heldout:
        heldout(args.dumps, args.epochs or 2.0, args.heldout, args.blocks, args.score)
        return
    pairs = training_pairs(args.dumps)
    print(f"{len(pairs)} pairs, {int(sum(p[3] for p in pairs))} positive", file=sys.stderr)
    enc, head, tok = train(pairs, args.epochs or 1.2, blocks=args.blocks)
    save(enc, head, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    if args.logits:
        wanted, distinct = scored_cases(args.score or args.dumps)
        args.logits.write_text(json.dumps(case_logits(enc, head, tok, wanted, distinct)), encoding="utf-8")
        print(f"wrote the logits of {len(wanted)} cases to {args.logits}")


if __name__ == "__main__":
    main()
