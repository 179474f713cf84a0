"""ConversationMemory: plugs the Store into chat.ChatSession as its PromptBuilder and ReplyRecorder.

When the user's message is stored it is indexed for recall, its explicit requests act at once
("remember …", "forget …": memory.requests), and the rules and the classifier extract facts
from the rest. The notes returned for the requests are shown by the chat ("remembered: …",
with an Undo) whatever the model replies. After the reply, the model may propose more facts
(extract_with_model); a reply itself never becomes a fact.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, cast

from companion.memory.context import Prompt, build_prompt
from companion.memory.dates import said_on
from companion.memory.extract import (
    Change,
    extract_and_store_memories,
    model_candidates,
    remember,
    supersede_said,
)
from companion.memory.forgetting import forget_about, forget_messages
from companion.memory.notes import MemoryNote
from companion.memory.passages import sentences
from companion.memory.requests import Request, find_requests
from companion.memory.store import Removed, ReplyStatus, Store
from companion.persona.prompt import greetings

NOTE_CHARS = 160  # a note longer than this is cut (the full facts are in the memory panel)
MODEL_EXTRACTION_PARAMETERS = 1_000_000_000  # "auto" asks the chat model for facts from this size on
_undo_ids = itertools.count(1)

CountTokens = Callable[[str], int]
Generate = Callable[[list[dict[str, str]]], str]


def wants_model_extraction(setting: str, parameters: int) -> bool:
    """Settings.memory_model_extraction ("auto" | "on" | "off") for a model of this size: the
    135M default proposes facts the user never said often enough that the guard alone is not
    worth its cost; a 1B+ model is asked (its facts still need the user's words behind them)."""
    return setting == "on" or (setting == "auto" and parameters >= MODEL_EXTRACTION_PARAMETERS)


class ConversationMemory:
    """One conversation of one character, persisted; pass it to ChatSession as both
    `prompt_builder=` and `recorder=`.

    The database is the source of truth for the history: the `history` argument that
    ChatSession passes to the builder is ignored.
    """

    def __init__(
        self,
        store: Store,
        *,
        count_tokens: CountTokens,
        character: int | str | None = None,  # id or name; None = the default character
        conversation_id: int | None = None,  # None = start a new conversation
        generate: Generate | None = None,  # the local model, for summaries (and extraction if asked)
        count_messages: Callable[[list[dict[str, str]]], int] | None = None,  # exact templated count
        user_name: str = "User",
        memory_enabled: bool = True,
        memory_budget: int = 256,
        extract_with_model: bool = False,  # also ask the model for facts (rules always run)
    ) -> None:
        self.store = store
        self.count_tokens = count_tokens
        self.generate = generate
        self.count_messages = count_messages
        self.user_name = user_name
        self.memory_enabled = memory_enabled
        self.memory_budget = memory_budget
        self.extract_with_model = extract_with_model
        if conversation_id is not None:
            self.conversation_id = conversation_id
            self.character_id = int(store.conversation(conversation_id)["character_id"])
        else:
            if isinstance(character, int):
                self.character_id = store.character(character).id
            else:
                self.character_id = store.ensure_character(character)
            self.conversation_id = store.new_conversation(self.character_id)
        self.last_prompt: Prompt | None = None
        self.last_changes: list[Change] = []
        self.last_notes: list[MemoryNote] = []
        self._user_text: str | None = None
        self._user_id: int | None = None
        self._reply_id: int | None = None
        self._forget_turn = False  # the user asked to forget: the reply (which may repeat it) is not indexed
        self._undo: dict[int, tuple[str, Callable[[], None]]] = {}  # undo id -> (what it undoes, how)

    def new_conversation(self) -> int:
        """Start a fresh conversation with the same character; the old one stays stored."""
        self.conversation_id = self.store.new_conversation(self.character_id)
        return self.conversation_id

    # --- what the UI shows --------------------------------------------------------------

    def greet(self, index: int = 0) -> str | None:
        """Store and return the character's greeting if the conversation is still empty."""
        if self.store.messages(self.conversation_id):
            return None
        options = greetings(self.store.character(self.character_id).card, self.user_name)
        if not options:
            return None
        text = options[index % len(options)]
        self.store.add_message(self.conversation_id, "assistant", text, tokens=self.count_tokens(text), recall_text="")
        return text

    def history(self) -> list[dict[str, Any]]:
        """Stored messages (id, role, content, status...), for the chat view or ChatSession.history."""
        return self.store.messages(self.conversation_id)

    # --- PromptBuilder ------------------------------------------------------------------

    def __call__(self, history: Sequence[dict[str, str]], user_text: str, budget_tokens: int) -> list[dict[str, str]]:
        """Messages for the reply to user_text (not stored yet), within budget_tokens."""
        self.last_prompt = build_prompt(
            self.store, self.conversation_id, count_tokens=self.count_tokens, budget_tokens=budget_tokens,
            user_text=user_text, user_name=self.user_name, memory_enabled=self.memory_enabled,
            memory_budget=self.memory_budget, generate=self.generate, count_messages=self.count_messages,
        )
        return self.last_prompt.messages

    # --- ReplyRecorder ------------------------------------------------------------------

    def user_message(self, text: str, n_tokens: int) -> list[MemoryNote]:
        """Commit the user's message the moment it is sent, act on its explicit requests and
        remember its facts; returns a note per request (for the chat to show)."""
        requests = find_requests(text) if self.memory_enabled else []
        forgets = [r for r in requests if r.action == "forget"]
        asked = {r.sentence for r in requests}
        previous = self._previous_user_message()
        recall_text = " ".join(p for p in sentences(text) if p not in {r.sentence for r in forgets})
        self._user_text = text
        self._user_id = uid = self.store.add_message(
            self.conversation_id, "user", text, tokens=n_tokens, recall_text=recall_text if self.memory_enabled else "")
        self._forget_turn = bool(forgets)
        self.last_changes, self.last_notes = [], []
        if not self.memory_enabled:
            return []
        today = said_on(self.store.message(uid)["created_at"])
        for r in forgets:
            self.last_notes.append(self._forget(r, previous, uid))
        rest = " ".join(p for p in sentences(text) if p not in asked)
        if rest:
            self.last_changes += extract_and_store_memories(
                self.store, self.character_id, rest, source_message_id=uid, today=today)
            supersede_said(self.store, self.character_id, rest, uid)
        for r in requests:
            if r.action == "remember":
                content = r.content or (previous["content"] if previous else "")
                if content:
                    changes = extract_and_store_memories(self.store, self.character_id, content,
                                                         source_message_id=uid, today=today, forced=True)
                    self.last_changes += changes
                    self.last_notes.append(self._remembered(changes))
        return [n for n in self.last_notes if n.text]

    def _previous_user_message(self) -> dict[str, Any] | None:
        for m in reversed(self.store.messages(self.conversation_id)):
            if m["role"] == "user":
                return m
        return None

    def _forget(self, request: Request, previous: dict[str, Any] | None, uid: int) -> MemoryNote:
        if request.content:
            removed = forget_about(self.store, self.character_id, request.content, keep_messages={uid})
        elif previous is not None:
            removed = forget_messages(self.store, {int(previous["id"])})
        else:
            removed = Removed()
        if not removed:
            return MemoryNote("forgot", "")
        what = [m["text"] for m in removed.memories] or [e["text"] for e in removed.episodes if e["role"] == "user"]
        text = _short("; ".join(what) or request.content)

        def revert() -> None:
            self.store.restore(removed)

        return MemoryNote("forgot", text, self._register(f"forgot: {text}", revert))

    def _remembered(self, changes: list[Change]) -> MemoryNote:
        text = _short("; ".join(c.text for c in changes))
        undo = [c for c in changes if c.action in ("add", "update")]

        def revert() -> None:
            for c in undo:
                if c.action == "add":
                    self.store.forget(memory_ids=[c.memory_id], with_sources=False)
                elif c.previous is not None:
                    self.store.update_memory(c.memory_id, text=c.previous)

        return MemoryNote("remembered", text, self._register(f"remembered: {text}", revert) if undo else 0)

    def _register(self, what: str, revert: Callable[[], None]) -> int:
        undo_id = next(_undo_ids)
        self._undo[undo_id] = (what, revert)
        return undo_id

    def undo(self, undo_id: int) -> MemoryNote | None:
        """Revert what a note's request changed (the page's Undo); None if unknown or done."""
        entry = self._undo.pop(undo_id, None)
        if entry is None:
            return None
        what, revert = entry
        revert()
        return MemoryNote("undone", what)

    def reply_started(self, engine: str | None = None) -> None:
        self._reply_id = self.store.start_reply(self.conversation_id, engine=engine)

    def reply_checkpoint(self, text: str) -> None:
        """Save the streamed text; text checkpointed before it is shown survives a crash."""
        if self._reply_id is not None:
            self.store.checkpoint_reply(self._reply_id, text)

    def reply_finished(self, text: str, status: str, stats: dict) -> None:
        """Finalize the reply (indexed for recall, unless it answered a "forget"), then let the
        model propose facts from the user's message when asked to."""
        if self._reply_id is not None:
            gen = stats.get("generated_tokens") if stats else None
            self.store.finish_reply(
                self._reply_id, text, status=cast(ReplyStatus, status if status in ("done", "stopped", "error") else "error"),
                stats=dict(stats) if stats else None, tokens=gen if isinstance(gen, int) else None,
                engine=str(stats["engine"]) if stats and "engine" in stats else None,
                index=self.memory_enabled and not self._forget_turn,
            )
            self._reply_id = None
        if self.memory_enabled and self._user_text and self.extract_with_model and self.generate is not None:
            found = [c for c in model_candidates(self._user_text, self.generate)
                     if all(c.text != ch.text for ch in self.last_changes)]
            self.last_changes += remember(self.store, self.character_id, found, self._user_id)
        self._user_text = None


def _short(text: str) -> str:
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 1].rsplit(" ", 1)[0] + "…"
