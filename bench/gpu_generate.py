"""Generation speed on a GPU: Llama-2-7B shapes in bf16 vs 4-bit GPTQ, batch 1.

Run by hand on a CUDA machine (needs the gpu extra, nothing is downloaded):

    python bench/gpu_generate.py [--new-tokens 15 128] [--prompt-tokens 512] [--repeats 3]

Weights are random (quality is irrelevant to speed): the bf16 model is built in
memory, the GPTQ checkpoint is written to a temporary directory in TheBloke's layout
(random int4 codes, group size 128, no act-order) and loaded through the product's
own loader, ``rag.generate.GPTQGenerator``. Every run generates exactly N greedy
tokens (``min_new_tokens``); the product's streaming path is timed too. Prints a table
(ms, tokens/s, peak GPU memory) last and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
# meta-llama/Llama-2-7b-chat-hf
LLAMA2_7B = dict(
    vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
    rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
)
GROUP_SIZE = 128
TEXT = (
    "Super Bowl 50 was an American football game to determine the champion of the National "
    "Football League for the 2015 season. The Denver Broncos defeated the Carolina Panthers "
    "24 to 10 to earn their third Super Bowl title. The game was played on February 7, 2016, "
    "at Levi's Stadium in the San Francisco Bay Area at Santa Clara, California. "
)


def build_tokenizer(vocab_size: int):
    """A Llama-style tokenizer (``▁`` BPE, <unk>/<s>/</s>) padded to ``vocab_size`` entries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    hf.add_tokens([f"<t{i}>" for i in range(vocab_size - len(hf))])
    assert len(hf) == vocab_size, len(hf)
    return hf


def write_random_gptq_checkpoint(out: Path, config_kwargs: dict[str, Any], group_size: int = GROUP_SIZE) -> Path:
    """Write a 4-bit GPTQ Llama with random codes and scales, laid out like TheBloke's repositories.

    Args:
        out: the directory to create.
        config_kwargs: ``LlamaConfig`` arguments (the shapes).
        group_size: the GPTQ group size.

    Returns:
        ``out``.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    out.mkdir(parents=True, exist_ok=True)
    config = LlamaConfig(**config_kwargs)
    hidden, inter, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    gen = torch.Generator().manual_seed(0)
    # Codes are uniform over 0..15 around a zero point of 8 (std ~4.6), so this scale gives
    # weights of std ~0.02, like a freshly initialised Llama.
    scale = 0.02 / 4.6

    def fp16(*shape: int, std: float = 0.02) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * std).to(torch.float16)

    tensors: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": fp16(vocab, hidden),
        "model.norm.weight": torch.ones(hidden, dtype=torch.float16),
        "lm_head.weight": fp16(vocab, hidden),
    }
    shapes = {
        "self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (hidden, hidden),
        "self_attn.v_proj": (hidden, hidden), "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (hidden, inter), "mlp.up_proj": (hidden, inter), "mlp.down_proj": (inter, hidden),
    }
    zero = 0x77777777  # eight 4-bit zero points of 7: GPTQ v1 stores zero - 1 (8 - 1) for sym
    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}"
        tensors[f"{prefix}.input_layernorm.weight"] = torch.ones(hidden, dtype=torch.float16)
        tensors[f"{prefix}.post_attention_layernorm.weight"] = torch.ones(hidden, dtype=torch.float16)
        for name, (fan_in, fan_out) in shapes.items():
            groups = fan_in // group_size
            key = f"{prefix}.{name}"
            tensors[f"{key}.qweight"] = torch.randint(
                -(2**31), 2**31, (fan_in // 8, fan_out), generator=gen, dtype=torch.int64
            ).to(torch.int32)
            tensors[f"{key}.qzeros"] = torch.full((groups, fan_out // 8), zero, dtype=torch.int32)
            tensors[f"{key}.scales"] = (torch.rand(groups, fan_out, generator=gen) * 0.5 + 0.75).mul(scale).half()
            tensors[f"{key}.g_idx"] = torch.arange(fan_in, dtype=torch.int32) // group_size
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})

    quantize_config = {
        "bits": 4, "group_size": group_size, "damp_percent": 0.01, "desc_act": False, "sym": True,
        "true_sequential": True, "model_name_or_path": None, "model_file_base_name": "model",
    }
    config_dict = config.to_dict()
    config_dict.update(architectures=["LlamaForCausalLM"], torch_dtype="float16",
                       quantization_config={**quantize_config, "quant_method": "gptq"})
    (out / "config.json").write_text(json.dumps(config_dict, indent=2))
    (out / "quantize_config.json").write_text(json.dumps(quantize_config, indent=2))
    build_tokenizer(vocab).save_pretrained(out)
    return out


def gpu_mib(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``fn``; return its result, the seconds it took and the peak GPU memory (MiB)."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = fn()
    torch.cuda.synchronize()
    return result, time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**20


def measure(label: str, kernel: str, run: Callable[[int], Any], new_tokens: list[int], repeats: int,
            weights_mib: float, prompt_tokens: int) -> list[dict[str, Any]]:
    """Time ``run(n)`` (after one warm-up) ``repeats`` times per token count; median wins."""
    rows = []
    run(4)  # warm-up: kernels, caches, autotuning
    for n in new_tokens:
        samples = [gpu_mib(lambda n=n: run(n)) for _ in range(repeats)]
        seconds = statistics.median(s for _, s, _ in samples)
        first = [r for r, _, _ in samples if isinstance(r, float)]
        rows.append({
            "model": label, "kernel": kernel, "prompt_tokens": prompt_tokens, "new_tokens": n,
            "ms": round(seconds * 1000, 1), "tokens_per_s": round(n / seconds, 1),
            "first_token_ms": round(statistics.median(first) * 1000, 1) if first else None,
            "weights_mib": round(weights_mib), "peak_mib": round(max(m for _, _, m in samples)),
        })
        print(f"  {label:<22} {n:>4} tokens: {rows[-1]['ms']:>9.1f} ms", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[15, 128])
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench/gpu_generate.py needs a CUDA GPU and torch sees none; run it on a GPU machine.")
        return 0

    from transformers import LlamaConfig, LlamaForCausalLM

    from rag.generate import GPTQGenerator

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gpu-generate-") as tmp:
        print("writing a random 4-bit GPTQ Llama-2-7B checkpoint ...", flush=True)
        gptq_dir = write_random_gptq_checkpoint(Path(tmp) / "Llama-2-7B-Chat-GPTQ-random", LLAMA2_7B)
        tokenizer = build_tokenizer(LLAMA2_7B["vocab_size"])
        ids = tokenizer(TEXT * 40, add_special_tokens=True)["input_ids"][: args.prompt_tokens]
        prompt = tokenizer.decode(ids, skip_special_tokens=True)

        print("bf16: building Llama-2-7B with random weights ...", flush=True)
        torch.manual_seed(0)
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("cuda"):
                model = LlamaForCausalLM(LlamaConfig(**LLAMA2_7B)).eval()
        finally:
            torch.set_default_dtype(default_dtype)
        weights = torch.cuda.memory_allocated() / 2**20
        inputs = {k: v.to("cuda") for k, v in tokenizer(prompt, return_tensors="pt").items()
                  if k in ("input_ids", "attention_mask")}
        prompt_len = inputs["input_ids"].shape[1]

        def generate_with(m: Any) -> Callable[[int], Any]:
            def run(n: int) -> None:
                with torch.inference_mode():
                    m.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                               temperature=None, top_p=None, top_k=None, pad_token_id=2)
            return run

        rows += measure("bf16 generate", "torch bf16", generate_with(model), args.new_tokens, args.repeats,
                        weights, prompt_len)
        del model
        gc.collect()
        torch.cuda.empty_cache()

        print("gptq: loading through rag.generate.GPTQGenerator ...", flush=True)
        before = torch.cuda.memory_allocated()
        gen = GPTQGenerator(str(gptq_dir))
        weights = (torch.cuda.memory_allocated() - before) / 2**20
        kernel = type(gen.model.model.layers[0].self_attn.q_proj).__name__
        rows += measure("gptq-4bit generate", kernel, generate_with(gen.model), args.new_tokens, args.repeats,
                        weights, prompt_len)

        def stream(n: int) -> float:
            start = time.perf_counter()
            first = None
            for _ in gen.stream(prompt, max_new_tokens=n):
                first = first if first is not None else time.perf_counter() - start
            return first if first is not None else float("nan")

        rows += measure("gptq-4bit stream", kernel, stream, args.new_tokens, args.repeats, weights, prompt_len)

    report = {
        "bench": "gpu_generate",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "gpu": torch.cuda.get_device_name(0),
        "python": platform.python_version(),
        "versions": {p: metadata.version(p) for p in ("torch", "transformers", "optimum", "gptqmodel")},
        "shapes": LLAMA2_7B, "group_size": GROUP_SIZE, "batch": 1, "repeats": args.repeats,
        "note": "stream rows: tokens/s assumes N tokens (random weights virtually never emit EOS); "
                "first_token_ms includes prefill",
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"gpu_generate-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")

    header = f"{'model':<20} {'kernel':<18} {'new':>4} {'ms':>9} {'tok/s':>7} {'1st ms':>7} {'weights':>8} {'peak':>8}"
    print(f"\n{report['gpu']}, prompt {prompt_len} tokens, batch 1, median of {args.repeats}; JSON: {path}")
    print(header)
    print("-" * len(header))
    for r in rows:
        first = f"{r['first_token_ms']:.0f}" if r["first_token_ms"] is not None else "-"
        print(f"{r['model']:<20} {r['kernel'][:18]:<18} {r['new_tokens']:>4} {r['ms']:>9.1f} "
              f"{r['tokens_per_s']:>7.1f} {first:>7} {r['weights_mib']:>6}Mi {r['peak_mib']:>6}Mi")
    return 0


if __name__ == "__main__":
    sys.exit(main())
