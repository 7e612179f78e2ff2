"""Compatibility: the names that moved to ``ingest.files``, and the ``/files`` route until it moves to ``rag.http``."""

from __future__ import annotations

from pathlib import Path

from ingest.files import (FILES_ROUTE, NotAPDFError, StagedFile, file_url, is_pdf,  # noqa: F401
                          remove_file, safe_name, stage_upload, stored_file)


def add_files_route(app, files_dir: str | Path) -> None:
    """Serve ``GET /files/{name}`` from ``files_dir`` only, as inline PDFs (404 for anything else).

    Args:
        app: a FastAPI app (add this before mounting Gradio at ``/``).
        files_dir: the folder to serve.
    """
    from fastapi import HTTPException
    from fastapi.responses import FileResponse

    @app.get(FILES_ROUTE + "/{name}", include_in_schema=False)
    def serve_file(name: str) -> FileResponse:
        path = stored_file(files_dir, name)
        if path is None or not is_pdf(path):
            raise HTTPException(status_code=404, detail="No such file")
        return FileResponse(
            path,
            media_type="application/pdf",
            content_disposition_type="inline",
            filename=path.name,
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )
