"""The `rag` command line. Library errors become one clear line and a non-zero exit."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rag.cli_group import RagGroup
from rag.errors import RagError
from rag.settings import MAX_TOP_K

if TYPE_CHECKING:
    from rag.http.remote import RemoteRAG
    from rag.service import RAG
    from rag.types import IngestReport

@click.group(cls=RagGroup)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="RAG_DATA_DIR",
              help="Where the store lives (env RAG_DATA_DIR; default ./data of the checkout).")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, verbose: int) -> None:
    """Question answering over your own documents: ingest PDFs and Wikipedia pages, then search and ask."""
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"data_dir": data_dir}


def open_rag(ctx: click.Context, **overrides: Any):
    """The facade for this invocation, honouring --data-dir and the given overrides."""
    from rag.service import RAG

    return RAG(ctx.obj["data_dir"], **overrides)


def open_service(ctx: click.Context, *, llm: str | None = None, ray: str | None = None) -> RAG | RemoteRAG:
    """The running server that owns the data dir (saying so on stderr), else the in-process facade.

    Chroma's embedded store belongs to one process, so while ``rag serve`` runs on this data
    dir every command goes through its HTTP API (``rag.http.remote``) instead of opening the store.
    """
    from rag.http.remote import find_server
    from rag.settings import Settings

    settings = Settings.from_env(data_dir=ctx.obj["data_dir"])
    remote = find_server(settings)
    if remote is None:
        return open_rag(ctx, llm=llm, ray_address=ray)
    ctx.call_on_close(remote.close)
    if ray:
        raise click.ClickException(
            f"--ray cannot be used while the server at {remote.url} owns {settings.data_dir}: it writes the store "
            "itself; stop the server to ingest on the Ray cluster, or drop --ray")
    if llm is not None and llm.strip().lower() != str(remote.server_generator).lower():
        raise click.ClickException(
            f"--llm cannot be used while the server at {remote.url} owns {settings.data_dir}: it answers with its "
            f"own generator ({remote.server_generator}); drop --llm, or restart the server with RAG_LLM={llm}")
    click.echo(f"Using the server running at {remote.url} (it owns {settings.data_dir}).", err=True)
    return remote


def collection_option(*, many: bool):
    """``--collection NAME``: the one collection a write goes into, or (repeatable) the ones a read asks."""
    if many:
        return click.option("--collection", "collections", multiple=True, metavar="NAME",
                            help="Only this collection (repeatable; default: every collection).")
    return click.option("--collection", "collection", default=None, metavar="NAME",
                        help="The collection the sources go into (default: 'default').")


def emit_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--wikipedia", "titles", multiple=True, metavar="TITLE", help="A Wikipedia page title (repeatable).")
@click.option("--password", default=None, help="Password for encrypted PDFs.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--ray", "ray_address", metavar="ADDRESS", default=None,
              help="Embed on this Ray cluster (e.g. 127.0.0.1:6379 or auto; env RAG_RAY_ADDRESS; extra 'ray').")
@collection_option(many=False)
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], titles: tuple[str, ...], password: str | None,
           as_json: bool, no_progress: bool, ray_address: str | None, collection: str | None) -> None:
    """Ingest files (PDF, Word .docx, HTML, Markdown, text), folders of them, and Wikipedia pages.

    What a file is comes from its content, not its name. Ingesting the same thing twice changes
    nothing; a changed file replaces its old chunks. With --collection NAME the sources go into
    that collection (created by the first write); the same file in two collections is two
    independent copies. Exits 1 when any source was skipped (the summary says why).
    """
    from rag.collections import write_target

    if not paths and not titles:
        raise click.UsageError("Give file paths or --wikipedia TITLE; e.g. rag ingest paper.pdf --wikipedia 'Alan Turing'")
    collection = write_target(collection)  # a bad name fails before anything is read
    rag = open_service(ctx, ray=ray_address or None)
    if getattr(rag, "remote", False):
        report = _ingest_remote(rag, paths, titles, password, progress=not no_progress and not as_json,
                                collection=collection)
    else:
        report = _ingest_here(rag, paths, titles, password, progress=not no_progress and not as_json,
                              collection=collection)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(summary(report, collection))
    if report.skipped:
        ctx.exit(1)


def _ingest_here(rag: RAG, paths: tuple[Path, ...], titles: tuple[str, ...], password: str | None, *,
                 progress: bool, collection: str) -> IngestReport:
    """Ingest into the store this process opens; what each file is comes from its content."""
    jobs = [rag.file_job(path, password=password, collection=collection) for path in _expand(paths)]
    jobs += [rag.wikipedia_job(title, collection=collection) for title in titles]
    return rag.ingest(jobs, progress=progress)


def _ingest_remote(remote: RemoteRAG, paths: tuple[Path, ...], titles: tuple[str, ...], password: str | None, *,
                   progress: bool, collection: str) -> IngestReport:
    """Upload each file to the running server (which tells the formats apart), one report for all."""
    from tqdm import tqdm

    from rag.types import IngestReport

    report = IngestReport()
    files = _expand(paths)
    with tqdm(total=len(files) + bool(titles), unit="source", desc="Ingesting on the server", disable=not progress,
              dynamic_ncols=True) as bar:
        for path in files:
            report.merge(remote.ingest_file(path, password=password, collection=collection))
            bar.update()
        if titles:
            report.merge(remote.ingest_wikipedia(list(titles), collection=collection))
            bar.update()
    return report


def summary(report, collection: str | None = None) -> str:
    """A short human summary of an ingestion report (naming the collection when it is not the default)."""
    from rag.settings import DEFAULT_COLLECTION

    into = f" into the collection {collection}" if collection and collection != DEFAULT_COLLECTION else ""
    lines = [
        f"Ingested {len(report.added) + len(report.replaced) + len(report.unchanged)} source(s){into}: "
        f"{len(report.added)} added, {len(report.replaced)} replaced, {len(report.unchanged)} unchanged; "
        f"{report.chunks_written} chunk(s) written."
    ]
    if report.skipped:
        lines.append(f"Skipped {len(report.skipped)}:")
        lines += [f"  - {reason}" for reason in report.skipped.values()]
    return "\n".join(lines)


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given, and the files of each folder below it that have a format's extension."""
    from ingest.files import name_kind

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and name_kind(q.name) is not None)
        else:
            out.append(p)
    return out


