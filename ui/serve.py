"""``rag serve``: the browser chat and its API over the default store."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback exposes your documents to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Questions answered at the same time (the rest wait in a queue).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, concurrency: int) -> None:
    """Serve the chat page and its API (no share links; local only by default)."""
    try:
        from ui.app import create_server, is_loopback, warm_up
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in {"gradio", "fastapi", "uvicorn"}:
            raise
        from rag.errors import MissingDependencyError

        raise MissingDependencyError("gradio", "ui", "rag serve") from exc
    from rag.service import RAG

    data_dir = (ctx.obj or {}).get("data_dir")
    rag = RAG(data_dir)
    if not is_loopback(host):
        click.echo(f"Warning: listening on {host}, not loopback: anyone who can reach this machine can read "
                   "and change your documents (there is no login). Use --host 127.0.0.1 to keep it local.",
                   err=True)
    click.echo("Loading the models…", err=True)
    warm_up(rag)
    try:
        server = create_server(rag, host, port, ask_concurrency=concurrency)
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    click.echo(f"Serving on {server.url} (Ctrl-C to stop); data in {rag.settings.data_dir}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after shutting down cleanly
        pass
    click.echo("Stopped.", err=True)
