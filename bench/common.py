"""Shared helpers for the benchmarks: data, timing, memory, tables, JSON results.

Nothing here imports torch, Chroma or a peer framework at module level, so a
child process only pays for what it uses.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
# The shared data lives beside the checkout (see ../shared/data/README.md); never copied in.
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", ROOT.parent / "shared" / "data"))
SQUAD_HALF_A = DATA_DIR / "squad" / "squad-dev-v1.1-half-a.json"
# The peers (LlamaIndex, LangChain) and onnx live in this venv, which sees .venv's packages
# through a .pth file; see the comment at the top of bench/ingest.py.
BENCH_VENV_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
MAX_PIECES = 256  # MiniLM's max_seq_length, [CLS] and [SEP] included


def setup_offline() -> None:
    """Never reach for the network (Hugging Face hub, Chroma telemetry)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("torchao", "torch.utils._pytree", "sentence_transformers", "transformers",
                 "chromadb", "httpx", "llama_index", "langchain"):
        logging.getLogger(name).setLevel(logging.ERROR)


# -- data -----------------------------------------------------------------------------------

@dataclass
class Question:
    text: str
    answers: list[str]
    title: str


@dataclass
class Article:
    title: str
    paragraphs: list[str]
    questions: list[Question] = field(default_factory=list)


def load_squad(path: Path = SQUAD_HALF_A, max_articles: int | None = None) -> list[Article]:
    """SQuAD articles: title with underscores as spaces, paragraph texts, questions with gold answers."""
    if not path.is_file():
        raise SystemExit(f"{path} not found; set BENCH_DATA_DIR to the shared data directory")
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out = []
    for art in data[:max_articles]:
        title = art["title"].replace("_", " ")
        a = Article(title, [p["context"] for p in art["paragraphs"]])
        for p in art["paragraphs"]:
            for qa in p["qas"]:
                answers = sorted({x["text"] for x in qa["answers"] if x["text"].strip()})
                a.questions.append(Question(qa["question"], answers, title))
        out.append(a)
    return out


def sample_questions(articles: Sequence[Article], n: int | None) -> list[Question]:
    """Every question, or an evenly spread deterministic sample of ``n``."""
    qs = [q for a in articles for q in a.questions]
    if n is None or n >= len(qs):
        return qs
    step = len(qs) / n
    return [qs[int(i * step)] for i in range(n)]


def wiki_url(title: str) -> str:
    return "https://en.wikipedia.org/wiki/" + title.replace(" ", "_")


def product_documents(article: Article) -> list:
    """The Documents the product's eval builds: one per paragraph, one source per article."""
    from rag.types import Document

    return [
        Document(source=f"wikipedia:{article.title}", text=p, kind="wikipedia", title=article.title,
                 url=wiki_url(article.title))
        for p in article.paragraphs
    ]


def is_hit(question: Question, title: str, text: str) -> bool:
    """A retrieved chunk counts when it comes from the gold article and holds a gold answer."""
    if title != question.title:
        return False
    low = text.lower()
    return any(a.lower() in low for a in question.answers)


def hit_at(question: Question, retrieved: Sequence[tuple[str, str]], k: int) -> bool:
    return any(is_hit(question, t, x) for t, x in retrieved[:k])


# -- measuring ------------------------------------------------------------------------------

def now() -> float:
    return time.perf_counter()


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """This process's current resident set size, in MiB."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * p / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize_ms(samples_s: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "min_ms": min(ms) if ms else float("nan"),
    }


class MiniLMPieces:
    """MiniLM's own tokenizer (no truncation, no padding), to count word pieces."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.tok.no_truncation()
        self.tok.no_padding()

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [list(e.offsets) for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def embedded_end(self, text: str) -> tuple[int, int]:
        """(word pieces the model reads incl. specials, character where its reading stops)."""
        offs = self.tok.encode(text, add_special_tokens=False).offsets
        n = len(offs)
        if n + 2 <= MAX_PIECES:
            return n + 2, len(text)
        return MAX_PIECES, offs[MAX_PIECES - 3][1]


# -- output ---------------------------------------------------------------------------------

def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    """Print (and return) a plain fixed-width table; floats with 2 decimals."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "packages": versions("torch", "transformers", "sentence-transformers", "chromadb", "numpy",
                             "onnxruntime", "onnx", "tokenizers", "huggingface-hub"),
    }


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/<name>-<timestamp>.json and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    payload = {"benchmark": name, "written_at": datetime.now().isoformat(timespec="seconds"),
               "environment": environment(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return path


def run_child(python: str | Path, module: str, args: Sequence[str], result_path: Path,
              timeout: float | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` from the repo root; return the JSON it wrote to result_path.

    The child's stderr passes through (its progress notes); a crash becomes {"error": ...}.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    result_path.unlink(missing_ok=True)
    cmd = [str(python), "-m", module, *args, "--result", str(result_path)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout, stdout=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if proc.stdout.strip():
        print(proc.stdout.rstrip(), file=sys.stderr)
    if result_path.is_file():
        return json.loads(result_path.read_text(encoding="utf-8"))
    return {"error": f"child exited with {proc.returncode} and wrote no result"}


def note(msg: str) -> None:
    """Progress notes go to stderr so the final table is the last thing on stdout."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
