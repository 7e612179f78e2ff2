"""Settings: defaults in one place, RAG_* overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.settings import Settings


def test_environment_overrides_defaults_and_keywords_override_environment() -> None:
    env = {"RAG_DATA_DIR": "/tmp/x", "RAG_TOP_K": "7", "RAG_CHUNK_TOKENS": "128", "RAG_LLM": "extractive"}
    s = Settings.from_env(env)
    assert (s.data_dir, s.top_k, s.chunk_tokens) == (Path("/tmp/x"), 7, 128)
    assert Settings.from_env(env, top_k=3).top_k == 3
    assert Settings.from_env({}).top_k == Settings().top_k


@pytest.mark.parametrize(
    "env,message",
    [
        ({"RAG_TOP_K": "many"}, "RAG_TOP_K='many' is not a int; set it to a number"),
        ({"RAG_CHUNK_TOKENS": "300"}, "chunk_tokens=300 is out of range; choose 16..254"),
        ({"RAG_CHUNK_OVERLAP": "150"}, "chunk_overlap=150 must be at least 0 and below half"),
        ({"RAG_RETRIEVAL_MODE": "magic"}, "retrieval_mode='magic' is not one of dense, keyword, hybrid"),
        ({"RAG_TOP_K": "0"}, "top_k=0 must be 1..100"),
        ({"RAG_TOP_K": "101"}, "top_k=101 must be 1..100"),
    ],
)
def test_bad_values_name_the_value_and_the_fix(env: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(env)
    assert message in str(exc.value)
