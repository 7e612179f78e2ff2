"""llama-cpp-python is an optional extra: without it, building the generator names the extra to install.

With it, the bundled SmolLM2 GGUF (a real Llama chat model) answers through it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rag import RAG
from rag.errors import MissingDependencyError
from rag.settings import Settings
from rag.types import Answer
from tests.rag.generate.conftest import need_llama_cpp


def test_missing_package_names_the_llamacpp_extra(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` raises ImportError
    from rag.generate import make_generator
    from rag.generate.llamacpp import LlamaCppGenerator

    model = tmp_path / "llama-2-7b-chat.Q4_K_M.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(MissingDependencyError) as info:
        LlamaCppGenerator(model)
    assert info.value.extra == "llamacpp" and info.value.package == "llama-cpp-python"
    assert str(info.value) == (
        "Generating answers with a GGUF model through llama.cpp needs the Python package 'llama-cpp-python', "
        "which is not installed; install it with: pip install -e '.[llamacpp]'"
    )
    with pytest.raises(MissingDependencyError, match=r"\.\[llamacpp\]"):
        make_generator(Settings(llm=f"llamacpp:{model}"))


def test_importing_the_module_does_not_import_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.delitem(sys.modules, "rag.generate.llamacpp", raising=False)
    import rag.generate.llamacpp  # noqa: F401  (would raise if it imported llama_cpp at module level)


# -- the bundled SmolLM2 GGUF through llama.cpp (skipped without the llamacpp extra) --------------
@pytest.fixture(scope="module")
def llamacpp_rag(table_pdf_store: Path, smollm2_gguf: Path) -> RAG:
    need_llama_cpp()
    return RAG(table_pdf_store, llm="smollm2:llamacpp", max_new_tokens=32)


def test_smollm2_gguf_loads_with_its_own_context_and_chat_template(llamacpp_rag: RAG, smollm2_gguf: Path,
                                                                   smollm2_float_dir: Path) -> None:
    from transformers import AutoTokenizer

    from rag.generate.llamacpp import LlamaCppGenerator

    gen = llamacpp_rag.generator
    assert type(gen) is LlamaCppGenerator and gen.model_path == smollm2_gguf and gen.name == "smollm2:llamacpp"
    assert gen.prompt_format == "chat-template" and gen.context_window == 8192  # n_ctx=0: the trained context
    assert "tiny" in gen.warning
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of Denmark?"}]
    prompt = gen.render_chat_template(messages)
    # the same prompt transformers renders from the same model's template
    assert prompt == AutoTokenizer.from_pretrained(smollm2_float_dir).apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False)
    # SmolLM2 adds no BOS of its own: the template's leading <|im_start|> is kept, counted once
    assert prompt.startswith("<|im_start|>") and gen._strip_bos(prompt) == prompt
    tokens = gen.llm.tokenize(prompt.encode(), add_bos=True, special=True)
    assert tokens[0] == gen.llm.token_bos() and tokens.count(gen.llm.token_bos()) == prompt.count("<|im_start|>")
    assert gen.count_tokens(prompt) == len(tokens)


def test_smollm2_answers_over_an_ingested_pdf_through_llama_cpp(llamacpp_rag: RAG) -> None:
    *pieces, answer = list(llamacpp_rag.ask_stream("What is the capital of Denmark?", k=1))
    print("smollm2:llamacpp answered:", answer.text)
    assert isinstance(answer, Answer) and len(pieces) > 1 and all(isinstance(p, str) for p in pieces)
    assert answer.generator == "smollm2:llamacpp" and answer.prompt_format == "chat-template"
    # Greedy on the Q4_1 weights with the pinned fence code (conftest) this tiny model answers
    # "The capital of Denmark is Copenhagen [1]."; with other codes it may refuse: the path is
    # checked, not the model's knowledge.
    assert answer.text.strip() and answer.sources[0].page == 3 and not answer.refused
