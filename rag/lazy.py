"""Import optional, heavy dependencies only when they are used.

A missing package becomes a :class:`MissingDependencyError` that names the
extra to install, instead of an ImportError deep inside a stack trace.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rag.errors import MissingDependencyError


def require(module: str, *, extra: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise an error naming the extra that provides it.

    Args:
        module: dotted module name to import.
        extra: the pyproject extra that installs it (``gpu``, ``ui``, ...).
        purpose: what the caller wanted to do, for the message.
        package: the pip package name when it differs from the module name.

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module.split(".")[0], extra, purpose) from exc
