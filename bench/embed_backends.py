"""MiniLM on ONNX Runtime (fp32 and int8 dynamic quantization) vs the product's torch embedder.

Run (from the repo root):

    .venv-bench/bin/python -m bench.embed_backends           # full: 512 chunks, 300 queries
    .venv-bench/bin/python -m bench.embed_backends --quick   # smoke run

Exporting needs the ``onnx`` package, which .venv does not have; .venv-bench does (see the
top of bench/ingest.py). Started from a python without onnx, the script re-runs itself
with .venv-bench's python when that exists. The model is exported with plain
torch.onnx.export (TorchScript exporter, opset 17) -- not sentence-transformers[onnx],
which would downgrade transformers -- and quantized with
onnxruntime.quantization.quantize_dynamic (int8 weights, per tensor and per channel). Cached in
bench/results/onnx/.

Measured, interleaved so that every backend sees the same load:
* chunks/s on 256-word-piece chunks (windows of SQuAD half-a text; batches of 32, longest
  first, like sentence-transformers), torch = the product's MiniLMEmbedder.embed;
* single-query latency on SQuAD questions (one at a time; torch = MiniLMEmbedder.embed([q]))
  at 1 thread and at the default thread count;
* agreement with the torch vectors: per-text cosine (mean, min) and, as a retrieval proxy,
  the overlap of each question's top-5 windows ranked by torch vs by the backend.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    BENCH_VENV_PYTHON,
    MAX_PIECES,
    RESULTS_DIR,
    load_squad,
    note,
    now,
    print_table,
    sample_questions,
    setup_offline,
    summarize_ms,
    write_json,
)

ONNX_DIR = RESULTS_DIR / "onnx"


def _ensure_onnx_interpreter() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        # Compare prefixes: both venvs' python resolve to the same pyenv binary.
        if BENCH_VENV_PYTHON.is_file() and Path(sys.prefix).resolve() != BENCH_VENV_PYTHON.parent.parent.resolve():
            note(f"onnx is not installed here; re-running with {BENCH_VENV_PYTHON}")
            env = dict(os.environ)
            root = str(Path(__file__).resolve().parent.parent)
            env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            os.execve(str(BENCH_VENV_PYTHON), [str(BENCH_VENV_PYTHON), "-m", "bench.embed_backends", *sys.argv[1:]], env)
        raise SystemExit("the onnx package is needed to export MiniLM; install it in .venv-bench "
                         "(see the top of bench/ingest.py)")


def export(model_dir: Path) -> tuple[Path, Path, Path, dict[str, Any]]:
    """fp32 export with torch.onnx.export and int8 dynamic quantizations of it (cached).

    Two int8 files: quantize_dynamic's default (one scale per weight tensor) and per_channel=True
    (one scale per output column), which keeps MiniLM's vectors far closer to fp32.
    """
    import torch
    from transformers import AutoModel

    ONNX_DIR.mkdir(parents=True, exist_ok=True)
    fp32, int8 = ONNX_DIR / "minilm-fp32.onnx", ONNX_DIR / "minilm-int8.onnx"
    int8_pc = ONNX_DIR / "minilm-int8-per-channel.onnx"
    info: dict[str, Any] = {}
    stamp = ONNX_DIR / "source.txt"
    if not (fp32.is_file() and int8.is_file() and int8_pc.is_file() and stamp.is_file()
            and stamp.read_text() == str(model_dir)):
        model = AutoModel.from_pretrained(str(model_dir)).eval()

        class LastHidden(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.m(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

        # eval() on the wrapper too: export restores the wrapper's mode, and a fresh Module is in
        # training mode, which would switch dropout on in the torch model afterwards.
        wrapper = LastHidden(model).eval()
        ids = torch.randint(1000, 2000, (2, 16))
        mask = torch.ones_like(ids)
        axes = {0: "batch", 1: "seq"}
        t = now()
        torch.onnx.export(
            wrapper, (ids, mask, torch.zeros_like(ids)), str(fp32),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )
        info["export_s"] = now() - t
        from onnxruntime.quantization import QuantType, quantize_dynamic

        t = now()
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        quantize_dynamic(str(fp32), str(int8_pc), weight_type=QuantType.QInt8, per_channel=True)
        info["quantize_s"] = now() - t
        stamp.write_text(str(model_dir))
    info["fp32_mb"] = fp32.stat().st_size / 2**20
    info["int8_mb"] = int8.stat().st_size / 2**20
    info["int8_pc_mb"] = int8_pc.stat().st_size / 2**20
    return fp32, int8, int8_pc, info


class OnnxEmbedder:
    """Tokenize (MiniLM's tokenizer, cut at 256 with specials), run ORT, mean-pool, normalise."""

    def __init__(self, path: Path, model_dir: Path, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT workers would otherwise spin and steal the cores from the next backend measured.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=MAX_PIECES)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                         "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        vec = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return vec / np.linalg.norm(vec, axis=1, keepdims=True)

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        encs = self.tok.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encs[i].ids))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for lo in range(0, len(order), batch_size):
            part = order[lo : lo + batch_size]
            width = max(len(encs[i].ids) for i in part)
            ids = np.zeros((len(part), width), dtype=np.int64)
            mask = np.zeros((len(part), width), dtype=np.int64)
            for r, i in enumerate(part):
                n = len(encs[i].ids)
                ids[r, :n] = encs[i].ids
                mask[r, :n] = 1
            out[part] = self._run(ids, mask)
        return out

    def embed_one(self, text: str) -> np.ndarray:
        ids = np.asarray([self.tok.encode(text).ids], dtype=np.int64)
        return self._run(ids, np.ones_like(ids))[0]


