"""Collections over HTTP: /api/*, /v1/chat/completions (OpenAI's extra_body), /files, and keys bound to collections.

One real headless server for the module, with login on: the main key sees everything; key-a is
bound to team-a, key-b to team-b and team-c. The two teams hold near-identical handbooks (one
fact apart), and neither key, route nor follow-up ever shows the other team's chunks.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.rag.test_collections import FACT, HANDBOOK, OTHER

KEYS = {"key-a": ["team-a"], "key-b": ["team-b", "team-c"]}


@pytest.fixture(scope="module")
def server(embedder, tmp_path_factory: pytest.TempPathFactory):
    from rag import RAG
    from rag.http.app import create_server
    from tests.pdfgen import make_pdf

    root = tmp_path_factory.mktemp("collections-api")
    rag = RAG(root / "data", api_key="main-key", collection_keys=json.dumps(KEYS))
    srv = create_server(rag, "127.0.0.1", 0, headless=True).start()
    pdf = root / "plan.pdf"
    make_pdf(["The Orion launch review happens in the blue room every Tuesday morning."], pdf)
    with httpx.Client(base_url=srv.url, timeout=120) as http:
        for key, team in (("key-a", "team-a"), ("key-b", "team-b")):
            auth = {"Authorization": f"Bearer {key}"}
            # key-a names no collection: a bound key writes into its first one.
            body = {"name": "handbook.md", "text": HANDBOOK.format(deadline=FACT[team]),
                    **({"collection": team} if key == "key-b" else {})}
            assert http.post("/api/ingest/text", json=body, headers=auth).json()["added"] == {"handbook.md": 1}
            with pdf.open("rb") as fh:
                r = http.post("/api/ingest/file", files={"file": ("plan.pdf", fh, "application/pdf")},
                              data={"collection": team}, headers={**auth, "X-Requested-With": "test"})
            assert r.status_code == 200 and r.json()["added"] == {"plan.pdf": 1}, r.text
        main = {"Authorization": "Bearer main-key"}
        assert http.post("/api/ingest/text", json={"name": "note.txt", "text": "The lighthouse is red."},
                         headers=main).status_code == 200
    yield srv
    srv.stop()


def _http(server, key: str = "main-key") -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {key}"})


def _collections_of(payload: dict) -> set[str]:
    hits = payload.get("hits") or payload.get("sources", []) + payload.get("citations", [])
    return {h["collection"] for h in hits}


def test_rest_search_and_ask_stay_inside_the_asked_collection(server) -> None:
    with _http(server) as http:
        for team, fact in FACT.items():
            r = http.post("/api/search", json={"query": "When is the Orion project deadline?", "k": 50,
                                               "collection": team})
            assert r.status_code == 200 and _collections_of(r.json()) == {team}
            assert all(FACT[OTHER[team]] not in h["text"] for h in r.json()["hits"])
            first = http.post("/api/ask", json={"question": "When is the Orion project deadline?",
                                                "collection": [team]}).json()
            assert fact in first["answer"] and _collections_of(first) == {team}
            follow = http.post("/api/ask", json={"question": "Who leads it?", "collection": team,
                                                 "history": [["When is the Orion project deadline?",
                                                              first["answer"]]], "stream": True})
            final = json.loads(follow.text.strip().splitlines()[-1])["answer"]
            assert "Dana Whit" in final["answer"] and _collections_of(final) == {team}
        assert _collections_of(http.post("/api/search", json={"query": "Orion deadline", "k": 50}).json()) == \
            {"team-a", "team-b", "default"}  # no collection: every one


def test_v1_chat_completions_takes_the_collection_from_extra_body(server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "v1", api_key="main-key")
    for team, fact in FACT.items():
        messages = [{"role": "user", "content": "When is the Orion project deadline?"}]
        reply = client.chat.completions.create(model="rag", messages=messages, extra_body={"collection": team})
        assert fact in reply.choices[0].message.content
        assert _collections_of(reply.model_extra) == {team}
        messages += [{"role": "assistant", "content": reply.choices[0].message.content},
                     {"role": "user", "content": "Who leads it?"}]
        last = list(client.chat.completions.create(model="rag", messages=messages, stream=True,
                                                   extra_body={"collection": [team]}))[-1]
        assert _collections_of(last.model_extra) == {team}


def test_collections_are_listed_and_deleted_whole(server) -> None:
    with _http(server) as http:
        listed = {c["name"]: c for c in http.get("/api/collections").json()}
        assert set(listed) == {"default", "team-a", "team-b"} and listed["team-a"]["sources"] == 2
        assert {s["collection"] for s in http.get("/api/sources", params={"collection": "team-b"}).json()} == \
            {"team-b"}
        assert http.post("/api/ingest/text", json={"name": "x.txt", "text": "Temporary words about kites.",
                                                   "collection": "scratch"}).status_code == 200
        r = http.delete("/api/collections/scratch")
        assert r.status_code == 200 and r.json() == {"deleted": {"name": "scratch", "sources": 1, "chunks": 1}}
        r = http.delete("/api/collections/scratch")
        assert r.status_code == 404 and "existing collections: default, team-a, team-b" in r.json()["error"]["message"]


def test_bad_and_unknown_collection_names_are_one_sentence(server) -> None:
    with _http(server) as http:
        r = http.post("/api/search", json={"query": "Orion", "collection": "Team A"})
        assert r.status_code == 400 and "'Team A' is not valid" in r.json()["error"]["message"]
        r = http.post("/api/ask", json={"question": "Orion?", "collection": ["team-a", "nosuch"], "stream": True})
        assert r.status_code == 404
        assert r.json()["error"]["message"] == ("There is no collection named 'nosuch'; existing collections: "
                                                "default, team-a, team-b")
        r = http.post("/api/ingest/text", json={"name": "x.txt", "text": "words", "collection": "../x"})
        assert r.status_code == 400 and "'../x' is not valid" in r.json()["error"]["message"]


def test_a_key_bound_to_a_collection_sees_and_writes_only_its_collections(server) -> None:
    from openai import OpenAI, PermissionDeniedError

    with _http(server, "key-a") as http:
        hits = http.post("/api/search", json={"query": "When is the Orion project deadline?", "k": 50}).json()["hits"]
        assert hits and {h["collection"] for h in hits} == {"team-a"}
        assert {s["collection"] for s in http.get("/api/sources").json()} == {"team-a"}
        assert [c["name"] for c in http.get("/api/collections").json()] == ["team-a"]
        refused = [
            http.post("/api/search", json={"query": "Orion", "collection": "team-b"}),
            http.post("/api/ask", json={"question": "Orion?", "collection": ["team-a", "team-b"]}),
            http.post("/api/ask", json={"question": "Orion?", "collection": "team-b", "stream": True}),
            http.get("/api/sources", params={"collection": "team-b"}),
            http.delete("/api/sources/handbook.md", params={"collection": "team-b"}),
            http.delete("/api/collections/team-b"),
            http.post("/api/ingest/text", json={"name": "x.txt", "text": "words", "collection": "team-b"}),
            http.post("/api/ingest/wikipedia", json={"titles": ["Orion"], "collection": "default"}),
            http.get("/files/team-b/plan.pdf"),
            http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Orion?"}],
                                                    "collection": "team-b"}),
        ]
        for r in refused:
            assert r.status_code == 403, (r.request.url, r.text)
            message = r.json()["error"]["message"]
            assert message.startswith("This API key may use only the collection(s) team-a, not 'team-") or \
                message.startswith("This API key may use only the collection(s) team-a, not 'default'")
        # Nothing else is named to a bound key: not the other collections, nor their sources.
        r = http.post("/api/search", json={"query": "Orion", "collection": "nosuch"})
        assert r.status_code == 403
        assert http.get("/files/team-a/plan.pdf").status_code == 200
        assert http.get("/files/plan.pdf").status_code == 403  # the default collection is not key-a's
        health = http.get("/api/health")  # counting only key-a's chunks: the others' size is theirs
        assert health.status_code == 200
        assert health.json()["chunks"] == sum(c["chunks"] for c in http.get("/api/collections").json())
        with _http(server) as unbound:
            assert unbound.get("/api/health").json()["chunks"] > health.json()["chunks"]
        # The page and its Gradio API apply no binding: a bound key is refused there.
        page = http.get("/gradio_api/info")
        assert page.status_code == 403 and "/api/, /v1/ and /files/" in page.json()["error"]["message"]
    client = OpenAI(base_url=server.url + "v1", api_key="key-b")
    reply = client.chat.completions.create(model="rag", messages=[{"role": "user", "content":
                                                                   "When is the Orion project deadline?"}])
    assert FACT["team-b"] in reply.choices[0].message.content and _collections_of(reply.model_extra) == {"team-b"}
    with pytest.raises(PermissionDeniedError):
        client.chat.completions.create(model="rag", messages=[{"role": "user", "content": "Orion?"}],
                                       extra_body={"collection": "team-a"})
    with _http(server, "key-b") as http:
        # team-c is key-b's but holds nothing yet: named, it is unknown (listing only key-b's).
        r = http.post("/api/search", json={"query": "Orion", "collection": "team-c"})
        assert r.status_code == 404 and r.json()["error"]["message"].endswith("existing collections: team-b")
        assert http.delete("/api/sources/plan.pdf", params={"collection": "team-b"}).json() == {"deleted": 1}
    with _http(server, "wrong-key") as http:
        assert http.post("/api/search", json={"query": "Orion"}).status_code == 401


def test_bound_keys_are_checked_in_settings() -> None:
    from rag.errors import ConfigError
    from rag.settings import Settings

    assert Settings(collection_keys='{"k1": ["team-a", "team-b"], "k2": "x"}').key_collections == \
        {"k1": ("team-a", "team-b"), "k2": ("x",)}
    for bad in ('["team-a"]', '{"k1": []}', "not json", '{"k1": ["Team A"]}', '{" k1": ["a"]}'):
        with pytest.raises(ConfigError) as info:
            Settings(collection_keys=bad)
        assert "k1" not in str(info.value)  # a key is a secret: never in a message
    with pytest.raises(ConfigError, match="same as RAG_API_KEY"):
        Settings(api_key="k1", collection_keys='{"k1": ["a"]}')
    assert "k1" not in repr(Settings(collection_keys='{"k1": ["a"]}'))


def test_the_cli_goes_through_the_server_with_its_collection(server, tmp_path: Path) -> None:
    from rag.http.remote import RemoteRAG
    from rag.settings import Settings

    with RemoteRAG(server.url, Settings(api_key="main-key")) as remote:
        hits = remote.search("When is the Orion project deadline?", 20, collection="team-b")
        assert hits and {h.chunk.collection for h in hits} == {"team-b"}
        answer = remote.ask("When is the Orion project deadline?", collection=["team-a"])
        assert FACT["team-a"] in answer.text and {c.hit.chunk.collection for c in answer.citations} == {"team-a"}
        assert {c.name for c in remote.collections()} == {"default", "team-a", "team-b"}
        assert {s.collection for s in remote.sources(collection="team-a")} == {"team-a"}
