"""Follow-up questions: turn "Who founded it?" into a retrieval that knows what "it" is.

Two strategies, chosen by the generator:

* With a language model, the model *condenses* the conversation and the new question into
  one standalone question (:func:`condense`), in the model's own prompt format; that
  question is the retrieval query. When the model's rewrite is unusable (empty, or far
  longer than a question), retrieval falls back to fusion.
* Without one (the extractive generator), retrieval *fuses* two rankings
  (:func:`fused_search`): the question alone, and the question after the previous user
  turns. Reciprocal-rank fusion (RRF, k=60, each ranking 20 deep) merges them, so a chunk
  that both rankings place high wins, and a question that names its own subject is not
  drowned by the old topic. When the question has no referring word (it, they, his,
  this, there, ...), the history ranking counts half. Whether to fuse at all is
  :func:`needs_history`: a question that stands alone is retrieved alone.

``rag eval followups`` measures both sides of the rule: turn-2 hit@5 on two-turn
conversations (``data/eval/followups-squad-half-a.json``), and hit@5 of SQuAD questions asked
after a question about another article, against the same questions asked alone (docs/answers.md).

The retrieval query reported in ``Answer.query`` is the standalone question, or for fusion
``"<question> [+ previous turn: <turn>]"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rag.prompt import render
from rag.retrieve import RRF_K, reciprocal_rank_fusion
from rag.types import Hit

if TYPE_CHECKING:
    from rag.protocols import Generator

History = Sequence[tuple[str, str]]

FUSE_TURNS = 2  # previous user turns added to the question for the second ranking
FUSE_DEPTH = 20  # how deep each ranking goes before fusing
NO_ANAPHOR_WEIGHT = 0.5  # the history ranking's RRF weight when the question refers to nothing
# Words that point back into the conversation ("Who founded it?", "When did he die?").
# "that" before a verb opens a relative clause ("the river that is completely inside
# Jacksonville") and points inside the question, not back into the conversation.
ANAPHORA = re.compile(
    r"\b(it|its|it's|itself|they|them|their|theirs|themselves|he|him|his|himself|she|her|hers|herself|"
    r"this|that(?!\s+(?:is|was|are|were|has|have|had|can|could|will|would|do|does|did)\b)|these|those|there|"
    r"the same|the former|the latter)\b", re.I)
# A question without such a word is fused only when it is elliptical or the history makes the
# best chunk this much closer (cosine); otherwise it is retrieved alone.
ELLIPSIS_WORDS = 1
_ELLIPSIS = re.compile(r"^\s*(and|or|but|also|what about|how about|und|was ist mit)\b", re.I)
CLEARLY_BETTER = 0.1
# A question with such a word is retrieved alone when the history makes the best chunk this
# much farther (cosine): the word points inside the question ("fans ... their own ad").
HISTORY_WORSE = 0.05
CONDENSE_MAX_NEW_TOKENS = 64
_ASSISTANT_CHARS = 400  # how much of each earlier answer the condensing prompt shows
_CONDENSE_TURNS = 3

CONDENSE_SYSTEM = (
    "You rewrite the user's last question so that it can be understood without the conversation. "
    "Replace pronouns such as it, they, he or she with what they refer to. "
    "Reply with the rewritten question only, on one line, without answering it."
)


@dataclass(frozen=True)
class Retrieved:
    """What retrieval for one turn found, and how.

    Attributes:
        query: the retrieval query actually used, or a description of the fused queries.
        hits: the chunks, best first.
        queries: the texts that were embedded and searched.
        method: ``question`` (no history), ``fused`` or ``condensed``.
    """

    query: str
    hits: list[Hit]
    queries: tuple[str, ...] = ()
    method: str = "question"
    rankings: tuple[tuple[Hit, ...], ...] = field(default=(), repr=False)


def normalize_history(history: Any) -> list[tuple[str, str]]:
    """Earlier turns as (user, assistant) pairs; bare strings count as user turns without an answer."""
    out: list[tuple[str, str]] = []
    for turn in history or ():
        if isinstance(turn, str):
            out.append((turn, ""))
        else:
            user, assistant = (list(turn) + ["", ""])[:2]
            out.append((str(user or ""), str(assistant or "")))
    return [(u, a) for u, a in out if u.strip()]


def previous_user_turns(history: History, n: int = FUSE_TURNS) -> list[str]:
    """The last ``n`` user turns, oldest first."""
    return [" ".join(u.split()) for u, _ in list(history)[-n:] if u.strip()]


def rrf(rankings: Sequence[Sequence[Hit]], k: int, *, rrf_k: int = RRF_K,
        weights: Sequence[float] | None = None) -> list[Hit]:
    """Reciprocal-rank fusion: score(chunk) = sum over rankings of weight / (rrf_k + rank).

    A fused hit keeps the highest cosine any ranking gave its chunk; ties in RRF score go to
    the ranking listed first.

    Args:
        rankings: hit lists, best first.
        k: how many fused hits to return.
        rrf_k: the RRF constant (60, as in Cormack et al. 2009).
        weights: one weight per ranking (all 1 when None).

    Returns:
        The top ``k`` hits by fused score.
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    best: dict[str, Hit] = {}
    for ranking in rankings:
        for hit in ranking:
            cid = hit.chunk.id
            if cid not in best or hit.score > best[cid].score:
                best[cid] = hit
    ids = reciprocal_rank_fusion([[h.chunk.id for h in r] for r in rankings], weights, c=rrf_k)[:k]
    return [best[c] for c in ids]


