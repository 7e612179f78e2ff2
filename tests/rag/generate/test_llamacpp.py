"""llama-cpp-python is an optional extra: without it, building the generator names the extra to install."""

from __future__ import annotations

import sys

import pytest

from rag.errors import MissingDependencyError
from rag.settings import Settings


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
