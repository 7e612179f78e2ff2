"""Progress on stderr for long work (ingestion, evaluations): a tqdm bar, or nothing when disabled.

tqdm loads only when a bar is shown.
"""

from __future__ import annotations

from typing import Any, Iterable, TypeVar

T = TypeVar("T")


class _NoBar:
    """A bar that shows nothing, for ``progress=False`` and empty work."""

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def iter_progress(items: Iterable[T], *, total: int | None = None, desc: str, unit: str,
                  enabled: bool) -> Iterable[T]:
    """``items`` wrapped in a tqdm bar on stderr when ``enabled``."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit=unit, dynamic_ncols=True)


def progress_bar(total: int, *, desc: str, unit: str, enabled: bool) -> Any:
    """A tqdm bar on stderr to ``update(n)`` and ``close()`` by hand, or one that does nothing.

    Args:
        total: how many units the work has (no bar when 0).
        desc: the bar's label, e.g. ``Embedding``.
        unit: what is counted, e.g. ``chunk``.
        enabled: False for no bar at all (``--no-progress``, ``--json``).
    """
    if not enabled or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
