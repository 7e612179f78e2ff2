"""Answers from any server that speaks OpenAI's chat completions API (vLLM, llama.cpp's server, Ollama, TGI, OpenAI).

``OpenAICompatGenerator("http://localhost:8000/v1", "TheBloke/Llama-2-7B-Chat-GPTQ")`` POSTs
``{base_url}/chat/completions`` with ``stream: true`` and reads the server-sent events:
``data: {json}`` lines whose ``choices[0].delta.content`` carry the text, ending with
``data: [DONE]``. The server applies the model's chat template, so this generator sends
chat *messages*, not a rendered prompt: its ``prompt_format`` is ``chat-template`` and its
:meth:`~OpenAICompatGenerator.render_chat_template` encodes the messages as JSON, which
:meth:`~OpenAICompatGenerator.stream` decodes again. A plain string prompt is sent as one
user message.

Token counts: the server's tokenizer is not available here, so :meth:`count_tokens`
estimates ``ceil(characters / 3)`` plus 4 tokens per message. English BPE vocabularies
(Llama, GPT) average about 4 characters per token; 3 over-counts on purpose, so a packed
prompt stays inside ``context_window`` for text that tokenizes worse (numbers, names,
non-English), at the price of sometimes leaving out a source that would have fit.

httpx is imported when a generator is built, not when this module is imported.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator

from rag.errors import ConfigError, RagError
from rag.lazy import require

PURPOSE = "Generating answers through an OpenAI-compatible server"
CHARS_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4
DEFAULT_CONTEXT_WINDOW = 4096
_MESSAGES_TAG = '{"openai_messages": '


class OpenAICompatGenerator:
    """A :class:`rag.protocols.Generator` over an OpenAI-compatible ``/chat/completions`` endpoint.

    Attributes:
        name: ``openai:<model>@<base_url>``.
        prompt_format: ``chat-template`` (the server renders the model's template).
        context_window: the model's context length in tokens (what prompts are packed for).
        warning: always None (speed depends on the server).
    """

    prompt_format = "chat-template"
    warning: str | None = None

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *,
                 context_window: int = DEFAULT_CONTEXT_WINDOW, timeout: float = 120.0,
                 transport: Any = None) -> None:
        """Remember the endpoint; nothing is sent until :meth:`stream`.

        Args:
            base_url: the API root, e.g. ``http://localhost:8000/v1`` (``/chat/completions`` is appended).
            model: the model name the server knows.
            api_key: sent as ``Authorization: Bearer <key>`` when given.
            context_window: the model's context length in tokens.
            timeout: seconds to wait for the connection and between streamed events.
            transport: an ``httpx`` transport (tests).
        """
        base_url = (base_url or "").strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"OpenAI-compatible base URL {base_url!r} must start with http:// or https://; "
                "e.g. RAG_LLM='openai:http://localhost:8000/v1#my-model'"
            )
        if not (model or "").strip():
            raise ConfigError(
                "no model name for the OpenAI-compatible server; give it as "
                "RAG_LLM='openai:<base_url>#<model>' or set RAG_OPENAI_MODEL"
            )
        self._httpx = require("httpx", extra="openai", purpose=PURPOSE)
        self.base_url = base_url
        self.model = model.strip()
        self.api_key = api_key or None
        self.context_window = int(context_window)
        self.timeout = timeout
        self.name = f"openai:{self.model}@{self.base_url}"
        self._transport = transport

    def __repr__(self) -> str:  # never show the key
        return f"OpenAICompatGenerator({self.base_url!r}, {self.model!r})"

    # -- prompts ---------------------------------------------------------------------------------
    def render_chat_template(self, messages: list[dict[str, str]]) -> str:
        """Encode chat messages so :meth:`stream` sends them as messages (the server renders the template)."""
        return _MESSAGES_TAG + json.dumps(messages, ensure_ascii=False) + "}"

    @staticmethod
    def messages(prompt: str) -> list[dict[str, str]]:
        """The chat messages a prompt stands for: decoded from :meth:`render_chat_template`, or one user turn."""
        if prompt.startswith(_MESSAGES_TAG):
            try:
                value = json.loads(prompt)["openai_messages"]
                if isinstance(value, list) and all(isinstance(m, dict) for m in value):
                    return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
            except (ValueError, KeyError, TypeError):
                pass
        return [{"role": "user", "content": prompt}]

    def count_tokens(self, text: str) -> int:
        """Estimated tokens for a prompt: ceil(chars / 3) of the message texts plus 4 per message.

        An over-estimate for English (about 4 characters per token in Llama and GPT
        vocabularies), so packed prompts fit the context window; see the module docstring.
        """
        messages = self.messages(text)
        chars = sum(len(m["content"]) for m in messages)
        return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)

    # -- generation ------------------------------------------------------------------------------
    def stream(self, prompt: str, *, max_new_tokens: int) -> Iterator[str]:
        """POST the chat completion with ``stream: true`` and yield each ``delta.content`` as it arrives.

        Args:
            prompt: a prompt from :func:`rag.prompt.pack_prompt` (or any text: one user message).
            max_new_tokens: sent as ``max_tokens``.

        Returns:
            An iterator of non-empty text pieces.

        Raises:
            RagError: the server cannot be reached, answers with an error, or breaks the protocol.
        """
        httpx = self._httpx
        body = {
            "model": self.model,
            "messages": self.messages(prompt),
            "stream": True,
            "max_tokens": int(max_new_tokens),
            "temperature": 0,
        }
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        client = httpx.Client(timeout=httpx.Timeout(self.timeout), transport=self._transport)
        try:
            with client.stream("POST", url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    detail = _error_detail(response.read())
                    raise RagError(f"the OpenAI-compatible server at {url} answered HTTP {response.status_code}"
                                   f"{': ' + detail if detail else ''}; check the URL, model name and API key")
                yield from _read_events(response.iter_lines(), url)
        except httpx.HTTPError as exc:
            raise RagError(f"cannot reach the OpenAI-compatible server at {url} ({exc.__class__.__name__}: {exc}); "
                           "check that it is running and the base URL ends in /v1") from exc
        finally:
            client.close()


def _read_events(lines: Iterator[str], url: str) -> Iterator[str]:
    """Yield ``choices[0].delta.content`` from SSE lines until ``data: [DONE]``.

    Comments (``: ping``), ``event:``/``id:`` fields and blank separators are skipped; an
    event's ``data:`` lines are joined with newlines as the SSE specification says.
    """
    data: list[str] = []
    finished = False  # a choice carried finish_reason: complete even if [DONE] never comes

    def flush() -> tuple[bool, str]:
        nonlocal finished
        payload = "\n".join(data)
        data.clear()
        if not payload:
            return False, ""
        if payload.strip() == "[DONE]":
            return True, ""
        try:
            event = json.loads(payload)
        except ValueError:
            raise RagError(f"the server at {url} sent an event that is not JSON: {payload[:200]!r}") from None
        if isinstance(event, dict) and event.get("error"):
            raise RagError(f"the server at {url} reported an error: {_error_detail(event)}")
        try:
            choices = event.get("choices") or []
            delta = (choices[0].get("delta") or {}) if choices else {}
            finished = finished or bool(choices and choices[0].get("finish_reason"))
            return False, delta.get("content") or ""
        except (AttributeError, IndexError, TypeError):
            raise RagError(f"the server at {url} sent an event without choices[0].delta: {payload[:200]!r}") from None

    for line in lines:
        if line == "":
            done, text = flush()
            if done:
                return
            if text:
                yield text
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    done, text = flush()
    if text:
        yield text
    if not done and not finished:
        raise RagError(f"the stream from {url} ended before 'data: [DONE]'; the answer may be cut off")


def _error_detail(body: Any) -> str:
    try:
        value = json.loads(body) if isinstance(body, (bytes, str)) else body
        err = value.get("error", value)
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    except Exception:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return text.strip()[:300]
