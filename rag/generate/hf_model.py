"""Answers from a local transformers checkpoint (float or quantized), streamed.

:class:`TransformersGenerator` loads a directory (or Hugging Face id) with
``AutoModelForCausalLM.from_pretrained`` and streams greedy ``generate`` from a worker thread
through a :class:`transformers.TextIteratorStreamer`. :class:`rag.generate.gptq.GPTQGenerator`
is this generator restricted to GPTQ checkpoints (checked before the weights load, with a
warning on CPU); the bundled SmolLM2's float export (:mod:`rag.generate.smollm2`) uses it as is.

BOS: a prompt that starts with the tokenizer's BOS text (``<s>``, as ``llama-2-chat`` prompts
and Llama chat templates write it; ``<|im_start|>`` for SmolLM2's template) is encoded without
adding special tokens; any other prompt gets whatever the tokenizer adds. See :mod:`rag.prompt`.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Iterator

from rag.errors import ConfigError, RagError
from rag.lazy import chatter_to_stderr, require
from rag.prompt import detect_format

PURPOSE = "Generating answers with a transformers model"
DEFAULT_CONTEXT_WINDOW = 4096


class TransformersGenerator:
    """A :class:`rag.protocols.Generator` over a transformers causal-LM checkpoint.

    Attributes:
        name: ``transformers:<model>`` (subclasses and callers may rename it).
        model_id: the directory or Hugging Face id it was loaded from.
        prompt_format: the resolved :mod:`rag.prompt` format.
        context_window: the model's context length in tokens (``max_position_embeddings``).
        device: where the model runs (``cuda``, ``cuda:1``, ``cpu``).
        warning: a sentence to show users about this model, else None.
    """

    kind = "transformers"
    extra = "gpu"  # transformers itself comes with sentence-transformers; torch is a base dependency
    purpose = PURPOSE

    def __init__(self, model: str, *, device: str | None = None, prompt_format: str = "auto") -> None:
        """Load the tokenizer and the model.

        Args:
            model: a local directory or a Hugging Face id.
            device: ``cuda``, ``cuda:N`` or ``cpu``; default: CUDA when available, else CPU.
            prompt_format: ``auto`` or a :data:`rag.prompt.FORMATS` name.

        Raises:
            ConfigError: the model cannot be found or is not what this generator loads.
            MissingDependencyError: a package the checkpoint needs is not installed.
        """
        self._require()
        transformers = require("transformers", extra=self.extra, purpose=self.purpose)
        import torch

        self.model_id = str(model)
        self.name = f"{self.kind}:{self.model_id}"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device={self.device!r} was asked for, but torch sees no CUDA GPU; use device='cpu'")

        try:
            config = transformers.AutoConfig.from_pretrained(self.model_id)
        except OSError as exc:
            raise ConfigError(
                f"cannot load the model {self.model_id!r}: {exc}; give a local directory or the id of a "
                "Hugging Face repository (with HF_HUB_OFFLINE=1 only models already in the cache load)"
            ) from exc
        self._check_config(config)
        self.context_window = int(getattr(config, "max_position_embeddings", None) or DEFAULT_CONTEXT_WINDOW)

        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_id)
        self.prompt_format = detect_format(self.model_id, self.tokenizer.chat_template, prompt_format)

        on_gpu = self.device.startswith("cuda")
        self.warning: str | None = self._warning(on_gpu)
        # fp16 for the CUDA kernels; float32 on CPU (quantized layers keep their own format).
        dtype = torch.float16 if on_gpu else torch.float32
        with chatter_to_stderr():
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                self.model_id, device_map={"": self.device}, dtype=dtype
            )
        self.model.eval()
        self._lock = threading.Lock()

    # -- hooks for subclasses ----------------------------------------------------------------
    def _require(self) -> None:
        """Import the optional packages this checkpoint kind needs (MissingDependencyError if absent)."""

    def _check_config(self, config: Any) -> None:
        """Refuse a checkpoint this generator cannot load, before any weights are read."""

    def _warning(self, on_gpu: bool) -> str | None:
        """The sentence users should see about speed or quality, or None."""
        return None

    # -- the Generator protocol --------------------------------------------------------------
    def _add_bos(self, text: str) -> bool:
        bos = self.tokenizer.bos_token
        return not (bos and text.startswith(bos))

    def encode(self, prompt: str) -> dict[str, Any]:
        """Tokenize a prompt the way :meth:`stream` feeds it to the model (one BOS, never two).

        Args:
            prompt: the full prompt text.

        Returns:
            ``input_ids`` and ``attention_mask`` tensors on the model's device.
        """
        batch = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=self._add_bos(prompt))
        return {k: v.to(self.model.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def count_tokens(self, text: str) -> int:
        """The number of tokens the model reads for ``text``, BOS included.

        Args:
            text: a prompt.

        Returns:
            The token count.
        """
        return len(self.tokenizer(text, add_special_tokens=self._add_bos(text))["input_ids"])

    def render_chat_template(self, messages: list[dict[str, str]]) -> str:
        """Render chat messages with the checkpoint's own template, ready for the answer.

        Args:
            messages: ``{"role": ..., "content": ...}`` dicts, oldest first.

        Returns:
            The prompt text.
        """
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def generation_kwargs(self, max_new_tokens: int) -> dict[str, Any]:
        """Greedy decoding settings, overriding any sampling defaults in generation_config.json.

        Args:
            max_new_tokens: the most tokens to generate.

        Returns:
            Keyword arguments for ``model.generate``.
        """
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        return {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "top_k": None,
            "pad_token_id": pad,
        }

    def stream(self, prompt: str, *, max_new_tokens: int) -> Iterator[str]:
        """Yield the answer text piece by piece as the model writes it (greedy).

        Args:
            prompt: the full prompt, e.g. ``rag.prompt.pack_prompt(...).text``.
            max_new_tokens: the most tokens to generate.

        Returns:
            An iterator of non-empty text pieces; joined, they equal the decoded answer.
        """
        inputs = self.encode(prompt)
        streamer = _streamer_class()(self.tokenizer)
        stop = threading.Event()
        failure: list[Exception] = []

        def work() -> None:
            try:
                with self._lock:
                    self.model.generate(
                        **inputs,
                        **self.generation_kwargs(max_new_tokens),
                        streamer=streamer,
                        stopping_criteria=_stop_criteria(stop),
                    )
            except Exception as exc:  # handed to the reading thread below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, name=f"{self.kind}-generate", daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            stop.set()  # the reader went away early: let generate() stop at the next token
            thread.join()
        if failure:
            raise RagError(f"generation with {self.model_id} failed: {failure[0]}") from failure[0]


@functools.cache
def _streamer_class() -> type:
    """A TextIteratorStreamer whose pieces always join to exactly ``tokenizer.decode(answer)``.

    transformers' own streamer decodes from scratch after each newline, which drops the
    space a Llama (SentencePiece) token carries at the start of the next line.
    """
    from transformers import TextIteratorStreamer

    class PrefixStableStreamer(TextIteratorStreamer):
        def __init__(self, tokenizer: Any) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self._ids: list[int] = []
            self._sent = ""

        def put(self, value: Any) -> None:
            if value.dim() > 1:
                if value.shape[0] > 1:
                    raise ValueError("streaming supports batch size 1 only")
                value = value[0]
            if self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            self._ids.extend(value.tolist())
            text = self.tokenizer.decode(self._ids, **self.decode_kwargs)
            stable = text.rstrip("\ufffd")  # an unfinished UTF-8 sequence
            cut = max(stable.rfind(" "), stable.rfind("\n"))  # the last word may still change
            if cut > len(self._sent) and text.startswith(self._sent):
                self.on_finalized_text(text[len(self._sent) : cut])
                self._sent = text[:cut]

        def end(self) -> None:
            text = self.tokenizer.decode(self._ids, **self.decode_kwargs) if self._ids else ""
            rest = text[len(self._sent) :] if text.startswith(self._sent) else ""
            self._ids, self._sent = [], ""
            self.next_tokens_are_prompt = True
            self.on_finalized_text(rest, stream_end=True)

    return PrefixStableStreamer


def _stop_criteria(event: threading.Event) -> Any:
    """Stopping criteria that end generation once ``event`` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnEvent()])
