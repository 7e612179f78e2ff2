"""The project's error types.

Library code raises these; only the edges (CLI, UI, HTTP API) turn them into
messages for people. Every message is one sentence that names the bad value,
the valid choices where there are some, and the fix.
"""

from __future__ import annotations

from typing import Mapping

# The edges that word errors for people, each with its own way to fix things: the command line
# (flags), the page (its fields and buttons) and the HTTP API (request fields).
SURFACES = ("cli", "page", "api")


class RagError(Exception):
    """Base class for every error this project raises on purpose.

    Args:
        message: the sentence saying what is wrong, naming the value.
        hints: the fix, per surface (``cli``, ``page``, ``api``), when it depends on where the
            user is (``--password`` on the command line, the Password field on the page);
            ``str(error)`` carries the ``cli`` one, :func:`user_message` the one of its surface.
    """

    def __init__(self, message: str = "", *, hints: Mapping[str, str] | None = None) -> None:
        self.message = message
        self.hints = dict(hints or {})
        super().__init__(message + (f"; {self.hints['cli']}" if self.hints.get("cli") else ""))

    def for_surface(self, surface: str) -> str:
        """The sentence with the fix of ``surface`` (``str(self)`` when there is no hint for it)."""
        hint = self.hints.get(surface)
        return f"{self.message}; {hint}" if hint else str(self)


class ConfigError(RagError):
    """A setting has a value we cannot use (bad number, unknown choice)."""


class SourceError(RagError):
    """A source (PDF, Wikipedia page, text) cannot be ingested.

    Attributes:
        source: the file name or page title the problem is about.
    """

    def __init__(self, source: str, message: str, *, hints: Mapping[str, str] | None = None) -> None:
        super().__init__(message, hints=hints)
        self.source = source


class EncryptedPDFError(SourceError):
    """A PDF is encrypted and no (or a wrong) password was given."""


class NoTextError(SourceError):
    """A document has no extractable text (for example a scanned PDF)."""


class UnreadableSourceError(SourceError):
    """A file is broken or not the format it claims to be."""


class NotFoundError(SourceError):
    """A Wikipedia page (or another named source) does not exist."""


class InvalidNameError(SourceError):
    """A source or file name has nothing usable in it (``..``, an empty name)."""


class NameConflictError(SourceError):
    """A source name is already taken by a source of another kind (a text named like an uploaded PDF)."""


class AmbiguousTitleError(SourceError):
    """A Wikipedia title is a disambiguation page.

    Attributes:
        options: the pages the title may refer to.
    """

    def __init__(self, source: str, message: str, options: list[str]) -> None:
        super().__init__(source, message)
        self.options = options


class NetworkError(SourceError):
    """A remote source (Wikipedia) could not be reached or timed out."""


class InvalidCollectionError(RagError):
    """A collection name breaks the naming rule (empty, too long, odd characters)."""


class UnknownCollectionError(RagError):
    """A collection was asked for that holds no source."""


class ForbiddenCollectionError(RagError):
    """An API key bound to some collections asked for another one (HTTP 403)."""


class StoreError(RagError):
    """The vector store could not be opened, read or written."""


class MissingDependencyError(RagError):
    """An optional dependency is not installed.

    The message names the extra that provides it, e.g. ``pip install -e '.[gpu]'``.
    """

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed; "
            f"install it with: pip install -e '.[{extra}]'"
        )
        self.package = package
        self.extra = extra


class RemoteError(RagError):
    """A running ``rag serve`` could not be reached, refused the credentials, or failed a request.

    Attributes:
        status: the HTTP status the server answered with (None when it did not answer).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def some_of(names: list[str], limit: int = 10) -> str:
    """Names for a message: all of them, or the first ``limit`` and ``and N more``; ``none`` when empty."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


GENERIC_MESSAGE = "Something went wrong on the server (it was logged); please try again."


def user_message(exc: BaseException, surface: str | None = None) -> str:
    """The one sentence a person sees for an error, at any edge (CLI, HTTP, the page).

    Args:
        exc: what was raised.
        surface: where it is shown (``cli``, ``page``, ``api``): the fix it names is that
            surface's (see :class:`RagError`); None: the command line's.

    Returns:
        The library's own sentence for a ``RagError``; for anything else a generic sentence,
        with the exception and its traceback logged (never shown: it may hold paths or data).
    """
    if isinstance(exc, RagError):
        return exc.for_surface(surface) if surface else str(exc)
    import logging

    logging.getLogger("rag").error("Unexpected error", exc_info=exc)
    return GENERIC_MESSAGE
