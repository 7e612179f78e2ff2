"""GPTQGenerator against a tiny Llama quantized here with gptqmodel (no downloads).

The checkpoint is built once per session (~10 s on 2 cores) in TheBloke's layout and
loaded through exactly ``GPTQGenerator(path)``, the path a real checkpoint takes.
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch

from rag.errors import ConfigError, MissingDependencyError
from rag.protocols import Generator
from tests.rag.generate import tiny_llama

HAVE_GPU_EXTRA = find_spec("gptqmodel") is not None and find_spec("optimum") is not None

PROMPTS = [
    "Where was Super Bowl 50 played?",
    "The Normans gave their name to Normandy, a region in",
    "<s>[INST] <<SYS>>\nAnswer from the sources.\n<</SYS>>\n\nWho won the game? [/INST]",
    "### User:\nWhat is the capital of France?\n\n### Assistant:\n",
]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tiny_llama.TinyLlama:
    """The float and the 4-bit GPTQ tiny Llama, built once per session."""
    if not HAVE_GPU_EXTRA:
        pytest.skip("needs the gpu extra (gptqmodel, optimum): pip install -e '.[gpu]'")
    return tiny_llama.build(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def generator(tiny: tiny_llama.TinyLlama):
    """The product's loader on the GPTQ directory, on the CPU."""
    from rag.generate import GPTQGenerator

    return GPTQGenerator(str(tiny.gptq_dir))


@pytest.fixture(scope="session")
def float_model(tiny: tiny_llama.TinyLlama):
    """The unquantized model in float32, for reference logits."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny.float_dir, dtype=torch.float32).eval()


def last_logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits[0, -1].float()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a, b, dim=0).item()


def test_checkpoint_is_laid_out_like_thebloke(tiny: tiny_llama.TinyLlama) -> None:
    config = json.loads((tiny.gptq_dir / "config.json").read_text())
    quantize_config = json.loads((tiny.gptq_dir / "quantize_config.json").read_text())
    assert config["quantization_config"] == {**quantize_config, "quant_method": "gptq"}
    assert quantize_config["bits"] == 4 and quantize_config["desc_act"] is False and quantize_config["sym"] is True
    assert set(quantize_config) == {
        "bits", "group_size", "damp_percent", "desc_act", "sym", "true_sequential",
        "model_name_or_path", "model_file_base_name",
    }
    from safetensors import safe_open

    with safe_open(tiny.gptq_dir / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert {"qweight", "qzeros", "scales", "g_idx"} <= {k.rsplit(".", 1)[1] for k in keys}
    assert "model.layers.0.self_attn.q_proj.weight" not in keys


def test_loads_as_gptq_and_implements_the_protocol(generator) -> None:
    assert isinstance(generator, Generator)
    assert generator.name == f"gptq:{generator.model_id}"
    assert generator.prompt_format == "llama-2-chat"  # from the directory name
    assert generator.context_window == 512  # max_position_embeddings
    assert generator.device == "cpu"
    quantized = type(generator.model.model.layers[0].self_attn.q_proj)
    assert quantized.__module__.startswith("gptqmodel."), quantized


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU warning is about machines without CUDA")
def test_warns_that_cpu_generation_is_slow(generator) -> None:
    assert generator.warning is not None and "1 token/s" in generator.warning


def test_logits_stay_close_to_the_float_model(generator, float_model) -> None:
    cosines = [cosine(last_logits(float_model, generator.encode(p)), last_logits(generator.model, generator.encode(p)))
               for p in PROMPTS]
    print("logits cosine, GPTQ vs float:", [round(c, 4) for c in cosines])
    assert min(cosines) > 0.99, cosines


def test_a_misread_checkpoint_fails_the_cosine_check(tiny, float_model, tmp_path: Path) -> None:
    """The 0.99 threshold has teeth: reading the same weights as the wrong GPTQ format scores ~0.1."""
    from rag.generate import GPTQGenerator

    wrong = tmp_path / "Tiny-Llama-2-Chat-GPTQ"
    shutil.copytree(tiny.gptq_dir, wrong)
    config = json.loads((wrong / "config.json").read_text())
    config["quantization_config"]["checkpoint_format"] = "gptq_v2"  # zero points off by one
    (wrong / "config.json").write_text(json.dumps(config))
    misread = GPTQGenerator(str(wrong))
    cosines = [cosine(last_logits(float_model, misread.encode(p)), last_logits(misread.model, misread.encode(p)))
               for p in PROMPTS]
    assert max(cosines) < 0.9, cosines


def test_bos_is_added_once(generator) -> None:
    bos = generator.tokenizer.bos_token_id
    for prompt in PROMPTS:
        ids = generator.encode(prompt)["input_ids"][0].tolist()
        assert ids[0] == bos and ids.count(bos) == 1, (prompt, ids)
        assert generator.count_tokens(prompt) == len(ids)


def test_stream_matches_greedy_generate(generator) -> None:
    for prompt in PROMPTS[:2]:
        pieces = list(generator.stream(prompt, max_new_tokens=24))
        assert pieces and all(pieces)
        inputs = generator.encode(prompt)
        with torch.no_grad():
            out = generator.model.generate(**inputs, **generator.generation_kwargs(24))
        expected = generator.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        assert "".join(pieces) == expected


def test_stream_can_be_abandoned(generator) -> None:
    stream = generator.stream(PROMPTS[0], max_new_tokens=200)
    first = next(stream)
    stream.close()  # joins the generation thread after it stops at the next token
    assert first
    assert list(generator.stream(PROMPTS[1], max_new_tokens=4))  # the lock was released


def test_streamer_keeps_the_space_after_a_newline(generator) -> None:
    """transformers' TextIteratorStreamer restarts decoding after "\\n" and drops the ``▁`` space."""
    from rag.generate.gptq import _streamer_class

    tok = generator.tokenizer
    ids = tok("Paris is\n The capital\n\n of France. \u00e9t\u00e9 ok", add_special_tokens=False)["input_ids"]
    streamer = _streamer_class()(tok)
    streamer.put(torch.tensor([[tok.bos_token_id]]))  # the prompt, skipped
    for i in ids:
        streamer.put(torch.tensor([i]))
    streamer.end()
    pieces = list(streamer)
    assert "".join(pieces) == tok.decode(ids, skip_special_tokens=True)
    assert len(pieces) > 3