def windows(n: int, model_dir: Path) -> list[str]:
    """n texts of exactly 254 word pieces (256 with [CLS]/[SEP]) cut from SQuAD half-a paragraphs."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    out: list[str] = []
    for art in load_squad():
        text = " ".join(art.paragraphs)
        offs = tok.encode(text, add_special_tokens=False).offsets
        for lo in range(0, len(offs) - 254, 254):
            out.append(text[offs[lo][0] : offs[lo + 253][1]])
            if len(out) >= n:
                return out
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 64 chunks, 40 queries")
    p.add_argument("--chunks", type=int, default=512)
    p.add_argument("--queries", type=int, default=300)
    args = p.parse_args(argv)
    if args.quick:
        args.chunks, args.queries = 64, 40
    _ensure_onnx_interpreter()
    setup_offline()
    import onnxruntime as ort
    import torch

    from rag.embed import MiniLMEmbedder, bundled_model_dir

    model_dir = bundled_model_dir()
    note("exporting / loading ONNX models")
    fp32_path, int8_path, int8_pc_path, info = export(model_dir)
    torch_emb = MiniLMEmbedder()
    n_threads = torch.get_num_threads()
    backends = {
        "onnx fp32": {t: OnnxEmbedder(fp32_path, model_dir, t) for t in sorted({1, n_threads})},
        "onnx int8": {t: OnnxEmbedder(int8_path, model_dir, t) for t in sorted({1, n_threads})},
        "onnx int8 per-ch": {t: OnnxEmbedder(int8_pc_path, model_dir, t) for t in sorted({1, n_threads})},
    }
    names = ["torch fp32", *backends]

    # -- 256-word-piece chunks, batches of 32, interleaved by batch ------------------------------
    texts = windows(args.chunks, model_dir)
    note(f"{len(texts)} chunks of 256 word pieces; batches of 32 at {n_threads} threads")
    torch_emb.embed(texts[:32])
    for b in backends.values():
        b[n_threads].embed(texts[:32])
    secs = {n: 0.0 for n in names}
    vecs = {n: np.zeros((len(texts), 384), dtype=np.float32) for n in names}
    for lo in range(0, len(texts), 32):
        part = texts[lo : lo + 32]
        for n in names:
            t = now()
            v = torch_emb.embed(part) if n == "torch fp32" else backends[n][n_threads].embed(part)
            secs[n] += now() - t
            vecs[n][lo : lo + len(part)] = v

    # -- single queries, interleaved per query and per thread count -------------------------------
    questions = [q.text for q in sample_questions(load_squad(), args.queries + 10)]
    note(f"{args.queries} single queries at 1 and {n_threads} threads")
    lat = {(n, t): [] for n in names for t in sorted({1, n_threads})}
    qvecs = {n: [] for n in names}
    block = 10  # queries per backend in a row, then the next backend: same load, little cross-talk
    try:
        for lo in range(0, len(questions), block):
            for t in sorted({1, n_threads}):
                torch.set_num_threads(t)
                for n in names:
                    for i in range(lo, min(lo + block, len(questions))):
                        q = questions[i]
                        s = now()
                        v = torch_emb.embed([q])[0] if n == "torch fp32" else backends[n][t].embed_one(q)
                        dt = now() - s
                        if lo >= block:  # the first block of each is the warm-up
                            lat[(n, t)].append(dt)
                            if t == n_threads:
                                qvecs[n].append(v)
    finally:
        torch.set_num_threads(n_threads)

    # -- agreement with torch ------------------------------------------------------------------
    ref_c, ref_q = vecs["torch fp32"], np.asarray(qvecs["torch fp32"])
    ref_top = np.argsort(-(ref_q @ ref_c.T), axis=1)[:, :5]
    summary: dict[str, Any] = {}
    for n in names:
        c_cos = np.sum(vecs[n] * ref_c, axis=1)
        q_arr = np.asarray(qvecs[n])
        q_cos = np.sum(q_arr * ref_q, axis=1)
        top = np.argsort(-(q_arr @ vecs[n].T), axis=1)[:, :5]
        overlap = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top, ref_top)]))
        summary[n] = {
            "chunks_per_s": len(texts) / secs[n],
            "chunk_seconds": secs[n],
            "query_1thr": summarize_ms(lat[(n, 1)]),
            f"query_{n_threads}thr": summarize_ms(lat[(n, n_threads)]),
            "cos_chunks_mean": float(c_cos.mean()), "cos_chunks_min": float(c_cos.min()),
            "cos_queries_mean": float(q_cos.mean()), "cos_queries_min": float(q_cos.min()),
            "top5_overlap": overlap,
        }
    size = {"torch fp32": sum(p.numel() * p.element_size() for p in torch_emb._model.parameters()) / 2**20
            if hasattr(torch_emb, "_model") else None,
            "onnx fp32": info["fp32_mb"], "onnx int8": info["int8_mb"], "onnx int8 per-ch": info["int8_pc_mb"]}

    path = write_json("embed_backends", {
        "args": vars(args), "chunks": len(texts), "queries": args.queries, "torch_threads": n_threads,
        "onnxruntime": ort.__version__, "export": info, "summary": summary, "model_mb": size,
    })
    print()
    print(f"{len(texts)} chunks of 256 word pieces (SQuAD half-a text), batch 32 at {n_threads} threads; "
          f"{args.queries} SQuAD questions one at a time. onnxruntime {ort.__version__}, "
          f"opset 17, int8 = quantize_dynamic(QInt8 weights; per-tensor default / per_channel=True). Cosine and top-5 overlap are vs torch fp32.")
    print(f"JSON: {path}")
    rows = []
    base = summary["torch fp32"]["chunks_per_s"]
    for n in names:
        s = summary[n]
        rows.append([n, s["chunks_per_s"], s["chunks_per_s"] / base, s["query_1thr"]["p50_ms"],
                     s[f"query_{n_threads}thr"]["p50_ms"], s[f"query_{n_threads}thr"]["p95_ms"],
                     f"{s['cos_chunks_mean']:.4f}", f"{s['cos_chunks_min']:.4f}", f"{s['cos_queries_mean']:.4f}",
                     f"{s['top5_overlap']:.3f}", size[n]])
    print_table(["backend", "chunks/s", "x torch", "q p50 1thr", f"q p50 {n_threads}thr", f"q p95 {n_threads}thr",
                 "cos chunks", "cos min", "cos queries", "top5 overlap", "MB"], rows,
                title="\nEmbedding backends (ms per query; chunks/s on 256-word-piece chunks)")


if __name__ == "__main__":
    main()
