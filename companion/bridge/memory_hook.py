"""The memory panel's data source: the SQLite store of companion.memory, seen through the
bridge's MemoryItem type (the page never sees database rows)."""

from __future__ import annotations

from typing import Any

from companion.bridge.messages import MemoryItem
from companion.memory.recall import recall


class StoreMemoryHook:
    """list / forget / edit for one character's memories (BridgeServer(memory=...))."""

    def __init__(self, store: Any, character_id: int, limit: int = 200):
        self.store = store
        self.character_id = character_id
        self.limit = limit

    def _item(self, row: dict[str, Any]) -> MemoryItem:
        return MemoryItem(
            id=int(row["id"]),
            text=str(row["text"]),
            created=str(row.get("updated_at") or row.get("created_at") or ""),
            pinned=bool(row.get("pinned")),
        )

    def list(self, query: str) -> list[MemoryItem]:
        if query.strip():
            rows = recall(self.store, self.character_id, query, limit=50, sources=("fact",))  # ids are memory ids
        else:
            rows = self.store.memories(self.character_id)[: self.limit]
        return [self._item(r) for r in rows]

    def forget(self, memory_id: int) -> None:
        self.store.delete_memory(memory_id)

    def edit(self, memory_id: int, text: str | None, pinned: bool | None) -> None:
        self.store.update_memory(memory_id, text=text, pinned=pinned)
