"""MiniLM's query path on ONNX Runtime: the same fp32 vectors as torch, in less than half the time.

A question is one short text. For it, torch spends most of its time dispatching small
operators one by one (MKL GEMMs with a dozen rows); ONNX Runtime runs the same graph with
fused attention and layer norms. On the 2-core development machine one SQuAD question
takes 5.4 ms instead of 13.0 ms, and the vectors agree to cosine 1.0000
(``python -m bench.embed_backends``). Batches of 256-word-piece chunks run at the same speed
in both, so ingestion stays on torch.

The graph is exported once from the loaded torch model (``torch.onnx.export``), with mean
pooling and normalisation inside it, and cached under ``Settings.cache_dir`` keyed by the
model files and the torch version. Before use its vectors are checked against
sentence-transformers' own on probe texts; any failure (export, load, mismatch) is logged
and the caller keeps using torch, so this is a speed-up that can never change an answer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

# Bump when the exported graph changes, so stale cached files are not reused.
_GRAPH_VERSION = "4"
# Texts whose ONNX vectors must match sentence-transformers' before the session is trusted.
_PROBES = (
    "Which NFL team represented the AFC at Super Bowl 50?",
    "a",
    "Ünïcödé, numbers 1,234.5 and punctuation -- all in one (short) line!",
)
MIN_PROBE_COSINE = 0.9999
# int8 weights move a vector a little by design (retrieval quality measured by
# ``python -m bench.int8_quality``); a broken quantization lands far below this.
MIN_INT8_PROBE_COSINE = 0.97


def _cpu_session(path: Path, threads: int, *, spin: bool) -> Any:
    """An ONNX Runtime CPU session of ``path``: ``threads`` intra-op threads (0: one per core),
    every graph optimization, and idle workers spinning between runs only when ``spin``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, threads)
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxQueryEncoder:
    """One text at a time through an exported MiniLM graph; returns unit vectors."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        """Open an exported graph.

        Args:
            path: the ``.onnx`` file written by :func:`export`.
            threads: intra-op threads; 0 lets ONNX Runtime use one per core.
        """
        self.path = path
        # Idle workers would otherwise spin for a while after each query and take the cores
        # from the Chroma search and the BM25 thread that run right after (or beside) it.
        self._session = _cpu_session(path, threads, spin=False)

    def encode_ids(self, ids: Sequence[int]) -> np.ndarray:
        """Embed one tokenized text (with [CLS] and [SEP]).

        Args:
            ids: word-piece ids, at most the model's limit.

        Returns:
            A float32 array of shape (1, dimension), L2-normalised.
        """
        batch = np.asarray([ids], dtype=np.int64)
        return self._session.run(None, {"input_ids": batch})[0]


def cached_graph_path(model_dir: Path, cache_dir: Path, name: str = "") -> Path:
    """Where the exported graph of ``model_dir`` lives in ``cache_dir``.

    Args:
        model_dir: the sentence-transformers directory the torch model came from.
        cache_dir: the project's cache directory.
        name: the model's name, for people reading the cache (the hash is the identity).

    Returns:
        The path (which may not exist yet).
    """
    import torch

    weights = sorted(p for p in model_dir.iterdir() if p.suffix in {".safetensors", ".bin", ".json"})
    key = hashlib.sha256()
    for part in [_GRAPH_VERSION, torch.__version__, str(model_dir.resolve())]:
        key.update(part.encode() + b"\0")
    for p in weights:
        stat = p.stat()
        key.update(f"{p.name}:{stat.st_size}:{stat.st_mtime_ns}".encode() + b"\0")
    return cache_dir / "onnx" / f"{name or model_dir.name}-{key.hexdigest()[:16]}.onnx"


def quantize_int8(fp32: Path, path: Path) -> Path:
    """Write an int8 copy of the exported graph: dynamic quantization, one scale per output channel.

    Weights are unsigned (u8 activations x u8 weights): ONNX Runtime's u8 x s8 kernels add pairs of
    products in 16 bits and saturate on CPUs without VNNI (AVX2 alone), which moved MiniLM's vectors
    visibly there; the u8 x u8 kernels widen first and give the same vectors on every CPU.

    Args:
        fp32: the graph written by :func:`export`.
        path: where to write; written to a temporary name first.

    Returns:
        ``path``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part.onnx", dir=path.parent)
    os.close(fd)
    try:
        # quantize_dynamic logs a "consider pre-processing" advice on the root logger each time.
        root = logging.getLogger()
        was = root.disabled
        root.disabled = True
        try:
            quantize_dynamic(str(fp32), tmp, weight_type=QuantType.QUInt8, per_channel=True)
        finally:
            root.disabled = was
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def export(transformer: Any, path: Path) -> Path:
    """Export a Hugging Face encoder with mean pooling and normalisation to ``path``.

    Args:
        transformer: the ``transformers`` model under sentence-transformers' first module.
        path: where to write; written to a temporary name first, so readers never see half a file.

    Returns:
        ``path``.
    """
    import torch

    example = torch.randint(1000, 2000, (1, 12), device=transformer.device)
    return _write_graph(_pooled(transformer), {"input_ids": example}, path)