@main.command()
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, MAX_TOP_K), default=None, help="How many hits (default RAG_TOP_K, 5).")
@click.option("--source", "sources", multiple=True, help="Only search this source (repeatable).")
@collection_option(many=True)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
@click.pass_context
def search(ctx: click.Context, query: str, k: int | None, sources: tuple[str, ...], collections: tuple[str, ...],
           as_json: bool) -> None:
    """Find the chunks most similar to QUERY (cosine similarity, best first)."""
    rag = open_service(ctx)
    indexed = rag.sources(collection=list(collections) or None)
    hits = rag.search(query, k, sources=list(sources) or None, collection=list(collections) or None)
    if as_json:
        emit_json({"query": query, "k": k or rag.settings.top_k, "hits": _linked(rag, hits)})
        return
    if not hits:
        click.echo("Nothing matched the query." if indexed else
                   "Nothing is indexed yet; add documents with: rag ingest FILE.pdf --wikipedia TITLE")
    for i, h in enumerate(hits, 1):
        where = f", page {h.page}" if h.page else (f" § {h.section}" if h.section else "")
        link = hit_link(rag, h)
        click.echo(f"{i}. [{h.score:.3f}] {h.title}{where}{_in_collection(h)}" + (f"  <{link}>" if link else ""))
        snippet = " ".join(h.text.split())
        click.echo(f"   {snippet[:240]}{'…' if len(snippet) > 240 else ''}")


def _in_collection(hit: Any) -> str:
    """`` (collection team-a)`` for a hit outside the default collection, else nothing."""
    from rag.settings import DEFAULT_COLLECTION

    return "" if hit.chunk.collection == DEFAULT_COLLECTION else f"  (collection {hit.chunk.collection})"


