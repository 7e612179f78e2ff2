"""Import optional, heavy dependencies only when they are used.

A missing package becomes a :class:`MissingDependencyError` that names the
extra to install, instead of an ImportError deep inside a stack trace.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from types import ModuleType

from rag.errors import MissingDependencyError


def chatter_to_stderr() -> contextlib.AbstractContextManager:
    """Send what libraries print to stdout to stderr while this block runs.

    gptqmodel prints a banner when imported and its progress while it loads or builds a model;
    the CLI's stdout carries ``--json`` output, which must stay one JSON document.

    Returns:
        A context manager (``sys.stdout`` is the process's: keep the block to loading).
    """
    return contextlib.redirect_stdout(sys.stderr)


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
    loaded = sys.modules.get(module)
    if loaded is not None:  # imported already: no banner to catch, and stdout is left alone
        return loaded
    try:
        with chatter_to_stderr():
            return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module.split(".")[0], extra, purpose) from exc
