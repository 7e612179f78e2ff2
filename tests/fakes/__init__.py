"""Test doubles that follow rag.protocols exactly, for what must be fast or cannot exist here.

* :class:`HashEmbedder` (embedder.py): hashed bag-of-words unit vectors instead of MiniLM.
* :class:`MemoryStore` (store.py): chunks, exact cosine and BM25 in memory instead of Chroma + FTS5.
* :class:`ReadingGenerator` (generator.py): answers from its prompt's sources instead of a language model.
* mediawiki.py: a local MediaWiki API server for the Wikipedia loader.

tests/rag/test_store.py runs one contract suite on MemoryStore and on Chroma (embedded and
server), so the fake cannot drift from the real thing unnoticed.
"""

from tests.fakes.embedder import HashEmbedder
from tests.fakes.generator import ReadingGenerator
from tests.fakes.store import MemoryStore

__all__ = ["HashEmbedder", "MemoryStore", "ReadingGenerator"]
