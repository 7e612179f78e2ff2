"""Fetch a Wikipedia page with the ``wikipedia`` package and split it into one Document per section.

The lead section (the text before the first heading) gets ``section=None`` and the
page URL without an anchor; every other section gets its heading path
("History > Early life") and a URL ending in the heading's own anchor
("#Early_life"). Sections that only list sources or links (References, See also,
...) are left out, together with their subsections. Fetches run one at a time: the
package keeps its API URL and HTTP client in module globals.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, NamedTuple

import requests
import wikipedia
from bs4 import GuessedAtParserWarning
import wikipedia.wikipedia as _package
from wikipedia.exceptions import DisambiguationError, PageError, WikipediaException

from rag.errors import (
    AmbiguousTitleError,
    ConfigError,
    NetworkError,
    NoTextError,
    NotFoundError,
    SourceError,
)
from rag.settings import Settings
from rag.types import Document

# Compared case-insensitively; these sections hold citations and links, not prose to answer from.
BOILERPLATE_SECTIONS = frozenset(
    s.casefold()
    for s in (
        "References", "External links", "See also", "Notes", "Further reading",
        "Bibliography", "Sources", "Citations", "Notes and references", "Footnotes",
    )
)
_BACKOFF_BASE_S = 0.5
_BACKOFF_MAX_S = 8.0
_sleep = time.sleep  # module attribute so tests can record the backoff without waiting
# The package keeps its API URL and HTTP client in module globals: one fetch at a time may own them.
_PACKAGE_LOCK = threading.Lock()
_HEADING = re.compile(r"^(={2,6})[ \t]*(.+?)[ \t]*\1[ \t]*$", re.MULTILINE)
_RETRIED_API_ERRORS = frozenset({"maxlag", "ratelimited", "readonly"})
# The package parses disambiguation lists without naming a parser; html.parser is fine for its <li> scan.
warnings.filterwarnings("ignore", category=GuessedAtParserWarning, module=r"wikipedia\.wikipedia")


class Section(NamedTuple):
    """One section of a plain-text extract: heading path (empty for the lead), URL anchor, text."""

    path: tuple[str, ...]
    anchor: str
    text: str


class _Unreachable(Exception):
    """No usable answer from the API after the allowed attempts."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class _ApiRefused(Exception):
    """The API answered with a MediaWiki error that retrying will not fix."""


class _JsonAnswer:
    """The one part of a ``requests.Response`` the package uses."""

    def __init__(self, data: Any) -> None:
        self._data = data

    def json(self) -> Any:
        return self._data


class _PatientRequests:
    """Stands in for the ``requests`` module inside the package: every GET gets a timeout and retries."""

    def __init__(self, timeout: float, retries: int) -> None:
        self.timeout = timeout
        self.retries = retries
        self.session = requests.Session()

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> _JsonAnswer:
        reason = "no attempt was made"
        for attempt in range(1, self.retries + 1):
            if attempt > 1:
                _sleep(min(_BACKOFF_BASE_S * 2 ** (attempt - 2), _BACKOFF_MAX_S))
            try:
                response = self.session.get(url, params=params, headers=headers, timeout=self.timeout)
            except requests.Timeout:  # before ConnectionError: ConnectTimeout is both
                reason = f"no answer within {self.timeout:g} s"
                continue
            except requests.ConnectionError as exc:
                reason = f"the connection failed ({type(exc).__name__})"
                continue
            except requests.RequestException as exc:
                raise _Unreachable(f"the request could not be made ({exc})", attempt) from exc
            if response.status_code >= 500 or response.status_code == 429:
                reason = f"it answered HTTP {response.status_code}"
                continue
            if response.status_code >= 400:  # a wrong URL stays wrong: do not retry
                raise _Unreachable(f"it answered HTTP {response.status_code}", attempt)
            try:
                data = response.json()
            except ValueError:
                reason = f"it answered HTTP {response.status_code} with a body that is not JSON"
                continue
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict):
                if error.get("code") in _RETRIED_API_ERRORS:
                    reason = f"it answered the MediaWiki error '{error.get('code')}'"
                    continue
                raise _ApiRefused(error.get("info") or error.get("code") or "unknown error")
            return _JsonAnswer(data)
        raise _Unreachable(reason, self.retries)


@contextmanager
def _package_using(api_url: str, client: _PatientRequests) -> Iterator[None]:
    with _PACKAGE_LOCK:
        saved = (_package.API_URL, _package.requests)
        _package.API_URL, _package.requests = api_url, client
        try:
            yield
        finally:
            _package.API_URL, _package.requests = saved