@main.command()
@collection_option(many=True)
@click.option("--json", "as_json", is_flag=True, help="Print sources as JSON.")
@click.pass_context
def sources(ctx: click.Context, collections: tuple[str, ...], as_json: bool) -> None:
    """List what is indexed, with the collection of each source."""
    infos = open_service(ctx).sources(collection=list(collections) or None)
    if as_json:
        emit_json([s.to_dict() for s in infos])
        return
    if not infos:
        click.echo("Nothing is indexed yet; add documents with: rag ingest FILE.pdf --wikipedia TITLE")
    for s in infos:
        click.echo(f"{s.source}  ({s.kind}, {s.chunks} chunks, collection {s.collection}, added {s.added_at})")


@main.command("collections")
@click.option("--json", "as_json", is_flag=True, help="Print the collections as JSON.")
@click.pass_context
def collections_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the collections, with how many sources and chunks each holds."""
    infos = open_service(ctx).collections()
    if as_json:
        emit_json([c.to_dict() for c in infos])
        return
    if not infos:
        click.echo("No collections yet; add documents with: rag ingest FILE.pdf --collection NAME")
    for c in infos:
        click.echo(f"{c.name}  ({c.sources} source(s), {c.chunks} chunks)")


@main.command()
@click.argument("source", required=False)
@collection_option(many=False)
@click.pass_context
def delete(ctx: click.Context, source: str | None, collection: str | None) -> None:
    """Delete SOURCE (a file name or Wikipedia title, as `rag sources` lists it), or a whole collection.

    `rag delete SOURCE --collection NAME` deletes SOURCE from that collection only (default:
    'default'); `rag delete --collection NAME` without SOURCE deletes the whole collection.
    """
    from rag.collections import write_target

    if source is None and collection is None:
        raise click.UsageError("Give a SOURCE or --collection NAME; e.g. rag delete paper.pdf, "
                               "or rag delete --collection team-a")
    where = write_target(collection)
    rag = open_service(ctx)
    if source is None:
        gone = rag.delete_collection(where)
        click.echo(f"Deleted the collection {gone.name}: {gone.sources} source(s), {gone.chunks} chunks.")
        return
    n = rag.delete(source, collection=where)
    inside = f" from the collection {where}" if collection else ""
    click.echo(f"Deleted {source}{inside} ({n} chunks).")


from rag.eval.cli import eval_group  # noqa: E402

main.add_command(eval_group, "eval")


# -- serve -----------------------------------------------------------------------------------------
from rag.http.app import ASK_CONCURRENCY  # noqa: E402  (cheap: FastAPI and Gradio load when serving)

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback exposes your documents to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--concurrency", type=click.IntRange(min=1), default=ASK_CONCURRENCY, show_default=True,
              help="Questions answered at the same time (the rest wait in a queue).")
@click.option("--headless", is_flag=True,
              help="Serve only the HTTP API (/api, /v1, /files), without the chat page (Gradio is not needed).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, concurrency: int, headless: bool) -> None:
    """Serve the chat page and its API (no share links; local only by default).

    Set RAG_AUTH=user:password to require a login on the page and RAG_API_KEY=<key> for the
    API. While it runs, `rag ingest`, `search`, `ask`, `sources` and `delete` on the same
    data directory go through this server (it records itself in DATA_DIR/server.json).
    """
    import os

    from rag.http.remote import connect_url, find_server, remove_server_file, write_server_file
    from rag.service import RAG

    rag = RAG(ctx.obj["data_dir"])
    settings = rag.settings
    if not headless:
        # Before Gradio is imported: everything it writes stays under this store, not in the
        # machine-wide temp dir every Gradio server on the machine serves from.
        os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.data_dir / ".gradio"))
    try:
        running = find_server(settings)
    except RagError as exc:  # a server owns the store but refused us or is stuck: still not ours to open
        raise click.ClickException(f"Another server already uses {settings.data_dir}: {exc}") from None
    if running is not None:
        running.close()
        raise click.ClickException(f"A server for {settings.data_dir} is already running at {running.url} "
                                   f"(pid {running.pid}); stop it first, or use another --data-dir")
    try:
        from rag.http.app import create_server, warm_up

        if not headless:
            import ui.app  # noqa: F401  (fail here, before loading models, when gradio is missing)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in {"gradio", "fastapi", "uvicorn", "starlette"}:
            raise
        from rag.errors import MissingDependencyError

        package = (exc.name or "").split(".")[0]
        if package == "gradio":
            raise MissingDependencyError(package, "ui", "The chat page of `rag serve` (`rag serve --headless` "
                                                        "serves the API without it)") from exc
        raise MissingDependencyError(package, "api", "rag serve") from exc
    if warning := exposure_warning(host, settings):
        click.echo(warning, err=True)
    click.echo("Loading the models…", err=True)
    warm_up(rag)
    try:
        server = create_server(rag, host, port, ask_concurrency=concurrency, headless=headless)
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
        from rag.http.auth import login_required

        login = " (login required)" if login_required(settings) else ""
        what = " (headless: the API only, no chat page)" if headless else ""
        click.echo(f"Serving on {server.url}{login}{what} (Ctrl-C to stop); data in {settings.data_dir}", err=True)

    try:
        server.serve_forever(on_started=announce)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after shutting down cleanly
        pass
    finally:
        remove_server_file(settings.data_dir)
    click.echo("Stopped.", err=True)


def exposure_warning(host: str, settings: Any) -> str | None:
    """The warning for a server others can reach without a login, or None (loopback, or a login set).

    Args:
        host: the address the server binds.
        settings: its settings (``auth``, ``api_key``).

    Returns:
        One warning line for stderr, or None.
    """
    from rag.http.app import is_loopback
    from rag.http.auth import login_required

    if is_loopback(host) or login_required(settings):
        return None
    return (f"Warning: listening on {host}, not loopback, with no login: anyone who can reach this machine can "
            "read and change your documents. Set RAG_AUTH=user:password (the chat page) and RAG_API_KEY=<key> "
            "(programs), or use --host 127.0.0.1.")


# -- answers ---------------------------------------------------------------------------------------
def hit_link(rag: Any, hit: Any) -> str | None:
    """Where a hit opens: the server's viewer when a server owns the store, else the stored copy's
    ``file://`` URL (a PDF at its page), a Wikipedia section, or the source's URL."""
    from rag.links import citation_link, local_link

    files_dir = rag.settings.files_dir
    if getattr(rag, "remote", False):
        link = citation_link(hit, files_dir)
        return rag.url.rstrip("/") + link if link and link.startswith("/") else link
    return local_link(hit, files_dir)


