"""Answer generators: local LLMs that implement :class:`rag.protocols.Generator`.

Importing this package is cheap; torch, transformers, optimum and gptqmodel load
only when a generator is built (``pip install -e '.[gpu]'`` provides them).
"""

from __future__ import annotations

from rag.generate.gptq import CPU_WARNING, GPTQGenerator

__all__ = ["CPU_WARNING", "GPTQGenerator"]
