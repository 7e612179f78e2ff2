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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError
from rag.generate.gptq import CPU_WARNING, GPTQGenerator

if TYPE_CHECKING:
    from rag.protocols import Embedder, Generator
    from rag.settings import Settings

VALID_LLM_FORMS = (
    "extractive",
    "gptq:<Hugging Face id or local directory>",
    "openai:<base_url>#<model>",
    "openai (with RAG_OPENAI_BASE_URL and RAG_OPENAI_MODEL)",
    "llamacpp:<path to a .gguf file>",
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
    raise AttributeError(f"module 'rag.generate' has no attribute {name!r}")


def parse_llm(spec: str, settings: "Settings | None" = None) -> tuple[str, dict[str, Any]]:
    """Split an ``llm`` setting into its kind and the arguments of its generator.

    Args:
        spec: the ``llm`` value (``RAG_LLM``), e.g. ``openai:http://localhost:8000/v1#llama``.
        settings: where ``openai`` alone finds its URL, model and key.

    Returns:
        ``("extractive" | "gptq" | "openai" | "llamacpp", keyword arguments)``.

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
        return ExtractiveGenerator(embedder)
    if kind == "gptq":
        return GPTQGenerator(args["model"], prompt_format=settings.prompt_format)
    if kind == "openai":
        from rag.generate.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator(args["base_url"], args["model"], args["api_key"])
    from rag.generate.llamacpp import LlamaCppGenerator

    return LlamaCppGenerator(args["model_path"], prompt_format=settings.prompt_format)


__all__ = [
    "CPU_WARNING",
    "ExtractiveGenerator",
    "GPTQGenerator",
    "LlamaCppGenerator",
    "OpenAICompatGenerator",
    "VALID_LLM_FORMS",
    "make_generator",
    "parse_llm",
]