def refers_back(question: str) -> bool:
    """Whether the question has a word that points back into the conversation (it, they, his, ...)."""
    return bool(ANAPHORA.search(question))


def depends_on_history(question: str) -> bool:
    """Whether a question needs the conversation: a word that refers back, or an ellipsis.

    Ellipsis: a question that opens with "and"/"what about"/"how about", or has at most
    :data:`ELLIPSIS_WORDS` content words ("And in 1990?").
    """
    from rag.text import content_words

    if refers_back(question) or _ELLIPSIS.match(question):
        return True
    return len(content_words(question)) <= ELLIPSIS_WORDS


def _clearly_better(combined: Sequence[Hit], alone: Sequence[Hit], k: int) -> bool:
    """The question with history finds a clearly closer chunk, from a source the question alone also finds.

    The source check keeps a previous turn from replacing the topic: a question about a new
    subject plus the old turn often matches the old subject's chunks more closely than the
    question alone matches anything, but those chunks are not among the question's own.
    """
    if not combined:
        return False
    if not alone:
        return True
    return (combined[0].score >= alone[0].score + CLEARLY_BETTER
            and combined[0].source in {h.source for h in alone[:k]})


def _clearly_worse(combined: Sequence[Hit], alone: Sequence[Hit]) -> bool:
    """The question with history finds nothing as close as the question alone does, by a margin."""
    return bool(alone) and (not combined or combined[0].score < alone[0].score - HISTORY_WORSE)


def needs_history(question: str, combined: Sequence[Hit], alone: Sequence[Hit], k: int) -> bool:
    """Whether a follow-up's retrieval fuses the conversation (the two rankings, best first).

    An elliptical question always does. One with a word that may refer back ("it", "their",
    "that") does unless the history makes the best match clearly worse: in "Which company
    held contests for fans to create their own ad?" the word points inside the question, and
    the old turn only pulls the query away. Any other question does only when the history
    finds a clearly closer chunk of a source the question alone also finds.

    Args:
        question: the new question.
        combined: the ranking of the previous turns + the question.
        alone: the ranking of the question alone.
        k: how many hits the turn returns (the question's own sources are its top ``k``).
    """
    if _ELLIPSIS.match(question):
        return True
    if refers_back(question):
        return not _clearly_worse(combined, alone)
    if depends_on_history(question):  # too few content words to stand alone ("Population?")
        return True
    return _clearly_better(combined, alone, k)