def _pooled(transformer: Any) -> Any:
    """The encoder with MiniLM's masked mean pooling and normalisation, ready to export.

    Without an ``attention_mask`` input (the single-question graph) every token counts.
    """
    import torch

    class _Pooled(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    # eval() on the wrapper too: a fresh Module is in training mode, and export restores it
    # afterwards, which would switch dropout on in the shared torch model.
    return _Pooled(transformer).eval()


def _write_graph(wrapper: Any, inputs: dict[str, Any], path: Path) -> Path:
    """``torch.onnx.export`` of ``wrapper`` (inputs dynamic in batch and tokens) to a temporary name, then ``path``."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    axes = {0: "batch", 1: "tokens"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes about Python control flow in transformers
            torch.onnx.export(
                wrapper, tuple(inputs.values()), tmp, input_names=list(inputs), output_names=["embedding"],
                dynamic_axes={**{name: axes for name in inputs}, "embedding": {0: "batch"}},
                opset_version=17, do_constant_folding=True, dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_query_encoder(
    transformer: Any,
    model_dir: Path,
    cache_dir: Path,
    *,
    tokenize: Callable[[str], list[int]],
    reference: Callable[[list[str]], np.ndarray],
    threads: int = 0,
    name: str = "",
    int8: bool = False,
) -> OnnxQueryEncoder | None:
    """The verified ONNX query encoder for a loaded model, exporting it on first use.

    Args:
        transformer: the loaded torch encoder (exported when no cached graph exists).
        model_dir: its directory (part of the cache key).
        cache_dir: where exported graphs are kept.
        tokenize: text to word-piece ids with specials, as the torch path tokenizes.
        reference: sentence-transformers' own encoding of texts, to check the graph against.
        threads: intra-op threads; 0 for one per core.
        name: the model's name, for the cached file's name.
        int8: use an int8 copy of the graph (quantized once, cached beside it): about twice as
            fast again, vectors close to but not equal to torch's.

    Returns:
        The encoder, or None when ONNX cannot be used here (the reason is logged).
    """
    fp32 = cached_graph_path(model_dir, cache_dir, name)
    return _open_verified(
        fp32, fp32.with_name(fp32.stem + "-int8.onnx") if int8 else fp32,
        export=lambda path: export(transformer, path),
        open_encoder=lambda path: OnnxQueryEncoder(path, threads),
        probe=lambda encoder: np.vstack([encoder.encode_ids(tokenize(t)) for t in _PROBES]),
        reference=reference, floor=MIN_INT8_PROBE_COSINE if int8 else MIN_PROBE_COSINE,
        purpose=f"{name or model_dir.name} for fast queries",
        unavailable="The ONNX question encoder is unavailable (%s: %s); questions are embedded with torch "
                    "instead (slower, same results). Point RAG_CACHE_DIR at a writable directory, or set "
                    "RAG_QUERY_ENCODER=torch to skip this.")


def _open_verified(fp32: Path, path: Path, *, export: Callable[[Path], Any], open_encoder: Callable[[Path], Any],
                   probe: Callable[[Any], np.ndarray], reference: Callable[[list[str]], np.ndarray], floor: float,
                   purpose: str, unavailable: str) -> Any | None:
    """An encoder opened from ``path``, exported to ``fp32`` (and quantized to ``path``) on first use,
    trusted only when its vectors of the probe texts match torch's to ``floor``; None (logged) otherwise.
    """
    for attempt in (1, 2):
        try:
            if not fp32.is_file():
                log.info("exporting %s to ONNX (once): %s", purpose, fp32)
                export(fp32)
            if not path.is_file():
                quantize_int8(fp32, path)
            encoder = open_encoder(path)
            cosines = np.sum(probe(encoder) * reference(list(_PROBES)), axis=1)
            if float(cosines.min()) < floor:
                raise ValueError(f"ONNX vectors differ from torch's (cosine {float(cosines.min()):.5f})")
            return encoder
        except Exception as exc:  # noqa: BLE001 - any failure here only costs speed
            if attempt == 1 and (path.is_file() or fp32.is_file()):
                # A cached file from an interrupted or different setup: rebuild it once.
                path.unlink(missing_ok=True)
                fp32.unlink(missing_ok=True)
                continue
            log.warning(unavailable, type(exc).__name__, exc)
            return None
    return None


class OnnxBatchEncoder:
    """Many texts at a time through an int8 copy of MiniLM with an attention mask: chunks at ingestion."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        """Open an exported batch graph.

        Args:
            path: the ``.onnx`` file written by :func:`export_batch` (or its int8 copy).
            threads: intra-op threads; 0 lets ONNX Runtime use one per core.
        """
        self.path = path
        self._session = _cpu_session(path, threads, spin=True)

    def encode(self, ids: Sequence[Sequence[int]], batch_size: int = 32) -> np.ndarray:
        """Embed tokenized texts (with [CLS] and [SEP]), longest first so each batch pads little.

        Args:
            ids: one word-piece id list per text, each at most the model's limit.
            batch_size: texts per run.

        Returns:
            A float32 array of shape (len(ids), dimension), L2-normalised, in the order given.
        """
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: np.ndarray | None = None
        for lo in range(0, len(order), batch_size):
            part = order[lo : lo + batch_size]
            width = max(len(ids[i]) for i in part)
            batch = np.zeros((len(part), width), dtype=np.int64)
            mask = np.zeros((len(part), width), dtype=np.int64)
            for row, i in enumerate(part):
                batch[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            vectors = self._session.run(None, {"input_ids": batch, "attention_mask": mask})[0]
            if out is None:
                out = np.zeros((len(ids), vectors.shape[1]), dtype=np.float32)
            out[part] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def export_batch(transformer: Any, path: Path) -> Path:
    """Export an encoder taking ``input_ids`` and ``attention_mask``, with masked mean pooling and normalisation.

    Args:
        transformer: the ``transformers`` model under sentence-transformers' first module.
        path: where to write; written to a temporary name first.

    Returns:
        ``path``.
    """
    import torch

    ids = torch.randint(1000, 2000, (2, 12), device=transformer.device)
    return _write_graph(_pooled(transformer), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, path)


def load_batch_encoder(
    transformer: Any,
    model_dir: Path,
    cache_dir: Path,
    *,
    tokenize: Callable[[str], list[int]],
    reference: Callable[[list[str]], np.ndarray],
    threads: int = 0,
    name: str = "",
) -> OnnxBatchEncoder | None:
    """The verified int8 batch encoder for a loaded model, exported and quantized on first use.

    Args:
        transformer: the loaded torch encoder.
        model_dir: its directory (part of the cache key).
        cache_dir: where exported graphs are kept.
        tokenize: text to word-piece ids with specials, as the torch path tokenizes.
        reference: sentence-transformers' own encoding of texts, to check the graph against.
        threads: intra-op threads; 0 for one per core.
        name: the model's name, for the cached file's name.

    Returns:
        The encoder, or None when it cannot be used here (the reason is logged; chunks are then
        embedded on torch).
    """
    base = cached_graph_path(model_dir, cache_dir, name)
    fp32 = base.with_name(base.stem + "-batch.onnx")
    return _open_verified(
        fp32, fp32.with_name(fp32.stem + "-int8.onnx"),
        export=lambda path: export_batch(transformer, path),
        open_encoder=lambda path: OnnxBatchEncoder(path, threads),
        probe=lambda encoder: encoder.encode([tokenize(t) for t in _PROBES]),
        reference=reference, floor=MIN_INT8_PROBE_COSINE, purpose=f"{name or model_dir.name} for int8 ingestion",
        unavailable="The int8 chunk encoder is unavailable (%s: %s); chunks are embedded with torch instead "
                    "(slower). Point RAG_CACHE_DIR at a writable directory, or set RAG_DOC_ENCODER=torch.")
