"""What memory tells the user it did on an explicit request, for the chat view to show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MemoryNote:
    """"remembered: …" / "forgot: …" (with an Undo), or "undone: …" after one."""

    action: Literal["remembered", "forgot", "undone"]
    text: str  # what was remembered or forgotten, as stored
    undo_id: int = 0  # pass to ConversationMemory.undo (0: nothing to undo)

    def line(self) -> str:
        """The one-line form the terminal chat prints."""
        return f"[{self.action}: {self.text}]"
