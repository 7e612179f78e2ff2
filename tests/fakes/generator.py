"""A Generator that follows rag.protocols.Generator exactly, without a model: it reads its prompt.

Like an instruction-following model given rag.prompt's prompt, it answers from the numbered
sources: the sentence that shares the most content words with the question, cited ``[n]``;
the exact refusal (rag.prompt.NO_ANSWER) when no source shares any; and for the condensing
prompt of rag.conversation, the last question itself. Deterministic, streamed word by word,
with a token count of words and punctuation marks.
"""

from __future__ import annotations

import re
from typing import Iterator

from rag.prompt import NO_ANSWER
from rag.text import content_words, sentence_spans

# A source block: "[n] title", then the text between "<<<CODE" and "CODE>>>" (rag.prompt's fence).
_BLOCK = re.compile(r"^\[(\d+)\] [^\n]*\n<<<(?P<code>\w+)\n(.*?)\n(?P=code)>>>", re.S | re.M)
_QUESTION = re.compile(r"^Question: (.*)$", re.M)
_LAST = re.compile(r"^Last question: (.*)$", re.M)
_PIECE = re.compile(r"\w+|[^\w\s]")


class ReadingGenerator:
    """Answers with the best-matching source sentence, cited; refuses when nothing matches."""

    prompt_format = "stablebeluga"
    warning: str | None = None
    render_chat_template = None  # a fixed prompt format: no chat template needed

    def __init__(self, *, context_window: int = 4096, name: str = "fake:reader") -> None:
        self.name = name
        self.context_window = context_window
        self.prompts: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(_PIECE.findall(text))

    def reply(self, prompt: str) -> str:
        """The whole reply :meth:`stream` yields for ``prompt``."""
        last = _LAST.findall(prompt)
        if last:  # rag.conversation.condense: "rewrite the last question"
            return last[-1].strip()
        questions = _QUESTION.findall(prompt)
        wanted = content_words(questions[-1]) if questions else set()
        best: tuple[int, str, str] | None = None
        for m in _BLOCK.finditer(prompt):
            text = m.group(3)
            for s, e in sentence_spans(text):
                sentence = " ".join(text[s:e].split())
                shared = len(wanted & content_words(sentence))
                if shared and (best is None or shared > best[0]):
                    best = (shared, sentence, m.group(1))
        if best is None:
            return NO_ANSWER
        _, sentence, number = best
        return f"{sentence.rstrip('.')} [{number}]."

    def stream(self, prompt: str, *, max_new_tokens: int) -> Iterator[str]:
        self.prompts.append(prompt)
        words = self.reply(prompt).split(" ")
        for i, word in enumerate(words[: max(max_new_tokens, 1)]):
            yield word if i == 0 else " " + word
