"""The browser chat: the Gradio page over the ``RAG`` facade (``ui.app``) and its markdown (``ui.render``).

Gradio is an optional dependency (``pip install -e '.[ui]'``); importing this package is
cheap, ``ui.app`` imports Gradio. The server that mounts the page is ``rag.http.app``.
"""
