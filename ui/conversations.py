"""The page's saved conversations: a list of past chats to reopen (with their follow-up context),
rename and delete, over ``RAG.conversations`` (``rag.conversations_store``).

Every answered turn is saved as it is shown. With a login on, each user sees only their own
chats (Gradio's ``request.username``); without one, the page's chats are shared.
"""

from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from rag.errors import user_message
from rag.types import Conversation, ConversationTurn
from ui import render

Turns = list[dict[str, str]]


def _user(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) or None


def _problem(exc: Exception) -> str:
    return "⚠️ " + render.escape_md(user_message(exc, "page"))


def _turns(conversation: Conversation) -> Turns:
    return [{"question": t.question, "answer": t.answer, "markdown": t.markdown or render.escape_md(t.answer)}
            for t in conversation.turns]


class ConversationPanel:
    """The saved-conversations box of the Chat tab; :meth:`build` inside the Blocks, then :meth:`wire`.

    Args:
        store: the saved conversations (``RAG.conversations``).
        messages: how turns become the chatbot's messages (``ui.app``'s own).
    """

    def __init__(self, store: Any, messages: Callable[[Turns], list[dict[str, str]]]) -> None:
        self.store = store
        self.messages = messages

    def build(self) -> None:
        """The components (an accordion of the list and its buttons) and the open chat's id."""
        self.current = gr.State(None)
        with gr.Accordion("Saved conversations", open=True, elem_id="saved-chats"):
            self.saved = gr.Dropdown(choices=[], value=None, label="Reopen a past conversation",
                                     elem_id="saved-list", interactive=True)
            with gr.Row():
                self.open_btn = gr.Button("Open", size="sm", elem_id="open-chat")
                self.delete_btn = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-chat")
            with gr.Row(visible=False, elem_id="confirm-chat-delete") as self.confirm_row:
                self.confirm_md = gr.Markdown()
                self.yes_btn = gr.Button("Yes, delete it", size="sm", variant="stop", elem_id="confirm-delete-chat")
                self.no_btn = gr.Button("Cancel", size="sm", elem_id="cancel-delete-chat")
            with gr.Row():
                self.title = gr.Textbox(placeholder="New title", show_label=False, scale=3, elem_id="chat-title")
                self.rename_btn = gr.Button("Rename", size="sm", scale=1, elem_id="rename-chat")
            self.status = gr.Markdown(elem_id="saved-status")

    # -- what the chat calls ---------------------------------------------------------------
    def choices(self, request: gr.Request | None = None, selected: str | None = None) -> Any:
        """The list, newest first, labelled with the title and when it was last used."""
        try:
            saved = self.store.list(_user(request))
        except Exception as exc:
            gr.Warning(user_message(exc, "page"))
            return gr.update()
        return gr.update(choices=[(f"{c.title} · {render.relative_time(c.updated_at)}", c.id) for c in saved],
                         value=selected)

    def remember(self, conversation_id: str | None, question: str, answer: str, markdown: str,
                 request: gr.Request | None, collections: list[str] | None = None) -> str | None:
        """Save an answered turn (a new conversation when none is open); the conversation's id.

        Args:
            collections: the collections the question was asked within (empty: all).
        """
        turn = ConversationTurn(question, answer, markdown, tuple(collections or ()))
        try:
            saved = self.store.add_turn(conversation_id, turn, _user(request))
        except Exception as exc:  # the answer is shown anyway; only saving it failed
            gr.Warning("This turn was not saved: " + user_message(exc, "page"))
            return conversation_id
        return saved.id

    # -- the box's own events --------------------------------------------------------------
    def wire(self, chatbot: Any, turns: Any, sources_panel: Any, demo: Any, ask_in: Any,
             existing: Callable[[], list[str]]) -> None:
        """Attach the events: open, rename, delete (after a confirmation), and the list on load.

        Args:
            ask_in: the chat's collection picker; a reopened chat asks its last turn's collections.
            existing: the names of the collections that exist now.
        """
        private = {"api_visibility": "private"}

        def open_saved_chat(chosen: str | None, request: gr.Request):
            if not chosen:
                gr.Warning("Choose a conversation in the list first.")
                return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), ""
            try:
                conversation = self.store.get(chosen, _user(request))
                names = existing()
            except Exception as exc:
                return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), _problem(exc)
            shown = _turns(conversation)
            asked = list(conversation.turns[-1].collections) if conversation.turns else []
            kept = [n for n in asked if n in names]  # a collection deleted since is dropped, and said so
            gone = [n for n in asked if n not in names]
            note = f" The collection(s) {', '.join(gone)} no longer exist." if gone else ""
            return (self.messages(shown), shown, conversation.id, render.SOURCES_PLACEHOLDER,
                    gr.update(choices=names, value=kept),
                    f"Reopened **{render.escape_md(conversation.title)}** ({len(shown)} turn(s)); "
                    f"follow-up questions continue it.{render.escape_md(note)}")

        def rename_saved_chat(chosen: str | None, title: str, request: gr.Request):
            if not chosen:
                gr.Warning("Choose a conversation in the list first.")
                return gr.update(), gr.update(), ""
            try:
                renamed = self.store.rename(chosen, title, _user(request))
            except Exception as exc:
                return gr.update(), gr.update(), _problem(exc)
            return self.choices(request, renamed.id), "", f"Renamed to **{render.escape_md(renamed.title)}**."

        def confirm_delete_saved_chat(chosen: str | None, request: gr.Request):
            if not chosen:
                gr.Warning("Choose a conversation in the list first.")
                return gr.update(visible=False), ""
            try:
                title = self.store.get(chosen, _user(request)).title
            except Exception as exc:
                return gr.update(visible=False), _problem(exc)
            return gr.update(visible=True), f"Delete **{render.escape_md(title)}** for good?"

        def delete_saved_chat(chosen: str | None, current: str | None, request: gr.Request):
            try:
                self.store.delete(chosen or "", _user(request))
            except Exception as exc:
                return gr.update(visible=False), gr.update(), current, _problem(exc)
            # Deleting the open chat leaves its messages on screen, but a new question starts a new one.
            return (gr.update(visible=False), self.choices(request), None if current == chosen else current,
                    "Deleted the conversation.")

        self.open_btn.click(open_saved_chat, [self.saved],
                            [chatbot, turns, self.current, sources_panel, ask_in, self.status], **private)
        self.rename_btn.click(rename_saved_chat, [self.saved, self.title], [self.saved, self.title, self.status],
                              **private)
        self.delete_btn.click(confirm_delete_saved_chat, [self.saved], [self.confirm_row, self.confirm_md], **private)
        self.no_btn.click(lambda: (gr.update(visible=False), ""), None, [self.confirm_row, self.status], **private)
        self.yes_btn.click(delete_saved_chat, [self.saved, self.current], [self.confirm_row, self.saved, self.current,
                                                               self.status], **private)
        demo.load(self.choices, None, [self.saved], **private)
