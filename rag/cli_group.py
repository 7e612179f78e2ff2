"""The click group class of every ``rag`` command group: the project's errors become one line.

Library code raises :class:`rag.errors.RagError` subclasses whose message names the bad
value, the choices and the fix; at the CLI edge that message is all the user sees (no
traceback), whichever group runs (``rag`` itself, or ``rag eval`` on its own as in tests).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from rag.errors import RagError, user_message

INTERRUPTED = "Interrupted; run the same command again to finish (work already done is kept)."


class RagGroup(click.Group):
    """A :class:`click.Group` that turns ``RagError`` into ``click.ClickException`` and Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RagError as exc:
            raise click.ClickException(user_message(exc)) from None
        except KeyboardInterrupt:
            click.echo(INTERRUPTED, err=True)
            sys.exit(130)
