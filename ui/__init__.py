"""The browser chat: a Gradio page and HTTP API over the ``RAG`` facade (``rag serve``).

Gradio is an optional dependency (``pip install -e '.[ui]'``); importing this package is
cheap, ``ui.app`` imports Gradio.
"""
