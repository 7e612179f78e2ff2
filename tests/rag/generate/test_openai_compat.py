"""OpenAICompatGenerator against a loopback server that speaks the chat completions SSE protocol byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rag.errors import ConfigError, RagError
from rag.generate import make_generator, parse_llm
from rag.generate.openai_compat import OpenAICompatGenerator, _read_events
from rag.protocols import Generator
from rag.settings import Settings
from tests.fakes.openai_server import FakeServer, completion, sse_chunk


def test_streams_delta_content_and_sends_the_openai_request(server: FakeServer) -> None:
    gen = OpenAICompatGenerator(server.url, "tiny-llama", api_key="sk-test")
    assert isinstance(gen, Generator)
    assert gen.name == f"openai:tiny-llama@{server.url}"
    assert list(gen.stream("Say hello.", max_new_tokens=12)) == ["Hello", " world"]
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["json"] == {"model": "tiny-llama", "messages": [{"role": "user", "content": "Say hello."}],
                               "stream": True, "max_tokens": 12, "temperature": 0}
    assert "sk-test" not in repr(gen)


def test_chat_template_prompts_travel_as_messages(server: FakeServer) -> None:
    gen = OpenAICompatGenerator(server.url + "/", "tiny")  # a trailing slash is fine
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ü"}]
    prompt = gen.render_chat_template(messages)
    assert gen.prompt_format == "chat-template" and gen.messages(prompt) == messages
    assert "".join(gen.stream(prompt, max_new_tokens=5)) == "Hello world"
    assert server.requests[0]["json"]["messages"] == messages
    assert "Authorization" not in server.requests[0]["headers"]


def test_server_error_is_one_clear_rag_error(server: FakeServer) -> None:
    server.reply = lambda body: (401, "application/json",
                                 b'{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}')
    gen = OpenAICompatGenerator(server.url, "tiny")
    with pytest.raises(RagError, match="answered HTTP 401: Incorrect API key provided; check the URL"):
        list(gen.stream("x", max_new_tokens=1))


def test_a_stream_cut_before_done_and_finish_is_an_error(server: FakeServer) -> None:
    server.reply = lambda body: (200, "text/event-stream", sse_chunk("partial"))
    gen = OpenAICompatGenerator(server.url, "tiny")
    pieces = []
    with pytest.raises(RagError, match=r"ended before 'data: \[DONE\]'"):
        for piece in gen.stream("x", max_new_tokens=5):
            pieces.append(piece)
    assert pieces == ["partial"]


def test_finish_reason_without_done_is_complete(server: FakeServer) -> None:
    server.reply = lambda body: (200, "text/event-stream", completion(["a", "b"], done=False))
    assert "".join(OpenAICompatGenerator(server.url, "tiny").stream("x", max_new_tokens=5)) == "ab"


def test_unreachable_server_names_the_url() -> None:
    gen = OpenAICompatGenerator("http://127.0.0.1:9/v1", "tiny", timeout=2)
    with pytest.raises(RagError, match=r"cannot reach the OpenAI-compatible server at http://127.0.0.1:9/v1"):
        list(gen.stream("x", max_new_tokens=1))


def test_sse_parsing_follows_the_spec() -> None:
    lines = [": keep-alive", "", "event: message", "id: 3", 'data: {"choices":[{"delta":{"content":"one"}}]}', "",
             'data: {"choices":[{"delta":', 'data: {"content":"two"}}]}', "",  # one event over two data lines
             'data: {"choices":[]}', "", "data: [DONE]", "", 'data: {"choices":[{"delta":{"content":"late"}}]}', ""]
    assert list(_read_events(iter(lines), "u")) == ["one", "two"]
    with pytest.raises(RagError, match="reported an error: overloaded"):
        list(_read_events(iter(['data: {"error": {"message": "overloaded"}}', ""]), "u"))


def test_count_tokens_is_a_documented_overestimate() -> None:
    gen = OpenAICompatGenerator("http://localhost:8000/v1", "m")
    assert gen.count_tokens("abcdef") == 2 + 4  # ceil(6 / 3) + one message
    prompt = gen.render_chat_template([{"role": "system", "content": "x" * 30}, {"role": "user", "content": "y" * 31}])
    assert gen.count_tokens(prompt) == 21 + 8
    english = "The game was played on February 7, 2016, at Levi's Stadium in Santa Clara, California. " * 20
    assert gen.count_tokens(english) > len(english.split()) * 1.3  # Llama needs ~1.3 tokens per English word


@pytest.mark.parametrize(("spec", "url", "model"), [
    ("openai:http://localhost:8000/v1#TheBloke/Llama-2-7B-Chat-GPTQ", "http://localhost:8000/v1",
     "TheBloke/Llama-2-7B-Chat-GPTQ"),
    ("OpenAI: https://api.example.com/v1 # gpt-4o-mini", "https://api.example.com/v1", "gpt-4o-mini"),
])
def test_parse_openai_spec(spec: str, url: str, model: str) -> None:
    kind, args = parse_llm(spec)
    assert (kind, args["base_url"], args["model"]) == ("openai", url, model)


def test_openai_from_environment_settings(server: FakeServer) -> None:
    env = {"RAG_LLM": "openai", "RAG_OPENAI_BASE_URL": server.url, "RAG_OPENAI_MODEL": "tiny",
           "RAG_OPENAI_API_KEY": "sk-env"}
    gen = make_generator(Settings.from_env(env))
    assert isinstance(gen, OpenAICompatGenerator) and gen.base_url == server.url and gen.api_key == "sk-env"
    assert "sk-env" not in repr(Settings.from_env(env))
    with pytest.raises(ConfigError, match="needs a server URL and a model"):
        make_generator(Settings.from_env({"RAG_LLM": "openai"}))


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        OpenAICompatGenerator("localhost:8000/v1", "m")
