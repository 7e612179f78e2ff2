"""Sources to documents to chunks: PDF and Wikipedia readers, the chunker, the indexer, its journal, stored files."""
