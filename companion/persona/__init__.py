"""Characters: Character Card V1/V2/V3 as JSON or PNG, macros, persona prompt, default character.

    from companion.persona import Character, load_card_file, default_character
    char, spec, avatar = load_card_file(Path("card.png"))   # CardError if malformed/hostile
    persona_prompt(char, user="Sam")                         # system prompt text, macros rendered
    card_to_json(char, "v3"); card_to_png(char, avatar, "v3")

Characters are stored by `companion.memory.Store` (import_character / character / characters);
each has its own conversations and memories.
"""

from companion.persona.card import (
    Character,
    card_from_dict,
    card_to_dict,
    card_to_json,
    card_to_png,
    load_card_file,
    parse_card_json,
    read_png_card,
    render,
)
from companion.persona.default import default_character
from companion.persona.prompt import greetings, persona_prompt

__all__ = [
    "Character", "card_from_dict", "card_to_dict", "card_to_json", "card_to_png", "default_character",
    "greetings", "load_card_file", "parse_card_json", "persona_prompt", "read_png_card", "render",
]
