"""What every evaluation shares: its error type, a throw-away store, progress bars, the report table."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from rag.errors import RagError
from rag.progress import iter_progress, progress_bar  # noqa: F401  (the evaluations import them from here)
from rag.settings import Settings

log = logging.getLogger(__name__)


class EvalDataError(RagError):
    """An evaluation data set is missing or not in the format the evaluation reads."""


def resolve_settings(settings: Settings | None, **overrides: Any) -> Settings:
    """``settings`` (environment and defaults when None) with the non-None ``overrides`` applied."""
    base = settings or Settings.from_env()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return base.replace(**changes) if changes else base


@contextmanager
def temporary_rag(settings: Settings) -> Iterator[Any]:
    """A facade over a fresh, empty store in a temporary directory, deleted on exit.

    Nothing is cached between runs: every evaluation embeds and indexes its corpus anew,
    so a change to chunking or embedding always shows in the figures.
    """
    from rag.service import RAG

    tmp = Path(tempfile.mkdtemp(prefix="rag-eval-"))
    rag = RAG(settings=settings.replace(data_dir=tmp))
    try:
        yield rag
    finally:
        _close_store(rag)
        shutil.rmtree(tmp, ignore_errors=True)


def _close_store(rag: Any) -> None:
    # Only a store that was opened holds files. Chroma keeps one shared system per path until
    # its client is closed, and the keyword index holds a SQLite connection: close both before
    # the directory goes away.
    store = rag.__dict__.get("store")
    if store is None:
        return
    if callable(getattr(store, "close", None)):
        parts = [store]
    else:
        parts = [p for p in (getattr(store, "vectors", None), getattr(store, "keywords", None)) if p] or [store]
    for part in parts:
        close = getattr(part, "close", None) or getattr(getattr(part, "_client", None), "close", None)
        if close is None:
            continue
        try:
            close()
        except Exception as exc:  # best effort: the directory is deleted anyway
            log.debug("closing the evaluation store failed: %s", exc)


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file, turning a missing or broken file into one clear EvalDataError."""
    if not path.is_file():
        raise EvalDataError(f"The {what} file {str(path)!r} does not exist; check the path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalDataError(f"The {what} file {str(path)!r} is not valid UTF-8 JSON ({exc}); "
                            "give the original file") from None


def format_table(title: str, result: Mapping[str, Any], metrics: Iterable[str]) -> str:
    """A readable two-column table: the metrics first, then every other key (settings, sizes, times)."""
    metrics = [m for m in metrics if m in result]
    rest = [k for k in result if k not in metrics and k != "eval" and result[k] is not None]
    width = max(len(k) for k in [*metrics, *rest, "metric"])
    rule = f"{'-' * width}  {'-' * 8}"
    lines = [title, f"{'metric':<{width}}  value", rule]
    lines += [f"{key:<{width}}  {_fmt(key, result[key])}" for key in metrics]
    if rest:
        lines.append(rule)
        lines += [f"{key:<{width}}  {_fmt(key, result[key])}" for key in rest]
    return "\n".join(lines)


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if key.endswith("seconds") else f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def spread_questions(questions: list, max_questions: int | None) -> list:
    """At most ``max_questions`` of ``questions``, spread evenly over them (all when None)."""
    if max_questions is None or max_questions >= len(questions):
        return questions
    step = len(questions) / max_questions
    return [questions[int(i * step)] for i in range(max_questions)]


def extractive_answerer(rag: Any, settings: Any):
    """An Answerer with the offline extractive generator over ``rag``'s retriever and embedder."""
    from rag.answer import Answerer
    from rag.generate import extract_reranker
    from rag.generate.extractive import ExtractiveGenerator

    return Answerer(rag.retriever, ExtractiveGenerator(rag.embedder, reranker=extract_reranker(settings)), settings,
                    rag.embedder)
