"""Build a tiny Llama checkpoint and its 4-bit GPTQ twin, laid out like TheBloke's repositories.

Nothing is downloaded: the tokenizer is trained here with the ``tokenizers``
library, the weights are random with a fixed seed, and the quantization runs
through gptqmodel on the CPU with a handful of calibration texts. The quantized
directory is what ``GPTQGenerator`` loads, through the same code path as
``TheBloke/Llama-2-7B-Chat-GPTQ``: ``config.json`` carries a
``quantization_config`` with ``quant_method: "gptq"`` and ``quantize_config.json``
sits next to it.

Run ``python -m tests.rag.generate.tiny_llama OUT_DIR`` to build one by hand.
"""

from __future__ import annotations

import json
import string
import sys
from dataclasses import dataclass
from pathlib import Path

# ../shared/data beside the checkout, as in tests/conftest.py; a built-in paragraph when absent.
SQUAD = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "squad" / "squad-dev-v1.1-half-a.json"

# The official Llama-2-chat template (meta-llama/Llama-2-13b-chat-hf, tokenizer_config.json).
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)

FALLBACK_TEXT = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
    "a region in France. They were descended from Norse raiders and pirates from Denmark, Iceland "
    "and Norway who, under their leader Rollo, agreed to swear fealty to King Charles III of West "
    "Francia. Through generations of assimilation and mixing with the native Frankish and "
    "Roman-Gaulish populations, their descendants would gradually merge with the Carolingian-based "
    "cultures of West Francia. The distinct cultural and ethnic identity of the Normans emerged "
    "initially in the first half of the 10th century, and it continued to evolve over the "
    "succeeding centuries. Super Bowl 50 was an American football game to determine the champion "
    "of the National Football League for the 2015 season. The game was played on February 7, 2016, "
    "at Levi's Stadium in the San Francisco Bay Area at Santa Clara, California."
)

# Small, but big enough that GPTQ has real work to do (group_size 32 over 128 inputs).
HIDDEN = 128
LAYERS = 2
HEADS = 4
INTERMEDIATE = 256
VOCAB = 512
# Random weights this size let the two blocks move the residual stream enough that a
# mis-loaded checkpoint is obvious (logits cosine ~0.1 against the float model; zeroing the
# blocks gives ~0.8-0.9) while 4-bit GPTQ stays close (~0.997). At Llama's usual 0.02 the
# blocks dominate and GPTQ on random Gaussian weights drops to ~0.99.
INIT_STD = 0.01
GROUP_SIZE = 32
SEED = 1234


@dataclass(frozen=True)
class TinyLlama:
    """Where the built checkpoints are."""

    float_dir: Path
    gptq_dir: Path


def corpus_texts(limit: int = 300) -> list[str]:
    """English paragraphs to train the tokenizer and calibrate GPTQ (SQuAD when present)."""
    if SQUAD.is_file():
        data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
        texts = [p["context"] for article in data for p in article["paragraphs"]]
        return texts[:limit]
    return [s.strip() + "." for s in FALLBACK_TEXT.split(". ") if s.strip()]


def build_tokenizer(texts: list[str]):
    """A SentencePiece-style BPE tokenizer like Llama's: ``▁`` word marks, <unk>/<s>/</s>, BOS added.

    Like Llama's, decoding drops the ``▁`` space of the very first token, which is what
    makes naive streaming lose spaces; the generator's streamer is tested against it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=sorted(set(string.printable) - set(" \t\r\x0b\x0c")),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        chat_template=LLAMA2_CHAT_TEMPLATE,
        model_max_length=512,
    )


def build_float(out: Path, texts: list[str]) -> Path:
    """Save a randomly initialised 2-layer Llama (float16 weights, as Meta ships them)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(texts)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=512,
        initializer_range=INIT_STD,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=None,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).to(torch.float16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def quantize(float_dir: Path, out: Path, texts: list[str]) -> Path:
    """Quantize ``float_dir`` to 4-bit GPTQ with gptqmodel on the CPU; write TheBloke's layout."""
    from rag.generate.gptq_build import quantize as gptq_quantize

    return gptq_quantize(float_dir, out, [t[:1200] for t in texts[:32]], group_size=GROUP_SIZE, damp_percent=0.01)


def build(root: Path) -> TinyLlama:
    """Build both checkpoints under ``root`` (``float/`` and ``Tiny-Llama-2-Chat-GPTQ/``)."""
    texts = corpus_texts()
    float_dir = build_float(root / "float", texts)
    gptq_dir = quantize(float_dir, root / "Tiny-Llama-2-Chat-GPTQ", texts)
    return TinyLlama(float_dir=float_dir, gptq_dir=gptq_dir)


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