def test_renders_its_own_chat_template_like_llama_2_chat(generator) -> None:
    from rag.prompt import render

    history = [("First question?", "First answer.")]
    ours = render("llama-2-chat", "Be brief.", "Second question?", history)
    theirs = render("chat-template", "Be brief.", "Second question?", history,
                    render_chat_template=generator.render_chat_template)
    assert ours == theirs


def test_missing_model_says_what_to_give(tmp_path: Path) -> None:
    from rag.generate import GPTQGenerator

    if not HAVE_GPU_EXTRA:
        pytest.skip("needs the gpu extra")
    with pytest.raises(ConfigError, match="cannot load the model .*give a local directory"):
        GPTQGenerator(str(tmp_path / "no-such-model"))


def test_refuses_a_checkpoint_that_is_not_gptq(tiny) -> None:
    from rag.generate import GPTQGenerator

    with pytest.raises(ConfigError, match="not a GPTQ checkpoint"):
        GPTQGenerator(str(tiny.float_dir))


def test_unknown_prompt_format_is_refused_before_loading(tiny) -> None:
    from rag.generate import GPTQGenerator

    with pytest.raises(ConfigError, match="RAG_PROMPT_FORMAT to one of auto, llama-2-chat"):
        GPTQGenerator(str(tiny.gptq_dir), prompt_format="alpaca")


@pytest.mark.parametrize("missing", ["gptqmodel", "optimum", "optimum.gptq"])
def test_missing_gpu_extra_names_it(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.generate import GPTQGenerator

    if missing != "gptqmodel" and not HAVE_GPU_EXTRA:
        pytest.skip("gptqmodel is checked first and is missing here")

    for name in list(sys.modules):
        if name == missing or name.startswith(missing + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` raise ImportError
    with pytest.raises(MissingDependencyError) as info:
        GPTQGenerator("TheBloke/Llama-2-7B-Chat-GPTQ")
    package = missing.split(".")[0]
    assert str(info.value) == (
        f"Generating answers with a GPTQ model needs the Python package '{package}', which is not "
        "installed; install it with: pip install -e '.[gpu]'"
    )
    assert info.value.extra == "gpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda_with_a_gptq_kernel(tiny, float_model) -> None:
    from rag.generate import GPTQGenerator

    gen = GPTQGenerator(str(tiny.gptq_dir))
    assert gen.device == "cuda" and gen.warning is None
    reference = float_model.to("cuda")
    try:
        cosines = [cosine(last_logits(reference, gen.encode(p)), last_logits(gen.model, gen.encode(p)))
                   for p in PROMPTS]
    finally:
        float_model.to("cpu")
    assert min(cosines) > 0.99, cosines
    assert "".join(gen.stream(PROMPTS[0], max_new_tokens=16))
