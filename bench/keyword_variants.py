"""BM25 index variants on tantivy for bench.keyword_quality (experiments, not the product's index)."""

from __future__ import annotations

from pathlib import Path

from rag.keyword import _surface, _tantivy, idf_ratio, index_text, keyword_text, query_terms, stem_words


class VariantIndex:
    """A throw-away tantivy index with the product's word splitting and one scoring change at a time.

    Args:
        stemmer: ``porter`` (the product's: Porter's original, pre-stemmed in Python, as FTS5 had)
            or ``snowball`` (tantivy's English Snowball filter, the product before).
        idf: ``lucene`` (tantivy's own, the product before) or ``fts5`` (the product's): each term
            boosted by classic BM25's IDF over Lucene's (``rag.keyword.idf_ratio``).
        surface: weight of a second, unstemmed field matched on the query's surface words (0: none).
        title: weight of a separate title field (0: the title stays in the body, as the product has it).
    """

    def __init__(self, path: Path, *, stemmer: str = "snowball", idf: str = "lucene", surface: float = 0.0,
                 title: float = 0.0) -> None:
        t = self.t = _tantivy()
        self.stemmer, self.idf, self.surface, self.title = stemmer, idf, surface, title
        sb = t.SchemaBuilder()
        sb.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
        sb.add_text_field("body", stored=False, tokenizer_name="stems", index_option="freq")
        sb.add_text_field("exact", stored=False, tokenizer_name="surface", index_option="freq")
        sb.add_text_field("title", stored=False, tokenizer_name="stems", index_option="freq")
        self.schema = sb.build()
        path.mkdir(parents=True, exist_ok=True)
        self.index = t.Index(self.schema, path=str(path))
        if stemmer == "snowball":
            b = t.TextAnalyzerBuilder(t.Tokenizer.simple()).filter(t.Filter.remove_long(40))
            self.snowball = b.filter(t.Filter.lowercase()).filter(t.Filter.ascii_fold()) \
                .filter(t.Filter.stemmer("english")).build()
            self.index.register_tokenizer("stems", self.snowball)
        else:
            self.index.register_tokenizer("stems", t.TextAnalyzerBuilder(t.Tokenizer.whitespace()).build())
        self.index.register_tokenizer("surface", _surface())

    def _stored(self, text: str) -> str:
        return text if self.stemmer == "snowball" else index_text(text)

    def _stems(self, query: str) -> list[str]:
        words = query_terms(query)
        if self.stemmer == "snowball":
            return list(dict.fromkeys(t for w in words for t in self.snowball.analyze(w)))
        return list(dict.fromkeys(stem_words(words)))

    def add(self, chunks) -> None:
        w = self.index.writer(heap_size=64 * 2**20, num_threads=1)
        for c in chunks:
            body = c.text if self.title else keyword_text(c)
            w.add_document(self.t.Document(id=c.id, body=self._stored(body), exact=body if self.surface else "",
                                           title=self._stored(c.title) if self.title else ""))
        w.commit()
        w.wait_merging_threads()
        self.index.reload()

    def _term(self, searcher, field: str, term: str, weight: float):
        Q = self.t.Query
        q = Q.term_query(self.schema, field, term, index_option="freq")
        if self.idf == "fts5":
            weight *= idf_ratio(searcher.num_docs, searcher.doc_freq(field, term))
        return q if weight == 1.0 else Q.boost_query(q, weight)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        searcher = self.index.searcher()
        Should = self.t.Occur.Should
        stems = self._stems(query)
        clauses = [(Should, self._term(searcher, "body", t, 1.0)) for t in stems]
        if self.surface:
            clauses += [(Should, self._term(searcher, "exact", t, self.surface)) for t in query_terms(query)]
        if self.title:
            clauses += [(Should, self._term(searcher, "title", t, self.title)) for t in stems]
        if not clauses:
            return []
        hits = searcher.search(self.t.Query.boolean_query(clauses), limit=k, count=False).hits
        return [(searcher.doc(a)["id"][0], float(s)) for s, a in hits]

    def close(self) -> None:
        pass


def _v(**kw):
    return lambda d: VariantIndex(d / "kw", **kw)


VARIANTS = {
    # The product's index before (Snowball, Lucene IDF): the "before" of the README table.
    "snowball": _v(),
    "snowball+idf-fts5": _v(idf="fts5"),
    "porter": _v(stemmer="porter"),
    "porter+idf-fts5": _v(stemmer="porter", idf="fts5"),  # what the product's index does now
    "porter+surface-0.25": _v(stemmer="porter", surface=0.25),
}
for w in (0.15, 0.25, 0.35, 0.5, 1.0):
    VARIANTS[f"surface-{w:g}"] = _v(surface=w)
for w in (0.15, 0.25):
    VARIANTS[f"idf-fts5+surface-{w:g}"] = _v(idf="fts5", surface=w)
for w in (0.25, 0.5):
    VARIANTS[f"title-{w:g}"] = _v(title=w)
