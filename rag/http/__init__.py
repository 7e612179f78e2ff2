"""The HTTP edge of ``rag serve``, in one place.

- ``api``: the REST and OpenAI-compatible routes and ``GET /files/{name}`` (FastAPI, no Gradio).
- ``app``: the FastAPI app factory (the Gradio page mounted only when asked), warm-up, the
  uvicorn server.
- ``guard``: the door: Host and Origin checks, writes only in content types a foreign page
  cannot send, body size limits, SameSite=Strict cookies.
- ``auth``: the optional login (``RAG_AUTH``, ``RAG_API_KEY``) on every route but the public ones.
- ``remote``: the CLI's client of a running server.

Importing this package is cheap; FastAPI is imported by ``api`` and ``app`` when used, Gradio
only by ``app`` when the page is served.
"""
