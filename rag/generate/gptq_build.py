"""Quantize a float transformers checkpoint to 4-bit GPTQ with gptqmodel, in TheBloke's layout.

:func:`quantize` writes a directory that :class:`rag.generate.gptq.GPTQGenerator` loads through
exactly the path ``TheBloke/Llama-2-7B-Chat-GPTQ`` takes: ``config.json`` carries a
``quantization_config`` with ``quant_method: "gptq"``, ``quantize_config.json`` sits next to it,
and the tokenizer and generation config are the float model's own, unchanged (gptqmodel rewrites
them; a TheBloke repository carries the original files). It runs on the CPU (gptqmodel's torch
kernels), which is how the bundled SmolLM2 (:mod:`rag.generate.smollm2`) and the tests' tiny
Llama are built.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from rag.lazy import chatter_to_stderr, require

PURPOSE = "Quantizing a model to GPTQ 4-bit"
# The files of the float model that a TheBloke repository carries unchanged.
_KEEP = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
         "generation_config.json")


def quantize(float_dir: Path, out: Path, texts: Sequence[str], *, bits: int = 4, group_size: int = 128,
             damp_percent: float = 0.01, device: str = "cpu") -> Path:
    """Quantize ``float_dir`` to GPTQ and write TheBloke's layout to ``out``.

    Args:
        float_dir: a float ``save_pretrained`` directory (weights and tokenizer).
        out: the directory to write (created; its parent must exist).
        texts: calibration texts, each one sample.
        bits: bits per weight.
        group_size: columns sharing one scale; must divide every linear layer's input width.
        damp_percent: GPTQ's Hessian dampening.
        device: where gptqmodel runs the calibration forward passes.

    Returns:
        ``out``.

    Raises:
        MissingDependencyError: gptqmodel (the ``gpu`` extra) is not installed.
    """
    # gptqmodel's CPU worker pool; scripts/test.sh sets it for CI. Two keep a shared machine usable.
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
    gptqmodel = require("gptqmodel", extra="gpu", purpose=PURPOSE)

    float_dir, out = Path(float_dir).resolve(), Path(out).resolve()
    qcfg = gptqmodel.QuantizeConfig(bits=bits, group_size=group_size, desc_act=False, sym=True,
                                    damp_percent=damp_percent)
    # gptqmodel writes per-run logs to ./logs: keep them out of the working directory and of out.
    with tempfile.TemporaryDirectory(prefix="gptq-logs-") as scratch, contextlib.chdir(scratch), \
            chatter_to_stderr():
        model = gptqmodel.GPTQModel.load(str(float_dir), qcfg, device=device)
        model.quantize(list(texts), batch_size=1)
        model.save(str(out))
    (out / "quant_log.csv").unlink(missing_ok=True)
    for name in _KEEP:
        if (float_dir / name).is_file():
            shutil.copyfile(float_dir / name, out / name)
    thebloke_layout(out, qcfg)
    return out


def thebloke_layout(out: Path, qcfg: Any) -> None:
    """Rewrite the quantization metadata exactly the way TheBloke's GPTQ repositories carry it.

    Args:
        out: a directory gptqmodel saved.
        qcfg: the ``gptqmodel.QuantizeConfig`` it was quantized with.
    """
    quantize_config = {
        "bits": qcfg.bits,
        "group_size": qcfg.group_size,
        "damp_percent": qcfg.damp_percent,
        "desc_act": qcfg.desc_act,
        "sym": qcfg.sym,
        "true_sequential": qcfg.true_sequential,
        "model_name_or_path": None,
        "model_file_base_name": "model",
    }
    (out / "quantize_config.json").write_text(json.dumps(quantize_config, indent=2) + "\n")
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["quantization_config"] = {**quantize_config, "quant_method": "gptq"}
    config_path.write_text(json.dumps(config, indent=2) + "\n")
