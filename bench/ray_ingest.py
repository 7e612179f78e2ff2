"""Ingestion on one process vs on a Ray cluster (started here on this machine): chunks/s, overhead, memory.

Run (from the repo root, with the ``ray`` extra installed):

    .venv/bin/python -m bench.ray_ingest                    # SQuAD half-a (1,243 chunks), 2 CPUs
    .venv/bin/python -m bench.ray_ingest --articles 6 --cpus 2 --repeats 2

The same documents (SQuAD half-a articles as text sources, product chunking) are ingested
into fresh stores, alternately (local, Ray, local, Ray, ...), so both paths see the same
machine load:

* local: ``RAG.ingest`` as a user runs it, MiniLM on torch in this process;
* Ray: the same call with ``ray_address`` set, so chunk texts are embedded by MiniLM actors
  with Ray Data on a head node started here (``ray start --head`` on 127.0.0.1, ``--num-cpus``
  CPUs, one actor per CPU with one torch thread each) and written by this process.

Reported: wall time and chunks/s of each, the overhead ratio (Ray time / local time; on one
machine Ray cannot add cores, so this is its cost), chunks/s per core, the time before the
first vector (actor start-up and model loads), and the peak memory of the driver and of the
embedding actors (read from /proc while the job runs). The stores are checked to hold the
same chunk ids, so the figures compare equal work.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import SQUAD_HALF_A, load_squad, note, print_table, product_documents, setup_offline, write_json


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_head(cpus: int) -> tuple[subprocess.Popen, str, str]:
    """``ray start --head --block`` on 127.0.0.1 in its own temp dir and session; returns (proc, address, temp)."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rb", dir="/tmp")  # Ray's socket paths must stay short
    ray_bin = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         f"--num-cpus={cpus}", f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ray start exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"127.0.0.1:{port}", temp
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the Ray head did not start within 120 s")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def actor_pids() -> list[int]:
    """PIDs of the running MiniLM actors on this machine, in order (Ray titles an actor's process
    ``ray::MapWorker(...)``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::MapWorker") and b"_EmbedActor" in title:
                pids.append(int(entry.name))
    return sorted(pids)


class MemoryWatch:
    """Samples the driver's and the embedding actors' RSS every 0.2 s while running."""

    def __init__(self) -> None:
        self.driver_mb = 0.0
        self.actors_mb = 0.0
        self.actors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.driver_mb = max(self.driver_mb, _rss_mb(os.getpid()))
            pids = actor_pids()
            self.actors = max(self.actors, len(pids))
            self.actors_mb = max(self.actors_mb, sum(_rss_mb(p) for p in pids))
            self._stop.wait(0.2)

    def __enter__(self) -> "MemoryWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def ingest_once(root: Path, docs: list[tuple[str, list]], ray_address: str | None, cpus: int) -> dict[str, Any]:
    """One fresh store ingested; wall time, chunks, time to the first written batch, memory."""
    from ingest.index import SourceJob
    from rag import RAG

    rag = RAG(root, ray_address=ray_address)
    if ray_address:
        from ingest.distributed import RayBatchEmbedder

        rag.indexer.embed_batches = RayBatchEmbedder(ray_address, actors=cpus, threads=1).embed_batches
    first: list[float] = []
    add = rag.store.add

    def timed_add(chunks, embeddings) -> None:
        if not first:
            first.append(time.perf_counter())
        add(chunks, embeddings)

    rag.store.add = timed_add  # type: ignore[method-assign]
    jobs = [SourceJob(source, lambda ds=ds: ds) for source, ds in docs]
    with MemoryWatch() as mem:
        t0 = time.perf_counter()
        rag.ingest(jobs)
        wall = time.perf_counter() - t0
    ids = set(rag.store.dump())
    return {"wall_s": wall, "chunks": len(ids), "chunks_per_s": len(ids) / wall,
            "first_write_s": (first[0] - t0) if first else None, "driver_rss_mb": mem.driver_mb,
            "actors": mem.actors, "actors_rss_mb": mem.actors_mb, "ids": ids}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=None, help="SQuAD half-a articles (default: all 24)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs given to the Ray head")
    ap.add_argument("--repeats", type=int, default=1, help="alternating local/Ray rounds")
    args = ap.parse_args(argv)
    setup_offline()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SystemExit("this bench needs the ray extra: pip install -e '.[ray]'")

    articles = load_squad(SQUAD_HALF_A, max_articles=args.articles)
    docs = [(f"wikipedia:{a.title}", product_documents(a)) for a in articles]
    note(f"{sum(len(d) for _, d in docs)} paragraphs from {len(articles)} SQuAD articles; starting a Ray head with {args.cpus} CPUs")
    proc, address, temp = start_head(args.cpus)
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    rows: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
    try:
        for r in range(args.repeats):
            for path in ("local", "ray"):
                note(f"round {r + 1}: {path}")
                res = ingest_once(work / f"{path}-{r}", docs, address if path == "ray" else None, args.cpus)
                rows[path].append(res)
                note(f"  {res['chunks']:,} chunks in {res['wall_s']:.1f} s ({res['chunks_per_s']:.1f}/s)")
        same = all(a["ids"] == b["ids"] for a, b in zip(rows["local"], rows["ray"]))
    finally:
        import ray

        ray.shutdown()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)

    def best(path: str) -> dict[str, Any]:
        return min(rows[path], key=lambda x: x["wall_s"])

    local, remote = best("local"), best("ray")
    summary = {
        "cpus": args.cpus, "chunks": local["chunks"], "same_ids": same,
        "local_chunks_per_s": local["chunks_per_s"], "ray_chunks_per_s": remote["chunks_per_s"],
        "ray_over_local_time": remote["wall_s"] / local["wall_s"],
        "local_chunks_per_s_per_core": local["chunks_per_s"] / args.cpus,
        "ray_chunks_per_s_per_core": remote["chunks_per_s"] / args.cpus,
        "ray_first_write_s": remote["first_write_s"], "local_first_write_s": local["first_write_s"],
        "driver_rss_mb_local": local["driver_rss_mb"], "driver_rss_mb_ray": remote["driver_rss_mb"],
        "actors": remote["actors"], "actors_rss_mb": remote["actors_rss_mb"],
    }
    path = write_json("ray_ingest", {"summary": summary,
                                     "runs": {k: [{x: y for x, y in v.items() if x != "ids"} for v in vs]
                                              for k, vs in rows.items()}})
    print_table(["path", "wall s", "chunks/s", "per core", "first write s", "driver RSS MiB", "actors RSS MiB"],
                [["local", local["wall_s"], local["chunks_per_s"], summary["local_chunks_per_s_per_core"],
                  local["first_write_s"], local["driver_rss_mb"], "-"],
                 ["ray", remote["wall_s"], remote["chunks_per_s"], summary["ray_chunks_per_s_per_core"],
                  remote["first_write_s"], remote["driver_rss_mb"], remote["actors_rss_mb"]]],
                title=f"Ingestion of {local['chunks']:,} chunks, {args.cpus} CPUs (best of {args.repeats})")
    print(f"Ray / local time: {summary['ray_over_local_time']:.2f} x; same chunk ids: {same}; "
          f"{remote['actors']} actors")
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