def _linked(rag: Any, hits: list) -> list[dict[str, Any]]:
    """``Hit.to_dict()`` of each hit with its ``url`` filled by :func:`hit_link` where it had none."""
    out = []
    for hit in hits:
        data = hit.to_dict()
        data["url"] = data["url"] or hit_link(rag, hit)
        out.append(data)
    return out


def _print_sources(rag: Any, answer, *, refused: bool) -> None:
    from rag.cite import source_label

    hits = answer.sources if refused else [c.hit for c in answer.citations]
    if not hits:
        return
    click.echo("\nClosest sources (they do not answer it):" if refused else "\nSources:")
    flags = {c.number: c for c in answer.citations}
    for i, hit in enumerate(hits, 1):
        link = hit_link(rag, hit) or (str(hit.source) if hit.kind == "pdf" else None)
        line = f"  [{i}] {source_label(hit)}{_in_collection(hit)}" + (f"  <{link}>" if link else "")
        c = flags.get(i)
        if not refused and c is not None and c.supported is False:
            line += f"  (may not support the sentence citing it: similarity {c.support:.2f})"
        click.echo(line)
        snippet = " ".join(hit.text.split())
        click.echo(f"      {snippet[:140]}{'…' if len(snippet) > 140 else ''}")


def _answer_once(rag, question: str, history, k: int | None, *, as_json: bool, collections: tuple[str, ...] = ()):
    """Ask, print (streaming the text of a language model), and return the Answer."""
    from rag.types import Answer

    answer = None
    pieces: list[str] = []
    # An extract comes whole; a language model's text is shown as it is written (locally, or
    # streamed from a running server's /api/ask).
    generator = rag.server_generator if getattr(rag, "remote", False) else rag.settings.llm
    streaming = not as_json and str(generator).strip().lower() != "extractive"
    for item in rag.ask_stream(question, history, k=k, collection=list(collections) or None):
        if isinstance(item, Answer):
            answer = item
        else:
            pieces.append(item)
            if streaming:
                click.echo(item, nl=False)
    assert answer is not None
    if as_json:
        data = answer.to_dict()
        data["citations"] = [{**c, "url": linked["url"]} for c, linked in
                             zip(data["citations"], _linked(rag, [c.hit for c in answer.citations]))]
        data["sources"] = _linked(rag, answer.sources)
        emit_json(data)
        return answer
    if streaming:
        click.echo()
        # Shown again only when citing changed it (markers renumbered or dropped, a fence code
        # the model echoed removed); a difference in spacing alone is not worth a second copy.
        if "".join(pieces).split() != answer.text.split():
            click.echo(f"\nWith citations renumbered:\n{answer.text}")
    else:
        click.echo(answer.text)
    if answer.query.strip() != question.strip():
        click.echo(f"\nRetrieval query: {answer.query}")
    _print_sources(rag, answer, refused=answer.refused)
    return answer


