"""``rag serve``: the browser chat and its API over the default store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.settings import Settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback exposes your documents to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Questions answered at the same time (the rest wait in a queue).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, concurrency: int) -> None:
    """Serve the chat page and its API (no share links; local only by default).

    Set RAG_AUTH=user:password to require a login on the page and RAG_API_KEY=<key> for the
    API. While it runs, `rag ingest`, `search`, `ask`, `sources` and `delete` on the same
    data directory go through this server (it records itself in DATA_DIR/server.json).
    """
    try:
        from ui.app import create_server, warm_up
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in {"gradio", "fastapi", "uvicorn"}:
            raise
        from rag.errors import MissingDependencyError

        raise MissingDependencyError("gradio", "ui", "rag serve") from exc
    from rag.remote import connect_url, find_server, remove_server_file, write_server_file
    from rag.service import RAG

    data_dir = (ctx.obj or {}).get("data_dir")
    rag = RAG(data_dir)
    settings = rag.settings
    try:
        running = find_server(settings)
    except RagError as exc:  # a server owns the store but refused us or is stuck: still not ours to open
        raise click.ClickException(f"Another server already uses {settings.data_dir}: {exc}") from None
    if running is not None:
        running.close()
        raise click.ClickException(f"A server for {settings.data_dir} is already running at {running.url} "
                                   f"(pid {running.pid}); stop it first, or use another --data-dir")
    if warning := exposure_warning(host, settings):
        click.echo(warning, err=True)
    click.echo("Loading the models…", err=True)
    warm_up(rag)
    try:
        server = create_server(rag, host, port, ask_concurrency=concurrency)
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    url = connect_url(host, server.port)

    def announce() -> None:
        # Written once connections are accepted, so a CLI that finds the file can use the server at once.
        try:
            write_server_file(settings.data_dir, url)
        except OSError as exc:
            click.echo(f"Warning: cannot write {settings.data_dir}/server.json ({exc.strerror}): `rag` commands "
                       "run meanwhile will not find this server; do not ingest from the CLI while it runs.", err=True)
        login = " (login required)" if settings.login or settings.api_key else ""
        click.echo(f"Serving on {server.url}{login} (Ctrl-C to stop); data in {settings.data_dir}", err=True)

    try:
        server.serve_forever(on_started=announce)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after shutting down cleanly
        pass
    finally:
        remove_server_file(settings.data_dir)
    click.echo("Stopped.", err=True)


def exposure_warning(host: str, settings: Settings) -> str | None:
    """The warning for a server others can reach without a login, or None (loopback, or login set).

    Args:
        host: the address the server binds.
        settings: its settings (``auth``, ``api_key``).

    Returns:
        One warning line for stderr, or None.
    """
    from ui.app import is_loopback

    if is_loopback(host) or settings.login:
        return None
    if settings.api_key:
        return (f"Warning: listening on {host}, not loopback: RAG_API_KEY guards /api, /v1 and /files, but the "
                "browser chat and its Gradio API have no login, so anyone who can reach this machine can read "
                "and change your documents there. Set RAG_AUTH=user:password too, or use --host 127.0.0.1.")
    return (f"Warning: listening on {host}, not loopback, with no login: anyone who can reach this machine can "
            "read and change your documents. Set RAG_AUTH=user:password (the chat page) and RAG_API_KEY=<key> "
            "(programs), or use --host 127.0.0.1.")