def split_sections(content: str) -> list[Section]:
    """Split a MediaWiki plain-text extract (``== Heading ==`` lines) into sections, lead first.

    Args:
        content: the ``explaintext`` extract of a page.

    Returns:
        Every section in page order, empty ones included, with stripped text.
    """
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    path: tuple[str, ...] = ()
    anchor, start = "", 0
    for match in _HEADING.finditer(content):
        sections.append(Section(path, anchor, _clean(content[start : match.start()])))
        level, heading = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
        path = tuple(h for _, h in stack)
        anchor = heading.replace(" ", "_")
        # MediaWiki numbers repeated headings' anchors: the second "Notes" is "#Notes_2".
        seen[anchor] = seen.get(anchor, 0) + 1
        if seen[anchor] > 1:
            anchor = f"{anchor}_{seen[anchor]}"
        start = match.end()
    sections.append(Section(path, anchor, _clean(content[start:])))
    return sections


def _clean(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text.strip())


def fetch_wikipedia(
    title: str, *, api_url: str = Settings.wikipedia_api_url, timeout: float = Settings.wikipedia_timeout,
    retries: int = 3
) -> list[Document]:
    """Fetch one Wikipedia page by its exact title and return one Document per prose section.

    Args:
        title: the exact page title; redirects are followed, search suggestions never are.
        api_url: the MediaWiki ``api.php`` endpoint.
        timeout: seconds to wait for each HTTP answer.
        retries: attempts per HTTP request (at least 1), with exponential backoff between them.

    Returns:
        Documents in page order, all with ``source="wikipedia:<final title>"``.

    Raises:
        NotFoundError, AmbiguousTitleError, NetworkError, NoTextError, SourceError.
    """
    if timeout <= 0 or retries < 1:
        raise ConfigError(f"timeout={timeout} and retries={retries} must be positive; e.g. timeout=15, retries=3")
    wanted = title.strip()
    if not wanted:
        raise NotFoundError(title, "A Wikipedia title cannot be empty; give the exact title of a page")
    client = _PatientRequests(timeout, retries)
    try:
        with _package_using(api_url, client):
            page = wikipedia.page(wanted, auto_suggest=False, redirect=True)
            content: str = page.content
            revision_id = page.revision_id
    except PageError:
        raise NotFoundError(
            title, f"No Wikipedia page is titled '{wanted}'; check the spelling or the exact title on Wikipedia"
        ) from None
    except DisambiguationError as exc:
        options = list(exc.options)
        listed = ", ".join(options[:10]) + (f" (and {len(options) - 10} more)" if len(options) > 10 else "")
        raise AmbiguousTitleError(
            title, f"'{wanted}' is a Wikipedia disambiguation page; ask for one of: {listed}", options=options
        ) from None
    except _Unreachable as exc:
        raise NetworkError(
            title,
            f"Could not fetch the Wikipedia page '{wanted}' from {api_url}: {exc.reason} "
            f"after {exc.attempts} attempt(s); check the network connection and the API URL "
            "(setting wikipedia_api_url), then try again",
        ) from exc
    except _ApiRefused as exc:
        raise SourceError(
            title, f"The API at {api_url} refused the request for '{wanted}' ({exc}); check the title"
        ) from exc
    except (KeyError, IndexError, TypeError, AttributeError, AssertionError, WikipediaException) as exc:
        raise SourceError(
            title,
            f"The API at {api_url} answered for '{wanted}' in a shape that is not MediaWiki's ({exc!r}); "
            "check the title for characters like [ ] {{ }} | and that the URL is a MediaWiki api.php",
        ) from exc
    finally:
        client.session.close()

    base_meta: dict[str, str | int] = {"page_id": int(page.pageid), "requested_title": title}
    if revision_id is not None:
        base_meta["revision_id"] = int(revision_id)
    documents = [
        Document(
            source=f"wikipedia:{page.title}",
            text=section.text,
            kind="wikipedia",
            title=page.title,
            url=f"{page.url}#{section.anchor}" if section.path else page.url,
            section=" > ".join(section.path) or None,
            meta=dict(base_meta),
        )
        for section in split_sections(content)
        if section.text and not any(h.casefold() in BOILERPLATE_SECTIONS for h in section.path)
    ]
    if not documents:
        raise NoTextError(page.title, f"The Wikipedia page '{page.title}' has no prose outside reference sections")
    return documents