def fused_query(question: str, history: History, n: int = FUSE_TURNS) -> str:
    """The second retrieval text: the previous user turns, then the question."""
    return " ".join([*previous_user_turns(history, n), question.strip()])


def describe_fused(question: str, history: History, n: int = FUSE_TURNS) -> str:
    """How ``Answer.query`` names a fused retrieval: ``<question> [+ previous turn(s): ...]``."""
    turns = previous_user_turns(history, n)
    label = "previous turn" if len(turns) == 1 else "previous turns"
    return f"{question.strip()} [+ {label}: {' / '.join(turns)}]"


def fused_search(search: Callable[..., list[Hit]], question: str, history: History, k: int, *,
                 sources: Sequence[str] | None = None, depth: int | None = None) -> Retrieved:
    """Retrieve for a follow-up without a language model: RRF of the question alone and question + previous turns.

    Args:
        search: ``search(query, k, sources=...)``, e.g. ``Retriever.search``.
        question: the new question.
        history: earlier (user, assistant) turns.
        k: how many hits.
        sources: restrict to these sources.
        depth: how deep each ranking goes before fusing (:data:`FUSE_DEPTH` when None).

    Returns:
        The fused hits; ``query`` describes both queries.
    """
    history = normalize_history(history)
    if not history:
        hits = search(question, k, sources=sources)
        return Retrieved(question.strip(), hits, (question.strip(),), "question", (tuple(hits),))
    depth = max(depth or FUSE_DEPTH, k)
    alone = search(question, depth, sources=sources)
    combined_text = fused_query(question, history)
    combined = search(combined_text, depth, sources=sources)
    if not needs_history(question, combined, alone, k):
        # "What is the capital of Denmark?" after German turns about another PDF: a question
        # that stands alone is retrieved alone.
        return Retrieved(question.strip(), alone[:k], (question.strip(),), "question", (tuple(alone),))
    weight = 1.0 if refers_back(question) else NO_ANAPHOR_WEIGHT
    hits = rrf([alone, combined], k, weights=[1.0, weight])
    return Retrieved(describe_fused(question, history), hits, (question.strip(), combined_text), "fused",
                     (tuple(alone), tuple(combined)))


def condense_prompt(question: str, history: History, fmt: str, *,
                    render_chat_template: Callable[[list[dict[str, str]]], str] | None = None) -> str:
    """The prompt that asks a model for a standalone version of ``question``, in its format ``fmt``."""
    lines = []
    for user, assistant in list(history)[-_CONDENSE_TURNS:]:
        lines.append(f"User: {' '.join(user.split())}")
        if assistant.strip():
            short = " ".join(assistant.split())
            if len(short) > _ASSISTANT_CHARS:
                short = short[:_ASSISTANT_CHARS].rsplit(" ", 1)[0] + " …"
            lines.append(f"Assistant: {short}")
    user = (
        "Conversation:\n" + "\n".join(lines) + "\n\n"
        f"Last question: {' '.join(question.split())}\n\n"
        "Rewrite the last question as a standalone question."
    )
    return render(fmt, CONDENSE_SYSTEM, user, (), render_chat_template=render_chat_template)


def clean_condensed(text: str, question: str) -> str | None:
    """The standalone question from a model's reply, or None when the reply is unusable."""
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            break
    else:
        return None
    line = re.sub(r"^(standalone|rewritten)?\s*(question)?\s*:\s*", "", line, flags=re.I).strip()
    line = line.strip("\"'“”‘’` ").strip()
    if not re.search(r"\w", line) or len(line) > 3 * len(question) + 200:
        return None
    return line


def condense(generator: "Generator", question: str, history: History, *,
             max_new_tokens: int = CONDENSE_MAX_NEW_TOKENS) -> str | None:
    """Ask the generator for a standalone version of ``question``; None when it gives nothing usable."""
    prompt = condense_prompt(question, history, generator.prompt_format,
                             render_chat_template=generator.render_chat_template)
    reply = "".join(generator.stream(prompt, max_new_tokens=max_new_tokens))
    return clean_condensed(reply, question)
