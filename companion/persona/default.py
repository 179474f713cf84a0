"""The character that ships with Companion."""

from __future__ import annotations

from importlib import resources

from companion.persona.card import Character, parse_card_json

DEFAULT_CHARACTER_FILE = "mira.json"


def default_character() -> Character:
    """Mira, the built-in companion (companion/data/characters/mira.json)."""
    path = resources.files("companion") / "data" / "characters" / DEFAULT_CHARACTER_FILE
    text = path.read_text("utf-8")
    return parse_card_json(text, DEFAULT_CHARACTER_FILE)[0]
