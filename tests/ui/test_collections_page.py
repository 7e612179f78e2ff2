"""Collections through the page's API (gradio_client on the real server): upload into one, ask some, list, delete.

One server for the module: the two teams' near-identical handbooks are uploaded as files of the
same name into team-a and team-b, and no answer, follow-up or citation of one shows the other's.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from tests.rag.test_collections import FACT, HANDBOOK, OTHER


@pytest.fixture(scope="module")
def page(embedder, tmp_path_factory: pytest.TempPathFactory):
    from gradio_client import Client

    from rag import RAG
    from rag.http.app import create_server

    root = tmp_path_factory.mktemp("collections-page")
    server = create_server(RAG(root / "data"), "127.0.0.1", 0).start()
    client = Client(server.url, verbose=False, download_files=False)
    for team, fact in FACT.items():
        path = root / team / "handbook.md"
        path.parent.mkdir()
        path.write_text(HANDBOOK.format(deadline=fact), encoding="utf-8")
        [result] = client.predict([handle_file(str(path))], "", team, api_name="/upload_into")["files"]
        assert (result["source"], result["collection"], result["status"]) == ("handbook.md", team, "added"), result
    yield server, client
    client.close()
    server.stop()


def test_a_chat_asks_only_the_chosen_collections(page) -> None:
    server, client = page
    for team, fact in FACT.items():
        first = client.predict("When is the Orion project deadline?", None, None, None, [team], api_name="/ask")
        assert fact in first["answer"] and FACT[OTHER[team]] not in first["answer"]
        assert {c["collection"] for c in first["citations"] + first["sources"]} == {team}
        # Citations open the viewer on that collection's own copy, the passage marked.
        assert all(c["link"] == f"/view/handbook.md?collection={team}&chunk={c['id']}#cited" for c in first["citations"])
        shown = httpx.get(server.url.rstrip("/") + first["citations"][0]["link"].split("#")[0], timeout=60)
        assert shown.status_code == 200 and '<mark id="cited">' in shown.text and fact in shown.text
        assert f'href="/files/{team}/handbook.md"' in shown.text
        follow = client.predict("Who leads it?", [["When is the Orion project deadline?", first["answer"]]], None,
                                None, [team], api_name="/ask")
        assert "Dana Whit" in follow["answer"]
        assert {c["collection"] for c in follow["citations"] + follow["sources"]} == {team}
    everything = client.predict("When is the Orion project deadline?", None, 10, api_name="/ask")
    assert {c["collection"] for c in everything["sources"]} == {"team-a", "team-b"}  # default: all


def test_collections_are_listed_shown_in_sources_and_deleted_per_collection(page) -> None:
    server, client = page
    assert client.predict(api_name="/collections") == [{"name": "team-a", "sources": 1, "chunks": 2},
                                                       {"name": "team-b", "sources": 1, "chunks": 2}]
    assert sorted((s["collection"], s["source"]) for s in client.predict(api_name="/sources")) == \
        [("team-a", "handbook.md"), ("team-b", "handbook.md")]
    r = httpx.get(server.url + "files/team-b/handbook.md")
    assert r.status_code == 200 and FACT["team-b"] in r.text
    with pytest.raises(AppError, match="No source named 'handbook.md' is indexed; indexed sources: none yet"):
        client.predict("handbook.md", "", api_name="/delete")  # not in the default collection


def test_bad_names_on_the_page_are_one_sentence(page, tmp_path: Path) -> None:
    _, client = page
    with pytest.raises(AppError, match="'Team A' is not valid: use 1 to 64 lower-case letters"):
        client.predict("Orion?", None, None, None, ["Team A"], api_name="/ask")
    with pytest.raises(AppError, match="There is no collection named 'nosuch'; existing collections: team-a, team-b"):
        client.predict("Orion?", None, None, None, ["nosuch"], api_name="/ask")
    note = tmp_path / "note.txt"
    note.write_text("Kites fly on the beach.", encoding="utf-8")
    with pytest.raises(AppError, match="'a/b' is not valid"):
        client.predict([handle_file(str(note))], "", "a/b", api_name="/upload_into")
    assert [c["name"] for c in client.predict(api_name="/collections")] == ["team-a", "team-b"]
    # /upload (two values, as raw HTTP callers send it) still goes into the default collection.
    [plain] = client.predict([handle_file(str(note))], "", api_name="/upload")["files"]
    assert (plain["collection"], plain["status"]) == ("default", "added")
    assert client.predict("note.txt", "", api_name="/delete")["chunks"] == 1


def _run_event(base: str, index: int, trigger: int | None, data: list, session: str) -> tuple[dict, list[dict]]:
    """Join the queue for one of the page's events as its browser does; its completion and the messages before it."""
    with httpx.Client(base_url=base, timeout=60) as http:
        joined = http.post("/gradio_api/queue/join", json={"data": data, "fn_index": index, "trigger_id": trigger,
                                                            "session_hash": session, "event_data": None})
        assert joined.status_code == 200, joined.text
        seen: list[dict] = []
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for message in (json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")):
                if message.get("msg") == "process_completed":
                    return message, seen
                seen.append(message)
    raise AssertionError(f"the event ended without completing: {seen}")


def test_the_page_timer_takes_choices_removed_a_moment_ago(page) -> None:
    """A tick can carry what the page still shows after a delete: it refreshes, never errors."""
    server, _ = page
    base = server.url.rstrip("/")
    config = httpx.get(f"{base}/config", timeout=60).json()
    [(index, timer)] = [(i, d["targets"][0][0]) for i, d in enumerate(config["dependencies"])
                        if d["targets"] and d["targets"][0][1] == "tick"]
    # seen sources (state), the delete choice, the sources to ask, the collections to ask: all gone.
    stale = [None, "team-c/gone.md", ["gone.md"], ["team-c"]]
    done, _ = _run_event(base, index, timer, stale, "stale-tick")
    assert done["success"], done["output"]
    _, delete_choice, ask_sources, ask_collections, *_ = done["output"]["data"]
    assert delete_choice["value"] is None and ask_sources["value"] == [] and ask_collections["value"] == []
    assert "team-a/handbook.md" in [value for _, value in delete_choice["choices"]]


def test_a_question_asked_with_choices_removed_a_moment_ago_names_them(page) -> None:
    """Asked the instant after a delete, before the page's refresh: one sentence, the question kept."""
    server, _ = page
    base = server.url.rstrip("/")
    config = httpx.get(f"{base}/config", timeout=60).json()
    kinds = {c["id"]: c["type"] for c in config["components"]}
    chats = [i for i, d in enumerate(config["dependencies"])
             if [kinds[x] for x in d["inputs"]] == ["textbox", "state", "slider", "dropdown", "dropdown", "state"]]
    assert len(chats) == 2, chats  # Enter and the Ask button run the same chat
    question = "When is the Orion project deadline?"
    # question, turns (state), k, the sources to ask, the collections to ask, the conversation (state)
    for session, sources, collections, said in (
            ("stale-source", ["gone.md"], [], "The source 'gone.md' is not indexed; indexed sources: handbook.md"),
            ("stale-collection", [], ["team-c"],
             "There is no collection named 'team-c'; existing collections: team-a, team-b")):
        done, messages = _run_event(base, chats[0], None, [question, None, 5, sources, collections, None], session)
        assert done["success"], done["output"]
        shown, _, _, box, *_ = done["output"]["data"]
        assert said in json.dumps(shown), shown  # in the chat, one sentence
        warnings = [m["log"] for m in messages if m.get("msg") == "log"]
        assert len(warnings) == 1 and said in warnings[0], warnings  # and as one warning
        assert box == question  # the question stays in the box
