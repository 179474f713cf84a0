"""ConversationMemory: plugs the Store into chat.ChatSession as its PromptBuilder and ReplyRecorder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from companion.memory.context import Prompt, build_prompt
from companion.memory.extract import Change, extract_and_store_memories
from companion.memory.store import ReplyStatus, Store
from companion.persona.prompt import greetings

CountTokens = Callable[[str], int]
Generate = Callable[[list[dict[str, str]]], str]


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
        self._user_text: str | None = None
        self._user_id: int | None = None
        self._reply_id: int | None = None

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
        self.store.add_message(self.conversation_id, "assistant", text, tokens=self.count_tokens(text))
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

    def user_message(self, text: str, n_tokens: int) -> None:
        """Commit the user's message the moment it is sent."""
        self._user_text = text
        self._user_id = self.store.add_message(self.conversation_id, "user", text, tokens=n_tokens)

    def reply_started(self, engine: str | None = None) -> None:
        self._reply_id = self.store.start_reply(self.conversation_id, engine=engine)

    def reply_checkpoint(self, text: str) -> None:
        """Save the streamed text; text checkpointed before it is shown survives a crash."""
        if self._reply_id is not None:
            self.store.checkpoint_reply(self._reply_id, text)

    def reply_finished(self, text: str, status: str, stats: dict) -> None:
        """Finalize the reply, then extract and store memories from the user's message."""
        if self._reply_id is not None:
            gen = stats.get("generated_tokens") if stats else None
            self.store.finish_reply(
                self._reply_id, text, status=cast(ReplyStatus, status if status in ("done", "stopped", "error") else "error"),
                stats=dict(stats) if stats else None, tokens=gen if isinstance(gen, int) else None,
                engine=str(stats["engine"]) if stats and "engine" in stats else None,
            )
            self._reply_id = None
        self.last_changes = []
        if self.memory_enabled and self._user_text:
            self.last_changes = extract_and_store_memories(
                self.store, self.character_id, self._user_text, source_message_id=self._user_id,
                generate=self.generate if self.extract_with_model else None,
            )
        self._user_text = None
