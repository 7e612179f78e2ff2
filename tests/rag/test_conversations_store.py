"""Saved conversations on disk: reopened with their history, renamed, deleted, per user, capped, atomic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag.conversations_store import ConversationStore
from rag.errors import NotFoundError, RagError
from rag.settings import Settings
from rag.types import ConversationTurn


def _store(tmp_path: Path, **caps) -> ConversationStore:
    return ConversationStore(tmp_path / "conversations", Settings(data_dir=tmp_path, **caps))


def test_a_chat_is_saved_reopened_with_its_history_renamed_and_deleted(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = store.add_turn(None, ConversationTurn("Who painted the lighthouse red?", "Marta Velasquez [1].", "**md**"))
    assert first.title == "Who painted the lighthouse red?" and len(first.id) == 32
    second = store.add_turn(first.id, ConversationTurn("When?", "In 1911 [1].", collections=("team-a", "team-b")))
    assert second.id == first.id
    again = ConversationStore(tmp_path / "conversations", Settings(data_dir=tmp_path)).get(first.id)
    assert again.history == [("Who painted the lighthouse red?", "Marta Velasquez [1]."), ("When?", "In 1911 [1].")]
    assert again.turns[0].markdown == "**md**"
    # each turn keeps the collections it asked (empty: all), so a reopened chat asks them again
    assert [t.collections for t in again.turns] == [(), ("team-a", "team-b")]
    other = store.add_turn(None, ConversationTurn("Another question", "Another answer"))
    assert [c.id for c in store.list()] == [other.id, first.id]  # most recently updated first

    renamed = store.rename(first.id, "  The   lighthouse ")
    assert renamed.title == "The lighthouse" and store.get(first.id).title == "The lighthouse"
    with pytest.raises(RagError, match="title is empty"):
        store.rename(first.id, "   ")
    store.delete(first.id)
    assert [c.id for c in store.list()] == [other.id]
    with pytest.raises(NotFoundError, match="already be deleted"):
        store.delete(first.id)
    with pytest.raises(NotFoundError, match="it may have been deleted"):
        store.get(first.id)


def test_users_see_only_their_own_and_ids_cannot_leave_the_folder(tmp_path: Path) -> None:
    store = _store(tmp_path)
    alice = store.add_turn(None, ConversationTurn("Alice asks", "a"), user="alice")
    store.add_turn(None, ConversationTurn("Shared", "s"))
    assert [c.title for c in store.list("alice")] == ["Alice asks"]
    assert [c.title for c in store.list("bob")] == []
    assert [c.title for c in store.list()] == ["Shared"]
    with pytest.raises(NotFoundError):
        store.get(alice.id, user="bob")
    for bad in ("../../etc/passwd", "x" * 32, "", alice.id + "/.."):
        with pytest.raises(NotFoundError, match="is not a saved conversation's id"):
            store.get(bad, user="alice")


def test_sizes_are_capped(tmp_path: Path) -> None:
    store = _store(tmp_path, max_conversations=3, max_history_turns=4, max_turn_chars=50,
                   conversation_title_chars=10)
    chat = store.add_turn(None, ConversationTurn("q0 " + "x" * 100, "a0 " + "y" * 100))
    assert len(chat.title) == 10 and chat.title.endswith("…")
    assert len(chat.turns[0].question) == 50 and len(chat.turns[0].answer) == 50
    for i in range(1, 7):
        chat = store.add_turn(chat.id, ConversationTurn(f"q{i}", f"a{i}"))
    assert [t.question for t in store.get(chat.id).turns] == ["q3", "q4", "q5", "q6"]
    made = [store.add_turn(None, ConversationTurn(f"chat {i}", "a")).id for i in range(4)]
    assert {c.id for c in store.list()} == set(made[1:])  # the least recently updated went


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path, monkeypatch) -> None:
    store = _store(tmp_path)
    chat = store.add_turn(None, ConversationTurn("Kept question", "Kept answer"))
    path = tmp_path / "conversations" / "_" / f"{chat.id}.json"
    before = path.read_bytes()

    def crash(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.add_turn(chat.id, ConversationTurn("Lost", "Lost"))
    monkeypatch.undo()
    assert path.read_bytes() == before and json.loads(before)["turns"][0]["question"] == "Kept question"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
