"""Answers from a local GPTQ-quantized Llama through transformers, optimum and gptqmodel.

``GPTQGenerator("TheBloke/Llama-2-7B-Chat-GPTQ")`` (or a local directory with that
layout) loads through ``AutoModelForCausalLM.from_pretrained``; a ``config.json`` with
``quantization_config.quant_method == "gptq"`` routes the load through optimum, which
swaps the linear layers for gptqmodel kernels (Marlin/ExLlama on CUDA, a torch kernel
on CPU). Tokenizing, chat templates and streaming are
:class:`rag.generate.hf_model.TransformersGenerator`'s; this class adds the GPTQ check
(before any weights load) and the CPU warning.

The bundled SmolLM2 (``RAG_LLM=smollm2``) is quantized into this layout on first use
(:mod:`rag.generate.smollm2`) and loaded through this same class.
"""

from __future__ import annotations

import logging
from typing import Any

from rag.errors import ConfigError
from rag.generate.hf_model import DEFAULT_CONTEXT_WINDOW, TransformersGenerator, _streamer_class
from rag.lazy import require

log = logging.getLogger(__name__)

PURPOSE = "Generating answers with a GPTQ model"
CPU_WARNING = (
    "No CUDA GPU is in use: a 7B GPTQ model generates about 1 token/s on CPU, "
    "so an answer takes minutes; use a machine with an NVIDIA GPU for interactive answers."
)


class GPTQGenerator(TransformersGenerator):
    """A :class:`rag.protocols.Generator` over a GPTQ checkpoint (Hugging Face id or local directory).

    Attributes:
        name: ``gptq:<model>``.
        prompt_format: the resolved :mod:`rag.prompt` format.
        context_window: the model's context length in tokens.
        device: where the model runs (``cuda``, ``cuda:1``, ``cpu``).
        warning: a sentence to show users when generation will be slow, else None.
    """

    kind = "gptq"
    extra = "gpu"
    purpose = PURPOSE

    def __init__(self, model: str, *, device: str | None = None, prompt_format: str = "auto") -> None:
        """Load the tokenizer and the quantized model.

        Args:
            model: a Hugging Face id or a local directory laid out like TheBloke's GPTQ repositories.
            device: ``cuda``, ``cuda:N`` or ``cpu``; default: CUDA when available, else CPU.
            prompt_format: ``auto`` or a :data:`rag.prompt.FORMATS` name.
        """
        super().__init__(model, device=device, prompt_format=prompt_format)

    def _require(self) -> None:
        require("gptqmodel", extra="gpu", purpose=PURPOSE)
        require("optimum.gptq", extra="gpu", purpose=PURPOSE, package="optimum")

    def _check_config(self, config: Any) -> None:
        quant = getattr(config, "quantization_config", None) or {}
        method = quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", None)
        if str(getattr(method, "value", method)).lower() != "gptq":
            raise ConfigError(
                f"{self.model_id} is not a GPTQ checkpoint (its config.json has no quantization_config with "
                f"quant_method 'gptq', found {method!r}); pick a GPTQ build such as TheBloke/Llama-2-7B-Chat-GPTQ"
            )

    def _warning(self, on_gpu: bool) -> str | None:
        if on_gpu:
            return None
        log.warning(CPU_WARNING)
        return CPU_WARNING


__all__ = ["CPU_WARNING", "DEFAULT_CONTEXT_WINDOW", "GPTQGenerator", "PURPOSE", "_streamer_class"]
