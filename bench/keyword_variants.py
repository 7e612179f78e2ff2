"""BM25 index variants on tantivy for bench.keyword_quality (experiments, not the product's index)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rag.keyword import _analyzer, _tantivy, idf_ratio, keyword_text, query_terms, search_terms


class VariantIndex:
    """A throw-away tantivy index with the product's analyzer and one scoring change at a time.

    Args:
        surface: weight of a second, unstemmed field matched on the query's surface words (0: none).
        idf: ``lucene`` (tantivy's own) or ``fts5``: each term boosted by FTS5's IDF over Lucene's
            (``rag.keyword.idf_ratio``; the product's index does this too now, so ``lucene`` is
            the product before it).
        title: weight of a separate title field (0: the title stays in the body, as the product has it).
        stemmed: weight of the stemmed body.
    """

    def __init__(self, path: Path, *, surface: float = 0.0, idf: str = "lucene", title: float = 0.0,
                 stemmed: float = 1.0, porter: bool = False) -> None:
        t = self.t = _tantivy()
        self.porter = None
        if porter:
            import Stemmer

            self.porter = Stemmer.Stemmer("porter")
        self.surface, self.idf, self.title, self.stemmed = surface, idf, title, stemmed
        sb = t.SchemaBuilder()
        sb.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
        sb.add_text_field("body", stored=False, tokenizer_name="rag_en", index_option="freq")
        sb.add_text_field("exact", stored=False, tokenizer_name="rag_surface", index_option="freq")
        sb.add_text_field("title", stored=False, tokenizer_name="rag_en", index_option="freq")
        self.schema = sb.build()
        path.mkdir(parents=True, exist_ok=True)
        self.index = t.Index(self.schema, path=str(path))
        self.index.register_tokenizer("rag_en", _analyzer(True) if self.porter is None else
                                      t.TextAnalyzerBuilder(t.Tokenizer.whitespace()).build())
        self.index.register_tokenizer("rag_surface", _analyzer(False))

    def add(self, chunks) -> None:
        w = self.index.writer(heap_size=64 * 2**20, num_threads=1)
        for c in chunks:
            body = c.text if self.title else keyword_text(c)
            doc = self.t.Document(id=c.id, body=self._stem_text(body), exact=body if self.surface else "",
                                  title=self._stem_text(c.title) if self.title else "")
            w.add_document(doc)
        w.commit()
        w.wait_merging_threads()
        self.index.reload()

    def _stem_text(self, text: str) -> str:
        if self.porter is None:
            return text
        return " ".join(self.porter.stemWords(_analyzer(False).analyze(text)))

    def _stems(self, query: str) -> list[str]:
        if self.porter is None:
            return search_terms(query)
        return list(dict.fromkeys(self.porter.stemWords(query_terms(query))))

    def _term(self, searcher, field: str, term: str, weight: float):
        Q = self.t.Query
        q = Q.term_query(self.schema, field, term, index_option="freq")
        if self.idf == "fts5":
            weight *= idf_ratio(searcher.num_docs, searcher.doc_freq(field, term))
        return q if weight == 1.0 else Q.boost_query(q, weight)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        searcher = self.index.searcher()
        Should = self.t.Occur.Should
        clauses = [(Should, self._term(searcher, "body", t, self.stemmed)) for t in self._stems(query)]
        if self.surface:
            clauses += [(Should, self._term(searcher, "exact", t, self.surface)) for t in query_terms(query)]
        if self.title:
            clauses += [(Should, self._term(searcher, "title", t, self.title)) for t in self._stems(query)]
        if not clauses:
            return []
        hits = searcher.search(self.t.Query.boolean_query(clauses), limit=k, count=False).hits
        return [(searcher.doc(a)["id"][0], float(s)) for s, a in hits]

    def close(self) -> None:
        pass


def _v(**kw):
    return lambda d: VariantIndex(d / "kw", **kw)


VARIANTS = {
    "idf-fts5": _v(idf="fts5"),
    "surface-0.5": _v(surface=0.5),
    "surface-1": _v(surface=1.0),
    "surface-0.25": _v(surface=0.25),
    "idf-fts5+surface-0.5": _v(idf="fts5", surface=0.5),
    "title-0.5": _v(title=0.5),
}
VARIANTS.update({
    "idf-fts5+surface-0.25": _v(idf="fts5", surface=0.25),
    "surface-0.35": _v(surface=0.35),
    "surface-0.15": _v(surface=0.15),
    "title-0.25": _v(title=0.25),
})
VARIANTS.update({
    "porter": _v(porter=True),
    "porter+idf-fts5": _v(porter=True, idf="fts5"),
    "porter+surface-0.25": _v(porter=True, surface=0.25),
})
VARIANTS.update({
    "idf-fts5+surface-0.15": _v(idf="fts5", surface=0.15),
})
