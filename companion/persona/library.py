"""Characters in the Store: import from / export to card files, choose the active one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from companion.errors import CardError
from companion.persona.card import card_to_json, card_to_png, load_card_file

if TYPE_CHECKING:
    from companion.memory.store import Store


def import_card_file(store: Store, path: Path, *, replace: bool = False) -> int:
    """Validate a .json/.png card completely, then store it; returns the character id.
    A malformed or hostile card raises CardError and stores nothing."""
    char, _spec, avatar = load_card_file(Path(path))
    return store.import_character(char, avatar, replace=replace)


def export_card_file(
    store: Store, ref: int | str, path: Path, *, spec: Literal["v2", "v3"] = "v3"
) -> Path:
    """Write a stored character to `path`: PNG (avatar + tEXt card) if it ends in .png, else JSON."""
    record = store.character(ref)
    path = Path(path)
    if path.suffix.lower() == ".png":
        data = card_to_png(record.card, record.avatar, spec)
        path.write_bytes(data)
    elif path.suffix.lower() == ".json":
        path.write_text(card_to_json(record.card, spec), encoding="utf-8")
    else:
        raise CardError(f"{path}: choose a .json or .png file name for the card")
    return path
