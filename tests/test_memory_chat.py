"""ConversationMemory plugged into the real ChatSession (SmolLM2 on the reference engine)."""

from __future__ import annotations

from companion.chat import ChatSession, ReplyDone
from companion.memory import ConversationMemory, Store
from companion.sampling import SamplingParams


def test_chat_session_persists_turns_and_remembers(model, reference_weights, embedder):
    from companion.engines.reference import ReferenceEngine

    def count_tokens(text: str) -> int:
        return len(model.tokenizer.encode(text, parse_special=False))

    def count_messages(messages: list[dict]) -> int:
        return len(model.tokenizer.encode(model.chat_template.render(messages, add_generation_prompt=True)))

    with Store(embedder=embedder) as store:
        mem = ConversationMemory(store, count_tokens=count_tokens, count_messages=count_messages)
        assert mem.greet().startswith("Hi User, I'm Mira.")
        chat = ChatSession(model, ReferenceEngine(reference_weights, 512), SamplingParams.greedy_params(),
                           max_new_tokens=6, prompt_builder=mem, recorder=mem)
        done = [e for e in chat.send("My name is Sam and I live in Porto.") if isinstance(e, ReplyDone)][0]
        assert done.status == "done"
        msgs = store.messages(mem.conversation_id)
        assert [m["role"] for m in msgs] == ["assistant", "user", "assistant"]
        assert msgs[1]["content"] == "My name is Sam and I live in Porto." and msgs[1]["tokens"] > 0
        assert msgs[2]["content"] == done.text and msgs[2]["status"] == "done" and msgs[2]["engine"] == "reference"
        assert {c.text for c in mem.last_changes} == {"The user's name is Sam.", "The user lives in Porto."}

        list(chat.send("Where do I live?"))
        prompt = mem.last_prompt
        assert prompt.tokens == count_messages(prompt.messages) <= 512 - 6
        assert "The user lives in Porto." in prompt.messages[0]["content"]
        assert prompt.messages[-1] == {"role": "user", "content": "Where do I live?"}


def test_an_explicit_request_is_acknowledged_before_the_reply(model, reference_weights, embedder):
    from companion.engines.reference import ReferenceEngine
    from companion.memory.notes import MemoryNote

    def count_tokens(text: str) -> int:
        return len(model.tokenizer.encode(text, parse_special=False))

    with Store(embedder=embedder) as store:
        mem = ConversationMemory(store, count_tokens=count_tokens)
        chat = ChatSession(model, ReferenceEngine(reference_weights, 512), SamplingParams.greedy_params(),
                           max_new_tokens=4, prompt_builder=mem, recorder=mem)
        chat.memory = mem  # as companion.app.attach_memory does
        events = list(chat.send("Oh and please remember my passport number ends in 4417"))
        notes = [e for e in events if isinstance(e, MemoryNote)]
        assert [n.action for n in notes] == ["remembered"] and "4417" in notes[0].text
        assert events.index(notes[0]) < min(i for i, e in enumerate(events) if not isinstance(e, MemoryNote))
        assert chat.undo_memory(notes[0].undo_id).action == "undone"
        assert not any("4417" in m["text"] for m in store.memories(mem.character_id))
