"""Saved conversations: each chat a JSON file under ``DATA_DIR/conversations/<user>/``, written atomically.

The page keeps every chat here as it goes, lists them, reopens one with its history (so
follow-ups resolve against its earlier turns, as before), renames and deletes them; the same
calls serve Python users (``RAG.conversations``).

Per user: with a login on, each user name has its own folder (a digest of the name, so any
name is a safe folder name); without one there is one shared folder, ``_``. Sizes are capped
by ``rag.settings``: ``max_conversations`` per user (saving one more drops the least recently
updated), ``max_history_turns`` turns per chat (the oldest go: they are the ones a follow-up
no longer sends), ``max_turn_chars`` per question and answer, ``conversation_title_chars``
per title. A write goes to a temporary file in the same folder, is fsynced and renamed over
the old one, so a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from rag.errors import NotFoundError, RagError
from rag.settings import Settings
from rag.types import Conversation, ConversationTurn

log = logging.getLogger(__name__)

_ID = re.compile(r"[0-9a-f]{32}")
SHARED = "_"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class ConversationStore:
    """The saved conversations of one data directory.

    Args:
        root: the folder (``DATA_DIR/conversations``).
        settings: the caps (``max_conversations``, ``max_history_turns``, ``max_turn_chars``,
            ``conversation_title_chars``).
    """

    def __init__(self, root: str | Path, settings: Settings) -> None:
        self.root = Path(root)
        self.settings = settings

    # -- where -------------------------------------------------------------------------------
    def _folder(self, user: str | None) -> Path:
        name = SHARED if not user else hashlib.sha256(user.encode("utf-8")).hexdigest()[:24]
        return self.root / name

    def _path(self, user: str | None, conversation_id: str) -> Path:
        if not _ID.fullmatch(conversation_id or ""):
            raise NotFoundError(str(conversation_id)[:40], f"{str(conversation_id)[:40]!r} is not a saved "
                                "conversation's id; choose one from the list of saved conversations")
        return self._folder(user) / f"{conversation_id}.json"

    # -- reading -----------------------------------------------------------------------------
    def list(self, user: str | None = None) -> list[Conversation]:
        """The user's saved conversations, most recently updated first (unreadable files are skipped)."""
        folder = self._folder(user)
        found = []
        for path in folder.glob("*.json") if folder.is_dir() else ():
            try:
                found.append(Conversation.from_dict(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("skipping unreadable conversation %s: %s", path.name, exc)
        return sorted(found, key=lambda c: (c.updated_at, c.id), reverse=True)

    def get(self, conversation_id: str, user: str | None = None) -> Conversation:
        """One saved conversation.

        Raises:
            NotFoundError: there is none with that id for this user.
        """
        path = self._path(user, conversation_id)
        try:
            return Conversation.from_dict(json.loads(path.read_text("utf-8")))
        except FileNotFoundError:
            raise NotFoundError(conversation_id, f"No saved conversation has the id {conversation_id}; it may have "
                                "been deleted; choose one from the list") from None

    # -- writing -----------------------------------------------------------------------------
    def add_turn(self, conversation_id: str | None, turn: ConversationTurn, user: str | None = None) -> Conversation:
        """Save a turn at the end of a conversation, or start a new one (``conversation_id`` None).

        Returns:
            The conversation as saved (a new one is titled after its first question).
        """
        s = self.settings
        turn = ConversationTurn(_cut(turn.question, s.max_turn_chars), _cut(turn.answer, s.max_turn_chars),
                                turn.markdown if len(turn.markdown) <= 2 * s.max_turn_chars else "",
                                turn.collections[:s.max_collection_filters])
        if conversation_id is None:
            now = _now()
            conversation = Conversation(uuid.uuid4().hex, self._title(turn.question), now, now)
        else:
            conversation = self.get(conversation_id, user)
        turns = (*conversation.turns, turn)[-s.max_history_turns:]
        return self._write(user, replace(conversation, turns=turns, updated_at=_now()))

    def rename(self, conversation_id: str, title: str, user: str | None = None) -> Conversation:
        """Give a saved conversation another title.

        Raises:
            RagError: the title is empty.
            NotFoundError: no such conversation.
        """
        title = " ".join((title or "").split())
        if not title:
            raise RagError("The new title is empty; type a title for the conversation")
        return self._write(user, replace(self.get(conversation_id, user), title=self._title(title)))

    def delete(self, conversation_id: str, user: str | None = None) -> None:
        """Delete a saved conversation.

        Raises:
            NotFoundError: no such conversation.
        """
        path = self._path(user, conversation_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFoundError(conversation_id, f"No saved conversation has the id {conversation_id}; it may "
                                "already be deleted") from None

    def _title(self, text: str) -> str:
        return _cut(" ".join(text.split()) or "Untitled", self.settings.conversation_title_chars)

    def _write(self, user: str | None, conversation: Conversation) -> Conversation:
        folder = self._folder(user)
        folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(conversation.to_dict(), ensure_ascii=False).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, folder / f"{conversation.id}.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._prune(user, keep=conversation.id)
        return conversation

    def _prune(self, user: str | None, keep: str) -> None:
        """Drop the least recently updated conversations beyond ``max_conversations``."""
        saved = self.list(user)
        for old in [c for c in saved if c.id != keep][max(self.settings.max_conversations - 1, 0):]:
            (self._folder(user) / f"{old.id}.json").unlink(missing_ok=True)
