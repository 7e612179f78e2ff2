"""Answers from a local GGUF model through llama-cpp-python (the optional ``llamacpp`` extra).

``LlamaCppGenerator("models/llama-2-7b-chat.Q4_K_M.gguf")`` loads the file with
``llama_cpp.Llama`` and streams with ``create_completion(stream=True)`` (greedy). It runs
well on a CPU, which makes it the practical local LLM where no GPU is present.

The prompt format is detected from the file name (``llama-2-7b-chat...`` is
``llama-2-chat``) or, failing that, from the chat template stored in the GGUF metadata.

BOS: llama.cpp adds BOS itself when it tokenizes a prompt for a model whose GGUF says so
(Llama-2), so for such a model a prompt that starts with the BOS text (``<s>``, as
``llama-2-chat`` prompts do) has that text removed first; the model sees exactly one BOS
either way, as with :class:`rag.generate.gptq.GPTQGenerator`. A model that adds no BOS
(SmolLM2, whose BOS text ``<|im_start|>`` opens every chat turn) keeps its prompt as written.

``llama_cpp`` is imported when a generator is built, never on import of this module.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

from rag.errors import ConfigError
from rag.lazy import require
from rag.prompt import detect_format

PURPOSE = "Generating answers with a GGUF model through llama.cpp"


class LlamaCppGenerator:
    """A :class:`rag.protocols.Generator` over a GGUF file.

    Attributes:
        name: ``llamacpp:<file name>``.
        prompt_format: the resolved :mod:`rag.prompt` format.
        context_window: ``n_ctx`` (the model's trained context when ``n_ctx`` was 0).
        warning: always None (llama.cpp is usable on a CPU).
    """

    warning: str | None = None

    def __init__(self, model_path: str | Path, n_ctx: int = 4096, *, prompt_format: str = "auto",
                 n_threads: int | None = None) -> None:
        """Load the model.

        Args:
            model_path: a ``.gguf`` file.
            n_ctx: the context window in tokens; 0 for the model's own trained context.
            prompt_format: ``auto`` or a :data:`rag.prompt.FORMATS` name.
            n_threads: CPU threads (llama.cpp's default when None).
        """
        llama_cpp = require("llama_cpp", extra="llamacpp", purpose=PURPOSE, package="llama-cpp-python")
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"the GGUF model {str(path)!r} does not exist; give the path of a .gguf file, "
                              "e.g. RAG_LLM='llamacpp:models/llama-2-7b-chat.Q4_K_M.gguf'")
        self.model_path = path
        self.name = f"llamacpp:{path.name}"
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=int(n_ctx), n_threads=n_threads, verbose=False)
        self.context_window = int(self.llm.n_ctx())
        meta = getattr(self.llm, "metadata", None) or {}
        self._chat_template = meta.get("tokenizer.chat_template")
        self.prompt_format = detect_format(path.name, self._chat_template, prompt_format)
        self._bos_text = self._token_text(self.llm.token_bos())
        self._eos_text = self._token_text(self.llm.token_eos())
        probe = b"x"
        self._adds_bos = len(self.llm.tokenize(probe, add_bos=True)) > len(self.llm.tokenize(probe, add_bos=False))
        self._lock = threading.Lock()

    def _token_text(self, token: int) -> str:
        try:
            return self.llm.detokenize([token], special=True).decode("utf-8", "ignore")
        except TypeError:  # older llama-cpp-python: no `special`
            return self.llm.detokenize([token]).decode("utf-8", "ignore")
        except Exception:
            return ""

    def _strip_bos(self, prompt: str) -> str:
        if not self._adds_bos:
            return prompt
        bos = self._bos_text or "<s>"
        return prompt[len(bos):] if prompt.startswith(bos) else prompt

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for ``text``, the BOS llama.cpp adds included."""
        return len(self.llm.tokenize(self._strip_bos(text).encode("utf-8"), add_bos=True, special=True))

    def render_chat_template(self, messages: list[dict[str, str]]) -> str:
        """Render messages with the GGUF's own chat template (for ``chat-template``)."""
        if not self._chat_template:
            raise ConfigError(f"{self.model_path.name} stores no chat template; set RAG_PROMPT_FORMAT")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(self._chat_template, eos_token=self._eos_text, bos_token=self._bos_text)
        return formatter(messages=messages).prompt

    def stream(self, prompt: str, *, max_new_tokens: int) -> Iterator[str]:
        """Yield the answer text piece by piece (greedy decoding).

        Args:
            prompt: the full prompt.
            max_new_tokens: the most tokens to generate.

        Returns:
            An iterator of non-empty text pieces.
        """
        with self._lock:
            chunks: Any = self.llm.create_completion(
                self._strip_bos(prompt), max_tokens=int(max_new_tokens), temperature=0.0, top_k=1,
                stream=True,
            )
            for chunk in chunks:
                text = chunk["choices"][0].get("text") or ""
                if text:
                    yield text
