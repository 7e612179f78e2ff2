"""make_generator: settings.llm picks the generator; unknown values name the valid forms."""

from __future__ import annotations

import pytest

from rag.errors import ConfigError
from rag.generate import VALID_LLM_FORMS, make_generator, parse_llm
from rag.settings import Settings


@pytest.mark.parametrize(("spec", "kind", "args"), [
    ("extractive", "extractive", {}),
    (" Extractive ", "extractive", {}),
    ("gptq:TheBloke/Llama-2-7B-Chat-GPTQ", "gptq", {"model": "TheBloke/Llama-2-7B-Chat-GPTQ"}),
    ("gptq:/models/My Llama-2-Chat-GPTQ", "gptq", {"model": "/models/My Llama-2-Chat-GPTQ"}),
    ("llamacpp:models/llama-2-7b-chat.Q4_K_M.gguf", "llamacpp", {"model_path": "models/llama-2-7b-chat.Q4_K_M.gguf"}),
    ("smollm2", "smollm2", {"path": "auto"}),
    ("SmolLM2:GPTQ", "smollm2", {"path": "gptq"}),
    ("smollm2:transformers", "smollm2", {"path": "transformers"}),
    ("smollm2:llamacpp", "smollm2", {"path": "llamacpp"}),
])
def test_parse_llm(spec: str, kind: str, args: dict) -> None:
    assert parse_llm(spec) == (kind, args)


@pytest.mark.parametrize("spec", ["", "gpt4", "gptq:", "llamacpp:", "extractive:fast", "openai:http://x/v1",
                                  "smollm2:fast", "smollm2:/models/x.gguf"])
def test_unknown_or_incomplete_values_name_the_valid_forms(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_generator(Settings(llm=spec))
    message = str(info.value)
    assert repr(spec) in message
    if not spec.startswith("openai"):
        assert all(form in message for form in VALID_LLM_FORMS)


def test_extractive_is_the_default(embedder) -> None:
    gen = make_generator(Settings(), embedder=embedder)
    assert gen.name == "extractive" and gen.embedder is embedder


def test_smollm2_notice_is_known_before_the_model_loads() -> None:
    from rag.generate import notice

    text = notice(Settings(llm="smollm2"))
    assert text and "tiny demonstration model" in text and "slow" in text
    assert notice(Settings(llm="openai:http://127.0.0.1:1/v1#m")) is None
