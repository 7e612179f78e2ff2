"""Embedding on a Ray cluster: chunk texts go through MiniLM actors with Ray Data.

Reading, chunking and planning stay where they are (the local :class:`ingest.index.Indexer`
decides which chunks are new, exactly as without Ray); only the embedding, which is nearly
all of an ingestion's time, is spread over the cluster's cores. The indexer hands every
write batch of one run to :meth:`RayBatchEmbedder.embed_batches` at once: one Ray Data job
with a pool of actors that each load MiniLM once, whose vectors come back batch by batch in
order, so the indexer keeps writing a batch as soon as it is embedded and a crash loses at
most the batches in flight — the same guarantee as the local path.

Every vector carries the index of its text: a batch is written only when each of its
texts has exactly one vector, so a worker killed mid-job (Ray restarts the actor and
retries its task) can neither lose nor duplicate a chunk.

Needs the ``ray`` extra (``pip install -e '.[ray]'``) and the same ``rag`` installed on every
node (MiniLM ships in its wheel); the driver's own ``rag`` and ``ingest`` code is shipped to
the workers with the job, so they never run another version of it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rag.errors import ConfigError, RagError
from rag.settings import check_choice

log = logging.getLogger(__name__)


class _EmbedActor:
    """One Ray actor: MiniLM loaded once, embedding the batches Ray Data sends it."""

    def __init__(self, model_dir: str | None, threads: int, doc_encoder: str = "torch",
                 cache_dir: str | None = None) -> None:
        from rag.embed import MiniLMEmbedder

        # Chunks are embedded as the driver's settings say (torch, or the int8 ONNX copy, exported
        # once into this node's cache); the ONNX question path is not used here.
        self.embedder = MiniLMEmbedder(model_dir or None, threads=threads, query_encoder="torch",
                                       doc_encoder=doc_encoder, cache_dir=cache_dir or None)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.embed([str(t) for t in batch["text"]])
        return {"i": np.asarray(batch["i"], dtype=np.int64), "v": vectors.astype(np.float32)}


class RayBatchEmbedder:
    """Embeds many batches of chunk texts on a Ray cluster, yielding each batch's vectors in order.

    Args:
        address: the cluster, as ``ray.init`` takes it (``127.0.0.1:6379``, ``ray://host:10001``,
            or ``auto`` for the cluster this machine belongs to).
        model_dir: the sentence-transformers directory each actor loads (the bundled MiniLM
            when None); it must exist on every node.
        actors: how many embedding actors (default: one per CPU of the cluster, up to 64).
        threads: torch threads per actor (1: the cluster's cores are shared out by actors).
        batch_size: texts per actor call.
        doc_encoder: what the actors embed chunks with (``Settings.doc_encoder``: ``torch`` or
            ``onnx-int8``), so a store gets the same vectors with Ray as without.
        cache_dir: where each node keeps the ONNX export for ``onnx-int8`` (the node's default
            cache when None).
    """

    def __init__(self, address: str, *, model_dir: str | Path | None = None, actors: int | None = None,
                 threads: int = 1, batch_size: int = 64, doc_encoder: str = "torch",
                 cache_dir: str | Path | None = None) -> None:
        if not address:
            raise ConfigError("A Ray address is needed, e.g. --ray 127.0.0.1:6379 or RAG_RAY_ADDRESS=auto")
        self.address = address
        self.model_dir = str(model_dir) if model_dir else None
        self.actors = actors
        self.threads = threads
        self.batch_size = batch_size
        check_choice("doc_encoder", doc_encoder)
        self.doc_encoder = doc_encoder
        self.cache_dir = str(cache_dir) if cache_dir else None

    def _connect(self) -> Any:
        from rag.lazy import require

        ray = require("ray", extra="ray", purpose="Ingesting on a Ray cluster (--ray)")
        if ray.is_initialized() and self.address not in ("auto", ray.get_runtime_context().gcs_address):
            ray.shutdown()  # connected to another cluster earlier in this process
        if not ray.is_initialized():
            import ingest
            import rag

            self._check_reachable()
            packages = [str(Path(m.__file__).parent) for m in (rag, ingest)]
            try:
                ray.init(address=self.address, runtime_env={"py_modules": packages}, logging_level="ERROR",
                         log_to_driver=False, configure_logging=False)
            except Exception as exc:  # ConnectionError, ValueError, RuntimeError, depending on the failure
                raise RagError(f"Cannot connect to the Ray cluster at {self.address!r} ({exc}); start one with "
                               "`ray start --head` or check --ray / RAG_RAY_ADDRESS") from None
        return ray

    def _check_reachable(self) -> None:
        """Fail in seconds, not minutes: ``ray.init`` retries an address where nothing listens for long."""
        import socket

        host, _, port = self.address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            return  # "auto", or a form only Ray understands: let it try
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
                pass
        except OSError as exc:
            raise RagError(f"Cannot connect to the Ray cluster at {self.address!r} ({exc.strerror or exc}); start "
                           "one with `ray start --head` or check --ray / RAG_RAY_ADDRESS") from None

    def embed_batches(self, batches: Sequence[Sequence[str]]) -> Iterator[np.ndarray]:
        """Vectors of each batch of texts, batch by batch in the order given.

        Args:
            batches: lists of texts (the indexer's write batches).

        Returns:
            An iterator of one (len(batch), dimension) float32 array per batch, each as soon as all
            of it is embedded.

        Raises:
            RagError: the cluster cannot be reached, or the job lost vectors it could not recompute.
        """
        sizes = [len(b) for b in batches]
        if sum(sizes) == 0:
            return iter([np.zeros((0, 0), dtype=np.float32) for _ in batches])
        # Connect now, not on the first vector asked for: an unreachable cluster is reported
        # before any progress is shown.
        self._connect()
        return self._run(batches, sizes)

    def _run(self, batches: Sequence[Sequence[str]], sizes: list[int]) -> Iterator[np.ndarray]:
        import ray
        import ray.data

        total = sum(sizes)

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the indexer shows its own bar
        rows = [{"i": i, "text": t} for i, t in enumerate(t for b in batches for t in b)]
        actors = self.actors or max(1, min(64, int(ray.cluster_resources().get("CPU", 1))))
        dataset = ray.data.from_items(rows).map_batches(
            _EmbedActor, fn_constructor_kwargs={"model_dir": self.model_dir, "threads": self.threads,
                                                "doc_encoder": self.doc_encoder, "cache_dir": self.cache_dir},
            batch_size=self.batch_size, batch_format="numpy", num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=actors))
        vectors: np.ndarray | None = None
        seen = np.zeros(total, dtype=bool)
        bounds = np.cumsum([0, *sizes])
        ready = 0  # batches yielded so far
        for out in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            index, v = out["i"], out["v"]
            if vectors is None:
                vectors = np.zeros((total, v.shape[1]), dtype=np.float32)
            if seen[index].any():  # a retried task may send a block twice: the first copy stands
                keep = ~seen[index]
                index, v = index[keep], v[keep]
            vectors[index] = v
            seen[index] = True
            while ready < len(sizes) and seen[bounds[ready]:bounds[ready + 1]].all():
                yield vectors[bounds[ready]:bounds[ready + 1]].copy()
                ready += 1
        if ready < len(sizes):
            missing = int((~seen).sum())
            raise RagError(f"The Ray job returned no vector for {missing} of {total} chunks; nothing of them "
                           "was written: run the same ingest again")
