"""rag: question answering over your own documents (Wikipedia pages and PDFs).

The public API::

    from rag import RAG
    rag = RAG(data_dir="data")
    rag.add_wikipedia("Alan Turing")
    hits = rag.search("Where did Turing work during the war?", k=5)
"""

from rag.errors import RagError, SourceError
from rag.service import RAG
from rag.settings import Settings
from rag.types import Answer, Chunk, Citation, Document, Hit, IngestReport, SourceInfo

__all__ = [
    "RAG", "Settings", "Hit", "Answer", "Citation", "Chunk", "Document", "IngestReport", "SourceInfo",
    "RagError", "SourceError",
]