@main.command()
@click.argument("question")
@click.option("-k", "k", type=click.IntRange(1, MAX_TOP_K), default=None, help="How many chunks to retrieve (default RAG_TOP_K, 5).")
@click.option("--llm", default=None, metavar="SPEC",
              help="extractive | gptq:<model> | openai:<base_url>#<model> | llamacpp:<file.gguf> (default RAG_LLM).")
@collection_option(many=True)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_context
def ask(ctx: click.Context, question: str, k: int | None, llm: str | None, collections: tuple[str, ...],
        as_json: bool) -> None:
    """Answer QUESTION from the indexed documents, with numbered citations.

    Without a language model (the default, RAG_LLM=extractive) the answer is the best
    sentences of your documents, quoted and labelled "From the documents:". When the
    documents do not answer the question, it says so instead of guessing.
    """
    rag = open_service(ctx, llm=llm)
    notice = rag.generator_notice
    if notice and not as_json and rag.settings.llm.strip().lower() != "extractive":
        click.echo(notice, err=True)
    _answer_once(rag, question, None, k, as_json=as_json, collections=collections)


@main.command()
@click.option("-k", "k", type=click.IntRange(1, MAX_TOP_K), default=None, help="How many chunks to retrieve per turn.")
@click.option("--llm", default=None, metavar="SPEC", help="The generator, as for `rag ask` (default RAG_LLM).")
@collection_option(many=True)
@click.pass_context
def chat(ctx: click.Context, k: int | None, llm: str | None, collections: tuple[str, ...]) -> None:
    """Ask questions one per line; follow-ups may refer to earlier turns ("Who founded it?").

    Reads questions from stdin until end of input or a line "exit".
    """
    from rag.retrieve import EmptyQueryError

    rag = open_service(ctx, llm=llm)
    stdin = sys.stdin
    interactive = stdin.isatty()
    notice = rag.generator_notice
    if notice:
        click.echo(notice, err=True)
    if interactive:
        click.echo("Ask a question (\"exit\" or Ctrl-D to quit).", err=True)
    history: list[tuple[str, str]] = []
    while True:
        if interactive:
            click.echo("> ", nl=False, err=True)
        line = stdin.readline()
        if not line:
            break
        question = line.strip()
        if question.lower() in {"exit", "quit"}:
            break
        if not question:
            continue
        try:
            answer = _answer_once(rag, question, history, k, as_json=False, collections=collections)
        except EmptyQueryError:
            continue
        history.append((question, answer.text))
        click.echo()


if __name__ == "__main__":
    main()
