"""Answer quality on SQuAD, through the product's own ingestion, retrieval and :class:`rag.answer.Answerer`.

Three evaluations, each over a fresh temporary store holding every article of a SQuAD file
(loaded and ingested exactly as ``rag eval squad`` does, via :func:`rag.eval.squad.load_squad`):

* :func:`evaluate_extract`: how often the extractive answer (the best 1-3 sentences) contains
  a gold answer string, case-insensitively (``extract_contains_answer``); also with
  refusals applied (``answer_contains_answer``) and the share of questions whose retrieved
  chunks contain one at all (``retrieved_contains_answer``, the ceiling).
* refusals live in :mod:`rag.eval.refusals`.
* :func:`evaluate_followups`: two-turn conversations (``data/eval/followups-squad-half-a.json``);
  turn-2 hit@5 (a top-5 chunk of the gold article contains a gold answer) for the question
  alone, the previous turn + question concatenated, and the product's follow-up retrieval.
  A topic-switch control asks SQuAD questions after a question about another article.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from rag.eval.common import (EvalDataError, extractive_answerer, iter_progress, read_json, resolve_settings,
                              spread_questions, temporary_rag)
from rag.eval.squad import Question, SquadData, is_hit, load_squad
from rag.settings import Settings

SWITCH_QUESTIONS = 300
SWITCH_SEED = 7


@contextmanager
def squad_rag(data: SquadData, settings: Settings, *, progress: bool = False, rag: Any = None) -> Iterator[Any]:
    """A facade over a fresh temporary store with every article of ``data`` ingested (or ``rag`` as given)."""
    if rag is not None:
        yield rag
        return
    from ingest.index import SourceJob

    with temporary_rag(settings) as fresh:
        fresh.ingest([SourceJob(d.source, lambda d=d: [d]) for d in data.documents], progress=progress)
        yield fresh


def _contains(text: str, answers: Sequence[str]) -> bool:
    folded = text.casefold()
    return any(a.casefold() in folded for a in answers)


def _product_answerer(rag: Any, settings: Settings):
    """The answerer of ``settings.llm``: the extractive generator, or the configured language model."""
    from rag.answer import Answerer
    from rag.generate import make_generator, parse_llm

    kind, _ = parse_llm(settings.llm, settings)
    if kind == "extractive":
        return extractive_answerer(rag, settings)
    return Answerer(rag.retriever, make_generator(settings), settings, rag.embedder)


def answer_text(text: str) -> str:
    """What a reader gets as the answer: citation markers and the ``From the documents:`` prefix removed."""
    from rag.cite import MARKER, WORD_JOINER
    from rag.generate.extractive import EXTRACT_PREFIX

    text = MARKER.sub(" ", text.replace(WORD_JOINER, "")).strip()
    if text.startswith(EXTRACT_PREFIX):
        text = text[len(EXTRACT_PREFIX):]
    return " ".join(text.split())


def evaluate_extract(
    squad_file: str | Path,
    *,
    settings: Settings | None = None,
    progress: bool = False,
    limit_articles: int | None = None,
    max_questions: int | None = None,
    rag: Any = None,
) -> dict[str, Any]:
    """Ask SQuAD questions and score the answers against the gold answers.

    With the extractive generator (the default) the extract is scored as it would be shown
    without the refusal; with a language model (``settings.llm``) the product's whole answer
    (retrieve, refuse, prompt, generate, cite).

    Args:
        squad_file: a SQuAD v1.1 JSON file.
        settings: chunking, embedding, ``llm`` and ``refuse_below`` (environment and defaults when None).
        progress: progress bars on stderr.
        limit_articles: only the first N articles and their questions.
        max_questions: ask only this many questions, spread evenly over the file (the store
            still holds every article).
        rag: a facade whose store already holds exactly these articles (skips ingestion).

    Returns:
        ``extract_contains_answer`` (a gold answer is in the answer text),
        ``answer_contains_answer`` (and it was not refused), ``refused``,
        ``retrieved_contains_answer`` (the ceiling), ``f1`` and ``em`` (official SQuAD v1.1
        token F1 / exact match of the answer text, markers and prefix removed, max over the gold
        answers), ``answer_words`` (median), ``sentence_precision`` (share of answer sentences
        taken from, or citing, a chunk of the gold article that holds a gold answer),
        ``sentences_cited`` and ``sentences_supported`` (shares of answer sentences that cite a
        source, and that cite one the support check passes), ``n``, ``seconds`` and the settings used.
    """
    from statistics import median

    from rag.answer import EXTRACT_DEPTH
    from rag.cite import cite, split_sentences
    from rag.eval.metrics import squad_em, squad_f1

    s = resolve_settings(settings)
    started = time.perf_counter()
    data = load_squad(squad_file, limit_articles=limit_articles)
    questions = spread_questions(data.questions, max_questions)
    extract = answered = refused = ceiling = 0
    f1 = em = 0.0
    words: list[int] = []
    sentences = precise = marked = backed = 0
    with squad_rag(data, s, progress=progress, rag=rag) as r:
        answerer = _product_answerer(r, s)
        gen = answerer.generator
        for q in iter_progress(questions, total=len(questions), desc="Answering", unit="question",
                               enabled=progress):
            if answerer.extractive:
                found = answerer.retrieve(q.text)
                picked = gen.select(q.text, found.hits, question_vector=answerer.vector(q.text))
                text = answer_text(gen.compose(picked))
                refuse = answerer.should_refuse(found)
                from_gold = [is_hit(found.hits[x.hit], q) for x in picked]
                marked += len(picked)  # each quoted sentence cites its chunk, supported by construction
                backed += len(picked)
                hits = found.hits
            else:
                answer = answerer.ask(q.text)
                refuse = answer.refused
                text = "" if refuse else answer_text(answer.text)
                cited = {c.number: c.hit for c in answer.citations}
                parts = [] if refuse else split_sentences(answer.text)
                from_gold = [any(n in cited and is_hit(cited[n], q) for n in numbers) for _, numbers in parts]
                marked += sum(bool(numbers) for _, numbers in parts)
                if parts:
                    # Support per sentence (a citation's own flag is its weakest sentence's): the
                    # answer's numbers are already 1..n in citation order, so citing again keeps them.
                    again = cite(answer.text, [cited[n] for n in sorted(cited)], passages=answerer.passages,
                                 threshold=s.support_below)
                    backed += sum(any(x.supported) for x in again.sentences)
                hits = answer.sources
            hit = bool(text) and _contains(text, q.answers)
            extract += hit
            answered += hit and not refuse
            refused += refuse
            ceiling += _contains(" ".join(h.text for h in hits), q.answers)
            f1 += squad_f1(text, q.answers)
            em += squad_em(text, q.answers)
            words.append(len(text.split()))
            sentences += len(from_gold)
            precise += sum(from_gold)
    n = len(questions)
    return {
        "eval": "answers",
        "dataset": data.name,
        "generator": gen.name,
        "extract_contains_answer": extract / n,
        "answer_contains_answer": answered / n,
        "refused": refused / n,
        "retrieved_contains_answer": ceiling / n,
        "f1": f1 / n,
        "em": em / n,
        "answer_words": median(words) if words else 0,
        "sentence_precision": precise / max(sentences, 1),
        "sentences_cited": marked / max(sentences, 1),
        "sentences_supported": backed / max(sentences, 1),
        "n": n,
        "seconds": round(time.perf_counter() - started, 1),
        "k": EXTRACT_DEPTH,
        "max_sentences": getattr(gen, "max_sentences", None),
        "refuse_below": s.refuse_below,
        "chunk_tokens": s.chunk_tokens,
        "chunk_overlap": s.chunk_overlap,
        "articles": len(data.documents),
    }


def evaluate_support(
    squad_file: str | Path,
    *,
    settings: Settings | None = None,
    progress: bool = False,
    limit_articles: int | None = None,
    max_questions: int | None = 1500,
    rag: Any = None,
) -> dict[str, Any]:
    """How the citation support check (:mod:`rag.cite`) scores right and wrong citations.

    For each question an answer-like sentence is made from the question and its first gold
    answer (``"<question without ?> <answer>."``, the shape of an answer that restates the
    question). It is scored against the chunk that holds the answer (a right citation;
    the first of the top 10 from the right article that contains it) and against the best
    chunk of another article (a wrong citation to the nearest off-topic source).

    Returns:
        ``flagged_right`` (right citations flagged unsupported at ``settings.support_below``),
        ``flagged_wrong`` (wrong citations flagged), ``flagged_same_article_no_answer``,
        ``n``, ``seconds``.
    """
    from rag.cite import PassageVectors, support_scores

    s = resolve_settings(settings)
    started = time.perf_counter()
    data = load_squad(squad_file, limit_articles=limit_articles)
    sources = [d.source for d in data.documents]
    questions = data.questions
    if max_questions is not None and max_questions < len(questions):
        step = len(questions) / max_questions
        questions = [questions[int(i * step)] for i in range(max_questions)]
    right: list[float] = []
    wrong: list[float] = []
    same: list[float] = []
    with squad_rag(data, s, progress=progress, rag=rag) as r:
        passages = PassageVectors(r.embedder)
        for q in iter_progress(questions, total=len(questions), desc="Citations", unit="question", enabled=progress):
            hits = r.search(q.text, 10)
            gold = next((h for h in hits if is_hit(h, q)), None)
            if gold is None:
                continue
            other = r.search(q.text, 1, sources=[x for x in sources if x != q.source])
            vector = r.embedder.embed([f"{q.text.rstrip(' ?')} {q.answers[0]}."])[0]
            right.append(support_scores(vector, gold, passages))
            if other:
                wrong.append(support_scores(vector, other[0], passages))
            miss = next((h for h in hits if h.source == q.source and not is_hit(h, q)), None)
            if miss is not None:
                same.append(support_scores(vector, miss, passages))
    t = s.support_below
    return {
        "eval": "support",
        "dataset": data.name,
        "flagged_right": sum(v < t for v in right) / max(len(right), 1),
        "flagged_wrong": sum(v < t for v in wrong) / max(len(wrong), 1),
        "flagged_same_article_no_answer": sum(v < t for v in same) / max(len(same), 1),
        "support_below": t,
        "n": len(right),
        "seconds": round(time.perf_counter() - started, 1),
    }


def load_followups(path: str | Path) -> list[dict[str, Any]]:
    """Read a follow-ups file: a JSON list of {history: [questions], question, answers: [strings], article}."""
    path = Path(path)
    raw = read_json(path, "follow-ups")
    if not isinstance(raw, list) or not raw:
        raise EvalDataError(f"{path} must hold a JSON list of conversations; see data/eval/followups-squad-half-a.json")
    out = []
    for i, item in enumerate(raw):
        try:
            history = [str(h) for h in item["history"]]
            question = str(item["question"]).strip()
            answers = [str(a) for a in item["answers"] if str(a).strip()]
            article = str(item["article"]).replace("_", " ")
        except (KeyError, TypeError):
            raise EvalDataError(f"{path}: conversation {i} needs history, question, answers and article") from None
        if not history or not question or not answers:
            raise EvalDataError(f"{path}: conversation {i} has an empty history, question or answers list")
        out.append({"history": history, "question": question, "answers": answers, "article": article})
    return out


def evaluate_followups(
    file: str | Path,
    corpus: str | Path,
    *,
    settings: Settings | None = None,
    progress: bool = False,
    rag: Any = None,
) -> dict[str, Any]:
    """Turn-2 hit@5 of two-turn conversations over a SQuAD corpus, for three retrieval strategies.

    Args:
        file: the conversations (see :func:`load_followups`).
        corpus: the SQuAD file whose articles are indexed.
        settings: chunking, embedding and ``llm`` (the product's follow-up method depends on it).
        progress: progress bars on stderr.
        rag: a facade whose store already holds exactly these articles (skips ingestion).

    Returns:
        ``hit@5`` (the product's method), ``hit@5_question_alone``, ``hit@5_concatenated``,
        the topic-switch control, ``n``, ``seconds``.
    """
    from rag.conversation import fused_query

    s = resolve_settings(settings)
    started = time.perf_counter()
    convs = load_followups(file)
    data = load_squad(corpus)
    known = {d.title for d in data.documents}
    unknown = sorted({c["article"] for c in convs} - known)
    if unknown:
        raise EvalDataError(f"{file} asks about articles that {corpus} does not hold: {', '.join(unknown[:5])}")
    k = 5
    sums = {"alone": 0, "concat": 0, "product": 0}
    with squad_rag(data, s, progress=progress, rag=rag) as r:
        from rag.answer import Answerer
        from rag.generate import make_generator, parse_llm

        kind, _ = parse_llm(s.llm, s)
        generator = r.generator if rag is not None and r.settings.llm == s.llm else \
            make_generator(s, embedder=r.embedder if kind == "extractive" else None)
        answerer = Answerer(r.retriever, generator, s, r.embedder)
        method = None
        for c in iter_progress(convs, total=len(convs), desc="Conversations", unit="conv", enabled=progress):
            q = Question("", c["question"], tuple(c["answers"]), f"wikipedia:{c['article']}")
            history = [(h, "") for h in c["history"]]
            alone = r.search(q.text, k)
            concat = r.search(fused_query(q.text, history), k)
            found = answerer.retrieve(q.text, history, k=k)
            method = found.method
            for key, hits in (("alone", alone), ("concat", concat), ("product", found.hits[:k])):
                sums[key] += any(is_hit(h, q) for h in hits)
        switch = _topic_switch(r, answerer, data, k)
    n = len(convs)
    return {
        "eval": "followups",
        "dataset": Path(file).name,
        "corpus": data.name,
        "hit@5": sums["product"] / n,
        "hit@5_question_alone": sums["alone"] / n,
        "hit@5_concatenated": sums["concat"] / n,
        "method": method,
        "generator": generator.name,
        **switch,
        "n": n,
        "seconds": round(time.perf_counter() - started, 1),
        "chunk_tokens": s.chunk_tokens,
        "chunk_overlap": s.chunk_overlap,
    }


def _topic_switch(r: Any, answerer: Any, data: SquadData, k: int) -> dict[str, Any]:
    """hit@5 of SQuAD questions asked right after a question about another article."""
    rng = random.Random(SWITCH_SEED)
    questions = rng.sample(data.questions, min(SWITCH_QUESTIONS, len(data.questions)))
    if len(data.documents) < 2:
        return {}
    alone = product = 0
    for q in questions:
        while True:
            prev = rng.choice(data.questions)
            if prev.source != q.source:
                break
        found = answerer.retrieve(q.text, [(prev.text, "")], k=k)
        product += any(is_hit(h, q) for h in found.hits[:k])
        alone += any(is_hit(h, q) for h in r.search(q.text, k))
    n = len(questions)
    return {"topic_switch_hit@5": product / n, "topic_switch_hit@5_question_alone": alone / n,
            "topic_switch_n": n}


def dumps(result: dict[str, Any]) -> str:
    """One JSON object, as the CLI prints it."""
    return json.dumps(result, ensure_ascii=False, indent=2)
